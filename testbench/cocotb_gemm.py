"""cocotb test: a whole GEMM lowered onto array passes, checked against ``golden.gemm``.

Env: ``KNPU_CONFIG``, ``KNPU_SEED``, ``KNPU_GEMM`` ("M,K,N"), and ``KNPU_REPORT`` (a JSON
file to write the measured cycles into).
"""

from __future__ import annotations

import json
import os

import cocotb
import numpy as np
from cocotb.triggers import RisingEdge

from sim_models import golden

from .cocotb_array import CFG, ArrayBench
from .stimulus import assemble_gemm, gemm_tiles, make_beats


@cocotb.test()
async def gemm_matches_golden(dut):
    M, K, N = (int(x) for x in os.environ.get("KNPU_GEMM", "64,64,64").split(","))
    bench = ArrayBench(dut)
    await bench.reset()
    a = bench.rng.integers(-128, 128, (M, K))
    b = bench.rng.integers(-128, 128, (K, N))
    passes = gemm_tiles(CFG, a, b)
    beats = make_beats(CFG, passes)
    bench.a.send(beats.a)
    bench.b.send(beats.b)
    for _ in range(20 * (len(beats.a) + len(beats.b)) + 100):
        await RisingEdge(dut.clk)
        if len(bench.c.beats) >= len(beats.c):
            break
    got = assemble_gemm(CFG, M, K, N, bench.c.beats) if len(bench.c.beats) >= len(beats.c) \
        else None
    want = golden.gemm(a, b, CFG.acc_width)
    match = got is not None and np.array_equal(got, want)
    first = min(x for x in (bench.a.first_fire, bench.b.first_fire) if x is not None)
    cycles = bench.c.cycles[-1] - first + 1 if bench.c.cycles else None
    report = {
        "rows": CFG.rows, "cols": CFG.cols, "dataflow": CFG.dataflow, "M": M, "K": K, "N": N,
        "seed": bench.seed, "cycles": cycles, "macs": M * K * N, "passes": len(passes),
        "macs_per_cycle": (M * K * N / cycles) if cycles else None,
        "utilization": (M * K * N / (CFG.rows * CFG.cols * cycles)) if cycles else None,
        "a_stalls": bench.a.stalls, "matches_golden": bool(match),
    }
    if os.environ.get("KNPU_REPORT"):
        with open(os.environ["KNPU_REPORT"], "w") as f:
            json.dump(report, f, indent=1)
    dut._log.info("GEMM %dx%dx%d: %s", M, K, N, report)
    assert got is not None, f"timeout: {len(bench.c.beats)} of {len(beats.c)} result rows"
    bad = np.argwhere(got != want)
    assert match, f"{len(bad)} of {M * N} results differ, first at {tuple(bad[0])}: " \
                  f"got {got[tuple(bad[0])]}, expected {want[tuple(bad[0])]}"
