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
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from hdl.config import NPUConfig  # noqa: E402
from scripts.cli import parse_size  # noqa: E402
from sim_models import workloads  # noqa: E402
from sim_models.analytical import BREAKDOWN, network_estimates  # noqa: E402
from sim_models.energy import (DRAM_TYPES, EnergyModel, load_scaling, sram_area_mm2,  # noqa: E402
                               tables_fingerprint)
from testbench import BUILD  # noqa: E402

DEFAULT_SIZES = ["2x2", "4x4", "8x8", "16x16", "32x32", "64x64", "4x16", "16x4", "8x32",
                 "32x8", "16x64", "64x16"]
DEFAULT_WORKLOADS = ["resnet18", "resnet50", "mobilenet_v2", "bert_base_block", "mlp"]
CLOCK_HZ = 1e9
MODEL_VERSION = 17     # bump when a model changes: cached points are then recomputed
AREA_DATA = REPO / "sim_models" / "area_osu018.json"
AREA_NODE_NM = 180     # the OSU liberty the area points were synthesized on
# The memory axes.  Small arrays (under 256 PEs) keep the narrowest bus and accumulator:
# their lines are at most 8-16 bytes, one beat of a 64-bit bus, and their points are the
# slowest to evaluate; their scratchpad depth is swept (it sets their DRAM traffic).
BUSES = (64, 128, 256, 512)
SP_LINES = (1024, 4096, 16384)
ACC_LINES = (256, 1024, 4096)
SMALL_ARRAY_PES = 256


def config_for(rows: int, cols: int, dataflow: str, bus_bits: int = 128,
               sp_lines: int | None = None, acc_lines: int | None = None) -> NPUConfig:
    """The core of one sweep point; without memory settings, the old fixed memory (a
    128-bit bus, at least 1024 scratchpad lines and 256 accumulator lines)."""
    return NPUConfig(rows=rows, cols=cols, dataflow=dataflow, bus_bits=bus_bits,
                     sp_lines=sp_lines or max(1024, 16 * rows),
                     acc_lines=acc_lines or max(256, 8 * rows))


def memory_grid(rows: int, cols: int, buses=BUSES, sp_lines=SP_LINES,
                acc_lines=ACC_LINES) -> list[dict]:
    """The memory configurations swept for one array: buses up to one scratchpad line per
    beat (a wider bus moves no row faster), every scratchpad and accumulator depth that
    holds two tiles.  Arrays under :data:`SMALL_ARRAY_PES` PEs get the narrowest bus and
    the smallest accumulator only."""
    line_bits = 8 * max(rows, cols)
    b = [x for x in buses if x <= max(min(buses), line_bits)]
    sp = list(sp_lines)
    acc = [a for a in acc_lines if a >= 2 * rows] or [max(acc_lines)]
    if rows * cols < SMALL_ARRAY_PES:
        b, acc = b[:1], acc[:1]
    return [{"bus_bits": x, "sp_lines": s_, "acc_lines": a} for x in b for s_ in sp for a in acc]


def default_dram(node_nm: int | None) -> str:
    """The DRAM type a point is balanced with, by its logic's era: the tables' own DDR3 at
    the reference node (45 nm) and above, DDR4 (2014) from 32 to 20 nm, HBM2 at 16 nm and
    below."""
    if node_nm is None or node_nm >= 45:
        return "ddr3"
    return "ddr4" if node_nm > 16 else "hbm2"


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


def run_workload(cfg: NPUConfig, name: str):
    """Analytical cycles, MACs and events of a workload, and its compulsory traffic:
    (cycles, macs, events, compulsory DRAM bytes, compulsory on-chip bytes, outputs,
    where the cycles go: :data:`analytical.BREAKDOWN` -> cycles)."""
    cycles = macs = dram = onchip = outputs = 0
    events, breakdown = None, dict.fromkeys(BREAKDOWN, 0)
    layers = workloads.load(name)
    for layer, est in zip(layers, network_estimates(cfg, layers)):
        cycles += est.cycles
        macs += est.macs
        events = est.events if events is None else events + est.events
        breakdown = {k: v + est.breakdown[k] for k, v in breakdown.items()}
        i, w, o = layer.compulsory_bytes()
        dram, onchip, outputs = dram + i + w + o, onchip + i + w, outputs + o
    return cycles, macs, events, dram, onchip, outputs, breakdown


