"""Each cycle-model unit against its HDL component, cycle by cycle, in Amaranth's simulator.

As amaranth's own ``tests/test_lib_fifo.py`` checks every FIFO against a naive model: the
same random stimulus goes to the component's inputs and to the model; every cycle the
component's outputs (settled) must equal the model's, then both are clocked.  An output
that is only meaningful under a condition (an address while its enable is low) is compared
only then: both sides report it as ``None`` otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from amaranth.sim import Simulator

__all__ = ["Pairing", "check_equivalent", "when"]


def when(cond, value):
    """``value`` if ``cond`` else ``None``: an output compared only while it is valid."""
    return value if cond else None


@dataclass
class Pairing:
    """How one HDL component and its model meet.

    ``stimulus(rng, cycle) -> dict`` draws the inputs of a cycle; ``drive(ctx, s)`` puts them
    on the component; ``hdl(ctx, s)`` and ``model(s)`` read the outputs of the cycle (same
    keys, comparable values); ``clock(s)`` advances the model."""
    name: str
    dut: object
    stimulus: Callable
    drive: Callable
    hdl: Callable
    model: Callable
    clock: Callable


def check_equivalent(p: Pairing, cycles: int, seed: int) -> dict:
    """Run ``cycles`` random cycles; raise naming the unit, the cycle and every output that
    differs (HDL, model).  Returns how often each output was compared while not ``None``,
    so a test can require that its stimulus reached the interesting states."""
    rng = np.random.default_rng(seed)
    seen: dict = {}

    async def bench(ctx):
        for cycle in range(cycles):
            s = p.stimulus(rng, cycle)
            p.drive(ctx, s)
            got, want = p.hdl(ctx, s), p.model(s)
            diff = {k: (got[k], want.get(k)) for k in got if got[k] != want.get(k)}
            if diff:
                raise AssertionError(f"{p.name}: cycle {cycle} (seed {seed}): HDL != model "
                                     f"(hdl, model): {diff}; inputs {s}")
            for k, v in got.items():
                if v not in (None, False, 0):
                    seen[k] = seen.get(k, 0) + 1
            p.clock(s)
            await ctx.tick()

    sim = Simulator(p.dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return seen
