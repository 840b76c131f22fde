"""Unit tests of :mod:`hdl.pe`: the weight- and output-stationary processing elements."""

from hdl.config import NPUConfig
from hdl.pe import OutputStationaryPE, WeightStationaryPE
from sim_models import golden

from .amaranth_sim import simulate


def test_ws_pe_banks_valid_gating_and_wrap():
    cfg = NPUConfig(rows=1, cols=1, acc_width=17)
    dut = WeightStationaryPE(cfg)

    async def bench(ctx):
        for bank, w in [(0, -128), (1, 3)]:
            ctx.set(dut.weight.data, w)
            ctx.set(dut.weight.bank, bank)
            ctx.set(dut.weight.we, 1)
            await ctx.tick()
        ctx.set(dut.weight.we, 0)
        # bank 0: psum + (-128 * -128); 2**16 - 1 + 2**14 wraps in 17 bits
        ctx.set(dut.west.data, -128)
        ctx.set(dut.west.valid, 1)
        ctx.set(dut.west.bank, 0)
        ctx.set(dut.north.psum, 2**16 - 1)
        await ctx.tick()
        assert ctx.get(dut.south.psum) == golden.wrap(2**16 - 1 + 2**14, 17)
        assert ctx.get(dut.east.data) == -128 and ctx.get(dut.east.valid) == 1
        ctx.set(dut.west.bank, 1)
        ctx.set(dut.west.data, 5)
        ctx.set(dut.north.psum, -7)
        await ctx.tick()
        assert ctx.get(dut.south.psum) == -7 + 15
        # No valid: the registers hold (no toggling on idle cycles).
        ctx.set(dut.west.valid, 0)
        ctx.set(dut.west.data, 99)
        ctx.set(dut.north.psum, 12345)
        await ctx.tick()
        assert ctx.get(dut.south.psum) == 8 and ctx.get(dut.east.data) == 5
        assert ctx.get(dut.east.valid) == 0

    simulate(dut, bench)


def test_os_pe_accumulates_finishes_and_drains():
    cfg = NPUConfig(rows=1, cols=1, dataflow="os")
    dut = OutputStationaryPE(cfg)

    async def bench(ctx):
        ctx.set(dut.west.valid, 1)
        for k, (a, b) in enumerate([(3, 4), (-128, -128), (2, -5)]):
            ctx.set(dut.west.data, a)
            ctx.set(dut.north.b, b)
            ctx.set(dut.west.last, k == 2)
            await ctx.tick()
        assert ctx.get(dut.south.result) == 12 + 16384 - 10
        # Next tile starts from zero while the result register holds the finished sum.
        ctx.set(dut.west.last, 1)
        ctx.set(dut.west.data, 1)
        ctx.set(dut.north.b, 1)
        await ctx.tick()
        assert ctx.get(dut.south.result) == 1
        ctx.set(dut.west.valid, 0)
        ctx.set(dut.west.drain, 1)
        ctx.set(dut.north.result, -42)
        await ctx.tick()
        assert ctx.get(dut.south.result) == -42 and ctx.get(dut.east.drain) == 1

    simulate(dut, bench)
