"""cocotb test: a whole GEMM lowered onto array passes, checked against ``golden.gemm``.

Env: ``KNPU_CONFIG``, ``KNPU_SEED``, ``KNPU_GEMM`` ("M,K,N"), ``KNPU_OPERANDS`` (an .npz
with ``a`` and ``b`` to use instead of uniform random int8), and ``KNPU_REPORT`` (a JSON file
to write the measured cycles and the simulation-time window of the GEMM into).
"""

from __future__ import annotations

import json
import os

import cocotb
import numpy as np
from cocotb.triggers import RisingEdge
from cocotb.utils import get_sim_time

from sim_models import golden

from .cocotb_array import CFG, ArrayBench
from .stimulus import assemble_gemm, gemm_tiles, make_beats


@cocotb.test()
async def gemm_matches_golden(dut):
    M, K, N = (int(x) for x in os.environ.get("KNPU_GEMM", "64,64,64").split(","))
    bench = ArrayBench(dut)
    await bench.reset()
    if os.environ.get("KNPU_OPERANDS"):
        with np.load(os.environ["KNPU_OPERANDS"]) as f:
            a, b = f["a"].astype(np.int64), f["b"].astype(np.int64)
        M, K, N = a.shape[0], a.shape[1], b.shape[1]
    else:
        a = bench.rng.integers(-128, 128, (M, K))
        b = bench.rng.integers(-128, 128, (K, N))
    start_ns = get_sim_time("ns")
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
        # From the first beat offered to the last result row: the window activity is read in.
        "window_ns": [start_ns, get_sim_time("ns")],
    }
    if os.environ.get("KNPU_REPORT"):
        with open(os.environ["KNPU_REPORT"], "w") as f:
            json.dump(report, f, indent=1)
    dut._log.info("GEMM %dx%dx%d: %s", M, K, N, report)
    assert got is not None, f"timeout: {len(bench.c.beats)} of {len(beats.c)} result rows"
    bad = np.argwhere(got != want)
    assert match, f"{len(bad)} of {M * N} results differ, first at {tuple(bad[0])}: " \
                  f"got {got[tuple(bad[0])]}, expected {want[tuple(bad[0])]}"
