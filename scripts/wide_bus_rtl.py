"""Whole-core programs at a 512-bit bus on the RTL (the C++ Verilator harness), checked
against the functional and cycle models (``make rtl-bus512``).

    python scripts/wide_bus_rtl.py [--configs ws os] [--pauses 0 0.3] [--seed 1]

The sweep's balanced 64x64 points choose a 512-bit bus; the DMA engines alone are checked at
512 bits by ``testbench/test_dma.py``.  Here the whole core runs at 512 bits: every
regression layer (odd GEMMs, per-channel and onnxruntime requantization, accumulate into
bias, convolutions with packed taps and on-chip im2col, depthwise) and every ``make sim``
layer, on a weight-stationary 4x64 and an output-stationary 64x4 core (64-byte scratchpad
lines: one line per beat).  Per layer: every counter equals the cycle model's (state
carried across layers on both, DRAM pauses replayed from the seed), DRAM equals the
functional model's byte for byte, and the output equals the golden model's.  Each core is
one new Verilator build (about 1-2 minutes each on 2 cores; cached in ``build/harness``).
Exit status 1 when anything differs.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from hdl.config import NPUConfig
from hdl.isa import ErrorCode
from sim_models.cycle_model import CycleNPU
from testbench import backends
from testbench.core_layers import demo_layers, regression_layers
from testbench.harness import Harness, pauses

#: The cores run: a 64-byte scratchpad line (max(rows, cols) = 64) fills a 512-bit beat.
CONFIGS = {
    "ws": NPUConfig(rows=4, cols=64, dataflow="ws", bus_bits=512, sp_lines=1024,
                    acc_lines=128),
    "os": NPUConfig(rows=64, cols=4, dataflow="os", bus_bits=512, sp_lines=1024,
                    acc_lines=256),
}
MEM_SIZE = 1 << 22


def differences(layer, got, predicted, functional) -> list[str]:
    """What differs between the RTL's run of ``layer`` and the models' (empty: all equal).

    Parameters
    ----------
    layer : compiled layer (``output``, ``expected``)
    got : NPUResult
        The harness (RTL) run.
    predicted : NPUResult
        The cycle model's run of the same program (same pauses).
    functional : NPUResult
        The functional model's run (defines DRAM and the error).
    """
    out = []
    if not got.done or got.error != ErrorCode.NONE:
        out.append(f"RTL ended {got.error.name} at {got.err_pc}")
    diff = {k: (predicted.counters[k], got.counters[k]) for k in got.counters
            if predicted.counters[k] != got.counters[k]}
    if diff:
        out.append(f"counters (model, RTL): {diff}")
    if (predicted.error, predicted.err_pc) != (got.error, got.err_pc):
        out.append(f"error: model {predicted.error.name}@{predicted.err_pc}")
    if got.dram != functional.dram:
        out.append("DRAM differs from the functional model")
    if got.done and not np.array_equal(layer.output(got.dram), layer.expected):
        out.append("output differs from the golden model")
    return out


def run_config(cfg: NPUConfig, seed: int, pause: float) -> bool:
    """Every regression and demo layer on ``cfg``; prints one line per layer."""
    harness = Harness(cfg)
    if harness.build_s:
        print(f"  built {cfg.core_name} in {harness.build_s:.0f} s")
    model = CycleNPU(cfg)
    ok = True
    for layer in regression_layers(cfg, seed) + demo_layers(cfg, seed):
        mem = bytearray(MEM_SIZE)
        mem[:len(layer.dram)] = layer.dram
        t0 = time.perf_counter()
        got = harness.run(mem, layer.program_addr, len(layer.program), pause_seed=seed,
                          pause_probability=pause)
        wall = time.perf_counter() - t0
        if pause:
            pauses.replay(model.mem, seed, pause, got.meta["pause_first"], got.cycles)
        predicted = model.run(layer.program, layer.program_addr, 0, MEM_SIZE)
        functional = backends.run(cfg, mem, layer.program_addr, program=layer.program,
                                  backend="functional")
        bad = differences(layer, got, predicted, functional)
        ok &= not bad
        c = got.counters
        print(f"  {layer.name:<36} {c['cycles']:>8} {c['dma_bytes_read']:>9} "
              f"{c['dma_bytes_written']:>8} {wall:>7.2f}  "
              + ("equal: counters, DRAM, golden" if not bad else "DIFFERS: " + "; ".join(bad)))
    return ok


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    ap.add_argument("--pauses", nargs="+", type=float, default=[0.0, 0.3],
                    help="DRAM pause probabilities to run each core with")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    ok = True
    for name in args.configs:
        cfg = CONFIGS[name]
        for pause in args.pauses:
            print(f"{cfg.core_name} (line {cfg.sp_width} B, bus {cfg.bus_bytes} B), "
                  f"seed {args.seed}, pauses {pause}")
            print(f"  {'layer':<36} {'cycles':>8} {'DMA rd B':>9} {'DMA wr B':>8} {'wall s':>7}")
            ok &= run_config(cfg, args.seed, pause)
    print("all equal" if ok else "DIFFERENCES FOUND")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
