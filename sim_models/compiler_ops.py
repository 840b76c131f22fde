"""Compiler functions for the operations that are not matrix products: max pooling.

**Max pooling** (weight-stationary cores) runs on the array as a depthwise convolution whose
taps are all 1, with the sums replaced by maxima: for one block of output pixels and one
tile of channels, each kernel tap is a strided LOAD of the input pixels under it, pushed
through an identity weight tile (held in the scratchpad for the whole layer), and every
COMPUTE after the tile's first carries ``acc_max`` (:mod:`hdl.isa`), so the accumulator keeps
the larger of itself and the new result.  The output is stored through an identity
requantization (onnxruntime mode, float32 scale 1.0, zero point 0: ``rint(float32(v) * 1.0)
== v`` for every int8 ``v``).  The input comes padded: the caller fills the border with the
int8 minimum, which can only win a window made of padding alone, and ONNX forbids those
(pads < kernel).

Channel tiles are ``min(rows, cols)`` wide on both sides of the array, so that every result
column of a COMPUTE has its identity row in that COMPUTE (a column fed by no input row would
arrive as 0, and the maximum with 0 is not the maximum).  Output-stationary cores are
refused: their COMPUTE reads A transposed (a line per channel across pixels), which strided
loads from an NHWC tensor cannot gather.

Schedule and tokens follow :mod:`.compiler`'s weight-stationary one: A chunks and
accumulator blocks double-buffered, a COMPUTE's ``push_prev`` freeing its A slot for the
load two steps on, a STORE's ``push_prev`` freeing its accumulator block for the tile two
on.
"""

from __future__ import annotations

import numpy as np

from hdl.config import NPUConfig
from hdl.isa import Opcode
from hdl.requant import MODES

from . import golden
from .compiler import Layer, LayerError, Requant, RequantParams, check_int8, emit_config, \
    finish_layer, DramImage, ProgramBuilder

__all__ = ["IDENTITY_REQUANT", "INT8_MIN", "compile_maxpool", "add_grid", "add_params",
           "compile_add"]

#: What padding holds for max pooling: the smallest int8, which never beats a real value.
INT8_MIN = -128

#: A requantization that passes int8 values through unchanged (onnxruntime mode).
IDENTITY_REQUANT = Requant(scale=np.float32(1.0), rounding="onnxruntime")


def _emit_tap_loads(prog, src, sp_line, m0, mb, tap, c0, ct, pop, push):
    """The LOADs of one tap's input pixels for output rows ``m0 .. m0+mb`` (one per run of
    pixels in an output row), channels ``c0 .. c0+ct``: ``pop`` on the first, ``push`` on
    the last."""
    addr, wp, C, wo, s = src
    ky, kx = tap
    runs, m = [], m0
    while m < m0 + mb:
        y, x = divmod(m, wo)
        run = min(wo - x, m0 + mb - m)
        runs.append((m - m0, run, ((y * s + ky) * wp + x * s + kx) * C + c0))
        m += run
    for n, (r0, run, off) in enumerate(runs):
        prog.emit(Opcode.LOAD, sp_addr=sp_line + r0, nrows=run, ncols=ct, dram_addr=addr + off,
                  dram_stride=s * C, pop_next=int(pop and n == 0),
                  push_next=int(push and n == len(runs) - 1))


