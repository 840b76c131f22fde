"""The formal properties: one wrapper per component, the component itself unchanged.

Every wrapper's ports are free inputs (arbitrary in every cycle); ``Assume`` states the
component's input contract (stream payloads stable until ready, a bus that only answers
what was asked), ``Assert`` what must then hold.  The wrappers hold reset low (registers
start from their ``init`` values in BMC; k-induction starts from arbitrary states).
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth import Cat, Const, Elaboratable, Module, Mux, ResetSignal, Signal, signed
from amaranth.hdl import Assert, Assume, Cover
from amaranth.lib import fifo

from hdl.array import SystolicArray
from hdl.config import NPUConfig
from hdl.control import DeadlockDetector
from hdl.pe import OutputStationaryPE, WeightStationaryPE
from hdl.requant import LATENCY, _Lane, stage_gates
from hdl.units import FetchUnit, TokenCounter

from .axi import BREAKS, AxiRead, AxiWrite

__all__ = ["PROPERTIES", "Property"]


class _Wrapper(Elaboratable):
    """Collects the free inputs a wrapper declares (``self.free(...)``)."""

    def __init__(self, cfg: NPUConfig | None = None):
        self.ports = []
        self.cfg = cfg          # the configuration of the component under proof, if any

    def free(self, *args, **kwargs) -> Signal:
        s = Signal(*args, **kwargs)
        self.ports.append(s)
        return s

    @staticmethod
    def no_reset(m):
        m.d.comb += Assume(~ResetSignal())

    @staticmethod
    def past(m, value, name=None, init=0):
        """``value`` one cycle ago (``init`` in the first cycle)."""
        p = Signal.like(value, name=name, init=init)
        m.d.sync += p.eq(value)
        return p

    @staticmethod
    def started(m, cycles=1):
        """High from cycle ``cycles`` on (a past value is defined)."""
        n = Signal(range(cycles + 1))
        with m.If(n != cycles):
            m.d.sync += n.eq(n + 1)
        return n == cycles


class TokenCounterNoWrap(_Wrapper):
    """The count never exceeds the limit, pushes at the limit saturate, a pop at zero
    takes nothing (``avail`` low), and otherwise count' = count + push - pop."""

    def elaborate(self, platform):
        m = Module()
        tc = m.submodules.dut = TokenCounter()
        push, pop = self.free(2, name="push"), self.free(1, name="pop")
        self.no_reset(m)
        m.d.comb += [tc.push.eq(push), tc.pop.eq(pop)]
        prev, p_push = self.past(m, tc.count), self.past(m, push)
        p_take = self.past(m, pop & tc.avail)
        expect = prev + p_push - p_take
        m.d.comb += [Assert(tc.count <= tc.limit), Assert(tc.avail == (tc.count != 0))]
        with m.If(self.started(m)):
            m.d.comb += Assert(tc.count == Mux(expect > tc.limit, tc.limit, expect))
            with m.If((prev == 0) & ~p_push.any()):
                m.d.comb += Assert(tc.count == 0)        # no wrap below zero
            with m.If(prev == tc.limit):
                m.d.comb += Assert(tc.count >= tc.limit - 1)   # no wrap above the limit
        return m


class DeadlockExact(_Wrapper):
    """``deadlock`` is high exactly when ``candidate`` (no unit can make progress) has been
    high in each of the last ``DEADLOCK_CYCLES`` cycles: never earlier, never missed."""

    def __init__(self, cycles: int = 7):
        super().__init__()
        self.cycles = cycles

    def elaborate(self, platform):
        m = Module()
        dut = m.submodules.dut = DeadlockDetector(self.cycles)
        cand = self.free(1, name="candidate")
        self.no_reset(m)
        m.d.comb += dut.candidate.eq(cand)
        history = Signal(self.cycles)           # candidate in the last `cycles` cycles
        seen = Signal(range(self.cycles + 1))   # cycles of history that exist
        m.d.sync += history.eq(Cat(cand, history[:-1]))
        with m.If(seen != self.cycles):
            m.d.sync += seen.eq(seen + 1)
        full = (seen == self.cycles) & history.all()
        m.d.comb += [Assert(dut.deadlock == full), Cover(dut.deadlock)]
        return m


