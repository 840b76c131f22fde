"""Unit tests of the small blocks and of the array itself in Amaranth's simulator."""

import numpy as np
import pytest
from amaranth.hdl import Fragment
from amaranth.sim import Simulator

from hdl.array import SystolicArray
from hdl.config import NPUConfig
from hdl.pe import OutputStationaryPE, WeightStationaryPE
from hdl.pipeline import DelayLine, SkewBuffer
from sim_models import golden

from .amaranth_sim import run_array
from .stimulus import make_beats, random_tiles, special_tiles, stimulus_seed

SEED = stimulus_seed(20261124)


def simulate(dut, bench):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


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


ARRAYS = [(r, c, df) for (r, c) in [(1, 1), (1, 4), (4, 1), (2, 3), (3, 3)] for df in ("ws", "os")]


@pytest.mark.parametrize("rows,cols,dataflow", ARRAYS)
def test_array_random_tiles_with_pauses(rows, cols, dataflow):
    cfg = NPUConfig(rows=rows, cols=cols, dataflow=dataflow)
    rng = np.random.default_rng(SEED + rows * 100 + cols)
    beats = make_beats(cfg, random_tiles(cfg, rng, 6))
    result = run_array(cfg, beats, rng=rng, gap_probability=0.25)
    want = [{"data": [int(x) for x in b["data"]], "last": b["last"]} for b in beats.c]
    assert result["c"] == want
    assert result["idle_at_end"]


@pytest.mark.parametrize("dataflow", ["ws", "os"])
def test_array_back_to_back_and_extremes(dataflow):
    cfg = NPUConfig(rows=3, cols=4, dataflow=dataflow, acc_width=18)
    rng = np.random.default_rng(SEED)
    tiles = random_tiles(cfg, rng, 5, min_len=3, max_len=6)
    tiles += list(special_tiles(cfg, 40).values())
    beats = make_beats(cfg, tiles)
    result = run_array(cfg, beats)
    assert [b["data"] for b in result["c"]] == [[int(x) for x in b["data"]] for b in beats.c]
    # Only the first WS tile waits for its weights; nothing else stalls the a stream.
    assert result["a_stalls"] == (cfg.rows if dataflow == "ws" else 0)


@pytest.mark.parametrize("dataflow", ["ws", "os"])
def test_64x64_elaborates(dataflow):
    cfg = NPUConfig(rows=64, cols=64, dataflow=dataflow)
    Fragment.get(SystolicArray(cfg), None)


@pytest.mark.parametrize("dataflow", ["ws", "os"])
def test_verilog_has_no_comb_process_that_icarus_would_leave_at_x(dataflow):
    """Icarus does not run ``always @*`` blocks at time zero.  Yosys emits one per
    combinational process; those that read ``rst`` are kicked by the reset, any other would
    hold X until its inputs happen to change (a real bug found this way: a weight mux read
    X when a PE's first weight was 0).  Combinational logic must stay in expressions."""
    import re

    from hdl.verilog import array_verilog, core_verilog

    cfg = NPUConfig(rows=2, cols=3, dataflow=dataflow, sp_lines=64, acc_lines=16)
    text = array_verilog(cfg) + core_verilog(cfg)
    blocks = re.findall(r"always @\* begin(.*?)\n  end\n", text, re.S)
    assert blocks, "expected Yosys' next-state processes"
    assert [b for b in blocks if "rst" not in b] == []


def test_token_counter_counts_and_saturates():
    from hdl.units import TokenCounter

    dut = TokenCounter(limit=3)

    async def bench(ctx):
        assert ctx.get(dut.avail) == 0
        ctx.set(dut.pop, 1)                  # popping nothing takes nothing
        await ctx.tick()
        assert ctx.get(dut.count) == 0
        ctx.set(dut.pop, 0)
        ctx.set(dut.push, 2)
        await ctx.tick()
        await ctx.tick()
        assert ctx.get(dut.count) == 3       # 4 pushed, saturated at the limit
        ctx.set(dut.push, 1)
        ctx.set(dut.pop, 1)
        await ctx.tick()
        assert ctx.get(dut.count) == 3
        ctx.set(dut.push, 0)
        await ctx.tick()
        assert ctx.get(dut.count) == 2 and ctx.get(dut.avail) == 1

    simulate(dut, bench)


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
