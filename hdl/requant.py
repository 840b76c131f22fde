"""The post-processing unit: requantization of int32 accumulators to int8, in three modes.

``mode`` 0, TFLite, bit-exact with :func:`sim_models.golden.requantize`; ``mode`` 1,
onnxruntime, bit-exact with :func:`sim_models.golden.requantize_ort` (the ``multiplier``
input then carries the float32 scale's bits); ``mode`` 2, add, bit-exact with
:func:`sim_models.golden.requantize_add`: onnxruntime's QLinearAdd on two int8 tensors packed
into one accumulator, ``acc = b - 256*a`` (stored values), as the fixed-point grid of
:func:`sim_models.golden.qlinear_add_grid` with ``multiplier = ma | sa << 24``,
``shift = k`` (lanes), ``inner_multiplier = mb | sb << 24``, ``inner_bias = mf``,
``inner_shift = sf`` (shared); the zero point is the stored values' offset from the
tensors' (0 for int8, -128 for uint8 held as int8), subtracted from both inputs and added to
the result.  Five pipeline stages per lane, one accumulator row per cycle, the same in every
mode (add: 1 unpack, inner sum; 2 round it to 24 significant bits, outer product; 3 outer
sum, rounded the same; 4 times ``2**-k`` half to even, zero point, clamp):

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

__all__ = ["Requantizer", "LATENCY", "MODES", "ADD_WIDTH", "ADD_BITS", "ADD_SIGNIFICANT"]

LATENCY = 5
INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1
#: Requantization modes, the CONFIG ``rounding`` field's values (3 is refused).
MODES = ("tflite", "onnxruntime", "add")
#: The add mode's sums of valid constants stay below ``2**ADD_WIDTH`` in magnitude
#: (``sim_models.compiler_ops.add_grid`` checks a grid against it) ...
ADD_WIDTH = 48
#: ... held in ``ADD_BITS``-bit two's complement (headroom for the roundings; any other
#: constants wrap there, as :func:`sim_models.golden.requantize_add` defines).
ADD_BITS = ADD_WIDTH + 3
#: Significant bits each of the add mode's two sums is rounded to (a float32's).
ADD_SIGNIFICANT = 24


class _Lane(wiring.Component):
    """One output channel's requantization pipeline."""

    def __init__(self):
        super().__init__({
            "en": In(1),
            "acc": In(signed(32)), "bias": In(signed(32)),
            "multiplier": In(signed(32)), "shift": In(signed(8)),
            "zero_point": In(signed(8)), "clamp_min": In(signed(8)), "clamp_max": In(signed(8)),
            "mode": In(2),
            "inner_multiplier": In(32), "inner_bias": In(signed(32)), "inner_shift": In(8),
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
        m.d.comb += shifted.eq(Mux(self.mode == 2, self._add_path(m, s0),
                                   Mux(self.mode[0], self._float_path(m, s0), rounded))
                               + self.zero_point)
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

    def _add_path(self, m, s0):
        """Stages 1-3 of the add mode and the integer rounding of stage 4 (before the zero
        point): :func:`sim_models.golden.requantize_add`."""
        # 1: unpack acc = b - 256*a (stored int8 values), move to the tensors' domain
        # (minus the zero point: 0 for int8, -128 for uint8 held as int8), inner sum.
        b_st = s0[:8].as_signed()
        a_st = -(s0[8:].as_signed() + s0[7])
        a_in, b_in = Signal(signed(10)), Signal(signed(10))
        m.d.comb += [a_in.eq(a_st - self.zero_point), b_in.eq(b_st - self.zero_point)]
        mb, sb = self.inner_multiplier[:24], self.inner_multiplier[24:30]
        t1 = Signal(signed(ADD_BITS))
        m.d.comb += t1.eq(_shl(m, b_in * mb, sb) + _shl(m, self.inner_bias, self.inner_shift[:6]))
        r_t1, r_a = Signal(signed(ADD_BITS)), Signal(signed(10))
        with m.If(self.en):
            m.d.sync += [r_t1.eq(t1), r_a.eq(a_in)]
        # 2: the inner FMA rounded to 24 significant bits; the outer product.
        ma, sa = self.multiplier[:24], self.multiplier[24:30]
        r_s1, r_pa = Signal(signed(ADD_BITS)), Signal(signed(ADD_BITS))
        with m.If(self.en):
            m.d.sync += [r_s1.eq(_round_significant(m, r_t1)), r_pa.eq(_shl(m, r_a * ma, sa))]
        # 3: the outer FMA, rounded the same.
        t2 = Signal(signed(ADD_BITS))
        m.d.comb += t2.eq(r_pa + r_s1)
        r_s2 = Signal(signed(ADD_BITS))
        with m.If(self.en):
            m.d.sync += r_s2.eq(_round_significant(m, t2))
        # 4: times 2**-k, to an integer half to even; saturated to 33 bits (beyond int8).
        k = self.shift[:6]
        low = Signal(ADD_BITS)
        m.d.comb += low.eq(~_shl(m, Const(-1, signed(ADD_BITS)), k))
        whole = Signal(signed(ADD_BITS))
        m.d.comb += whole.eq(r_s2 >> k)
        rest = r_s2.as_unsigned() & low
        half = low ^ (low >> 1)
        up = (k != 0) & ((rest > half) | ((rest == half) & whole[0]))
        q = Signal(signed(ADD_BITS + 1))
        m.d.comb += q.eq(whole + up)
        return Mux(q > (1 << 32), 1 << 32, Mux(q < -(1 << 32), -(1 << 32), q))


def _shl(m, x, amount):
    """``x << amount`` in :data:`ADD_BITS`-bit two's complement, one mux level per bit of
    ``amount`` (no intermediate wider than the result)."""
    v = Signal(signed(ADD_BITS))
    m.d.comb += v.eq(x)
    for i in range(len(amount)):
        step = 1 << i
        v = Mux(amount[i], Cat(Const(0, step), v[:ADD_BITS - step]).as_signed() if
                step < ADD_BITS else Const(0, signed(ADD_BITS)), v)
    return v


def _round_significant(m, x):
    """Signed ``x`` (:data:`ADD_BITS` bits) rounded to :data:`ADD_SIGNIFICANT` significant
    bits, nearest, ties to even (on the magnitude)."""
    neg = x < 0
    mag = Signal(ADD_BITS)
    m.d.comb += mag.eq(Mux(neg, -x, x))
    rest, top = mag, []                  # the leading one's position, a bit at a time
    for step in (32, 16, 8, 4, 2, 1):
        above = Signal()
        m.d.comb += above.eq((rest >> step).any())
        narrowed = Signal(len(rest))
        m.d.comb += narrowed.eq(Mux(above, rest >> step, rest))
        rest, top = narrowed, [above] + top
    length = Signal(7)
    m.d.comb += length.eq(Mux(mag.any(), Cat(*top) + 1, 0))
    drop = Signal(6)
    m.d.comb += drop.eq(Mux(length > ADD_SIGNIFICANT, length - ADD_SIGNIFICANT, 0))
    low = Signal(ADD_BITS)           # the dropped bits' mask
    m.d.comb += low.eq(~_shl(m, Const(-1, signed(ADD_BITS)), drop))
    unit = (low + 1)[:ADD_BITS]
    rest, half = mag & low, low ^ (low >> 1)
    up = (drop != 0) & ((rest > half) | ((rest == half) & (mag & unit).any()))
    res = Signal(ADD_BITS + 1)
    m.d.comb += res.eq((mag & ~low) + Mux(up, unit, 0))
    return Mux(neg, -res, res)


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
    scaling), shared zero point and clamp range (the activation: none, ReLU, ReLU6); in the add
    mode the shared inner-sum constants ``inner_*`` too.
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
            "mode": In(2),
            "inner_multiplier": In(32), "inner_bias": In(signed(32)), "inner_shift": In(8),
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
                lane.inner_multiplier.eq(self.inner_multiplier),
                lane.inner_bias.eq(self.inner_bias), lane.inner_shift.eq(self.inner_shift),
                self.out[i].eq(lane.out),
            ]
        return m