class FifoNoLossNoDup(_Wrapper):
    """A queue (``amaranth.lib.fifo.SyncFIFOBuffered``, as the core's instruction queues
    and buffers are built) never loses, duplicates or reorders an entry: two arbitrary
    distinct values ``a`` then ``b`` written once each come out at most once each, ``a``
    before ``b``, and ``a`` is still inside while it has been written and not read."""

    def __init__(self, depth: int, width: int = 3):
        # The queue's control does not look at the data: 3 bits give the distinct values
        # the property needs and keep the solver fast.
        super().__init__()
        self.depth, self.width = depth, width

    def elaborate(self, platform):
        m = Module()
        q = m.submodules.dut = fifo.SyncFIFOBuffered(width=self.width, depth=self.depth)
        w_en, w_data = self.free(1, name="w_en"), self.free(self.width, name="w_data")
        r_en = self.free(1, name="r_en")
        a, b = self.free(self.width, name="a"), self.free(self.width, name="b")
        self.no_reset(m)
        m.d.comb += [q.w_en.eq(w_en), q.w_data.eq(w_data), q.r_en.eq(r_en)]
        m.d.comb += Assume(a != b)
        pa, pb = self.past(m, a), self.past(m, b)
        with m.If(self.started(m)):
            m.d.comb += [Assume(a == pa), Assume(b == pb)]
        wa, wb, ra, rb = (Signal(2, name=n) for n in ("wrote_a", "wrote_b", "read_a", "read_b"))
        w_fire, r_fire = w_en & q.w_rdy, r_en & q.r_rdy
        with m.If(w_fire & (w_data == a)):
            m.d.sync += wa.eq(wa + 1)
        with m.If(w_fire & (w_data == b)):
            m.d.sync += wb.eq(wb + 1)
        with m.If(r_fire & (q.r_data == a)):
            m.d.sync += ra.eq(ra + 1)
        with m.If(r_fire & (q.r_data == b)):
            m.d.sync += rb.eq(rb + 1)
        # The writer writes a at most once, and b once, after a.
        m.d.comb += [Assume(~(w_en & (w_data == a) & (wa != 0))),
                     Assume(~(w_en & (w_data == b) & ((wb != 0) | (wa == 0))))]
        m.d.comb += [Assert(ra <= wa), Assert(rb <= wb), Assert(~((rb != 0) & (ra == 0))),
                     Assert(q.level <= self.depth)]
        with m.If((wa != 0) & (ra == 0)):
            m.d.comb += Assert(q.level != 0)
        m.d.comb += Cover((rb != 0) & (ra != 0))
        return m


