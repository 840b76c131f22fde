"""``make sweep`` end to end on a small grid: through a Dask cluster reached over TCP (as an
architect's shared cluster would be), cached and resumed, with a failing point reported."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.sweep import pareto

REPO = Path(__file__).resolve().parent.parent


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
        run = _sweep(tmp_path, "--sizes", "2x2", "8x4", "0x4",
                     "--scheduler", cluster.scheduler_address)
    print(run.stdout, run.stderr)
    assert run.returncode == 2, "a failed point must make the sweep exit non-zero"
    assert "FAILED 0x4" in run.stdout and "rows" in run.stdout
    rows = list(csv.DictReader((tmp_path / "sweep.csv").open()))
    assert len(rows) == 12
    ok = [r for r in rows if r["status"] == "ok"]
    assert len(ok) == 8 and all(float(r["tops_per_w_low"]) <= float(r["tops_per_w_high"])
                                for r in ok)
    assert all(0 < float(r["utilization"]) <= 1 for r in ok)
    for chart in ("tops_per_w_vs_size", "utilization_vs_size", "area_vs_size",
                  "energy_breakdown", "pareto"):
        for ext in ("png", "svg"):
            assert (tmp_path / f"{chart}.{ext}").stat().st_size > 1000
    # Resume: the good points come from the cache, only the failed one runs again.
    again = _sweep(tmp_path, "--sizes", "2x2", "8x4", "0x4", "--scheduler", "synchronous")
    assert "8 cached, 4 to run" in again.stdout, again.stdout


def test_pareto_frontier():
    pts = [(1.0, 5.0), (2.0, 4.0), (2.0, 6.0), (3.0, 9.0), (0.5, 4.5)]
    assert pareto(pts) == [1, 3]     # (1, 5) and (0.5, 4.5) lose to (2, 4)
    assert pareto([(1, 1), (2, 2)]) == [0, 1]
    assert pareto([(2, 1), (1, 2)]) == [0]


def test_a_point_moved_to_7nm_with_measured_activity_costs_less_energy_and_area():
    from scripts.sweep import area_model, energy_options, evaluate

    fit = area_model()
    base = {"rows": 8, "cols": 8, "dataflow": "ws", "workload": "mlp"}
    at_180 = evaluate({**base, **energy_options(None, None, "1.0")}, fit)
    at_7 = evaluate({**base, **energy_options(7, 0.7, "0.6")}, fit)
    assert at_7["cycles"] == at_180["cycles"]
    assert at_7["area_mm2"] == pytest.approx(at_180["area_mm2"] * 0.0032)   # 180 -> 7 nm
    assert at_7["e_mac_uj"] < 0.1 * at_180["e_mac_uj"]
    assert at_7["e_dram_uj"] == at_180["e_dram_uj"]          # another chip: not scaled
    assert "7 nm, 0.7 V" in at_7["energy_label"] and "activity x0.6" in at_7["energy_label"]
    with pytest.raises(SystemExit, match="node 40 nm not covered"):
        energy_options(40, 0.9, "1.0")
    with pytest.raises(SystemExit, match="needs both node_nm and voltage_v"):
        energy_options(7, None, "1.0")
