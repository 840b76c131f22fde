"""AXI4 manager rules on the DMA engines, the core's only AXI managers (``m_axi`` is the
reader's AR/R half and the writer's AW/W/B half, wired straight through in ``hdl/core.py``).

The engines run against an unconstrained subordinate: every ``READY``, every response
``VALID``, ``RDATA``/``RRESP``/``BRESP`` are free inputs in every cycle.  The only
assumptions are what the AXI4 spec makes the subordinate guarantee (A3.2.1, A3.3.1,
A3.4.1): a read beat only for a burst whose AR has handshaken, ``RLAST`` on that burst's
last beat, R and B payloads held with ``VALID`` until ``READY``, a write response only
after both the burst's AW and its ``WLAST`` beat.  The commands the engines are given
(address, length, data, the DRAM window) are free as well.

What is asserted, per engine:

* ``VALID`` and the payload of AR, AW and W stay put from the cycle ``VALID`` rises until
  ``READY`` (no withdrawal, no change);
* a burst never crosses a 4 KiB boundary: ``(addr mod 4096) + (len + 1) << size <= 4096``,
  ``INCR`` bursts of whole bus beats;
* ``WLAST`` is high on the last beat of each write burst only: the beats between two
  ``WLAST`` s equal the ``AWLEN + 1`` of the matching AW (a scoreboard, since AXI lets W
  run ahead of AW);
* outstanding transactions stay within what the engine tracks: the writer has at most
  ``MAX_OUTSTANDING + 2`` bursts awaiting B (it stops taking rows at ``MAX_OUTSTANDING``,
  a row being up to two bursts, one more going out as the row is taken); the reader has at most ``OUTSTANDING + 1`` rows between
  command and response (its pending queue and output register), at most two AR bursts per
  such row, and never answers a row while a burst of it still owes beats.

:data:`BREAKS` holds one deliberate break of ``hdl/dma.py`` per property (a text edit of
the source, built into a throwaway module by :func:`mutant_dma`); ``test_formal`` checks
that each property fails on its break.
"""

from __future__ import annotations

import inspect
import sys
import types

from amaranth import Elaboratable, Module, Mux, ResetSignal, Signal
from amaranth.hdl import Assert, Assume, Cover, Fragment
from amaranth.lib import fifo

import hdl.dma
from hdl.axi import BURST_INCR

__all__ = ["AxiRead", "AxiWrite", "mutant_dma", "probe", "BREAKS", "BOUNDARY"]

BOUNDARY = hdl.dma.BURST_BOUNDARY
#: A small engine keeps the solver fast; the rules do not depend on the sizes.
BUS_BITS, MAX_BYTES = 32, 8


def mutant_dma(old: str, new: str) -> types.ModuleType:
    """``hdl/dma.py`` with the one occurrence of ``old`` replaced by ``new``, as a new
    module (``hdl.dma`` itself is not touched)."""
    src = inspect.getsource(hdl.dma)
    if src.count(old) != 1:
        raise ValueError(f"the break's text must occur once in hdl/dma.py, found "
                         f"{src.count(old)} times: {old!r}")
    name = "hdl._dma_mutant"
    mod = types.ModuleType(name)
    mod.__package__ = "hdl"
    sys.modules[name] = mod          # dataclasses look their module up
    try:
        exec(compile(src.replace(old, new), f"hdl/dma.py (break: {new!r})", "exec"),
             mod.__dict__)
    finally:
        del sys.modules[name]
    return mod


def probe(frag: Fragment, name: str, width: int | None = None,
          register: bool = False) -> Signal:
    """The one signal of ``frag``'s own statements called ``name`` (and ``width`` bits wide,
    when given; assigned in ``sync`` when ``register``): an engine's internal register, for
    the invariants k-induction needs.  Amaranth names the signals of a tuple assignment
    ``$signal``; the width tells those apart.  No match, or more than one, raises: the
    engine changed and the invariant with it.
    """
    found = {}
    for domain, stmts in frag.statements.items():
        if register and domain != "sync":
            continue
        for st in stmts:
            for s in [*st._lhs_signals(), *([] if register else st._rhs_signals())]:
                if s.name == name and (width is None or len(s) == width):
                    found[id(s)] = s
    if len(found) != 1:
        raise ValueError(f"probe: {len(found)} signals named {name!r}"
                         f"{'' if width is None else f' of {width} bits'} in the engine")
    return next(iter(found.values()))


