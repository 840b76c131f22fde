"""Design-space sweep: array size x dataflow x workload -> throughput per watt, utilization,
area and energy breakdown, as a CSV and charts (PNG and SVG).

    python scripts/sweep.py                          # default grid, local Dask cluster
    python scripts/sweep.py --scheduler tcp://host:8786   # an existing Dask cluster
    python scripts/sweep.py --sizes 4x4 8x16 --workloads mlp --dataflows ws
    python scripts/sweep.py --node 7 --vdd 0.7 --mac-activity relu_cnn

Each point is the fast analytical mode of the cycle model (``analytical.core_estimate``,
validated against the cycle-exact model) priced by the energy model's two tables, giving a
low/high band.  Array area comes from a linear fit (per dataflow) to the Yosys/OSU 180 nm
synthesis points in ``sim_models/area_osu018.json``.  ``--node``/``--vdd`` move energy and
area to another node by Stillmaker & Baas; ``--mac-activity`` applies the data activity
measured on the RTL (``make activity``).

Points are cached one file each under ``<out>/points``: a re-run (or a run after an
interruption) computes only what is missing.  A point that fails is recorded with its
error in the CSV and listed at the end (exit status 2); the others are kept.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from hdl.config import NPUConfig  # noqa: E402
from scripts.cli import parse_size  # noqa: E402
from sim_models import workloads  # noqa: E402
from sim_models.analytical import core_estimate  # noqa: E402
from sim_models.energy import EnergyModel, load_scaling  # noqa: E402
from testbench.rtl import BUILD  # noqa: E402

DEFAULT_SIZES = ["2x2", "4x4", "8x8", "16x16", "32x32", "64x64", "4x16", "16x4", "8x32",
                 "32x8", "16x64", "64x16"]
DEFAULT_WORKLOADS = ["resnet18", "resnet50", "mobilenet_v2", "bert_base_block", "mlp"]
CLOCK_HZ = 1e9
MODEL_VERSION = 1      # bump when a model changes: cached points are then recomputed
AREA_DATA = REPO / "sim_models" / "area_osu018.json"
AREA_NODE_NM = 180     # the OSU liberty the area points were synthesized on


def config_for(rows: int, cols: int, dataflow: str) -> NPUConfig:
    """The core the sweep sizes: scratchpad and accumulator grow with the array."""
    return NPUConfig(rows=rows, cols=cols, dataflow=dataflow, bus_bits=128,
                     sp_lines=max(1024, 16 * rows), acc_lines=max(256, 8 * rows))


def area_model() -> dict:
    """Per dataflow: (fixed um2, um2 per PE), least squares over the synthesis points."""
    points = json.loads(AREA_DATA.read_text())["points"]
    fit = {}
    for df in ("ws", "os"):
        pe = np.array([p["rows"] * p["cols"] for p in points if p["dataflow"] == df], float)
        area = np.array([p["area_um2"] for p in points if p["dataflow"] == df])
        slope, intercept = np.polyfit(pe, area, 1)
        fit[df] = (float(intercept), float(slope))
    return fit


def evaluate(point: dict, area_fit: dict) -> dict:
    """One sweep point (runs on a Dask worker); ``area_fit`` is :func:`area_model`'s."""
    t0 = time.perf_counter()
    rows, cols, df, name = point["rows"], point["cols"], point["dataflow"], point["workload"]
    cfg = config_for(rows, cols, df)
    layers = workloads.load(name)
    cycles = macs = 0
    events = None
    for layer in layers:
        est = core_estimate(cfg, layer)
        cycles += est.cycles
        macs += est.macs
        events = est.events if events is None else events + est.events
    node, volts = point.get("node_nm"), point.get("voltage_v")
    band = EnergyModel(cfg, clock_hz=CLOCK_HZ, node_nm=node, voltage_v=volts,
                       mac_activity=point.get("mac_activity", 1.0)).estimate(events)
    seconds = cycles / CLOCK_HZ
    intercept, per_pe = area_fit[df]
    area_scale = load_scaling().area_factor(AREA_NODE_NM, node) if node else 1.0
    out = dict(point)
    out.update(
        status="ok", error="", cycles=cycles, macs=macs,
        utilization=macs / (rows * cols * cycles),
        inferences_per_s=1 / seconds,
        gops=2 * macs / seconds / 1e9,
        energy_low_uj=band.low_pj / 1e6, energy_high_uj=band.high_pj / 1e6,
        # ops per joule = throughput per watt; the band's low energy is the high TOPS/W
        tops_per_w_low=2 * macs / band.high_pj, tops_per_w_high=2 * macs / band.low_pj,
        power_low_w=band.low_pj * 1e-12 / seconds, power_high_w=band.high_pj * 1e-12 / seconds,
        area_mm2=(intercept + per_pe * rows * cols) * area_scale / 1e6,
        area_node_nm=node or AREA_NODE_NM,
        energy_label=band.label, wall_s=time.perf_counter() - t0,
    )
    for part, (lo, hi) in band.breakdown.items():
        out[f"e_{part}_uj"] = (lo + hi) / 2 / 1e6
    return out


