"""Cycle-exact model of the NPU core (``hdl/core.py``) and of the testbench's DRAM.

Every register of the RTL that decides *when* something happens is mirrored here, and each
call of :meth:`CycleNPU._cycle` is one clock: the combinational values of the cycle are
computed from the registers in dependency order, then every register takes its next
value.  Data values are not carried (timing never depends on them; the functional model
:mod:`sim_models.isa_sim` computes results); addresses, sizes, tags and flags are.

The memory is :class:`AxiRamTiming`: the queue-and-coroutine timing of cocotbext-axi's
``AxiRam`` (queue limits of 2 on every channel, sinks that sample at the clock edge,
sources that drive the next beat after it), optionally with the same seeded pause
generators the testbench puts on the AXI channels.  With it the model's cycle count and
every performance counter equal the RTL's; the regression checks that for each
end-to-end program on both simulators.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from hdl import isa
from hdl.config import NPUConfig
from hdl.isa import ErrorCode, Opcode
from hdl.regmap import COUNTERS
from hdl.requant import LATENCY as REQUANT_LATENCY

__all__ = ["CycleNPU", "AxiRamTiming", "CycleResult", "ModelError"]

RESP_OKAY, RESP_SLVERR, RESP_DECERR = 0, 2, 3
TAG_FETCH, TAG_LOAD = 0, 1
_LOAD_QUEUE_OPS = {op for op, q in isa.QUEUE_OF.items() if q == isa.Queue.LOAD}
_COMPUTE_QUEUE_OPS = {op for op, q in isa.QUEUE_OF.items() if q == isa.Queue.COMPUTE}
_STORE_QUEUE_OPS = {op for op, q in isa.QUEUE_OF.items() if q == isa.Queue.STORE}
_LEGAL = {int(op) for op in Opcode}


class ModelError(RuntimeError):
    """The model ran longer than its cycle budget (the RTL would hang too)."""


def _f(word: int, op: Opcode, name: str) -> int:
    """The bits the RTL slices for field ``name`` of ``op`` (whatever the opcode is)."""
    f = isa.field(op, name)
    v = (word >> f.lsb) & ((1 << f.width) - 1)
    if f.signed and v >> (f.width - 1):
        v -= 1 << f.width
    return v


def _flag(word: int, name: str) -> int:
    return (word >> (4 + isa.FLAGS.index(name))) & 1


# --- building blocks -------------------------------------------------------------------

class _Fifo:
    """``amaranth.lib.fifo.SyncFIFOBuffered``: ``depth - 1`` entries in a memory with a
    synchronous read, plus the output register that ``r_rdy`` flags."""

    __slots__ = ("cap", "inner", "out", "r_rdy")

    def __init__(self, depth: int):
        assert depth >= 2
        self.cap = depth - 1
        self.reset()

    def reset(self):
        self.inner: deque = deque()
        self.out = None
        self.r_rdy = False

    @property
    def level(self) -> int:
        return len(self.inner) + self.r_rdy

    @property
    def w_rdy(self) -> bool:
        return len(self.inner) != self.cap

    def step(self, w_en: bool, w_data, r_en: bool):
        do_write = w_en and len(self.inner) != self.cap
        if self.inner and (not self.r_rdy or r_en):
            self.out = self.inner.popleft()
            self.r_rdy = True
        elif r_en:
            self.r_rdy = False
        if do_write:
            self.inner.append(w_data)


class _Delay:
    """``DelayLine``: ``o`` is ``i`` from ``depth`` cycles ago."""

    __slots__ = ("line",)

    def __init__(self, depth: int, init=0):
        self.line = deque([init] * depth) if depth else None

    def o(self, i):
        return self.line[0] if self.line is not None else i

    def step(self, i):
        if self.line is not None:
            self.line.popleft()
            self.line.append(i)


def _pause_stream(gen):
    """One value per clock edge from a pause generator; False when there is none."""
    if gen is None:
        while True:
            yield False
    yield from gen


# --- the DRAM: cocotbext-axi AxiRam timing ---------------------------------------------

class AxiRamTiming:
    """The cycle behaviour of cocotbext-axi's ``AxiRam`` as the core sees it.

    Per clock edge: each sink (AR, AW, W) queues a beat that handshook in the cycle before
    and sets ``ready`` for the next cycle to "queue below 2 and not paused"; each source
    (R, B) drives its next queued beat if the previous one was taken (or none was shown).
    Then the read and write processes advance until they block: a read burst becomes one R
    beat per queue slot, a write burst takes its W beats and answers one B.
    ``slverr``/``decerr`` are address ranges answered with that response, as the
    testbench's fault hooks do.
    """

    LIMIT = 2
    CHANNELS = ("ar", "r", "aw", "w", "b")

    def __init__(self, bus_bytes: int, pauses: dict | None = None,
                 slverr=(), decerr=()):
        self.B = bus_bytes
        self.slverr, self.decerr = list(slverr), list(decerr)
        self._pause = {ch: _pause_stream(None) for ch in self.CHANNELS}
        self._paused = {ch: False for ch in self.CHANNELS}     # value set at this edge
        self._before = {ch: False for ch in self.CHANNELS}     # value set at the edge before
        if pauses:
            self.set_pauses(pauses)
        self.ar_q, self.r_q, self.aw_q, self.w_q, self.b_q = (deque() for _ in range(5))
        self.arready = self.awready = self.wready = False
        self.rvalid, self.r_beat = False, None     # r_beat: (last, resp)
        self.bvalid, self.b_resp = False, RESP_OKAY
        self._rd = None    # [word address, beats left]
        self._wr = None    # [word address, beats left, resp]
        self._rd_decerr = self._wr_decerr = False

    def set_pauses(self, values: dict, first: dict | int = 0):
        """Pause the channels as cocotbext's pause generators do: ``values[ch][i]`` is the
        value set at the generator's i-th clock edge; ``first[ch]`` is the index that falls on
        the edge ending the START cycle.  A generator is advanced before the sinks and sources
        run at an edge, so a sink's ``ready`` follows the value of the edge before (its
        sample is taken before it waits), a source's drive the value of this edge."""
        for ch in self.CHANNELS:
            seq = list(values.get(ch, ()))
            i = first[ch] if isinstance(first, dict) else first
            at = lambda k: bool(seq[k]) if 0 <= k < len(seq) else False  # noqa: E731
            self._pause[ch] = _pause_stream(iter(seq[i:]) if seq else None)
            self._paused[ch] = at(i - 1)
            # Idle before START: ready is "queue below the limit and not paused".
            ready = at(i - 2) is False
            if ch == "ar":
                self.arready = ready and len(self.ar_q) < self.LIMIT
            elif ch == "aw":
                self.awready = ready and len(self.aw_q) < self.LIMIT
            elif ch == "w":
                self.wready = ready and len(self.w_q) < self.LIMIT

    def advance_pauses(self):
        """The pause generators' values for the coming edge (they step once per edge)."""
        for ch, gen in self._pause.items():
            self._before[ch] = self._paused[ch]
            self._paused[ch] = bool(next(gen, False))

    def _fault(self, addr: int, nbytes: int):
        if any(a in r for r in self.slverr for a in range(addr, addr + nbytes)):
            return RESP_SLVERR
        if any(a in r for r in self.decerr for a in range(addr, addr + nbytes)):
            return RESP_DECERR
        return RESP_OKAY

    def edge(self, arvalid, ar, rready, awvalid, aw, wvalid, w_bytes, bready):
        """One rising edge, given the core's outputs in the cycle before it."""
        paused, before = self._paused, self._before
        # Sinks: pause is sampled before the edge (the value set at the previous edge).
        if self.arready and arvalid:
            self.ar_q.append(ar)
        if self.awready and awvalid:
            self.aw_q.append(aw)
        if self.wready and wvalid:
            self.w_q.append(w_bytes)
        # Sources.
        if not self.rvalid or rready:
            if self.r_q and not paused["r"]:
                self.r_beat, self.rvalid = self.r_q.popleft(), True
            else:
                self.rvalid = False
        if not self.bvalid or bready:
            if self.b_q and not paused["b"]:
                self.b_resp, self.bvalid = self.b_q.popleft(), True
            else:
                self.bvalid = False
        self.arready = len(self.ar_q) < self.LIMIT and not before["ar"]
        self.awready = len(self.aw_q) < self.LIMIT and not before["aw"]
        self.wready = len(self.w_q) < self.LIMIT and not before["w"]
        self._run_read()
        self._run_write()

    def _run_read(self):
        while True:
            if self._rd is None:
                if not self.ar_q:
                    return
                addr, length = self.ar_q.popleft()
                self._rd = [addr, length + 1]
            if len(self.r_q) >= self.LIMIT:
                return
            addr, left = self._rd
            resp = self._fault(addr, self.B)
            if resp == RESP_DECERR:
                self._rd_decerr, resp = True, RESP_OKAY
            if self._rd_decerr:
                resp = RESP_DECERR
                if left == 1:
                    self._rd_decerr = False
            self.r_q.append((left == 1, resp))
            self._rd = None if left == 1 else [addr + self.B, left - 1]

    def _run_write(self):
        while True:
            if self._wr is None:
                if not self.aw_q:
                    return
                length = self.aw_q.popleft()
                self._wr = [length + 1, RESP_OKAY]
            if self._wr[0]:
                if not self.w_q:
                    return
                for lo, hi in self.w_q.popleft():       # bytes the strobes write
                    resp = self._fault(lo, hi - lo)
                    if resp == RESP_SLVERR:
                        self._wr[1] = RESP_SLVERR
                    elif resp == RESP_DECERR:
                        self._wr_decerr = True
                self._wr[0] -= 1
                continue
            if len(self.b_q) >= self.LIMIT:
                return
            resp = RESP_DECERR if self._wr_decerr else self._wr[1]
            self._wr_decerr = False
            self.b_q.append(resp)
            self._wr = None

    @property
    def idle(self) -> bool:
        return not (self.ar_q or self.r_q or self.aw_q or self.w_q or self.b_q or self.rvalid
                    or self.bvalid or self._rd or self._wr)