class RequantizerGolden(_Wrapper):
    """One requantizer lane's output equals the golden model's formula (TFLite
    ``MultiplyByQuantizedMultiplier``, zero point, clamp), written here independently from
    ``sim_models/golden.py``, for every accumulator, bias, multiplier, shift in the
    hardware's range (-63..31), zero point and clamp bounds."""

    def elaborate(self, platform):
        m = Module()
        lane = m.submodules.dut = _Lane()
        acc, bias = self.free(signed(32), name="acc"), self.free(signed(32), name="bias")
        mult, shift = self.free(signed(32), name="mult"), self.free(signed(8), name="shift")
        zp, lo, hi = (self.free(signed(8), name=n) for n in ("zp", "lo", "hi"))
        self.no_reset(m)
        every_stage = Const((1 << (LATENCY - 1)) - 1, LATENCY - 1)
        m.d.comb += [lane.en.eq(1), lane.gates.eq(stage_gates(every_stage, lane.mode)),
                     lane.acc.eq(acc), lane.bias.eq(bias),
                     lane.multiplier.eq(mult), lane.shift.eq(shift), lane.zero_point.eq(zp),
                     lane.clamp_min.eq(lo), lane.clamp_max.eq(hi)]
        m.d.comb += [Assume(shift >= -63), Assume(shift <= 31)]
        params = [(s, self.past(m, s)) for s in (bias, mult, shift, zp, lo, hi)]
        with m.If(self.started(m)):       # parameters change only between STOREs
            for s, p in params:
                m.d.comb += Assume(s == p)
        # golden: x = wrap32(acc + bias); x = sat32(x << left); SRDHM; RDBP; + zp; clamp.
        x = Signal(signed(32))
        m.d.comb += x.eq(acc + bias)
        left, right = Signal(5), Signal(6)
        m.d.comb += [left.eq(Mux(shift > 0, shift, 0)), right.eq(Mux(shift < 0, -shift, 0))]
        wide = Signal(signed(64))
        m.d.comb += wide.eq(x << left)
        sat = Signal(signed(32))
        m.d.comb += sat.eq(Mux(wide > (1 << 31) - 1, (1 << 31) - 1,
                               Mux(wide < -(1 << 31), -(1 << 31), wide)))
        ab = Signal(signed(64))
        m.d.comb += ab.eq(sat * mult)
        nudge = Mux(ab >= 0, 1 << 30, 1 - (1 << 30))
        num = Signal(signed(66))
        m.d.comb += num.eq(ab + nudge)
        # C division by 2**31 truncates toward zero: floor, plus one when negative and inexact
        q = Signal(signed(66))
        m.d.comb += q.eq((num >> 31) + ((num < 0) & (num[:31] != 0)))
        high = Signal(signed(32))
        m.d.comb += high.eq(Mux((sat == -(1 << 31)) & (mult == -(1 << 31)), (1 << 31) - 1, q))
        # rounding divide by 2**right on int64, as numpy computes it
        high64 = Signal(signed(64))
        m.d.comb += high64.eq(high)
        mask = Signal(64)
        one = Signal(64, init=1)
        m.d.comb += mask.eq((one << right) - 1)
        rem = Signal(64)
        m.d.comb += rem.eq(high64.as_unsigned() & mask)
        threshold = Signal(64)
        m.d.comb += threshold.eq((mask >> 1) + (high < 0))
        rdbp = Signal(signed(34))
        m.d.comb += rdbp.eq((high64 >> right) + (rem > threshold))
        y = Signal(signed(35))
        m.d.comb += y.eq(rdbp + zp)
        golden = Signal(signed(8))
        m.d.comb += golden.eq(Mux(y < lo, lo, Mux(y > hi, hi, y)))
        expect = golden
        for i in range(LATENCY):
            expect = self.past(m, expect, name=f"golden_d{i + 1}")
        with m.If(self.started(m, LATENCY)):
            m.d.comb += Assert(lane.out == expect)
        return m


class OsPeSum(_Wrapper):
    """An output-stationary PE's result (moved to ``south.result`` on a tile's last beat)
    equals the acc_width-wrapped sum of the products of exactly that tile's beats."""

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        pe = m.submodules.dut = OutputStationaryPE(cfg)
        a, b = self.free(signed(cfg.input_width), name="a"), self.free(signed(cfg.input_width),
                                                                         name="b")
        valid, last = self.free(1, name="valid"), self.free(1, name="last")
        self.no_reset(m)
        m.d.comb += [pe.west.data.eq(a), pe.north.b.eq(b), pe.west.valid.eq(valid),
                     pe.west.last.eq(last), pe.west.drain.eq(0), pe.north.result.eq(0)]
        total = Signal(signed(cfg.acc_width))     # products of the tile so far
        beats = Signal(8)
        product = Signal(signed(2 * cfg.input_width))
        m.d.comb += product.eq(a * b)
        done = Signal()
        expect = Signal(signed(cfg.acc_width))
        m.d.sync += done.eq(valid & last)
        with m.If(valid):
            m.d.sync += [total.eq(total + product), beats.eq(beats + 1)]
            with m.If(last):
                m.d.sync += [total.eq(0), beats.eq(0), expect.eq(total + product)]
        with m.If(done):
            m.d.comb += Assert(pe.south.result == expect)
        m.d.comb += Cover(done & (self.past(m, beats) == 3))
        return m


