"""Driving the systolic array in Amaranth's own simulator (fast unit tests, no Verilog)."""

from __future__ import annotations

import numpy as np
from amaranth.sim import Simulator

from hdl.array import SystolicArray
from hdl.config import NPUConfig

from .stimulus import Beats

__all__ = ["run_array", "simulate"]


def simulate(dut, bench) -> None:
    """Run the testbench coroutine ``bench(ctx)`` against ``dut`` with a clock."""
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


def run_array(cfg: NPUConfig, beats: Beats, rng: np.random.Generator | None = None,
              gap_probability: float = 0.0, max_cycles: int | None = None) -> dict:
    """Stream ``beats`` through a :class:`SystolicArray`; return what ``c`` produced.

    ``gap_probability`` randomly drops ``valid`` on either input to exercise flow control.
    """
    dut = SystolicArray(cfg)
    limit = max_cycles or 20 * (len(beats.a) + len(beats.b)) + 10 * (cfg.rows + cfg.cols) + 50
    result = {"c": [], "cycles": 0, "a_stalls": 0, "idle_at_end": False}

    async def testbench(ctx):
        ia = ib = 0
        cycle = 0
        while len(result["c"]) < len(beats.c):
            if cycle >= limit:
                raise AssertionError(f"timeout after {cycle} cycles: {len(result['c'])} of "
                                     f"{len(beats.c)} output beats")
            drive_a = ia < len(beats.a) and not (rng is not None and rng.random() < gap_probability)
            drive_b = ib < len(beats.b) and not (rng is not None and rng.random() < gap_probability)
            ctx.set(dut.a.valid, drive_a)
            ctx.set(dut.b.valid, drive_b)
            if drive_a:
                ctx.set(dut.a.payload, {"data": list(beats.a[ia]["data"]),
                                        "last": beats.a[ia]["last"]})
            if drive_b:
                ctx.set(dut.b.payload, {"data": list(beats.b[ib]["data"])})
            a_fire = drive_a and ctx.get(dut.a.ready)
            b_fire = drive_b and ctx.get(dut.b.ready)
            if drive_a and not a_fire:
                result["a_stalls"] += 1
            if ctx.get(dut.c.valid):
                payload = ctx.get(dut.c.payload)
                result["c"].append({"data": [int(payload.data[i]) for i in range(cfg.cols)],
                                    "last": int(payload.last)})
            await ctx.tick()
            ia += a_fire
            ib += b_fire
            cycle += 1
        ctx.set(dut.a.valid, 0)
        ctx.set(dut.b.valid, 0)
        result["cycles"] = cycle
        result["idle_at_end"] = bool(ctx.get(dut.idle))
        for _ in range(cfg.rows + cfg.cols + 2):
            if ctx.get(dut.c.valid):
                raise AssertionError("array produced more output beats than expected")
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return result
