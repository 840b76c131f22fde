"""Golden model: the written specification of knpu's arithmetic, in plain NumPy.

Everything here is bit-exact with the hardware; the RTL is checked against it.

Integer semantics
-----------------
* Operands are signed ``input_width``-bit integers (int8: -128..127).
* A product is exact (int8 x int8 fits in 16 bits).
* Sums are kept in ``acc_width`` bits (32 by default) and **wrap** modulo
  ``2**acc_width`` in two's complement -- no saturation in the accumulator.  Since wrapping
  is a ring homomorphism, the order in which partial sums are added (tiling, dataflow)
  never changes the result.
* Requantization has two modes, chosen per layer:

  - TFLite's integer-only scheme (``MultiplyByQuantizedMultiplier``):
    ``SaturatingRoundingDoublingHighMul`` then ``RoundingDivideByPOT``, add the output zero
    point, clamp to the activation range, cast to int8.  A positive ``shift`` is a left
    shift applied first; the shifted value saturates to int32 (TFLite leaves that overflow
    undefined; we define it).  Two roundings (:func:`requantize`).
  - onnxruntime's (``MlasRequantizeOutput``): the int32 sum becomes a float32 (round to
    nearest even, exact below 2**24), is multiplied by the float32 scale (one IEEE float32
    product, round to nearest even), clamped to the output range less the zero point, and
    rounded to an integer half to even, then the zero point is added
    (:func:`requantize_ort`).  The scale is given as float32 exactly as onnxruntime computes
    it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from hdl.config import os_drain_row

__all__ = [
    "wrap", "check_operands", "gemm", "Tile", "tiles", "gemm_tiled", "ws_tile", "os_tile",
    "saturating_rounding_doubling_high_mul", "rounding_divide_by_pot", "requantize_ort",
    "scale_ort", "float32_bits",
    "multiply_by_quantized_multiplier", "quantize_multiplier", "activation_range",
    "requantize", "ACTIVATIONS", "max_accumulate", "max_pool_nhwc", "fma32",
    "qlinear_add", "qlinear_add_constants", "AddGrid", "round_significant", "qlinear_add_grid",
    "pack_add", "requantize_add",
]

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1
ACTIVATIONS = ("none", "relu", "relu6")


def wrap(x, bits: int) -> np.ndarray:
    """Two's-complement wrap of integers to ``bits`` bits (what a ``bits``-wide adder keeps)."""
    x = np.asarray(x, dtype=np.int64)
    if bits == 64:
        return x
    mod = np.int64(1) << np.int64(bits)
    half = np.int64(1) << np.int64(bits - 1)
    return ((x + half) % mod) - half


def check_operands(name: str, x, width: int = 8) -> np.ndarray:
    """Reject anything that is not an integer matrix within the signed ``width``-bit range."""
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"{name} must be a 2-D matrix, got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.integer):
        raise ValueError(f"{name} must hold integers, got dtype {x.dtype}")
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    if x.size and (x.min() < lo or x.max() > hi):
        raise ValueError(f"{name} has values outside int{width} range [{lo}, {hi}]")
    return x.astype(np.int64)


def gemm(a, b, acc_bits: int = 32, width: int = 8) -> np.ndarray:
    """``C = A @ B`` for int``width`` A (M x K) and B (K x N), accumulated in ``acc_bits``."""
    a, b = check_operands("A", a, width), check_operands("B", b, width)
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"inner dimensions differ: A is {a.shape}, B is {b.shape}")
    # int64 is exact up to K = 2**49 int8 products; wrap once at the end (see module doc).
    return wrap(a @ b, acc_bits)


@dataclass(frozen=True)
class Tile:
    """One pass through an R x C array: rows ``k0:k0+k`` of B and columns ``n0:n0+n``."""
    k0: int
    k: int
    n0: int
    n: int


