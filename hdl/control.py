"""The core's own small components: the read arbiter, the error latch, the deadlock
detector and the performance counters (composed by :class:`hdl.core.NPUCore`)."""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .dma import read_cmd_layout, read_rsp_layout
from .units import TAG_FETCH

__all__ = ["ReadArbiter", "ErrorLatch", "DeadlockDetector", "PerfCounters"]


class ReadArbiter(wiring.Component):
    """The fetch and load units share the read DMA: round robin per row, responses routed
    back by tag (the reader answers in command order).

    Parameters
    ----------
    max_bytes : int
        Longest row of the read commands.

    Attributes
    ----------
    fetch_cmd, load_cmd : In(stream), read command layout
        The units' row requests; ``ready`` in the cycle the reader takes one.
    cmd : Out(stream)
        To the reader.  When both units ask, the one not served last wins; one served
        alone does not change the turn.
    rsp : In(stream), read response layout
        From the reader; ``ready`` when its tag's unit takes it (fetch always does).
    fetch_rsp, load_rsp : Out(stream)
        ``rsp`` with ``valid`` gated by tag; ``payload`` is ``rsp.payload`` for both.
    """

    def __init__(self, max_bytes: int, tag_bits: int = 2):
        cmd, rsp = read_cmd_layout(max_bytes, tag_bits), read_rsp_layout(max_bytes, tag_bits)
        super().__init__({
            "fetch_cmd": In(stream.Signature(cmd)), "load_cmd": In(stream.Signature(cmd)),
            "cmd": Out(stream.Signature(cmd)),
            "rsp": In(stream.Signature(rsp)),
            "fetch_rsp": Out(stream.Signature(rsp)), "load_rsp": Out(stream.Signature(rsp)),
        })

    def elaborate(self, platform):
        m = Module()
        prefer_load = Signal()
        pick_load = self.load_cmd.valid & (~self.fetch_cmd.valid | prefer_load)
        m.d.comb += [
            self.cmd.valid.eq(self.load_cmd.valid | self.fetch_cmd.valid),
            self.cmd.payload.eq(Mux(pick_load, self.load_cmd.payload.as_value(),
                                    self.fetch_cmd.payload.as_value())),
            self.load_cmd.ready.eq(self.cmd.ready & pick_load),
            self.fetch_cmd.ready.eq(self.cmd.ready & ~pick_load),
        ]
        with m.If(self.cmd.valid & self.cmd.ready):
            m.d.sync += prefer_load.eq(~pick_load)
        to_fetch = self.rsp.payload.tag == TAG_FETCH
        m.d.comb += [
            self.rsp.ready.eq(to_fetch | self.load_rsp.ready),
            self.fetch_rsp.payload.eq(self.rsp.payload), self.load_rsp.payload.eq(self.rsp.payload),
            self.fetch_rsp.valid.eq(self.rsp.valid & to_fetch),
            self.load_rsp.valid.eq(self.rsp.valid & ~to_fetch),
        ]
        return m


class ErrorLatch(wiring.Component):
    """The first error wins: it is kept, with the program counter of its cycle, until
    ``clear``.

    Attributes
    ----------
    sources : In(8) x n
        Error codes (0: none), in priority order: when several rise in one cycle the first
        nonzero one is taken.
    pc : In(32)
        Instructions dispatched so far; latched as ``err_pc`` with the error.
    clear : In(1)
        Forget the error (the engines' soft reset); ``err_pc`` keeps its value.
    error : Out(8)
        The latched code, from the cycle after the source rose; 0 while none.
    err_pc : Out(32)
    """

    def __init__(self, n_sources: int):
        self.n_sources = n_sources
        super().__init__({"sources": In(8).array(n_sources), "pc": In(32), "clear": In(1),
                          "error": Out(8), "err_pc": Out(32)})

    def elaborate(self, platform):
        m = Module()
        first = 0
        for src in reversed(list(self.sources)):
            first = Mux(src != 0, src, first)
        with m.If((self.error == 0) & Cat(*[s != 0 for s in self.sources]).any()):
            m.d.sync += [self.error.eq(first), self.err_pc.eq(self.pc)]
        with m.If(self.clear):
            m.d.sync += self.error.eq(0)
        return m


class DeadlockDetector(wiring.Component):
    """``deadlock`` once ``candidate`` (no unit can make progress) has held for ``cycles``
    cycles in a row, and for as long as it holds.

    Attributes
    ----------
    candidate : In(1)
        Every unit idle with an empty queue or waiting for a token, at least one waiting,
        the bus quiet and fetch unable to help (computed by the core).
    deadlock : Out(1)
    """

    def __init__(self, cycles: int):
        self.cycles = cycles
        super().__init__({"candidate": In(1), "deadlock": Out(1)})

    def elaborate(self, platform):
        m = Module()
        count = Signal(range(self.cycles + 1))
        m.d.sync += count.eq(Mux(self.candidate, Mux(count == self.cycles, self.cycles,
                                                     count + 1), 0))
        m.d.comb += self.deadlock.eq(count == self.cycles)
        return m


class PerfCounters(wiring.Component):
    """64-bit event counters, cleared by ``start``, counting while ``busy``.

    Attributes
    ----------
    start : In(1)
        Clears every counter (this cycle is not counted).
    busy : In(1)
        The core runs a program; events outside it are not counted.
    events : In(1) per name
        One count per cycle the event is high.
    count : Out(64) per name
    """

    def __init__(self, names):
        self.names = tuple(names)
        super().__init__({"start": In(1), "busy": In(1),
                          "events": In(wiring.Signature({n: Out(1) for n in self.names})),
                          "count": Out(wiring.Signature({n: Out(64) for n in self.names}))})

    def elaborate(self, platform):
        m = Module()
        for name in self.names:
            counter, event = getattr(self.count, name), getattr(self.events, name)
            with m.If(self.start):
                m.d.sync += counter.eq(0)
            with m.Elif(event & self.busy):
                m.d.sync += counter.eq(counter + 1)
        return m
