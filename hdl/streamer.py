"""LineStreamer: memory lines -> a valid/ready stream, at one line per cycle."""

from __future__ import annotations

from amaranth import Module, Mux, Signal
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from .memories import read_port_signature

__all__ = ["LineStreamer"]


class LineStreamer(wiring.Component):
    """Streams lines ``base .. base+count-1`` of a memory, then ``total - count`` zero lines,
    flagging the final one ``last``.

    Reads are issued only when the output FIFO has room for them (credits), so a stalled
    consumer never loses a line despite the read port's one-cycle latency.  ``done`` pulses
    when the final line leaves; ``done_push`` with it when the command asked for a token.
    """

    FIFO_DEPTH = 4

    def __init__(self, width: int, depth: int, max_count: int = 1 << 16):
        self.width, self.depth = width, depth
        cmd = data.StructLayout({"base": range(depth), "count": range(max_count + 1),
                                 "total": range(max_count + 1), "push": 1})
        super().__init__({
            "cmd": In(stream.Signature(cmd)),
            "port": Out(read_port_signature(width, depth)),
            "out": Out(stream.Signature(data.StructLayout({"data": width, "last": 1}))),
            "busy": Out(1), "done": Out(1), "done_push": Out(1), "abort": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        q = m.submodules.fifo = fifo.SyncFIFOBuffered(width=self.width + 1,
                                                       depth=self.FIFO_DEPTH)
        base = Signal(range(self.depth))
        count = Signal.like(self.cmd.payload.count)
        total = Signal.like(self.cmd.payload.total)
        push = Signal()
        issued = Signal.like(total)
        issuing = Signal()
        inflight, inflight_zero, inflight_last = Signal(), Signal(), Signal()

        m.d.comb += self.cmd.ready.eq(~self.busy)
        with m.If(self.cmd.valid & self.cmd.ready):
            m.d.sync += [base.eq(self.cmd.payload.base), count.eq(self.cmd.payload.count),
                         total.eq(self.cmd.payload.total), push.eq(self.cmd.payload.push),
                         issued.eq(0), self.busy.eq(self.cmd.payload.total != 0),
                         issuing.eq(self.cmd.payload.total != 0)]

        room = (q.level + inflight) < self.FIFO_DEPTH
        want = issuing & room & ~self.abort
        zero_line = issued >= count
        # A memory line needs its bank this cycle; a zero line needs nothing.
        issue = want & (zero_line | self.port.ready)
        is_last = issued == total - 1
        m.d.comb += [self.port.addr.eq(base + issued), self.port.en.eq(want & ~zero_line)]
        m.d.sync += [inflight.eq(issue), inflight_zero.eq(zero_line),
                     inflight_last.eq(is_last)]
        with m.If(issue):
            m.d.sync += issued.eq(issued + 1)
            with m.If(is_last):
                m.d.sync += issuing.eq(0)

        line = Mux(inflight_zero, 0, self.port.data)
        m.d.comb += [q.w_data.eq(line | (inflight_last << self.width)), q.w_en.eq(inflight)]

        m.d.comb += [
            self.out.valid.eq(q.r_rdy),
            self.out.payload.data.eq(q.r_data[:self.width]),
            self.out.payload.last.eq(q.r_data[self.width]),
            q.r_en.eq(self.out.ready),
        ]
        finished = self.out.valid & self.out.ready & self.out.payload.last
        m.d.comb += [self.done.eq(finished), self.done_push.eq(finished & push)]
        with m.If(finished | self.abort):
            m.d.sync += [self.busy.eq(0), issuing.eq(0)]
        return m