def tiles(K: int, N: int, rows: int, cols: int) -> Iterator[Tile]:
    """Weight-stationary tiling of a K x N weight matrix onto ``rows`` x ``cols`` PEs.

    Order: N-tiles outer, K-tiles inner, so partial sums of one output block are finished
    before the next block starts.
    """
    for n0 in range(0, N, cols):
        for k0 in range(0, K, rows):
            yield Tile(k0, min(rows, K - k0), n0, min(cols, N - n0))


def gemm_tiled(a, b, rows: int, cols: int, acc_bits: int = 32, width: int = 8) -> np.ndarray:
    """GEMM computed the way a ``rows`` x ``cols`` WS array does it: tile by tile, with the
    partial sums of K-tiles added in ``acc_bits``-bit wrapping accumulators."""
    a, b = check_operands("A", a, width), check_operands("B", b, width)
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"inner dimensions differ: A is {a.shape}, B is {b.shape}")
    M, K, N = a.shape[0], a.shape[1], b.shape[1]
    out = np.zeros((M, N), dtype=np.int64)
    for t in tiles(K, N, rows, cols):
        part = ws_tile(a[:, t.k0:t.k0 + t.k], b[t.k0:t.k0 + t.k, t.n0:t.n0 + t.n], acc_bits)
        out[:, t.n0:t.n0 + t.n] = wrap(out[:, t.n0:t.n0 + t.n] + part, acc_bits)
    return out


def ws_tile(a_block, w_block, acc_bits: int = 32) -> np.ndarray:
    """What one WS pass emits: ``A (M x k) @ W (k x n)``, k <= rows, n <= cols.  Rows of A
    shorter than the array are zero-padded by the caller; zeros add nothing."""
    return wrap(np.asarray(a_block, np.int64) @ np.asarray(w_block, np.int64), acc_bits)


def os_tile(a_block, b_block, acc_bits: int = 32) -> np.ndarray:
    """What one OS pass emits, in the array's drain order: ``(A @ B)`` rows, bottom row
    first (see :func:`hdl.config.os_drain_row`)."""
    out = wrap(np.asarray(a_block, np.int64) @ np.asarray(b_block, np.int64), acc_bits)
    return out[os_drain_row(np.arange(len(out)), len(out))]


def max_accumulate(acc, result) -> np.ndarray:
    """A COMPUTE with ``acc_max``: each accumulator keeps the larger (signed int32) of
    itself and the new result."""
    return np.maximum(_as_i64(acc), _as_i64(result))


def max_pool_nhwc(x, kernel, stride, dilation=(1, 1)) -> np.ndarray:
    """Max pooling of an already padded NHWC tensor ``x`` (H, W, C): output pixel (y, x)
    is the largest ``x[y*sy + ky*dy, x*sx + kx*dx, c]`` over the kernel taps (no padding
    here: the caller fills the border with the int8 minimum, which never wins)."""
    x = _as_i64(x)
    (kh, kw), (sy, sx), (dy, dx) = kernel, stride, dilation
    ho = (x.shape[0] - (kh - 1) * dy - 1) // sy + 1
    wo = (x.shape[1] - (kw - 1) * dx - 1) // sx + 1
    out = np.full((ho, wo, x.shape[2]), np.iinfo(np.int64).min, np.int64)
    for ky in range(kh):
        for kx in range(kw):
            tap = x[ky * dy:ky * dy + sy * (ho - 1) + 1:sy, kx * dx:kx * dx + sx * (wo - 1) + 1:sx]
            out = np.maximum(out, tap)
    return out


# --- requantization (TFLite integer-only arithmetic) -------------------------------------

def _as_i64(x) -> np.ndarray:
    return np.asarray(x, dtype=np.int64)


def saturating_rounding_doubling_high_mul(a, b) -> np.ndarray:
    """High 32 bits of ``2*a*b``, rounded to nearest; ties go up for positive products and
    toward zero for negative ones (gemmlowp's nudge).  INT32_MIN*INT32_MIN saturates."""
    a, b = _as_i64(a), _as_i64(b)
    overflow = (a == INT32_MIN) & (b == INT32_MIN)
    ab = a * b  # |ab| <= 2**62: exact in int64
    nudge = np.where(ab >= 0, np.int64(1 << 30), np.int64(1 - (1 << 30)))
    total = ab + nudge
    # C integer division truncates toward zero; numpy's // floors, so correct negatives.
    q = np.abs(total) >> np.int64(31)
    high = np.where(total < 0, -q, q)
    return np.where(overflow, np.int64(INT32_MAX), high)


