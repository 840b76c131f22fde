"""Lowering of the integer graph's convolutions and matrix products onto the compiler.

Zero points become the compiler's business, not the user's:

* **input zero point** ``zx``: ``sum((x - zx) * d) = sum(x * d) - zx * sum(d)``, so
  ``-zx * sum_k d[k, n]`` is folded into the int32 bias, and convolution padding is filled
  with ``zx`` (a real zero) in the padded input the core reads;
* **weight zero point** ``zw`` (per tensor or per output channel): the core multiplies by
  ``d = w - zw``.  When ``d`` leaves int8 (uint8 weights, or int8 weights with a non-zero
  zero point), it is split as ``d = lo + hi`` with both parts in int8, and the product is
  computed as one GEMM over a doubled K (the input repeated: ``[x, x] @ [lo; hi]``).  Cost:
  twice the MACs, weight bytes and input bytes of that layer; nothing on the host;
* **uint8** tensors are int8 inside (see :mod:`.graph`);
* **groups** and **dilation**: a depthwise convolution (group = channels = filters) uses the
  compiler's depthwise path; other groups are expanded to a dense kernel with zero blocks,
  dilation to a kernel with zero taps (exact; the zero MACs are the cost).

The requantization is onnxruntime's (single rounding, float32 scale computed as
onnxruntime computes it), done by the core's store unit when the compiler has the
``onnxruntime`` rounding mode, else by the host after a raw int32 store.  A QLinearAdd runs
in the requantizer's add mode (:func:`lower_add`) when :func:`op_add_grid` finds an exact
grid, else on the host (:func:`add_host_reason` says why).
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from hdl.config import NPUConfig

from .. import golden
from ..compiler import (ALIGN, LayerError, Requant, compile_conv2d, compile_conv_chain,
                        compile_gemm, compile_gemm_chain)
from ..compiler_ops import INT8_MIN, add_grid, compile_add, compile_maxpool
from ..workloads import Layer as WLayer
from .graph import OnnxImportError
from .host_ops import (avgpool_is_global, dequantize_linear, gap_scale, pool_output_size,
                       quantize_linear, requantize_ort)
from .wholegraph import Placement, link_slices

__all__ = ["NPU_REQUANT", "lower_conv", "conv_pair_reason", "lower_conv_pair",
           "lower_dense_matmul", "lower_gemm_chain", "lower_matmul", "Lowered",
           "maxpool_host_reason",
           "lower_maxpool", "flat_matmul_linkable", "lower_flat_matmul", "gap_host_reason",
           "lower_gap", "concat_rescale", "concat_host_reason", "lower_concat", "op_add_grid",
           "add_host_reason", "lower_add", "avgpool_host_reason", "lower_avgpool",
           "avgpool_npu_exact", "AVGPOOL_EXACT_TAPS"]

#: True when the compiler's requantizer has onnxruntime's single rounding.
NPU_REQUANT = "rounding" in {f.name for f in dataclasses.fields(Requant)}


@dataclasses.dataclass
class Lowered:
    """NPU layers for one graph op, and how their outputs make the op's output."""
    layers: list                      # [Layer]
    assemble: object                  # callable(list of layer outputs) -> op output
    host_requant: bool                # the host requantizes (no NPU mode, or raw int32 op)
    places: list | None = None        # where each tensor input sits in its image (Placement)
    out_geom: tuple | None = None     # (Ho, Wo, channels, stacked rows per image) of the
    #                                   output rows, for ops whose output can be routed


def _split(d):
    """``d`` (int) as ``lo + hi`` with both in int8, or ``(d, None)`` when d fits."""
    if d.min(initial=0) >= -128 and d.max(initial=0) <= 127:
        return d, None
    lo = np.clip(d, -128, 127)
    return lo, d - lo


def _requant(op, bias, n):
    """(Requant for the compiler, host post-processing or None)."""
    a = op.attrs
    if a["scale"] is None:          # raw int32 (ConvInteger / MatMulInteger)
        return Requant(), (lambda acc: golden.wrap(acc + bias, 32))
    scale = np.broadcast_to(a["scale"], (n,)).astype(np.float32)
    zp = int(a["yq"].zp.reshape(-1)[0])
    clamp = a["clamp"]
    bias32 = golden.wrap(bias, 32)
    if NPU_REQUANT:
        s = scale if np.any(scale != scale[0]) else np.float32(scale[0])
        return Requant(scale=s, zero_point=zp, bias=bias32, rounding="onnxruntime",
                       clamp=tuple(clamp)), None
    return Requant(), (lambda acc: requantize_ort(acc, scale, zp, clamp, bias32))


def _dense_kernel(op, w, zw, C):
    """ONNX weights (M, C/g, kh, kw) -> d = w - zw as (KH, KW, C, M), dilated, grouped;
    or the depthwise (KH, KW, C) kernel when the layer is depthwise."""
    a = op.attrs
    M, Cg, kh, kw = w.shape
    g = a["group"]
    if Cg * g != C or M % g:
        raise OnnxImportError(f"node {op.name!r}: group={g} does not divide {C} input "
                              f"channels / {M} filters")
    d = np.asarray(w, np.int64) - zw.reshape(-1, 1, 1, 1)
    dh, dw = a["dilations"]
    KH, KW = (kh - 1) * dh + 1, (kw - 1) * dw + 1
    dd = np.zeros((M, Cg, KH, KW), np.int64)
    dd[:, :, ::dh, ::dw] = d
    if g == C and M == C:
        return dd[:, 0].transpose(1, 2, 0), True
    dense = np.zeros((KH, KW, C, M), np.int64)
    Mg = M // g
    for gi in range(g):
        dense[:, :, gi * Cg:(gi + 1) * Cg, gi * Mg:(gi + 1) * Mg] = \
            dd[gi * Mg:(gi + 1) * Mg].transpose(2, 3, 1, 0)
    return dense, False