def _output_tiles(cfg, prog, M, C, free_lines, out_addr, t):
    """The output tiles of a pool's or an add's schedule, in order, for the caller to fill.

    Rows come in blocks of ``Mb`` (half the accumulator and half the ``free_lines``
    scratchpad lines below the constant tiles, so two blocks alternate), channels in tiles
    of ``t``.  Yields ``(m0, mb, c0, ct, slot, Mb)`` per tile -- rows ``m0 .. m0+mb``,
    channels ``c0 .. c0+ct``, accumulator block ``slot`` -- and, once the caller has emitted
    that tile's steps, STOREs it to ``out_addr`` (int8, row pitch ``C``) freeing its block
    for the tile two on.  Emits HALT after the last tile.
    """
    Mb = min(M, cfg.acc_lines // 2, free_lines // 2)
    if Mb < 1:
        raise LayerError(f"scratchpad of {cfg.sp_lines} lines is too small")
    tile = 0
    for m0 in range(0, M, Mb):
        mb = min(Mb, M - m0)
        for c0 in range(0, C, t):
            ct = min(t, C - c0)
            slot = (0, cfg.acc_lines // 2)[tile % 2]
            yield m0, mb, c0, ct, slot, Mb
            prog.emit(Opcode.STORE, acc_addr=slot, nrows=mb, ncols=ct, raw=0,
                      dram_addr=out_addr + m0 * C + c0, dram_stride=C, pop_prev=1, push_prev=1)
            tile += 1
    prog.emit(Opcode.HALT)


def _schedule_pool(cfg, prog, src, M, C, taps, ident_addr, out_addr, t):
    """Emit max pooling's schedule (see module doc); returns its meta data."""
    ident_line = cfg.sp_lines - t
    tiles = _output_tiles(cfg, prog, M, C, ident_line, out_addr, t)
    emit_config(prog, IDENTITY_REQUANT.params(cfg.cols), 0, cfg.cols, per_lane=False)
    prog.emit(Opcode.LOAD, sp_addr=ident_line, nrows=t, ncols=t, dram_addr=ident_addr,
              dram_stride=t, push_next=1)
    step, tile, Mb = 0, -1, 0
    for tile, (m0, mb, c0, ct, slot, Mb) in enumerate(tiles):
        for j, tap in enumerate(taps):
            a_line = (step % 2) * Mb
            _emit_tap_loads(prog, src, a_line, m0, mb, tap, c0, ct, pop=step >= 2, push=True)
            prog.emit(Opcode.PRELOAD, sp_addr=ident_line, nrows=ct, pop_prev=int(step == 0))
            prog.emit(Opcode.COMPUTE, a_addr=a_line, acc_addr=slot, nrows=mb,
                      accumulate=int(j > 0), acc_max=int(j > 0), pop_prev=1, push_prev=1,
                      push_next=int(j == len(taps) - 1),
                      pop_next=int(j == 0 and tile >= 2))
            step += 1
    return {"steps": step, "tiles": tile + 1, "Mb": Mb}


def compile_maxpool(cfg: NPUConfig, x, kernel, stride: int, dilation=(1, 1),
                    name: str = "maxpool") -> Layer:
    """Max pooling of a padded NHWC int8 tensor on the NPU.

    Parameters
    ----------
    cfg : NPUConfig
        A weight-stationary core.
    x : (H, W, C) int8
        The input with its padding already in place (filled with :data:`INT8_MIN`).
    kernel : (int, int)
        Window height and width.
    stride : int
        The same stride along both axes.
    dilation : (int, int)
        Spacing of the taps.

    Returns
    -------
    Layer
        Output (Ho, Wo, C) int8, stored densely at ``out_addr``; the input sits at address
        0 of the image; ``expected`` from :func:`golden.max_pool_nhwc`.
    """
    if cfg.dataflow != "ws":
        raise LayerError(f"{name}: max pooling runs on weight-stationary cores only (an "
                         f"output-stationary COMPUTE reads A transposed, which strided loads "
                         f"of an NHWC tensor cannot provide)")
    x = check_int8(f"{name}: input", x, 3)
    try:
        (kh, kw), (dy, dx) = (tuple(int(v) for v in kernel), tuple(int(v) for v in dilation))
    except (TypeError, ValueError):
        raise LayerError(f"{name}: kernel {kernel!r} and dilation {dilation!r} must be two "
                         f"integers each") from None
    if min(kh, kw, dy, dx) < 1 or not (isinstance(stride, int) and stride >= 1):
        raise LayerError(f"{name}: kernel {kernel}, dilation {dilation} and stride {stride} "
                         f"must be >= 1")
    H, W, C = x.shape
    if (kh - 1) * dy + 1 > H or (kw - 1) * dx + 1 > W:
        raise LayerError(f"{name}: window {kh}x{kw} (dilation {dilation}) is larger than the "
                         f"padded input {H}x{W}")
    pooled = golden.max_pool_nhwc(x, (kh, kw), (stride, stride), (dy, dx))
    Ho, Wo = pooled.shape[:2]
    t = min(cfg.rows, cfg.cols)
    image, prog = DramImage(), ProgramBuilder()
    x_addr = image.put(x, np.int8)
    ident_addr = image.put(np.eye(t, dtype=np.int64), np.int8)
    out_addr = image.alloc(Ho * Wo * C)
    taps = [(ky * dy, kx * dx) for ky in range(kh) for kx in range(kw)]
    meta = _schedule_pool(cfg, prog, (x_addr, W, C, Wo, stride), Ho * Wo, C, taps,
                          ident_addr, out_addr, t)
    return finish_layer(cfg, name, image, prog, out_addr, (Ho, Wo, C),
                   IDENTITY_REQUANT.params(C), pooled.reshape(-1, C), pooled.size * kh * kw,
                   {**meta, "op": "maxpool", "M": Ho * Wo, "K": kh * kw * C, "N": C})


def add_grid(sa, za, sb, zb, sc, zc, unsigned: bool = False,
             width: int = 62) -> golden.AddGrid | None:
    """QLinearAdd's constants on one fixed-point grid (:class:`golden.AddGrid`) such that
    :func:`golden.qlinear_add_grid` -- integer logic of ``width`` bits -- equals onnxruntime's
    arithmetic (:func:`golden.qlinear_add`) on every pair of stored inputs, checked
    exhaustively (65536 pairs); None when no such grid exists within ``width`` bits.  The
    zero points are the stored ones (uint8 tensors as uint8)."""
    parts = [golden._f32_parts(v) for v in golden.qlinear_add_constants(sa, za, sb, zb, sc, zc)]
    k = -min(e for m, e in parts if m) if any(m for m, _ in parts) else 0
    k = max(k, 0)
    (ma, ea), (mb, eb), (mf, ef) = parts
    shifts = [e + k if m else 0 for m, e in parts]
    if min(shifts) < 0 or k > width:
        return None
    g = golden.AddGrid(ma, shifts[0], mb, shifts[1], mf, shifts[2], k)
    v = np.arange(0, 256) if unsigned else np.arange(-128, 128)
    top = 256 * ((ma << g.sa) + (mb << g.sb)) + (abs(mf) << g.sf)
    if top.bit_length() > width:
        return None
    a, b = (x.ravel() for x in np.meshgrid(v, v))
    lo, hi = (0, 255) if unsigned else (-128, 127)
    if not np.array_equal(golden.qlinear_add_grid(a, b, g, lo, hi),
                          golden.qlinear_add(a, sa, za, b, sb, zb, sc, zc, lo, hi)):
        return None
    return g


def add_params(g: golden.AddGrid, n: int, unsigned: bool = False,
               clamp: tuple = (-128, 127)) -> RequantParams:
    """The add mode's CONFIG values for ``n`` lanes: grid ``g`` (from :func:`add_grid` with
    ``width`` at most ``hdl.requant.ADD_WIDTH``), zero point 0 for int8 tensors or -128 for
    uint8 ones held as int8 (the requantizer subtracts it from both inputs and adds it to
    the result), ``clamp`` (int8-held values: a fused activation's range)."""
    if not (len(clamp) == 2 and -128 <= clamp[0] <= clamp[1] <= 127):
        raise LayerError(f"clamp {clamp} is not an int8 range (lo <= hi)")
    fields = dict(ma=g.ma, mb=g.mb, sa=g.sa, sb=g.sb, sf=g.sf, k=g.k)
    if not (0 <= g.ma < 1 << 24 and 0 <= g.mb < 1 << 24 and -(1 << 31) <= g.mf < 1 << 31
            and all(0 <= fields[f] < 64 for f in ("sa", "sb", "sf", "k"))):
        raise LayerError(f"add grid {g} does not fit the add mode's CONFIG fields")
    full = lambda v: np.full(n, v, np.int64)
    return RequantParams(full(golden.wrap(g.ma | g.sa << 24, 32)), full(g.k), full(0),
                         -128 if unsigned else 0, tuple(map(int, clamp)), MODES.index("add"),
                         (int(golden.wrap(g.mb | g.sb << 24, 32)), g.mf, g.sf))


def _schedule_add(cfg, prog, srcs, M, C, tiles_line, out_addr, t):
    """Emit the add's schedule (see :func:`compile_add`); returns its meta data."""
    neg_line, one_line = tiles_line, tiles_line + t
    tiles = _output_tiles(cfg, prog, M, C, tiles_line, out_addr, t)
    prog.emit(Opcode.LOAD, sp_addr=neg_line, nrows=2 * t, ncols=t, dram_addr=srcs[2],
              dram_stride=t, push_next=1)
    step, tile, Mb = 0, -1, 0
    for tile, (m0, mb, c0, ct, slot, Mb) in enumerate(tiles):
        # a through -128*I twice (overwrite, then accumulate), b through I: b - 256*a.
        for src, passes in ((srcs[0], (neg_line, neg_line)), (srcs[1], (one_line,))):
            a_line = (step % 2) * Mb
            prog.emit(Opcode.LOAD, sp_addr=a_line, nrows=mb, ncols=ct,
                      dram_addr=src + m0 * C + c0, dram_stride=C,
                      pop_next=int(step >= 2), push_next=1)
            for j, w_line in enumerate(passes):
                first, last = src == srcs[0] and j == 0, src == srcs[1]
                prog.emit(Opcode.PRELOAD, sp_addr=w_line, nrows=ct,
                          pop_prev=int(step == 0 and j == 0))
                prog.emit(Opcode.COMPUTE, a_addr=a_line, acc_addr=slot, nrows=mb,
                          accumulate=int(not first), pop_prev=int(j == 0),
                          push_prev=int(j == len(passes) - 1), push_next=int(last),
                          pop_next=int(first and tile >= 2))
            step += 1
    return {"steps": step, "tiles": tile + 1, "Mb": Mb}


def compile_add(cfg: NPUConfig, a, b, grid: golden.AddGrid, unsigned: bool = False,
                clamp: tuple = (-128, 127), name: str = "add") -> Layer:
    """QLinearAdd of two int8 tensors on the NPU (the requantizer's add mode).

    Parameters
    ----------
    cfg : NPUConfig
        A weight-stationary core.
    a, b : int8 arrays of one shape, channels last
        The stored inputs (uint8 tensors held as int8, ``u - 128``); ``a`` is the operand of
        the outer FMA, as in :func:`golden.qlinear_add_grid`.
    grid : golden.AddGrid
        From :func:`add_grid` with ``width <= hdl.requant.ADD_WIDTH``.
    unsigned : bool
        The tensors are uint8 (held as int8).
    clamp : (int, int)
        Output range (int8-held values), e.g. a fused Relu's.

    Returns
    -------
    Layer
        The int8 sum (stored values), same shape, densely at ``out_addr``; ``a`` at address
        0 of the image, then ``b`` (``meta["inputs"]``: both addresses).  Per block of
        pixels and tile of channels the array packs ``b - 256*a`` into the accumulator (``a`` through a resident ``-128*I`` tile
        twice, ``b`` through ``I``), stored through the add mode.
    """
    if cfg.dataflow != "ws":
        raise LayerError(f"{name}: the add runs on weight-stationary cores only (an output-"
                         f"stationary COMPUTE reads A transposed, which loads of an NHWC "
                         f"tensor cannot provide)")
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.ndim < 1 or a.size == 0:
        raise LayerError(f"{name}: inputs of shapes {a.shape} and {b.shape}: an add takes two "
                         f"non-empty tensors of one shape (broadcasting stays on the host)")
    shape, C = a.shape, a.shape[-1]
    a = check_int8(f"{name}: input a", a.reshape(-1, C), 2)
    b = check_int8(f"{name}: input b", b.reshape(-1, C), 2)
    params = add_params(grid, C, unsigned, clamp)
    t = min(cfg.rows, cfg.cols)
    tiles_line = cfg.sp_lines - 2 * t
    image, prog = DramImage(), ProgramBuilder()
    srcs = (image.put(a, np.int8), image.put(b, np.int8),
            image.put(np.concatenate([-128 * np.eye(t, dtype=np.int64),
                                      np.eye(t, dtype=np.int64)]), np.int8))
    out_addr = image.alloc(a.size)
    emit_config(prog, params, 0, C, per_lane=False)
    meta = _schedule_add(cfg, prog, srcs, a.shape[0], C, tiles_line, out_addr, t)
    return finish_layer(cfg, name, image, prog, out_addr, shape, params, golden.pack_add(a, b),
                   3 * a.size, {**meta, "op": "add", "M": a.shape[0], "K": 3 * C, "N": C,
                                "inputs": list(srcs[:2])})