def rounding_divide_by_pot(x, exponent) -> np.ndarray:
    """``x / 2**exponent`` rounded to nearest, ties away from zero (gemmlowp's rule)."""
    x, exponent = _as_i64(x), _as_i64(exponent)
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def multiply_by_quantized_multiplier(x, multiplier, shift) -> np.ndarray:
    """``x * multiplier * 2**(shift - 31)`` with TFLite rounding (see module doc).  Shifts
    beyond what TFLite uses (-31..30) are defined as the requantizer reads them: a left
    shift of the low 5 bits of ``shift``, a right shift of the low 6 bits of ``-shift``
    (e.g. a lane left with the add mode's ``k`` when a CONFIG switches to TFLite)."""
    x, multiplier, shift = _as_i64(x), _as_i64(multiplier), _as_i64(shift)
    left = np.maximum(shift, 0) & 31
    right = np.maximum(-shift, 0) & 63
    shifted = np.clip(x << left, INT32_MIN, INT32_MAX)
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(shifted, multiplier), right)


def quantize_multiplier(real: float) -> tuple[int, int]:
    """A positive real scale -> (int32 multiplier in [2**30, 2**31), shift), as TFLite does."""
    if not (real > 0 and math.isfinite(real)):
        raise ValueError(f"requantization scale must be positive and finite, got {real!r}")
    mantissa, exponent = math.frexp(real)
    q = round(mantissa * (1 << 31))
    if q == 1 << 31:
        q //= 2
        exponent += 1
    if exponent < -31:
        return 0, 0
    if exponent > 30:
        raise ValueError(f"requantization scale {real!r} is too large (shift > 30)")
    return int(q), int(exponent)


def activation_range(activation: str, zero_point: int, scale: float | None = None) -> tuple[int, int]:
    """int8 clamp bounds for an activation, as TFLite's CalculateActivationRangeQuantized."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation {activation!r} is unknown: must be one of {ACTIVATIONS}")
    lo, hi = -128, 127
    if activation in ("relu", "relu6"):
        lo = max(lo, zero_point)
    if activation == "relu6":
        if scale is None:
            raise ValueError("relu6 needs the output scale to place 6.0")
        hi = min(hi, zero_point + int(round(6.0 / scale)))
    return lo, hi


def float32_bits(scale) -> np.ndarray:
    """The IEEE-754 bits of float32 scales (as the CONFIG instruction carries them)."""
    return np.asarray(scale, np.float32).view(np.uint32).astype(np.int64)


def _with_bias(acc, bias, clamp):
    """The sums with the bias added (32-bit wrap, as the accumulator adder does) and the
    clamp range, checked to be an int8 range."""
    acc = _as_i64(acc)
    if bias is not None:
        acc = wrap(acc + _as_i64(bias), 32)
    lo, hi = clamp
    if not -128 <= lo <= hi <= 127:
        raise ValueError(f"clamp range {clamp} is not within int8")
    return acc, (lo, hi)


def scale_ort(acc, scale) -> np.ndarray:
    """``rint(float32(acc) * scale)``: the int32 sum made float32 (round to nearest even),
    one float32 product with the float32 ``scale`` (round to nearest even), rounded to an
    integer half to even -- onnxruntime's requantization before the zero point and clamp."""
    scale = np.asarray(scale)
    if scale.dtype != np.float32:
        raise ValueError(f"the onnxruntime mode takes float32 scales, not {scale.dtype}")
    return np.rint(np.clip(_float32_product(acc, scale), -2.0 ** 32, 2.0 ** 32)).astype(np.int64)


