"""cocotb tests of the generated systolic-array Verilog against the NumPy golden model.

Run through pytest (``testbench/test_array_rtl.py``), which passes the configuration in
``KNPU_CONFIG`` and the stimulus seed in ``KNPU_SEED``.
"""

from __future__ import annotations

import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge

from hdl.layout import a_payload, b_payload, c_payload

from .stimulus import (ArrayTile, env_config, make_beats, random_tiles, special_tiles,
                       stimulus_seed)
from .streams import StreamMonitor, StreamSource

CFG = env_config()


class ArrayBench:
    """Clock, reset, a source per input stream, a monitor on ``c``, and the scoreboard."""

    def __init__(self, dut, seed_offset: int = 0, pause_probability: float = 0.0):
        self.dut, self.cfg = dut, CFG
        self.seed = stimulus_seed() + seed_offset
        dut._log.info("config %s, seed %d (replay with KNPU_SEED=%d)",
                      CFG.to_json(), self.seed, self.seed - seed_offset)
        self.rng = np.random.default_rng(self.seed)
        pauses = random.Random(self.seed)
        cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
        self.a = StreamSource(dut, "a", a_payload(CFG), dut.clk, pauses, pause_probability)
        self.b = StreamSource(dut, "b", b_payload(CFG), dut.clk, pauses, pause_probability)
        self.c = StreamMonitor(dut, "c", c_payload(CFG), dut.clk)

    async def reset(self):
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, 3)
        self.dut.rst.value = 0
        await RisingEdge(self.dut.clk)

    async def run(self, tiles: list[ArrayTile], label: str):
        """Stream ``tiles`` and check every result row."""
        beats = make_beats(self.cfg, tiles)
        self.a.send(beats.a)
        self.b.send(beats.b)
        return await self.expect(beats, label)

    async def expect(self, beats, label: str):
        """Wait for the rows ``beats`` should produce (counted from now), compare bit for bit."""
        start = len(self.c.beats)
        limit = 50 * (len(beats.a) + len(beats.b)) + 20 * (self.cfg.rows + self.cfg.cols) + 100
        for _ in range(limit):
            await RisingEdge(self.dut.clk)
            if len(self.c.beats) - start >= len(beats.c):
                break
        got = self.c.beats[start:]
        assert len(got) >= len(beats.c), (
            f"{label}: timeout, {len(got)} of {len(beats.c)} result rows after {limit} cycles")
        for i, (want, have) in enumerate(zip(beats.c, got)):
            want_data = [int(x) for x in want["data"]]
            assert have["data"] == want_data and have["last"] == want["last"], (
                f"{label}: result row {i} differs\n  expected {want_data} last={want['last']}\n"
                f"  got      {have['data']} last={have['last']}")
        await ClockCycles(self.dut.clk, self.cfg.rows + self.cfg.cols + 2)
        assert len(self.c.beats) - start == len(beats.c), f"{label}: extra result rows"
        assert int(self.dut.idle.value) == 1, f"{label}: array not idle after all results"
        self.dut._log.info("%s: %d result rows match the golden model (%d MACs)",
                           label, len(beats.c), beats.macs)
        return beats


@cocotb.test()
async def random_tiles_match_golden(dut):
    """Random tiles of random length (1 .. 2*max(R,C)+3), streamed without gaps."""
    bench = ArrayBench(dut)
    await bench.reset()
    await bench.run(random_tiles(CFG, bench.rng, 12), "random tiles")


@cocotb.test()
async def random_pauses_on_inputs(dut):
    """The same kind of stimulus with valid dropped at random on both inputs (30%)."""
    bench = ArrayBench(dut, seed_offset=1, pause_probability=0.3)
    await bench.reset()
    await bench.run(random_tiles(CFG, bench.rng, 10), "random pauses")


@cocotb.test()
async def back_to_back_tiles_leave_no_bubble(dut):
    """Tiles with at least R streamed beats follow each other with no idle cycle: after the
    first beat, ``a`` is never refused, and the last row leaves exactly ``latency`` cycles
    after the last beat went in."""
    bench = ArrayBench(dut, seed_offset=2)
    await bench.reset()
    R = CFG.rows
    tiles = random_tiles(CFG, bench.rng, 8, min_len=R, max_len=R + 4)
    beats = make_beats(CFG, tiles)
    if CFG.dataflow == "ws":
        # Preload the first tile's weights before offering any activation.
        bench.b.send(beats.b[:R])
        await ClockCycles(dut.clk, R + 2)
        bench.b.send(beats.b[R:])
    else:
        bench.b.send(beats.b)
    bench.a.send(beats.a)
    await bench.expect(beats, "back-to-back")
    assert bench.a.stalls == 0, f"a was refused for {bench.a.stalls} cycles between tiles"
    span = bench.c.cycles[-1] - bench.a.first_fire
    expected = len(beats.a) - 1 + CFG.latency + (R - 1 if CFG.dataflow == "os" else 0)
    assert span == expected, f"first beat in to last row out took {span} cycles, not {expected}"
    dut._log.info("%d beats, %d MACs, no bubble: %d cycles from first beat to last row",
                  len(beats.a), beats.macs, span)


@cocotb.test()
async def extreme_values_over_long_streams(dut):
    """-128*-128, -128*127, 127*127 everywhere over a long stream, then zeros and identity.
    In OS the stream length is K, so the accumulators see long sums (and wrap when
    ``acc_width`` is narrow, exactly as the golden model says)."""
    bench = ArrayBench(dut, seed_offset=3)
    await bench.reset()
    length = 300 if CFG.dataflow == "os" else 64
    for label, tile in special_tiles(CFG, length).items():
        await bench.run([tile], label)


@cocotb.test()
async def reset_mid_tile_recovers(dut):
    """A reset in the middle of a tile flushes the array; the next tiles are correct."""
    bench = ArrayBench(dut, seed_offset=4)
    await bench.reset()
    tiles = random_tiles(CFG, bench.rng, 3, min_len=CFG.rows)
    beats = make_beats(CFG, tiles)
    bench.a.send(beats.a)
    bench.b.send(beats.b)
    await ClockCycles(dut.clk, CFG.rows + 2)
    bench.a.queue.clear()
    bench.b.queue.clear()
    await bench.reset()
    assert int(dut.idle.value) == 1, "array not idle after reset"
    await bench.run(random_tiles(CFG, bench.rng, 3), "after reset")