class _AxiWrapper(Elaboratable):
    """Free inputs, past values and the rules shared by both engines."""

    def __init__(self, checks, dma=hdl.dma):
        unknown = set(checks) - set(self.CHECKS)
        if unknown:
            raise ValueError(f"unknown checks {sorted(unknown)}: known are {self.CHECKS}")
        self.checks, self.dma, self.ports = tuple(checks), dma, []

    def free(self, *args, **kwargs) -> Signal:
        s = Signal(*args, **kwargs)
        self.ports.append(s)
        return s

    @staticmethod
    def past(m, value):
        p = Signal.like(value, init=0)
        m.d.sync += p.eq(value)
        return p

    @staticmethod
    def started(m):
        s = Signal()
        m.d.sync += s.eq(1)
        return s

    def hold_until_ready(self, m, valid, ready, payload, started, assume=False):
        """``valid`` and ``payload`` held from a cycle with ``valid & ~ready`` to the next;
        asserted (manager's channels) or assumed (subordinate's)."""
        check = Assume if assume else Assert
        was_waiting = self.past(m, valid & ~ready)
        before = [self.past(m, value) for value in payload]
        with m.If(started & was_waiting):
            m.d.comb += check(valid)
            for value, p in zip(payload, before):
                m.d.comb += check(value == p)

    def command(self, m, cmd, dut):
        """Free commands and DRAM window (the window is a register: stable); no reset."""
        m.d.comb += Assume(~ResetSignal())
        m.d.comb += cmd.valid.eq(self.free(1, name="cmd_valid"))
        for field in ("addr", "nbytes"):
            v = getattr(cmd.payload, field)
            m.d.comb += v.eq(self.free(len(v), name=f"cmd_{field}"))
        # the command layout's contract: a row of at most max_bytes
        m.d.comb += Assume(cmd.payload.nbytes <= dut.max_bytes)
        base, size = self.free(len(dut.base), name="base"), self.free(len(dut.size), name="size")
        m.d.comb += [dut.base.eq(base), dut.size.eq(size)]
        started = self.started(m)
        p_base, p_size = self.past(m, base), self.past(m, size)
        with m.If(started):
            m.d.comb += [Assume(base == p_base), Assume(size == p_size)]
        return started

    def engine(self, m, platform, dut):
        """``dut`` elaborated into ``m`` (as ``dut``); its fragment, for :func:`probe`."""
        frag = Fragment.get(dut, platform)
        m.submodules.dut = frag
        return frag

    def second_burst(self, m, due, addr, length, max_beats):
        """Invariant (k-induction): a second burst waiting to go out starts on a 4 KiB
        boundary and is at most a row's beats long (so it cannot cross the next one)."""
        if "4k" in self.checks:
            with m.If(due):
                m.d.comb += [Assert((addr & (BOUNDARY - 1)) == 0), Assert(length < max_beats)]

    def boundary(self, m, valid, addr, length, size, burst, bus_bytes):
        """A burst of whole bus beats, INCR, inside one 4 KiB page."""
        if "4k" in self.checks:
            beats = Signal(9)
            m.d.comb += beats.eq(length + 1)
            with m.If(valid):
                m.d.comb += [Assert((addr & (BOUNDARY - 1)) + (beats << size) <= BOUNDARY),
                             Assert(size == (bus_bytes.bit_length() - 1)),
                             Assert(burst == BURST_INCR)]