def priced(model: EnergyModel, events, floor_args, macs: int) -> dict:
    """The energy columns of one point for one DRAM type."""
    band, floor = model.estimate(events), model.floor(*floor_args)
    on_lo, on_hi = band.onchip_pj
    fl_on_lo, fl_on_hi = floor.onchip_pj
    out = dict(
        dram_type=model.dram_type,
        energy_low_uj=band.low_pj / 1e6, energy_high_uj=band.high_pj / 1e6,
        energy_onchip_low_uj=on_lo / 1e6, energy_onchip_high_uj=on_hi / 1e6,
        floor_low_uj=floor.low_pj / 1e6, floor_high_uj=floor.high_pj / 1e6,
        floor_onchip_low_uj=fl_on_lo / 1e6, floor_onchip_high_uj=fl_on_hi / 1e6,
        # ops per joule = throughput per watt; the band's low energy is the high TOPS/W
        tops_per_w_system_low=2 * macs / band.high_pj, tops_per_w_system_high=2 * macs / band.low_pj,
        tops_per_w_onchip_low=2 * macs / on_hi, tops_per_w_onchip_high=2 * macs / on_lo,
        ratio_to_floor=(band.low_pj + band.high_pj) / (floor.low_pj + floor.high_pj),
        energy_label=band.label)
    out["tops_per_w_low"] = out["tops_per_w_system_low"]      # the old names: system
    out["tops_per_w_high"] = out["tops_per_w_system_high"]
    for part, (lo, hi) in band.breakdown.items():
        out[f"e_{part}_uj"] = (lo + hi) / 2 / 1e6
    return out


def evaluate(point: dict, area_fit: dict) -> dict:
    """One sweep point (runs on a Dask worker); ``area_fit`` is :func:`area_model`'s.

    The analytical model runs once; the energy is priced for every DRAM type: the point's
    own (``dram_type``, else :func:`default_dram`) in the row, the others in ``alt_dram``
    (one CSV row each, see :func:`rows_of`)."""
    t0 = time.perf_counter()
    rows, cols, df, name = point["rows"], point["cols"], point["dataflow"], point["workload"]
    cfg = config_for(rows, cols, df, point.get("bus_bits", 128), point.get("sp_lines"),
                     point.get("acc_lines"))
    cycles, macs, events, dram_c, onchip_c, outputs, breakdown = run_workload(cfg, name)
    node, volts = point.get("node_nm"), point.get("voltage_v")
    own = point.get("dram_type") or default_dram(node)
    by_type = {}
    for dram in DRAM_TYPES:
        model = EnergyModel(cfg, clock_hz=CLOCK_HZ, node_nm=node, voltage_v=volts,
                            mac_activity=point.get("mac_activity", 1.0), dram_type=dram)
        by_type[dram] = priced(model, events, (macs, dram_c, onchip_c, outputs), macs)
    seconds = cycles / CLOCK_HZ
    intercept, per_pe = area_fit[df]
    area_node = node or AREA_NODE_NM
    area_scale = load_scaling().area_factor(AREA_NODE_NM, node) if node else 1.0
    sram_bytes = cfg.sp_lines * cfg.sp_width + cfg.acc_lines * cfg.cols * 4
    sram_mm2, sram_source = sram_area_mm2(sram_bytes, area_node)
    array_mm2 = (intercept + per_pe * rows * cols) * area_scale / 1e6
    out = dict(point)
    out.update(
        status="ok", error="", bus_bits=cfg.bus_bits, sp_lines=cfg.sp_lines,
        acc_lines=cfg.acc_lines, sp_bytes=cfg.sp_lines * cfg.sp_width,
        acc_bytes=cfg.acc_lines * cfg.cols * 4, cycles=cycles, macs=macs,
        utilization=macs / (rows * cols * cycles),
        inferences_per_s=1 / seconds,
        gops=2 * macs / seconds / 1e9,
        dram_bytes=events.dram_bytes, compulsory_dram_bytes=dram_c,
        dram_ratio=events.dram_bytes / dram_c,
        area_mm2=array_mm2 + sram_mm2, array_area_mm2=array_mm2, sram_area_mm2=sram_mm2,
        sram_area_source=sram_source, area_node_nm=area_node,
        tops_per_mm2=2 * macs / seconds / 1e12 / (array_mm2 + sram_mm2),
        **{f"cycles_{k}": round(v) for k, v in breakdown.items()},
        **by_type.pop(own), wall_s=time.perf_counter() - t0)
    out["alt_dram"] = by_type
    out["point_key"] = _key(point)
    for k in ("power_low_w", "power_high_w"):
        e = out["energy_low_uj" if k == "power_low_w" else "energy_high_uj"]
        out[k] = e * 1e-6 / seconds
    return out


