"""AXI4 DMA engines that move *rows*: up to ``max_bytes`` bytes at any byte address.

A row becomes one INCR burst of whole bus beats (two if it crosses a 4 KiB boundary, which
AXI forbids a burst to do).  Reads are re-aligned and zero-padded to ``max_bytes``; writes
are shifted into place with byte strobes.  Every access is checked against the DRAM window
(``base``, ``size``) before it reaches the bus: an access outside it is not issued and
raises ``DMA_RANGE``; SLVERR/DECERR responses raise their own codes.  Errors are sticky
(the first one wins) and never stop the engines from completing what is on the bus, so a
fault can always be followed by a clean soft reset.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from .axi import (BURST_INCR, RESP_DECERR, RESP_OKAY, RESP_SLVERR, axi4_read_signature,
                  axi4_write_signature)
from .isa import ErrorCode

__all__ = ["RowReader", "RowWriter", "read_cmd_layout", "read_rsp_layout",
           "write_cmd_layout", "burst_plan", "BurstPlan", "BURST_BOUNDARY", "ADDR_BITS"]

ADDR_BITS = 32
ADDR_MASK = (1 << ADDR_BITS) - 1
#: Width of the free-running DMA byte counters (they wrap).
BYTE_COUNTER_BITS = 32
#: No AXI burst may cross a 4 KiB boundary.
BURST_BOUNDARY = 4096


def read_cmd_layout(max_bytes: int, tag_bits: int) -> data.StructLayout:
    return data.StructLayout({"addr": ADDR_BITS, "nbytes": range(max_bytes + 1),
                              "tag": tag_bits})


def read_rsp_layout(max_bytes: int, tag_bits: int) -> data.StructLayout:
    return data.StructLayout({"data": 8 * max_bytes, "tag": tag_bits})


def write_cmd_layout(max_bytes: int) -> data.StructLayout:
    return data.StructLayout({"addr": ADDR_BITS, "nbytes": range(max_bytes + 1),
                              "data": 8 * max_bytes})


def _log2(n: int) -> int:
    assert n & (n - 1) == 0, n
    return n.bit_length() - 1


def _latch_error(m, error, range_error, response, resp):
    """Sticky first error: a refused out-of-window access, or a SLVERR/DECERR response."""
    bus_error = Mux(resp == RESP_SLVERR, ErrorCode.AXI_SLVERR,
                    Mux(resp == RESP_DECERR, ErrorCode.AXI_DECERR, 0))
    with m.If(error == 0):
        with m.If(range_error):
            m.d.sync += error.eq(ErrorCode.DMA_RANGE)
        with m.Elif(response & (resp != RESP_OKAY)):
            m.d.sync += error.eq(bus_error)


@dataclass(frozen=True)
class BurstPlan:
    """How one row of ``nbytes`` at ``addr`` goes on the bus: ``nbeats`` beats from the
    bus-aligned ``first`` address, split into a burst of ``len1`` beats and, when ``split``,
    a second of ``len2`` beats at ``addr2`` (the next :data:`BURST_BOUNDARY`).  ``offset``:
    the row's first byte within the first beat; ``in_range``: the row lies inside the DRAM
    window ``[base, base + size)`` and is not empty."""
    offset: object
    first: object
    nbeats: object
    split: object
    len1: object
    len2: object
    addr2: object
    in_range: object


def _py_mux(sel, a, b):
    return a if sel else b


def burst_plan(addr, nbytes, bus_bytes: int, base, size, mux=_py_mux) -> BurstPlan:
    """Split a row into at most two bursts that do not cross a 4 KiB boundary.

    The one statement of the rule for the DMA engines (Amaranth values, ``mux=Mux``) and the
    cycle model (Python ints): only arithmetic, masks and comparisons are used."""
    shift = _log2(bus_bytes)
    offset = addr & (bus_bytes - 1)
    first = addr & (ADDR_MASK ^ (bus_bytes - 1))
    nbeats = (offset + nbytes + bus_bytes - 1) >> shift
    to_boundary = (BURST_BOUNDARY - (first & (BURST_BOUNDARY - 1))) >> shift
    split = nbeats > to_boundary
    return BurstPlan(offset=offset, first=first, nbeats=nbeats, split=split,
                     len1=mux(split, to_boundary, nbeats), len2=nbeats - to_boundary,
                     addr2=(first + (to_boundary << shift)) & ADDR_MASK,
                     in_range=(addr >= base) & (addr + nbytes <= base + size) & (nbytes != 0))


class _BurstPlan:
    """:func:`burst_plan` as logic, its values in signals of the widths the engines need."""

    def __init__(self, m, addr, nbytes, bus_bytes, max_beats, base, size):
        plan = burst_plan(addr, nbytes, bus_bytes, base, size, mux=Mux)
        self.offset = Signal(_log2(bus_bytes))
        self.first = Signal(ADDR_BITS)
        self.nbeats = Signal(range(max_beats + 1))
        self.addr2 = Signal(ADDR_BITS)
        m.d.comb += [self.offset.eq(plan.offset), self.first.eq(plan.first),
                     self.nbeats.eq(plan.nbeats), self.addr2.eq(plan.addr2)]
        self.split = plan.split
        self.len1 = plan.len1       # beats in burst 1
        self.len2 = plan.len2       # beats in burst 2
        self.in_range = plan.in_range


class RowReader(wiring.Component):
    """Reads rows over the AR/R channels; responses keep command order (single AXI ID).

    Attributes
    ----------
    cmd : In(stream), :func:`read_cmd_layout`
        A row: byte address, length (at most ``max_bytes``), tag.  Taken in the cycle the
        previous row's last AR handshakes, while fewer than :attr:`OUTSTANDING` rows are in
        flight.  A row outside the window is taken, not issued, raises ``DMA_RANGE`` and is
        answered with zeros.
    rsp : Out(stream), :func:`read_rsp_layout`
        The row realigned to byte 0, zero past its length, with its tag; in command order.
    axi : Out(axi4_read_signature)
        AR: one INCR burst per row (two when it crosses 4 KiB, :func:`burst_plan`), VALID and
        payload held until READY.  R: beats taken while the response can be delivered.
    base, size : In
        The DRAM window (``size`` up to 2**32).
    error : Out(3)
        First of ``DMA_RANGE``, ``AXI_SLVERR``, ``AXI_DECERR``; sticky.
    idle : Out(1)
        No command offered, issued or answered.
    bytes_read : Out(32)
        Bus bytes received (whole beats), free-running.
    """

    #: Rows (commands) in flight between the AR channel and the response: the depth of the
    #: pending queue.
    OUTSTANDING = 8

    def __init__(self, bus_bits: int, max_bytes: int, tag_bits: int = 2,
                 outstanding: int = OUTSTANDING):
        self.bus_bytes = bus_bits // 8
        self.max_bytes = max_bytes
        self.max_beats = (max_bytes + self.bus_bytes - 1) // self.bus_bytes + 1
        self.outstanding = outstanding
        super().__init__({
            "cmd": In(stream.Signature(read_cmd_layout(max_bytes, tag_bits))),
            "rsp": Out(stream.Signature(read_rsp_layout(max_bytes, tag_bits))),
            "axi": Out(axi4_read_signature(ADDR_BITS, bus_bits)),
            "base": In(ADDR_BITS), "size": In(ADDR_BITS + 1),
            "error": Out(3), "idle": Out(1), "bytes_read": Out(BYTE_COUNTER_BITS),
        })

    def elaborate(self, platform):
        m = Module()
        B, shift = self.bus_bytes, _log2(self.bus_bytes)
        entry = data.StructLayout({"offset": shift, "nbytes": range(self.max_bytes + 1),
                                   "nbeats": range(self.max_beats + 1), "skip": 1,
                                   "tag": len(self.cmd.payload.tag)})
        pending = m.submodules.pending = fifo.SyncFIFOBuffered(
            width=entry.size, depth=self.outstanding)
        m.d.comb += [self.axi.arsize.eq(shift), self.axi.arburst.eq(BURST_INCR)]

        # --- address side: one command -> pending entry + one or two AR bursts ------------
        plan = _BurstPlan(m, self.cmd.payload.addr, self.cmd.payload.nbytes, B,
                          self.max_beats, self.base, self.size)
        second_addr = Signal(ADDR_BITS)
        second_len = Signal(8)
        second_due = Signal()
        w_entry = Signal(entry)
        m.d.comb += [
            w_entry.offset.eq(plan.offset), w_entry.nbytes.eq(self.cmd.payload.nbytes),
            w_entry.nbeats.eq(plan.nbeats), w_entry.skip.eq(~plan.in_range),
            w_entry.tag.eq(self.cmd.payload.tag), pending.w_data.eq(w_entry),
        ]
        # A new command is taken in the cycle the previous row's last AR is accepted, so
        # one-beat rows go out at one per cycle.
        ar_free = ~self.axi.arvalid | (self.axi.arready & ~second_due)
        take = Signal()
        m.d.comb += [
            self.cmd.ready.eq(ar_free & pending.w_rdy),
            take.eq(self.cmd.valid & self.cmd.ready),
            pending.w_en.eq(take),
        ]
        range_error = Signal()
        m.d.comb += range_error.eq(take & ~plan.in_range)
        with m.If(self.axi.arvalid & self.axi.arready):
            with m.If(second_due):
                m.d.sync += [self.axi.araddr.eq(second_addr), self.axi.arlen.eq(second_len),
                             second_due.eq(0)]
            with m.Else():
                m.d.sync += self.axi.arvalid.eq(0)
        with m.If(take & plan.in_range):
            m.d.sync += [self.axi.araddr.eq(plan.first), self.axi.arlen.eq(plan.len1 - 1),
                         self.axi.arvalid.eq(1),
                         second_addr.eq(plan.addr2), second_len.eq(plan.len2 - 1),
                         second_due.eq(plan.split)]

        # --- data side: collect beats, realign, zero-pad ---------------------------------
        head = Signal(entry)
        m.d.comb += head.eq(pending.r_data)
        nwords = self.max_beats
        buf = Signal(nwords * 8 * B)
        beat = Signal(range(self.max_beats + 1))
        merged = Signal(nwords * 8 * B)
        m.d.comb += merged.eq(Cat(*[Mux(beat == i, self.axi.rdata, buf[i * 8 * B:(i + 1) * 8 * B])
                                    for i in range(nwords)]))

        out_valid = Signal()
        out_free = ~out_valid | self.rsp.ready
        collecting = pending.r_rdy & ~head.skip
        last_beat = beat == head.nbeats - 1
        m.d.comb += self.axi.rready.eq(collecting & (~last_beat | out_free))
        r_fire = self.axi.rvalid & self.axi.rready

        keep = Cat(*[Mux(head.nbytes > i, 0xFF, 0) for i in range(self.max_bytes)])
        aligned = (merged >> (head.offset * 8))[:8 * self.max_bytes]
        finish = Signal()
        m.d.comb += finish.eq((r_fire & last_beat) | (pending.r_rdy & head.skip & out_free))
        with m.If(r_fire):
            m.d.sync += [buf.eq(merged), beat.eq(beat + 1)]
            with m.If(last_beat):
                m.d.sync += [beat.eq(0), self.rsp.payload.data.eq(aligned & keep)]
        with m.If(pending.r_rdy & head.skip & out_free):
            m.d.sync += self.rsp.payload.data.eq(0)
        m.d.comb += pending.r_en.eq(finish)
        with m.If(finish):
            m.d.sync += [out_valid.eq(1), self.rsp.payload.tag.eq(head.tag)]
        with m.Elif(self.rsp.ready):
            m.d.sync += out_valid.eq(0)
        m.d.comb += self.rsp.valid.eq(out_valid)

        with m.If(r_fire):
            m.d.sync += self.bytes_read.eq(self.bytes_read + B)
        _latch_error(m, self.error, range_error, r_fire, self.axi.rresp)
        m.d.comb += self.idle.eq(~pending.r_rdy & ~self.axi.arvalid & ~out_valid & ~self.cmd.valid)
        return m


class RowWriter(wiring.Component):
    """Writes rows over the AW/W/B channels, shifted into place with byte strobes.

    Attributes
    ----------
    cmd : In(stream), :func:`write_cmd_layout`
        A row: address, length, data.  Taken in the cycle the previous row's last AW and W
        beat go out, while fewer than :attr:`MAX_OUTSTANDING` bursts await their response.
        A row outside the window is dropped and raises ``DMA_RANGE``.
    axi : Out(axi4_write_signature)
        AW: one INCR burst per row (two across 4 KiB); W: the beats with strobes, WLAST on the
        last beat of each burst; B: always ready.
    base, size : In
    error : Out(3)
        First of ``DMA_RANGE``, ``AXI_SLVERR``, ``AXI_DECERR``; sticky.
    idle : Out(1)
        No command offered, nothing to send and every response back.
    bytes_written : Out(32)
        Bus bytes sent (whole beats), free-running.
    """

    #: Bursts whose write response is still due; no new row is taken at this many.
    MAX_OUTSTANDING = 200

    def __init__(self, bus_bits: int, max_bytes: int):
        self.bus_bytes = bus_bits // 8
        self.max_bytes = max_bytes
        self.max_beats = (max_bytes + self.bus_bytes - 1) // self.bus_bytes + 1
        super().__init__({
            "cmd": In(stream.Signature(write_cmd_layout(max_bytes))),
            "axi": Out(axi4_write_signature(ADDR_BITS, bus_bits)),
            "base": In(ADDR_BITS), "size": In(ADDR_BITS + 1),
            "error": Out(3), "idle": Out(1), "bytes_written": Out(BYTE_COUNTER_BITS),
        })

    def elaborate(self, platform):
        m = Module()
        B, shift = self.bus_bytes, _log2(self.bus_bytes)
        nwords = self.max_beats
        m.d.comb += [self.axi.awsize.eq(shift), self.axi.awburst.eq(BURST_INCR), self.axi.bready.eq(1)]

        plan = _BurstPlan(m, self.cmd.payload.addr, self.cmd.payload.nbytes, B,
                          self.max_beats, self.base, self.size)
        wdata = Signal(nwords * 8 * B)
        wstrb = Signal(nwords * B)
        nbeats = Signal(range(self.max_beats + 1))
        len1 = Signal(range(self.max_beats + 1))
        beat = Signal(range(self.max_beats + 1))
        second_addr, second_len, second_due = Signal(ADDR_BITS), Signal(8), Signal()
        aw_busy, w_busy = Signal(), Signal()
        outstanding = Signal(range(self.MAX_OUTSTANDING + 2))   # a row is at most two bursts

        keep = Cat(*[Mux(self.cmd.payload.nbytes > i, 1, 0) for i in range(self.max_bytes)])
        w_fire = self.axi.wvalid & self.axi.wready
        # The next row is taken in the cycle the current one's last AW and W beat go out.
        aw_free = ~aw_busy | (self.axi.awready & ~second_due)
        w_free = ~w_busy | (w_fire & (beat == nbeats - 1))
        m.d.comb += self.cmd.ready.eq(aw_free & w_free & (outstanding < self.MAX_OUTSTANDING))
        take = self.cmd.valid & self.cmd.ready
        range_error = take & ~plan.in_range
        with m.If(self.axi.awvalid & self.axi.awready):
            with m.If(second_due):
                m.d.sync += [self.axi.awaddr.eq(second_addr), self.axi.awlen.eq(second_len),
                             second_due.eq(0)]
            with m.Else():
                m.d.sync += [self.axi.awvalid.eq(0), aw_busy.eq(0)]
        m.d.comb += [
            self.axi.wvalid.eq(w_busy),
            self.axi.wdata.eq(wdata.word_select(beat, 8 * B)),
            self.axi.wstrb.eq(wstrb.word_select(beat, B)),
            self.axi.wlast.eq((beat == len1 - 1) | (beat == nbeats - 1)),
        ]
        with m.If(w_fire):
            m.d.sync += [beat.eq(beat + 1), self.bytes_written.eq(self.bytes_written + B)]
            with m.If(beat == nbeats - 1):
                m.d.sync += w_busy.eq(0)
        with m.If(take & plan.in_range):
            m.d.sync += [
                wdata.eq(self.cmd.payload.data << (plan.offset * 8)),
                wstrb.eq(keep << plan.offset),
                nbeats.eq(plan.nbeats), len1.eq(plan.len1), beat.eq(0),
                self.axi.awaddr.eq(plan.first), self.axi.awlen.eq(plan.len1 - 1), self.axi.awvalid.eq(1),
                second_addr.eq(plan.addr2), second_len.eq(plan.len2 - 1),
                second_due.eq(plan.split), aw_busy.eq(1), w_busy.eq(1),
            ]

        aw_fire = self.axi.awvalid & self.axi.awready
        b_fire = self.axi.bvalid & self.axi.bready
        m.d.sync += outstanding.eq(outstanding + aw_fire - b_fire)
        _latch_error(m, self.error, range_error, b_fire, self.axi.bresp)
        m.d.comb += self.idle.eq(~aw_busy & ~w_busy & (outstanding == 0) & ~self.cmd.valid)
        return m
