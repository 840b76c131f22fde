"""SCALE-Sim side by side: the same layers and array in SCALE-Sim 3.0.0 and in our
SCALE-Sim-compatible analytical mode, per layer, with the wall time each took.

    python scripts/scalesim_compare.py --workload resnet50 --rows 32 --cols 32 --dataflow ws

SCALE-Sim 3.0.0 crashes in CALC mode with NumPy >= 2.4, so it runs from its own virtual
environment (``build/scalesim-venv``, created on first use with an older NumPy) rather than
being patched.
"""

from __future__ import annotations

import argparse
import csv
import json
import fcntl
import subprocess
import sys
import time
from pathlib import Path

from sim_models.analytical import SCALESIM_DATAFLOWS, scalesim_layer_cycles
from sim_models.workloads import WORKLOADS, Layer, build, load, to_scalesim_csv
from testbench import BUILD, fresh_report, run_cocotb

VENV = BUILD / "scalesim-venv"
SCALESIM = "scalesim==3.0.0"

CONFIG = """[general]
run_name = {name}

[architecture_presets]
ArrayHeight: {rows}
ArrayWidth: {cols}
IfmapSramSzkB: 4096
FilterSramSzkB: 4096
OfmapSramSzkB: 4096
IfmapOffset: 0
FilterOffset: 10000000
OfmapOffset: 20000000
Bandwidth: 10
Dataflow: {dataflow}
ReadRequestBuffer: 32
WriteRequestBuffer: 32

[layout]
IfmapCustomLayout: False
IfmapSRAMBankBandwidth: 10
IfmapSRAMBankNum: 10
IfmapSRAMBankPort: 2
FilterCustomLayout: False
FilterSRAMBankBandwidth: 10
FilterSRAMBankNum: 10
FilterSRAMBankPort: 2

[sparsity]
SparsitySupport: false
SparseRep: ellpack_block
OptimizedMapping: false
BlockSize: 8
RandomNumberGeneratorSeed: 40

[run_presets]
InterfaceBandwidth: CALC
UseRamulatorTrace: False
"""


