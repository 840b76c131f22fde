"""cocotb benchmark: one GEMM on the core, every cycle from START to done counted.

Env: ``KNPU_CONFIG``, ``KNPU_SEED``, ``KNPU_GEMM`` ("M,K,N"), ``KNPU_REPORT`` (JSON out).
"""

from __future__ import annotations

import json
import os
import time

import cocotb
import numpy as np

from sim_models.compiler import Requant, compile_gemm
from sim_models.cycle_model import CycleNPU

from .core_bench import CoreBench
from .stimulus import env_config, stimulus_seed

CFG = env_config()


@cocotb.test()
async def gemm_benchmark(dut):
    M, K, N = (int(x) for x in os.environ["KNPU_GEMM"].split(","))
    seed = stimulus_seed()
    rng = np.random.default_rng(seed)
    layer = compile_gemm(CFG, rng.integers(-128, 128, (M, K)), rng.integers(-128, 128, (K, N)),
                         requant=Requant(scale=1.0 / (16 * K)), name=f"gemm_{M}x{K}x{N}")
    mem = 1 << max(20, (len(layer.dram) - 1).bit_length())
    bench = CoreBench(dut, CFG, mem)
    await bench.reset()
    t0, c0 = time.monotonic(), time.process_time()
    status = await bench.run(layer.program_addr, len(layer.program), layer.dram,
                             timeout_cycles=50 * layer.macs // (CFG.rows * CFG.cols) + 100_000)
    wall, cpu = time.monotonic() - t0, time.process_time() - c0
    out = layer.output(bench.read_dram(0, len(layer.dram)))
    c = status["counters"]
    t1 = time.monotonic()
    predicted = CycleNPU(CFG).run(layer.program, layer.program_addr, 0, mem)
    model_wall = time.monotonic() - t1
    report = {
        "rows": CFG.rows, "cols": CFG.cols, "dataflow": CFG.dataflow, "bus_bits": CFG.bus_bits,
        "M": M, "K": K, "N": N, "cycles": c["cycles"], "macs": layer.macs,
        "utilization": layer.macs / (CFG.rows * CFG.cols * c["cycles"]),
        "matches_golden": bool(status["done"] and np.array_equal(out, layer.expected)),
        "instructions": len(layer.program), "seed": seed, "sim_wall_s": round(wall, 2),
        "sim_cpu_s": round(cpu, 2),
        "model_cycles": predicted.cycles, "model_wall_s": round(model_wall, 2),
        "model_counters_equal": predicted.counters == c,
        "counters": c, "schedule": {k: v for k, v in layer.meta.items()
                                    if isinstance(v, (int, bool, str))},
    }
    with open(os.environ["KNPU_REPORT"], "w") as f:
        json.dump(report, f, indent=1)
    dut._log.info("%s", report)
    assert report["matches_golden"], f"results differ from the golden model: {status}"
    assert report["model_counters_equal"], f"cycle model {predicted.counters} != RTL {c}"