def rows_of(result: dict) -> list[dict]:
    """A point's CSV rows: its own DRAM type, then one per other priced type."""
    base = {k: v for k, v in result.items() if k != "alt_dram"}
    return [base] + [{**base, **alt} for alt in result.get("alt_dram", {}).values()]


def _key(point: dict) -> str:
    text = json.dumps({**point, "v": MODEL_VERSION, "tables": tables_fingerprint()},
                      sort_keys=True)
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
            (cache / f"{res['point_key']}.json").write_text(json.dumps(res))
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


POINT_KEYS = ("rows", "cols", "dataflow", "workload", "bus_bits", "sp_lines", "acc_lines",
              "dram_type", "node_nm", "voltage_v", "mac_activity")


CSV_FIRST = ("rows", "cols", "dataflow", "workload", "bus_bits", "sp_bytes", "acc_bytes",
             "dram_type", "utilization", "dram_bytes", "compulsory_dram_bytes", "energy_low_uj",
             "energy_high_uj", "floor_low_uj", "floor_high_uj", "tops_per_w_onchip_low",
             "tops_per_w_onchip_high", "tops_per_w_system_low", "tops_per_w_system_high",
             "area_mm2", "balanced", "balanced_area", "balanced_dram", "ratio_to_floor",
             "tops_per_mm2")


def _mid(r: dict, key: str) -> float:
    return (r[f"{key}_low"] + r[f"{key}_high"]) / 2


def mark_balanced(rows: list[dict]) -> list[dict]:
    """Per array size x dataflow x workload, among the memory configurations priced with the
    point's own DRAM type (the first row of each point): ``balanced`` on the best system
    TOPS/W (band midpoint), ``balanced_area`` on the best TOPS/mm^2.  Per array size x
    dataflow x workload x DRAM type, ``balanced_dram`` on the memory with the best system
    TOPS/W when the DRAM is that type (every priced type has its balanced points)."""
    groups, by_dram = {}, {}
    for r in rows:
        r["balanced"] = r["balanced_area"] = r["balanced_dram"] = False
        if r.get("status") != "ok":
            continue
        key = (r["rows"], r["cols"], r["dataflow"], r["workload"])
        by_dram.setdefault(key + (r["dram_type"],), []).append(r)
        if r.get("own_dram"):
            groups.setdefault(key, []).append(r)
    best_energy = lambda r: (_mid(r, "tops_per_w_system"), r["tops_per_mm2"])  # noqa: E731
    for group in groups.values():
        max(group, key=best_energy)["balanced"] = True
        max(group, key=lambda r: (r["tops_per_mm2"], _mid(r, "tops_per_w_system")))["balanced_area"] = True
    for group in by_dram.values():
        max(group, key=best_energy)["balanced_dram"] = True
    return rows


def csv_rows(results: list[dict]) -> list[dict]:
    """Every CSV row (one per point and DRAM type), balanced points marked."""
    rows = []
    for res in results:
        own = rows_of(res)
        own[0]["own_dram"] = True
        for r in own:
            r["model_version"] = MODEL_VERSION    # which models the figures are from
        rows += own
    return mark_balanced(rows)


def write_csv(rows: list[dict], path: Path):
    keys = [k for k in CSV_FIRST if any(k in r for r in rows)]
    for r in rows:
        keys += [k for k in r if k not in keys]
    order = sorted(rows, key=lambda r: (r["workload"], r["dataflow"], r["rows"] * r["cols"],
                                        r["rows"], r.get("bus_bits", 0), r.get("sp_lines", 0),
                                        r.get("acc_lines", 0), r.get("dram_type", "")))
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(order)


def balanced_points(rows: list[dict]) -> list[dict]:
    return sorted((r for r in rows if r.get("balanced")),
                  key=lambda r: (r["workload"], r["dataflow"], r["rows"] * r["cols"], r["rows"]))