@dataclasses.dataclass
class _ConvSpec:
    """One conv op as the compiler takes it: the padded, batch-stacked NHWC image, the
    kernel (``d = w - zw``, split over a doubled K when it leaves int8), the requant and
    the host post-processing (None when the core requantizes)."""
    img: np.ndarray
    kernel: np.ndarray
    stride: int
    depthwise: bool
    requant: Requant
    post: object
    place: Placement
    out_geom: tuple                   # (Ho, Wo, channels, stacked output rows per image)
    batch: int


def _conv_spec(op, x, w, bias) -> _ConvSpec:
    """The compiler's operands for one conv op (ONNX NCHW ``x`` and weights, int8 inside)."""
    a = op.attrs
    N, C, H, W = x.shape
    M = w.shape[0]
    zx = a["xq"].zp_scalar("input", op.name)
    zw = np.broadcast_to(a["wq"].zp.reshape(-1), (M,)) if a["wq"].zp.size in (1, M) else None
    if zw is None:
        raise OnnxImportError(f"node {op.name!r}: weight zero points must be per tensor or per "
                              f"output channel")
    kernel, depthwise = _dense_kernel(op, w, zw, C)
    lo, hi = _split(kernel)
    if hi is not None and depthwise:      # the split needs the dense form
        dense = np.zeros(kernel.shape[:2] + (C, C), np.int64)
        for c in range(C):
            dense[:, :, c, c] = kernel[:, :, c]
        kernel, depthwise = dense, False
        lo, hi = _split(kernel)
    total = kernel.sum(axis=(0, 1)) if depthwise else kernel.sum(axis=(0, 1, 2))
    b = np.zeros(M, np.int64) if bias is None else np.asarray(bias, np.int64).reshape(-1)
    b = b - zx * total
    wk = lo if hi is None else np.concatenate([lo, hi], axis=2)
    t, l, bo, r = a["pads"]
    requant, post = _requant(op, b, M)
    # A batch is one layer: the padded images stacked along H (each padded to a multiple of
    # the stride), the output rows that straddle two images discarded.
    s = a["stride"]
    Hp = H + t + bo
    Hs = -(-Hp // s) * s
    KH = wk.shape[0]
    if Hp < KH or W + l + r < wk.shape[1]:
        raise OnnxImportError(f"node {op.name!r}: kernel larger than the padded input")
    imgs = []
    for n in range(N):
        img = np.asarray(x[n], np.int64).transpose(1, 2, 0)
        imgs.append(np.pad(img, ((t, bo + (Hs - Hp if n < N - 1 else 0)), (l, r), (0, 0)),
                           constant_values=zx))
    img = np.concatenate(imgs, axis=0)
    if hi is not None:
        img = np.concatenate([img, img], axis=2)
    place = Placement(0, Hs, Hp, W + l + r, t, l, img.shape[2], hi is not None, N)
    geom = ((Hp - KH) // s + 1, (W + l + r - wk.shape[1]) // s + 1, M, Hs // s)
    return _ConvSpec(img, wk, s, depthwise, requant, post, place, geom, N)


def _conv_lowered(spec: _ConvSpec, layer) -> Lowered:
    """A compiled conv (or conv chain ending in ``spec``'s op) as the op's Lowered."""
    ho, _, _, pitch = spec.out_geom
    N, post = spec.batch, spec.post

    def assemble(outs):
        y = np.stack([outs[0][n * pitch:n * pitch + ho] for n in range(N)])   # N, Ho, Wo, M
        if post:
            y = post(y)
        return y.transpose(0, 3, 1, 2)
    return Lowered([layer], assemble, post is not None, [spec.place], spec.out_geom)


def lower_conv(cfg: NPUConfig, op, x, w, bias) -> Lowered:
    """One conv op (ONNX NCHW ``x`` and weights, int8 inside) as one NPU layer per image."""
    spec = _conv_spec(op, x, w, bias)
    img, wk = spec.img, spec.kernel
    layer = compile_conv2d(cfg, img, wk, stride=spec.stride, padding=0,
                           depthwise=spec.depthwise, requant=spec.requant, name=op.name)
    layer.meta["workload"] = WLayer(layer.name, "conv", h=img.shape[0], w=img.shape[1],
                                    c=img.shape[2], kh=wk.shape[0], kw=wk.shape[1],
                                    n=spec.out_geom[2],
                                    stride=spec.stride, depthwise=spec.depthwise)
    layer.meta["batch"] = spec.batch
    return _conv_lowered(spec, layer)


def conv_pair_reason(cfg: NPUConfig, op1, op2) -> str | None:
    """Why conv ``op2``, reading conv ``op1``'s output, cannot read it from the scratchpad
    (:func:`lower_conv_pair`), or None when it may: a weight-stationary core, both ops
    requantized by the core, ``op2`` a 1x1, stride-1, unpadded, ungrouped, undilated
    convolution (only those read a dense A where it lies)."""
    a1, a2 = op1.attrs, op2.attrs
    if cfg.dataflow != "ws":
        return "output-stationary core"
    if not NPU_REQUANT or a1["scale"] is None or a2["scale"] is None:
        return "an op whose output the host requantizes"
    if op2.inputs[0] != op1.outputs[0]:
        return f"{op2.name!r} does not read {op1.name!r}"
    if a2["stride"] != 1 or any(a2["pads"]) or a2["group"] != 1 or \
            tuple(a2["dilations"]) != (1, 1):
        return f"{op2.name!r} is not a 1x1 stride-1 unpadded dense convolution"
    return None


def lower_conv_pair(cfg: NPUConfig, op1, x, w1, b1, op2, w2, b2) -> Lowered | None:
    """Conv ``op1`` and the 1x1 conv ``op2`` that reads its output as ONE layer
    (``compiler.compile_conv_chain``): ``op1``'s int8 output stays in the scratchpad (STORE
    ``to_sp``) and ``op2`` reads it there.  None when the pair cannot chain
    (:func:`conv_pair_reason`, ``op2``'s weights need the doubled-K split, or
    ``compiler.chain_pays`` finds the chain does not move fewer DRAM bytes here); the
    Lowered is ``op2``'s (its output, assembled as :func:`lower_conv` does, with ``op1``'s
    stacked-row pitch), its input placement ``op1``'s."""
    if conv_pair_reason(cfg, op1, op2) is not None or tuple(np.shape(w2)[2:]) != (1, 1):
        return None
    s1 = _conv_spec(op1, x, w1, b1)
    ho, wo, m, pitch = s1.out_geom
    zx2 = op2.attrs["xq"].zp_scalar("input", op2.name)
    s2 = _conv_spec(op2, np.full((s1.batch, m, ho, wo), zx2, np.int64), w2, b2)
    # the 1x1 convolution runs on every stacked row op1 computes (those straddling two
    # images too), so its output rows keep op1's pitch
    s2 = dataclasses.replace(s2, out_geom=(ho, wo, s2.out_geom[2], pitch))
    if s2.place.repeat or s2.depthwise or s2.post is not None or s1.post is not None:
        return None
    try:
        layer = compile_conv_chain(cfg, s1.img, s1.kernel, s2.kernel.reshape(m, -1),
                                   stride=s1.stride, padding=0, depthwise=s1.depthwise,
                                   requants=(s1.requant, s2.requant),
                                   name=f"{op1.name}+{op2.name}")
    except LayerError:
        return None
    if not layer.meta["on_chip"]:
        return None
    _require_in_place(layer, s1.img, op1.name, "input")
    layer.meta["batch"] = s1.batch
    low = _conv_lowered(s2, layer)
    low.places = [s1.place]
    return low


def _matmul_b(op, b_val, bias):
    """A matmul op's B side: ``(B, d, lo, hi, b, za)`` with ``B`` transposed as the op says,
    ``d = B - zb`` split as ``lo + hi`` (:func:`_split`), ``b`` the int bias per column and
    ``za`` A's zero point."""
    at = op.attrs
    B = np.asarray(b_val, np.int64)
    if at["trans_b"]:
        B = B.T
    Nn = B.shape[-1]
    za = at["aq"].zp_scalar("A", op.name)
    zb = at["bq"].zp.reshape(-1)
    if zb.size not in (1, Nn):
        raise OnnxImportError(f"node {op.name!r}: B zero points must be per tensor or per column")
    d = B - zb.reshape(1, -1)
    lo, hi = _split(d)
    b = np.zeros(Nn, np.int64) if bias is None else \
        np.broadcast_to(np.asarray(bias, np.int64).reshape(-1), (Nn,))
    return B, d, lo, hi, b, za


def lower_matmul(cfg: NPUConfig, op, a_val, b_val, bias) -> Lowered:
    """QLinearMatMul / MatMulInteger / QGemm / QDQ MatMul, Gemm: ``A (..., M, K) @ B``;
    a 2-D ``B`` takes every leading row of ``A`` in one layer, a batched ``B`` (numpy
    matmul broadcasting) gives one layer per matrix."""
    A = np.asarray(a_val, np.int64)
    if op.attrs["trans_a"]:
        A = A.T
    B, d, lo, hi, b, za = _matmul_b(op, b_val, bias)
    K, Nn = B.shape[-2:]
    if A.shape[-1] != K:
        raise OnnxImportError(f"node {op.name!r}: A is {A.shape}, B is {B.shape}")
    if B.ndim == 2:
        groups = [(A.reshape(-1, K), lo, hi, d)]
        out_shape = A.shape[:-1] + (Nn,)
    else:
        lead = np.broadcast_shapes(A.shape[:-2], B.shape[:-2])
        A3 = np.broadcast_to(A, lead + A.shape[-2:]).reshape(-1, *A.shape[-2:])
        L3, D3 = (np.broadcast_to(v, lead + v.shape[-2:]).reshape(-1, K, Nn) for v in (lo, d))
        H3 = None if hi is None else np.broadcast_to(hi, lead + (K, Nn)).reshape(-1, K, Nn)
        groups = [(A3[i], L3[i], None if H3 is None else H3[i], D3[i]) for i in range(len(A3))]
        out_shape = lead + (A.shape[-2], Nn)
    layers, posts = [], []
    for i, (a2, lo2, hi2, d2) in enumerate(groups):
        bb = b - za * d2.sum(axis=0)
        Bk = lo2 if hi2 is None else np.concatenate([lo2, hi2], axis=0)
        Ak = a2 if hi2 is None else np.concatenate([a2, a2], axis=1)
        requant, post = _requant(op, bb, Nn)
        layers.append(compile_gemm(cfg, Ak, Bk, requant,
                                   name=op.name if len(groups) == 1 else f"{op.name}[{i}]"))
        posts.append(post)

    def assemble(outs):
        ys = [p(o) if p else o for p, o in zip(posts, outs)]
        return np.stack(ys).reshape(out_shape)
    return Lowered(layers, assemble, posts[0] is not None)


def _require_in_place(layer, operand, node: str, what: str) -> None:
    """Refuse ``layer`` unless its image begins with ``operand`` as int8 (where the layer
    before writes it in the whole-graph program)."""
    data = np.asarray(operand, np.int64).astype(np.int8).tobytes()
    if bytes(layer.dram[:len(data)]) != data:
        raise OnnxImportError(f"node {node!r}: its {what} is not where the layer before can "
                              f"write it in place")


def _rows_place(M: int, K: int) -> Placement:
    """The placement of a 2-D (M x K) int8 matrix stored row-major at address 0 (one image
    row of M pixels of K channels)."""
    return Placement(0, 1, 1, M, 0, 0, K, False, 1)


def lower_dense_matmul(cfg: NPUConfig, op, a, b_val, bias) -> Lowered:
    """A matmul of a 2-D ``a`` (M x K) whose A the op before can write in place: the layer's
    A the first thing in its image, row-major; its output routed as one image row of M
    pixels (:func:`.wholegraph.link_graph`)."""
    low = lower_matmul(cfg, op, a, b_val, bias)
    layer = low.layers[0]
    if np.ndim(a) != 2 or len(low.layers) != 1 or layer.meta["K"] != np.shape(a)[1]:
        raise OnnxImportError(f"node {op.name!r}: its A operand is not where the layer before "
                              f"can write it in place")
    _require_in_place(layer, a, op.name, "A operand")
    M, K = np.shape(a)
    low.places = [_rows_place(M, K)]
    low.out_geom = (1, M, layer.meta["N"], 1)
    return low


def lower_gemm_chain(cfg: NPUConfig, ops, a, bs, biases) -> Lowered | None:
    """Matmul ops, each reading the one before's output as its A (2-D, int8), as ONE layer
    (``compiler.compile_gemm_chain``): every intermediate stays in the scratchpad (STORE
    ``to_sp``).  None when one needs the doubled-K split or a host requant, or the chain
    does not fit or pay here (``compiler.chain_pays``).  The Lowered is the last op's, its
    input placement the first's (:func:`lower_dense_matmul`)."""
    if cfg.dataflow != "ws" or not NPU_REQUANT or np.ndim(a) != 2 or \
            any(op.attrs["trans_a"] or op.attrs["scale"] is None for op in ops):
        return None
    weights, requants = [], []
    for op, b_val, bias in zip(ops, bs, biases):
        _, d, lo, hi, b, za = _matmul_b(op, b_val, bias)
        if hi is not None or lo.ndim != 2:
            return None
        requant, post = _requant(op, b - za * d.sum(axis=0), lo.shape[1])
        if post is not None:
            return None
        weights.append(lo)
        requants.append(requant)
    try:
        layer = compile_gemm_chain(cfg, np.asarray(a, np.int64), weights, requants,
                                   name="+".join(op.name for op in ops))
    except LayerError:
        return None
    if not layer.meta["on_chip"]:
        return None
    _require_in_place(layer, a, ops[0].name, "A operand")
    M, K = np.shape(a)
    N = layer.meta["N"]
    return Lowered([layer], lambda outs: outs[0].reshape(M, N), False, [_rows_place(M, K)],
                   (1, M, N, 1))


def maxpool_host_reason(cfg: NPUConfig, op) -> str | None:
    """Why a MaxPool op stays on the host, or None when the NPU runs it."""
    a = op.attrs
    if cfg.dataflow != "ws":
        return "output-stationary core: max pooling needs weight-stationary strided tap loads"
    if len(a["kernel"]) != 2:
        return f"{len(a['kernel'])}-D pooling (the NPU pools 2-D NCHW tensors)"
    if a["strides"][0] != a["strides"][1]:
        return f"strides {a['strides']} differ along H and W"
    return None


def _pool_image(x, kernel, s: int, dilation, pads, ceil_mode: bool, fill: int):
    """The padded, batch-stacked NHWC image a pooling layer reads (as :func:`lower_conv`
    stacks a batch), with enough end padding for ``ceil_mode``'s last window: (image,
    (Ho, Wo), Placement of the input in it, stacked output rows per image)."""
    N, C, H, W = x.shape
    (kh, kw), (dy, dx) = kernel, dilation
    t, l, bo, r = pads
    ho = pool_output_size(H, t, bo, kh, s, dy, ceil_mode)
    wo = pool_output_size(W, l, r, kw, s, dx, ceil_mode)
    bo = max(bo, (ho - 1) * s + (kh - 1) * dy + 1 - H - t)
    r = max(r, (wo - 1) * s + (kw - 1) * dx + 1 - W - l)
    Hp = H + t + bo
    Hs = -(-Hp // s) * s
    imgs = [np.pad(np.asarray(x[n], np.int64).transpose(1, 2, 0),
                   ((t, bo + (Hs - Hp if n < N - 1 else 0)), (l, r), (0, 0)),
                   constant_values=fill) for n in range(N)]
    place = Placement(0, Hs, Hp, W + l + r, t, l, C, False, N)
    return np.concatenate(imgs, axis=0), (ho, wo), place, Hs // s


def _pool_assemble(N, ho, pitch):
    """Stacked (rows, Wo, C) pooling output -> NCHW, the rows straddling images dropped."""
    def assemble(outs):
        y = np.stack([outs[0][n * pitch:n * pitch + ho] for n in range(N)])
        return y.transpose(0, 3, 1, 2)
    return assemble


def lower_maxpool(cfg: NPUConfig, op, x) -> Lowered:
    """One MaxPool op (NCHW ``x``, int8 inside) as one NPU layer for the whole batch: the
    images padded with the int8 minimum (plus, with ``ceil_mode``, enough end padding for
    the last window) and stacked along H as :func:`lower_conv` does."""
    reason = maxpool_host_reason(cfg, op)
    if reason:
        raise OnnxImportError(f"node {op.name!r} (MaxPool): {reason}")
    a = op.attrs
    N, C = x.shape[:2]
    (kh, kw), s, (dy, dx) = a["kernel"], a["strides"][0], a["dilations"]
    img, (ho, wo), place, pitch = _pool_image(x, (kh, kw), s, (dy, dx), a["pads"],
                                              a["ceil_mode"], INT8_MIN)
    layer = compile_maxpool(cfg, img, (kh, kw), s, (dy, dx), name=op.name)
    layer.meta["workload"] = WLayer(layer.name, "conv", h=img.shape[0], w=img.shape[1], c=C,
                                    kh=(kh - 1) * dy + 1, kw=(kw - 1) * dx + 1, n=C, stride=s,
                                    depthwise=True)
    layer.meta["batch"] = N
    return Lowered([layer], _pool_assemble(N, ho, pitch), False, [place], (ho, wo, C, pitch))


def avgpool_host_reason(cfg: NPUConfig, op, shape) -> str | None:
    """Why an AveragePool stays on the host, or None when the NPU runs it."""
    a = op.attrs
    if len(shape) != 4:
        return f"{len(shape)}-D input (the NPU pools 2-D NCHW tensors)"
    if avgpool_is_global(shape, a["kernel"], a["pads"]):
        return gap_host_reason(_as_gap(op), 4)
    if cfg.dataflow != "ws":
        return "output-stationary core (the pool runs as a depthwise layer on weight-" \
               "stationary cores)"
    if a["strides"][0] != a["strides"][1]:
        return f"strides {a['strides']} differ along H and W"
    (kh, kw), s, (t, l, b, r) = a["kernel"], a["strides"][0], a["pads"]
    H, W = shape[2:]
    ho = pool_output_size(H, t, b, kh, s, 1, a["ceil_mode"])
    wo = pool_output_size(W, l, r, kw, s, 1, a["ceil_mode"])
    if not a["count_include_pad"] and (t or l or (ho - 1) * s + kh > H or
                                       (wo - 1) * s + kw > W):
        return "count_include_pad=0 with windows over the padding: a divisor per output " \
               "position, which the per-channel requantizer cannot apply"
    if not a.get("approx_ok") and not avgpool_npu_exact(op):
        return "onnxruntime's float kernel: the NPU's exact mean can round the other way " \
               "near a half step (provably equal only for equal input/output scales and " \
               f"an odd window of at most {AVGPOOL_EXACT_TAPS} taps; execute(..., " \
               "approx_avgpool=True) / make run APPROX_AVGPOOL=1 runs it on the NPU, " \
               "one step off at most)"
    return None


#: The largest odd window for which :func:`avgpool_npu_exact` holds (see its proof).
AVGPOOL_EXACT_TAPS = 175


def avgpool_npu_exact(op) -> bool:
    """Whether the NPU's AveragePool (the exact window sum ``acc = sum(x - zx)`` times
    ``sx / (sy*k)``, one float32 rounding) provably equals onnxruntime's float kernel
    (float32 terms ``sx*(x - zx)`` summed in order, divided by ``k``, ``rint(y/sy + zy)``).

    With ``sx == sy`` the exact mean is ``acc / k``; for odd ``k`` it is never a half
    integer and lies at least ``1/(2k)`` from one.  onnxruntime's float error on it is at
    most about ``k * 255 * 2**-24`` steps (``k`` roundings of sums of magnitude up to
    ``255 k sx``, divided by ``k``), the NPU's a few ulp of 255: both are below ``1/(2k)``
    while ``k**2 * 510 < 2**24`` (``k <= 181``; :data:`AVGPOOL_EXACT_TAPS` keeps a margin),
    so both round to the same integer.  Any other case can differ by one step where the
    mean lies within float32 noise of a half step."""
    a = op.attrs
    k = a["kernel"][0] * a["kernel"][1]
    same = np.float32(a["xq"].scale_scalar()) == np.float32(a["yq"].scale_scalar())
    return bool(same and k % 2 == 1 and k <= AVGPOOL_EXACT_TAPS)


def _as_gap(op):
    """An AveragePool whose window is the whole unpadded input, as the global average
    pool onnxruntime runs it as."""
    return dataclasses.replace(op, attrs={**op.attrs, "channels_last": False})


def lower_avgpool(cfg: NPUConfig, op, x) -> Lowered:
    """QLinearAveragePool (NCHW ``x``) on the NPU.  A window over the whole input without
    padding is the global average pool (:func:`lower_gap`, exact: onnxruntime runs its
    integer kernel then).  Otherwise a depthwise convolution with unit weights over the
    input padded with its zero point, ``bias = -zx * kh*kw`` (so the accumulator is the
    window's exact ``sum(x - zx)``, padding adding 0), requantized by the onnxruntime mode
    with ``sx / (sy * kh*kw)``.  onnxruntime sums the dequantized values in float32 and
    divides twice, so where the exact mean lies within float32 rounding of a half step the
    two can differ by one step (measured in the tests; the global case is exact)."""
    reason = avgpool_host_reason(cfg, op, x.shape)
    if reason:
        raise OnnxImportError(f"node {op.name!r} (AveragePool): {reason}")
    a = op.attrs
    if avgpool_is_global(x.shape, a["kernel"], a["pads"]):
        return lower_gap(cfg, _as_gap(op), x)
    N, C = x.shape[:2]
    (kh, kw), s = a["kernel"], a["strides"][0]
    zx, zy = a["xq"].zp_scalar("X", op.name), a["yq"].zp_scalar("Y", op.name)
    img, (ho, wo), place, pitch = _pool_image(x, (kh, kw), s, (1, 1), a["pads"],
                                              a["ceil_mode"], zx)
    requant = Requant(scale=gap_scale(a["xq"].scale_scalar(), a["yq"].scale_scalar(), kh * kw),
                      zero_point=zy, bias=np.full(C, -zx * kh * kw, np.int64),
                      rounding="onnxruntime", clamp=tuple(a.get("clamp", (-128, 127))))
    layer = compile_conv2d(cfg, img, np.ones((kh, kw, C), np.int64), stride=s, padding=0,
                           depthwise=True, requant=requant, name=op.name)
    layer.meta["workload"] = WLayer(layer.name, "conv", h=img.shape[0], w=img.shape[1], c=C,
                                    kh=kh, kw=kw, n=C, stride=s, depthwise=True)
    layer.meta["batch"] = N
    # onnxruntime's kernel is a float one: flag the outputs as bounded unless provably equal
    layer.meta["ort_float"] = not avgpool_npu_exact(op)
    return Lowered([layer], _pool_assemble(N, ho, pitch), False, [place], (ho, wo, C, pitch))


def _hwc_rows(B, C, H, W):
    """Rows of ``B`` (K = C*H*W, NCHW flatten order) reordered to the NHWC order
    ``(y*W + x)*C + c``: the product with an NHWC-flattened input is then the same."""
    return B[np.arange(C * H * W).reshape(C, H, W).transpose(1, 2, 0).reshape(-1)]


def _dense(addr: int, shape_nchw) -> Placement:
    """The placement of an NCHW tensor stored densely as NHWC pixels at ``addr``."""
    N, C, H, W = shape_nchw
    return Placement(addr, H, H, W, 0, 0, C, False, N)


def _check_in_place(op, layer, place: Placement, x, what: str):
    """Raise unless ``x`` (NCHW) is what ``layer``'s image holds at ``place``: where the
    layer before can write it in place."""
    lo = place.pixel(0, 0, 0)
    nhwc = np.asarray(x, np.int64).transpose(0, 2, 3, 1).astype(np.int8).tobytes()
    if bytes(layer.dram[lo:lo + len(nhwc)]) != nhwc:
        raise OnnxImportError(f"node {op.name!r}: its {what} is not where the layer before "
                              f"can write it in place")


def flat_matmul_linkable(op, graph) -> bool:
    """Whether a matmul fed by ``Flatten(axis=1)`` of a 4-D NPU output can read that output
    in place: int8 output, constant 2-D B whose zero-point-corrected weights fit int8 (no
    K split) and A not transposed."""
    a = op.attrs
    B = graph.consts.get(op.inputs[1])
    if a["scale"] is None or a["trans_a"] or B is None or np.ndim(B) != 2:
        return False
    B = np.asarray(B, np.int64)
    d = (B.T if a["trans_b"] else B) - a["bq"].zp.reshape(1, -1)
    return _split(d)[1] is None


def lower_flat_matmul(cfg: NPUConfig, op, x, b_val, bias) -> Lowered:
    """A matmul of ``Flatten(x)`` (``x`` NCHW) that reads ``x`` as the NPU left it, NHWC:
    B's rows reordered to match (:func:`_hwc_rows`), so the input needs no relayout.  The
    layer's A (N x H*W*C) is the first thing in its image."""
    N, C, H, W = x.shape
    B = np.asarray(b_val, np.int64)
    B = _hwc_rows(B.T if op.attrs["trans_b"] else B, C, H, W)
    flat = dataclasses.replace(op, attrs={**op.attrs, "trans_b": False})
    A = np.asarray(x, np.int64).transpose(0, 2, 3, 1).reshape(N, -1)
    low = lower_matmul(cfg, flat, A, B, bias)
    layer = low.layers[0]
    if len(low.layers) != 1 or layer.meta["K"] != A.shape[1] or \
            bytes(layer.dram[:A.size]) != A.astype(np.int8).tobytes():
        raise OnnxImportError(f"node {op.name!r}: its A operand is not where a flattened "
                              f"input can be written in place")
    low.places = [_dense(0, x.shape)]
    return low


def gap_host_reason(op, x_ndim: int) -> str | None:
    """Why a global average pool stays on the host, or None when the NPU runs it."""
    if op.attrs.get("channels_last"):
        return "channels_last input"
    if x_ndim != 4:
        return f"{x_ndim}-D input (the NPU pools 2-D NCHW tensors)"
    return None


def lower_gap(cfg: NPUConfig, op, x) -> Lowered:
    """QLinearGlobalAveragePool (NCHW ``x``) as one GEMM: ``ones @ X`` sums each image's
    pixels per channel (A: N x N*H*W, a row of ones per image; B: the batch's NHWC pixels,
    N*H*W x C), and the requantizer's onnxruntime mode finishes it as onnxruntime does,
    ``requantize_ort(sum - zx*n, sx / (sy*n), zy)`` (bias ``-zx*n``).  B sits in the image
    right after A, where the layer before can write it in place."""
    reason = gap_host_reason(op, x.ndim)
    if reason:
        raise OnnxImportError(f"node {op.name!r} (GlobalAveragePool): {reason}")
    a = op.attrs
    N, C, H, W = x.shape
    P = H * W
    zx, zy = a["xq"].zp_scalar("X", op.name), a["yq"].zp_scalar("Y", op.name)
    ones = np.kron(np.eye(N, dtype=np.int64), np.ones((1, P), np.int64))
    B = np.asarray(x, np.int64).transpose(0, 2, 3, 1).reshape(N * P, C)
    requant = Requant(scale=gap_scale(a["xq"].scale_scalar(), a["yq"].scale_scalar(), P),
                      zero_point=zy, bias=np.full(C, -zx * P, np.int64),
                      rounding="onnxruntime", clamp=tuple(a.get("clamp", (-128, 127))))
    layer = compile_gemm(cfg, ones, B, requant, name=op.name)
    b_addr = -(-ones.size // ALIGN) * ALIGN
    if bytes(layer.dram[b_addr:b_addr + B.size]) != B.astype(np.int8).tobytes():
        raise OnnxImportError(f"node {op.name!r}: its pixels are not where the layer before "
                              f"can write them in place")

    def assemble(outs):
        return outs[0].reshape(N, C, 1, 1)
    return Lowered([layer], assemble, False, [_dense(b_addr, x.shape)], (1, 1, C, 1))


def concat_rescale(s, z, sy, zy, clamp=(-128, 127)) -> np.float32 | None:
    """A float32 scale with which the requantizer's onnxruntime mode (bias ``-z``, zero point
    ``zy``) reproduces QLinearConcat's table ``quantize(dequantize(v))`` for all 256 int8
    ``v``: ``s / sy`` in float32 or one of its 8 neighbours on each side, each checked
    exhaustively; None when none is exact (the concat then stays on the host)."""
    v = np.arange(-128, 128)
    table = np.clip(quantize_linear(dequantize_linear(v, s, z), sy, zy), *clamp)
    bits = int(golden.float32_bits(np.float32(s) / np.float32(sy)))
    for k in sorted(range(-8, 9), key=abs):
        cand = np.array(bits + k, np.uint32).view(np.float32)[()]
        if np.isfinite(cand) and cand > 0 and np.array_equal(
                requantize_ort(v - z, cand, zy, clamp), table):
            return np.float32(cand)
    return None


def concat_host_reason(cfg: NPUConfig, op, xs) -> str | None:
    """Why a concat stays on the host, or None when the NPU runs it."""
    a = op.attrs
    if any(np.ndim(x) != 4 for x in xs) or a["axis"] not in (1, -3):
        return "not a channel concat of 4-D tensors"
    yq = a["yq"]
    clamp = tuple(a.get("clamp", (-128, 127)))
    for p in a["params"]:
        same = p.scale_scalar() == yq.scale_scalar() and \
            p.zp_scalar("X", op.name) == yq.zp_scalar("Y", op.name)
        if not same and concat_rescale(p.scale_scalar(), p.zp_scalar("X", op.name),
                                       yq.scale_scalar(), yq.zp_scalar("Y", op.name),
                                       clamp) is None:
            return "no float32 scale reproduces an input's requantization table exactly"
    return None


def lower_concat(cfg: NPUConfig, op, xs) -> Lowered:
    """QLinearConcat along channels as ONE program (either dataflow): each input copied
    through an identity weight tile into its channel slice of the output, with the
    requantization its table needs (:func:`concat_rescale`; scale 1, bias 0 when its
    quantization is the output's), clamped to a fused activation's range."""
    reason = concat_host_reason(cfg, op, xs)
    if reason:
        raise OnnxImportError(f"node {op.name!r} (Concat): {reason}")
    a = op.attrs
    yq, clamp = a["yq"], tuple(a.get("clamp", (-128, 127)))
    sy, zy = yq.scale_scalar(), yq.zp_scalar("Y", op.name)
    N, _, H, W = xs[0].shape
    layers, widths = [], []
    for k, (x, p) in enumerate(zip(xs, a["params"])):
        C = x.shape[1]
        s, z = p.scale_scalar(), p.zp_scalar("X", op.name)
        if s == sy and z == zy:
            requant = Requant(scale=np.float32(1.0), rounding="onnxruntime", clamp=clamp)
        else:
            requant = Requant(scale=concat_rescale(s, z, sy, zy, clamp), zero_point=zy,
                              bias=np.full(C, -z, np.int64), rounding="onnxruntime",
                              clamp=clamp)
        A = np.asarray(x, np.int64).transpose(0, 2, 3, 1).reshape(-1, C)
        layers.append(compile_gemm(cfg, A, np.eye(C, dtype=np.int64), requant,
                                   name=f"{op.name}[{k}]"))
        widths.append(C)
    layer = link_slices(cfg, layers, widths, name=op.name)
    places = None                 # an output-stationary image holds each input transposed
    if cfg.dataflow == "ws":      # (no whole-graph programs there)
        places = [_dense(off, x.shape) for off, x in zip(layer.meta["offsets"], xs)]
        for k, (place, x) in enumerate(zip(places, xs)):
            _check_in_place(op, layer, place, x, f"input {k}")

    def assemble(outs):
        return outs[0].reshape(N, H, W, -1).transpose(0, 3, 1, 2)
    return Lowered([layer], assemble, False, places, (H, W, sum(widths), H))


@functools.lru_cache(maxsize=256)
def _cached_add_grid(sa, za, sb, zb, sc, zc, unsigned):
    from hdl.requant import ADD_WIDTH
    return add_grid(np.float32(sa), za, np.float32(sb), zb, np.float32(sc), zc, unsigned,
                    width=ADD_WIDTH)


def op_add_grid(op):
    """The requantizer add mode's grid for a QLinearAdd (or fused QDQ Add) ``op``, or None
    when no grid within ``hdl.requant.ADD_WIDTH`` bits reproduces onnxruntime's arithmetic
    on all 65536 stored pairs (cached per quantization)."""
    a = op.attrs
    sh = 128 if a["cq"].unsigned else 0
    (sa, za), (sb, zb), (sc, zc) = ((q.scale_scalar(), q.zp_scalar(k, op.name) + sh)
                                    for q, k in ((a["aq"], "A"), (a["bq"], "B"), (a["cq"], "C")))
    return _cached_add_grid(float(sa), za, float(sb), zb, float(sc), zc, bool(sh))


def add_host_reason(cfg: NPUConfig, op, xs) -> str | None:
    """Why an add stays on the host, or None when the NPU runs it (the requantizer's add
    mode, :func:`sim_models.compiler_ops.compile_add`)."""
    a = op.attrs
    if a.get("float_path"):
        return "float island: onnxruntime leaves this QDQ Add in float32"
    if cfg.dataflow != "ws":
        return "output-stationary core (the add runs on weight-stationary cores)"
    if len(xs) != 2 or any(np.ndim(x) != 4 for x in xs) or np.shape(xs[0]) != np.shape(xs[1]):
        return "not two 4-D tensors of one shape (broadcasting)"
    if len({a["aq"].unsigned, a["bq"].unsigned, a["cq"].unsigned}) != 1:
        return "inputs and output of different types (int8 and uint8)"
    if op_add_grid(op) is None:
        return "no fixed-point grid reproduces onnxruntime's float32 arithmetic exactly"
    return None


def lower_add(cfg: NPUConfig, op, xs) -> Lowered:
    """QLinearAdd as one program: per block of pixels and channels the array packs
    ``b - 256*a`` into the accumulator and the requantizer's add mode computes
    onnxruntime's two FMAs on the exact grid (:func:`op_add_grid`), clamped to a fused
    activation's range."""
    reason = add_host_reason(cfg, op, xs)
    if reason:
        raise OnnxImportError(f"node {op.name!r} (Add): {reason}")
    N, C, H, W = xs[0].shape
    a, b = (np.asarray(x, np.int64).transpose(0, 2, 3, 1).reshape(-1, C) for x in xs)
    layer = compile_add(cfg, a, b, op_add_grid(op), op.attrs["cq"].unsigned,
                        tuple(op.attrs.get("clamp", (-128, 127))), name=op.name)
    places = [_dense(addr, xs[0].shape) for addr in layer.meta["inputs"]]
    for k, (place, x) in enumerate(zip(places, xs)):
        _check_in_place(op, layer, place, x, "ab"[k])
    # For the analytical model: three channel-wise passes per pixel, as a 1x1 depthwise
    # convolution over 3C channels (a through -128*I twice, b through I).
    layer.meta["workload"] = WLayer(layer.name, "conv", h=N * H, w=W, c=3 * C, kh=1, kw=1,
                                    n=3 * C, depthwise=True)

    def assemble(outs):
        return outs[0].reshape(N, H, W, C).transpose(0, 3, 1, 2)
    return Lowered([layer], assemble, False, places, (H, W, C, H))
