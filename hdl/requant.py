"""The post-processing unit: requantization of int32 accumulators to int8, in two modes.

``mode`` 0, TFLite, bit-exact with :func:`sim_models.golden.requantize`; ``mode`` 1,
onnxruntime, bit-exact with :func:`sim_models.golden.requantize_ort` (the ``multiplier``
input then carries the float32 scale's bits).  Five pipeline stages per lane, one
accumulator row per cycle, the same in both modes:

== =========================================== ===========================================
   TFLite                                       onnxruntime (float32 emulated in integers)
== =========================================== ===========================================
0  add the per-channel bias (32-bit wrap, like the accumulator), both modes
1  saturating left shift (``shift > 0``)        int32 -> float32: normalize, round to 24
                                                significant bits, nearest even
2  32 x 32 -> 64-bit product, Q31 multiplier    24 x 24-bit significand product, exponents
3  rounding doubling high multiply (gemmlowp)   round the product to 24 bits, nearest even
4  rounding divide by 2**-shift, zero point,    round to an integer, half to even; zero
   clamp                                        point, clamp
== =========================================== ===========================================
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["Requantizer", "LATENCY"]

LATENCY = 5
INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


class _Lane(wiring.Component):
    """One output channel's requantization pipeline."""

    def __init__(self):
        super().__init__({
            "en": In(1),
            "acc": In(signed(32)), "bias": In(signed(32)),
            "multiplier": In(signed(32)), "shift": In(signed(8)),
            "zero_point": In(signed(8)), "clamp_min": In(signed(8)), "clamp_max": In(signed(8)),
            "mode": In(1),
            "out": Out(signed(8)),
        })

    def elaborate(self, platform):
        m = Module()
        # Parameters only change between STORE instructions (CONFIG is ordered with them in
        # the store queue, and a STORE completes before the next instruction starts), so
        # they need no staging.
        left = Mux(self.shift > 0, self.shift, 0)[:5]
        right = Mux(self.shift < 0, -self.shift, 0)[:6]

        s0 = Signal(signed(32))
        with m.If(self.en):
            m.d.sync += s0.eq(self.acc + self.bias)

        s1 = Signal(signed(32))
        wide = Signal(signed(64))
        m.d.comb += wide.eq(s0 << left)
        with m.If(self.en):
            m.d.sync += s1.eq(Mux(wide > INT32_MAX, INT32_MAX, Mux(wide < INT32_MIN, INT32_MIN, wide)))

        s2 = Signal(signed(64))
        s2_overflow = Signal()
        with m.If(self.en):
            m.d.sync += [s2.eq(s1 * self.multiplier),
                         s2_overflow.eq((s1 == INT32_MIN) & (self.multiplier == INT32_MIN))]

        s3 = Signal(signed(32))
        total = Signal(signed(65))
        m.d.comb += total.eq(s2 + Mux(s2 >= 0, 1 << 30, 1 - (1 << 30)))
        magnitude = Signal(65)
        m.d.comb += magnitude.eq(Mux(total < 0, -total, total) >> 31)
        high = Mux(total < 0, -magnitude.as_signed(), magnitude.as_signed())
        with m.If(self.en):
            m.d.sync += s3.eq(Mux(s2_overflow, INT32_MAX, high))

        mask = Signal(32)
        m.d.comb += mask.eq((1 << right) - 1)
        remainder = s3.as_unsigned() & mask
        threshold = (mask >> 1) + (s3 < 0)
        rounded = Signal(signed(33))
        m.d.comb += rounded.eq((s3 >> right) + (remainder > threshold))
        shifted = Signal(signed(34))
        m.d.comb += shifted.eq(Mux(self.mode, self._float_path(m, s0), rounded) + self.zero_point)
        with m.If(self.en):
            m.d.sync += self.out.eq(Mux(shifted < self.clamp_min, self.clamp_min,
                                        Mux(shifted > self.clamp_max, self.clamp_max, shifted)))
        return m

    def _float_path(self, m, s0):
        """Stages 1-3 of the onnxruntime mode and the integer rounding of stage 4:
        ``rint(float32(float32(s0) * scale))`` as a signed value (before the zero point)."""
        # 1: int32 -> float32 as (24-bit significand, exponent), round to nearest even.
        neg = s0 < 0
        mag = Signal(32)
        m.d.comb += mag.eq(Mux(neg, -s0, s0))
        leading = 0
        for i in range(32):
            leading = Mux(mag[i], i, leading)
        top = Signal(5)            # the leading one's position (0 for a zero sum)
        norm = Signal(32)
        m.d.comb += [top.eq(leading), norm.eq(mag << ~top)]       # ~top == 31 - top
        f_mant, f_exp, f_neg = Signal(24), Signal(signed(7)), Signal()
        mant, carry = _round_nearest_even(m, norm[8:], norm[7], norm[:7].any())
        with m.If(self.en):
            m.d.sync += [f_mant.eq(mant), f_exp.eq(top - 23 + carry), f_neg.eq(neg)]
        # 2: significand product; the scale is positive and normal (the compiler checks).
        scale = self.multiplier.as_unsigned()
        p_prod, p_exp, p_neg = Signal(48), Signal(signed(11)), Signal()
        with m.If(self.en):
            m.d.sync += [p_prod.eq(f_mant * Cat(scale[:23], 1)),
                         p_exp.eq(f_exp + scale[23:31] - (127 + 23)), p_neg.eq(f_neg)]
        # 3: the float32 product: round to 24 significant bits, nearest even.
        high = p_prod[47]
        keep = Mux(high, p_prod[24:48], p_prod[23:47])
        mant, carry = _round_nearest_even(m, keep, Mux(high, p_prod[23], p_prod[22]),
                                          Mux(high, p_prod[:23].any(), p_prod[:22].any()))
        q_mant, q_exp, q_neg = Signal(24), Signal(signed(11)), Signal()
        with m.If(self.en):
            m.d.sync += [q_mant.eq(mant), q_exp.eq(p_exp + 23 + high + carry), q_neg.eq(p_neg)]
        # 4: to an integer, half to even (saturating far outside any int8 range).
        # Right shift, for q_exp < 0: 1..26 wherever it is used, so 5 bits; the shifts of
        # Const(1, 27) below then stay within 64 bits (with 6 bits they were 90 bits wide,
        # which Verilator evaluates word by word: a tenth of the C++ harness's time).
        k = Signal(5)
        m.d.comb += k.eq(Mux(q_exp < -25, 26, -q_exp))
        whole = q_mant >> k
        rest = q_mant & ((Const(1, 27) << k) - 1)[:24]
        half = (Const(1, 27) << k) >> 1
        up = (rest > half) | ((rest == half) & whole[0])
        # Plain expressions, no comb process (Icarus would leave one at X until it moves).
        magnitude = Signal(34)
        m.d.comb += magnitude.eq(Mux(q_mant == 0, 0,
                                     Mux(q_exp >= 8, 1 << 32,
                                         Mux(q_exp >= 0, q_mant << q_exp[:3], whole + up))))
        return Mux(q_neg, -magnitude.as_signed(), magnitude.as_signed())


