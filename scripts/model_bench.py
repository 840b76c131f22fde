"""Speed of the models (benchmark, not a test): the analytical mode on a whole ResNet-50
layer list on a 32x32 array (target: under one second), and the cycle-exact mode's
simulated cycles per second on a 256x256x256 GEMM on the 16x16 core.

    python scripts/model_bench.py          # or: make bench-model
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hdl.config import NPUConfig  # noqa: E402
from scripts.sweep import config_for  # noqa: E402
from sim_models.analytical import core_estimate  # noqa: E402
from sim_models.compiler import compile_gemm  # noqa: E402
from sim_models.cycle_model import CycleNPU  # noqa: E402
from sim_models.workloads import load  # noqa: E402

TARGET_S = 1.0


def main() -> int:
    cfg = config_for(32, 32, "ws")
    layers = load("resnet50")
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        cycles = sum(core_estimate(cfg, layer).cycles for layer in layers)
        best = min(best, time.perf_counter() - t0)
    ok = best < TARGET_S
    print(f"analytical: ResNet-50 ({len(layers)} layers) on 32x32 ws -> {cycles:,d} cycles "
          f"in {best * 1e3:.1f} ms (target < {TARGET_S:.0f} s: {'met' if ok else 'MISSED'})")

    cfg = NPUConfig(rows=16, cols=16, dataflow="ws", bus_bits=128)
    rng = np.random.default_rng(0)
    layer = compile_gemm(cfg, rng.integers(-128, 128, (256, 256)),
                         rng.integers(-128, 128, (256, 256)))
    t0 = time.perf_counter()
    result = CycleNPU(cfg).run(layer.program, layer.program_addr)
    wall = time.perf_counter() - t0
    print(f"exact: 256x256x256 GEMM on 16x16 ws -> {result.cycles:,d} cycles in {wall:.2f} s "
          f"({result.cycles / wall / 1e3:.0f} k simulated cycles/s)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
