"""Analytical cycle models for fast sweeps.

``scalesim_*``: SCALE-Sim 3.0.0's compute-cycle model, reproduced exactly (its "Total Cycles"
column), so our numbers can be put side by side with the tool architects already use:

* the layer becomes operand matrices; by dataflow, the spatial rows/columns and the temporal
  extent are  ws: (S_r, S_c, T) = (window, filters, ofmap pixels),
  os: (ofmap pixels, filters, window),  is: (window, ofmap pixels, filters);
* folds = ceil(S_r / R) * ceil(S_c / C); a fold costs 2R + C + T - 2 cycles (ws, is) or
  T + R + C - 2 (os); the reported total is folds * fold - 1;
* a depthwise layer is split into one single-channel layer per channel.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass

from hdl import isa
from hdl.config import NPUConfig

from .compiler import (BandPlan, band_k_tiles, band_plan, conv_k_tiles, conv_tile_channels_meet,
                       os_chunk, ws_plan)
from .energy import Events
from .workloads import Layer

__all__ = ["core_estimate", "CoreEstimate", "SCALESIM_DATAFLOWS", "scalesim_spatiotemporal", "scalesim_layer_cycles",
           "scalesim_cycles"]

SCALESIM_DATAFLOWS = ("ws", "os", "is")


def _scalesim_units(layer: Layer):
    """The (ofmap pixels, window, filters, repeats) SCALE-Sim sees for a layer."""
    if layer.kind == "gemm":       # SCALE-Sim's GEMM mode: ifmap M x K, filter K x N
        return layer.M, layer.K, layer.N, 1
    ho, wo = layer.out_hw
    if layer.depthwise:
        return ho * wo, layer.kh * layer.kw, 1, layer.c
    return ho * wo, layer.kh * layer.kw * layer.c, layer.n, 1


def scalesim_spatiotemporal(layer: Layer, dataflow: str) -> tuple[int, int, int]:
    """SCALE-Sim's (S_r, S_c, T) for one (per-channel, if depthwise) layer."""
    ofmap, window, filters, _ = _scalesim_units(layer)
    if dataflow == "ws":
        return window, filters, ofmap
    if dataflow == "os":
        return ofmap, filters, window
    if dataflow == "is":
        return window, ofmap, filters
    raise ValueError(f"dataflow {dataflow!r} is not one of {SCALESIM_DATAFLOWS}")


def scalesim_layer_cycles(layer: Layer, rows: int, cols: int, dataflow: str) -> list[int]:
    """SCALE-Sim's compute cycles for the layer (one entry per split layer)."""
    if rows < 1 or cols < 1:
        raise ValueError(f"array must be at least 1x1, got {rows}x{cols}")
    s_r, s_c, t = scalesim_spatiotemporal(layer, dataflow)
    folds = math.ceil(s_r / rows) * math.ceil(s_c / cols)
    fold = (t + rows + cols - 2) if dataflow == "os" else (2 * rows + cols + t - 2)
    repeats = _scalesim_units(layer)[3]
    return [folds * fold - 1] * repeats


def scalesim_cycles(layers: list[Layer], rows: int, cols: int, dataflow: str) -> int:
    return sum(sum(scalesim_layer_cycles(l, rows, cols, dataflow)) for l in layers)


# --- our core: the fast analytical mode ------------------------------------------------

@dataclass
class CoreEstimate:
    """A layer on the core, estimated from its shape: cycles and the events energy prices."""
    cycles: int
    macs: int
    events: "Events"