def _float32_product(acc, scale) -> np.ndarray:
    """``float32(acc) * scale`` as the requantizer computes it for any bits a CONFIG may
    hold: the scale's sign bit is ignored, an infinite or NaN scale acts as a huge one
    (every non-zero sum saturates), and a float32 overflow saturates; the compiler only
    ever sends positive normal scales, where this is the IEEE product."""
    f = _as_i64(acc).astype(np.float32)
    mag = np.abs(scale)
    huge = ~np.isfinite(mag)
    with np.errstate(over="ignore", invalid="ignore"):
        p = f * np.where(huge, np.float32(1), mag)
        return np.where(huge, np.where(f == 0, np.float32(0), np.sign(f) * np.float32(np.inf)),
                        p)


def requantize_ort(acc, scale, zero_point: int = 0, clamp=(-128, 127),
                   bias=None) -> np.ndarray:
    """int32 accumulators (M x N) -> int8 as onnxruntime's CPU kernels do it.

    ``scale`` is a float32 scalar or length-N vector (per output channel); ``bias`` an
    optional length-N int32 vector added with 32-bit wrap.  onnxruntime clamps the float
    product to ``clamp`` less the zero point and then rounds; since those bounds are
    integers, rounding first and clamping after gives the same result."""
    acc, (lo, hi) = _with_bias(acc, bias, clamp)
    return np.clip(scale_ort(acc, scale) + zero_point, lo, hi).astype(np.int8)


def requantize(acc, multiplier, shift, zero_point: int = 0, clamp=(-128, 127),
               bias=None) -> np.ndarray:
    """int32 accumulators (M x N) -> int8: add bias, rescale, add zero point, clamp.

    ``multiplier`` and ``shift`` are scalars (per-tensor) or length-N vectors (per output
    channel, i.e. per column); ``bias`` is an optional length-N int32 vector added with
    32-bit wrap, as the accumulator adder does.
    """
    acc, (lo, hi) = _with_bias(acc, bias, clamp)
    scaled = multiply_by_quantized_multiplier(acc, multiplier, shift)
    return np.clip(scaled + zero_point, lo, hi).astype(np.int8)


# --- onnxruntime's QLinearAdd, evaluated exactly in integers -------------------------------

def _f32_parts(f) -> tuple[int, int]:
    """A finite float32 as ``(m, e)`` with ``f == m * 2**e`` exactly (``m`` signed)."""
    bits = int(np.asarray(f, np.float32).view(np.uint32))
    sign, exp, frac = bits >> 31, (bits >> 23) & 0xFF, bits & 0x7FFFFF
    if exp == 0xFF:
        raise ValueError(f"{float(np.float32(f))} is not a finite float32")
    m, e = (frac, -149) if exp == 0 else (frac | 1 << 23, exp - 150)
    return (-m if sign else m), e


def _round_f32(n: int, e: int) -> tuple[int, int]:
    """``n * 2**e`` rounded to float32 (24 significant bits, nearest even, subnormals at
    2**-149), as ``(m, e)``."""
    if n == 0:
        return 0, 0
    mag = abs(n)
    shift = max(mag.bit_length() - 24, -149 - e)
    if shift > 0:
        q, rem = mag >> shift, mag & ((1 << shift) - 1)
        half = 1 << (shift - 1)
        q += rem > half or (rem == half and q & 1)
        mag, e = q, e + shift
    if mag.bit_length() + e > 128:
        raise OverflowError("float32 overflow")
    return (-mag if n < 0 else mag), e


def fma32(x: int, r, c) -> tuple[int, int]:
    """``float32(x * r + c)`` with one rounding (a fused multiply-add) for an integer ``x``
    and float32 ``r``, ``c`` given as float32 or as exact ``(m, e)`` pairs; returns the
    result as ``(m, e)``.  Everything is an exact integer until the one rounding."""
    (mr, er), (mc, ec) = (v if isinstance(v, tuple) else _f32_parts(v) for v in (r, c))
    e0 = min(er, ec)
    return _round_f32((x * mr << (er - e0)) + (mc << (ec - e0)), e0)