def _key(point: dict) -> str:
    text = json.dumps({**point, "v": MODEL_VERSION}, sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def safe_evaluate(point: dict, area_fit: dict) -> dict:
    try:
        return evaluate(point, area_fit)
    except Exception as exc:  # a failed point is reported, the sweep goes on
        return {**point, "status": "failed", "error": f"{type(exc).__name__}: {exc}"}


def run_points(points: list[dict], scheduler: str | None, workers: int, cache: Path,
               progress: bool = True) -> list[dict]:
    from tqdm import tqdm
    cache.mkdir(parents=True, exist_ok=True)
    results, todo = [], []
    for p in points:
        f = cache / f"{_key(p)}.json"
        if f.exists():
            results.append(json.loads(f.read_text()))
        else:
            todo.append(p)
    print(f"sweep: {len(points)} points, {len(points) - len(todo)} cached, {len(todo)} to run")
    if not todo:
        return results
    bar = tqdm(total=len(todo), disable=not progress, unit="pt", file=sys.stdout)
    area_fit = area_model()

    def keep(res):
        if res.get("status") == "ok":
            point = {k: res[k] for k in POINT_KEYS if k in res}
            (cache / f"{_key(point)}.json").write_text(json.dumps(res))
        results.append(res)
        bar.update()

    if scheduler == "synchronous":
        for p in todo:
            keep(safe_evaluate(p, area_fit))
    else:
        from dask.distributed import Client, LocalCluster, as_completed
        cluster = None
        if scheduler:
            client = Client(scheduler)
        else:
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                   dashboard_address=None)
            client = Client(cluster)
        try:
            futures = client.map(safe_evaluate, todo, area_fit=area_fit, pure=False)
            for fut in as_completed(futures):
                keep(fut.result())
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    bar.close()
    return results


POINT_KEYS = ("rows", "cols", "dataflow", "workload", "node_nm", "voltage_v", "mac_activity")


def write_csv(results: list[dict], path: Path):
    keys = []
    for r in results:
        keys += [k for k in r if k not in keys]
    order = sorted(results, key=lambda r: (r["workload"], r["dataflow"], r["rows"] * r["cols"],
                                           r["rows"]))
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(order)


def best_per_workload(results: list[dict]) -> dict:
    best = {}
    for r in results:
        if r.get("status") != "ok":
            continue
        mid = (r["tops_per_w_low"] + r["tops_per_w_high"]) / 2
        if r["workload"] not in best or mid > best[r["workload"]][0]:
            best[r["workload"]] = (mid, r)
    return {w: r for w, (_, r) in best.items()}


def pareto(points: list[tuple[float, float]]) -> list[int]:
    """Indices of points not dominated in (higher throughput, lower energy)."""
    keep = []
    for i, (t, e) in enumerate(points):
        if not any((t2 >= t and e2 <= e) and (t2 > t or e2 < e) for t2, e2 in points):
            keep.append(i)
    return sorted(keep, key=lambda i: points[i][0])


