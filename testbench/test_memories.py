"""Unit tests of :mod:`hdl.memories` (banked scratchpad and accumulator), and the cycle
model's bank arbitration against them cycle by cycle."""

import pytest

from hdl.config import NPUConfig

from .amaranth_sim import simulate
from .pairings import IDS, SMALL, check, memory_pairing


def test_scratchpad_banks_arbitrate_without_losing_reads():
    """Two readers in one bank take turns; in different banks both are served at once."""
    from hdl.memories import Scratchpad

    cfg = NPUConfig(rows=2, cols=2, sp_lines=32, acc_lines=16, sp_banks=2)
    dut = Scratchpad(cfg)
    got = {"a": [], "b": []}

    async def bench(ctx):
        for addr in range(32):                       # fill: line i holds 100 + i
            ctx.set(dut.w_load.addr, addr)
            ctx.set(dut.w_load.data, 100 + addr)
            ctx.set(dut.w_load.en, 1)
            assert ctx.get(dut.w_load.ready)
            await ctx.tick()
        ctx.set(dut.w_load.en, 0)
        plan = {"a": [0, 1, 2, 3], "b": [5, 6, 20, 21]}  # b: bank 0 twice, then bank 1
        served = {"a": 0, "b": 0}
        both_at_once = 0
        for _ in range(20):
            ports = {"a": dut.r_a, "b": dut.r_b}
            for name, port in ports.items():
                busy = served[name] < len(plan[name])
                ctx.set(port.en, busy)
                if busy:
                    ctx.set(port.addr, plan[name][served[name]])
            granted = {n: ctx.get(p.en) and ctx.get(p.ready) for n, p in ports.items()}
            both_at_once += granted["a"] and granted["b"]
            await ctx.tick()
            for name, port in ports.items():           # data arrives one cycle later
                if granted[name]:
                    got[name].append(ctx.get(port.data))
                served[name] += bool(granted[name])
        assert both_at_once >= 2                     # the bank-1 reads overlap port a's

    simulate(dut, bench)
    assert got["a"] == [100, 101, 102, 103]
    assert got["b"] == [105, 106, 120, 121]


@pytest.mark.parametrize("cfg", SMALL, ids=IDS)
@pytest.mark.parametrize("which", ["scratchpad", "accumulator"])
def test_bank_arbiter_model_equals_memories(cfg, which):
    check(memory_pairing(cfg, which), cycles=400)
