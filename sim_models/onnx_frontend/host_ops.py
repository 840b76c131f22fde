"""Host kernels: what still runs on the CPU, each bit-exact with onnxruntime's CPU kernel.

Tensors are held as int8 inside (uint8 tensors shifted by -128, with their zero points
shifted the same way, see :mod:`.graph`); every formula below is invariant under that shift, except QLinearAdd's float32 arithmetic,
which is done on the stored values.

The float arithmetic is done in float32, in the order onnxruntime's MLAS kernels do it:

* ``requantize_ort``: MlasRequantizeOutput -- ``float(acc + bias) * scale``, clamp to
  ``[lo - zp, hi - zp]``, round half to even, ``+ zp``.
* ``quantize_linear``: MlasQuantizeLinear -- ``x / scale`` (a division), clamp, round half to
  even, ``+ zp``.
* ``dequantize_linear``: ``float(x - zp) * scale``.
* ``qlinear_add``: the x86 kernel's float32 arithmetic with FMAs, on the stored (uint8 or
  int8) values, evaluated exactly in integers (:func:`sim_models.golden.qlinear_add`).
* ``qlinear_global_average_pool``: sum in int32, ``- zx * n``, requantized with
  ``sx / (sy * n)``.
* ``qlinear_average_pool``: QLinearAveragePool's float kernel -- every input dequantized
  to float32 (``sx * (x - zx)``), summed in float32 in window order, divided by the window's
  count, ``rne(y / sy + zy)`` saturated; a window as large as the input without padding
  falls back to the global average pool's integer kernel, as onnxruntime does.
* ``qlinear_concat``: per input, onnxruntime's 256-entry lookup table
  (``quantize(dequantize(v))``) unless its scale and zero point equal the output's.
* ``max_pool``: plain max over the window (exact; padding never wins).

``testbench/test_onnx_host_ops.py`` checks each against onnxruntime itself.
"""

from __future__ import annotations

import numpy as np

from .. import golden

__all__ = ["requantize_ort", "quantize_linear", "dequantize_linear", "qlinear_add",
           "qlinear_global_average_pool", "qlinear_average_pool", "avgpool_is_global",
           "qlinear_concat", "max_pool",
           "pool_output_size", "gap_scale"]

F32 = np.float32


def _wrap32(x):
    x = np.asarray(x, np.int64)
    return ((x + (1 << 31)) % (1 << 32)) - (1 << 31)


def requantize_ort(acc, scale, zero_point: int, clamp=(-128, 127), bias=None) -> np.ndarray:
    """int32 accumulators -> int8 as MlasRequantizeOutput does (single rounding).

    Parameters
    ----------
    acc : array of int (..., N)
        Accumulators (wrapped to int32).
    scale : float32 scalar or (N,) array
        The output scale, already computed in float32 the way the kernel does.
    zero_point : int
        Output zero point (int8 range, shifted for uint8 tensors).
    clamp : (int, int)
        The int8 range kept (a fused Relu/Clip narrows it).
    bias : (N,) int32, optional
        Added to the accumulators with 32-bit wrap before the conversion to float.

    Returns
    -------
    np.ndarray of int64
    """
    acc = np.asarray(acc, np.int64)
    if bias is not None:
        acc = acc + np.asarray(bias, np.int64)
    v = _wrap32(acc).astype(F32) * np.asarray(scale, F32)
    lo, hi = clamp
    v = np.clip(v, F32(lo - zero_point), F32(hi - zero_point))
    return np.rint(v).astype(np.int64) + zero_point


def quantize_linear(x, scale, zero_point: int, lo: int = -128, hi: int = 127) -> np.ndarray:
    """float32 -> integers in [lo, hi]: ``saturate(rne(x / scale) + zp)``."""
    v = np.asarray(x, F32) / F32(scale)
    v = np.clip(v, F32(lo - zero_point), F32(hi - zero_point))
    return np.rint(v).astype(np.int64) + zero_point


def dequantize_linear(x, scale, zero_point) -> np.ndarray:
    """integers -> float32: ``float(x - zp) * scale`` (scale/zp broadcast by the caller)."""
    return (np.asarray(x, np.int64) - np.asarray(zero_point, np.int64)).astype(F32) * \
        np.asarray(scale, F32)


def qlinear_add(a, sa, za, b, sb, zb, sc, zc, unsigned: bool = False) -> np.ndarray:
    """QLinearAdd as onnxruntime's x86 kernel (MlasQLinearAddKernelAvx2Helper) computes it:
    ``ra = sa/sc``, ``rb = sb/sc``, ``fixed = zc - (ra*za + rb*zb)`` in float32, then per
    element ``rne(fma(a, ra, fma(b, rb, fixed)))`` saturated (:func:`golden.qlinear_add`,
    exact integer arithmetic).  The float arithmetic sees the stored values, so uint8 tensors
    (``unsigned``) are computed on their uint8 values."""
    sh = 128 if unsigned else 0
    lo, hi = (0, 255) if unsigned else (-128, 127)
    return golden.qlinear_add(np.asarray(a, np.int64) + sh, sa, za + sh,
                              np.asarray(b, np.int64) + sh, sb, zb + sh, sc, zc + sh,
                              lo, hi) - sh


def qlinear_global_average_pool(x, sx, zx, sy, zy, channels_last: bool = False) -> np.ndarray:
    """QLinearGlobalAveragePool over the spatial axes of NCHW (or NHWC) ``x``."""
    x = np.asarray(x, np.int64)
    axes = tuple(range(1, x.ndim - 1)) if channels_last else tuple(range(2, x.ndim))
    n = int(np.prod([x.shape[a] for a in axes]))
    acc = x.sum(axis=axes, keepdims=True) - zx * n
    return requantize_ort(acc, gap_scale(sx, sy, n), zy)


