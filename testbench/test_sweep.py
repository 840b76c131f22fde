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
