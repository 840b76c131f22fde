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

from .compiler import (BandPlan, LayerError, band_k_tiles, band_plan, chain_on_chip,
                       chain_regions, conv_k_tiles, conv_tile_channels_meet,
                       im2col_input_pays, im2col_row_bytes, k_pass_ranges, k_passes, os_chunk,
                       tile_weight_rows, ws_plan)
from .energy import Events
from .workloads import Layer, WorkloadError

__all__ = ["core_estimate", "CoreEstimate", "BREAKDOWN", "cycle_breakdown", "network_estimates",
           "Chained", "chains", "chained_bytes",
           "takes_im2col_input", "SCALESIM_DATAFLOWS", "scalesim_spatiotemporal", "scalesim_layer_cycles",
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

#: Where a layer's cycles go (:attr:`CoreEstimate.breakdown`), summing to its cycles.  The
#: array busy: ``useful`` (the MACs over the array's PEs, ``macs / (R * C)``), ``underfill``
#: (beats of tiles that fill fewer than ``R`` rows or ``C`` columns, depthwise zeros),
#: ``padding`` (the on-chip band's padding columns, computed and never stored).  The array
#: idle, by the constraint that held its next COMPUTE back (followed back through the
#: instruction it waited for): ``load`` (the read DMA: a LOAD's data, or a LOAD waiting for
#: the load unit or its slot), ``preload`` (the weight preload not hidden: a step shorter than
#: the next PRELOAD's ``R`` lines), ``store`` (an accumulator block not yet given back by its
#: STORE, or the store queue full), ``sync`` (the gap before the first COMPUTE after a SYNC:
#: the drain, stores and loads the SYNC serialized), ``step`` (the
#: fixed gap between two COMPUTEs; OS: a COMPUTE's skew and drain beyond its beats), ``bank``
#: (activations sharing a scratchpad bank with the next weights), ``dispatch`` (instruction
#: fetch), ``fill`` (fetch start-up and the first step's loads), ``drain`` (after the last
#: COMPUTE: the array's drain and the last STORE).
BREAKDOWN = ("useful", "underfill", "padding", "load", "preload", "store", "sync", "step",
             "bank", "dispatch", "fill", "drain")
_IDLE = BREAKDOWN[3:]
_L, _P, _S, _Y, _T, _B, _D, _F, _E = range(len(_IDLE))     # indices into _IDLE


@dataclass(frozen=True)
class Chained:
    """A layer's part in a chain whose intermediates stay on chip (STORE ``to_sp``;
    ``compiler.compile_gemm_chain`` / ``compile_conv_chain``): ``a_on_chip``, its A is the
    previous layer's output, read where it lies (K-tiles of ``cols`` columns); ``out_on_chip``,
    its int8 output stays for the next layer; ``sp_lo``, the first scratchpad line the layer
    may use (the chain's regions lie below, ``compiler.chain_regions``)."""
    a_on_chip: bool = False
    out_on_chip: bool = False
    sp_lo: int = 0


@dataclass
class CoreEstimate:
    """A layer on the core, estimated from its shape: cycles, the events energy prices and
    where the cycles go (``breakdown``: :data:`BREAKDOWN` -> cycles, summing to ``cycles``)."""
    cycles: int
    macs: int
    events: "Events"
    breakdown: dict = None


# Latencies of the units' timeline (``_Timeline``), read off the cycle-exact model's unit
# handshakes (``CycleNPU`` with a per-cycle probe; scripts/model_accuracy.py measures the
# result on every layer of the sweep, testbench/test_cycle_model.py checks a sample).
# A LOAD: its first row's data LOAD_LATENCY cycles after the load unit takes it (row command,
# AR, the memory's R queue, the response register), then a cycle per beat of each row
# (``dma.burst_plan``'s beats) and of every instruction fetched meanwhile: fetch and load
# share the read bus, and the fetch refills the queues as the units take instructions, so a
# step's instructions are fetched while its LOADs run (``_fetch_beats`` each).
LOAD_LATENCY = 5
# A line streamer's first line reaches the array STREAM_LAT cycles after the compute unit
# takes its instruction (command register, scratchpad read, the streamer's 2-cycle FIFO);
# WS: a PRELOAD's R lines fill the shadow bank the COMPUTE two back has left, the COMPUTE's
# lines follow once its weights are in; OS: a COMPUTE's last beat comes at least R cycles
# after the last COMPUTE's (the array drains R result rows between them).  Results leave the
# array R + C cycles after the last line (WS) or 2R + C after the last beat (OS).
STREAM_LAT = 4
# A STORE: a cycle per beat, 9/8 for one-beat rows (the memory's write queue of two takes a
# cycle off every ninth: 144 cycles for 128 one-beat rows), and STORE_LAT cycles more (the
# accumulator read, requantizer and output FIFO before the first write, the last write's
# response) before the store unit takes the next STORE and gives its token back.
STORE_ROW_EIGHTHS, STORE_LAT = 9, 12
# Fetch start-up and the end of the last store, per layer (fitted: 10-20 fit equally well).
FIXED = 15
#: Instructions a layer fetches once besides its steps and stores: the per-tensor CONFIG
#: (an int8 output; a raw int32 one has none) and its HALT (in a chain, the SYNC before the
#: next layer: ``compiler.link_words``).  Per-channel CONFIGs (one per lane per tile) are
#: not counted: the layer tables carry no requantization.
LAYER_INSNS = 2


def _count_step(ev, kt: int, rows: int, R: int, C: int, sp_w: int, step_bits: int,
                row_bits: int, reads_acc: bool):
    """The events of one WS step (a PRELOAD of a ``kt``-deep weight tile and a COMPUTE of
    ``rows`` activation rows into an ``R x C`` array): its two instructions fetched, the
    scratchpad lines read, the array's registers, the accumulator lines written (and read,
    when the step adds to an earlier K-tile's sums) and the MACs."""
    ev.dram_bytes += 2 * isa.INSN_BYTES            # PRELOAD, COMPUTE
    ev.sp_read_bytes += (kt + rows) * sp_w
    ev.array_reg_bits += step_bits + rows * row_bits
    ev.acc_write_bytes += 4 * rows * C
    ev.acc_read_bytes += 4 * rows * C * reads_acc
    ev.macs += rows * R * C


@functools.lru_cache(maxsize=None)
def _mean_row_beats(ncols: int, stride: int, base: int, bus_bytes: int) -> float:
    """Beats per row of a strided LOAD whose rows of ``ncols`` bytes start at ``base +
    i * stride``: a row costs ``ceil((offset + ncols) / bus)`` beats with ``offset`` its
    start within a bus word (``dma.burst_plan``), averaged over the offsets' period."""
    period = bus_bytes // math.gcd(stride % bus_bytes or bus_bytes, bus_bytes)
    return sum(-(-((base + i * stride) % bus_bytes + ncols) // bus_bytes)
               for i in range(period)) / period


def _store(cfg: NPUConfig, ev: Events, rows: int, nt: int, esize: int, stride: int,
           base: int, to_sp: bool = False) -> int:
    """A tile's STORE of ``rows`` rows of ``nt * esize`` bytes, ``stride`` bytes apart from
    byte ``base``: its events, and its cycles: a row at a time through the requantizer and
    the write DMA, one cycle per beat (a row's beats counted from its offset in the bus
    word, as for loads), and 9/8 of a cycle for a one-beat row (measured on the exact
    model's write channel: 575 cycles for 512 one-beat rows).  ``to_sp``: the rows go to
    scratchpad lines (STORE ``to_sp``), a line a cycle, no DRAM bytes."""
    ev.acc_read_bytes += 4 * rows * cfg.cols
    if to_sp:
        ev.sp_write_bytes += rows * cfg.sp_width
        return rows
    ev.dram_bytes += rows * nt * esize
    beats = _mean_row_beats(nt * esize, stride, base, cfg.bus_bytes)
    return math.ceil(rows * max(beats, STORE_ROW_EIGHTHS / 8))


# --- the units' timeline ------------------------------------------------------------

# Instruction kinds of the timeline (one per unit-level action the compiler emits).
_LOAD, _PRELOAD, _COMPUTE, _STORE, _SYNC, _COMPUTE_OS = range(6)


class _Timeline:
    """When each unit of the core starts and ends each instruction of a
    schedule, instruction by instruction in program order -- the overlap the per-step
    maximum cannot follow (a band's load running ahead under the steps before it, a store
    under the next tile's steps, a SYNC draining everything).

    The rules are the units' (``sim_models/cycle/units.py``): the fetch unit dispatches in
    order, one instruction a cycle, into queues of ``queue_depth`` entries (an instruction
    waits for the one ``queue_depth`` places before it in its queue to be taken); the load
    unit runs one LOAD at a time (its rows and the instruction fetches sharing the read
    bus) and its last LOAD of a step hands the PRELOAD a token; the compute unit takes its
    instructions in order, one a cycle, each once its line streamer is free; a PRELOAD's
    ``R`` weight lines enter the array's shadow bank once the COMPUTE two back has left it;
    a COMPUTE streams its lines once its weights are in and, for a tile's first step two
    tiles on, once the store of that accumulator block gave it back; a load step's COMPUTE
    gives the load unit its slot back when its lines are read; a tile's last COMPUTE hands
    the store its token when its results leave the array; a STORE holds the store unit
    until its last write is answered; a SYNC waits until every unit is idle.  The
    latencies are the constants above.

    ``run`` takes a run-length coded schedule (``[(item, count), ...]``, an item an
    instruction tuple or a nested schedule); a run of equal items is simulated until the
    units' times advance by the same amounts twice in a row (a periodic steady state,
    looked for over at most ``2 * queue_depth + 4`` items: a queue's last ``queue_depth``
    take times are state), and the rest of the run is then extrapolated.

    Output-stationary schedules use it too: their COMPUTE (``_COMPUTE_OS``) takes both
    operand streams and pops the load unit's token; its last beat waits until the last
    COMPUTE's ``R`` result rows have drained (``R`` cycles after its last beat), and a
    tile's results reach the store ``2R + C`` cycles after its last beat."""

    def __init__(self, cfg: NPUConfig):
        self.R, self.C, self.depth = cfg.rows, cfg.cols, cfg.queue_depth
        # disp, load, b (weight streamer), a (activation streamer), c_start, w_ready,
        # store, drain (the array's last result out), a_end (the last COMPUTE's last beat),
        # and the last COMPUTE's first and last beats and flags (1: its activations share a
        # scratchpad bank with the next weights, 2/4: it pushed a c2l/c2s token)
        self.t = [0] * 12
        self.queues = ([], [], [])              # take times of each queue's instructions
        self.tokens = ([], [], [], [])          # l2c, c2l, c2s, s2c: push times, in order
        # Where the array's idle cycles go (BREAKDOWN): per cause, cycles; ``busy`` beats.
        # A time's cause: the dispatch's (``why_disp``), the weights' (``why_w``), each
        # l2c token's (``why_l2c``); ``extra``: the last COMPUTE's cycles beyond its beats.
        self.idle, self.busy = [0] * len(_IDLE), 0
        self.why_disp, self.why_w, self.why_l2c, self.extra = _F, _F, [], None
        self.synced = None

    # one instruction ------------------------------------------------------------------
    _QUEUE_CAUSE = (_L, _D, _S)          # a full load / compute / store queue

    def _dispatch(self, queue: int) -> int:
        t = self.t
        taken = self.queues[queue]
        disp = t[0] + 1
        if len(taken) >= self.depth and taken[-self.depth] > disp:
            disp, self.why_disp = taken[-self.depth], self._QUEUE_CAUSE[queue]
        t[0] = disp
        return disp

    def _take(self, queue: int, when: int):
        taken = self.queues[queue]
        taken.append(when)
        if len(taken) > 2 * self.depth:
            del taken[:self.depth]

    def _shared_bank(self, first: int, lines: int) -> int:
        """Cycles the last COMPUTE (beats ``t[9] .. t[10]``) and a PRELOAD reading
        ``lines`` weight lines from ``first`` on each lose when they read the same
        scratchpad bank: the fair arbiter alternates them while both read, so each loses
        the other's reads in their overlap.  The COMPUTE's end and tokens move that much
        later."""
        t, tokens = self.t, self.tokens
        lost = min(lines, max(0, t[10] - max(first, t[9])))
        if lost:
            if t[11] & 2 and tokens[1] and tokens[1][-1] == t[10]:
                tokens[1][-1] += lost
            if t[11] & 4 and tokens[2] and tokens[2][-1] == t[10] + self.R + self.C:
                tokens[2][-1] += lost
            t[3] += lost
            t[7] = max(t[7], t[3] + self.R + self.C)
            self.extra = ((_B, lost),)
        return lost

    def _in_order(self) -> int:
        """The compute queue's next take: one instruction a cycle, in order."""
        taken = self.queues[1]
        return taken[-1] + 1 if taken else 0

    def _pop(self, token: int) -> int:
        pushed = self.tokens[token]
        if token == 0 and pushed:
            self.popped_why = self.why_l2c.pop(0)
        return pushed.pop(0) if pushed else 0

    def _array_waits(self, start: int, causes):
        """Book the array's idle cycles before a COMPUTE starting at ``start`` (its busy
        beats follow): the last COMPUTE's extra cycles (``self.extra``: (cause, cycles)
        pairs) first, the rest to the cause of the latest of ``causes`` ((time, cause)
        pairs, in order of preference on a tie)."""
        t, idle = self.t, self.idle
        if self.extra is None:                      # the first COMPUTE: start-up
            idle[_F] += start
            return
        gap = start - t[8]
        for cause, cyc in self.extra:
            cyc = min(cyc, gap)
            idle[cause] += cyc
            gap -= cyc
        if gap > 0:       # the first COMPUTE after a SYNC: its loads waited for the SYNC
            idle[self.synced or max(causes, key=lambda c: c[0])[1]] += gap
        self.synced = None

    def insn(self, kind: int, dur: int = 0, pop: bool = False, push: bool = False,
             clash: bool = False, pop_load: bool = False):
        t = self.t
        if kind == _SYNC:
            sync = max(t[1], t[3], t[6], t[7])
            if sync > t[0] + 1:
                self.why_disp = self.synced = _Y
            t[0] = max(t[0] + 1, sync)
            return
        if kind == _LOAD:
            disp = self._dispatch(0)
            slot = self._pop(1) if pop else 0
            start = max(disp, t[1], slot)
            self._take(0, start)
            why = self.why_disp if disp > max(t[1], slot) else _L
            t[1] = start + dur
            if push:
                self.tokens[0].append(t[1])
                self.why_l2c.append(why)
        elif kind == _PRELOAD:
            disp = self._dispatch(1)
            self.popped_why = self.why_disp
            loaded = self._pop(0) if pop else 0
            order = self._in_order()
            start = max(disp, t[2], order, loaded)
            self._take(1, start)
            # its R lines fill the shadow bank once the COMPUTE two back has left it
            first = max(start + STREAM_LAT, t[4])
            self.why_w = _P if t[4] > start + STREAM_LAT else \
                max((loaded, self.popped_why), (t[2], _P), (order, _P), (disp, self.why_disp),
                    key=lambda c: c[0])[1]
            lost = self._shared_bank(first, dur) if t[11] & 1 else 0
            t[2] = t[5] = first + self.R + lost
            t[11] = 0
        elif kind == _COMPUTE:          # dur: lines; pop: s2c; push: (c2l, c2s); pop_load: l2c
            disp = self._dispatch(1)
            freed = self._pop(3) if pop else 0
            self.popped_why = self.why_disp
            loaded = self._pop(0) if pop_load else 0
            order = max(t[3], self._in_order())
            start = max(disp, order, freed, loaded)
            self._take(1, start)
            first, lat = max(start + STREAM_LAT, t[5]), STREAM_LAT
            self._array_waits(first, ((t[5], self.why_w), (loaded + lat, self.popped_why),
                                      (freed + lat, _S), (disp + lat, self.why_disp),
                                      (order + lat, _T)))
            self.busy += dur
            self.extra = ((_B, 0),)         # the next PRELOAD's reads may take some cycles
            end = first + dur
            t[3], t[4], t[8] = end, t[3], end
            t[9], t[10], t[11] = first, end, bool(clash) + 2 * push[0] + 4 * push[1]
            t[7] = max(t[7], end + self.R + self.C)
            if push[0]:
                self.tokens[1].append(end)
            if push[1]:
                self.tokens[2].append(end + self.R + self.C)
        elif kind == _COMPUTE_OS:       # dur: beats; pop: s2c; push: c2s (a tile's last)
            disp = self._dispatch(1)
            self.popped_why = _L
            loaded = self._pop(0)
            freed = self._pop(3) if pop else 0
            order = max(t[3], self._in_order())
            start = max(disp, order, loaded, freed)
            self._take(1, start)
            first, lat = start + STREAM_LAT, STREAM_LAT
            self._array_waits(first, ((loaded + lat, self.popped_why), (freed + lat, _S),
                                      (disp + lat, self.why_disp), (order + lat, _T)))
            # the last beat waits until the last COMPUTE's R result rows have drained
            last = max(first + dur - 1, t[4])
            self.busy += dur
            self.extra = ((_T, last + 1 - first - dur),)
            t[3], t[4], t[8] = last + 1, last + self.R, first + dur
            self.tokens[1].append(last + 1)
            if push:                    # its R result rows skew out through C columns
                t[7] = max(t[7], last + 2 * self.R + self.C)
                self.tokens[2].append(last + 2 * self.R + self.C)
        else:                           # _STORE
            start = max(self._dispatch(2), t[6], self._pop(2) if pop else 0)
            self._take(2, start)
            t[6] = start + dur + STORE_LAT      # the unit is busy until its last response
            if push:
                self.tokens[3].append(t[6])

    # run-length coded schedules -------------------------------------------------------
    def _state(self) -> list[int]:
        return [*self.t, *(x for q in self.queues for x in q[-self.depth:]),
                *(x for tk in self.tokens for x in tk)]

    def _shape(self):
        return tuple(min(len(q), self.depth) for q in self.queues) + \
            tuple(len(tk) for tk in self.tokens)

    def _shift(self, delta: list[int], k: int):
        """Advance every time by ``k`` periods of ``delta`` (same shape as _state)."""
        i = len(self.t)
        self.t = [x + k * d for x, d in zip(self.t, delta)]
        for q in self.queues:
            n = min(len(q), self.depth)
            q[len(q) - n:] = [x + k * d for x, d in zip(q[len(q) - n:], delta[i:i + n])]
            i += n
        for tk in self.tokens:
            tk[:] = [x + k * d for x, d in zip(tk, delta[i:i + len(tk)])]
            i += len(tk)

    def run(self, schedule):
        for item, count in schedule:
            done, last, delta = 0, None, None
            while done < count:
                self._item(item)
                done += 1
                if count - done < 2 or done > 2 * self.depth + 4:
                    continue
                now = (self._shape(), self._state(), [*self.idle, self.busy])
                if last is not None and now[0] == last[0]:
                    d = [b - a for a, b in zip(last[1], now[1])]
                    if d == delta:                  # periodic: extrapolate the rest
                        k = count - done
                        self._shift(d, k)
                        self.idle = [x + k * (b - a) for x, a, b in
                                     zip(self.idle, last[2], now[2])]
                        self.busy += k * (now[2][-1] - last[2][-1])
                        break
                    delta = d
                last = now

    def _item(self, item):
        if item and isinstance(item[0], int):
            self.insn(*item)
        else:
            self.run(item)

    @property
    def end(self) -> int:
        return max(self.t[1], self.t[3], self.t[6], self.t[7])

    def idle_cycles(self) -> dict:
        """The idle cycles by cause (:data:`BREAKDOWN`'s idle part) up to :attr:`end`:
        after the last COMPUTE's beats, the array's drain and then the last STORE."""
        idle = list(self.idle)
        idle[_E] += self.end - (self.t[8] if self.extra is not None else 0)
        return dict(zip(_IDLE, idle))


def _rle(items, max_period: int = 4) -> tuple:
    """Run-length code a sequence of hashable items: ``((item, count), ...)``, where a
    repeated pattern of up to ``max_period`` items (steps alternating between two
    scratchpad slots, a kernel's taps) becomes one nested item ``((a, 1), (b, 1), ...)``
    with its count."""
    items = list(items)
    runs, i, n = [], 0, len(items)
    while i < n:
        best_p, best_reps = 1, 1
        for p in range(1, max_period + 1):
            if i + 2 * p > n:
                break
            reps = 1
            while items[i + reps * p:i + (reps + 1) * p] == items[i:i + p]:
                reps += 1
            if reps >= 2 and reps * p > best_reps * best_p:
                best_p, best_reps = p, reps
        item = items[i] if best_p == 1 else tuple((x, 1) for x in items[i:i + best_p])
        if runs and runs[-1][0] == item:
            runs[-1][1] += best_reps
        else:
            runs.append([item, best_reps])
        i += best_p * best_reps
    return tuple((item, k) for item, k in runs)


def _load_insns(total: int, loads: int, pop: bool, push: bool) -> list[tuple]:
    """``loads`` LOADs of ``total`` cycles together: the first pops, the last pushes."""
    base, extra = divmod(total, loads)
    return [(_LOAD, base + (i < extra), pop and i == 0, push and i == loads - 1)
            for i in range(loads)]


def _bank_clash(cfg: NPUConfig, a_line: int, lines: int, w_line: int) -> bool:
    """Whether a COMPUTE reading ``lines`` activation lines from ``a_line`` shares a
    scratchpad bank with the weights at ``w_line`` (the next step's PRELOAD reads its
    neighbours): the bank's read port then alternates between the two streamers
    (``BankArbiter(fair=True)``) while both read (:meth:`_Timeline._shared_bank`)."""
    if cfg.sp_banks < 2:
        return True
    size = cfg.sp_lines // cfg.sp_banks
    first, last = a_line // size, (a_line + lines - 1) // size
    return first <= w_line // size <= last


def _w_homes(cfg: NPUConfig, lives, k_tiles) -> dict:
    """Resident weights' first lines, per (N-tile, K-tile), as the compiler places them:
    the live tiles in order, ending at the top of the scratchpad."""
    homes, line = {}, cfg.sp_lines - sum(k_tiles[ki] for live in lives for ki in live)
    for ni, live in enumerate(lives):
        for ki in live:
            homes[ni, ki], line = line, line + k_tiles[ki]
    return homes


def _batch_tail_insns(live, j: int, w_rows, loaded, load_a_of) -> int:
    """Instructions of the steps after step ``j`` in its weight batch (``w_rows``,
    ``compiler.tile_weight_rows``) that load nothing: a PRELOAD and a COMPUTE each, and the
    tile's STORE after its last step; they are fetched while step ``j``'s LOAD reads."""
    n, end = 0, j + 1
    while end < len(live) and w_rows[end] == 0:
        if not load_a_of(live[end], loaded):
            n += 2 + (end == len(live) - 1)
        end += 1
    return n


def _fetch_beats(cfg: NPUConfig) -> int:
    """Read-bus beats of one instruction's fetch (``isa.INSN_BYTES`` on the bus)."""
    return -(-isa.INSN_BYTES // cfg.bus_bytes)


def _step_fetch(cfg: NPUConfig, insns: int, rows: int) -> int:
    """Read-bus cycles a load step's LOADs give to fetching ``insns`` instructions while
    they read ``rows`` rows: the read arbiter alternates the LOADs' row commands and the
    fetch's (one per instruction), so fetches issued after the last row's command arrive
    after its last beat, under the next LOAD's latency: those beats, up to
    ``LOAD_LATENCY - 1``, cost the step nothing (2x2 WS, a batch-1 GEMM's step of 2 weight
    rows and 3 fetches: 9 cycles on the exact model, not 13)."""
    ib = _fetch_beats(cfg)
    after = max(0, insns - max(rows - 1, 0))
    return ib * insns - min(ib * after, LOAD_LATENCY - 1)


def _with_fetch(insns: list, cycles: int) -> list:
    """``insns`` with ``cycles`` of instruction fetch added to the first (a LOAD): the
    fetch shares the read bus with the LOADs of the step it refills the queues with."""
    kind, cyc, *rest = insns[0]
    return [(kind, cyc + cycles, *rest), *insns[1:]]


class _WsCounts:
    """The schedule's running counters that set the first tokens' flags: load steps (a
    load step's first LOAD pops once ``slots`` load steps are in flight) and tiles (a
    tile's first COMPUTE pops the store's token from the third tile on); they saturate."""

    def __init__(self, load_steps: int = 0, tiles: int = 0, slots: int = 2):
        self.load_steps, self.tiles, self.slots = load_steps, tiles, slots

    def key(self) -> tuple:
        return min(self.load_steps, self.slots), min(self.tiles, 2), self.slots


def _step_insns(a_load, w_load) -> int:
    """A WS step's instructions: its LOADs, PRELOAD and COMPUTE."""
    return (a_load[1] if a_load else 0) + bool(w_load) + 2


def _ws_step(counts: _WsCounts, a_load, w_load, kt: int, lines: int, first: bool,
             last: bool, clash: bool = False, fetch: int = 0, acc_load: int = 0,
             frees: bool | None = None) -> tuple:
    """One WS step's instructions, as the compiler emits them: the A (or band) LOADs
    ``a_load = (cycles, loads)`` if any, the weight LOAD ``w_load`` cycles if any, PRELOAD
    of ``kt`` lines and COMPUTE of ``lines`` lines (``clash``: its activations share a bank
    with the next weights, :func:`_bank_clash`); ``fetch``: cycles of
    instruction fetch its LOADs share the read bus with (:func:`_with_fetch`);
    ``acc_load``: cycles of a LOAD_ACC after its loads (a tile's first step starting from
    partial sums), whose token the COMPUTE takes; ``frees``: whether the COMPUTE gives a
    streamed-weight slot back (a batch's last step, ``compiler.tile_weight_rows``; default:
    the step loaded something)."""
    fresh = bool(a_load or w_load)
    pop = counts.load_steps >= counts.slots
    insns = []
    if a_load:
        insns += _load_insns(*a_load, pop, not w_load)
    if w_load:
        insns.append((_LOAD, w_load, pop and not a_load, True))
    if acc_load:
        insns.append((_LOAD, acc_load, False, True))
    # the PRELOAD waits for its weights' LOAD; an A-only step's COMPUTE waits for its A
    # (``compiler._weight_step``), so resident weights preload under the A LOAD -- unless
    # a LOAD_ACC follows: then the PRELOAD takes the A's token, the COMPUTE the LOAD_ACC's
    insns.append((_PRELOAD, kt, bool(w_load) or bool(acc_load and a_load), False))
    insns.append((_COMPUTE, lines, first and counts.tiles >= 2,
                  (fresh if frees is None else frees, last), clash,
                  bool(acc_load) or bool(a_load and not w_load)))
    if fresh or acc_load:   # the step's instructions (and ``fetch``) fetched under its LOADs
        insns = _with_fetch(insns, fetch)
    counts.load_steps += fresh
    return _rle(insns)


def _ws_gemm(cfg: NPUConfig, M, N, k_tiles, live_of, a_segments, esize, on_chip=False,
             a_rows=None, chain=None, acc_in=False, w_k0=0):
    """The compiler's WS schedule (``compiler._schedule_ws``), instruction by instruction
    on :class:`_Timeline`, and its events.

    A step is LOAD(s) + PRELOAD + COMPUTE of one weight tile: the read DMA needs a cycle
    per beat (and a LOAD's latency) for the A chunk and the weight tile, each unless the
    plan (``compiler.ws_plan``) keeps it resident and it is loaded already; the array
    ``mb`` cycles for the COMPUTE and ``R`` for the next tile's PRELOAD, overlapped.
    ``on_chip``: activations and results live in an on-chip buffer fed separately (a
    TPU-style unified buffer): only weights and instructions cross the bus.
    ``a_rows(k0)``: the byte stride of A's rows and the offset of a tile's first row (for
    the beats an unaligned row costs); default dense rows of ``sum(k_tiles)`` bytes.
    ``a_segments(m0, mb)``: the LOADs an A chunk of rows ``m0 .. m0 + mb`` takes.
    ``chain``: the layer's part in a chain kept on chip (:class:`Chained`).
    ``acc_in``: each tile starts from int32 partial sums in DRAM (a pass over K after the
    first, ``compiler.k_passes``): a LOAD_ACC of its rows in its first step, after a SYNC
    from the third tile on; ``w_k0``: the first weight row of the pass (bus offsets)."""
    R, C, B = cfg.rows, cfg.cols, cfg.bus_bytes
    chain = chain or Chained()
    lo = chain.sp_lo
    K = sum(k_tiles)
    k_first = [0, *itertools.accumulate(k_tiles)][:-1]
    a_rows = a_rows or (lambda k0: (K, k0))
    n_tiles = [(n0, min(C, N - n0)) for n0 in range(0, N, C)]
    lives = [live_of(n0, nt) or [0] for n0, nt in n_tiles]
    w_lines = sum(k_tiles[ki] for live in lives for ki in live)
    w_bytes = sum(k_tiles[ki] * nt for live, (_, nt) in zip(lives, n_tiles) for ki in live)
    a_stream = M * sum(k_tiles[ki] for live in lives for ki in live)
    plan = ws_plan(cfg, M, len(k_tiles), M * K, a_stream, w_bytes, w_lines, lo,
                   chain.a_on_chip)
    Mb, resident = plan.Mb, plan.a_resident
    homes = _w_homes(cfg, lives, k_tiles)
    sp_w, step_bits = cfg.sp_width, R * C * cfg.input_width
    row_bits = R * C * (cfg.input_width + cfg.acc_width)

    live_ids = {}
    live_id = [live_ids.setdefault(tuple(live), len(live_ids)) for live in lives]
    bank = cfg.sp_lines // max(1, cfg.sp_banks)

    def tile(ni, mb, load_w, counts, loaded, a_base, segs):
        """One N-tile's steps and store in an M-block of ``mb`` rows: its schedule, events
        and load steps (``counts`` and the block's ``loaded`` A chunks advance)."""
        n0, nt = n_tiles[ni]
        ev, steps, fresh0 = Events(), [], counts.load_steps
        synced = acc_in and counts.tiles >= 2     # the slot's STORE two tiles back is done
        if synced:
            steps.append((((_SYNC,), 1),))
            ev.dram_bytes += isa.INSN_BYTES
        load_a_of = lambda ki, loaded: (not resident or ki not in loaded) and not \
            (on_chip or chain.a_on_chip)  # noqa: E731
        a_fresh = any(load_a_of(ki, loaded) for ki in lives[ni])
        w_rows = tile_weight_rows(plan, [(ki, k_first[ki], k_tiles[ki]) for ki in lives[ni]],
                                  a_fresh, acc_in)
        for j, ki in enumerate(lives[ni]):
            kt = k_tiles[ki]
            load_a = load_a_of(ki, loaded)
            loaded.add(ki)
            w_cyc = a_load = 0
            wr = w_rows[j]
            if load_w and wr:                             # one LOAD of weights
                w_cyc = round(wr * _mean_row_beats(nt, N, (w_k0 + k_first[ki]) * N + n0,
                                                   B)) + LOAD_LATENCY
                ev.dram_bytes += wr * nt + isa.INSN_BYTES
                ev.sp_write_bytes += wr * sp_w
            acc_cyc = 0
            if acc_in and j == 0:                         # the tile's partial sums
                acc_cyc = round(mb * _mean_row_beats(4 * nt, 4 * N, 4 * n0, B)) + \
                    LOAD_LATENCY
                ev.dram_bytes += 4 * mb * nt + isa.INSN_BYTES
                ev.acc_write_bytes += 4 * mb * C
            if load_a:                                    # A: one LOAD per segment
                a_load = (round(mb * _mean_row_beats(kt, *a_rows(k_first[ki]), B)) +
                          segs * LOAD_LATENCY, segs)
                ev.dram_bytes += mb * kt + segs * isa.INSN_BYTES
                ev.sp_write_bytes += mb * sp_w
            _count_step(ev, kt, mb, R, C, sp_w, step_bits, row_bits, ki != lives[ni][0])
            slot = counts.load_steps % plan.slots
            a_line = ki * M if chain.a_on_chip else \
                lo + (a_base + ki * Mb if resident else slot * Mb)
            if wr:                                        # a streamed batch starts
                w_base, w_off = cfg.sp_lines - (plan.slots - slot) * R * plan.w_batch, 0
            w_line = homes[ni, ki] if plan.w_resident else w_base + w_off
            w_off += kt
            frees = None if plan.w_resident else (j + 1 == len(w_rows) or w_rows[j + 1] > 0)
            clash = not on_chip and _bank_clash(cfg, a_line, mb, w_line)
            last = j == len(lives[ni]) - 1
            rows = (mb if a_load else 0) + (wr if w_cyc else 0) + (mb if acc_cyc else 0)
            insns = _step_insns(a_load, w_cyc) + last + (acc_cyc > 0) * (1 + synced)
            if w_cyc:     # the batch's steps that load nothing are fetched under its LOAD
                insns += _batch_tail_insns(lives[ni], j, w_rows, loaded, load_a_of)
            steps.append(_ws_step(counts, a_load, w_cyc, kt, mb, j == 0, last, clash,
                                  _step_fetch(cfg, insns, rows), acc_cyc, frees))
        before = ev.dram_bytes
        store = _store(cfg, ev, mb, nt, esize, N * esize, n0 * esize, chain.out_on_chip)
        if on_chip:       # results go to the on-chip buffer: two cycles a row, no DRAM
            ev.dram_bytes, store = before, 2 * mb
        ev.dram_bytes += isa.INSN_BYTES                   # the STORE instruction
        counts.tiles += 1
        return _rle(steps) + (((_STORE, store, True, True), 1),), ev, \
            counts.load_steps - fresh0

    def block(mb, load_w, counts_key, sync, region, segs):
        """One M-block of ``mb`` rows (its A chunks in scratchpad region ``region``, each
        ``segs`` LOADs): its schedule (run-length coded), events and the counters after
        it.  N-tiles alike (width, bus offset, live K-tiles, whether their A chunks are
        loaded, token counters, weight banks) are costed once."""
        counts = _WsCounts(*counts_key)
        ev, loaded, seen = Events(), set(), set()    # resident A chunks of this block
        ev.dram_bytes += sync * isa.INSN_BYTES
        tiles = [((_SYNC,), 1)] if sync else []
        memo = {}
        for ni, (n0, nt) in enumerate(n_tiles):
            live = lives[ni]
            w_banks = (homes[ni, live[0]] // bank, homes[ni, live[-1]] // bank) \
                if plan.w_resident else None
            key = (nt, n0 % B, live_id[ni], live_id[ni] in seen or not resident,
                   counts.key(), counts.load_steps % plan.slots, w_banks)
            seen.add(live_id[ni])
            if key in memo and (w_banks is None or w_banks[0] == w_banks[1]):
                sched, e, fresh = memo[key]
                counts.load_steps += fresh
                counts.tiles += 1
            else:
                sched, e, fresh = memo[key] = tile(ni, mb, load_w, counts, loaded,
                                                   region * len(k_tiles) * Mb, segs)
            ev = ev + e
            tiles.append((sched, 1))
        return _rle(x for x, _ in tiles), ev, counts.key()

    return _ws_blocks(cfg, [(min(Mb, M - m0), not plan.w_resident or m0 == 0,
                             resident and m0 > 0 and plan.a_regions == 1
                             and not chain.a_on_chip,
                             m0 // Mb % plan.a_regions,
                             a_segments(m0, min(Mb, M - m0))) for m0 in range(0, M, Mb)], block,
                      plan.slots)


def _row_runs(wo: int):
    """The A LOADs of a strided convolution's M-block: one per output row it touches
    (``compiler._Im2colA.load``), as a function of the block's first row and rows."""
    return lambda m0, mb: (m0 + mb - 1) // wo - m0 // wo + 1


def _ws_blocks(cfg: NPUConfig, keys, block, slots: int):
    """Cycles and events of a WS schedule of blocks ``keys`` (``(rows, load_w, sync,
    region, ...)`` each), ``block(rows, load_w, counters, sync, region, ...)`` giving a
    block's schedule, events and counters after it (equal blocks are built once)."""
    built, counts_key, schedule, ev = {}, (0, 0, slots), [], Events()
    for rows, load_w, sync, *rest in keys:
        key = (rows, load_w, counts_key, sync, *rest)
        if key not in built:
            built[key] = block(*key)
        sched, e, counts_key = built[key]
        schedule.append((sched, 1))
        ev = ev + e
    tl = _Timeline(cfg)
    tl.run(_rle(x for x, _ in schedule))
    return tl.end, ev, tl


def _ws_band(cfg: NPUConfig, layer: Layer, esize: int, chain=None):
    """The compiler's WS schedule with on-chip im2col (``compiler._schedule_ws_band``),
    costed like :func:`_ws_gemm`, or None where the compiler does not use it.  A block
    computes ``(ob - 1) * Wp + Wo`` lines per step (the padded columns in between too); a
    channel chunk's band is one LOAD at the block's first step that uses it; the block's
    output rows are one STORE each; a SYNC before every band but the first.  ``chain`` as
    for :func:`_ws_gemm` (the output kept on chip)."""
    R, C, B = cfg.rows, cfg.cols, cfg.bus_bytes
    chain = chain or Chained()
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
                     hp * wp * cin, w_bytes, chain.sp_lo)
    if plan is None:
        return None
    homes = _w_homes(cfg, lives, [kt for *_, kt in tiles])
    w_rows = [tile_weight_rows(plan, [(ki, (tiles[ki][0] * layer.kw + tiles[ki][1]) * cin
                                       + tiles[ki][2], tiles[ki][3]) for ki in live],
                               a_fresh=False) for live in lives]
    band_lines = (plan.ob + layer.kh - 1) * wp        # one channel chunk's region
    sp_w, step_bits = cfg.sp_width, R * C * cfg.input_width
    row_bits = R * C * (cfg.input_width + cfg.acc_width)

    def block(rows, load_w, counts_key, sync, region):
        """One band of ``rows`` output rows, in scratchpad region ``region``."""
        counts = _WsCounts(*counts_key)
        ev, loaded = Events(), set()
        ev.dram_bytes += sync * isa.INSN_BYTES
        lines = BandPlan.block_lines(rows, wp, wo)
        out = [((_SYNC,), 1)] if sync else []
        for ni, (n0, nt) in enumerate(n_tiles):
            steps = []
            for j, ki in enumerate(lives[ni]):
                ky, kx, c0, kt = tiles[ki]
                w_cyc = a_load = 0
                wr = w_rows[ni][j]
                if load_w and wr:
                    k0 = (ky * layer.kw + kx) * cin + c0      # the weight rows' K index
                    w_cyc = round(wr * _mean_row_beats(nt, layer.n, k0 * layer.n + n0, B)) + \
                        LOAD_LATENCY
                    ev.dram_bytes += wr * nt + isa.INSN_BYTES
                    ev.sp_write_bytes += wr * sp_w
                if c0 not in loaded:
                    loaded.add(c0)
                    band = (rows + layer.kh - 1) * wp
                    a_load = (round(band * _mean_row_beats(kt, cin, c0, B)) + LOAD_LATENCY, 1)
                    ev.dram_bytes += band * kt + isa.INSN_BYTES
                    ev.sp_write_bytes += band * sp_w
                _count_step(ev, kt, lines, R, C, sp_w, step_bits, row_bits,
                            ki != lives[ni][0])
                slot = counts.load_steps % plan.slots
                a_line = chain.sp_lo + (region * -(-cin // R) + c0 // R) * band_lines + \
                    ky * wp + kx
                w_line = homes[ni, ki] if plan.w_resident else \
                    cfg.sp_lines - (plan.slots - slot) * R
                last = j == len(lives[ni]) - 1
                read = (band if a_load else 0) + (wr if w_cyc else 0)   # the LOADs' rows
                steps.append(_ws_step(counts, a_load, w_cyc, kt, lines, j == 0, last,
                                      _bank_clash(cfg, a_line, lines, w_line),
                                      _step_fetch(cfg, _step_insns(a_load, w_cyc) +
                                                  rows * last, read)))
            store = [_store(cfg, ev, wo, nt, esize, layer.n * esize, n0 * esize,
                            chain.out_on_chip) for _ in range(rows)]
            ev.dram_bytes += rows * isa.INSN_BYTES
            counts.tiles += 1
            stores = [(_STORE, cyc, r == 0, r == rows - 1) for r, cyc in enumerate(store)]
            out.append((_rle(steps) + _rle(stores), 1))
        return _rle(x for x, _ in out), ev, counts.key()

    blocks = [(min(plan.ob, ho - y0), not plan.w_resident or y0 == 0,
               y0 > 0 and plan.regions == 1, y0 // plan.ob % plan.regions)
              for y0 in range(0, ho, plan.ob)]
    # the padding columns each step computes: Wp - Wo lines between two output rows
    padding = sum(rows - 1 for rows, *_ in blocks) * (wp - wo) * sum(map(len, lives))
    return (*_ws_blocks(cfg, blocks, block, plan.slots), padding)


def _os_gemm(cfg: NPUConfig, M, K, N, esize):
    """The compiler's OS schedule (``compiler._schedule_os``), instruction by instruction
    on :class:`_Timeline`, and its events: per output tile and K-chunk, the A^T chunk's
    LOAD (unless resident), the B chunk's LOAD and a COMPUTE of ``kc`` beats, the operand
    slots alternating by step (a LOAD waits for the COMPUTE two steps back); per tile a
    STORE (the tile two back must have been stored before its first COMPUTE)."""
    R, C, B = cfg.rows, cfg.cols, cfg.bus_bytes
    Kc = os_chunk(cfg, K)
    chunks = [min(Kc, K - k0) for k0 in range(0, K, Kc)]
    resident = len(chunks) == 1
    ev = Events()
    counts = _WsCounts()
    rows, memo = [], {}
    for m0 in range(0, M, R):
        mt = min(R, M - m0)
        tiles = []
        for ni, n0 in enumerate(range(0, N, C)):
            nt = min(C, N - n0)
            load_a = not resident or ni == 0
            key = (mt, nt, n0 % B, (m0 * N + n0) % B, m0 % B, load_a, counts.key())
            if key in memo:
                sched, e = memo[key]
                counts.load_steps += len(chunks)
                counts.tiles += 1
            else:
                sched, e = memo[key] = _os_tile(cfg, counts, M, N, m0, mt, n0, nt, chunks,
                                                Kc, load_a, esize)
            ev = ev + e
            tiles.append(sched)
        rows.append(_rle(tiles))
    tl = _Timeline(cfg)
    tl.run(_rle(rows))
    return tl.end, ev, tl


def _os_tile(cfg: NPUConfig, counts: _WsCounts, M, N, m0, mt, n0, nt, chunks, Kc, load_a,
             esize):
    """One OS output tile: its instructions (run-length coded) and events."""
    R, C, B = cfg.rows, cfg.cols, cfg.bus_bytes
    ev, steps = Events(), []
    for j, kc in enumerate(chunks):
        k0 = j * Kc
        pop = counts.load_steps >= 2
        insns = []
        if load_a:
            insns.append((_LOAD, round(kc * _mean_row_beats(mt, M, k0 * M + m0, B)) +
                          LOAD_LATENCY, pop, False))
            ev.dram_bytes += kc * mt
            ev.sp_write_bytes += kc * cfg.sp_width
        insns.append((_LOAD, round(kc * _mean_row_beats(nt, N, k0 * N + n0, B)) +
                      LOAD_LATENCY, pop and not load_a, True))
        last = j == len(chunks) - 1
        insns.append((_COMPUTE_OS, kc, j == 0 and counts.tiles >= 2, last))
        insns = _with_fetch(insns, _fetch_beats(cfg) * (len(insns) + last))   # + its STORE
        counts.load_steps += 1
        steps.append(_rle(insns))
        ev.dram_bytes += kc * nt + (2 + load_a) * isa.INSN_BYTES
        ev.sp_write_bytes += kc * cfg.sp_width
        ev.sp_read_bytes += 2 * kc * cfg.sp_width
        ev.array_reg_bits += kc * R * C * (2 * cfg.input_width + cfg.acc_width)
        ev.acc_write_bytes += 4 * R * C
        ev.acc_read_bytes += 4 * R * C * (j > 0)
        ev.macs += kc * R * C
    store = _store(cfg, ev, mt, nt, esize, N * esize, (m0 * N + n0) * esize)
    ev.dram_bytes += isa.INSN_BYTES                       # the STORE instruction
    counts.tiles += 1
    return _rle(steps) + (((_STORE, store, True, True), 1),), ev


def core_estimate(cfg: NPUConfig, layer: Layer, out_bytes: int = 1,
                  inputs_on_chip: bool = False, im2col_input: bool = False,
                  chain: Chained | None = None) -> CoreEstimate:
    """Fast analytical mode: cycles and events of ``layer`` on the core ``cfg`` from its
    shape alone (no tensors, no program), following the compiler's tiling.  Validated
    against the cycle-exact model in ``testbench/test_cycle_model.py``; the error bound is
    stated there.

    ``inputs_on_chip`` (weight-stationary GEMMs only) models a separate weight path: the
    activations and results stay in an on-chip buffer (as in Google's TPU v1, whose
    unified buffer is filled over PCIe apart from the weight DRAM), so only weights and
    instructions use the bus.  Not a configuration of the knpu RTL.

    ``im2col_input`` (convolutions): the host wrote the input as im2col rows
    (``compile_conv2d(im2col_input=True)``, a network's first layer); output-stationary
    convolutions always take them so.

    ``chain`` (weight-stationary): the layer's part in a chain kept on chip
    (:func:`chains`); a layer reading its A on chip is a GEMM or a 1x1 convolution."""
    chain = chain or Chained()
    if chain != Chained() and (cfg.dataflow != "ws" or im2col_input or inputs_on_chip):
        raise ValueError(f"{layer.name!r}: on-chip chains are weight-stationary, without "
                         f"host im2col rows or a separate weight path")
    if chain.a_on_chip and layer.kind == "conv" and \
            (layer.kh, layer.kw, layer.stride, layer.pad, layer.depthwise) != (1, 1, 1, 0, False):
        raise ValueError(f"{layer.name!r}: only a GEMM or a 1x1, stride-1, unpadded "
                         f"convolution reads its A on chip")
    if inputs_on_chip and (cfg.dataflow != "ws" or layer.kind != "gemm"):
        raise ValueError("inputs_on_chip models weight-stationary GEMM layers only, got "
                         f"{cfg.dataflow} {layer.kind} layer {layer.name!r}")
    if im2col_input and layer.kind != "conv":
        raise ValueError(f"im2col_input applies to convolutions, not {layer.kind} layer "
                         f"{layer.name!r}")
    R = cfg.rows
    padding = 0
    if cfg.dataflow == "os":
        cyc, ev, busy, idle = 0, Events(), 0, dict.fromkeys(_IDLE, 0)
        for count, M, K, N in layer.gemms():
            c, e, tl = _os_gemm(cfg, M, K, N, out_bytes)
            cyc, ev, busy = cyc + count * c, ev + e * count, busy + count * tl.busy
            idle = {k: v + count * tl.idle_cycles()[k] for k, v in idle.items()}
    else:
        if layer.kind == "gemm" and chain == Chained() and not inputs_on_chip and \
                (passes := k_passes(cfg, layer.M, layer.K, layer.N, out_bytes)) > 1:
            cyc, ev, busy, idle = _ws_gemm_passes(cfg, layer, out_bytes, passes)
            tl = None
        elif layer.kind == "gemm" or chain.a_on_chip:
            M, K, N = (layer.M, layer.K, layer.N) if layer.kind == "gemm" else \
                (layer.h * layer.w, layer.c, layer.n)
            width = cfg.cols if chain.a_on_chip else R     # on chip: K-tiles are N-tiles
            k_tiles = [min(width, K - k0) for k0 in range(0, K, width)]
            cyc, ev, tl = _ws_gemm(cfg, M, N, k_tiles,
                                   lambda n0, nt: list(range(len(k_tiles))),
                                   lambda m0, mb: 1, out_bytes, inputs_on_chip, chain=chain)
        elif im2col_input:
            cyc, ev, tl = _ws_conv_im2col(cfg, layer, out_bytes)
        elif (band := _ws_band(cfg, layer, out_bytes, chain)) is not None:
            cyc, ev, tl, padding = band
        else:
            cyc, ev, tl = _ws_conv(cfg, layer, out_bytes, chain)
        if tl is not None:
            busy, idle = tl.busy, tl.idle_cycles()
    ev.cycles = cyc + FIXED
    ev.dram_bytes += (LAYER_INSNS - (out_bytes != 1)) * isa.INSN_BYTES   # CONFIG, HALT
    idle["fill"] += FIXED                 # fetch start-up and the end of the last store
    useful = layer.macs / (cfg.rows * cfg.cols)
    breakdown = {"useful": useful, "underfill": busy - padding - useful, "padding": padding,
                 **idle}
    return CoreEstimate(ev.cycles, layer.macs, ev, breakdown)


def _ws_gemm_passes(cfg: NPUConfig, layer: Layer, out_bytes: int, passes: int):
    """A WS GEMM in ``passes`` passes over K (``compiler.k_passes``), one after another
    (a SYNC between them): each pass's schedule on its own timeline, every pass but the
    last storing raw int32 partial sums, every pass but the first starting from them.
    Returns ``(cycles, events, busy, idle)``; a pass after the first adds its fetch
    start-up (:data:`FIXED`) to the cycles and to ``fill``."""
    M, K, N = layer.M, layer.K, layer.N
    cyc, ev, busy, idle = 0, Events(), 0, dict.fromkeys(_IDLE, 0)
    for q, (k0, kl) in enumerate(k_pass_ranges(cfg.rows, K, passes)):
        k_tiles = [min(cfg.rows, kl - k) for k in range(0, kl, cfg.rows)]
        c, e, tl = _ws_gemm(cfg, M, N, k_tiles, lambda n0, nt: list(range(len(k_tiles))),
                            lambda m0, mb: 1, out_bytes if q == passes - 1 else 4,
                            a_rows=lambda k, k0=k0: (K, k0 + k), acc_in=q > 0, w_k0=k0)
        cyc, ev, busy = cyc + c + FIXED * (q > 0), ev + e, busy + tl.busy
        idle = {k: v + tl.idle_cycles()[k] for k, v in idle.items()}
        idle["fill"] += FIXED * (q > 0)
    ev.dram_bytes += (passes - 1) * isa.INSN_BYTES        # the SYNCs between the passes
    return cyc, ev, busy, idle


def _live_tiles(layer: Layer, tiles):
    """``live_of(n0, nt)``: the indices of the K-tiles ``(k0, kt)`` that an N-tile computes
    with -- all of them, or for a depthwise layer those holding one of its channels."""
    if layer.depthwise:
        return lambda n0, nt: [i for i, (k0, kt) in enumerate(tiles)
                               if conv_tile_channels_meet(k0, kt, layer.c, n0, nt)]
    return lambda n0, nt: list(range(len(tiles)))


def _ws_conv(cfg: NPUConfig, layer: Layer, out_bytes: int, chain=None):
    """A WS convolution without the on-chip band: im2col rows read from the padded NHWC
    input by strided LOADs, a window row's taps packed into K (``compiler._Im2colA``)."""
    ho, wo = layer.out_hw
    cin, wp = layer.c, layer.w + 2 * layer.pad
    tiles = conv_k_tiles(cfg.rows, layer.kh, layer.kw, cin)
    k_tiles = [kt for _, kt in tiles]
    run = layer.kw * cin
    return _ws_gemm(cfg, ho * wo, layer.n, k_tiles, _live_tiles(layer, tiles), _row_runs(wo),
                    out_bytes, a_rows=lambda k0: (layer.stride * cin,
                                                  (k0 // run) * wp * cin + k0 % run),
                    chain=chain)


def _ws_conv_im2col(cfg: NPUConfig, layer: Layer, out_bytes: int):
    """A WS convolution reading host-built im2col rows (``compiler._DenseA`` with rows
    ``im2col_row_bytes(K)`` apart): a GEMM of dense K-tiles, a depthwise layer's tiles live
    where they hold the N-tile's channels."""
    ho, wo = layer.out_hw
    R, cin = cfg.rows, layer.c
    K = layer.kh * layer.kw * cin
    tiles = [(k0, min(R, K - k0)) for k0 in range(0, K, R)]
    stride = im2col_row_bytes(K)
    return _ws_gemm(cfg, ho * wo, layer.n, [kt for _, kt in tiles], _live_tiles(layer, tiles),
                    lambda m0, mb: 1, out_bytes, a_rows=lambda k0: (stride, k0))


def takes_im2col_input(cfg: NPUConfig, layer: Layer) -> bool:
    """Whether a network's first layer (its input written by the host) is compiled with
    host-built im2col rows: a WS convolution where ``compiler.im2col_input_pays``."""
    return cfg.dataflow == "ws" and layer.kind == "conv" and \
        im2col_input_pays(cfg.rows, layer.kh, layer.kw, layer.c)


def _reads_previous(prev: Layer, layer: Layer) -> bool:
    """Whether ``layer``'s A is ``prev``'s output as the compiler can chain it on chip:
    ``layer.a_from`` names ``prev`` and ``layer`` is a GEMM over its rows or a 1x1, stride 1,
    unpadded convolution over its pixels.  A table naming a producer whose output is not
    that A is refused."""
    if not layer.a_from or layer.a_from != prev.name:
        if layer.a_from and layer.a_from != prev.name:
            raise WorkloadError(f"{layer.name}: a_from {layer.a_from!r} is not the layer "
                                f"before it ({prev.name!r})")
        return False
    out_rows, out_cols = (prev.M, prev.N) if prev.kind == "gemm" else \
        (prev.out_hw[0] * prev.out_hw[1], prev.n)
    if layer.kind == "gemm":
        ok = (layer.M, layer.K) == (out_rows, out_cols)
    else:
        ok = (layer.kh, layer.kw, layer.stride, layer.pad, layer.depthwise) == \
            (1, 1, 1, 0, False) and prev.kind == "conv" and \
            (layer.h, layer.w, layer.c) == (*prev.out_hw, prev.n)
    if not ok:
        raise WorkloadError(f"{layer.name}: a_from {prev.name!r}, but its A is not that "
                            f"layer's {out_rows} x {out_cols} output read row by row")
    return True


@functools.lru_cache(maxsize=4096)
def _estimate(cfg: NPUConfig, layer: Layer, out_bytes: int, im2col_input: bool,
              chain: Chained) -> CoreEstimate:
    """:func:`core_estimate`, remembered (:func:`chains` costs a run both ways)."""
    return core_estimate(cfg, layer, out_bytes, im2col_input=im2col_input, chain=chain)


def chains(cfg: NPUConfig, layers, out_bytes: int = 1) -> list[Chained]:
    """Each layer's part in an on-chip chain, as the compiler maps them: a run of layers
    each reading the one before (:func:`_reads_previous`) keeps its intermediates in the
    scratchpad when :func:`compiler.chain_on_chip` allows (a weight-stationary core with
    ``cols <= rows``, the two alternating regions in at most ``compiler.CHAIN_SHARE`` of
    the scratchpad), every layer of the run then using the lines above them, and when that
    reads and writes fewer DRAM bytes over the run than without (the regions leave its
    layers less room: fewer resident weights, shorter bands; none at all: not chained).
    A first layer taking host im2col rows starts no chain."""
    out = [Chained() for _ in layers]
    if cfg.dataflow != "ws":
        return out
    k = 0
    while k < len(layers):
        j = k
        while j + 1 < len(layers) and _reads_previous(layers[j], layers[j + 1]):
            j += 1
        run, k = range(k, j + 1), j + 1
        if len(run) < 2 or (run[0] == 0 and takes_im2col_input(cfg, layers[0])):
            continue
        first = layers[run[0]]
        m = first.M if first.kind == "gemm" else first.out_hw[0] * first.out_hw[1]
        widths = [layers[i].N if layers[i].kind == "gemm" else layers[i].n for i in run[:-1]]
        if not chain_on_chip(cfg, m, widths):
            continue
        lo = chain_regions(cfg, m, widths)[-1]
        linked = [Chained(i != run[0], i != run[-1], lo) for i in run]
        try:
            with_ = sum(_estimate(cfg, layers[i], out_bytes, False, c).events.dram_bytes
                        for i, c in zip(run, linked))
        except LayerError:          # a layer has no room left beside the regions
            continue
        if with_ < sum(_estimate(cfg, layers[i], out_bytes, False, Chained()).events.dram_bytes
                       for i in run):
            out[run[0]:run[-1] + 1] = linked
    return out


def chained_bytes(layers, out_bytes: int = 1) -> int:
    """DRAM bytes a network need not move when every intermediate its table links to the
    next layer (``Layer.a_from``) stays on chip: each one's write and read.  The per-layer
    compulsory bytes minus these are the network-level floor (on any core: a core whose
    scratchpad holds fewer of them moves more)."""
    return sum(2 * prev.compulsory_bytes(out_bytes)[2]
               for prev, layer in zip(layers, layers[1:]) if _reads_previous(prev, layer))


def network_estimates(cfg: NPUConfig, layers, out_bytes: int = 1) -> list[CoreEstimate]:
    """:func:`core_estimate` of each layer of a network, in order: the first layer reads
    the host's input, as im2col rows where :func:`takes_im2col_input`; layers chained on
    chip (:func:`chains`) as the compiler maps them."""
    return [_estimate(cfg, layer, out_bytes, i == 0 and takes_im2col_input(cfg, layer), link)
            for i, (layer, link) in enumerate(zip(layers, chains(cfg, layers, out_bytes)))]


def cycle_breakdown(cfg: NPUConfig, layers, out_bytes: int = 1) -> list[tuple[str, dict]]:
    """Per layer of a network (``layers``: ``workloads.Layer`` in order, as
    :func:`network_estimates` costs them), where its analytical cycles go
    (:data:`BREAKDOWN`), and a last row ``("total", ...)`` summing them: for the sweep and
    the notebook (which layers and which causes keep the array idle)."""
    rows = [(layer.name, est.breakdown)
            for layer, est in zip(layers, network_estimates(cfg, layers, out_bytes))]
    total = {k: sum(b[k] for _, b in rows) for k in BREAKDOWN}
    return rows + [("total", total)]