def charts(results: list[dict], out: Path) -> list[Path]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in results if r.get("status") == "ok"]
    files = []

    def save(fig, name):
        for ext in ("png", "svg"):
            p = out / f"{name}.{ext}"
            fig.savefig(p, dpi=120, bbox_inches="tight")
            files.append(p)
        plt.close(fig)

    workloads_ = sorted({r["workload"] for r in ok})
    dataflows = sorted({r["dataflow"] for r in ok})
    styles = {"ws": "-", "os": "--"}

    def series(wl, df, square=True):
        """Square arrays (the lines); ``square=False``: the non-square ones (markers)."""
        return sorted((r for r in ok if r["workload"] == wl and r["dataflow"] == df
                       and (r["rows"] == r["cols"]) == square),
                      key=lambda r: (r["rows"] * r["cols"], r["rows"]))

    fig, ax = plt.subplots(figsize=(8, 5))
    for i, wl in enumerate(workloads_):
        for df in dataflows:
            pts = series(wl, df)
            if not pts:
                continue
            x = [r["rows"] * r["cols"] for r in pts]
            lo = [r["tops_per_w_low"] for r in pts]
            hi = [r["tops_per_w_high"] for r in pts]
            ax.fill_between(x, lo, hi, alpha=0.15, color=f"C{i}")
            ax.plot(x, [(a + b) / 2 for a, b in zip(lo, hi)], styles.get(df, ":"),
                    marker="o", color=f"C{i}", label=f"{wl} ({df})")
            odd = series(wl, df, square=False)
            ax.scatter([r["rows"] * r["cols"] for r in odd],
                       [(r["tops_per_w_low"] + r["tops_per_w_high"]) / 2 for r in odd],
                       marker="x" if df == "ws" else "+", color=f"C{i}", s=25)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("processing elements (rows x cols)")
    ax.set_ylabel("TOPS/W (shaded: energy band; x/+ non-square ws/os)")
    ax.set_title(f"Throughput per watt vs array size ({ok[0]['energy_label'] if ok else ''})",
                 fontsize=9)
    ax.legend(fontsize=7, ncol=2, handlelength=4)   # long enough to show os dashes
    ax.grid(alpha=0.3)
    save(fig, "tops_per_w_vs_size")

    fig, ax = plt.subplots(figsize=(8, 5))
    for i, wl in enumerate(workloads_):
        for df in dataflows:
            pts = series(wl, df)
            if pts:
                ax.plot([r["rows"] * r["cols"] for r in pts], [r["utilization"] for r in pts],
                        styles.get(df, ":"), marker="o", color=f"C{i}", label=f"{wl} ({df})")
            odd = series(wl, df, square=False)
            ax.scatter([r["rows"] * r["cols"] for r in odd], [r["utilization"] for r in odd],
                       marker="x" if df == "ws" else "+", color=f"C{i}", s=25)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("processing elements")
    ax.set_ylabel("utilization (MACs / (PEs x cycles))")
    ax.legend(fontsize=7, ncol=2, handlelength=4)   # long enough to show os dashes
    ax.grid(alpha=0.3)
    save(fig, "utilization_vs_size")

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for df in dataflows:
        pts = sorted({(r["rows"] * r["cols"], r["area_mm2"]) for r in ok if r["dataflow"] == df})
        ax.plot([p[0] for p in pts], [p[1] for p in pts], styles.get(df, ":"), marker="s",
                label=f"{df}: linear fit to OSU 180 nm synthesis"
                      + (f", scaled to {ok[0]['area_node_nm']} nm" if ok and
                         ok[0]["area_node_nm"] != AREA_NODE_NM else ""))
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("processing elements")
    ax.set_ylabel(f"array area (mm^2, {ok[0]['area_node_nm'] if ok else 180} nm)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    save(fig, "area_vs_size")

    parts = sorted({k for r in ok for k in r if k.startswith("e_") and k.endswith("_uj")})
    if parts and ok:
        wl = "resnet50" if "resnet50" in workloads_ else workloads_[0]
        pts = series(wl, "ws") or series(wl, dataflows[0])
        fig, ax = plt.subplots(figsize=(8, 4.5))
        labels = [f"{r['rows']}x{r['cols']}" for r in pts]
        bottom = np.zeros(len(pts))
        for part in parts:
            vals = np.array([r.get(part, 0.0) / r["macs"] * 1e6 for r in pts])   # pJ/MAC
            ax.bar(labels, vals, bottom=bottom, label=part[2:-3])
            bottom += vals
        ax.set_ylabel("energy per MAC (pJ, band midpoint)")
        ax.set_title(f"Energy breakdown per component: {wl}", fontsize=9)
        ax.legend(fontsize=7)
        save(fig, "energy_breakdown")

    fig, ax = plt.subplots(figsize=(7, 5))
    for i, wl in enumerate(workloads_):
        pts = [r for r in ok if r["workload"] == wl]
        tp = [(r["inferences_per_s"], (r["energy_low_uj"] + r["energy_high_uj"]) / 2) for r in pts]
        ax.scatter([t for t, _ in tp], [e for _, e in tp], s=12, color=f"C{i}", alpha=0.5)
        front = pareto(tp)
        ax.plot([tp[j][0] for j in front], [tp[j][1] for j in front], "-o", color=f"C{i}",
                label=wl)
        for j in front:
            r = pts[j]
            ax.annotate(f"{r['rows']}x{r['cols']}{r['dataflow']}", tp[j], fontsize=5)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("throughput (inferences/s at 1 GHz)")
    ax.set_ylabel("energy per inference (uJ)")
    ax.set_title("Pareto frontier: throughput vs energy", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    save(fig, "pareto")
    return files


def energy_options(node: int | None, vdd: float | None, mac_activity: str) -> dict:
    """The energy settings every point carries, checked before any work starts."""
    try:
        activity = float(mac_activity)
    except ValueError:
        measured = BUILD / "activity.json"
        if not measured.exists():
            raise SystemExit(f"--mac-activity {mac_activity}: no {measured} (run make activity)")
        runs = json.loads(measured.read_text())["runs"]
        if mac_activity not in runs:
            raise SystemExit(f"--mac-activity: profile {mac_activity!r} not in {measured} "
                             f"(have: {', '.join(runs)})")
        activity = runs[mac_activity]["mac_activity"]
    options = {"mac_activity": activity}
    if node is not None or vdd is not None:
        options.update(node_nm=node, voltage_v=vdd)
    try:  # a bad node, voltage or activity fails here, before the cluster starts
        EnergyModel(config_for(2, 2, "ws"), node_nm=node, voltage_v=vdd, mac_activity=activity)
        if node is not None:
            load_scaling().area_factor(AREA_NODE_NM, node)
    except ValueError as exc:
        raise SystemExit(f"bad energy options: {exc}")
    return options


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", nargs="+", type=parse_size,
                    default=[parse_size(s) for s in DEFAULT_SIZES])
    ap.add_argument("--dataflows", nargs="+", default=["ws", "os"], choices=["ws", "os"])
    ap.add_argument("--workloads", nargs="+", default=DEFAULT_WORKLOADS)
    ap.add_argument("--scheduler", default=None,
                    help="tcp://HOST:PORT of a Dask scheduler; 'synchronous' for no Dask; "
                         "default: a local cluster of --workers processes")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=BUILD / "sweep")
    ap.add_argument("--fresh", action="store_true", help="ignore cached points")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--node", type=int, default=None,
                    help="technology node (nm) to move energy and area to (Stillmaker & Baas)")
    ap.add_argument("--vdd", type=float, default=None, help="supply voltage at --node")
    ap.add_argument("--mac-activity", default="1.0",
                    help="MAC/array-register activity vs uniform random data: a number, or an "
                         "operand profile measured by 'make activity' (e.g. relu_cnn)")
    args = ap.parse_args(argv)
    energy = energy_options(args.node, args.vdd, args.mac_activity)

    for wl in args.workloads:
        workloads.load(wl)            # a bad workload name fails here, before any work
    args.out.mkdir(parents=True, exist_ok=True)
    cache = args.out / "points"
    if args.fresh and cache.exists():
        for f in cache.glob("*.json"):
            f.unlink()
    points = [{"rows": r, "cols": c, "dataflow": df, "workload": wl, **energy}
              for wl in args.workloads for df in args.dataflows for r, c in args.sizes]
    t0 = time.perf_counter()
    results = run_points(points, args.scheduler, args.workers, cache,
                         progress=not args.no_progress)
    csv_path = args.out / "sweep.csv"
    write_csv(results, csv_path)
    files = charts(results, args.out)
    print(f"sweep: {len(results)} points in {time.perf_counter() - t0:.1f} s -> {csv_path}")
    for f in files:
        print(f"  chart {f}")
    print("best array per workload (TOPS/W, band midpoint):")
    for wl, r in sorted(best_per_workload(results).items()):
        print(f"  {wl:16s} {r['rows']}x{r['cols']} {r['dataflow']}: "
              f"{r['tops_per_w_low']:.2f}-{r['tops_per_w_high']:.2f} TOPS/W, "
              f"utilization {r['utilization']:.2f}, {r['inferences_per_s']:.0f} inf/s")
    failed = [r for r in results if r.get("status") != "ok"]
    for r in failed:
        print(f"FAILED {r['rows']}x{r['cols']} {r['dataflow']} {r['workload']}: {r['error']}")
    return 2 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
