"""Where a GEMM layer's DRAM bytes go, and how few any schedule could move.

:func:`gemm_breakdown` splits the DRAM bytes the analytical mode counts for a GEMM layer
(``analytical.core_estimate(...).events.dram_bytes``) into the parts an architect asks
about, from the same plan the compiler and the analytical mode follow
(``compiler.ws_plan``, ``compiler.os_chunk``): the compulsory bytes (inputs, weights and
outputs once), instruction fetch, weight re-reads, input re-reads and partial sums.  The
parts sum exactly to the analytical mode's bytes (``testbench/test_dram_breakdown.py``
checks it, and each part against the compiled program's own instructions).

:func:`gemm_io_bound` is the red-blue pebble lower bound on the data any schedule of the
same multiplication must move between DRAM and ``S`` elements of on-chip memory (Hong and
Kung, "I/O complexity: the red-blue pebble game", STOC 1981, who gave
``Omega(M N K / sqrt(S))``; the constant from Smith, Lowery, Langou and van de Geijn, "A
tight I/O lower bound for matrix multiplication", arXiv:1702.02017: at least
``2 M N K / sqrt(S) - 2 S`` element transfers).  ``S`` counts the scratchpad's int8 elements
and the accumulator's int32 partial sums together, each element as one byte moved (int8
operands and outputs; a partial sum moved costs four), so the bound is a valid floor in
bytes for any schedule on this memory, whatever the instruction set.

:func:`resident_block_bytes` is the best the compiler's family of schedules can do (one
operand's row block resident for all of the other's columns, the other streamed once per
block, partial sums never leaving the accumulator): the gap between it and the pebble
bound is what a schedule holding partial sums of a square block would win, had the
accumulator room for them.
"""

from __future__ import annotations

import math

from hdl import isa
from hdl.config import NPUConfig

from . import compiler
from .compiler import k_pass_ranges, k_passes, os_chunk, ws_plan
from .workloads import Layer

__all__ = ["PARTS", "gemm_breakdown", "layer_breakdown", "network_breakdown",
           "gemm_io_bound", "resident_block_bytes"]

#: The parts of a layer's DRAM bytes, in the order tables print them.
PARTS = ("inputs", "weights", "outputs", "instructions", "weight_rereads",
         "input_rereads", "partial_sums")


