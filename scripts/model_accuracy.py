"""The analytical mode against the cycle-exact model, layer by layer, at the sweep's sizes
and memories (a measurement, not a test: ``testbench/test_cycle_model.py`` checks a sample).

    python scripts/model_accuracy.py                       # default configurations
    python scripts/model_accuracy.py --max-cycles 2e6 --workloads resnet50
    python scripts/model_accuracy.py --max-cycles 0        # every layer (hours)

Every layer of every chosen workload whose analytical estimate is at most ``--max-cycles``
runs on the exact model (about 50 k simulated cycles/s); the others are counted as skipped.
Prints per layer the exact and analytical cycles and the error, and per configuration and
overall the worst and mean absolute error; writes ``build/model_accuracy.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from hdl.config import NPUConfig  # noqa: E402
from sim_models import workloads  # noqa: E402
from sim_models.analytical import core_estimate  # noqa: E402
from sim_models.compiler import Requant, compile_conv2d, compile_gemm  # noqa: E402
from sim_models.cycle_model import CycleNPU  # noqa: E402
from testbench import BUILD  # noqa: E402

# Balanced memories the sweep chooses (bus, scratchpad lines, accumulator lines) at its sizes.
CONFIGS = [
    NPUConfig(rows=16, cols=16, dataflow="ws", bus_bits=128, sp_lines=4096, acc_lines=1024),
    NPUConfig(rows=16, cols=16, dataflow="os", bus_bits=128, sp_lines=4096, acc_lines=1024),
    NPUConfig(rows=32, cols=32, dataflow="ws", bus_bits=256, sp_lines=4096, acc_lines=1024),
    NPUConfig(rows=8, cols=8, dataflow="ws", bus_bits=64, sp_lines=1024, acc_lines=256),
]


def compile_int8(cfg: NPUConfig, layer, rng):
    """The layer with random int8 tensors and requantized int8 outputs, as the sweep's
    points store them (``core_estimate(..., out_bytes=1)``)."""
    i8 = lambda *shape: rng.integers(-128, 128, shape)  # noqa: E731
    rq = Requant(scale=0.001)
    if layer.kind == "gemm":
        return compile_gemm(cfg, i8(layer.M, layer.K), i8(layer.K, layer.N), rq, name=layer.name)
    w = i8(layer.kh, layer.kw, layer.c) if layer.depthwise else \
        i8(layer.kh, layer.kw, layer.c, layer.n)
    return compile_conv2d(cfg, i8(layer.h, layer.w, layer.c), w, layer.stride, layer.pad,
                          depthwise=layer.depthwise, requant=rq, name=layer.name)


def measure(cfg: NPUConfig, layer, rng) -> dict:
    """Exact and analytical cycles of one layer on one core (int8 outputs)."""
    compiled = compile_int8(cfg, layer, rng)
    t0 = time.perf_counter()
    exact = CycleNPU(cfg).run(compiled.program, compiled.program_addr)
    est = core_estimate(cfg, layer)
    if not exact.done:
        raise RuntimeError(f"{layer.name} on {cfg.name}: exact model did not finish "
                           f"(error {exact.error})")
    return {"layer": layer.name, "exact": exact.cycles, "analytical": est.cycles,
            "error": est.cycles / exact.cycles - 1, "wall_s": time.perf_counter() - t0}


def run(configs, names, max_cycles: float, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    out = {}
    for cfg in configs:
        key = f"{cfg.dataflow}-{cfg.rows}x{cfg.cols}-b{cfg.bus_bits}-sp{cfg.sp_lines}-acc{cfg.acc_lines}"
        rows, skipped = [], 0
        for name in names:
            if cfg.dataflow == "os" and any(l.depthwise for l in workloads.load(name)):
                layers = [l for l in workloads.load(name) if not l.depthwise]
            else:
                layers = workloads.load(name)
            for layer in layers:
                if max_cycles and core_estimate(cfg, layer).cycles > max_cycles:
                    skipped += 1
                    continue
                r = measure(cfg, layer, rng)
                r["workload"] = name
                rows.append(r)
                print(f"{key} {name:16s} {layer.name:24s} exact {r['exact']:>9d} "
                      f"analytical {r['analytical']:>9d} {100 * r['error']:+6.1f}%", flush=True)
        errs = [abs(r["error"]) for r in rows]
        out[key] = {"layers": rows, "skipped": skipped,
                    "worst": max(errs) if errs else None,
                    "mean": float(np.mean(errs)) if errs else None}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workloads", nargs="+", default=list(workloads.WORKLOADS))
    ap.add_argument("--max-cycles", type=float, default=3e5,
                    help="skip layers the analytical mode puts above this (0: none skipped)")
    ap.add_argument("--out", type=Path, default=BUILD / "model_accuracy.json")
    args = ap.parse_args(argv)
    result = run(CONFIGS, args.workloads, args.max_cycles)
    every = [abs(r["error"]) for v in result.values() for r in v["layers"]]
    for key, v in result.items():
        if v["worst"] is not None:
            print(f"{key}: {len(v['layers'])} layers, {v['skipped']} skipped; worst "
                  f"{100 * v['worst']:.1f}%, mean {100 * v['mean']:.1f}%")
    if every:
        print(f"overall: {len(every)} layers, worst {100 * max(every):.1f}%, "
              f"mean {100 * float(np.mean(every)):.1f}%")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
