"""``make sweep`` end to end on a small grid: through a Dask cluster reached over TCP (as an
architect's shared cluster would be), cached and resumed, with a failing point reported."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.sweep import MODEL_VERSION, pareto
from sim_models.energy import DRAM_TYPES

REPO = Path(__file__).resolve().parent.parent
CSV_CONTRACT = ("rows, cols, dataflow, workload, bus_bits, sp_bytes, acc_bytes, dram_type, "
                "utilization, dram_bytes, compulsory_dram_bytes, energy_low_uj, energy_high_uj, "
                "floor_low_uj, floor_high_uj, tops_per_w_onchip_low, tops_per_w_onchip_high, "
                "tops_per_w_system_low, tops_per_w_system_high, area_mm2, balanced").split(", ")


def _sweep(out, *extra):
    return subprocess.run([sys.executable, str(REPO / "scripts" / "sweep.py"), "--out", str(out),
                           "--no-progress", "--workloads", "mlp", "bert_base_block",
                           "--dataflows", "ws", "os", *extra],
                          capture_output=True, text=True, timeout=600)


@pytest.mark.xdist_group("dask")
def test_sweep_on_a_dask_cluster_with_cache_and_a_failed_point(tmp_path):
    from dask.distributed import LocalCluster
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster:
        assert cluster.scheduler_address.startswith("tcp://")
        # 0x4 is not a valid array: that point fails, the other eight are kept.
        run = _sweep(tmp_path, "--sizes", "2x2", "8x4", "0x4", "--sp-lines", "1024",
                     "--scheduler", cluster.scheduler_address)
    print(run.stdout, run.stderr)
    assert run.returncode == 2, "a failed point must make the sweep exit non-zero"
    assert "FAILED 0x4" in run.stdout and "rows" in run.stdout
    rows = list(csv.DictReader((tmp_path / "sweep.csv").open()))
    assert len(rows) == 8 * len(DRAM_TYPES) + 4      # one row per point and DRAM type
    assert set(CSV_CONTRACT) <= set(rows[0]), set(CSV_CONTRACT) - set(rows[0])
    # every row names the models it came from (README's tables are labelled by it)
    assert {r["model_version"] for r in rows} == {str(MODEL_VERSION)}
    ok = [r for r in rows if r["status"] == "ok"]
    assert len(ok) == 8 * len(DRAM_TYPES)
    for r in ok:
        for kind in ("onchip", "system"):
            assert float(r[f"tops_per_w_{kind}_low"]) <= float(r[f"tops_per_w_{kind}_high"])
        assert float(r["tops_per_w_system_high"]) < float(r["tops_per_w_onchip_high"])
        assert float(r["floor_low_uj"]) <= float(r["energy_low_uj"])
        assert int(r["compulsory_dram_bytes"]) <= int(r["dram_bytes"])
    assert all(0 < float(r["utilization"]) <= 1 for r in ok)
    # One memory per small array here: each of their points is its group's balanced one.
    assert sum(r["balanced"] == "True" for r in ok) == 8
    for chart in ("tops_per_w_vs_size", "tops_per_w_onchip_vs_size", "utilization_vs_size",
                  "area_vs_size", "energy_breakdown", "pareto"):
        for ext in ("png", "svg"):
            assert (tmp_path / f"{chart}.{ext}").stat().st_size > 1000
    # Resume: the good points come from the cache, only the failed one runs again.
    again = _sweep(tmp_path, "--sizes", "2x2", "8x4", "0x4", "--sp-lines", "1024",
                   "--scheduler", "synchronous")
    assert "8 cached, 4 to run" in again.stdout, again.stdout


def test_pareto_frontier():
    pts = [(1.0, 5.0), (2.0, 4.0), (2.0, 6.0), (3.0, 9.0), (0.5, 4.5)]
    assert pareto(pts) == [1, 3]     # (1, 5) and (0.5, 4.5) lose to (2, 4)
    assert pareto([(1, 1), (2, 2)]) == [0, 1]
    assert pareto([(2, 1), (1, 2)]) == [0]


def test_a_point_moved_to_7nm_with_measured_activity_costs_less_energy_and_area():
    from scripts.sweep import area_model, energy_options, evaluate

    fit = area_model()
    base = {"rows": 8, "cols": 8, "dataflow": "ws", "workload": "mlp", "dram_type": "ddr3"}
    at_180 = evaluate({**base, **energy_options(None, None, "1.0")}, fit)
    at_7 = evaluate({**base, **energy_options(7, 0.7, "0.6")}, fit)
    assert at_7["cycles"] == at_180["cycles"]
    assert at_7["array_area_mm2"] == pytest.approx(at_180["array_area_mm2"] * 0.0032)
    # SRAM from the cited bitcells at each node: TSMC 7 nm's directly, 180 nm moved from 90.
    assert "IEDM 2016" in at_7["sram_area_source"] and "90 -> 180" in at_180["sram_area_source"]
    assert at_7["sram_area_mm2"] == pytest.approx(
        (at_7["sp_bytes"] + at_7["acc_bytes"]) * 8 * 0.027 / 1e6)
    assert at_7["e_mac_uj"] < 0.1 * at_180["e_mac_uj"]
    assert at_7["e_dram_uj"] == at_180["e_dram_uj"]          # another chip: not scaled
    assert "7 nm, 0.7 V" in at_7["energy_label"] and "activity x0.6" in at_7["energy_label"]
    with pytest.raises(SystemExit, match="node 40 nm not covered"):
        energy_options(40, 0.9, "1.0")
    with pytest.raises(SystemExit, match="needs both node_nm and voltage_v"):
        energy_options(7, None, "1.0")


def test_memory_axes_choose_a_balanced_point_that_beats_its_neighbours():
    """A 16x16 array over buses and memories: the balanced row has the best system TOPS/W
    of its group, a wider bus is never slower, and every point sits above its floor."""
    from scripts.sweep import area_model, csv_rows, evaluate, memory_grid

    grid = memory_grid(16, 16, buses=(64, 128, 256), sp_lines=(1024, 4096), acc_lines=(256,))
    assert [m["bus_bits"] for m in grid] == [64, 64, 128, 128]   # no bus wider than a line
    assert memory_grid(4, 4) == [{"bus_bits": 64, "sp_lines": s, "acc_lines": 256}
                                 for s in (1024, 4096, 16384)]
    fit = area_model()
    results = [evaluate({"rows": 16, "cols": 16, "dataflow": "ws", "workload": "mlp", **m},
                        fit) for m in grid]
    rows = [r for r in csv_rows(results) if r.get("own_dram")]
    best = [r for r in rows if r["balanced"]]
    assert len(best) == 1 and len([r for r in rows if r["balanced_area"]]) == 1
    mid = lambda r: r["tops_per_w_system_low"] + r["tops_per_w_system_high"]  # noqa: E731
    assert all(mid(best[0]) >= mid(r) for r in rows)
    by = {(r["bus_bits"], r["sp_lines"]): r for r in rows}
    for sp in (1024, 4096):
        assert by[128, sp]["cycles"] <= by[64, sp]["cycles"]
    assert all(r["ratio_to_floor"] > 1 and r["dram_ratio"] >= 1 for r in rows)