def _ws_counts(cfg: NPUConfig, M: int, K: int, N: int, a_on_chip: bool, sp_lo: int,
               first_alone: bool = False) -> dict:
    """The WS schedule's instruction counts and operand bytes (``compiler._schedule_ws``):
    per M-block, per N-tile, per K-tile a step (PRELOAD, COMPUTE), the A chunk's LOAD
    unless it is on chip or resident and loaded, the weight tile's LOAD unless resident
    and loaded (resident weights: one LOAD per run of ``W_LOAD_TILES`` K-tiles); a STORE per
    tile; a SYNC before each resident block but the first when one region holds them."""
    R, C = cfg.rows, cfg.cols
    width = C if a_on_chip else R
    kt = -(-K // width)
    nt = -(-N // C)
    plan = ws_plan(cfg, M, kt, M * K, M * K * nt, K * N, K * nt, sp_lo, a_on_chip)
    blocks = -(-M // plan.Mb)
    steps = blocks * nt * kt
    if a_on_chip:
        a_loads = a_bytes = 0
    elif plan.a_resident:
        a_loads, a_bytes = blocks * kt, M * K
    else:
        a_loads, a_bytes = steps, M * K * nt
    w_reads = 1 if plan.w_resident else blocks
    # weight LOADs (compiler.tile_weight_rows): resident, one per run of W_LOAD_TILES
    # K-tiles; streamed, one per run of w_batch K-tiles in the N-tiles that load no A (all
    # but each block's first when A is resident and from DRAM), one per tile in the others
    # (a pass over K after the first, ``first_alone``: each N-tile's first tile by itself)
    runs = lambda b: 1 + -(-(kt - 1) // b) if first_alone else -(-kt // b)  # noqa: E731
    if plan.w_resident:
        w_loads = nt * runs(compiler.W_LOAD_TILES)
    else:
        a_tiles = 0 if a_on_chip else nt if not plan.a_resident else 1
        w_loads = blocks * (a_tiles * kt + (nt - a_tiles) * runs(plan.w_batch))
    syncs = blocks - 1 if plan.a_resident and plan.a_regions == 1 and not a_on_chip else 0
    insns = 2 * steps + a_loads + w_loads + blocks * nt + syncs
    return {"insns": insns, "a_bytes": a_bytes, "w_bytes": K * N * w_reads,
            "tiles": blocks * nt}


def _ws_pass_counts(cfg: NPUConfig, M: int, K: int, N: int, passes: int) -> dict:
    """:func:`_ws_counts` of a GEMM in ``passes`` passes over K (``compiler.k_passes``):
    each pass's schedule over its K range; every pass but the first LOAD_ACCs each tile's
    partial sums (after a SYNC from its third tile on)."""
    total = {"insns": 0, "a_bytes": 0, "w_bytes": 0, "tiles": 0}
    for q, (_, kl) in enumerate(k_pass_ranges(cfg.rows, K, passes)):
        counts = _ws_counts(cfg, M, kl, N, False, 0, first_alone=q > 0)
        if q:
            counts["insns"] += counts["tiles"] + max(0, counts["tiles"] - 2)
        total = {k: total[k] + counts[k] for k in total}
    return total


def _os_counts(cfg: NPUConfig, M: int, K: int, N: int) -> dict:
    """The OS schedule's counts (``compiler._schedule_os``): per output tile and K-chunk a
    COMPUTE and the B chunk's LOAD, the A^T chunk's LOAD unless K is one chunk (then once
    per M-tile); a STORE per tile."""
    R, C = cfg.rows, cfg.cols
    chunks = -(-K // os_chunk(cfg, K))
    mt, nt = -(-M // R), -(-N // C)
    a_reads = 1 if chunks == 1 else nt
    steps = mt * nt * chunks
    insns = 2 * steps + mt * chunks * a_reads + mt * nt
    return {"insns": insns, "a_bytes": M * K * a_reads, "w_bytes": K * N * mt}


def gemm_breakdown(cfg: NPUConfig, M: int, K: int, N: int, out_bytes: int = 1,
                   a_on_chip: bool = False, out_on_chip: bool = False, sp_lo: int = 0,
                   passes: int | None = None) -> dict:
    """A GEMM layer's DRAM bytes by part (:data:`PARTS`, and ``"total"``), as the
    analytical mode counts them: ``inputs``, ``weights``, ``outputs`` once (an input read
    on chip, an output kept on chip, count nothing: ``a_on_chip``, ``out_on_chip`` and
    ``sp_lo`` as in ``analytical.Chained``); ``instructions``: every instruction fetched
    (16 bytes each); the re-reads of weights (once per M-block when they do not stay
    resident) and of inputs (once per N-tile when they do not); ``partial_sums``: int32
    partial sums written and read back between ``passes`` passes over K (weight-stationary,
    A from DRAM; default: as many as the compiler takes, ``compiler.k_passes``)."""
    if min(M, K, N) < 1:
        raise ValueError(f"GEMM sizes must be >= 1, got M={M}, K={K}, N={N}")
    if out_bytes not in (1, 4):
        raise ValueError(f"out_bytes must be 1 (int8) or 4 (raw int32), not {out_bytes}")
    if passes is None:
        on_chip = a_on_chip or out_on_chip or sp_lo
        passes = 1 if on_chip else k_passes(cfg, M, K, N, out_bytes)
    if passes != 1 and (cfg.dataflow != "ws" or a_on_chip or out_on_chip or sp_lo):
        raise ValueError("passes over K are for weight-stationary GEMMs reading A from DRAM")
    if cfg.dataflow == "os":
        if a_on_chip or out_on_chip or sp_lo:
            raise ValueError("on-chip chains are weight-stationary")
        counts = _os_counts(cfg, M, K, N)
    elif passes > 1:
        counts = _ws_pass_counts(cfg, M, K, N, passes)
    else:
        counts = _ws_counts(cfg, M, K, N, a_on_chip, sp_lo)
    # once a pass: its HALT (or the SYNC before the next pass); the int8 output's CONFIG
    layer_insns = passes + (out_bytes == 1)
    inputs = 0 if a_on_chip else M * K
    parts = {"inputs": inputs, "weights": K * N,
             "outputs": 0 if out_on_chip else M * N * out_bytes,
             "instructions": isa.INSN_BYTES * (counts["insns"] + layer_insns),
             "weight_rereads": counts["w_bytes"] - K * N,
             "input_rereads": counts["a_bytes"] - inputs,
             "partial_sums": 8 * M * N * (passes - 1)}
    return {**parts, "total": sum(parts.values())}


def layer_breakdown(cfg: NPUConfig, layer: Layer, out_bytes: int = 1, chain=None) -> dict:
    """:func:`gemm_breakdown` of a GEMM layer of a workload table (``chain``: its
    ``analytical.Chained`` part).  Convolutions are refused: their im2col and band
    schedules re-read overlapping windows, which this split does not separate."""
    if layer.kind != "gemm":
        raise ValueError(f"{layer.name!r}: the DRAM breakdown covers GEMM layers, not "
                         f"{layer.kind} layers")
    kw = {} if chain is None else dict(a_on_chip=chain.a_on_chip,
                                       out_on_chip=chain.out_on_chip, sp_lo=chain.sp_lo)
    return gemm_breakdown(cfg, layer.M, layer.K, layer.N, out_bytes, **kw)


def network_breakdown(cfg: NPUConfig, layers, out_bytes: int = 1) -> list[tuple[str, dict]]:
    """Per GEMM layer of a network, chained as ``analytical.chains`` maps them, its
    :func:`layer_breakdown`, and a last row ``("total", ...)`` summing them."""
    from .analytical import chains
    rows = [(layer.name, layer_breakdown(cfg, layer, out_bytes, link))
            for layer, link in zip(layers, chains(cfg, layers, out_bytes))]
    total = {k: sum(row[k] for _, row in rows) for k in (*PARTS, "total")}
    return rows + [("total", total)]


def fast_elements(cfg: NPUConfig) -> int:
    """``S`` of the pebble bound: the scratchpad's bytes (int8 elements) plus the
    accumulator's int32 partial sums (``acc_lines x cols``)."""
    return cfg.sp_lines * cfg.sp_width + cfg.acc_lines * cfg.cols


def gemm_io_bound(cfg: NPUConfig, M: int, K: int, N: int, out_bytes: int = 1) -> int:
    """The fewest DRAM bytes any schedule of an ``M x K @ K x N`` GEMM on ``cfg``'s
    on-chip memory can move: the larger of the compulsory bytes (inputs, weights, outputs
    once) and the red-blue pebble bound ``2 M N K / sqrt(S) - 2 S`` (Smith et al., after
    Hong and Kung; module doc) with ``S`` = :func:`fast_elements`.  Instructions are not
    counted (an instruction set could make them few)."""
    S = fast_elements(cfg)
    compulsory = M * K + K * N + M * N * out_bytes
    return max(compulsory, math.ceil(2 * M * N * K / math.sqrt(S) - 2 * S))


def resident_block_bytes(cfg: NPUConfig, M: int, K: int, N: int, out_bytes: int = 1) -> int:
    """The data bytes (no instructions) of the best schedule of the compiler's family on
    ``cfg``: the row block of one operand resident in the whole scratchpad (no lines kept
    for streamed tiles: an optimistic figure), the other operand streamed once per block,
    each block's partial sums kept in the accumulator until done (a block of at most
    ``acc_lines`` rows).  A's row blocks of ``Mb = min(acc_lines, sp_bytes // K)`` rows
    re-read B ``ceil(M / Mb)`` times; or B's column blocks (``sp_bytes // K`` columns)
    re-read A; the cheaper of the two."""
    sp = cfg.sp_lines * cfg.sp_width
    out = M * N * out_bytes
    best = []
    mb = min(cfg.acc_lines, M, sp // K)
    if mb >= 1:
        best.append(M * K + K * N * -(-M // mb) + out)
    nb = min(N, sp // K)
    if nb >= 1:
        best.append(K * N + M * K * -(-N // nb) + out)
    if not best:
        raise ValueError(f"K={K} does not fit one row of the scratchpad ({sp} bytes)")
    return min(best)