# --- results ---------------------------------------------------------------------------

@dataclass
class CycleResult:
    done: bool
    error: ErrorCode
    err_pc: int
    counters: dict                              # the RTL's performance counters, by name
    events: dict = field(default_factory=dict)  # memory and array activity, for energy

    @property
    def cycles(self) -> int:
        return self.counters["cycles"]


def _burst_plan(addr, nbytes, B, base, size):
    offset = addr % B
    first = addr - offset
    nbeats = (offset + nbytes + B - 1) // B
    to_4k = (4096 - (first % 4096)) // B
    split = nbeats > to_4k
    len1 = to_4k if split else nbeats
    in_range = addr >= base and addr + nbytes <= base + size and nbytes != 0
    return first, nbeats, split, len1, nbeats - to_4k, first + to_4k * B, in_range


# --- the core ---------------------------------------------------------------------------

class CycleNPU:
    """The core, cycle by cycle.  One instance keeps its state between :meth:`run` calls,
    as the RTL does between programs (arbiter turn bits survive; engines restart)."""

    def __init__(self, cfg: NPUConfig, memory: AxiRamTiming | None = None):
        self.cfg = cfg
        self.mem = memory or AxiRamTiming(cfg.bus_bytes)
        self.B = cfg.bus_bytes
        # State that no soft reset touches.
        self.prefer_load = False
        self.sp_turn = False
        self.error = self.err_pc = 0
        self.program, self.prog_addr, self.prog_len = [], 0, 0
        self.base, self.size = 0, 1 << 32
        self._reset_engines()

    # ---- reset -------------------------------------------------------------------------
    def _reset_engines(self):
        cfg, R, C = self.cfg, self.cfg.rows, self.cfg.cols
        # fetch
        self.running = self.done = False
        self.f_error = 0
        self.pc = self.issued_f = self.inflight_f = 0
        self.ibuf = _Fifo(4)
        self.queues = {n: _Fifo(cfg.queue_depth) for n in ("load", "compute", "store")}
        # reader
        self.pending = _Fifo(8)
        self.arvalid, self.ar = False, (0, 0)
        self.ar_second, self.ar_second_due = (0, 0), False
        self.beat_r = 0
        self.out_valid, self.out_tag, self.out_word = False, 0, 0
        self.r_error = 0
        self.bytes_read = 0
        # writer
        self.awvalid = self.aw_busy = self.w_busy = False
        self.aw_len, self.aw_second_len, self.aw_second_due = 0, 0, False
        self.w_beats = []            # per beat: list of (lo, hi) byte ranges written
        self.w_len1, self.beat_w = 0, 0
        self.outstanding = 0
        self.w_error = 0
        self.bytes_written = 0
        # load unit
        self.l_busy = self.l_acc = self.l_push = False
        self.l_base = self.l_rows = self.l_nbytes = self.l_addr = self.l_stride = 0
        self.l_issued = self.l_written = 0
        self.l_error = 0
        # compute unit
        self.streams = {n: self._new_stream() for n in ("a", "b")}
        self.results = _Fifo(8)
        self.preloads = 0
        self.c_error = 0
        self.row = 0
        self.s_valid, self.s_push, self.s_addr = False, False, 0
        if cfg.dataflow == "ws":
            self.full = [False, False]
            self.load_bank = self.comp_bank = 0
            self.load_row = 0
            self.c_flags = _Delay(R + C - 1, (False, False))
        else:
            self.since_last = R
            self.drain_start = _Delay(R - 1, False)
            self.remaining = 0
            self.c_flags = _Delay(C - 1, (False, False))
        self.pending_c = 0
        # store unit
        self.st_busy = self.st_raw = self.st_push = self.draining = False
        self.st_base = self.st_rows = self.st_ncols = self.st_addr = self.st_stride = 0
        self.st_issued = self.st_sent = 0
        self.st_out = _Fifo(8)
        self.st_inflight = 0
        self.read_valid = False
        self.valid_line = _Delay(REQUANT_LATENCY, False)
        self.st_error = 0
        # tokens
        self.tokens = {n: 0 for n in ("l2c", "c2l", "c2s", "s2c")}
        self.deadlock_count = 0
        self.error = 0

    @staticmethod
    def _new_stream():
        return {"busy": False, "issuing": False, "base": 0, "count": 0, "total": 0,
                "push": False, "issued": 0, "inflight": False, "inflight_last": False,
                "fifo": _Fifo(4)}

    def soft_reset(self):
        """CTRL.SOFT_RESET with the bus quiet: engines, queues and tokens restart."""
        self._reset_engines()

    # ---- one program -------------------------------------------------------------------
    def run(self, program: list[int], prog_addr: int = 0, dram_base: int = 0,
            dram_size: int = 1 << 32, max_cycles: int = 50_000_000) -> CycleResult:
        """START the program at ``prog_addr`` (``program`` are its words) and clock until
        the core is no longer busy; return the counters as the RTL's registers hold them."""
        self.program = list(program)
        self.prog_addr, self.prog_len = prog_addr, len(program)
        self.base, self.size = dram_base, dram_size
        self.counters = {name: 0 for name in COUNTERS}
        self.events = {"sp_line_writes": 0, "sp_line_reads": 0, "acc_line_reads": 0,
                       "acc_line_writes": 0, "array_beats": 0, "weight_beats": 0}
        self._read_base, self._write_base = self.bytes_read, self.bytes_written
        self._cycle(start=True)
        n = 0
        while self._busy():
            self._cycle(start=False)
            n += 1
            if n > max_cycles:
                raise ModelError(f"no done or error after {max_cycles} cycles (pc {self.pc})")
        self.counters["dma_bytes_read"] = (self.bytes_read - self._read_base) & 0xFFFFFFFF
        self.counters["dma_bytes_written"] = (self.bytes_written - self._write_base) & 0xFFFFFFFF
        return CycleResult(done=self.done and not self.error, error=ErrorCode(self.error),
                           err_pc=self.err_pc, counters=dict(self.counters),
                           events=dict(self.events))

    def _quiet(self, compute_idle: bool, dma_idle: bool) -> bool:
        """No unit working and the bus idle (the core reports an error only then)."""
        return not self.l_busy and compute_idle and not self.st_busy and dma_idle

    def _busy(self) -> bool:
        """Counting cycles, or a unit's error not yet taken by the core (fetch stops the
        cycle before the core's error register is set; that cycle is not counted)."""
        if self.running:
            return True
        if self.error:
            return not self._quiet(self._compute_idle(), self._dma_idle())
        return any((self.f_error, self.l_error, self.c_error, self.st_error, self.r_error,
                    self.w_error, self.deadlock_count == 7))

    # ---- combinational helpers ---------------------------------------------------------
    def _fetch_cmd_valid(self):
        return (self.running and self.issued_f < self.prog_len and not self.error
                and self.ibuf.level + self.inflight_f < 4)

    def _load_cmd_valid(self):
        return self.l_busy and self.l_issued != self.l_rows and not self.error

    def _reader_idle(self, cmd_valid: bool) -> bool:
        """RowReader.idle; ``cmd_valid``: fetch or load asks for a row this cycle."""
        return not (self.pending.r_rdy or self.arvalid or self.out_valid or cmd_valid)

    def _writer_idle(self):
        return not (self.aw_busy or self.w_busy or self.outstanding or self.st_out.r_rdy)

    def _dma_idle(self):
        cmd_valid = self._load_cmd_valid() or self._fetch_cmd_valid()
        return self._reader_idle(cmd_valid) and self._writer_idle()

    def _array_signals(self):
        """The array's handshakes this cycle: (a_valid, a_ready, b_ready, fire, last_fire)."""
        a, b = self.streams["a"]["fifo"], self.streams["b"]["fifo"]
        a_valid = a.r_rdy
        a_last = bool(a.out[1]) if a.out is not None else False
        if self.cfg.dataflow == "ws":
            a_ready = self.full[self.comp_bank]
            b_ready = not self.full[self.load_bank]
        else:
            last_ok = (not a_last) or self.since_last == self.cfg.rows
            a_ready = b.r_rdy and last_ok
            b_ready = a_valid and last_ok
        fire = a_valid and a_ready
        return a_valid, a_ready, b_ready, fire, fire and a_last

    def _c_out(self):
        """(valid, last) of the array's ``c`` port this cycle."""
        if self.cfg.dataflow == "ws":
            return self.c_flags.line[0]          # depth rows + cols - 1 >= 1
        col0 = (self.remaining != 0, self.remaining == 1)
        return self.c_flags.o(col0)

    def _compute_idle(self):
        _, _, _, fire, last_fire = self._array_signals()
        trigger = fire if self.cfg.dataflow == "ws" else last_fire
        return (not self.streams["a"]["busy"] and not self.streams["b"]["busy"]
                and self.results.level == 0 and self.pending_c == 0 and not trigger
                and not self.s_valid)

    def _array_step(self, fire, last_fire, b_fire, c_valid):
        R = self.cfg.rows
        if self.cfg.dataflow == "ws":
            tile_loaded = b_fire and self.load_row == R - 1
            set_bank = self.load_bank if tile_loaded else None
            clear_bank = self.comp_bank if last_fire else None
            if b_fire:
                self.load_row = 0 if tile_loaded else self.load_row + 1
            if tile_loaded:
                self.load_bank ^= 1
            if last_fire:
                self.comp_bank ^= 1
            if set_bank is not None:
                self.full[set_bank] = True
            if clear_bank is not None:
                self.full[clear_bank] = False
            self.c_flags.step((fire, last_fire))
            self.pending_c += fire - c_valid
        else:
            started = self.drain_start.o(last_fire)
            col0 = (self.remaining != 0, self.remaining == 1)
            self.c_flags.step(col0)
            self.drain_start.step(last_fire)
            if started:
                self.remaining = R
            elif self.remaining:
                self.remaining -= 1
            if last_fire:
                self.since_last = 1
            elif self.since_last != R:
                self.since_last += 1
            self.pending_c += R * last_fire - c_valid

    # ---- the clock ---------------------------------------------------------------------
    def _cycle(self, start: bool):
        """One clock: phase 1 computes the cycle's combinational values from the registers
        (nothing is written); phase 2 gives every register its next value."""
        cfg, R, C, B = self.cfg, self.cfg.rows, self.cfg.cols, self.B
        mem, ev = self.mem, self.events
        abort = self.error != 0
        acc_slice, sp_slice = cfg.acc_lines // cfg.acc_banks, cfg.sp_lines // cfg.sp_banks

        # ======== phase 1: combinational ========
        # -- read DMA: command side (fetch and load arbitrated) --
        f_cmd_valid = self._fetch_cmd_valid()
        l_cmd_valid = self._load_cmd_valid()
        ar_fire = self.arvalid and mem.arready
        ar_free = (not self.arvalid) or (mem.arready and not self.ar_second_due)
        pick_load = l_cmd_valid and ((not f_cmd_valid) or self.prefer_load)
        r_cmd_valid = l_cmd_valid or f_cmd_valid
        take = r_cmd_valid and ar_free and self.pending.w_rdy
        if pick_load:
            cmd = (self.l_addr, self.l_nbytes, TAG_LOAD, None)
        else:
            word_index = self.issued_f
            cmd = (self.prog_addr + 16 * word_index, isa.INSN_BYTES, TAG_FETCH,
                   self.program[word_index] if word_index < self.prog_len else 0)
        plan = _burst_plan(cmd[0], cmd[1], B, self.base, self.size) if take else None

        # -- compute: array, result writer (its accumulator accesses never wait) --
        a_valid, a_ready, b_ready, fire, last_fire = self._array_signals()
        c_valid, c_last = self._c_out()
        head = self.results.out
        target = 0
        if c_valid:
            target = head[0] + (self.row if cfg.dataflow == "ws" else R - 1 - self.row)
        acc_r_compute = c_valid and head[1]

        # -- read DMA: data side, and the load unit's acceptance of a response --
        l_target = self.l_base + self.l_written
        l_bank_ready = True
        if self.l_acc:
            l_bank_ready = not (self.s_valid and self.s_addr // acc_slice == l_target // acc_slice)
        l_rsp_ready = (not self.l_busy) or l_bank_ready
        out_is_fetch = self.out_tag == TAG_FETCH
        rsp_ready = out_is_fetch or l_rsp_ready
        out_free = (not self.out_valid) or rsp_ready
        p_head = self.pending.out if self.pending.r_rdy else None
        collecting = p_head is not None and not p_head[3]
        last_beat = collecting and self.beat_r == p_head[1] - 1
        rready = collecting and ((not last_beat) or out_free)
        r_fire = mem.rvalid and rready
        skip_finish = p_head is not None and p_head[3] and out_free
        finish = (r_fire and last_beat) or skip_finish
        f_rsp_valid = self.out_valid and out_is_fetch
        l_rsp = self.out_valid and not out_is_fetch and l_rsp_ready

        # -- load unit --
        lq = self.queues["load"]
        l_word = lq.out if lq.r_rdy else None
        l_ready_to_start = l_ok = False
        if l_word is not None:
            l_to_acc = (l_word & 0xF) == Opcode.LOAD_ACC
            l_mem_addr = _f(l_word, Opcode.LOAD_ACC, "acc_addr") if l_to_acc else \
                _f(l_word, Opcode.LOAD, "sp_addr")
            l_nrows, l_ncols = _f(l_word, Opcode.LOAD, "nrows"), _f(l_word, Opcode.LOAD, "ncols")
            depth, width = (cfg.acc_lines, C) if l_to_acc else (cfg.sp_lines, cfg.sp_width)
            l_ok = l_nrows != 0 and l_ncols != 0 and l_ncols <= width and \
                l_mem_addr + l_nrows <= depth
            l_need = _flag(l_word, "pop_next")
            l_ready_to_start = (not l_need) or self.tokens["c2l"] != 0
        l_start = l_word is not None and not self.l_busy and not abort and l_ready_to_start
        l_wait_token = l_word is not None and not self.l_busy and not l_ready_to_start
        l_cmd_fire = take and pick_load
        f_cmd_fire = take and not pick_load

        # -- compute unit: streamers and the scratchpad's read arbitration --
        wants = {}
        for name, s in self.streams.items():
            want = s["issuing"] and s["fifo"].level + s["inflight"] < 4 and not abort
            wants[name] = (want, s["issued"] >= s["count"], s["base"] + s["issued"])
        en_a = wants["a"][0] and not wants["a"][1]
        en_b = wants["b"][0] and not wants["b"][1]
        tie = en_a and en_b and wants["a"][2] // sp_slice == wants["b"][2] // sp_slice
        grant = {"a": (not tie) or not self.sp_turn, "b": (not tie) or self.sp_turn}
        issue = {n: w[0] and (w[1] or grant[n]) for n, w in wants.items()}
        out_ready = {"a": a_ready, "b": b_ready}
        b_fire = self.streams["b"]["fifo"].r_rdy and b_ready

        # -- compute dispatch --
        cq = self.queues["compute"]
        c_word = cq.out if cq.r_rdy else None
        c_go = c_accept = c_wait_token = False
        if c_word is not None:
            c_is_pre = (c_word & 0xF) == Opcode.PRELOAD
            need_l2c, need_s2c = _flag(c_word, "pop_prev"), _flag(c_word, "pop_next")
            tokens_ok = ((not need_l2c) or self.tokens["l2c"] != 0) and \
                ((not need_s2c) or self.tokens["s2c"] != 0)
            c_wait_token = not tokens_ok
            c_nrows = _f(c_word, Opcode.COMPUTE, "nrows")
            c_a_addr = _f(c_word, Opcode.COMPUTE, "a_addr")
            c_b_addr = _f(c_word, Opcode.COMPUTE, "b_addr")
            c_acc_addr = _f(c_word, Opcode.COMPUTE, "acc_addr")
            c_pre_addr = _f(c_word, Opcode.PRELOAD, "sp_addr")
            c_pre_rows = _f(c_word, Opcode.PRELOAD, "nrows")
            a_free = not self.streams["a"]["busy"]
            b_free = not self.streams["b"]["busy"]
            if cfg.dataflow == "ws":
                if c_is_pre:
                    ops_ok = c_pre_rows <= R and c_pre_addr + c_pre_rows <= cfg.sp_lines and \
                        self.preloads != 2
                    res_ok = b_free
                else:
                    ops_ok = c_nrows != 0 and c_a_addr + c_nrows <= cfg.sp_lines and \
                        c_acc_addr + c_nrows <= cfg.acc_lines and self.preloads != 0
                    res_ok = a_free and self.results.w_rdy
            else:
                ops_ok = (not c_is_pre) and c_nrows != 0 and \
                    c_a_addr + c_nrows <= cfg.sp_lines and c_b_addr + c_nrows <= cfg.sp_lines and \
                    c_acc_addr + R <= cfg.acc_lines
                res_ok = a_free and b_free and self.results.w_rdy
            c_go = (not abort) and tokens_ok and (res_ok or not ops_ok)
            c_accept = c_go and ops_ok

        # -- store unit --
        sq = self.queues["store"]
        s_word = sq.out if sq.r_rdy else None
        s_go = s_ok = s_is_config = s_wait_token = False
        if s_word is not None:
            s_is_config = (s_word & 0xF) == Opcode.CONFIG
            if s_is_config:
                lane = _f(s_word, Opcode.CONFIG, "lane")
                s_ok = lane == isa.CONFIG_ALL_LANES or lane < C
            else:
                s_nrows = _f(s_word, Opcode.STORE, "nrows")
                s_ncols = _f(s_word, Opcode.STORE, "ncols")
                s_acc_addr = _f(s_word, Opcode.STORE, "acc_addr")
                s_ok = s_nrows != 0 and s_ncols != 0 and s_ncols <= C and \
                    s_acc_addr + s_nrows <= cfg.acc_lines
            tokens_ok = (not _flag(s_word, "pop_prev")) or self.tokens["c2s"] != 0
            s_wait_token = not self.st_busy and not tokens_ok
            s_go = not self.st_busy and not abort and (tokens_ok or not s_ok)
        st_room = self.st_out.level + self.st_inflight < 8
        st_want = self.st_busy and not self.draining and self.st_issued != self.st_rows and \
            st_room and not abort
        st_target = self.st_base + self.st_issued
        st_issue = st_want and not (acc_r_compute and target // acc_slice == st_target // acc_slice)
        vl_out = self.valid_line.o(self.read_valid)

        # -- write DMA --
        wr_valid = self.st_out.r_rdy
        w_fire = self.w_busy and mem.wready
        w_last_beat = self.w_busy and self.beat_w == len(self.w_beats) - 1
        aw_free = (not self.aw_busy) or (mem.awready and not self.aw_second_due)
        w_free = (not self.w_busy) or (w_fire and w_last_beat)
        wr_ready = aw_free and w_free and self.outstanding < 200
        wr_fire = wr_valid and wr_ready
        wr_nbytes = self.st_ncols * 4 if self.st_raw else self.st_ncols
        wr_addr = self.st_addr
        aw_fire = self.awvalid and mem.awready
        bresp_fire = mem.bvalid
        writer_idle = self._writer_idle()
        st_finished = self.st_busy and self.draining and writer_idle

        # -- fetch: dispatch, SYNC/HALT --
        dma_idle = self._reader_idle(r_cmd_valid) and writer_idle
        compute_idle = self._compute_idle()
        queues_empty = all(q.level == 0 for q in self.queues.values())
        units_idle = (queues_empty and not self.l_busy and compute_idle and not self.st_busy
                      and dma_idle)
        f_head = self.ibuf.r_rdy and self.running and not abort
        word = self.ibuf.out if self.ibuf.r_rdy else 0
        fop = word & 0xF
        mine = {"load": fop in _LOAD_QUEUE_OPS, "compute": fop in _COMPUTE_QUEUE_OPS,
                "store": fop in _STORE_QUEUE_OPS}
        taken = any(mine[n] and self.queues[n].w_rdy for n in mine)
        stalled = any(mine[n] and not self.queues[n].w_rdy for n in mine)
        ibuf_r_en = f_head and (taken or (fop == Opcode.SYNC and units_idle))
        program_over = self.pc == self.prog_len and self.inflight_f == 0 and \
            self.ibuf.level == 0
        stuck = self.running and not f_cmd_valid and self.inflight_f == 0 and not ibuf_r_en

        # -- errors, deadlock, busy --
        unit_stuck = (not self.l_busy and (l_wait_token or lq.level == 0)) and \
            (compute_idle and (c_wait_token or cq.level == 0)) and \
            (not self.st_busy and (s_wait_token or sq.level == 0))
        candidate = stuck and dma_idle and unit_stuck and \
            (l_wait_token or c_wait_token or s_wait_token)
        sources = [self.f_error, self.l_error, self.c_error, self.st_error, self.r_error,
                   self.w_error, ErrorCode.DEADLOCK if self.deadlock_count == 7 else 0]
        busy = self.running or (abort and not self._quiet(compute_idle, dma_idle))
        if busy and not start:
            cnt = self.counters
            cnt["cycles"] += 1
            cnt["array_busy"] += fire
            cnt["stall_weights"] += a_valid and not a_ready
            cnt["stall_compute_token"] += c_wait_token
            cnt["stall_load_token"] += l_wait_token
            cnt["stall_store_token"] += s_wait_token
            cnt["stall_queue_full"] += f_head and stalled
        mem_inputs = (self.arvalid, self.ar, rready, self.awvalid, self.aw_len, self.w_busy,
                      self.w_beats[self.beat_w] if self.w_busy else (), True)
        pc_now = self.pc

        # ======== phase 2: registers ========
        # -- read DMA --
        if ar_fire:
            if self.ar_second_due:
                self.ar, self.ar_second_due = self.ar_second, False
            else:
                self.arvalid = False
        entry = None
        if take:
            first, nbeats, split, len1, len2, addr2, in_range = plan
            if in_range:
                self.ar, self.arvalid = (first, len1 - 1), True
                self.ar_second, self.ar_second_due = (addr2, len2 - 1), split
            elif self.r_error == 0:
                self.r_error = ErrorCode.DMA_RANGE
            entry = (cmd[1], nbeats, cmd[2], not in_range, cmd[3] if in_range else 0)
            self.prefer_load = not pick_load
        self.pending.step(take, entry, finish)
        if r_fire:
            self.bytes_read += B
            resp = mem.r_beat[1]
            if self.r_error == 0 and resp != RESP_OKAY:
                self.r_error = ErrorCode.AXI_SLVERR if resp == RESP_SLVERR else ErrorCode.AXI_DECERR
            self.beat_r = 0 if last_beat else self.beat_r + 1
        out_word = self.out_word
        if finish:
            self.out_valid, self.out_tag, self.out_word = True, p_head[2], p_head[4]
        elif rsp_ready:
            self.out_valid = False

        # -- fetch --
        restart = start and not abort and not self.running
        if restart:
            self.ibuf.reset()
        else:
            self.ibuf.step(f_rsp_valid, out_word, ibuf_r_en)
        if f_cmd_fire:
            self.issued_f += 1
        self.inflight_f = 0 if restart else self.inflight_f + f_cmd_fire - f_rsp_valid
        if f_head and fop == Opcode.HALT and units_idle:
            self.done, self.running = True, False
        if f_head and fop not in _LEGAL:
            self.f_error, self.running = ErrorCode.ILLEGAL_OPCODE, False
        if ibuf_r_en:
            self.pc += 1
        if self.running and program_over and units_idle:
            self.done, self.running = True, False
        if abort:
            self.running = False
        if restart:
            self.running, self.done, self.f_error = True, False, 0
            self.issued_f = self.pc = 0

        # -- instruction queues --
        pops = {"load": l_start, "compute": c_go, "store": s_go}
        for n, q in self.queues.items():
            w_en = f_head and mine[n]
            q.step(w_en, word, pops[n])

        # -- load unit --
        pop_c2l = False
        if l_start:
            if l_ok:
                pop_c2l = bool(l_need)
                self.l_busy, self.l_acc = True, l_to_acc
                self.l_push = bool(_flag(l_word, "push_next"))
                self.l_base, self.l_rows = l_mem_addr, l_nrows
                self.l_nbytes = 4 * l_ncols if l_to_acc else l_ncols
                self.l_addr = _f(l_word, Opcode.LOAD, "dram_addr")
                self.l_stride = _f(l_word, Opcode.LOAD, "dram_stride")
                self.l_issued = self.l_written = 0
            elif self.l_error == 0:
                self.l_error = ErrorCode.BAD_OPERAND
        if l_cmd_fire:
            self.l_issued += 1
            self.l_addr = (self.l_addr + self.l_stride) & 0xFFFFFFFF
        l2c_push = False
        if l_rsp and self.l_busy:
            ev["acc_line_writes" if self.l_acc else "sp_line_writes"] += 1
            if self.l_written == self.l_rows - 1:
                l2c_push, self.l_busy = self.l_push, False
            self.l_written += 1
        if abort and self.l_issued == self.l_written:
            self.l_busy = False

        # -- compute unit --
        pop_l2c = pop_s2c = False
        if c_go and not c_accept and self.c_error == 0:
            self.c_error = ErrorCode.BAD_OPERAND
        c2l_push = 0
        for name, s in self.streams.items():
            fifo, ready = s["fifo"], out_ready[name]
            finished = fifo.r_rdy and ready and fifo.out[1]
            c2l_push += finished and s["push"]
            fifo.step(s["inflight"], (None, s["inflight_last"]), ready)
            is_last = s["issued"] == s["total"] - 1
            s["inflight"], s["inflight_last"] = issue[name], is_last
            if issue[name]:
                ev["sp_line_reads"] += not wants[name][1]
                s["issued"] += 1
                if is_last:
                    s["issuing"] = False
            if finished or abort:
                s["busy"] = s["issuing"] = False
        if tie:
            self.sp_turn = not self.sp_turn
        entry = None
        if c_accept:
            pop_l2c, pop_s2c = bool(need_l2c), bool(need_s2c)
            push_prev = bool(_flag(c_word, "push_prev"))
            cmds = []
            if cfg.dataflow == "ws":
                self.preloads += 1 if c_is_pre else -1
                if c_is_pre:
                    cmds.append(("b", c_pre_addr, c_pre_rows, R, push_prev))
                else:
                    cmds.append(("a", c_a_addr, c_nrows, c_nrows, push_prev))
            else:
                cmds.append(("b", c_b_addr, c_nrows, c_nrows, False))
                cmds.append(("a", c_a_addr, c_nrows, c_nrows, push_prev))
            for name, base, count, total, push in cmds:
                self.streams[name].update(base=base, count=count, total=total, push=push,
                                          issued=0, busy=total != 0, issuing=total != 0)
            if not c_is_pre:
                entry = (c_acc_addr,
                         bool(_f(c_word, Opcode.COMPUTE, "accumulate")),
                         bool(_flag(c_word, "push_next")))
        self.results.step(entry is not None, entry, c_valid and c_last)
        ev["array_beats"] += fire
        ev["weight_beats"] += b_fire
        self._array_step(fire, last_fire, b_fire, c_valid)
        c2s_push = self.s_push
        ev["acc_line_reads"] += acc_r_compute
        ev["acc_line_writes"] += self.s_valid
        if c_valid:
            self.row = 0 if c_last else self.row + 1
        self.s_valid, self.s_addr = c_valid, target
        self.s_push = c_valid and c_last and head[2]

        # -- store unit --
        pop_c2s = False
        if s_go:
            if not s_ok:
                if self.st_error == 0:
                    self.st_error = ErrorCode.BAD_OPERAND
            elif not s_is_config:
                pop_c2s = bool(_flag(s_word, "pop_prev"))
                self.st_busy, self.draining = True, False
                self.st_base, self.st_rows, self.st_ncols = s_acc_addr, s_nrows, s_ncols
                self.st_raw = bool(_f(s_word, Opcode.STORE, "raw"))
                self.st_push = bool(_flag(s_word, "push_prev"))
                self.st_addr = _f(s_word, Opcode.STORE, "dram_addr")
                self.st_stride = _f(s_word, Opcode.STORE, "dram_stride")
                self.st_issued = self.st_sent = 0
        if st_issue:
            ev["acc_line_reads"] += 1
            self.st_issued += 1
        if wr_fire:
            if self.st_sent == self.st_rows - 1:
                self.draining = True
            self.st_sent += 1
            self.st_addr = (self.st_addr + self.st_stride) & 0xFFFFFFFF
        self.st_out.step(vl_out, True, wr_ready)
        self.st_inflight += st_issue - vl_out
        self.valid_line.step(self.read_valid)
        self.read_valid = st_issue
        s2c_push = False
        if st_finished:
            s2c_push = self.st_push
            self.st_busy = self.draining = False
        if abort and self.st_inflight == 0 and not wr_valid:
            self.st_busy = self.draining = False

        # -- write DMA --
        if aw_fire:
            if self.aw_second_due:
                self.aw_len, self.aw_second_due = self.aw_second_len, False
            else:
                self.awvalid = self.aw_busy = False
        if w_fire:
            self.bytes_written += B
            if w_last_beat:
                self.w_busy = False
            self.beat_w += 1
        if wr_fire:
            first, nbeats, split, len1, len2, addr2, in_range = _burst_plan(
                wr_addr, wr_nbytes, B, self.base, self.size)
            if in_range:
                self.w_beats = [((max(wr_addr, first + i * B),
                                  min(wr_addr + wr_nbytes, first + (i + 1) * B)),)
                                for i in range(nbeats)]
                self.beat_w = 0
                self.awvalid = self.aw_busy = self.w_busy = True
                self.aw_len, self.aw_second_len, self.aw_second_due = len1 - 1, len2 - 1, split
            elif self.w_error == 0:
                self.w_error = ErrorCode.DMA_RANGE
        self.outstanding += aw_fire - bresp_fire
        if bresp_fire and self.w_error == 0 and mem.b_resp != RESP_OKAY:
            self.w_error = ErrorCode.AXI_SLVERR if mem.b_resp == RESP_SLVERR \
                else ErrorCode.AXI_DECERR

        # -- tokens: saturate at 255; a pop takes one only when there is one --
        t = self.tokens
        for name, push, pop in (("l2c", l2c_push, pop_l2c), ("c2l", c2l_push, pop_c2l),
                                ("c2s", c2s_push, pop_c2s), ("s2c", s2c_push, pop_s2c)):
            t[name] = 0 if start else min(255, t[name] + push - (1 if pop and t[name] else 0))

        # -- core: first error wins; deadlock after 7 quiet cycles --
        self.deadlock_count = min(7, self.deadlock_count + 1) if candidate else 0
        if self.error == 0 and any(sources):
            self.error = next(s for s in sources if s)
            self.err_pc = pc_now

        # -- the DRAM sees this cycle's outputs at the edge --
        mem.advance_pauses()
        mem.edge(*mem_inputs)