def _rint(m: int, e: int) -> int:
    """``m * 2**e`` rounded to an integer, half to even."""
    if e >= 0:
        return m << e
    q, rem = divmod(m, 1 << -e)              # floor division: rem >= 0
    half = 1 << (-e - 1)
    return q + (rem > half or (rem == half and q & 1))


def qlinear_add_constants(sa, za, sb, zb, sc, zc) -> tuple:
    """QLinearAdd's per-tensor float32 constants as onnxruntime computes them: ``ra = sa/sc``,
    ``rb = sb/sc``, ``fixed = zc - (ra*za + rb*zb)``."""
    f32 = np.float32
    ra, rb = f32(sa) / f32(sc), f32(sb) / f32(sc)
    return ra, rb, f32(zc) - (ra * f32(za) + rb * f32(zb))


def qlinear_add(a, sa, za, b, sb, zb, sc, zc, lo: int = -128, hi: int = 127) -> np.ndarray:
    """QLinearAdd as onnxruntime's x86 kernel computes it, evaluated exactly: ``ra = sa/sc``,
    ``rb = sb/sc``, ``fixed = zc - (ra*za + rb*zb)`` in float32, then per element
    ``clamp(rint(fma(a, ra, fma(b, rb, fixed))), lo, hi)`` -- each FMA rounded once to
    float32, the last rounding half to even.  ``a``, ``b`` and the zero points are the
    stored values (uint8 tensors as uint8)."""
    ra_p, rb_p, fixed_p = (_f32_parts(v) for v in qlinear_add_constants(sa, za, sb, zb, sc,
                                                                          zc))
    a, b = np.broadcast_arrays(np.asarray(a, np.int64), np.asarray(b, np.int64))
    pairs, where = np.unique(np.stack([a.ravel(), b.ravel()]), axis=1, return_inverse=True)
    out = [min(max(_rint(*fma32(int(x), ra_p, fma32(int(y), rb_p, fixed_p))), lo), hi)
           for x, y in pairs.T]                 # each distinct (a, b) once
    return np.array(out, np.int64)[where.reshape(-1)].reshape(a.shape)


@dataclass(frozen=True)
class AddGrid:
    """QLinearAdd's float32 constants as integers on one fixed-point grid of ``2**-k``:
    ``ra = ma * 2**(sa - k)``, ``rb = mb * 2**(sb - k)``, ``fixed = mf * 2**(sf - k)``
    (``ma``, ``mb`` 24-bit significands, ``mf`` signed, the shifts >= 0)."""
    ma: int
    sa: int
    mb: int
    sb: int
    mf: int
    sf: int
    k: int


def round_significant(s, bits: int = 24) -> np.ndarray:
    """Integers ``s`` rounded to ``bits`` significant bits, to nearest, ties to even -- a
    float32 rounding of ``s * 2**-k`` done on the grid itself (exact while the result stays
    a normal float32, which :func:`qlinear_add_grid`'s caller checks)."""
    s = _as_i64(s)
    mag = np.abs(s)
    n = np.zeros_like(mag)
    for i in range(63):
        n = np.where(mag >> i != 0, i + 1, n)           # bit length
    drop = np.maximum(n - bits, 0)
    q, rem = mag >> drop, mag & ((np.int64(1) << drop) - 1)
    half = np.where(drop > 0, np.int64(1) << np.maximum(drop - 1, 0), 0)
    q = q + ((drop > 0) & ((rem > half) | ((rem == half) & (q & 1 == 1))))
    return np.sign(s) * (q << drop)


