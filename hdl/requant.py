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
            "inner_multiplier": In(32),
            "inner_term": In(signed(ADD_BITS)),     # inner_bias << inner_shift, shared
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
        wide = Signal(signed(63))                 # 32 bits shifted left by at most 31
        m.d.comb += wide.eq(s0 << left)
        with m.If(self.en):
            m.d.sync += s1.eq(Mux(wide > INT32_MAX, INT32_MAX, Mux(wide < INT32_MIN, INT32_MIN, wide)))

        # The product held in 63 bits: it needs 64 only for INT32_MIN**2 = 2**62, which
        # s2_overflow replaces (64-bit arithmetic on it would make Verilator's 65-bit sums
        # multi-word).
        s2 = Signal(signed(63))
        s2_overflow = Signal()
        with m.If(self.en):
            m.d.sync += [s2.eq(s1 * self.multiplier),
                         s2_overflow.eq((s1 == INT32_MIN) & (self.multiplier == INT32_MIN))]

        # gemmlowp: (s2 + nudge) / 2**31 truncated toward zero, nudge = 2**30 (s2 >= 0) or
        # 1 - 2**30.  Both cases are floor((s2 + 2**30) / 2**31): for s2 < 0 the sum is
        # negative and truncation is the floor of (sum + 2**31 - 1) / 2**31.  Without the
        # overflow case |s2| < 2**62, so the quotient fits 32 bits.
        s3 = Signal(signed(32))
        total = Signal(signed(64))
        m.d.comb += total.eq(s2 + (1 << 30))
        with m.If(self.en):
            m.d.sync += s3.eq(Mux(s2_overflow, INT32_MAX, total[31:].as_signed()))

        mask = Signal(32)
        m.d.comb += mask.eq(_low_mask(right, 32))
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
        top = Signal(5)            # the leading one's position (0 for a zero sum)
        norm = Signal(32)
        m.d.comb += [top.eq(_leading_one(m, mag)), norm.eq(mag << ~top)]   # ~top == 31 - top
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
        m.d.comb += t1.eq(_shl(b_in * mb, sb) + self.inner_term)
        r_t1, r_a = Signal(signed(ADD_BITS)), Signal(signed(10))
        with m.If(self.en):
            m.d.sync += [r_t1.eq(t1), r_a.eq(a_in)]
        # 2: the inner FMA rounded to 24 significant bits; the outer product.
        ma, sa = self.multiplier[:24], self.multiplier[24:30]
        r_s1, r_pa = Signal(signed(ADD_BITS)), Signal(signed(ADD_BITS))
        with m.If(self.en):
            m.d.sync += [r_s1.eq(_round_significant(m, r_t1)), r_pa.eq(_shl(r_a * ma, sa))]
        # 3: the outer FMA, rounded the same.
        t2 = Signal(signed(ADD_BITS))
        m.d.comb += t2.eq(r_pa + r_s1)
        r_s2 = Signal(signed(ADD_BITS))
        with m.If(self.en):
            m.d.sync += r_s2.eq(_round_significant(m, t2))
        # 4: times 2**-k, to an integer half to even; saturated to 33 bits (beyond int8).
        k = self.shift[:6]
        low = Signal(ADD_BITS)
        m.d.comb += low.eq(_low_mask(k, ADD_BITS))
        whole = Signal(signed(ADD_BITS))
        m.d.comb += whole.eq(r_s2 >> k)
        rest = r_s2.as_unsigned() & low
        half = low ^ (low >> 1)
        up = (k != 0) & ((rest > half) | ((rest == half) & whole[0]))
        q = Signal(signed(ADD_BITS + 1))
        m.d.comb += q.eq(whole + up)
        return Mux(q > (1 << 32), 1 << 32, Mux(q < -(1 << 32), -(1 << 32), q))


def _shl(x, amount, width=ADD_BITS):
    """``x << amount`` in ``width``-bit two's complement (signed), one mux level per bit of
    ``amount``; each level only as wide as its value can be (``len(x)`` plus the shifts so
    far, at most ``width``), so no intermediate is wider than its range."""
    v = x.as_signed() if not x.shape().signed else x
    for i in range(len(amount)):
        step = 1 << i
        n = min(width, len(v) + step)
        shifted = (Cat(Const(0, step), v)[:n].as_signed() if step < width
                   else Const(0, signed(n)))
        v = Mux(amount[i], shifted, v)
    return v


def _low_mask(amount, width):
    """``2**amount - 1`` in ``width`` bits (all ones for ``amount >= width``): a right shift
    of ones, which does not widen as a variable left shift does."""
    ones = Const((1 << width) - 1, width)
    return ones >> Mux(amount >= width, 0, width - amount)[:width.bit_length()]


def _leading_one(m, x):
    """The position of ``x``'s leading one (0 for ``x == 0``), by halving: each step keeps
    the upper half if it has a one, else the lower, and the halves narrow with the steps."""
    rest, top = x, []
    step = 1 << (len(x) - 1).bit_length() - 1
    while step:
        above = Signal()
        m.d.comb += above.eq(rest[step:].any())
        narrowed = Signal(step)
        m.d.comb += narrowed.eq(Mux(above, rest[step:], rest[:step]))
        rest, top, step = narrowed, [above] + top, step >> 1
    return Cat(*top)


def _round_significant(m, x):
    """Signed ``x`` (:data:`ADD_BITS` bits) rounded to :data:`ADD_SIGNIFICANT` significant
    bits, nearest, ties to even (on the magnitude)."""
    neg = x < 0
    mag = Signal(ADD_BITS)              # |x| <= 2**(ADD_BITS - 1)
    m.d.comb += mag.eq(Mux(neg, -x, x))
    top = _leading_one(m, mag)
    # At most ADD_BITS - ADD_SIGNIFICANT bits are dropped: the masks need only that many.
    n_drop = ADD_BITS - ADD_SIGNIFICANT
    drop = Signal(range(n_drop + 1))
    m.d.comb += drop.eq(Mux(top >= ADD_SIGNIFICANT, top + 1 - ADD_SIGNIFICANT, 0))
    low = Signal(n_drop)                # the dropped bits' mask
    m.d.comb += low.eq(_low_mask(drop, n_drop))
    unit = low + 1
    rest, half = mag[:n_drop] & low, low ^ (low >> 1)
    up = (drop != 0) & ((rest > half) | ((rest == half) & (mag[:n_drop + 1] & unit).any()))
    res = Signal(ADD_BITS)
    m.d.comb += res.eq(Cat(mag[:n_drop] & ~low, mag[n_drop:]) + Mux(up, unit, 0))
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
        # The add mode's inner bias term depends only on shared parameters: once, not per lane.
        inner_term = Signal(signed(ADD_BITS))
        m.d.comb += inner_term.eq(_shl(self.inner_bias, self.inner_shift[:6]))
        for i in range(self.lanes):
            lane = m.submodules[f"lane{i}"] = _Lane()
            m.d.comb += [
                lane.en.eq(self.en), lane.acc.eq(self.acc[i]), lane.bias.eq(self.bias[i]),
                lane.multiplier.eq(self.multiplier[i]), lane.shift.eq(self.shift[i]),
                lane.zero_point.eq(self.zero_point), lane.clamp_min.eq(self.clamp_min),
                lane.clamp_max.eq(self.clamp_max), lane.mode.eq(self.mode),
                lane.inner_multiplier.eq(self.inner_multiplier),
                lane.inner_term.eq(inner_term),
                self.out[i].eq(lane.out),
            ]
        return m
