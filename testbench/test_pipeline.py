"""Unit tests of :mod:`hdl.pipeline` (delay lines, skew buffers) and of the cycle model's
delay line against them."""

import pytest
from amaranth.sim import Simulator

from hdl.pipeline import DelayLine, SkewBuffer

from .amaranth_sim import simulate
from .pairings import check, delay_pairing


def test_delay_line_of_depth_zero_is_a_wire():
    dut = DelayLine(8, 0)

    async def bench(ctx):
        for value in (7, 200):
            ctx.set(dut.i, value)
            await ctx.delay(1e-9)
            assert ctx.get(dut.o) == value

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()


@pytest.mark.parametrize("depth", [1, 5])
def test_delay_line(depth):
    dut = DelayLine(8, depth)
    seen = []

    async def bench(ctx):
        for t in range(depth + 6):
            ctx.set(dut.i, t + 1)
            seen.append(ctx.get(dut.o))
            await ctx.tick()

    simulate(dut, bench)
    assert seen == [0] * depth + list(range(1, 7))


def test_skew_buffer_delays_each_lane():
    dut = SkewBuffer(8, [0, 2, 1])
    seen = []

    async def bench(ctx):
        for t in range(6):
            for lane in range(3):
                ctx.set(dut.i[lane], 10 * lane + t)
            seen.append([ctx.get(dut.o[lane]) for lane in range(3)])
            await ctx.tick()

    simulate(dut, bench)
    assert [row[0] for row in seen] == [0, 1, 2, 3, 4, 5]
    assert [row[1] for row in seen] == [0, 0, 10, 11, 12, 13]
    assert [row[2] for row in seen] == [0, 20, 21, 22, 23, 24]


@pytest.mark.parametrize("depth", [1, 5])   # depth 0 is a wire: test_units.py
def test_delay_model_equals_delay_line(depth):
    check(delay_pairing(depth), ["o"], cycles=200)