def gap_scale(sx, sy, n: int) -> np.float32:
    """QLinearGlobalAveragePool's requantization scale over ``n`` pixels, in float32 as
    onnxruntime computes it: ``sx / (sy * n)``."""
    return F32(sx) / (F32(sy) * F32(n))


def avgpool_is_global(shape_nchw, kernel, pads) -> bool:
    """Whether onnxruntime runs a QLinearAveragePool as its global average pool (integer)
    kernel: the window covers the whole input and there is no padding."""
    return list(kernel) == list(shape_nchw[2:]) and not any(pads)


def qlinear_average_pool(x, sx, zx, sy, zy, kernel, strides, pads, count_include_pad: bool,
                         ceil_mode: bool, unsigned: bool = False, clamp=(-128, 127)):
    """QLinearAveragePool (2-D, NCHW ``x``, int8 inside) as onnxruntime's CPU kernel
    computes it (contrib_ops/cpu/quantization/qlinear_pool.cc): ``sx * (x - zx)`` in
    float32, summed over the window in row order in float32 (taps in the padding skipped),
    divided by the kernel size (``count_include_pad``) or by the taps inside the input,
    ``nearbyintf(y / sy + zy)`` on the stored zero point (uint8: ``zy + 128``), saturated,
    clamped to ``clamp`` (a fused activation's range).  The global case is
    :func:`qlinear_global_average_pool`."""
    x = np.asarray(x, np.int64)
    N, C, H, W = x.shape
    if avgpool_is_global(x.shape, kernel, pads):
        return np.clip(qlinear_global_average_pool(x, sx, zx, sy, zy), *clamp)
    (kh, kw), (sh, sw), (t, l, b, r) = kernel, strides, pads
    ho = pool_output_size(H, t, b, kh, sh, 1, ceil_mode)
    wo = pool_output_size(W, l, r, kw, sw, 1, ceil_mode)
    xf = dequantize_linear(x, sx, zx)
    big = np.zeros((N, C, t + max(H, (ho - 1) * sh + kh), l + max(W, (wo - 1) * sw + kw)),
                   F32)
    inside = np.zeros(big.shape[2:], np.int64)
    big[:, :, t:t + H, l:l + W] = xf
    inside[t:t + H, l:l + W] = 1
    y = np.zeros((N, C, ho, wo), F32)
    count = np.zeros((ho, wo), np.int64)
    for ky in range(kh):
        for kx in range(kw):
            rows, cols = slice(ky, ky + sh * ho, sh), slice(kx, kx + sw * wo, sw)
            y = y + big[:, :, rows, cols]        # + 0.0 for a tap in the padding: exact
            count += inside[rows, cols]
    y = y / (F32(kh * kw) if count_include_pad else count.astype(F32))
    sh8 = 128 if unsigned else 0
    v = np.rint(y / F32(sy) + F32(zy + sh8)).astype(np.int64) - sh8
    return np.clip(v, max(clamp[0], -128), min(clamp[1], 127))


def qlinear_concat(inputs, params, sy, zy, axis: int) -> np.ndarray:
    """QLinearConcat: ``inputs`` with ``params`` [(scale, zp)] requantized to (sy, zy)."""
    parts = []
    for x, (s, z) in zip(inputs, params):
        x = np.asarray(x, np.int64)
        if F32(s) == F32(sy) and z == zy:
            parts.append(x)
            continue
        table = quantize_linear(dequantize_linear(np.arange(-128, 128), s, z), sy, zy)
        parts.append(table[x + 128])
    return np.concatenate(parts, axis=axis)


def pool_output_size(size: int, pad_begin: int, pad_end: int, kernel: int, stride: int,
                     dilation: int = 1, ceil_mode: bool = False) -> int:
    """Output length of a pooling window along one axis, as ONNX defines it (with
    ``ceil_mode``, a last window that would start in the end padding is dropped)."""
    span = (kernel - 1) * dilation + 1
    num = size + pad_begin + pad_end - span
    o = (-(-num // stride) if ceil_mode else num // stride) + 1
    if ceil_mode and (o - 1) * stride >= size + pad_begin:
        o -= 1
    return o


def max_pool(x, kernel, strides, pads, dilations=None, ceil_mode: bool = False,
             fill=None) -> np.ndarray:
    """MaxPool over the spatial axes of NCHW ``x``; ``pads`` as ONNX (begins + ends);
    ``fill`` (default: the dtype's minimum) is what padding holds."""
    x = np.asarray(x) if fill is not None else np.asarray(x, np.int64)
    fill = np.iinfo(np.int64).min if fill is None else fill
    nd = len(kernel)
    dil = dilations or [1] * nd
    sp = x.shape[2:]
    out = [pool_output_size(sp[i], pads[i], pads[i + nd], kernel[i], strides[i], dil[i],
                            ceil_mode) for i in range(nd)]
    big = np.full(x.shape[:2] + tuple(sp[i] + pads[i] + pads[i + nd] + kernel[i] * dil[i] *
                                      strides[i] for i in range(nd)), fill, dtype=x.dtype)
    big[(slice(None), slice(None)) + tuple(slice(pads[i], pads[i] + sp[i])
                                           for i in range(nd))] = x
    y = np.full(x.shape[:2] + tuple(out), fill, dtype=x.dtype)
    for taps in np.ndindex(*kernel):
        idx = tuple(slice(taps[i] * dil[i], taps[i] * dil[i] + strides[i] * out[i], strides[i])
                    for i in range(nd))
        y = np.maximum(y, big[(slice(None), slice(None)) + idx])
    return y
