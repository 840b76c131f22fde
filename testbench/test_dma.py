"""Unit tests of :mod:`hdl.dma`: the burst plan against its plain statement, and the cycle
model's row reader and writer against the engines cycle by cycle."""

import numpy as np
import pytest

from hdl.dma import BURST_BOUNDARY, burst_plan

from .pairings import check, reader_pairing, writer_pairing


def _plain_bursts(addr, nbytes, bus_bytes):
    """The rule stated plainly: the bus-aligned beats the row's bytes touch, cut into runs
    that stay inside one 4 KiB page."""
    beats = sorted({(a // bus_bytes) * bus_bytes for a in range(addr, addr + nbytes)})
    bursts = []
    for beat in beats:
        if bursts and beat // BURST_BOUNDARY == bursts[-1][0] // BURST_BOUNDARY:
            bursts[-1][1] += 1
        else:
            bursts.append([beat, 1])
    return [tuple(b) for b in bursts]


@pytest.mark.parametrize("bus_bytes", [8, 16, 32, 64])
def test_burst_plan_equals_the_plain_rule(bus_bytes):
    rng = np.random.default_rng(bus_bytes)
    cases = [(int(rng.integers(0, 1 << 14)), int(rng.integers(1, 129))) for _ in range(3000)]
    cases += [(BURST_BOUNDARY - k, n) for k in range(1, 40) for n in (1, 8, 40, 64)]
    for addr, nbytes in cases:
        plan = burst_plan(addr, nbytes, bus_bytes, base=0, size=1 << 32)
        got = [(plan.first, plan.len1)] + ([(plan.addr2, plan.len2)] if plan.split else [])
        assert got == _plain_bursts(addr, nbytes, bus_bytes), (addr, nbytes)
        assert plan.offset == addr % bus_bytes and plan.in_range


def test_burst_plan_checks_the_window():
    assert burst_plan(0x100, 16, 16, base=0x100, size=16).in_range
    assert not burst_plan(0x100, 17, 16, base=0x100, size=16).in_range   # one byte past
    assert not burst_plan(0xFF, 1, 16, base=0x100, size=16).in_range     # one byte before
    assert not burst_plan(0x100, 0, 16, base=0x100, size=16).in_range    # empty rows refused


# 512 bits: the width the sweep's balanced 64-wide arrays choose (scripts/sweep.py).
@pytest.mark.parametrize("bus_bits", [64, 128, 512])
def test_row_reader_model_equals_rtl(bus_bits):
    check(reader_pairing(bus_bits), ["ar", "rsp_tag", "rready", "error"])


@pytest.mark.parametrize("bus_bits", [64, 256, 512])
def test_row_writer_model_equals_rtl(bus_bits):
    check(writer_pairing(bus_bits), ["awlen", "wvalid", "error", "bytes_written"])