def scalesim_python() -> Path:
    """The SCALE-Sim venv's interpreter, creating the venv on first use (under a lock, so
    parallel test workers build it once)."""
    python = VENV / "bin" / "python"
    stamp = VENV / ".knpu-installed"
    BUILD.mkdir(parents=True, exist_ok=True)
    with open(BUILD / "scalesim-venv.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not stamp.exists():
            print(f"creating {VENV} with {SCALESIM} and numpy<2.4 (once) ...", flush=True)
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
            subprocess.run([str(python), "-m", "pip", "install", "-q", SCALESIM, "numpy<2.4"],
                           check=True)
            stamp.write_text(SCALESIM)
    return python


def run_scalesim(layers: list[Layer], rows: int, cols: int, dataflow: str, workdir: Path,
                 name: str) -> tuple[list[int], float]:
    """SCALE-Sim's per-(split-)layer "Total Cycles" for one kind of layers, and its wall time."""
    workdir.mkdir(parents=True, exist_ok=True)
    topo = workdir / f"{name}.csv"
    topo.write_text(to_scalesim_csv(layers))
    cfg = workdir / f"{name}.cfg"
    cfg.write_text(CONFIG.format(name=name, rows=rows, cols=cols, dataflow=dataflow))
    kind = "gemm" if layers[0].kind == "gemm" else "conv"
    out = workdir / "out"
    t0 = time.perf_counter()
    proc = subprocess.run([str(scalesim_python()), "-m", "scalesim.scale", "-c", str(cfg),
                           "-t", str(topo), "-l", str(topo), "-p", str(out), "-i", kind,
                           "-s", "N"], capture_output=True, text=True, cwd=workdir)
    wall = time.perf_counter() - t0
    report = out / name / "COMPUTE_REPORT.csv"
    if proc.returncode != 0 or not report.exists():
        raise RuntimeError(f"SCALE-Sim failed ({proc.returncode}):\n{proc.stdout[-3000:]}"
                           f"\n{proc.stderr[-3000:]}")
    with open(report) as f:
        rows_ = list(csv.reader(f))
    header = [h.strip() for h in rows_[0]]
    col = header.index("Total Cycles")
    return [int(r[col]) for r in rows_[1:] if r and r[0].strip()], wall


def compare(layers: list[Layer], rows: int, cols: int, dataflow: str, workdir: Path) -> dict:
    """Run both; returns per-layer records and the wall times."""
    records, scalesim_wall, ours_wall = [], 0.0, 0.0
    for kind in ("conv", "gemm"):
        group = [l for l in layers if l.kind == kind]
        if not group:
            continue
        theirs, wall = run_scalesim(group, rows, cols, dataflow, workdir, f"{kind}_{dataflow}")
        scalesim_wall += wall
        t0 = time.perf_counter()
        ours = [scalesim_layer_cycles(l, rows, cols, dataflow) for l in group]
        ours_wall += time.perf_counter() - t0
        i = 0
        for layer, split in zip(group, ours):
            theirs_total = sum(theirs[i:i + len(split)])
            i += len(split)
            records.append({"layer": layer.name, "scalesim": theirs_total, "ours": sum(split)})
        if i != len(theirs):
            raise RuntimeError(f"SCALE-Sim reported {len(theirs)} layers, expected {i}")
    return {"records": records, "scalesim_wall_s": scalesim_wall, "ours_wall_s": ours_wall}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workload", default="resnet50",
                   help=f"one of {', '.join(WORKLOADS)} or a table CSV")
    p.add_argument("--rows", type=int, default=32)
    p.add_argument("--cols", type=int, default=32)
    p.add_argument("--dataflow", choices=SCALESIM_DATAFLOWS, default="ws")
    p.add_argument("--first", type=int, default=0, help="only the first N layers")
    p.add_argument("--rtl-max-macs", type=float, default=0,
                   help="also simulate layers of at most this many MACs on the RTL "
                        "(Verilator) and the cycle-exact model (ws/os only)")
    args = p.parse_args(argv)
    layers = build(args.workload) if args.workload in WORKLOADS else load(args.workload)
    if args.first:
        layers = layers[:args.first]
    workdir = BUILD / "scalesim" / f"{Path(args.workload).stem}_{args.rows}x{args.cols}"
    result = compare(layers, args.rows, args.cols, args.dataflow, workdir)
    core = knpu_columns(layers, args, result) if args.dataflow in ("ws", "os") else {}
    head = (f"{'layer':<28} {'SCALE-Sim':>12} {'compat':>12} {'ratio':>7} "
            f"{'knpu model':>11} {'ratio':>7} {'knpu exact':>11} {'knpu RTL':>10}")
    print(head)
    print("-" * len(head))
    for r in result["records"]:
        c = core.get(r["layer"], {})
        est = c.get("analytical")
        print(f"{r['layer']:<28} {r['scalesim']:>12} {r['ours']:>12} "
              f"{r['ours'] / r['scalesim']:>7.4f} "
              f"{est if est else '-':>11} {est / r['scalesim'] if est else 0:>7.3f} "
              f"{c.get('exact', '-'):>11} {c.get('rtl', '-'):>10}")
    total_s = sum(r["scalesim"] for r in result["records"])
    total_o = sum(r["ours"] for r in result["records"])
    exact = all(r["scalesim"] == r["ours"] for r in result["records"])
    print(f"{'total':<28} {total_s:>12} {total_o:>12} {total_o / total_s:>7.4f}")
    print(f"exact agreement: {exact}; wall time SCALE-Sim {result['scalesim_wall_s']:.2f} s, "
          f"ours {result['ours_wall_s'] * 1e3:.3f} ms "
          f"({result['scalesim_wall_s'] / max(result['ours_wall_s'], 1e-9):.0f}x faster)")
    if core:
        print(f"knpu core model (analytical, {args.rows}x{args.cols} {args.dataflow}, "
              f"bus 128 b): {sum(c['analytical'] for c in core.values())} cycles in "
              f"{result['knpu_wall_s'] * 1e3:.1f} ms")
        sims = [c for c in core.values() if "rtl" in c]
        if sims:
            print(f"RTL (Verilator) on {len(sims)} layers took {result['rtl_wall_s']:.1f} s; "
                  f"exact model == RTL on all: {all(c['rtl'] == c['exact'] for c in sims)}")
    return 0 if exact else 1


def knpu_columns(layers, args, result) -> dict:
    """Our core on the same layers: the analytical mode for all; for small layers, the
    cycle-exact model and the RTL itself (random int8 tensors, seed 0)."""
    import pickle

    import numpy as np

    from scripts.sweep import config_for
    from sim_models.analytical import core_estimate
    from sim_models.compiler import compile_random
    from sim_models.cycle_model import CycleNPU

    cfg = config_for(args.rows, args.cols, args.dataflow)
    out = {}
    t0 = time.perf_counter()
    for layer in layers:
        out[layer.name] = {"analytical": core_estimate(cfg, layer).cycles}
    result["knpu_wall_s"] = time.perf_counter() - t0
    small = [l for l in layers if args.rtl_max_macs and l.macs <= args.rtl_max_macs and
             not (l.depthwise and args.dataflow == "os")]
    if not small:
        return out
    rng = np.random.default_rng(0)
    compiled = [compile_random(cfg, layer, rng) for layer in small]
    model = CycleNPU(cfg)
    for c in compiled:
        out[c.name]["exact"] = model.run(c.program, c.program_addr, 0, 1 << 20).cycles
    blob = BUILD / "scalesim" / "rtl_layers.pkl"
    blob.write_bytes(pickle.dumps(compiled))
    report = fresh_report("scalesim_rtl.json")
    t0 = time.perf_counter()
    tests, failed = run_cocotb("verilator", cfg, "testbench.cocotb_layers", core=True, seed=0,
                               extra_env={"KNPU_LAYERS": str(blob), "KNPU_REPORT": str(report)})
    result["rtl_wall_s"] = time.perf_counter() - t0
    if failed:
        raise RuntimeError("the RTL run failed: see the simulator log above")
    for rec in json.loads(report.read_text()):
        out[rec["layer"]]["rtl"] = rec["cycles"]
    return out


if __name__ == "__main__":
    sys.exit(main())