# Overheads of the decoupled pipeline, fitted against the cycle-exact model (a LOAD's DMA
# round trip -- the load unit runs one LOAD at a time --, a step's streamer start-up and
# token hand-offs; WS: a step takes at least R + PRELOAD_WS cycles, the weight preload).
# The WS constants were refitted on the sweep's own layers at a balanced 16x16 memory
# (scripts/model_accuracy.py; testbench/test_cycle_model.py checks a sample).
LOAD_LATENCY = 6
STORE_ROW_EIGHTHS = 9
STEP_WS, READ_WS, READ_OS = 6, 6, 4
# OS: a chunk of kc beats takes at least kc + R/2 + STEP_OS cycles, and at least
# 2R + DRAIN_OS + kc/2 while the last tile's R result rows drain (both fitted on the exact
# model: GEMMs with K = 4..96 on 8x8 and 16x16 arrays, 256x256 outputs, within 4 %).
STEP_OS, DRAIN_OS = 7, 9
PRELOAD_WS = 16


def _beats(nbytes: int, bus_bytes: int) -> int:
    return max(1, -(-nbytes // bus_bytes))


@functools.lru_cache(maxsize=None)
def _mean_row_beats(ncols: int, stride: int, base: int, bus_bytes: int) -> float:
    """Beats per row of a strided LOAD whose rows of ``ncols`` bytes start at ``base +
    i * stride``: a row costs ``ceil((offset + ncols) / bus)`` beats with ``offset`` its
    start within a bus word (``dma.burst_plan``), averaged over the offsets' period."""
    period = bus_bytes // math.gcd(stride % bus_bytes or bus_bytes, bus_bytes)
    return sum(-(-((base + i * stride) % bus_bytes + ncols) // bus_bytes)
               for i in range(period)) / period


def _store(cfg: NPUConfig, ev: Events, rows: int, nt: int, esize: int) -> int:
    """A tile's STORE: its events, and its cycles: a row at a time through the requantizer
    and the write DMA, one cycle per beat, and 9/8 of a cycle for a one-beat row (measured
    on the exact model's write channel: 575 cycles for 512 one-beat rows)."""
    ev.acc_read_bytes += 4 * rows * cfg.cols
    ev.dram_bytes += rows * nt * esize
    return -(-rows * max(8 * _beats(nt * esize, cfg.bus_bytes), STORE_ROW_EIGHTHS) // 8)


def _ws_gemm(cfg: NPUConfig, M, N, k_tiles, live_of, a_segments, esize, on_chip=False,
             a_rows=None):
    """The compiler's WS schedule (``compiler._schedule_ws``), step by step, costed.

    A step is PRELOAD + COMPUTE of one weight tile: the array needs max(mb, R) cycles (the
    next tile's weights stream in while this one computes); the read DMA needs a cycle per
    beat (and per row) for the A chunk and the weight tile, each unless the plan
    (``compiler.ws_plan``) keeps it resident and it is loaded already.  A tile's store
    overlaps the next tile's steps.  The slower of the two sets the pace.
    ``on_chip``: activations and results live in an on-chip buffer fed separately (a
    TPU-style unified buffer): only weights and instructions cross the bus.
    ``a_rows(k0)``: the byte stride of A's rows and the offset of a tile's first row (for
    the beats an unaligned row costs); default dense rows of ``sum(k_tiles)`` bytes."""
    R, C, B = cfg.rows, cfg.cols, cfg.bus_bytes
    K = sum(k_tiles)
    k_first = [0, *itertools.accumulate(k_tiles)][:-1]
    a_rows = a_rows or (lambda k0: (K, k0))
    n_tiles = [(n0, min(C, N - n0)) for n0 in range(0, N, C)]
    lives = [live_of(n0, nt) or [0] for n0, nt in n_tiles]
    w_lines = sum(k_tiles[ki] for live in lives for ki in live)
    w_bytes = sum(k_tiles[ki] * nt for live, (_, nt) in zip(lives, n_tiles) for ki in live)
    a_stream = M * sum(k_tiles[ki] for live in lives for ki in live)
    plan = ws_plan(cfg, M, len(k_tiles), M * K, a_stream, w_bytes, w_lines)
    Mb, resident = plan.Mb, plan.a_resident
    sp_w, step_bits = cfg.sp_width, R * C * cfg.input_width
    row_bits = R * C * (cfg.input_width + cfg.acc_width)

    def block(mb, load_w):
        """One M-block of ``mb`` rows (every block of that size costs the same): its
        cycles, the fill before its first step, its last store and its events."""
        ev, loaded = Events(), set()         # resident A chunks of this block
        cycles = 0
        fill = store = None
        for ni, (n0, nt) in enumerate(n_tiles):
            tile_cycles = 0
            for ki in lives[ni]:
                kt = k_tiles[ki]
                load_a = (not resident or ki not in loaded) and not on_chip
                loaded.add(ki)
                read = 0
                if load_w:                                    # one LOAD of weights
                    read += kt * _beats(nt, B) + LOAD_LATENCY   # rows as aligned (fitted)
                    ev.dram_bytes += kt * nt + isa.INSN_BYTES
                    ev.sp_write_bytes += kt * sp_w
                if load_a:                                    # A: one LOAD per segment
                    read += round(mb * _mean_row_beats(kt, *a_rows(k_first[ki]), B)) + \
                        a_segments(mb) * LOAD_LATENCY
                    ev.dram_bytes += mb * kt
                    ev.sp_write_bytes += mb * sp_w
                ev.dram_bytes += 2 * isa.INSN_BYTES            # PRELOAD, COMPUTE
                ev.sp_read_bytes += (kt + mb) * sp_w
                ev.array_reg_bits += step_bits + mb * row_bits
                ev.acc_write_bytes += 4 * mb * C
                ev.acc_read_bytes += 4 * mb * C * (ki != lives[ni][0])
                ev.macs += mb * R * C
                if fill is None:
                    fill = read + READ_WS
                tile_cycles += max(mb + STEP_WS, R + PRELOAD_WS, read + READ_WS)
            before = ev.dram_bytes
            store = _store(cfg, ev, mb, nt, esize)
            if on_chip:       # results go to the on-chip buffer: two cycles a row, no DRAM
                ev.dram_bytes, store = before, 2 * mb
            cycles += max(tile_cycles, store)
        return cycles, fill, store, ev

    blocks, counts = {}, {}
    cycles = last_store = 0
    for m0 in range(0, M, Mb):
        key = (min(Mb, M - m0), not plan.w_resident or m0 == 0)
        if key not in blocks:
            blocks[key] = block(*key)
        counts[key] = counts.get(key, 0) + 1
        cyc, fill, store, _ = blocks[key]
        cycles += cyc
        if resident and m0 > 0:
            # The compiler's SYNC before a resident block (its chunks overwrite the last
            # block's): the block's first load waits until the last block's final store has
            # drained, so neither overlaps anything (seen on the exact model's trace).
            cycles += fill + last_store
        last_store = store
    ev = Events()
    for key, n in counts.items():
        ev = ev + blocks[key][3] * n
    return cycles, ev


def _ws_band(cfg: NPUConfig, layer: Layer, esize: int):
    """The compiler's WS schedule with on-chip im2col (``compiler._schedule_ws_band``),
    costed like :func:`_ws_gemm`, or None where the compiler does not use it.  A block
    computes ``(ob - 1) * Wp + Wo`` lines per step (the padded columns in between too); a
    channel chunk's band is one LOAD at the block's first step that uses it; the block's
    output rows are one STORE each."""
    R, C, B = cfg.rows, cfg.cols, cfg.bus_bytes
    ho, wo = layer.out_hw
    hp, wp, cin = layer.h + 2 * layer.pad, layer.w + 2 * layer.pad, layer.c
    tiles = band_k_tiles(R, layer.kh, layer.kw, cin)
    n_tiles = [(n0, min(C, layer.n - n0)) for n0 in range(0, layer.n, C)]
    lives = [[i for i, (_, _, c0, kt) in enumerate(tiles)
              if not layer.depthwise or (c0 < n0 + nt and n0 < c0 + kt)] or [0]
             for n0, nt in n_tiles]
    w_lines = sum(tiles[ki][3] for live in lives for ki in live)
    w_bytes = sum(tiles[ki][3] * nt for live, (_, nt) in zip(lives, n_tiles) for ki in live)
    plan = band_plan(cfg, ho, wp, wo, cin, layer.kh, layer.kw, layer.stride, w_lines,
                     hp * wp * cin, w_bytes)
    if plan is None:
        return None
    sp_w, step_bits = cfg.sp_width, R * C * cfg.input_width
    row_bits = R * C * (cfg.input_width + cfg.acc_width)

    def block(rows, load_w):
        """One band of ``rows`` output rows (every band of that size costs the same)."""
        ev, loaded = Events(), set()
        lines = BandPlan.block_lines(rows, wp, wo)
        cycles = 0
        fill = store = None
        for ni, (n0, nt) in enumerate(n_tiles):
            tile_cycles = 0
            for ki in lives[ni]:
                ky, kx, c0, kt = tiles[ki]
                read = 0
                if load_w:
                    read += kt * _beats(nt, B) + LOAD_LATENCY   # as in _ws_gemm
                    ev.dram_bytes += kt * nt + isa.INSN_BYTES
                    ev.sp_write_bytes += kt * sp_w
                if c0 not in loaded:
                    loaded.add(c0)
                    band = (rows + layer.kh - 1) * wp
                    read += round(band * _mean_row_beats(kt, cin, c0, B)) + LOAD_LATENCY
                    ev.dram_bytes += band * kt + isa.INSN_BYTES
                    ev.sp_write_bytes += band * sp_w
                ev.dram_bytes += 2 * isa.INSN_BYTES
                ev.sp_read_bytes += (kt + lines) * sp_w
                ev.array_reg_bits += step_bits + lines * row_bits
                ev.acc_write_bytes += 4 * lines * C
                ev.acc_read_bytes += 4 * lines * C * (ki != lives[ni][0])
                ev.macs += lines * R * C
                if fill is None:
                    fill = read + READ_WS
                tile_cycles += max(lines + STEP_WS, R + PRELOAD_WS, read + READ_WS)
            store = sum(_store(cfg, ev, wo, nt, esize) for _ in range(rows))
            ev.dram_bytes += rows * isa.INSN_BYTES
            cycles += max(tile_cycles, store)
        return cycles, fill, store, ev

    blocks, counts = {}, {}
    cycles = last_store = 0
    for y0 in range(0, ho, plan.ob):
        key = (min(plan.ob, ho - y0), not plan.w_resident or y0 == 0)
        if key not in blocks:
            blocks[key] = block(*key)
        counts[key] = counts.get(key, 0) + 1
        cyc, fill, store, _ = blocks[key]
        cycles += cyc
        if y0 > 0:
            cycles += fill + last_store      # the SYNC before each band but the first
        last_store = store
    ev = Events()
    for key, n in counts.items():
        ev = ev + blocks[key][3] * n
    return cycles, ev


def _os_gemm(cfg: NPUConfig, M, K, N, esize):
    """The compiler's OS schedule (``compiler._schedule_os``): per output tile, K beats of
    A^T and B join in the array while the DMA brings the next chunks.  The units overlap
    across a row of output tiles (double-buffered operands and accumulator blocks), so a
    row takes the longest of its array time, its DMA reads and its stores."""
    R, C, B = cfg.rows, cfg.cols, cfg.bus_bytes
    Kc = os_chunk(cfg, K)
    chunks = [min(Kc, K - k0) for k0 in range(0, K, Kc)]
    resident = len(chunks) == 1
    ev = Events()
    cycles = 0
    for m0 in range(0, M, R):
        mt = min(R, M - m0)
        array = reads = stores = 0
        for ni, n0 in enumerate(range(0, N, C)):
            nt = min(C, N - n0)
            for j, kc in enumerate(chunks):
                k0 = j * Kc
                read = round(kc * _mean_row_beats(nt, N, k0 * N + n0, B)) + LOAD_LATENCY
                ev.dram_bytes += kc * nt + 3 * isa.INSN_BYTES
                if not resident or ni == 0:
                    read += round(kc * _mean_row_beats(mt, M, k0 * M + m0, B)) + LOAD_LATENCY
                    ev.dram_bytes += kc * mt
                    ev.sp_write_bytes += kc * cfg.sp_width
                ev.sp_write_bytes += kc * cfg.sp_width
                ev.sp_read_bytes += 2 * kc * cfg.sp_width
                ev.array_reg_bits += kc * R * C * (2 * cfg.input_width + cfg.acc_width)
                ev.acc_write_bytes += 4 * R * C
                ev.acc_read_bytes += 4 * R * C * (j > 0)
                ev.macs += kc * R * C
                array += max(kc + R // 2 + STEP_OS, 2 * R + DRAIN_OS + kc // 2)
                reads += read + READ_OS
            stores += _store(cfg, ev, mt, nt, esize)
        cycles += max(array, reads, stores)
    return cycles, ev


def core_estimate(cfg: NPUConfig, layer: Layer, out_bytes: int = 1,
                  inputs_on_chip: bool = False) -> CoreEstimate:
    """Fast analytical mode: cycles and events of ``layer`` on the core ``cfg`` from its
    shape alone (no tensors, no program), following the compiler's tiling.  Validated
    against the cycle-exact model in ``testbench/test_cycle_model.py``; the error bound is
    stated there.

    ``inputs_on_chip`` (weight-stationary GEMMs only) models a separate weight path: the
    activations and results stay in an on-chip buffer (as in Google's TPU v1, whose
    unified buffer is filled over PCIe apart from the weight DRAM), so only weights and
    instructions use the bus.  Not a configuration of the knpu RTL."""
    if inputs_on_chip and (cfg.dataflow != "ws" or layer.kind != "gemm"):
        raise ValueError("inputs_on_chip models weight-stationary GEMM layers only, got "
                         f"{cfg.dataflow} {layer.kind} layer {layer.name!r}")
    R = cfg.rows
    fixed = 60 + 4 * (cfg.rows + cfg.cols)   # fetch start, array and requantizer latency, drain
    if cfg.dataflow == "os":
        total, ev = 0, Events()
        for count, M, K, N in layer.gemms():
            cyc, e = _os_gemm(cfg, M, K, N, out_bytes)
            total, ev = total + count * cyc, ev + e * count
        ev.cycles = total + fixed
        return CoreEstimate(ev.cycles, layer.macs, ev)
    if layer.kind == "gemm":
        M, K, N = layer.M, layer.K, layer.N
        k_tiles = [min(R, K - k0) for k0 in range(0, K, R)]
        cyc, ev = _ws_gemm(cfg, M, N, k_tiles, lambda n0, nt: list(range(len(k_tiles))),
                           lambda mb: 1, out_bytes, inputs_on_chip)
    elif (band := _ws_band(cfg, layer, out_bytes)) is not None:
        cyc, ev = band
    else:
        ho, wo = layer.out_hw
        cin, wp = layer.c, layer.w + 2 * layer.pad
        tiles = conv_k_tiles(R, layer.kh, layer.kw, cin)
        k_tiles = [kt for _, kt in tiles]
        if layer.depthwise:
            def live_of(n0, nt):
                return [i for i, (k0, kt) in enumerate(tiles)
                        if conv_tile_channels_meet(k0, kt, cin, n0, nt)]
        else:
            def live_of(n0, nt):
                return list(range(len(k_tiles)))
        run = layer.kw * cin
        cyc, ev = _ws_gemm(cfg, ho * wo, layer.n, k_tiles, live_of,
                           lambda mb: -(-mb // wo) + 1, out_bytes,
                           a_rows=lambda k0: (layer.stride * cin,
                                              (k0 // run) * wp * cin + k0 % run))
    ev.cycles = cyc + fixed
    return CoreEstimate(ev.cycles, layer.macs, ev)