def best_per_dram(rows: list[dict]) -> dict:
    """(workload, DRAM type) -> the balanced point (``balanced_dram``) with the best system
    TOPS/W (band midpoint) over every array size and dataflow."""
    best = {}
    for r in rows:
        if r.get("balanced_dram"):
            key = (r["workload"], r["dram_type"])
            if key not in best or _mid(r, "tops_per_w_system") > _mid(best[key], "tops_per_w_system"):
                best[key] = r
    return best


def best_per_workload(rows: list[dict]) -> dict:
    best = {}
    for r in balanced_points(rows):
        if r["workload"] not in best or _mid(r, "tops_per_w_system") > \
                _mid(best[r["workload"]], "tops_per_w_system"):
            best[r["workload"]] = r
    return best


def pareto(points: list[tuple[float, float]]) -> list[int]:
    """Indices of points not dominated in (higher throughput, lower energy)."""
    keep = []
    for i, (t, e) in enumerate(points):
        if not any((t2 >= t and e2 <= e) and (t2 > t or e2 < e) for t2, e2 in points):
            keep.append(i)
    return sorted(keep, key=lambda i: points[i][0])


STYLES = {"ws": "-", "os": "--"}


def _series(ok, wl, df, square=True):
    """Balanced points of one workload and dataflow: square arrays (the lines), or with
    ``square=False`` the non-square ones (markers)."""
    return sorted((r for r in ok if r["workload"] == wl and r["dataflow"] == df
                   and r["balanced"] and (r["rows"] == r["cols"]) == square),
                  key=lambda r: (r["rows"] * r["cols"], r["rows"]))


def _chart_tops_per_w(ax, ok, workloads_, dataflows, kind="system"):
    """TOPS/W of the balanced points vs size, with the energy band, and the compulsory
    floor's TOPS/W (dotted) for the same arrays."""
    for i, wl in enumerate(workloads_):
        for df in dataflows:
            pts = _series(ok, wl, df)
            if not pts:
                continue
            x = [r["rows"] * r["cols"] for r in pts]
            lo = [r[f"tops_per_w_{kind}_low"] for r in pts]
            hi = [r[f"tops_per_w_{kind}_high"] for r in pts]
            ax.fill_between(x, lo, hi, alpha=0.15, color=f"C{i}")
            ax.plot(x, [(a + b) / 2 for a, b in zip(lo, hi)], STYLES.get(df, ":"),
                    marker="o", color=f"C{i}", label=f"{wl} ({df})")
            fkey = "floor" if kind == "system" else "floor_onchip"
            ax.plot(x, [2 * r["macs"] / ((r[f"{fkey}_low_uj"] + r[f"{fkey}_high_uj"]) / 2 * 1e6)
                        for r in pts], ":", color=f"C{i}", alpha=0.6, lw=1)
            odd = _series(ok, wl, df, square=False)
            ax.scatter([r["rows"] * r["cols"] for r in odd], [_mid(r, f"tops_per_w_{kind}") for r in odd],
                       marker="x" if df == "ws" else "+", color=f"C{i}", s=25)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("processing elements (rows x cols)")
    ax.set_ylabel(f"{kind} TOPS/W, balanced memory (band; dotted: compulsory floor)")
    ax.legend(fontsize=6, ncol=2, handlelength=4)
    ax.grid(alpha=0.3)


def _chart_utilization(ax, ok, workloads_, dataflows):
    for i, wl in enumerate(workloads_):
        for df in dataflows:
            pts = _series(ok, wl, df)
            if pts:
                ax.plot([r["rows"] * r["cols"] for r in pts], [r["utilization"] for r in pts],
                        STYLES.get(df, ":"), marker="o", color=f"C{i}", label=f"{wl} ({df})")
            odd = _series(ok, wl, df, square=False)
            ax.scatter([r["rows"] * r["cols"] for r in odd], [r["utilization"] for r in odd],
                       marker="x" if df == "ws" else "+", color=f"C{i}", s=25)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("processing elements")
    ax.set_ylabel("utilization at the balanced memory (MACs / (PEs x cycles))")
    ax.legend(fontsize=7, ncol=2, handlelength=4)
    ax.grid(alpha=0.3)