def qlinear_add_grid(a, b, g: AddGrid, lo: int = -128, hi: int = 127) -> np.ndarray:
    """:func:`qlinear_add` as fixed-point integer logic would compute it: ``s1 = b*mb<<sb +
    mf<<sf`` rounded to 24 significant bits (the inner FMA), ``s2 = a*ma<<sa + s1`` rounded
    the same (the outer FMA), then ``s2 * 2**-k`` rounded to an integer half to even and
    clamped.  Equal to :func:`qlinear_add` when every value fits 62 bits and each rounded
    FMA is a normal float32 (``sim_models.compiler_ops.add_grid`` checks both)."""
    a, b = _as_i64(a), _as_i64(b)
    s1 = round_significant((b * g.mb << g.sb) + (np.int64(g.mf) << g.sf))
    s2 = round_significant((a * g.ma << g.sa) + s1)
    q, rem = s2 >> g.k, s2 & ((np.int64(1) << g.k) - 1)      # floor, remainder >= 0
    half = np.int64(1) << max(g.k - 1, 0) if g.k else np.int64(0)
    up = (rem > half) | ((rem == half) & (q & 1 == 1)) if g.k else False
    return np.clip(q + up, lo, hi)


def pack_add(a, b) -> np.ndarray:
    """Two int8 tensors (stored values) as the add mode's accumulator: ``b - 256*a``."""
    return _as_i64(b) - 256 * _as_i64(a)


def _shl_wrap(x, amount, bits: int) -> np.ndarray:
    """``x << amount`` (amount 0..63) kept to ``bits``-bit two's complement."""
    x, amount = np.broadcast_arrays(_as_i64(x), _as_i64(amount))
    return wrap((x.astype(np.uint64) << amount.astype(np.uint64)).view(np.int64), bits)


def requantize_add(acc, multiplier, shift, inner, zero_point: int = 0,
                   clamp: tuple[int, int] = (-128, 127), bias=0) -> np.ndarray:
    """The requantizer's add mode (``hdl.requant``) on any register values: ``acc + bias``
    (32-bit wrap) unpacked as ``b - 256*a`` (:func:`pack_add`), both minus ``zero_point``
    (the stored values' offset: 0 for int8, -128 for uint8 held as int8; 10-bit wrap), then
    :func:`qlinear_add_grid` with ``multiplier = ma | sa << 24``, ``shift = k`` (low 6 bits
    each, per lane), ``inner = (mb | sb << 24, mf, sf)`` (shared), every sum wrapped to
    ``ADD_BITS`` bits; the result (saturated to +-2**32) plus ``zero_point``, clamped.  For
    a grid ``sim_models.compiler_ops.add_grid`` accepts nothing wraps and this is exactly
    :func:`qlinear_add_grid` on the tensors' values."""
    from hdl.requant import ADD_BITS, ADD_SIGNIFICANT
    s0 = wrap(_as_i64(acc) + _as_i64(bias), 32)
    b = wrap(((s0 & 0xFF) ^ 0x80) - 0x80 - zero_point, 10)
    a = wrap(-((s0 >> 8) + ((s0 >> 7) & 1)) - zero_point, 10)
    mult = _as_i64(multiplier) & 0xFFFFFFFF
    ma, sa, k = mult & 0xFFFFFF, (mult >> 24) & 63, _as_i64(shift) & 63
    inner_mult, mf, sf = (_as_i64(v) for v in inner)
    mb, sb = (inner_mult & 0xFFFFFF), (inner_mult >> 24) & 63
    t1 = wrap(_shl_wrap(b * mb, sb, ADD_BITS) + _shl_wrap(mf, sf & 63, ADD_BITS), ADD_BITS)
    s1 = wrap(round_significant(t1, ADD_SIGNIFICANT), ADD_BITS)
    t2 = wrap(_shl_wrap(a * ma, sa, ADD_BITS) + s1, ADD_BITS)
    s2 = wrap(round_significant(t2, ADD_SIGNIFICANT), ADD_BITS)
    k = np.broadcast_to(np.minimum(k, ADD_BITS), s2.shape)   # beyond: every bit dropped alike
    q, rem = s2 >> k, s2 & ((np.int64(1) << k) - 1)
    half = np.where(k > 0, np.int64(1) << np.maximum(k - 1, 0), 0)
    q = q + ((k > 0) & ((rem > half) | ((rem == half) & (q & 1 == 1))))
    q = np.clip(q, -(1 << 32), 1 << 32) + zero_point
    lo, hi = clamp
    return np.where(q < lo, lo, np.where(q > hi, hi, q))