class WsPeMac(_Wrapper):
    """A weight-stationary PE adds ``a * w[bank]`` (the weight last written into that bank)
    to the partial sum passing through it, for either bank."""

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        pe = m.submodules.dut = WeightStationaryPE(cfg)
        iw = cfg.input_width
        a, w = self.free(signed(iw), name="a"), self.free(signed(iw), name="w")
        valid, bank = self.free(1, name="valid"), self.free(1, name="bank")
        we, wbank = self.free(1, name="we"), self.free(1, name="wbank")
        psum = self.free(signed(cfg.acc_width), name="psum")
        self.no_reset(m)
        m.d.comb += [pe.west.data.eq(a), pe.west.valid.eq(valid), pe.west.bank.eq(bank),
                     pe.weight.data.eq(w), pe.weight.we.eq(we), pe.weight.bank.eq(wbank),
                     pe.north.psum.eq(psum)]
        shadow = [Signal(signed(iw), name=f"w{i}") for i in range(2)]
        loaded = [Signal(name=f"loaded{i}") for i in range(2)]
        for i in range(2):
            with m.If(we & (wbank == i)):
                m.d.sync += [shadow[i].eq(w), loaded[i].eq(1)]
        expect = Signal(signed(cfg.acc_width))
        check = Signal()
        m.d.sync += [check.eq(valid & Mux(bank, loaded[1], loaded[0])),
                     expect.eq(psum + a * Mux(bank, shadow[1], shadow[0]))]
        # a weight write into the bank being used in the same cycle is the compute unit's
        # business (it never does it): leave it out
        m.d.comb += Assume(~(we & valid & (wbank == bank)))
        with m.If(check):
            m.d.comb += Assert(pe.south.psum == expect)
        return m


class ArrayIdleExact(_Wrapper):
    """The array's ``idle`` is high exactly when every result owed for the beats it has
    accepted has come out on ``c`` and no beat is accepted this cycle (WS: one result row
    per ``a`` beat; OS: ``rows`` rows per tile, on its last beat); no result comes out that
    is not owed.  Counted here from the ports, cycle by cycle, with random streams."""

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        arr = m.submodules.dut = SystolicArray(cfg)
        a_valid, b_valid = self.free(1, name="a_valid"), self.free(1, name="b_valid")
        a_last = self.free(1, name="a_last")
        a_data = self.free(len(arr.a.payload.data.as_value()), name="a_data")
        b_data = self.free(len(arr.b.payload.as_value()), name="b_data")
        self.no_reset(m)
        m.d.comb += [arr.a.valid.eq(a_valid), arr.a.payload.last.eq(a_last),
                     arr.a.payload.data.as_value().eq(a_data), arr.b.valid.eq(b_valid),
                     arr.b.payload.as_value().eq(b_data)]
        fire = arr.a.valid & arr.a.ready
        if cfg.dataflow == "os":        # the two streams are joined: a beat takes both
            # Only a tile's last beat makes results owed: the array is "idle" while a tile
            # accumulates in its PEs (hdl/array.py's contract; the README's "nothing in
            # flight" is looser than that).
            fire = fire & arr.b.valid & arr.b.ready & arr.a.payload.last
            owed_now = Mux(fire, cfg.rows, 0)
        else:
            owed_now = Mux(fire, 1, 0)
        owed = Signal(16)
        m.d.sync += owed.eq(owed + owed_now - arr.c.valid)
        m.d.comb += [Assert(arr.idle == ((owed == 0) & ~fire)),
                     Assert(~(arr.c.valid & (owed == 0))), Cover(arr.c.valid & arr.idle)]
        return m


