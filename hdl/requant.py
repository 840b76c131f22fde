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

from amaranth import Cat, Const, Module, Mux, Signal, Value, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["Requantizer", "LATENCY", "MODES", "ADD_WIDTH", "ADD_BITS", "ADD_SIGNIFICANT",
           "PATHS", "GATES", "stage_gates"]

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


#: The modes' paths (stages 1-4 each): which ``mode`` values take each one.  Mode 3 is
#: refused by CONFIG; the hardware gives it the onnxruntime path, as ``mode[0]`` says.
PATHS = ("tflite", "float", "add")
#: Per path, one load enable per stage 1..LATENCY-1 (bit k-1: stage k).
GATES = data.StructLayout({name: LATENCY - 1 for name in PATHS})


def stage_gates(valid, mode):
    """The :data:`GATES` value: stage ``k`` of the configured mode's path loads while
    ``valid[k - 1]`` (the row that stage takes is valid); the other paths never load.

    Parameters
    ----------
    valid : Value, ``LATENCY - 1`` bits
        Bit ``k - 1``: stage ``k - 1`` holds a valid row.
    mode : Value, 2 bits
        The CONFIG ``rounding`` field (:data:`MODES`).
    """
    taken = {"tflite": mode == 0, "float": mode[0], "add": mode == 2}
    return Cat(*[Mux(taken[name], valid, 0) for name in PATHS])


def _gated(m, gate, shape, value, name):
    """A comb signal equal to ``value`` while ``gate``; every use of it is under ``gate``
    too, so its value otherwise (1) is never read.  A simulator then computes ``value`` only
    while ``gate`` is high (Verilator merges the signals of one gate into one ``if``): a
    plain multi-use wire would be computed every cycle, and a default of 0 lets Verilator's
    DFG pass turn the condition into a mask, computed every cycle too.  It is an ``assign``,
    not a process, so Icarus evaluates it from time zero (``test_verilog``)."""
    shape = Value.cast(value).shape() if shape is None else shape
    sig = Signal(shape, name=name)
    m.d.comb += sig.eq(Mux(gate, value, 1))
    return sig


def _register(shape=1, name=None):
    """A lane's pipeline register: no reset, as a datapath flop needs none (its value is
    read only after a valid row loaded it; the valid bits are reset).  Loaded by
    :func:`_load`."""
    return Signal(shape, name=name, reset_less=True)


def _load(m, gate, *assignments):
    """``register.eq(value)`` for each pair while ``gate``, as ``Mux(gate, value,
    register)``: with no reset and no ``If`` the register's next state is an ``assign``,
    so no process holds it (Icarus would leave a process that reads no reset at X) and a
    simulator tests no reset each cycle."""
    m.d.sync += [reg.eq(Mux(gate, value, reg)) for reg, value in assignments]