class AxiRead(_AxiWrapper):
    """The reader's AR/R channels against a free subordinate (see the module's docstring)."""

    CHECKS = ("stable", "4k", "outstanding")
    OUTSTANDING = 2          # rows in flight (the core has 8; the rule is the same)

    def elaborate(self, platform):
        m = Module()
        dut = self.dma.RowReader(BUS_BITS, MAX_BYTES, tag_bits=1,
                                 outstanding=self.OUTSTANDING)
        frag = self.engine(m, platform, dut)
        axi = dut.axi
        started = self.command(m, dut.cmd, dut)
        m.d.comb += dut.cmd.payload.tag.eq(self.free(1, name="cmd_tag"))
        m.d.comb += dut.rsp.ready.eq(self.free(1, name="rsp_ready"))
        for name in ("arready", "rvalid", "rdata", "rresp", "rlast"):
            sig = getattr(axi, name)
            m.d.comb += sig.eq(self.free(len(sig), name=name))
        ar_fire, r_fire = axi.arvalid & axi.arready, axi.rvalid & axi.rready
        # The subordinate: bursts whose AR handshook, in order; RLAST on each one's last beat.
        bursts = m.submodules.bursts = fifo.SyncFIFO(width=8, depth=2 * self.OUTSTANDING + 2)
        beat = Signal(8)
        m.d.comb += [bursts.w_en.eq(ar_fire), bursts.w_data.eq(axi.arlen),
                     bursts.r_en.eq(r_fire & axi.rlast)]
        m.d.comb += [Assume(~axi.rvalid | bursts.r_rdy),
                     Assume(axi.rlast == (beat == bursts.r_data))]
        with m.If(r_fire):
            m.d.sync += beat.eq(beat + 1)
            with m.If(axi.rlast):
                m.d.sync += beat.eq(0)
        self.hold_until_ready(m, axi.rvalid, axi.rready,
                              (axi.rdata, axi.rresp, axi.rlast), started, assume=True)
        if "stable" in self.checks:
            self.hold_until_ready(m, axi.arvalid, axi.arready,
                                  (axi.araddr, axi.arlen, axi.arsize, axi.arburst), started)
        self.boundary(m, axi.arvalid, axi.araddr, axi.arlen, axi.arsize, axi.arburst,
                      dut.bus_bytes)
        self.second_burst(m, probe(frag, "second_due"), probe(frag, "second_addr"),
                          probe(frag, "second_len"), dut.max_beats)
        # Rows between command and response, as the engine's ports show them.
        rows = Signal(range(self.OUTSTANDING + 3))
        take, answer = dut.cmd.valid & dut.cmd.ready, dut.rsp.valid & dut.rsp.ready
        m.d.sync += rows.eq(rows + take - answer)
        if "outstanding" in self.checks:
            m.d.comb += [Assert(rows <= self.OUTSTANDING + 1), Assert(bursts.w_rdy),
                         Assert(bursts.level <= 2 * rows)]
        m.d.comb += [Cover(rows == self.OUTSTANDING + 1), Cover(ar_fire & (bursts.level != 0))]
        return m