def _chart_area(ax, ok, dataflows):
    node = ok[0]["area_node_nm"] if ok else AREA_NODE_NM
    for df in dataflows:
        pts = sorted({(r["rows"] * r["cols"], r["array_area_mm2"]) for r in ok if r["dataflow"] == df})
        ax.plot([p[0] for p in pts], [p[1] for p in pts], STYLES.get(df, ":"), marker="s",
                label=f"{df} array: linear fit to OSU 180 nm synthesis"
                      + (f", scaled to {node} nm" if node != AREA_NODE_NM else ""))
    bal = sorted((r for r in ok if r["balanced"] and r["dataflow"] == "ws"),
                 key=lambda r: r["rows"] * r["cols"])
    ax.scatter([r["rows"] * r["cols"] for r in bal], [r["area_mm2"] for r in bal], s=14,
               color="k", label="ws balanced points: array + SRAM bitcells (cited density)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("processing elements")
    ax.set_ylabel(f"area (mm^2, {node} nm)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)


def _chart_breakdown(ax, ok, workloads_, dataflows):
    parts = sorted({k for r in ok for k in r if k.startswith("e_") and k.endswith("_uj")})
    wl = "resnet50" if "resnet50" in workloads_ else workloads_[0]
    pts = _series(ok, wl, "ws") or _series(ok, wl, dataflows[0])
    labels = [f"{r['rows']}x{r['cols']}\nb{r['bus_bits']}" for r in pts]
    bottom = np.zeros(len(pts))
    for part in parts:
        vals = np.array([r.get(part, 0.0) / r["macs"] * 1e6 for r in pts])   # pJ/MAC
        ax.bar(labels, vals, bottom=bottom, label=part[2:-3])
        bottom += vals
    floor = [(r["floor_low_uj"] + r["floor_high_uj"]) / 2 / r["macs"] * 1e6 for r in pts]
    ax.plot(labels, floor, "k_", markersize=20, mew=2, label="compulsory floor")
    ax.set_ylabel("energy per MAC (pJ, band midpoint)")
    ax.set_title(f"Energy per component at the balanced memory: {wl}", fontsize=9)
    ax.legend(fontsize=7)


def _chart_pareto(ax, ok, workloads_):
    for i, wl in enumerate(workloads_):
        pts = [r for r in ok if r["workload"] == wl]
        tp = [(r["inferences_per_s"], (r["energy_low_uj"] + r["energy_high_uj"]) / 2) for r in pts]
        ax.scatter([t for t, _ in tp], [e for _, e in tp], s=6, color=f"C{i}", alpha=0.3)
        front = pareto(tp)
        ax.plot([tp[j][0] for j in front], [tp[j][1] for j in front], "-o", color=f"C{i}",
                label=wl, ms=3)
        fl = min((r["floor_low_uj"] + r["floor_high_uj"]) / 2 for r in pts)
        ax.axhline(fl, color=f"C{i}", ls=":", lw=1)
        for j in front:
            r = pts[j]
            ax.annotate(f"{r['rows']}x{r['cols']}{r['dataflow']} b{r['bus_bits']}", tp[j], fontsize=4)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("throughput (inferences/s at 1 GHz)")
    ax.set_ylabel("energy per inference (uJ; dotted: lowest compulsory floor)")
    ax.set_title("Pareto frontier over sizes and memories: throughput vs energy", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)


def charts(rows: list[dict], out: Path) -> list[Path]:
    """The sweep's charts from its CSV rows (balanced points marked), PNG and SVG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in rows if r.get("status") == "ok" and r.get("own_dram")]
    files = []
    if not ok:
        return files
    workloads_ = sorted({r["workload"] for r in ok})
    dataflows = sorted({r["dataflow"] for r in ok})
    label = ok[0]["energy_label"]
    for name, size, draw in [
            ("tops_per_w_vs_size", (8, 5), lambda ax: _chart_tops_per_w(ax, ok, workloads_, dataflows)),
            ("tops_per_w_onchip_vs_size", (8, 5),
             lambda ax: _chart_tops_per_w(ax, ok, workloads_, dataflows, "onchip")),
            ("utilization_vs_size", (8, 5), lambda ax: _chart_utilization(ax, ok, workloads_, dataflows)),
            ("area_vs_size", (7, 4.5), lambda ax: _chart_area(ax, ok, dataflows)),
            ("energy_breakdown", (9, 4.5), lambda ax: _chart_breakdown(ax, ok, workloads_, dataflows)),
            ("pareto", (7, 5), lambda ax: _chart_pareto(ax, ok, workloads_))]:
        fig, ax = plt.subplots(figsize=size)
        draw(ax)
        if name.startswith("tops"):
            ax.set_title(f"Throughput per watt vs array size ({label})", fontsize=6)
        for ext in ("png", "svg"):
            p = out / f"{name}.{ext}"
            fig.savefig(p, dpi=120, bbox_inches="tight")
            files.append(p)
        plt.close(fig)
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


def print_balanced(rows: list[dict]):
    """One line per balanced point: its memory, utilization, both TOPS/W bands, the ratio
    of its energy to the compulsory floor and of its DRAM bytes to the compulsory bytes."""
    print(f"{'workload':16s} df {'array':>6s} {'bus':>4s} {'sp KiB':>7s} {'acc KiB':>7s} "
          f"{'util':>5s} {'on-chip TOPS/W':>15s} {'system TOPS/W':>14s} {'/floor':>6s} "
          f"{'DRAM/comp':>9s} {'TOPS/mm2':>8s}")
    for r in balanced_points(rows):
        print(f"{r['workload']:16s} {r['dataflow']} {r['rows']:>3d}x{r['cols']:<3d}"
              f"{r['bus_bits']:>4d} {r['sp_bytes'] / 1024:>7.0f} {r['acc_bytes'] / 1024:>7.0f} "
              f"{r['utilization']:>5.2f} {r['tops_per_w_onchip_low']:>7.2f}-"
              f"{r['tops_per_w_onchip_high']:<7.2f} {r['tops_per_w_system_low']:>6.2f}-"
              f"{r['tops_per_w_system_high']:<7.2f} {r['ratio_to_floor']:>6.2f} "
              f"{r['dram_ratio']:>9.2f} {r['tops_per_mm2']:>8.3f}")


def build_points(args, energy: dict) -> list[dict]:
    """Every (array, dataflow, workload, memory) point of the grid."""
    extra = {"dram_type": args.dram} if args.dram else {}
    return [{"rows": r, "cols": c, "dataflow": df, "workload": wl, **mem, **extra, **energy}
            for wl in args.workloads for df in args.dataflows for r, c in args.sizes
            for mem in memory_grid(r, c, args.buses, args.sp_lines, args.acc_lines)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", nargs="+", type=parse_size,
                    default=[parse_size(s) for s in DEFAULT_SIZES])
    ap.add_argument("--dataflows", nargs="+", default=["ws", "os"], choices=["ws", "os"])
    ap.add_argument("--workloads", nargs="+", default=DEFAULT_WORKLOADS)
    ap.add_argument("--buses", nargs="+", type=int, default=list(BUSES),
                    help="AXI widths (bits) swept; each array keeps those up to one line a beat")
    ap.add_argument("--sp-lines", nargs="+", type=int, default=list(SP_LINES))
    ap.add_argument("--acc-lines", nargs="+", type=int, default=list(ACC_LINES))
    ap.add_argument("--dram", default=None, choices=DRAM_TYPES,
                    help="DRAM type the balanced points are chosen with (default: by node); "
                         "every priced type gets its own CSV rows")
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
    points = build_points(args, energy)
    t0 = time.perf_counter()
    results = run_points(points, args.scheduler, args.workers, cache,
                         progress=not args.no_progress)
    rows = csv_rows(results)
    csv_path = args.out / "sweep.csv"
    write_csv(rows, csv_path)
    files = charts(rows, args.out)
    print(f"sweep: {len(results)} points ({len(rows)} CSV rows) in "
          f"{time.perf_counter() - t0:.1f} s -> {csv_path}")
    for f in files:
        print(f"  chart {f}")
    print_balanced(rows)
    print("best balanced array per workload (system TOPS/W, band midpoint):")
    for wl, r in sorted(best_per_workload(rows).items()):
        print(f"  {wl:16s} {r['rows']}x{r['cols']} {r['dataflow']} bus {r['bus_bits']}: "
              f"{r['tops_per_w_system_low']:.2f}-{r['tops_per_w_system_high']:.2f} TOPS/W, "
              f"utilization {r['utilization']:.2f}, {r['inferences_per_s']:.0f} inf/s")
    print("per DRAM type, the targets and the breakdown: python -m scripts.sweep_report "
          "(make sweep prints them next)")
    failed = [r for r in results if r.get("status") != "ok"]
    for r in failed:
        print(f"FAILED {r['rows']}x{r['cols']} {r['dataflow']} {r['workload']}: {r['error']}")
    return 2 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