class _Lane(wiring.Component):
    """One output channel's requantization pipeline.

    ``en`` loads stage 0 (the row entering); ``gates`` (:func:`stage_gates`) load stages
    1-4 of the configured mode's path only, and each path's logic is computed under its
    stage's gate (:func:`_gated`), so a simulator evaluates none of it while no row is in
    that stage.  The paths end in one zero-point add and one clamp, on the configured
    mode's stage-4 result, under any path's stage-4 gate.  A stage that does not load keeps
    a value nobody reads: every row sees exactly the logic it saw with every stage loading
    every cycle."""

    def __init__(self):
        super().__init__({
            "en": In(1), "gates": In(GATES),
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
        s0 = _register(signed(32))
        _load(m, self.en, (s0, self.acc + self.bias))
        paths = {"tflite": self._tflite_path, "float": self._float_path, "add": self._add_path}
        results = {}                                 # stage 4's value before the zero point
        for name in PATHS:
            gate = [self.gates[name][k] for k in range(LATENCY - 1)]   # stages 1..4
            results[name] = paths[name](m, s0, gate)
        # Stage 4 ends the same in every mode: one zero-point add and one clamp for the
        # three paths, on the configured mode's result (the selection of stage_gates), under
        # any path's stage-4 gate.  The sum keeps 34 bits, as each path's did: those bits of
        # a sign-extended result plus the zero point are the path's own.
        last = Signal(name="last")
        m.d.comb += last.eq(Cat(*(self.gates[name][LATENCY - 2] for name in PATHS)).any())
        result = Mux(self.mode[0], results["float"],
                     Mux(self.mode == 2, results["add"], results["tflite"]))
        shifted = _gated(m, last, signed(34), result + self.zero_point, "shifted")
        with m.If(last):
            m.d.sync += self.out.eq(Mux(shifted < self.clamp_min, self.clamp_min,
                                        Mux(shifted > self.clamp_max, self.clamp_max, shifted)))
        return m

    def _tflite_path(self, m, s0, gate):
        """Stages 1-3 of the TFLite mode and the rounding divide of stage 4, stage ``k``
        under ``gate[k - 1]``: the value before the zero point."""
        left = Mux(self.shift > 0, self.shift, 0)[:5]
        right = Mux(self.shift < 0, -self.shift, 0)[:6]
        # 1: saturating left shift (32 bits shifted left by at most 31).
        wide = _gated(m, gate[0], signed(63), s0 << left, "wide")
        s1 = _register(signed(32))
        _load(m, gate[0], (s1, Mux(wide > INT32_MAX, INT32_MAX,
                                   Mux(wide < INT32_MIN, INT32_MIN, wide))))
        # 2: the product held in 63 bits: it needs 64 only for INT32_MIN**2 = 2**62, which
        # s2_overflow replaces (64-bit arithmetic on it would make Verilator's 65-bit sums
        # multi-word).
        s2 = _register(signed(63))
        s2_overflow = _register()
        _load(m, gate[1], (s2, s1 * self.multiplier),
              (s2_overflow, (s1 == INT32_MIN) & (self.multiplier == INT32_MIN)))
        # 3: gemmlowp: (s2 + nudge) / 2**31 truncated toward zero, nudge = 2**30 (s2 >= 0)
        # or 1 - 2**30.  Both cases are floor((s2 + 2**30) / 2**31): for s2 < 0 the sum is
        # negative and truncation is the floor of (sum + 2**31 - 1) / 2**31.  Without the
        # overflow case |s2| < 2**62, so the quotient fits 32 bits.
        s3 = _register(signed(32))
        total = _gated(m, gate[2], signed(64), s2 + (1 << 30), "total")
        _load(m, gate[2], (s3, Mux(s2_overflow, INT32_MAX, total[31:].as_signed())))
        # 4: rounding divide by 2**right.
        mask = _gated(m, gate[3], 32, _low_mask(right, 32), "mask")
        remainder = s3.as_unsigned() & mask
        threshold = (mask >> 1) + (s3 < 0)
        return _gated(m, gate[3], signed(33), (s3 >> right) + (remainder > threshold),
                      "rounded")

    def _float_path(self, m, s0, gate):
        """Stages 1-3 of the onnxruntime mode and the integer rounding of stage 4, stage
        ``k`` under ``gate[k - 1]``: ``rint(float32(float32(s0) * scale))`` as a signed
        value (before the zero point)."""
        # 1: int32 -> float32 as (24-bit significand, exponent), round to nearest even.
        neg = s0 < 0
        mag = _gated(m, gate[0], 32, Mux(neg, -s0, s0), "mag")
        top = _gated(m, gate[0], 5, _leading_one(m, gate[0], mag), "top")   # 0 for zero
        norm = _gated(m, gate[0], 32, mag << ~top, "norm")                 # ~top == 31 - top
        f_mant, f_exp, f_neg = _register(24), _register(signed(7)), _register()
        mant, carry = _round_nearest_even(m, gate[0], norm[8:], norm[7], norm[:7].any())
        _load(m, gate[0], (f_mant, mant), (f_exp, top - 23 + carry), (f_neg, neg))
        # 2: significand product; the scale is positive and normal (the compiler checks).
        scale = self.multiplier.as_unsigned()
        p_prod, p_exp, p_neg = _register(48), _register(signed(11)), _register()
        _load(m, gate[1], (p_prod, f_mant * Cat(scale[:23], 1)),
              (p_exp, f_exp + scale[23:31] - (127 + 23)), (p_neg, f_neg))
        # 3: the float32 product: round to 24 significant bits, nearest even.
        high = p_prod[47]
        keep = _gated(m, gate[2], 24, Mux(high, p_prod[24:48], p_prod[23:47]), "keep")
        mant, carry = _round_nearest_even(m, gate[2], keep, Mux(high, p_prod[23], p_prod[22]),
                                          Mux(high, p_prod[:23].any(), p_prod[:22].any()))
        q_mant, q_exp, q_neg = _register(24), _register(signed(11)), _register()
        _load(m, gate[2], (q_mant, mant), (q_exp, p_exp + 23 + high + carry), (q_neg, p_neg))
        # 4: to an integer, half to even (saturating far outside any int8 range).
        # Right shift, for q_exp < 0: 1..26 wherever it is used, so 5 bits; the shifts of
        # Const(1, 27) below then stay within 64 bits (with 6 bits they were 90 bits wide,
        # which Verilator evaluates word by word: a tenth of the C++ harness's time).
        k = _gated(m, gate[3], 5, Mux(q_exp < -25, 26, -q_exp), "k")
        whole = _gated(m, gate[3], 24, q_mant >> k, "whole")
        rest = q_mant & ((Const(1, 27) << k) - 1)[:24]
        half = _gated(m, gate[3], None, (Const(1, 27) << k) >> 1, "half")
        up = (rest > half) | ((rest == half) & whole[0])
        magnitude = _gated(m, gate[3], 34,
                           Mux(q_mant == 0, 0,
                               Mux(q_exp >= 8, 1 << 32,
                                   Mux(q_exp >= 0, q_mant << q_exp[:3], whole + up))),
                           "magnitude")
        return Mux(q_neg, -magnitude.as_signed(), magnitude.as_signed())

    def _add_path(self, m, s0, gate):
        """Stages 1-3 of the add mode and the integer rounding of stage 4, stage ``k`` under
        ``gate[k - 1]`` (before the zero point): :func:`sim_models.golden.requantize_add`."""
        # 1: unpack acc = b - 256*a (stored int8 values), move to the tensors' domain
        # (minus the zero point: 0 for int8, -128 for uint8 held as int8), inner sum.
        b_st = s0[:8].as_signed()
        a_st = -(s0[8:].as_signed() + s0[7])
        a_in = _gated(m, gate[0], signed(10), a_st - self.zero_point, "a_in")
        b_in = _gated(m, gate[0], signed(10), b_st - self.zero_point, "b_in")
        mb, sb = self.inner_multiplier[:24], self.inner_multiplier[24:30]
        t1 = _gated(m, gate[0], signed(ADD_BITS),
                    _shl(b_in * mb, sb, stage=(m, gate[0])) + self.inner_term, "t1")
        r_t1, r_a = _register(signed(ADD_BITS)), _register(signed(10))
        _load(m, gate[0], (r_t1, t1), (r_a, a_in))
        # 2: the inner FMA rounded to 24 significant bits; the outer product.
        ma, sa = self.multiplier[:24], self.multiplier[24:30]
        r_s1, r_pa = _register(signed(ADD_BITS)), _register(signed(ADD_BITS))
        _load(m, gate[1], (r_s1, _round_significant(m, gate[1], r_t1)),
              (r_pa, _shl(r_a * ma, sa, stage=(m, gate[1]))))
        # 3: the outer FMA, rounded the same.
        t2 = _gated(m, gate[2], signed(ADD_BITS), r_pa + r_s1, "t2")
        r_s2 = _register(signed(ADD_BITS))
        _load(m, gate[2], (r_s2, _round_significant(m, gate[2], t2)))
        # 4: times 2**-k, to an integer half to even; saturated to 33 bits (beyond int8).
        k = self.shift[:6]
        low = _gated(m, gate[3], ADD_BITS, _low_mask(k, ADD_BITS), "low")
        whole = _gated(m, gate[3], signed(ADD_BITS), r_s2 >> k, "whole")
        rest = r_s2.as_unsigned() & low
        half = _gated(m, gate[3], ADD_BITS, low ^ (low >> 1), "half")
        up = (k != 0) & ((rest > half) | ((rest == half) & whole[0]))
        q = _gated(m, gate[3], signed(ADD_BITS + 1), whole + up, "q")
        return Mux(q > (1 << 32), 1 << 32, Mux(q < -(1 << 32), -(1 << 32), q))


def _shl(x, amount, width=ADD_BITS, stage=None):
    """``x << amount`` in ``width``-bit two's complement (signed), one mux level per bit of
    ``amount``; each level only as wide as its value can be (``len(x)`` plus the shifts so
    far, at most ``width``), so no intermediate is wider than its range.  With ``stage =
    (m, gate)`` each level is a :func:`_gated` signal of that stage."""
    v = x.as_signed() if not x.shape().signed else x
    for i in range(len(amount)):
        step = 1 << i
        n = min(width, len(v) + step)
        shifted = (Cat(Const(0, step), v)[:n].as_signed() if step < width
                   else Const(0, signed(n)))
        v = Mux(amount[i], shifted, v)
        if stage is not None:
            v = _gated(*stage, signed(n), v, f"shl{i}")
    return v


def _low_mask(amount, width):
    """``2**amount - 1`` in ``width`` bits (all ones for ``amount >= width``): a right shift
    of ones, which does not widen as a variable left shift does."""
    ones = Const((1 << width) - 1, width)
    return ones >> Mux(amount >= width, 0, width - amount)[:width.bit_length()]


def _leading_one(m, gate, x):
    """The position of ``x``'s leading one (0 for ``x == 0``), by halving: each step keeps
    the upper half if it has a one, else the lower, and the halves narrow with the steps
    (each step's signals :func:`_gated` by ``gate``)."""
    rest, top = x, []
    step = 1 << (len(x) - 1).bit_length() - 1
    while step:
        above = _gated(m, gate, 1, rest[step:].any(), "above")
        narrowed = _gated(m, gate, step, Mux(above, rest[step:], rest[:step]), "narrowed")
        rest, top, step = narrowed, [above] + top, step >> 1
    return Cat(*top)


def _round_significant(m, gate, x):
    """Signed ``x`` (:data:`ADD_BITS` bits) rounded to :data:`ADD_SIGNIFICANT` significant
    bits, nearest, ties to even (on the magnitude); its signals :func:`_gated` by ``gate``."""
    neg = x < 0
    mag = _gated(m, gate, ADD_BITS, Mux(neg, -x, x), "mag")     # |x| <= 2**(ADD_BITS - 1)
    top = _gated(m, gate, 6, _leading_one(m, gate, mag), "top")
    # At most ADD_BITS - ADD_SIGNIFICANT bits are dropped: the masks need only that many.
    n_drop = ADD_BITS - ADD_SIGNIFICANT
    drop = _gated(m, gate, range(n_drop + 1),
                  Mux(top >= ADD_SIGNIFICANT, top + 1 - ADD_SIGNIFICANT, 0), "drop")
    low = _gated(m, gate, n_drop, _low_mask(drop, n_drop), "low")   # the dropped bits' mask
    unit = _gated(m, gate, n_drop + 1, low + 1, "unit")
    rest = mag[:n_drop] & low
    half = _gated(m, gate, n_drop, low ^ (low >> 1), "half")
    up = (drop != 0) & ((rest > half) | ((rest == half) & (mag[:n_drop + 1] & unit).any()))
    res = _gated(m, gate, ADD_BITS, Cat(mag[:n_drop] & ~low, mag[n_drop:]) + Mux(up, unit, 0),
                 "res")
    return Mux(neg, -res, res)


def _round_nearest_even(m, gate, keep, round_bit, sticky):
    """``keep`` (24 bits) rounded up when the dropped part is over half, or exactly half with
    ``keep`` odd; a carry out renormalizes to 2**23 with the exponent one higher.  Returns
    ``(significand, carry)``; the sum is :func:`_gated` by ``gate``."""
    kept = _gated(m, gate, 25, keep + (round_bit & (sticky | keep[0])), "kept")
    return Mux(kept[24], 1 << 23, kept[:24]), kept[24]


class Requantizer(wiring.Component):
    """``lanes`` int32 -> int8 in a 5-stage pipeline: ``acc`` is taken while ``en`` is high
    (a valid row) and comes out on ``out`` :data:`LATENCY` cycles later; rows may follow
    each other every cycle or with gaps.

    Per-lane bias, multiplier and shift (per output channel; equal in every lane for per-tensor
    scaling), shared zero point and clamp range (the activation: none, ReLU, ReLU6); in the add
    mode the shared inner-sum constants ``inner_*`` too.  A stage only loads while it takes a
    valid row, and only the configured mode's path (:func:`stage_gates`): ``out`` holds the
    last row's value until the next row reaches it.
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
        # valid[k]: stage k holds a valid row; the stages' load enables, once for all lanes.
        valid = Signal(LATENCY - 1)
        m.d.sync += valid.eq(Cat(self.en, valid[:-1]))
        gates = Signal(GATES)
        m.d.comb += gates.eq(stage_gates(valid, self.mode))
        for i in range(self.lanes):
            lane = m.submodules[f"lane{i}"] = _Lane()
            m.d.comb += [
                lane.en.eq(self.en), lane.gates.eq(gates),
                lane.acc.eq(self.acc[i]), lane.bias.eq(self.bias[i]),
                lane.multiplier.eq(self.multiplier[i]), lane.shift.eq(self.shift[i]),
                lane.zero_point.eq(self.zero_point), lane.clamp_min.eq(self.clamp_min),
                lane.clamp_max.eq(self.clamp_max), lane.mode.eq(self.mode),
                lane.inner_multiplier.eq(self.inner_multiplier),
                lane.inner_term.eq(inner_term),
                self.out[i].eq(lane.out),
            ]
        return m