@dataclass(frozen=True)
class Property:
    """A named property: how to build it, how to prove it, and whether ``make test`` runs
    it (quick ones)."""
    name: str
    build: object
    mode: str
    depth: int
    quick: bool
    what: str
    engine: str = "smtbmc boolector"
    #: a deliberate break of the design the property must fail on: ``(text, replacement,
    #: what)`` in ``hdl/dma.py`` (``build`` then takes the broken module as ``dma=``)
    breaks: tuple | None = None


def _cfg():
    return NPUConfig(rows=4, cols=4)


PROPERTIES = [
    Property("token_counter_no_wrap", TokenCounterNoWrap, "prove", 4, True,
             "token counters saturate, never wrap; count' = count + push - pop"),
    Property("deadlock_detector_exact", lambda: DeadlockExact(7), "prove", 10, True,
             "deadlock iff no unit could progress in each of the last 7 cycles"),
    Property("fifo_depth4_no_loss_dup", lambda: FifoNoLossNoDup(FetchUnit.IBUF_DEPTH, 3),
             "bmc", 10, True, "fetch buffer (depth 4): no entry lost, duplicated or reordered"),
    Property("fifo_depth16_no_loss_dup", lambda: FifoNoLossNoDup(16, 3), "bmc", 14, False,
             "instruction queue (depth 16): no entry lost, duplicated or reordered"),
    Property("requantizer_equals_golden", RequantizerGolden, "bmc", LATENCY + 2, False,
             "requantizer lane == golden formula for every input (feed-forward pipeline)"),
    Property("os_pe_sum_of_products", lambda: OsPeSum(_cfg()), "bmc", 12, True,
             "OS PE result == wrapped sum of its tile's products, K up to 10"),
    Property("array_idle_exact_ws", lambda: ArrayIdleExact(NPUConfig(rows=2, cols=2)), "bmc",
             14, True, "2x2 WS array: idle iff every owed result has left, cycle by cycle"),
    Property("array_idle_exact_os", lambda: ArrayIdleExact(NPUConfig(rows=2, cols=2,
                                                                      dataflow="os")),
             "bmc", 14, True, "2x2 OS array: idle iff every owed result has left"),
    Property("ws_pe_mac", lambda: WsPeMac(_cfg()), "bmc", 8, True,
             "WS PE psum_out == psum_in + a * w[bank]"),
]


def _axi(name, engine, check, mode, depth, what):
    def build(dma=None, engine=engine, check=check):
        return engine((check,)) if dma is None else engine((check,), dma)
    # the k-induction proofs take about 2 s each: make test runs them
    return Property(name, build, mode, depth, mode == "prove", what, breaks=BREAKS[name])


#: The AXI4 manager rules on the DMA engines (testbench/formal/axi.py), free subordinate.
PROPERTIES += [
    _axi("axi_read_valid_stable", AxiRead, "stable", "prove", 10,
         "AR: ARVALID and AR payload held until ARREADY"),
    _axi("axi_read_4k_boundary", AxiRead, "4k", "prove", 8,
         "AR: INCR bursts of whole beats, never across 4 KiB"),
    _axi("axi_read_outstanding", AxiRead, "outstanding", "bmc", 12,
         "reader: rows in flight <= OUTSTANDING + 1, <= 2 bursts each, none answered early"),
    _axi("axi_write_valid_stable", AxiWrite, "stable", "prove", 8,
         "AW and W: VALID and payload held until READY"),
    _axi("axi_write_4k_boundary", AxiWrite, "4k", "prove", 8,
         "AW: INCR bursts of whole beats, never across 4 KiB"),
    _axi("axi_write_wlast", AxiWrite, "wlast", "prove", 8,
         "W: WLAST on each burst's last beat only (beats == AWLEN + 1)"),
    _axi("axi_write_outstanding", AxiWrite, "outstanding", "prove", 8,
         "writer: bursts awaiting B <= MAX_OUTSTANDING + 2"),
]