class AxiWrite(_AxiWrapper):
    """The writer's AW/W/B channels against a free subordinate (see the module's docstring)."""

    CHECKS = ("stable", "4k", "wlast", "outstanding")
    MAX_OUTSTANDING = 3      # bursts awaiting B (the core has 200; the rule is the same)

    def elaborate(self, platform):
        m = Module()
        engine = type("SmallRowWriter", (self.dma.RowWriter,),
                      {"MAX_OUTSTANDING": self.MAX_OUTSTANDING})
        dut = engine(BUS_BITS, MAX_BYTES)
        frag = self.engine(m, platform, dut)
        # the writer's tuple-declared registers (named $signal by Amaranth), by width
        second_due, aw_busy = probe(frag, "second_due"), probe(frag, "$signal", 1)
        second_addr, second_len = probe(frag, "$signal", 32), probe(frag, "$signal", 8)
        axi = dut.axi
        started = self.command(m, dut.cmd, dut)
        if "stable" in self.checks:     # the control never looks at the data
            m.d.comb += dut.cmd.payload.data.eq(self.free(8 * MAX_BYTES, name="cmd_data"))
        for name in ("awready", "wready", "bvalid", "bresp"):
            sig = getattr(axi, name)
            m.d.comb += sig.eq(self.free(len(sig), name=name))
        aw_fire, w_fire = axi.awvalid & axi.awready, axi.wvalid & axi.wready
        b_fire = axi.bvalid & axi.bready
        # The subordinate answers a burst only after its AW and its WLAST beat.
        limit = self.MAX_OUTSTANDING + 5
        aw_owed, w_owed = Signal(range(limit)), Signal(range(limit))
        m.d.sync += [aw_owed.eq(aw_owed + aw_fire - b_fire),
                     w_owed.eq(w_owed + (w_fire & axi.wlast) - b_fire)]
        m.d.comb += Assume(~axi.bvalid | ((aw_owed != 0) & (w_owed != 0)))
        self.hold_until_ready(m, axi.bvalid, axi.bready, (axi.bresp,), started,
                              assume=True)
        if "stable" in self.checks:
            self.hold_until_ready(m, axi.awvalid, axi.awready,
                                  (axi.awaddr, axi.awlen, axi.awsize, axi.awburst), started)
            self.hold_until_ready(m, axi.wvalid, axi.wready,
                                  (axi.wdata, axi.wstrb, axi.wlast), started)
        self.boundary(m, axi.awvalid, axi.awaddr, axi.awlen, axi.awsize, axi.awburst,
                      dut.bus_bytes)
        self.second_burst(m, second_due, second_addr, second_len, dut.max_beats)
        if self.checks != ("wlast",):
            # invariant (k-induction): AWVALID is the engine's AW-busy flag, which ``take``
            # reads; a second burst is due only while AW is busy
            m.d.comb += [Assert(axi.awvalid == aw_busy), Assert(~second_due | aw_busy)]
        if "wlast" in self.checks:
            board = self.wlast_scoreboard(m, axi, aw_fire, w_fire)
            self.row_invariants(m, frag, axi, aw_busy, second_due, second_len, board)
        if "outstanding" in self.checks:
            # A row (two bursts at most) is taken while fewer than MAX_OUTSTANDING await B,
            # in the cycle the previous row's last AW goes out, which the engine's count
            # does not hold yet: MAX_OUTSTANDING + 2 at most (reached: BMC finds it).
            # A row is taken only once the previous one's AW and W are all out.
            m.d.comb += [Assert(aw_owed <= self.MAX_OUTSTANDING + 2),
                         Assert(w_owed <= aw_owed + 2)]
            self.burst_balance(m, frag, aw_owed, w_owed, aw_busy, second_due)
        m.d.comb += Cover(aw_owed == self.MAX_OUTSTANDING + 2)
        return m

    def burst_balance(self, m, frag, aw_owed, w_owed, aw_busy, second_due):
        """Invariants (k-induction) of the outstanding rule: the engine's count is the bursts
        awaiting B; with the current row's bursts still to go on AW it stays within
        ``MAX_OUTSTANDING + 2``; AW bursts sent plus those to send equal W bursts sent plus
        those to send (both channels work on the same row: a row is taken when both are free).
        """
        outstanding, w_busy = probe(frag, "outstanding"), probe(frag, "w_busy")
        beat, nbeats, len1 = probe(frag, "beat"), probe(frag, "nbeats", register=True), probe(frag, "len1")
        aw_rem, w_rem = Signal(2), Signal(2)
        m.d.comb += [aw_rem.eq(aw_busy + second_due),
                     w_rem.eq(Mux(w_busy, Mux((beat < len1) & (len1 < nbeats), 2, 1), 0))]
        m.d.comb += [Assert(outstanding == aw_owed),
                     Assert(outstanding + aw_rem <= self.MAX_OUTSTANDING + 2),
                     Assert(aw_owed + aw_rem == w_owed + w_rem),
                     Assert(~second_due | (len1 < nbeats))]
        with m.If(w_busy):
            m.d.comb += [Assert(beat < nbeats), Assert(len1 != 0), Assert(len1 <= nbeats)]

    def wlast_scoreboard(self, m, axi, aw_fire, w_fire):
        """The k-th W burst (beats up to the k-th ``WLAST``) has the k-th AW's length.

        A two-entry scoreboard: ``lead`` AW bursts whose W burst has not ended (``lead`` > 0,
        their lengths in ``q``, oldest first) or W bursts ended before their AW (``lead`` < 0,
        their beat counts in ``q``); each end of one side is matched against the other's
        oldest.  More than two either way is an error (a row is at most two bursts and the
        next row waits for both channels).  Returns ``(lead, q, beats)`` for the invariants.
        """
        lead = Signal(range(-3, 4))
        q = [Signal(9, name=f"sb_q{i}") for i in range(2)]
        beats = Signal(9)           # beats of the current W burst before this one
        aw_len, w_end, w_count = Signal(9), Signal(), Signal(9)
        m.d.comb += [aw_len.eq(axi.awlen + 1), w_end.eq(w_fire & axi.wlast),
                     w_count.eq(beats + 1)]
        with m.If(w_fire):
            m.d.sync += beats.eq(Mux(axi.wlast, 0, beats + 1))

        def push(value, depth):     # into q[depth]: lead's size before the push
            with m.If(depth == 0):
                m.d.sync += q[0].eq(value)
            with m.Else():
                m.d.sync += q[1].eq(value)

        def pop_push(value, depth):  # the oldest leaves; value goes in behind the rest
            with m.If(depth == 1):
                m.d.sync += q[0].eq(value)
            with m.Else():
                m.d.sync += [q[0].eq(q[1]), q[1].eq(value)]

        with m.If(aw_fire & w_end):
            with m.If(lead == 0):
                m.d.comb += Assert(aw_len == w_count)
            with m.Elif(lead > 0):
                m.d.comb += Assert(q[0] == w_count)
                pop_push(aw_len, lead)
            with m.Else():
                m.d.comb += Assert(q[0] == aw_len)
                pop_push(w_count, -lead)
        with m.Elif(aw_fire):
            with m.If(lead >= 0):
                push(aw_len, lead)
            with m.Else():
                m.d.comb += Assert(q[0] == aw_len)
                m.d.sync += q[0].eq(q[1])
            m.d.sync += lead.eq(lead + 1)
        with m.Elif(w_end):
            with m.If(lead <= 0):
                push(w_count, -lead)
            with m.Else():
                m.d.comb += Assert(q[0] == w_count)
                m.d.sync += q[0].eq(q[1])
            m.d.sync += lead.eq(lead - 1)
        # W beats never outrun the AW lengths: no WLAST is missing
        with m.If((lead > 0) & w_fire):
            m.d.comb += Assert(beats < q[0])
        m.d.comb += [Assert(lead <= 2), Assert(lead >= -2), Cover(lead == 2), Cover(lead == -2)]
        return lead, q, beats

    def row_invariants(self, m, frag, axi, aw_busy, second_due, second_len, board):
        """Invariants (k-induction) of the WLAST rule: the scoreboard holds exactly the
        current row's bursts one channel has finished and the other not, with their lengths
        (``len1``, ``nbeats - len1``); the W beat counter is the engine's beat within its
        burst; AWLEN and the due second burst are that row's."""
        lead, q, beats = board
        w_busy, beat = probe(frag, "w_busy"), probe(frag, "beat")
        nbeats, len1 = probe(frag, "nbeats", register=True), probe(frag, "len1")
        split = Signal()
        b = [Signal(9, name="row_b1"), Signal(9, name="row_b2")]
        k_aw, k_w = Signal(2), Signal(2)      # bursts of the row each channel has finished
        m.d.comb += [split.eq(len1 < nbeats), b[0].eq(len1), b[1].eq(nbeats - len1),
                     k_aw.eq(1 + split - aw_busy - second_due),
                     k_w.eq(Mux(w_busy, (beat >= len1) & split, 1 + split))]
        m.d.comb += [Assert(axi.awvalid == aw_busy), Assert(~second_due | aw_busy),
                     Assert(~second_due | split), Assert(lead == k_aw - k_w)]
        with m.If(aw_busy | w_busy):
            m.d.comb += [Assert(len1 != 0), Assert(len1 <= nbeats)]
        with m.If(w_busy):
            m.d.comb += [Assert(beat < nbeats),
                         Assert(beats == Mux(beat >= len1, beat - len1, beat))]
        with m.Else():
            m.d.comb += Assert(beats == 0)
        with m.If(aw_busy):
            m.d.comb += Assert(axi.awlen + 1 == Mux(second_due | ~split, b[0], b[1]))
        with m.If(second_due):
            m.d.comb += Assert(second_len + 1 == b[1])
        first = Mux(lead > 0, k_w, k_aw)      # the row's burst the oldest entry belongs to
        with m.If(lead != 0):
            m.d.comb += Assert(q[0] == Mux(first == 0, b[0], b[1]))
        with m.If((lead == 2) | (lead == -2)):
            m.d.comb += Assert(q[1] == b[1])


