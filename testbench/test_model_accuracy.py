"""``scripts/model_accuracy.py``: the cores it measures are the sweep's balanced points."""

from __future__ import annotations

import pytest

from scripts import model_accuracy as ma
from scripts import sweep


@pytest.fixture
def sweep_cache(tmp_path, monkeypatch):
    """An empty sweep point cache (the real one is left alone) and no memoized answers."""
    monkeypatch.setattr(ma, "SWEEP_CACHE", tmp_path)
    ma.balanced_memory.cache_clear()
    yield tmp_path
    ma.balanced_memory.cache_clear()


@pytest.mark.parametrize("group", [(8, 8, "ws", "mlp"), (2, 2, "os", "mlp")],
                         ids=lambda g: f"{g[2]}-{g[0]}x{g[1]}-{g[3]}")
def test_balanced_memory_is_the_sweeps_best_system_tops_per_w(sweep_cache, group):
    """The memory is the point of ``make sweep``'s grid for that array, dataflow and
    workload with the best system TOPS/W (band midpoint, its own DRAM type), evaluated by
    the sweep's code; the points land in the sweep's cache and a second call reads them."""
    rows, cols, df, wl = group
    got = ma.balanced_memory(rows, cols, df, wl)
    fit = sweep.area_model()
    points = ma.sweep_points(rows, cols, df, wl)
    assert [{k: p[k] for k in ("bus_bits", "sp_lines", "acc_lines")} for p in points] == \
        sweep.memory_grid(rows, cols)
    results = [sweep.evaluate(p, fit) for p in points]
    best = max(results, key=lambda r: (r["tops_per_w_system_low"] +
                                       r["tops_per_w_system_high"], r["tops_per_mm2"]))
    assert got == (best["bus_bits"], best["sp_lines"], best["acc_lines"])
    assert len(list(sweep_cache.glob("*.json"))) == len(points)
    ma.balanced_memory.cache_clear()
    assert ma.balanced_memory(rows, cols, df, wl) == got
    cfg = ma.balanced_config(rows, cols, df, wl)
    assert (cfg.rows, cfg.cols, cfg.dataflow) == (rows, cols, df)
    assert (cfg.bus_bits, cfg.sp_lines, cfg.acc_lines) == got


def test_balanced_memory_refuses_an_unknown_workload(sweep_cache):
    with pytest.raises(ValueError, match="unknown workload 'resnet"):
        ma.balanced_memory(8, 8, "ws", "resnet-50")
