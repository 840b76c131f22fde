"""Unit tests of :mod:`hdl.units` (token counter, fetch, load, compute, store and their
queues), each against its cycle model cycle by cycle."""

import pytest

from .amaranth_sim import simulate
from .pairings import (IDS, SMALL, check, compute_pairing, fetch_pairing, fifo_pairing,
                       load_pairing, store_pairing, token_pairing)


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


@pytest.mark.parametrize("depth", [2, 4, 8])
def test_fifo_model_equals_sync_fifo_buffered(depth):
    check(fifo_pairing(depth), ["r_data", "r_rdy"])


def test_token_counter_model_equals_rtl():
    check(token_pairing(), ["avail"])


@pytest.mark.parametrize("cfg", SMALL[:1], ids=IDS[:1])
def test_fetch_unit_model_equals_rtl(cfg):
    check(fetch_pairing(cfg), ["addr", "load_q", "compute_q", "store_q", "stall_queue_full",
                                "done", "error", "stuck"])


@pytest.mark.parametrize("cfg", SMALL, ids=IDS)
def test_load_unit_model_equals_rtl(cfg):
    check(load_pairing(cfg), ["rd_cmd", "sp", "acc", "c2l_pop", "l2c_push", "error",
                               "wait_token"])


@pytest.mark.parametrize("cfg", SMALL, ids=IDS)
def test_compute_unit_model_equals_rtl(cfg):
    check(compute_pairing(cfg), ["sp_a", "sp_b", "acc_r", "acc_w", "c2s_push", "c2l_push",
                                  "array_busy", "error", "wait_token"], cycles=2500)


@pytest.mark.parametrize("cfg", SMALL, ids=IDS)
def test_store_unit_model_equals_rtl(cfg):
    check(store_pairing(cfg), ["acc", "wr_cmd", "sp", "c2s_pop", "s2c_push", "error",
                                "wait_token"])