#: One deliberate break of hdl/dma.py per property: (property, text, replacement, what).
BREAKS = {
    "axi_read_valid_stable": (
        "ar_free = ~self.axi.arvalid | (self.axi.arready & ~second_due)",
        "ar_free = ~second_due", "a new row overwrites AR while it waits for ARREADY"),
    "axi_read_4k_boundary": (
        "split = nbeats > to_boundary", "split = nbeats > to_boundary + 1",
        "a row one beat past the boundary is not split"),
    "axi_read_outstanding": (
        "self.cmd.ready.eq(ar_free & pending.w_rdy)", "self.cmd.ready.eq(ar_free)",
        "rows taken while the pending queue is full"),
    "axi_write_valid_stable": (
        "with m.If(w_fire):\n            m.d.sync += [beat.eq(beat + 1)",
        "with m.If(self.axi.wvalid):\n            m.d.sync += [beat.eq(beat + 1)",
        "the W beat advances without WREADY"),
    "axi_write_4k_boundary": (
        "split = nbeats > to_boundary", "split = nbeats > to_boundary + 1",
        "a row one beat past the boundary is not split"),
    "axi_write_wlast": (
        "self.axi.wlast.eq((beat == len1 - 1) | (beat == nbeats - 1))",
        "self.axi.wlast.eq(beat == nbeats - 1)", "no WLAST at the end of a split row's "
        "first burst"),
    "axi_write_outstanding": (
        "(outstanding < self.MAX_OUTSTANDING)", "(outstanding < self.MAX_OUTSTANDING + 2)",
        "rows taken past the outstanding limit"),
}