def _round_nearest_even(m, keep, round_bit, sticky):
    """``keep`` (24 bits) rounded up when the dropped part is over half, or exactly half with
    ``keep`` odd; a carry out renormalizes to 2**23 with the exponent one higher.  Returns
    ``(significand, carry)``."""
    kept = Signal(25)
    m.d.comb += kept.eq(keep + (round_bit & (sticky | keep[0])))
    return Mux(kept[24], 1 << 23, kept[:24]), kept[24]


class Requantizer(wiring.Component):
    """``lanes`` int32 -> int8 in a 5-stage pipeline that advances when ``en`` is high.

    Per-lane bias, multiplier and shift (per output channel; equal in every lane for per-tensor
    scaling), shared zero point and clamp range (the activation: none, ReLU, ReLU6).
    """

    def __init__(self, lanes: int):
        self.lanes = lanes
        super().__init__({
            "en": In(1),
            "acc": In(data.ArrayLayout(signed(32), lanes)),
            "bias": In(data.ArrayLayout(signed(32), lanes)),
            "multiplier": In(data.ArrayLayout(signed(32), lanes)),
            "shift": In(data.ArrayLayout(signed(8), lanes)),
            "zero_point": In(signed(8)), "clamp_min": In(signed(8)), "clamp_max": In(signed(8)),
            "mode": In(1),
            "out": Out(data.ArrayLayout(signed(8), lanes)),
        })

    def elaborate(self, platform):
        m = Module()
        for i in range(self.lanes):
            lane = m.submodules[f"lane{i}"] = _Lane()
            m.d.comb += [
                lane.en.eq(self.en), lane.acc.eq(self.acc[i]), lane.bias.eq(self.bias[i]),
                lane.multiplier.eq(self.multiplier[i]), lane.shift.eq(self.shift[i]),
                lane.zero_point.eq(self.zero_point), lane.clamp_min.eq(self.clamp_min),
                lane.clamp_max.eq(self.clamp_max), lane.mode.eq(self.mode),
                self.out[i].eq(lane.out),
            ]
        return m
