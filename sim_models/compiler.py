"""Compiler/driver: lowers GEMM and conv2d layers into knpu programs and memory images.

A :class:`Layer` holds everything one run needs: the program, the DRAM image (inputs,
weights, program), where the output goes, and the golden result.  It runs the same way on
the functional model (:meth:`Layer.run_functional`) and on the RTL (``testbench``).

Schedule (weight-stationary): the output is cut into blocks of ``Mb`` rows x ``cols``
columns; each block accumulates over K-tiles of at most ``rows`` (a convolution's kernel
taps packed into them, :func:`conv_k_tiles`).  Activations of an M-block stay in the
scratchpad for every N-tile, and the layer's weight tiles for every M-block, when they fit
(:func:`ws_plan`; else they are reloaded: weight tiles triple- or double-buffered); accumulator
blocks are double-buffered, resident activation blocks and on-chip bands rotate over
scratchpad regions instead of waiting on a SYNC, and the units synchronise with tokens so that
loads, compute and stores of neighbouring steps overlap (the VTA scheme).
Output-stationary: one ``rows`` x ``cols`` output tile at a time, K streamed in chunks that
fit the scratchpad, operands double-buffered the same way.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace

import numpy as np

from hdl import isa
from hdl.config import NPUConfig
from hdl.isa import Opcode
from hdl.requant import MODES

from . import golden
from .isa_sim import FunctionalNPU, RunResult

__all__ = ["LayerError", "Requant", "RequantParams", "ROUNDINGS", "Layer", "compile_gemm", "compile_conv2d", "im2col",
           "compile_gemm_chain", "compile_conv_chain", "chain_on_chip", "chain_regions",
           "chain_pays",
           "sp_out_lines",
           "link_words",
           "leftover_tokens", "take_tokens",
           "conv2d_reference", "WsPlan", "ws_plan", "os_chunk", "conv_k_tiles",
           "im2col_input_pays", "im2col_row_bytes",
           "conv_tile_channels_meet", "weight_loads", "W_LOAD_TILES", "tile_weight_rows"]

ALIGN = 64


class LayerError(ValueError):
    """The layer is malformed or cannot be mapped onto this core; raised before any run."""


ROUNDINGS = MODES[:2]          # what Requant takes; the add mode comes from compile_add
#: The onnxruntime mode's scales: positive normal float32 in this range (the requantizer's
#: float32 emulation has no subnormals; a larger scale saturates every output anyway).
ORT_SCALE_RANGE = (2.0 ** -100, 2.0 ** 32)


@dataclass(frozen=True)
class RequantParams:
    """What the CONFIG instructions carry: per-lane ``mult`` (Q31 multiplier, or the float32
    scale's bits), ``shift`` and ``bias``; the zero point, clamp range and rounding mode."""
    mult: np.ndarray
    shift: np.ndarray
    bias: np.ndarray
    zero_point: int
    clamp: tuple
    rounding: int                        # index into hdl.requant.MODES
    inner: tuple | None = None           # the add mode's shared (mb | sb << 24, mf, sf)

    def requantize(self, acc) -> np.ndarray:
        """The golden output of this stage for int32 sums ``acc`` (M x N)."""
        if MODES[self.rounding] == "add":
            return golden.requantize_add(acc, self.mult, self.shift, self.inner,
                                         self.zero_point, self.clamp, self.bias)
        if self.rounding:
            scale = self.mult.astype("<i4").view(np.float32)
            return golden.requantize_ort(acc, scale, self.zero_point, self.clamp, self.bias)
        return golden.requantize(acc, self.mult, self.shift, zero_point=self.zero_point,
                                 clamp=self.clamp, bias=self.bias)


@dataclass
class Requant:
    """Output stage: int8 with per-tensor or per-channel scale, or raw int32.

    ``rounding="tflite"``: ``scale`` is a real (or per-channel reals) turned into Q31
    multipliers and shifts, TFLite's double rounding.  ``rounding="onnxruntime"``: ``scale``
    must be ``np.float32`` (scalar or per channel), exactly the float32 onnxruntime computes
    (e.g. ``x_scale * w_scale / y_scale`` in float32), one float32 product rounded half to
    even.  ``clamp`` overrides the activation's int8 range (a fused Relu/Clip)."""
    scale: float | np.ndarray | None = None   # None: raw int32 output
    zero_point: int = 0
    activation: str = "none"                   # none | relu | relu6
    bias: np.ndarray | None = None             # int32 per output channel
    rounding: str = "tflite"                   # tflite | onnxruntime
    clamp: tuple | None = None                 # (lo, hi) int8: overrides the activation

    def params(self, n: int) -> RequantParams | None:
        """The CONFIG values for ``n`` output channels, or None for raw int32 output."""
        if self.rounding not in ROUNDINGS:
            raise LayerError(f"rounding={self.rounding!r} is unknown: must be one of {ROUNDINGS}")
        if self.scale is None:
            if self.bias is not None or self.clamp is not None or self.zero_point or \
                    self.activation != "none":
                raise LayerError("a bias, clamp, zero point or activation needs a scale: raw "
                                 "int32 output (scale=None) would drop it")
            return None
        if not -128 <= self.zero_point <= 127:
            raise LayerError(f"zero point {self.zero_point} is outside int8")
        mult, shift = self._multipliers(n)
        if self.activation == "relu6" and np.ndim(self.scale):
            raise LayerError("relu6 needs one output scale (per-tensor)")
        clamp = self.clamp if self.clamp is not None else golden.activation_range(
            self.activation, self.zero_point, float(np.asarray(self.scale).flat[0]))
        if not (len(clamp) == 2 and -128 <= clamp[0] <= clamp[1] <= 127):
            raise LayerError(f"clamp {clamp} is not an int8 range (lo <= hi)")
        bias = np.zeros(n, np.int64) if self.bias is None else np.asarray(self.bias)
        if bias.dtype.kind not in "iu":
            raise LayerError(f"bias must be integers (int32), not {bias.dtype}")
        bias = bias.astype(np.int64)
        if bias.shape != (n,):
            raise LayerError(f"bias has shape {bias.shape}, expected ({n},)")
        if bias.min(initial=0) < golden.INT32_MIN or bias.max(initial=0) > golden.INT32_MAX:
            raise LayerError("bias does not fit int32")
        return RequantParams(mult, shift, bias, int(self.zero_point), tuple(map(int, clamp)),
                             ROUNDINGS.index(self.rounding))

    def _multipliers(self, n: int):
        scale = np.asarray(self.scale)
        if scale.ndim > 1 or (scale.ndim == 1 and scale.shape != (n,)):
            raise LayerError(f"scale has shape {scale.shape}, expected () or ({n},)")
        if self.rounding == "onnxruntime":
            if scale.dtype != np.float32:
                raise LayerError(f"the onnxruntime rounding takes np.float32 scales (as "
                                 f"onnxruntime computes them), not {scale.dtype}")
            lo, hi = ORT_SCALE_RANGE
            if not np.all((scale >= lo) & (scale < hi)):
                raise LayerError(f"scale out of range for the onnxruntime rounding: must be "
                                 f"in [2**-100, 2**32), got {scale.min()}..{scale.max()}")
            bits = golden.float32_bits(np.broadcast_to(scale, (n,)))
            return golden.wrap(bits, 32), np.zeros(n, np.int64)
        try:
            pairs = [golden.quantize_multiplier(float(s))
                     for s in np.broadcast_to(scale.astype(float), (n,))]
        except ValueError as err:
            raise LayerError(str(err)) from None
        mult, shift = zip(*pairs)
        return np.array(mult, np.int64), np.array(shift, np.int64)


@dataclass
class Layer:
    cfg: NPUConfig
    name: str
    program: list[int]
    dram: bytearray
    program_addr: int
    out_addr: int
    out_shape: tuple
    out_dtype: str                      # "int8" | "int32"
    expected: np.ndarray
    macs: int
    meta: dict = field(default_factory=dict)

    def output(self, dram: bytes | bytearray | None = None) -> np.ndarray:
        dram = self.dram if dram is None else dram
        dtype = np.int8 if self.out_dtype == "int8" else np.dtype("<i4")
        n = int(np.prod(self.out_shape)) * np.dtype(dtype).itemsize
        return np.frombuffer(bytes(dram[self.out_addr:self.out_addr + n]),
                             dtype=dtype).reshape(self.out_shape).astype(np.int64)

    def run_functional(self) -> tuple[RunResult, np.ndarray]:
        dram = bytearray(self.dram)
        result = FunctionalNPU(self.cfg, dram).run(self.program)
        return result, self.output(dram)


class DramImage:
    """Bump allocator over the DRAM image."""

    def __init__(self):
        self.data = bytearray()

    def alloc(self, nbytes: int) -> int:
        addr = len(self.data)
        addr = (addr + ALIGN - 1) // ALIGN * ALIGN
        self.data.extend(bytes(addr + nbytes - len(self.data)))
        return addr

    def put(self, array, dtype) -> int:
        raw = np.ascontiguousarray(array).astype(dtype).tobytes()
        addr = self.alloc(len(raw))
        self.data[addr:addr + len(raw)] = raw
        return addr


class ProgramBuilder:
    """Instruction lists per unit, interleaved in program order with token flags."""

    def __init__(self):
        self.words: list[int] = []

    def emit(self, op, **fields):
        self.words.append(isa.encode(op, **fields))


#: Integer dtypes taken as operands: int8 itself and numpy's default integers (whose values
#: must then lie in int8).  Unsigned arrays (uint8 means "offset by a zero point") and int16
#: (a different quantization) are refused rather than reinterpreted.
OPERAND_DTYPES = (np.dtype(np.int8), np.dtype(np.int32), np.dtype(np.int64))


def check_int8(name, x, ndim):
    """``x`` as an array of ``ndim`` dimensions holding int8 values (any of
    :data:`OPERAND_DTYPES`); otherwise :class:`LayerError` naming ``name`` and the problem."""
    x = np.asarray(x)
    if x.ndim != ndim:
        raise LayerError(f"{name} must have {ndim} dimensions, got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.integer):
        raise LayerError(f"{name} must hold integers, got {x.dtype}")
    if np.issubdtype(x.dtype, np.unsignedinteger):
        raise LayerError(f"{name} is {x.dtype}: unsigned tensors carry a zero point; shift "
                         f"them to int8 (x - 128, zero point - 128) and fold the zero point "
                         f"(sim_models.onnx_frontend does both) instead of passing them as int8")
    if x.dtype not in OPERAND_DTYPES:
        raise LayerError(f"{name} is {x.dtype}, not int8: knpu multiplies int8 operands; "
                         f"narrow it explicitly if its values are int8")
    if x.size == 0:
        raise LayerError(f"{name} is empty (shape {x.shape})")
    if x.min() < -128 or x.max() > 127:
        raise LayerError(f"{name} has values outside int8")
    return x.astype(np.int64)


# ----------------------------------------------------------------------------------------
# A operand sources: how the rows of A (M x K) reach scratchpad lines.

class _DenseA:
    """A stored row-major in DRAM (M x K int8, rows ``stride`` bytes apart: K by default)."""

    def __init__(self, addr: int, K: int, stride: int | None = None):
        self.addr, self.K, self.stride = addr, K, stride or K

    def k_tiles(self, R):
        return [(k0, min(R, self.K - k0)) for k0 in range(0, self.K, R)]

    def load(self, prog, sp_addr, m0, mb, k0, kt, flags):
        prog.emit(Opcode.LOAD, sp_addr=sp_addr, nrows=mb, ncols=kt,
                  dram_addr=self.addr + m0 * self.stride + k0, dram_stride=self.stride,
                  **flags)


class _OnChipA:
    """A (M x K int8) already in the scratchpad, written there by the previous layer's
    STOREs with ``to_sp`` (:func:`compile_gemm_chain`): K-tile ``ki`` (``width`` columns)
    of row ``m`` is line ``base + ki * M + m``.  Nothing is loaded."""

    def __init__(self, base: int, M: int, K: int, width: int):
        self.base, self.M, self.K, self.width = base, M, K, width

    def k_tiles(self, R):
        return [(k0, min(self.width, self.K - k0)) for k0 in range(0, self.K, self.width)]

    def line(self, m0: int, ki: int) -> int:
        return self.base + ki * self.M + m0


def sp_out_lines(M: int, N: int, C: int) -> int:
    """Scratchpad lines an M x N int8 output takes when its STOREs keep it on chip: one
    line per row per N-tile of ``C`` columns (the next layer's K-tiles)."""
    return M * -(-N // C)


def im2col_row_bytes(K: int) -> int:
    """The DRAM row stride of host-built im2col rows of ``K`` values: ``K`` rounded up to
    :data:`ALIGN`, so every K-tile's row starts in a fresh bus word."""
    return -(-K // ALIGN) * ALIGN


def im2col_input_pays(R: int, KH: int, KW: int, Cin: int) -> bool:
    """Whether a WS convolution whose input comes from the host (a network's first layer)
    should take it as host-built im2col rows (``compile_conv2d(im2col_input=True)``): when
    dense K-tiles of ``R`` rows are fewer than the packed window-row tiles
    (:func:`conv_k_tiles`), i.e. when few input channels leave rows idle -- ResNet's 7x7
    stem (Cin 3) at 64 rows: 3 tiles instead of 7.  The DRAM bytes read are the same (the
    strided loads re-read overlapping windows too); the rows are aligned, so a tile's row
    is one bus word where it fits one."""
    return -(-KH * KW * Cin // R) < len(conv_k_tiles(R, KH, KW, Cin))


def conv_k_tiles(R: int, KH: int, KW: int, Cin: int) -> list[tuple[int, int]]:
    """The K-tiles ``(k0, kt)`` of a convolution's im2col rows (K ordered ky, kx, c), with
    kernel taps packed: for one ``ky`` the ``KW * Cin`` values of a window row are
    contiguous in the NHWC input, so a tile is any run of at most ``R`` of them and one
    strided LOAD fills it.  Few input channels then share a tile (ResNet-50's first conv,
    Cin = 3, KW = 7: 21 values per window row, two tiles of 16 and 5 on 16 rows, not seven
    of 3)."""
    run = KW * Cin
    return [(ky * run + off, min(R, run - off)) for ky in range(KH) for off in range(0, run, R)]


def conv_tile_channels_meet(k0: int, kt: int, Cin: int, n0: int, nt: int) -> bool:
    """Whether K-tile ``(k0, kt)`` holds an input channel in ``[n0, n0 + nt)`` (k's channel
    is ``k % Cin``): the depthwise weight block of that tile and N-tile is not all zero."""
    if kt >= Cin:
        return True
    c0 = k0 % Cin
    spans = [(c0, c0 + kt)] if c0 + kt <= Cin else [(c0, Cin), (0, c0 + kt - Cin)]
    return any(lo < n0 + nt and n0 < hi for lo, hi in spans)


class _Im2colA:
    """A = im2col(input) read straight from the padded NHWC input with strided loads:
    a K-tile (:func:`conv_k_tiles`) is a run of one window row's (kx, c) values, a
    scratchpad line holds that run for one output pixel."""

    def __init__(self, addr, Hp, Wp, Cin, KH, KW, stride, Ho, Wo):
        self.addr, self.Hp, self.Wp, self.Cin = addr, Hp, Wp, Cin
        self.KH, self.KW, self.stride, self.Ho, self.Wo = KH, KW, stride, Ho, Wo

    def k_tiles(self, R):
        return conv_k_tiles(R, self.KH, self.KW, self.Cin)

    def load(self, prog, sp_addr, m0, mb, k0, kt, flags):
        ky, off = divmod(k0, self.KW * self.Cin)
        m, line = m0, sp_addr
        loads = []
        while m < m0 + mb:
            y, x = divmod(m, self.Wo)
            run = min(self.Wo - x, m0 + mb - m)
            pixel = (y * self.stride + ky) * self.Wp + x * self.stride
            loads.append(dict(sp_addr=line, nrows=run, ncols=kt,
                              dram_addr=self.addr + pixel * self.Cin + off,
                              dram_stride=self.stride * self.Cin))
            m, line = m + run, line + run
        for n, fields in enumerate(loads):  # tokens: pop on the first, push on the last
            prog.emit(Opcode.LOAD, **fields,
                      pop_next=flags.get("pop_next", 0) if n == 0 else 0,
                      push_next=flags.get("push_next", 0) if n == len(loads) - 1 else 0)


# ----------------------------------------------------------------------------------------

def emit_config(prog, params: RequantParams, n0, nt, per_lane):
    """Emit the CONFIG instructions that load ``params`` for output columns ``n0 .. n0+nt``
    (``per_lane``: each lane's own multiplier, shift and bias; else the first lane's for all)."""
    mult, shift, bias = params.mult, params.shift, params.bias
    lo, hi = params.clamp
    common = dict(zero_point=params.zero_point, clamp_min=lo, clamp_max=hi,
                  rounding=params.rounding)
    if params.inner is not None:           # the add mode's shared constants, lanes untouched
        inner_mult, mf, sf = params.inner
        prog.emit(Opcode.CONFIG, lane=isa.CONFIG_ALL_LANES, multiplier=inner_mult, bias=mf,
                  shift=sf, add_inner=1)
    if not per_lane:
        prog.emit(Opcode.CONFIG, lane=isa.CONFIG_ALL_LANES,
                  multiplier=int(golden.wrap(mult[0], 32)), shift=int(shift[0]),
                  bias=int(bias[0]), **common)
        return
    for j in range(nt):
        prog.emit(Opcode.CONFIG, lane=j, multiplier=int(golden.wrap(mult[n0 + j], 32)),
                  shift=int(shift[n0 + j]), bias=int(bias[n0 + j]), **common)


def _emit_store(prog, params, per_lane, slot, m0, nrows, n0, nt, N, out_addr, esize,
                out_sp=None):
    """Store one finished output block (after its per-channel CONFIGs): pops the compute
    unit's token, gives the accumulator block back with a token when written.
    ``out_sp = (base, M, C)``: the block goes to scratchpad lines instead (``to_sp``, the
    layout of :class:`_OnChipA`)."""
    if params is not None and per_lane:
        emit_config(prog, params, n0, nt, per_lane=True)
    if out_sp is not None:
        base, M, C = out_sp
        prog.emit(Opcode.STORE, acc_addr=slot, nrows=nrows, ncols=nt, to_sp=1,
                  dram_addr=base + n0 // C * M + m0, dram_stride=1, pop_prev=1, push_prev=1)
        return
    prog.emit(Opcode.STORE, acc_addr=slot, nrows=nrows, ncols=nt, raw=int(params is None),
              dram_addr=out_addr + (m0 * N + n0) * esize, dram_stride=N * esize,
              pop_prev=1, push_prev=1)


def _per_lane(params: RequantParams, n):
    mult, shift, bias = params.mult, params.shift, params.bias
    return not (np.all(mult == mult[0]) and np.all(shift == shift[0]) and
                np.all(bias == bias[0]))


@dataclass(frozen=True)
class WsPlan:
    """How the WS schedule keeps operands in the scratchpad: ``Mb`` rows of A per M-block;
    ``a_resident``: a block's A chunks stay for every N-tile (loaded once per block);
    ``w_resident``: every weight tile of the layer stays for every M-block (loaded once per
    layer, at the top of the scratchpad), else two weight slots alternate.  ``a_regions``
    (resident A): 2 when two blocks' A chunks fit, the blocks alternating between them (a
    block's loads then overwrite the block ``slots`` load steps back, which the slot
    tokens have seen finish), else 1 and a SYNC before each block's loads.  ``slots``: the
    load steps' double (or, with streamed weights where room allows, triple) buffers: a
    load step's LOADs wait for the COMPUTE ``slots`` load steps back, so with three the
    weight LOAD of a step runs under the PRELOAD and COMPUTE of the two before it.
    ``w_batch`` (streamed weights, A resident or on chip): weight tiles a slot holds, up to
    :data:`W_LOAD_TILES` where the scratchpad has the room; an N-tile whose steps load no A
    then LOADs that many consecutive K-tiles into a slot at once (:func:`weight_loads`)."""
    Mb: int
    a_resident: bool
    w_resident: bool
    a_regions: int = 1
    slots: int = 2
    w_batch: int = 1

    def dram_bytes(self, M: int, a_bytes: int, a_stream_bytes: int, w_bytes: int) -> int:
        """Operand bytes this plan reads: A once (``a_bytes``) when resident, else once per
        N-tile's live K-tiles (``a_stream_bytes``); weights once, or once per M-block."""
        return (a_bytes if self.a_resident else a_stream_bytes) + \
            w_bytes * (1 if self.w_resident else -(-M // self.Mb))


def ws_plan(cfg: NPUConfig, M: int, Kt: int, a_bytes: int, a_stream_bytes: int,
            w_bytes: int, w_lines: int, sp_lo: int = 0, a_on_chip: bool = False) -> WsPlan:
    """Choose the WS plan for a GEMM of ``M`` rows and ``Kt`` K-tiles whose A (as loaded)
    holds ``a_bytes`` (``a_stream_bytes`` summed over the N-tiles' live K-tiles: every
    N-tile's when all are live, a depthwise layer's once) and whose live weight tiles hold
    ``w_bytes`` in ``w_lines`` scratchpad lines.

    Every combination of resident A / resident weights that fits is considered with its
    largest block (at most half the accumulator, the other half being the next tile's);
    among those whose block has at least ``2 * rows`` rows (or all of them: a step of fewer
    rows than the weight preload's ``rows`` cycles leaves the array idle), the one reading
    the fewest DRAM bytes wins, then the larger block.  Streamed weights get three slots
    where they leave the block as large as two would (:class:`WsPlan`).

    ``sp_lo``: the lines below it hold on-chip outputs (a chain's, :func:`compile_gemm_chain`);
    the layer uses the lines from there up.  ``a_on_chip``: A is already in the scratchpad
    (:class:`_OnChipA`): it reads no bytes and needs no lines (``a_resident``, blocks of at
    most half the accumulator; streamed weights in three slots where they fit)."""
    R = cfg.rows
    sp_lines = cfg.sp_lines - sp_lo
    m_max = min(M, cfg.acc_lines // 2)
    plans = []
    if a_on_chip:
        if sp_lines >= w_lines:
            plans.append(WsPlan(m_max, True, True, 1, 2))
        if sp_lines >= 2 * R:
            plans.append(WsPlan(m_max, True, False, 1, 3 if sp_lines >= 3 * R else 2))
        if not plans:
            raise LayerError(f"{sp_lines} scratchpad lines hold no weight slots")
        return _with_w_batch(min(plans, key=lambda p: p.dram_bytes(M, 0, 0, w_bytes)),
                             sp_lines, R, 0)
    for w_res in (True, False):
        for a_res in (True, False):
            if a_res and Kt < 2:
                continue
            best = None
            for slots in (2,) if w_res else (3, 2):
                room = sp_lines - (w_lines if w_res else slots * R)
                mb = min(m_max, room // (Kt if a_res else slots))
                if mb >= 1 and (best is None or mb > best.Mb):
                    regions = 2 if a_res and Kt >= slots and room // (2 * Kt) >= mb else 1
                    best = WsPlan(mb, a_res, w_res, regions, slots)
            if best is not None:
                plans.append(best)
    if not plans:
        raise LayerError(f"scratchpad of {sp_lines} lines is too small")
    big = [p for p in plans if p.Mb >= min(m_max, 2 * R)] or plans
    best = min(big, key=lambda p: (p.dram_bytes(M, a_bytes, a_stream_bytes, w_bytes), -p.Mb))
    best = _even_blocks(best, M)
    return _with_w_batch(best, sp_lines, R, best.a_regions * Kt * best.Mb)


def _even_blocks(plan: WsPlan, M: int) -> WsPlan:
    """``plan`` with streamed weights: its ``M`` rows in as many M-blocks as ``plan.Mb``
    makes, all of one size (``ceil(M / blocks)`` rows), not full blocks and a short last
    one: the same steps and operand bytes, no block of a few rows whose steps wait for their
    weight PRELOADs, and the lines resident A leaves go to the streamed-weight batches
    (:func:`_with_w_batch`).  Measured on the exact model (4x4, 8x8): 2-5 % fewer cycles
    with streamed weights, a few cycles more with resident weights (kept as they are)."""
    if plan.w_resident:
        return plan
    blocks = -(-M // plan.Mb)
    return replace(plan, Mb=-(-M // blocks))


def _with_w_batch(plan: WsPlan, sp_lines: int, R: int, a_lines: int) -> WsPlan:
    """``plan`` with its streamed-weight slots as many tiles deep (``w_batch``) as the
    ``sp_lines - a_lines`` lines A leaves allow, at most :data:`W_LOAD_TILES`; 1 for
    resident weights or streamed A."""
    if plan.w_resident or not plan.a_resident:
        return plan
    batch = max(1, min(W_LOAD_TILES, (sp_lines - a_lines) // (plan.slots * R)))
    return replace(plan, w_batch=batch)


def os_chunk(cfg: NPUConfig, K: int) -> int:
    """OS: K rows per chunk -- A^T chunks in the scratchpad's lower half, B chunks in the
    upper half, two slots each."""
    Kc = min(K, cfg.sp_lines // 2 // 2)
    if Kc < 1:
        raise LayerError(f"scratchpad of {cfg.sp_lines} lines is too small")
    return Kc


def _ws_tiles(a_src, R, N, C, b_dense):
    """The K-tiles, N-tiles and, per N-tile, its live K-tiles ``(ki, k0, kt)`` (an all-zero
    weight block, as depthwise has, is skipped; an N-tile with none keeps one to write
    zeros)."""
    k_tiles = a_src.k_tiles(R)
    n_tiles = [(n0, min(C, N - n0)) for n0 in range(0, N, C)]
    live = []
    for n0, nt in n_tiles:
        tiles = [(ki, k0, kt) for ki, (k0, kt) in enumerate(k_tiles)
                 if b_dense is None or np.any(b_dense[k0:k0 + kt, n0:n0 + nt])]
        live.append(tiles or [(0, *k_tiles[0])])
    return k_tiles, n_tiles, live


#: Resident weights: one LOAD brings up to this many consecutive K-tiles of an N-tile (their
#: rows are contiguous in B and their homes consecutive lines), so a tile costs a PRELOAD
#: and a COMPUTE, not also a LOAD, of instruction fetch.
W_LOAD_TILES = 8


def weight_loads(tiles, batch: int | None = None) -> list[int]:
    """Rows each of an N-tile's resident weight tiles ``tiles`` (``(k0, kt)`` in step order)
    LOADs: the first of a run of at most ``batch`` (:data:`W_LOAD_TILES`) tiles whose rows
    follow each other (``k0`` of one is ``k0 + kt`` of the one before) loads the whole run,
    the others 0."""
    batch = W_LOAD_TILES if batch is None else batch
    if batch < 1:
        raise ValueError(f"weight LOAD batch must be at least 1 tile, not {batch}")
    rows, start, count = [], None, 0
    for j, (k0, kt) in enumerate(tiles):
        joins = start is not None and count < batch and k0 == tiles[j - 1][0] + tiles[j - 1][1]
        if joins:
            rows[start] += kt
            rows.append(0)
            count += 1
        else:
            start, count = j, 1
            rows.append(kt)
    return rows


def tile_weight_rows(plan, live, a_fresh: bool, first_alone: bool = False) -> list[int]:
    """The rows each step of an N-tile's live K-tiles ``live`` (``(ki, k0, kt)``) LOADs of
    weights (:func:`weight_loads`): resident weights in runs of :data:`W_LOAD_TILES`;
    streamed weights in runs of ``plan.w_batch`` when the N-tile loads no A chunk
    (``a_fresh`` false), one tile a LOAD when it does (its steps stay one A chunk each).
    ``first_alone``: the first tile is LOADed by itself, the runs start after it (a pass
    over K's tile, which may follow a SYNC: its first COMPUTE then waits for one tile's
    rows, not a run's; BERT's ffn2 was 0.4 % slower without)."""
    tiles = [(k0, kt) for _, k0, kt in live]
    batch = W_LOAD_TILES if plan.w_resident else 1 if a_fresh else plan.w_batch
    if first_alone and tiles:
        return [tiles[0][1]] + weight_loads(tiles[1:], batch)
    return weight_loads(tiles, batch)


def _weight_step(prog, w_line, kt, nt, w_addr, N, pop, load_a, load_w,
                 acc_load=None, w_rows=None) -> tuple[int, int]:
    """The weight half of a weight-stationary step (after its A load, if any): the weight
    tile's LOAD from ``w_addr`` (row stride ``N``) unless it is resident and loaded, whose
    token goes to the PRELOAD (popping the slot's token when the A load did not), then the
    PRELOAD of ``kt`` lines at ``w_line``.  Returns ``(fresh, compute_pops)``: 1 for a
    load step (one that loaded something), and 1 when the step loaded only its A chunk:
    then the COMPUTE, not the PRELOAD, takes the load's token, so resident weights preload
    while the A chunk is still loading.

    ``acc_load`` (a tile's first step, its accumulator block initialized from DRAM): the
    fields of a LOAD_ACC emitted after the step's loads, pushing a token the COMPUTE takes;
    the PRELOAD takes the step's own load token, if any.  The load unit finishes in order,
    so the COMPUTE's token says every load before it, the LOAD_ACC too, is done (a COMPUTE
    of a step that loads nothing would otherwise race the LOAD_ACC).

    ``w_rows``: the weight LOAD's rows when it brings the following tiles' too
    (:func:`weight_loads`); ``kt`` when omitted."""
    if load_w:
        prog.emit(Opcode.LOAD, sp_addr=w_line, nrows=w_rows or kt, ncols=nt, dram_addr=w_addr,
                  dram_stride=N, pop_next=int(pop and not load_a), push_next=1)
    if acc_load is not None:
        prog.emit(Opcode.LOAD_ACC, **acc_load, push_next=1)
        prog.emit(Opcode.PRELOAD, sp_addr=w_line, nrows=kt, pop_prev=int(load_a or load_w))
        return int(load_a or load_w), 1
    prog.emit(Opcode.PRELOAD, sp_addr=w_line, nrows=kt, pop_prev=int(load_w))
    return int(load_a or load_w), int(load_a and not load_w)


def _weight_layout(cfg, prog, slots, R, w_lines, live_of, params, N):
    """The WS schedules' common set-up: ``slots`` streamed-weight slots of ``R`` lines and,
    below them, one home per resident weight tile, all ending at the scratchpad's top (weights at
    the top of the scratchpad, activations from the bottom: with two banks they stream from
    different banks whenever the activations fit the lower half); two accumulator slots, one
    bank each; a per-tensor CONFIG emitted once.  Returns ``(w_slot, w_home, acc_slot,
    per_lane)``."""
    top = cfg.sp_lines
    w_slot = [top - (slots - s) * R for s in range(slots)]
    w_home, line = {}, top - w_lines          # resident weights: one home per tile
    for ni, live in enumerate(live_of):
        for ki, _, kt in live:
            w_home[ni, ki], line = line, line + kt
    acc_slot = [0, cfg.acc_lines // 2]
    per_lane = params is not None and _per_lane(params, N)
    if params is not None and not per_lane:
        emit_config(prog, params, 0, cfg.cols, per_lane=False)
    return w_slot, w_home, acc_slot, per_lane


def _schedule_ws(cfg, prog, a_src, M, K, N, b_addr, out_addr, esize, params, b_dense,
                 acc_in=None, sp_lo=0, out_sp=None):
    """Emit the weight-stationary schedule (see module doc).  Returns its plan and counts.

    A step is one weight tile: its loads (the A chunk unless resident and loaded, the
    weight tile unless resident and loaded), PRELOAD and COMPUTE.  A step that loads
    something is a *load step*: its last LOAD hands a token to PRELOAD, and its COMPUTE
    gives the (double-buffered) slot back; the load steps' slots alternate.

    ``sp_lo``: use the lines from ``sp_lo`` up (those below hold on-chip outputs); an
    :class:`_OnChipA` ``a_src`` is read where it lies; ``out_sp``: store the output on chip
    (:func:`_emit_store`).  ``acc_in = (addr, row_bytes)``: each tile's accumulator block
    starts from int32 rows in DRAM (row ``m``, column ``n`` at ``addr + m * row_bytes +
    4 * n``; ``row_bytes`` 0 repeats one bias row), LOAD_ACC'd in its first step
    (:func:`_weight_step`) after :func:`_sync_acc_slot`."""
    R, C = cfg.rows, cfg.cols
    on_chip = isinstance(a_src, _OnChipA)
    k_tiles, n_tiles, live_of = _ws_tiles(a_src, R, N, C, b_dense)
    w_lines = sum(kt for live in live_of for _, _, kt in live)
    w_bytes = sum(kt * nt for live, (_, nt) in zip(live_of, n_tiles) for _, _, kt in live)
    a_stream = M * sum(kt for live in live_of for _, _, kt in live)
    plan = ws_plan(cfg, M, len(k_tiles), M * K, a_stream, w_bytes, w_lines, sp_lo, on_chip)
    Mb, resident = plan.Mb, plan.a_resident
    slots = plan.slots
    w_slot, w_home, acc_slot, per_lane = _weight_layout(cfg, prog, slots, R * plan.w_batch,
                                                       w_lines, live_of, params, N)

    step = tile = load_steps = 0
    for m0 in range(0, M, Mb):
        mb = min(Mb, M - m0)
        loaded = set()                   # resident A chunks of this M-block
        a_base = sp_lo + (m0 // Mb % plan.a_regions) * len(k_tiles) * Mb
        if resident and m0 > 0 and plan.a_regions == 1 and not on_chip:
            # The new block's chunks overwrite the old block's: let its last uses finish.
            prog.emit(Opcode.SYNC)
        loads_a = lambda ki: not (resident and ki in loaded or on_chip)  # noqa: E731
        for ni, (n0, nt) in enumerate(n_tiles):
            slot = acc_slot[tile % 2]
            a_fresh = any(loads_a(ki) for ki, _, _ in live_of[ni])
            w_rows = tile_weight_rows(plan, live_of[ni], a_fresh, acc_in is not None)
            for j, (ki, k0, kt) in enumerate(live_of[ni]):
                acc_load = None
                if j == 0 and acc_in is not None:
                    _sync_acc_slot(prog, tile)
                    addr, row_bytes = acc_in
                    acc_load = dict(acc_addr=slot, nrows=mb, ncols=nt, dram_stride=row_bytes,
                                    dram_addr=addr + m0 * row_bytes + 4 * n0)
                load_a = loads_a(ki)
                load_w = w_rows[j] > 0 and (not plan.w_resident or m0 == 0)
                loaded.add(ki)
                a_line = a_src.line(m0, ki) if on_chip else \
                    a_base + ki * Mb if resident else sp_lo + (load_steps % slots) * Mb
                if w_rows[j]:                     # a batch of streamed tiles starts
                    w_base, w_off = w_slot[load_steps % slots], 0
                w_line = w_home[ni, ki] if plan.w_resident else w_base + w_off
                w_off += kt
                # a streamed batch's last COMPUTE gives its slot back (its first loaded it)
                frees = j + 1 == len(w_rows) or w_rows[j + 1] > 0
                pop = int(load_steps >= slots)
                if load_a:
                    a_src.load(prog, a_line, m0, mb, k0, kt,
                               {"pop_next": pop, "push_next": int(not load_w)})
                fresh, a_pop = _weight_step(prog, w_line, kt, nt, b_addr + k0 * N + n0, N,
                                            pop, load_a, load_w, acc_load, w_rows[j])
                load_steps += fresh
                last = j == len(live_of[ni]) - 1
                prog.emit(Opcode.COMPUTE, a_addr=a_line, acc_addr=slot, nrows=mb,
                          accumulate=int(j > 0 or acc_in is not None),
                          pop_prev=a_pop,
                          push_prev=fresh if plan.w_resident else int(frees),
                          push_next=int(last),
                          pop_next=int(j == 0 and tile >= 2))
                step += 1
            _emit_store(prog, params, per_lane, slot, m0, mb, n0, nt, N, out_addr, esize,
                        out_sp)
            tile += 1
    prog.emit(Opcode.HALT)
    return {"steps": step, "tiles": tile, "Mb": Mb, "a_resident": resident,
            "w_resident": plan.w_resident, "a_regions": plan.a_regions,
            "slots": plan.slots, "w_batch": plan.w_batch}


@dataclass(frozen=True)
class BandPlan:
    """On-chip im2col for a stride-1 convolution (WS).  An M-block is ``ob`` output rows;
    its ``ob + KH - 1`` padded input rows (every padded column, one scratchpad region per
    channel chunk) are loaded once, and kernel tap ``(ky, kx)`` reads them from line
    ``ky * Wp + kx`` on: output ``(y, x)`` sits on accumulator line ``y * Wp + x`` of the
    block, so the block computes ``(ob - 1) * Wp + Wo`` lines (the ``Wp - Wo`` lines between
    two output rows are computed and never stored).  ``w_resident`` as in :class:`WsPlan`.
    ``regions``: the bands rotate over this many scratchpad regions when they fit (a band's
    LOAD then overwrites a band whose last COMPUTE the slot tokens have seen finish: with
    ``k`` load steps per band, the token ``slots`` load steps back is ``ceil(slots / k)``
    bands back), else 1 and a SYNC before each band.  ``slots`` as in :class:`WsPlan`."""
    ob: int
    w_resident: bool
    regions: int = 1
    slots: int = 2
    #: streamed weights: one tile a slot (:func:`tile_weight_rows`; resident weights still
    #: come in runs of :data:`W_LOAD_TILES`)
    w_batch: int = 1

    @staticmethod
    def block_lines(rows: int, Wp: int, Wo: int) -> int:
        """Accumulator lines a block of ``rows`` output rows computes."""
        return (rows - 1) * Wp + Wo


def band_k_tiles(R: int, KH: int, KW: int, Cin: int) -> list[tuple[int, int, int, int]]:
    """The on-chip im2col's K-tiles ``(ky, kx, c0, kt)``: one per kernel tap and chunk of at
    most ``R`` input channels, in the K order (ky, kx, c)."""
    return [(ky, kx, c0, min(R, Cin - c0)) for ky in range(KH) for kx in range(KW)
            for c0 in range(0, Cin, R)]


def band_plan(cfg: NPUConfig, Ho: int, Wp: int, Wo: int, Cin: int, KH: int, KW: int,
              stride: int, w_lines: int, in_bytes: int, w_bytes: int,
              sp_lo: int = 0) -> BandPlan | None:
    """The on-chip im2col plan for a WS convolution, or None where it does not apply: a
    strided or 1x1 kernel (windows do not overlap the same way), fewer input channels than
    make whole tiles (packed taps, :func:`conv_k_tiles`, then use the rows better), or no
    room for one output row.  With and without resident weights, the largest band that fits
    the accumulator half and the scratchpad is costed in DRAM bytes (the band's input rows,
    ``KH - 1`` of them read twice at each band edge, and the weights once or per band);
    blocks of fewer than ``2 * rows`` lines are avoided as in :func:`ws_plan`.
    ``sp_lo``: the lines below it are not the layer's, as for :func:`ws_plan`."""
    R = cfg.rows
    sp_lines = cfg.sp_lines - sp_lo
    if stride != 1 or KH * KW == 1:
        return None
    chunks = -(-Cin // R)
    if KH * KW * chunks * 8 > 9 * len(conv_k_tiles(R, KH, KW, Cin)):
        return None
    half = cfg.acc_lines // 2
    if half < Wo:
        return None
    ob_acc = (half - Wo) // Wp + 1
    plans = []
    for w_res, slots in ((True, 2), (False, 3), (False, 2)):
        room = sp_lines - (w_lines if w_res else slots * R)
        ob = min(Ho, ob_acc, room // (chunks * Wp) - KH + 1)
        if ob >= 1:
            blocks = -(-Ho // ob)
            traffic = in_bytes * (ob + KH - 1) // ob + w_bytes * (1 if w_res else blocks)
            # load steps per band: its chunks' band LOADs, or every step's weights
            regions = 1 + -(-slots // (chunks if w_res else KH * KW * chunks))
            if room // (regions * chunks * Wp) - KH + 1 < ob:
                regions = 1
            plans.append((BandPlan.block_lines(ob, Wp, Wo) < min(Ho * Wp, 2 * R), traffic,
                          -ob, BandPlan(ob, w_res, regions, slots)))
    # on a tie the first: resident weights, then three slots
    return min(plans, key=lambda t: t[:3])[3] if plans else None


def _band_live(k_tiles, n_tiles, b_dense):
    """Per N-tile, its live band tiles ``(ki, k0, kt)`` (K index of the tile's first row)."""
    live = []
    for n0, nt in n_tiles:
        tiles = [(ki, k0, kt) for ki, (k0, kt) in enumerate(k_tiles)
                 if b_dense is None or np.any(b_dense[k0:k0 + kt, n0:n0 + nt])]
        live.append(tiles or [(0, *k_tiles[0])])
    return live


def _schedule_ws_band(cfg, prog, geometry, x_addr, N, b_addr, out_addr, esize, params,
                      b_dense, sp_lo=0, out_sp=None):
    """Emit the WS schedule with on-chip im2col (:class:`BandPlan`), or return None where
    it does not apply.  Steps, tokens and resident weights as in :func:`_schedule_ws`; a
    channel chunk's band is one LOAD (its input rows are contiguous pixels), and a block's
    output rows are stored one STORE each (the first pops the compute unit's token, the
    last gives the accumulator block back).  ``sp_lo``, ``out_sp``: as for
    :func:`_schedule_ws` (an output row's pixels are consecutive rows of the GEMM)."""
    Hp, Wp, Cin, KH, KW, stride, Ho, Wo = geometry
    R, C = cfg.rows, cfg.cols
    tiles = band_k_tiles(R, KH, KW, Cin)
    k_tiles = [((ky * KW + kx) * Cin + c0, kt) for ky, kx, c0, kt in tiles]
    n_tiles = [(n0, min(C, N - n0)) for n0 in range(0, N, C)]
    live_of = _band_live(k_tiles, n_tiles, b_dense)
    w_lines = sum(kt for live in live_of for _, _, kt in live)
    w_bytes = sum(kt * nt for live, (_, nt) in zip(live_of, n_tiles) for _, _, kt in live)
    plan = band_plan(cfg, Ho, Wp, Wo, Cin, KH, KW, stride, w_lines, Hp * Wp * Cin, w_bytes,
                     sp_lo)
    if plan is None:
        return None
    band = (plan.ob + KH - 1) * Wp
    chunk_base = {c0: sp_lo + i * band for i, c0 in enumerate(range(0, Cin, R))}
    slots = plan.slots
    w_slot, w_home, acc_slot, per_lane = _weight_layout(cfg, prog, slots, R, w_lines, live_of,
                                                       params, N)
    w_rows = [tile_weight_rows(plan, live, a_fresh=False) for live in live_of]
    step = tile = load_steps = 0
    for y0 in range(0, Ho, plan.ob):
        rows = min(plan.ob, Ho - y0)
        lines = BandPlan.block_lines(rows, Wp, Wo)
        loaded = set()
        region = (y0 // plan.ob % plan.regions) * len(chunk_base) * band
        if y0 > 0 and plan.regions == 1:
            prog.emit(Opcode.SYNC)      # the new band overwrites the last one's
        for ni, (n0, nt) in enumerate(n_tiles):
            slot = acc_slot[tile % 2]
            for j, (ki, k0, kt) in enumerate(live_of[ni]):
                ky, kx, c0, _ = tiles[ki]
                base = region + chunk_base[c0]
                load_a = c0 not in loaded
                load_w = w_rows[ni][j] > 0 and (not plan.w_resident or y0 == 0)
                loaded.add(c0)
                w_line = w_home[ni, ki] if plan.w_resident else w_slot[load_steps % slots]
                pop = int(load_steps >= slots)
                if load_a:
                    prog.emit(Opcode.LOAD, sp_addr=base, nrows=(rows + KH - 1) * Wp,
                              ncols=kt, dram_addr=x_addr + y0 * Wp * Cin + c0,
                              dram_stride=Cin, pop_next=pop, push_next=int(not load_w))
                fresh, a_pop = _weight_step(prog, w_line, kt, nt, b_addr + k0 * N + n0, N,
                                            pop, load_a, load_w, w_rows=w_rows[ni][j])
                load_steps += fresh
                prog.emit(Opcode.COMPUTE, a_addr=base + ky * Wp + kx, acc_addr=slot,
                          nrows=lines, accumulate=int(j > 0), pop_prev=a_pop, push_prev=fresh,
                          push_next=int(j == len(live_of[ni]) - 1),
                          pop_next=int(j == 0 and tile >= 2))
                step += 1
            if params is not None and per_lane:
                emit_config(prog, params, n0, nt, per_lane=True)
            for r in range(rows):
                flags = dict(pop_prev=int(r == 0), push_prev=int(r == rows - 1))
                if out_sp is not None:          # one line per pixel (_OnChipA's layout)
                    base_sp, M, _ = out_sp
                    prog.emit(Opcode.STORE, acc_addr=slot + r * Wp, nrows=Wo, ncols=nt,
                              to_sp=1, dram_addr=base_sp + n0 // C * M + (y0 + r) * Wo,
                              dram_stride=1, **flags)
                    continue
                prog.emit(Opcode.STORE, acc_addr=slot + r * Wp, nrows=Wo, ncols=nt,
                          raw=int(params is None),
                          dram_addr=out_addr + ((y0 + r) * Wo * N + n0) * esize,
                          dram_stride=N * esize, **flags)
            tile += 1
    prog.emit(Opcode.HALT)
    return {"steps": step, "tiles": tile, "band_rows": plan.ob, "w_resident": plan.w_resident,
            "on_chip_im2col": True, "band_regions": plan.regions, "slots": plan.slots}


def _sync_acc_slot(prog, tile):
    """Before a LOAD_ACC into tile ``tile``'s accumulator slot: the slot was last read by
    the STORE two tiles back, which no token orders the load unit after; a SYNC does (none
    for the first two tiles)."""
    if tile >= 2:
        prog.emit(Opcode.SYNC)


def _load_acc_bias(prog, tile, slot, nrows, ncols, addr):
    """Accumulate into bias: LOAD_ACC the bias row into every line of the block (stride 0),
    after :func:`_sync_acc_slot`."""
    _sync_acc_slot(prog, tile)
    prog.emit(Opcode.LOAD_ACC, acc_addr=slot, nrows=nrows, ncols=ncols, dram_addr=addr,
              dram_stride=0)


def _schedule_os(cfg, prog, at_addr, M, K, N, b_addr, out_addr, esize, params,
                 acc_bias_addr=None):
    """Output-stationary: A^T (K x M) and B (K x N) in DRAM, one R x C tile at a time."""
    R, C = cfg.rows, cfg.cols
    half = cfg.sp_lines // 2
    Kc = os_chunk(cfg, K)
    a_slot, b_slot = [0, Kc], [half, half + Kc]
    acc_slot = [0, cfg.acc_lines // 2]
    per_lane = params is not None and _per_lane(params, N)
    if params is not None and not per_lane:
        emit_config(prog, params, 0, C, per_lane=False)
    chunks = [(k0, min(Kc, K - k0)) for k0 in range(0, K, Kc)]
    # With K in one chunk, an M-tile's A^T stays in the scratchpad for all its N-tiles (two
    # slots alternate by M-tile); otherwise both operands stream per chunk.
    a_resident = len(chunks) == 1
    step = tile = 0
    for mi, m0 in enumerate(range(0, M, R)):
        mt = min(R, M - m0)
        for ni, n0 in enumerate(range(0, N, C)):
            nt = min(C, N - n0)
            slot = acc_slot[tile % 2]
            for j, (k0, kc) in enumerate(chunks):
                s = step % 2
                a_line = a_slot[mi % 2] if a_resident else a_slot[s]
                if j == 0 and acc_bias_addr is not None:
                    _load_acc_bias(prog, tile, slot, R, nt, acc_bias_addr + 4 * n0)
                load_a = not a_resident or ni == 0
                if load_a:
                    prog.emit(Opcode.LOAD, sp_addr=a_line, nrows=kc, ncols=mt,
                              dram_addr=at_addr + k0 * M + m0, dram_stride=M,
                              pop_next=int(step >= 2))
                prog.emit(Opcode.LOAD, sp_addr=b_slot[s], nrows=kc, ncols=nt,
                          dram_addr=b_addr + k0 * N + n0, dram_stride=N, push_next=1,
                          pop_next=int(step >= 2 and not load_a))
                last = j == len(chunks) - 1
                prog.emit(Opcode.COMPUTE, a_addr=a_line, b_addr=b_slot[s], acc_addr=slot,
                          nrows=kc, accumulate=int(j > 0 or acc_bias_addr is not None),
                          pop_prev=1, push_prev=1,
                          push_next=int(last), pop_next=int(j == 0 and tile >= 2))
                step += 1
            _emit_store(prog, params, per_lane, slot, m0, mt, n0, nt, N, out_addr, esize)
            tile += 1
    prog.emit(Opcode.HALT)
    return {"steps": step, "tiles": tile, "Kc": Kc, "a_resident": a_resident}


def finish_layer(cfg, name, image, prog, out_addr, out_shape, params, acc, macs, meta):
    """Place the program, compute the golden output, check the image fits 32-bit space."""
    code = isa.program_bytes(prog.words)
    program_addr = image.alloc(len(code))
    image.data[program_addr:program_addr + len(code)] = code
    image.alloc(ALIGN)  # slack: nothing sits flush against the end of memory
    if len(image.data) >= 1 << 32:
        raise LayerError("the layer does not fit a 32-bit address space")
    if params is None:
        expected = golden.wrap(acc, 32)
        dtype = "int32"
    else:
        expected = params.requantize(acc).astype(np.int64)
        dtype = "int8"
    return Layer(cfg, name, prog.words, image.data, program_addr, out_addr, out_shape, dtype,
                 expected.reshape(out_shape), macs, meta)


def compile_gemm(cfg: NPUConfig, a, b, requant: Requant | None = None,
                 name: str = "gemm", acc_bias=None, passes: int | None = None) -> Layer:
    """``out = requant(A @ B)``: A is M x K, B is K x N (int8); int8 or raw int32 out.

    ``acc_bias`` (int32 per output column): preload it into the accumulator with LOAD_ACC
    and accumulate onto it (instead of adding a bias in post-processing).  ``passes``
    (weight-stationary): passes over K, default :func:`k_passes`'s choice."""
    a, b = check_int8("A", a, 2), check_int8("B", b, 2)
    if a.shape[1] != b.shape[0]:
        raise LayerError(f"{name}: inner dimensions differ: A is {a.shape}, B is {b.shape}")
    M, K = a.shape
    N = b.shape[1]
    requant = requant or Requant()
    params = requant.params(N)
    esize = 1 if params is not None else 4
    image = DramImage()
    prog = ProgramBuilder()
    acc = golden.gemm(a, b)
    bias_addr = None
    if acc_bias is not None:
        if np.asarray(acc_bias).dtype.kind not in "iu":
            raise LayerError(f"{name}: acc_bias must be integers (int32), not "
                             f"{np.asarray(acc_bias).dtype}")
        acc_bias = np.asarray(acc_bias, np.int64)
        if acc_bias.shape != (N,) or acc_bias.min() < golden.INT32_MIN or \
                acc_bias.max() > golden.INT32_MAX:
            raise LayerError(f"{name}: acc_bias must be {N} int32 values")
        bias_addr = image.put(acc_bias, "<i4")
        acc = golden.wrap(acc + acc_bias, 32)
    if cfg.dataflow == "ws":
        a_addr, b_addr = image.put(a, np.int8), image.put(b, np.int8)
        out_addr = image.alloc(M * N * esize)
        passes = k_passes(cfg, M, K, N, esize) if passes is None else passes
        k_pass_ranges(cfg.rows, K, passes)                 # refuses a count out of range
        psum_addr = image.alloc(M * N * 4) if passes > 1 else None
        meta = _schedule_ws_passes(cfg, prog, a_addr, M, K, N, b_addr, out_addr, esize, params,
                                   bias_addr, passes, psum_addr)
    else:
        at_addr, b_addr = image.put(a.T, np.int8), image.put(b, np.int8)
        out_addr = image.alloc(M * N * esize)
        meta = _schedule_os(cfg, prog, at_addr, M, K, N, b_addr, out_addr, esize, params,
                            bias_addr)
    return finish_layer(cfg, name, image, prog, out_addr, (M, N), params, acc,
                   M * K * N, {**meta, "M": M, "K": K, "N": N})


def k_pass_ranges(R: int, K: int, passes: int) -> list[tuple[int, int]]:
    """The K ranges ``(k0, length)`` of a GEMM computed in ``passes`` passes over K: its
    K-tiles of ``R`` rows shared out as evenly as they go, the first passes taking one more."""
    tiles = -(-K // R)
    if not 1 <= passes <= tiles:
        raise LayerError(f"{passes} passes over {tiles} K-tiles")
    bounds = [min(K, R * (q * tiles // passes)) for q in range(passes)] + [K]
    return [(lo, hi - lo) for lo, hi in zip(bounds, bounds[1:])]


@functools.lru_cache(maxsize=4096)
def k_passes(cfg: NPUConfig, M: int, K: int, N: int, out_bytes: int = 1) -> int:
    """How many passes over K a weight-stationary GEMM reading A from DRAM takes: the count
    whose DRAM bytes are fewest (``dram_breakdown.gemm_breakdown``, equal to the analytical
    mode's), the fewer on a tie.  A pass leaves its int32 partial sums in DRAM (a raw
    STORE), the next one starts its tiles from them (LOAD_ACC): ``8 M N`` bytes a pass
    boundary, which pays when the passes' shorter K-ranges let A stay resident in fewer
    M-blocks, so the weights are re-read fewer times (BERT's ffn2 at 16x16: A is 384 KiB,
    the scratchpad 256 KiB).  Counts are tried while the boundaries cost less than the
    single pass re-reads.  One pass where the accumulator is not 32 bits wide (a raw STORE
    writes int32)."""
    if cfg.dataflow != "ws" or cfg.acc_width != 32:
        return 1
    from .dram_breakdown import gemm_breakdown
    one = gemm_breakdown(cfg, M, K, N, out_bytes, passes=1)
    rereads = one["weight_rereads"] + one["input_rereads"]
    best, best_bytes = 1, one["total"]
    passes = 2
    while passes <= -(-K // cfg.rows) and 8 * M * N * (passes - 1) < rereads:
        try:
            total = gemm_breakdown(cfg, M, K, N, out_bytes, passes=passes)["total"]
        except LayerError:
            total = None
        if total is not None and total < best_bytes:
            best, best_bytes = passes, total
        passes += 1
    return best


def _schedule_ws_passes(cfg, prog, a_addr, M, K, N, b_addr, out_addr, esize, params,
                        bias_addr, passes, psum_addr):
    """A dense WS GEMM in ``passes`` passes over K (:func:`k_passes`), linked into one
    program (:func:`link_words`: a SYNC between passes): every pass but the last stores its
    raw int32 sums at ``psum_addr``, every pass but the first starts from them; the first
    starts from the bias row at ``bias_addr`` if any.  Returns the schedule's meta (one
    pass: :func:`_schedule_ws`'s)."""
    if passes == 1:
        return {**_schedule_ws(cfg, prog, _DenseA(a_addr, K), M, K, N, b_addr, out_addr,
                               esize, params, None, None if bias_addr is None else
                               (bias_addr, 0)), "passes": 1}
    programs, metas = [], []
    for q, (k0, kl) in enumerate(k_pass_ranges(cfg.rows, K, passes)):
        last = q == passes - 1
        acc_in = (psum_addr, 4 * N) if q else None if bias_addr is None else (bias_addr, 0)
        part = ProgramBuilder()
        metas.append(_schedule_ws(cfg, part, _DenseA(a_addr + k0, kl, K), M, kl, N,
                                  b_addr + k0 * N, out_addr if last else psum_addr,
                                  esize if last else 4, params if last else None, None,
                                  acc_in))
        programs.append(part.words)
    prog.words = link_words(programs)
    return {"passes": passes, "pass_metas": metas, "psum_addr": psum_addr,
            "steps": sum(m["steps"] for m in metas), "tiles": sum(m["tiles"] for m in metas)}


def leftover_tokens(ins):
    """Tokens a layer's decoded instructions leave unconsumed: (compute -> load,
    store -> compute)."""
    c2l = sum(i["push_prev"] for i in ins if i["op"] == Opcode.COMPUTE) - \
        sum(i["pop_next"] for i in ins if i["op"] in (Opcode.LOAD, Opcode.LOAD_ACC))
    s2c = sum(i["push_prev"] for i in ins if i["op"] == Opcode.STORE) - \
        sum(i["pop_next"] for i in ins if i["op"] == Opcode.COMPUTE)
    return c2l, s2c


def take_tokens(ins, c2l, s2c):
    """Make the first ``c2l`` loads and ``s2c`` computes of ``ins`` (decoded) that pop
    nothing pop a token; returns the tokens a short layer could not take (carried to the
    next one)."""
    for i in ins:
        if c2l and i["op"] in (Opcode.LOAD, Opcode.LOAD_ACC) and not i["pop_next"]:
            i["pop_next"], c2l = 1, c2l - 1
        elif s2c and i["op"] == Opcode.COMPUTE and not i["pop_next"]:
            i["pop_next"], s2c = 1, s2c - 1
    return c2l, s2c


def link_words(programs: list[list[int]]) -> list[int]:
    """Programs run one after another as one: each one's HALT dropped, a SYNC between two
    (the next one's loads, computes and on-chip reads wait until everything before is
    done), the tokens one leaves taken by the next one's first instructions
    (:func:`take_tokens`), one HALT at the end."""
    out, left = [], (0, 0)
    for k, words in enumerate(programs):
        ins = [isa.decode(w) for w in words]
        ins = [i for i in ins if i["op"] != Opcode.HALT]
        mine = leftover_tokens(ins)
        if k:
            out.append(isa.encode(Opcode.SYNC))
            carry = take_tokens(ins, *left)
            mine = (mine[0] + carry[0], mine[1] + carry[1])
        left = mine
        out += [isa.encode(i["op"], **{n: v for n, v in i.items() if n != "op"}) for i in ins]
    return out + [isa.encode(Opcode.HALT)]


def chain_regions(cfg: NPUConfig, M: int, widths: list[int]) -> list[int]:
    """The first lines of the two scratchpad regions a chain's intermediates (``M`` rows of
    each of ``widths`` columns) alternate between, from line 0, and where the lines the
    chain's layers use start (the last entry)."""
    lines = [sp_out_lines(M, n, cfg.cols) for n in widths]
    size = [max(lines[0::2], default=0), max(lines[1::2], default=0)]
    return [0, size[0], size[0] + size[1]]


#: The share of the scratchpad a chain's regions may take (the layers keep the rest; whether
#: that pays is :func:`chain_pays`'s question).
CHAIN_SHARE = 7 / 8


def chain_on_chip(cfg: NPUConfig, M: int, widths: list[int]) -> bool:
    """Whether a chain's intermediate outputs (``M`` rows of each of ``widths`` columns) may
    stay on chip: a weight-stationary core whose N-tiles fit its K-tiles (``cols <= rows``),
    the two alternating regions (:func:`chain_regions`) taking at most
    :data:`CHAIN_SHARE` of the scratchpad."""
    if cfg.dataflow != "ws" or cfg.cols > cfg.rows or not widths:
        return False
    return chain_regions(cfg, M, widths)[-1] <= int(cfg.sp_lines * CHAIN_SHARE)


def chain_pays(cfg: NPUConfig, shapes: list[tuple]) -> bool:
    """Whether a chain of layers (``("gemm", M, K, N)`` or ``("conv", H, W, C, KH, KW, N,
    stride, pad, depthwise)`` each, every one after the first reading the one before) keeps
    its intermediates on chip: they fit (:func:`chain_on_chip`) and the analytical mode
    finds the chain moving fewer DRAM bytes than the same layers through DRAM
    (``analytical.chains``, which the sweep uses too: one rule)."""
    from .analytical import chains
    from .workloads import Layer as Shape
    layers = []
    for k, (kind, *dims) in enumerate(shapes):
        link = {"a_from": f"l{k - 1}"} if k else {}
        if kind == "gemm":
            M, K, N = dims
            layers.append(Shape(f"l{k}", "gemm", M=M, K=K, N=N, **link))
        else:
            h, w, c, kh, kw, n, stride, pad, dw = dims
            layers.append(Shape(f"l{k}", "conv", h=h, w=w, c=c, kh=kh, kw=kw, n=n,
                                stride=stride, pad=pad, depthwise=dw, **link))
    return all(c.out_on_chip for c in chains(cfg, layers)[:-1])


def compile_gemm_chain(cfg: NPUConfig, a, weights: list, requants: list,
                       name: str = "gemm_chain", on_chip: bool | None = None) -> Layer:
    """A chain of GEMMs as one program: ``x0 = A``, ``x[k+1] = requants[k](x[k] @ B[k])``
    (every requant but the last int8, the last may be None for raw int32 out).

    Weight-stationary.  Each intermediate is kept in the scratchpad (STORE ``to_sp``, read
    by the next layer where it lies, :class:`_OnChipA`) when ``on_chip`` (default: when
    :func:`chain_pays`); else it goes to DRAM and is loaded back.  Intermediates
    alternate between two regions at the bottom of the scratchpad
    (:func:`chain_regions`); each layer's A chunks and weights use the lines above them
    (weights at the top, another bank than the regions where they fit the lower half)."""
    if cfg.dataflow != "ws":
        raise LayerError(f"{name}: GEMM chains are weight-stationary (OS loads A^T, which "
                         f"a row-major STORE does not write)")
    if not weights or len(requants) != len(weights):
        raise LayerError(f"{name}: {len(weights)} weight matrices, {len(requants)} requants")
    x = check_int8("A", a, 2)
    bs = [check_int8(f"B{k}", b, 2) for k, b in enumerate(weights)]
    M = x.shape[0]
    for k, b in enumerate(bs):
        if b.shape[0] != (x.shape[1] if k == 0 else bs[k - 1].shape[1]):
            raise LayerError(f"{name}: B{k} is {b.shape}, its input has "
                             f"{x.shape[1] if k == 0 else bs[k - 1].shape[1]} columns")
    params = [(r or Requant()).params(b.shape[1]) for r, b in zip(requants, bs)]
    if any(p is None for p in params[:-1]):
        raise LayerError(f"{name}: every layer but the last needs an int8 requant")
    widths = [b.shape[1] for b in bs[:-1]]
    fits = chain_on_chip(cfg, M, widths)
    if on_chip is None:
        on_chip = fits and chain_pays(cfg, [("gemm", M, *b.shape) for b in bs])
    if on_chip and not fits:
        raise LayerError(f"{name}: the intermediates do not fit on chip here")
    *base, sp_lo = chain_regions(cfg, M, widths) if on_chip else [0, 0, 0]
    image, programs, metas = DramImage(), [], []
    a_src = _DenseA(image.put(x, np.int8), x.shape[1])
    xs, macs = [x], 0
    for k, (b, p) in enumerate(zip(bs, params)):
        K, N = b.shape
        last = k == len(bs) - 1
        esize = 1 if p is not None else 4
        acc = golden.gemm(xs[-1], b)
        macs += M * K * N
        b_addr = image.put(b, np.int8)
        out_sp = None if last or not on_chip else (base[k % 2], M, cfg.cols)
        out_addr = 0 if out_sp else image.alloc(M * N * esize)
        prog = ProgramBuilder()
        metas.append(_schedule_ws(cfg, prog, a_src, M, K, N, b_addr, out_addr, esize, p, None,
                                  sp_lo=sp_lo, out_sp=out_sp))
        programs.append(prog.words)
        if not last:
            xs.append(p.requantize(acc).astype(np.int64))
            a_src = _OnChipA(base[k % 2], M, N, cfg.cols) if on_chip else _DenseA(out_addr, N)
    prog = ProgramBuilder()
    prog.words = link_words(programs)
    return finish_layer(cfg, name, image, prog, out_addr, (M, bs[-1].shape[1]), params[-1],
                        acc, macs, {"M": M, "K": x.shape[1], "N": bs[-1].shape[1],
                                    "on_chip": on_chip, "layers": metas,
                                    "sp_lines_kept": sp_lo})


def im2col(x, KH, KW, stride, padding):
    """NHWC (H, W, Cin) -> (Ho*Wo, KH*KW*Cin) with K ordered (ky, kx, c)."""
    H, W, Cin = x.shape
    xp = np.pad(x, ((padding, padding), (padding, padding), (0, 0)))
    Ho = (H + 2 * padding - KH) // stride + 1
    Wo = (W + 2 * padding - KW) // stride + 1
    cols = np.empty((Ho, Wo, KH, KW, Cin), np.int64)
    for ky in range(KH):
        for kx in range(KW):
            cols[:, :, ky, kx] = xp[ky:ky + stride * Ho:stride, kx:kx + stride * Wo:stride]
    return cols.reshape(Ho * Wo, KH * KW * Cin), (Ho, Wo)


def conv2d_reference(x, w, stride=1, padding=0, depthwise=False):
    """Direct int64 convolution (independent of im2col), for tests."""
    H, W, Cin = x.shape
    KH, KW = w.shape[:2]
    xp = np.pad(np.asarray(x, np.int64), ((padding, padding), (padding, padding), (0, 0)))
    Ho = (H + 2 * padding - KH) // stride + 1
    Wo = (W + 2 * padding - KW) // stride + 1
    Cout = Cin if depthwise else w.shape[3]
    out = np.zeros((Ho, Wo, Cout), np.int64)
    for ky in range(KH):
        for kx in range(KW):
            patch = xp[ky:ky + stride * Ho:stride, kx:kx + stride * Wo:stride]
            if depthwise:
                out += patch * np.asarray(w, np.int64)[ky, kx]
            else:
                out += patch @ np.asarray(w, np.int64)[ky, kx]
    return out


def _conv_operands(x, w, stride, padding, depthwise, name):
    """A convolution's checked operands as a GEMM: ``(x, b, cols, (Ho, Wo))`` with ``b``
    the K x N weights (K ordered ky, kx, c; depthwise: only c == n non-zero) and ``cols``
    im2col(x)."""
    x = check_int8("input", x, 3)
    w = check_int8("weights", w, 3 if depthwise else 4)
    H, W, Cin = x.shape
    KH, KW = w.shape[:2]
    if (w.shape[2] != Cin):
        raise LayerError(f"{name}: weights expect {w.shape[2]} input channels, input has {Cin}")
    if not (isinstance(stride, int) and stride >= 1 and isinstance(padding, int) and padding >= 0):
        raise LayerError(f"{name}: stride must be >= 1 and padding >= 0 "
                         f"(got stride={stride}, padding={padding})")
    if KH > H + 2 * padding or KW > W + 2 * padding:
        raise LayerError(f"{name}: kernel {KH}x{KW} is larger than the padded input")
    Cout = Cin if depthwise else w.shape[3]
    if depthwise:
        b = np.zeros((KH, KW, Cin, Cout), np.int64)
        for c in range(Cin):
            b[:, :, c, c] = w[:, :, c]
    else:
        b = w
    b = b.reshape(KH * KW * Cin, Cout)
    cols, out_hw = im2col(x, KH, KW, stride, padding)
    return x, w, b, cols, out_hw


def _ws_conv_schedule(cfg, prog, image, x, b, KH, KW, stride, padding, esize, params,
                      depthwise, out_addr, sp_lo=0, out_sp=None):
    """A WS convolution reading its padded NHWC input from DRAM: on-chip im2col where
    :func:`band_plan` applies, else strided loads (:class:`_Im2colA`); ``sp_lo`` and
    ``out_sp`` as for :func:`_schedule_ws`.  Returns the schedule's meta."""
    H, W, Cin = x.shape
    Ho, Wo = (H + 2 * padding - KH) // stride + 1, (W + 2 * padding - KW) // stride + 1
    K, N = b.shape
    xp = np.pad(x, ((padding, padding), (padding, padding), (0, 0)))
    x_addr = image.put(xp, np.int8)
    b_addr = image.put(b, np.int8)
    out_addr = image.alloc(Ho * Wo * N * esize) if out_addr is None else out_addr
    geometry = (H + 2 * padding, W + 2 * padding, Cin, KH, KW, stride, Ho, Wo)
    b_dense = b if depthwise else None
    meta = _schedule_ws_band(cfg, prog, geometry, x_addr, N, b_addr, out_addr, esize,
                             params, b_dense, sp_lo, out_sp)
    if meta is None:
        src = _Im2colA(x_addr, *geometry)
        meta = _schedule_ws(cfg, prog, src, Ho * Wo, K, N, b_addr, out_addr, esize, params,
                            b_dense, sp_lo=sp_lo, out_sp=out_sp)
    return {**meta, "out_addr": out_addr}


def compile_conv2d(cfg: NPUConfig, x, w, stride: int = 1, padding: int = 0,
                   depthwise: bool = False, requant: Requant | None = None,
                   name: str = "conv2d", im2col_input: bool = False) -> Layer:
    """NHWC int8 convolution.  ``x``: (H, W, Cin).  ``w``: (KH, KW, Cin, Cout), or
    (KH, KW, C) when ``depthwise``.  Lowered to a GEMM over im2col rows: WS reads them
    straight from the padded input with strided loads (or builds them on chip); OS needs
    them transposed, so the image holds im2col(x)^T.

    ``im2col_input`` (WS): the host lays the input out as im2col rows
    (:func:`im2col_row_bytes` apart) instead of the padded NHWC tensor, and the layer loads
    them as a dense A -- for a network's first layer, whose input the host writes anyway,
    where :func:`im2col_input_pays`.  The image then holds no NHWC input to write into."""
    x, w, b, cols, (Ho, Wo) = _conv_operands(x, w, stride, padding, depthwise, name)
    KH, KW, Cin = w.shape[0], w.shape[1], x.shape[2]
    M, (K, N) = Ho * Wo, b.shape
    requant = requant or Requant()
    params = requant.params(N)
    esize = 1 if params is not None else 4
    image = DramImage()
    prog = ProgramBuilder()
    if cfg.dataflow == "ws" and im2col_input:
        stride_k = im2col_row_bytes(K)
        rows = np.zeros((M, stride_k), np.int64)
        rows[:, :K] = cols
        a_addr, b_addr = image.put(rows, np.int8), image.put(b, np.int8)
        out_addr = image.alloc(M * N * esize)
        meta = {**_schedule_ws(cfg, prog, _DenseA(a_addr, K, stride_k), M, K, N, b_addr,
                               out_addr, esize, params, b if depthwise else None),
                "im2col_input": True}
    elif cfg.dataflow == "ws":
        meta = _ws_conv_schedule(cfg, prog, image, x, b, KH, KW, stride, padding, esize,
                                 params, depthwise, None)
        out_addr = meta.pop("out_addr")
    else:
        at_addr = image.put(cols.T, np.int8)
        b_addr = image.put(b, np.int8)
        out_addr = image.alloc(M * N * esize)
        meta = _schedule_os(cfg, prog, at_addr, M, K, N, b_addr, out_addr, esize, params)
    acc = conv2d_reference(x, w, stride, padding, depthwise).reshape(M, N)
    macs = M * KH * KW * (1 if depthwise else Cin) * N
    return finish_layer(cfg, name, image, prog, out_addr, (Ho, Wo, N), params, acc, macs,
                   {**meta, "M": M, "K": K, "N": N})


def compile_conv_chain(cfg: NPUConfig, x, w, w_next, stride: int = 1, padding: int = 0,
                       depthwise: bool = False, requants=(None, None),
                       name: str = "conv_chain", on_chip: bool | None = None) -> Layer:
    """A convolution and the 1x1 convolution that reads its output (ResNet's bottleneck
    conv2 -> conv3, MobileNetV2's depthwise -> project) as one weight-stationary program:
    ``requants[1](requants[0](conv(x, w)) (*) w_next)``, ``w_next`` (Cout x N2) the 1x1
    kernel.  The first's int8 output is kept in the scratchpad (STORE ``to_sp``, one line
    per pixel per N-tile; the 1x1 convolution's A read where it lies, :class:`_OnChipA`)
    when ``on_chip`` (default: when :func:`chain_pays`), else it goes to DRAM and is
    loaded back."""
    if cfg.dataflow != "ws":
        raise LayerError(f"{name}: convolution chains are weight-stationary")
    x, w, b, _, (Ho, Wo) = _conv_operands(x, w, stride, padding, depthwise, name)
    M, N = Ho * Wo, b.shape[1]
    w2 = check_int8("next weights", w_next, 2)
    if w2.shape[0] != N:
        raise LayerError(f"{name}: the 1x1 kernel takes {w2.shape[0]} channels, the "
                         f"convolution gives {N}")
    params = [(r or Requant()).params(n) for r, n in zip(requants, (N, w2.shape[1]))]
    if params[0] is None:
        raise LayerError(f"{name}: the first convolution needs an int8 requant")
    fits = chain_on_chip(cfg, M, [N])
    if on_chip is None:
        H, W, C = x.shape
        on_chip = fits and chain_pays(cfg, [
            ("conv", H, W, C, w.shape[0], w.shape[1], N, stride, padding, depthwise),
            ("conv", Ho, Wo, N, 1, 1, w2.shape[1], 1, 0, False)])
    if on_chip and not fits:
        raise LayerError(f"{name}: the intermediate does not fit on chip here")
    region = chain_regions(cfg, M, [N])[-1] if on_chip else 0
    out_sp = (0, M, cfg.cols) if on_chip else None
    image, progs = DramImage(), [ProgramBuilder(), ProgramBuilder()]
    meta1 = _ws_conv_schedule(cfg, progs[0], image, x, b, w.shape[0], w.shape[1], stride,
                              padding, 1, params[0], depthwise, 0 if on_chip else None,
                              region, out_sp)
    mid = params[0].requantize(conv2d_reference(x, w, stride, padding, depthwise)
                               .reshape(M, N)).astype(np.int64)
    esize = 1 if params[1] is not None else 4
    b_addr = image.put(w2, np.int8)
    out_addr = image.alloc(M * w2.shape[1] * esize)
    a_src = _OnChipA(0, M, N, cfg.cols) if on_chip else _DenseA(meta1["out_addr"], N)
    meta2 = _schedule_ws(cfg, progs[1], a_src, M, N, w2.shape[1], b_addr, out_addr, esize,
                         params[1], None, sp_lo=region)
    prog = ProgramBuilder()
    prog.words = link_words([p.words for p in progs])
    macs = M * w.shape[0] * w.shape[1] * (1 if depthwise else x.shape[2]) * N + \
        M * N * w2.shape[1]
    return finish_layer(cfg, name, image, prog, out_addr, (Ho, Wo, w2.shape[1]), params[1],
                        golden.gemm(mid, w2), macs,
                        {"M": M, "K": N, "N": w2.shape[1], "on_chip": on_chip,
                         "layers": [meta1, meta2], "sp_lines_kept": region})


def compile_random(cfg: NPUConfig, layer, rng: np.random.Generator,
                   im2col_input: bool = False) -> Layer:
    """A workload layer (``sim_models.workloads.Layer``: its shape only) compiled with random
    int8 tensors from ``rng``: for runs where timing matters and values do not
    (``im2col_input``: see :func:`compile_conv2d`)."""
    i8 = lambda *shape: rng.integers(-128, 128, shape)  # noqa: E731
    if layer.kind == "gemm":
        return compile_gemm(cfg, i8(layer.M, layer.K), i8(layer.K, layer.N), name=layer.name)
    w = i8(layer.kh, layer.kw, layer.c) if layer.depthwise else \
        i8(layer.kh, layer.kw, layer.c, layer.n)
    return compile_conv2d(cfg, i8(layer.h, layer.w, layer.c), w, layer.stride, layer.pad,
                          depthwise=layer.depthwise, name=layer.name,
                          im2col_input=im2col_input)
