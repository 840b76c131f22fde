"""Cycle models of the decoupled units of :mod:`hdl.units`: tokens, fetch, load, compute, store.

Sizes, depths, limits and tags are the HDL classes' own attributes; operand checks are
:func:`hdl.isa.operands_ok`, the function the HDL decoders use.
"""

from __future__ import annotations

from functools import lru_cache

from hdl import isa
from hdl import units as hdl_units
from hdl.config import NPUConfig, os_drain_row
from hdl.dma import ADDR_MASK
from hdl.isa import ErrorCode, Opcode
from hdl.requant import LATENCY as REQUANT_LATENCY

from .array import ArrayTiming
from .base import Delay, Fifo
from .dma import ReadCmd
from .streamer import LineStreamer, StreamCmd

__all__ = ["TokenCounter", "FetchUnit", "LoadUnit", "ComputeUnit", "StoreUnit", "QUEUE_OPS",
           "TAG_FETCH", "TAG_LOAD"]

TAG_FETCH, TAG_LOAD = hdl_units.TAG_FETCH, hdl_units.TAG_LOAD
#: The opcodes each unit's queue takes, from the ISA's own table.
QUEUE_OPS = {q: frozenset(op for op, which in isa.QUEUE_OF.items() if which == q)
             for q in (isa.Queue.LOAD, isa.Queue.COMPUTE, isa.Queue.STORE)}
#: Queue of each opcode handled by a unit (HALT and SYNC stay in fetch).
QUEUE_OF_CODE = {int(op): q for q, ops in QUEUE_OPS.items() for op in ops}
_LEGAL = frozenset(int(op) for op in Opcode)
# Bit positions from the ISA, precomputed for the model's inner loop.
_OPCODE_MASK = (1 << isa.OPCODE_BITS) - 1
_FLAG_SHIFT = {name: isa.FLAG_LSB + i for i, name in enumerate(isa.FLAGS)}


@lru_cache(maxsize=1 << 14)
def fields(word: int, op: Opcode) -> dict:
    """Every field of ``op`` as the hardware slices it from ``word`` (cached: programs
    repeat their words)."""
    f = isa.Fields(word, op)
    return {name: f[name] for name in isa.FIELDS[op]}


def flag(word: int, name: str) -> bool:
    """:func:`hdl.isa.flag_bit` for ints, on the model's hot path."""
    return bool((word >> _FLAG_SHIFT[name]) & 1)


def opcode(word: int) -> int:
    """:func:`hdl.isa.opcode_bits` for ints."""
    return word & _OPCODE_MASK


class _OperandRule:
    """:func:`hdl.isa.operands_ok` for one configuration, remembered per word (a program
    repeats its words; the configuration is not hashed on every call)."""

    def __init__(self, cfg: NPUConfig):
        self.cfg, self.known = cfg, {}

    def __call__(self, op: Opcode, word: int, preloads: int = 0) -> bool:
        key = (op, word, preloads)
        ok = self.known.get(key)
        if ok is None:
            ok = self.known[key] = bool(isa.operands_ok(self.cfg, op, fields(word, op),
                                                         preloads))
        return ok


class TokenCounter:
    """:class:`hdl.units.TokenCounter`: ``avail``; ``clock(push, pop, clear)`` (``clear``:
    START, which resets the counters)."""

    LIMIT = hdl_units.TokenCounter.LIMIT

    def __init__(self):
        self.count = 0

    @property
    def avail(self) -> bool:
        return self.count != 0

    def clock(self, push: int, pop: bool, clear: bool = False):
        taken = 1 if pop and self.count else 0
        self.count = 0 if clear else min(self.LIMIT, self.count + push - taken)


class FetchUnit:
    """:class:`hdl.units.FetchUnit`: fetches through the read DMA, dispatches in order."""

    IBUF_DEPTH = hdl_units.FetchUnit.IBUF_DEPTH

    def __init__(self):
        self.running = self.done = False
        self.error = self.pc = self.issued = self.inflight = 0
        self.ibuf = Fifo(self.IBUF_DEPTH)

    # -- combinational ----------------------------------------------------------------------
    def rd_cmd_valid(self, abort: bool, prog_len: int) -> bool:
        return (self.running and self.issued < prog_len and not abort
                and self.ibuf.level + self.inflight < self.IBUF_DEPTH)

    def rd_cmd(self, prog_addr: int, program) -> ReadCmd:
        i = self.issued
        return ReadCmd(prog_addr + isa.INSN_BYTES * i, isa.INSN_BYTES, TAG_FETCH,
                       program[i] if i < len(program) else 0)

    def head(self, abort: bool) -> bool:
        return self.ibuf.r_rdy and self.running and not abort

    @property
    def word(self) -> int:
        return self.ibuf.out if self.ibuf.r_rdy else 0

    def dest(self, abort: bool):
        """The queue the head word goes to this cycle (``None``: no head, or HALT/SYNC)."""
        return QUEUE_OF_CODE.get(opcode(self.word)) if self.head(abort) else None

    def queue_valid(self, queue: isa.Queue, abort: bool) -> bool:
        return self.dest(abort) == queue

    def ibuf_r_en(self, abort: bool, q_ready: dict, units_idle: bool) -> bool:
        if not self.head(abort):
            return False
        dest = QUEUE_OF_CODE.get(opcode(self.word))
        if dest is not None:
            return q_ready[dest]
        return opcode(self.word) == Opcode.SYNC and units_idle

    def stall_queue_full(self, abort: bool, q_ready: dict) -> bool:
        dest = self.dest(abort)
        return dest is not None and not q_ready[dest]

    def stuck(self, abort: bool, prog_len: int, q_ready: dict, units_idle: bool) -> bool:
        return (self.running and not self.rd_cmd_valid(abort, prog_len) and self.inflight == 0
                and not self.ibuf_r_en(abort, q_ready, units_idle))

    # -- registers --------------------------------------------------------------------------
    def clock(self, start: bool, abort: bool, prog_len: int, rd_cmd_ready: bool,
              rsp_valid: bool, rsp_word: int, q_ready: dict, units_idle: bool):
        restart = start and not self.running
        cmd_fire = self.rd_cmd_valid(abort, prog_len) and rd_cmd_ready
        head, op = self.head(abort), opcode(self.word)
        r_en = self.ibuf_r_en(abort, q_ready, units_idle)
        program_over = self.pc == prog_len and self.inflight == 0 and self.ibuf.level == 0
        running = self.running
        if restart:
            self.ibuf.reset()
        else:
            self.ibuf.clock(rsp_valid, rsp_word, r_en)
        if cmd_fire:
            self.issued += 1
        self.inflight = 0 if restart else self.inflight + cmd_fire - rsp_valid
        if head and op == Opcode.HALT and units_idle:
            self.done, self.running = True, False
        if head and op not in _LEGAL:
            self.error, self.running = ErrorCode.ILLEGAL_OPCODE, False
        if r_en:
            self.pc += 1
        if running and program_over and units_idle:
            self.done, self.running = True, False
        if abort:
            self.running = False
        if restart:
            self.running, self.done, self.error = True, False, 0
            self.issued = self.pc = 0


class LoadUnit:
    """:class:`hdl.units.LoadUnit`: LOAD / LOAD_ACC, one row command per cycle."""

    def __init__(self, cfg: NPUConfig):
        self.cfg, self._ok = cfg, _OperandRule(cfg)
        self.busy = self.acc = self.push = False
        self.base = self.rows = self.nbytes = self.addr = self.stride = 0
        self.issued = self.written = 0
        self.error = 0

    # -- combinational ----------------------------------------------------------------------
    def _ready_to_start(self, word: int, c2l_avail: bool) -> bool:
        return (not flag(word, "pop_next")) or c2l_avail

    def start(self, word: int | None, c2l_avail: bool, abort: bool) -> bool:
        """``insn.ready``: the head instruction is taken this cycle."""
        return (word is not None and not self.busy and not abort
                and self._ready_to_start(word, c2l_avail))

    def wait_token(self, word: int | None, c2l_avail: bool) -> bool:
        return word is not None and not self.busy and not self._ready_to_start(word, c2l_avail)

    def c2l_pop(self, word: int | None, c2l_avail: bool, abort: bool) -> bool:
        return (self.start(word, c2l_avail, abort) and flag(word, "pop_next")
                and self._ok(Opcode(opcode(word)), word))

    def l2c_push(self, rsp_valid: bool, mem_ready: bool) -> bool:
        rsp = rsp_valid and self.rsp_ready(mem_ready) and self.busy
        return rsp and self.written == self.rows - 1 and self.push

    def rd_cmd_valid(self, abort: bool) -> bool:
        return self.busy and self.issued != self.rows and not abort

    def rd_cmd(self) -> ReadCmd:
        return ReadCmd(self.addr, self.nbytes, TAG_LOAD)

    def rsp_ready(self, mem_ready: bool) -> bool:
        """``rd_rsp.ready``; ``mem_ready``: the target memory's write port is granted."""
        return (not self.busy) or mem_ready

    @property
    def mem_addr(self) -> int:
        """The write port's address (as wide as the target memory's address)."""
        depth = self.cfg.acc_lines if self.acc else self.cfg.sp_lines
        return (self.base + self.written) % depth

    def mem_en(self, rsp_valid: bool) -> bool:
        return rsp_valid and self.busy

    @property
    def idle(self) -> bool:
        return not self.busy

    # -- registers --------------------------------------------------------------------------
    def clock(self, word: int | None, c2l_avail: bool, abort: bool, rd_cmd_ready: bool,
              rsp_valid: bool, mem_ready: bool) -> tuple[bool, bool]:
        """Returns ``(c2l pop, l2c push)`` of this cycle."""
        pop = self.c2l_pop(word, c2l_avail, abort)
        push = self.l2c_push(rsp_valid, mem_ready)
        cmd_fire = self.rd_cmd_valid(abort) and rd_cmd_ready
        rsp = rsp_valid and self.rsp_ready(mem_ready) and self.busy
        last_row = rsp and self.written == self.rows - 1
        drained = self.issued == self.written
        if self.start(word, c2l_avail, abort):
            op = Opcode(opcode(word))
            if self._ok(op, word):
                f = fields(word, Opcode.LOAD)
                self.busy, self.acc = True, op == Opcode.LOAD_ACC
                self.push = flag(word, "push_next")
                self.base, self.rows = f["sp_addr"], f["nrows"]
                self.nbytes = 4 * f["ncols"] if self.acc else f["ncols"]
                self.addr, self.stride = f["dram_addr"], f["dram_stride"]
                self.issued = self.written = 0
            elif self.error == 0:
                self.error = ErrorCode.BAD_OPERAND
        if cmd_fire:
            self.issued += 1
            self.addr = (self.addr + self.stride) & ADDR_MASK
        if rsp:
            self.written += 1
        if last_row:
            self.busy = False
        if abort and drained:
            self.busy = False
        return pop, push


class ComputeUnit:
    """:class:`hdl.units.ComputeUnit`: PRELOAD / COMPUTE through two line streamers and the
    array into the accumulator.  ``a`` and ``b`` are the streamers; their scratchpad port
    requests (``port_en``/``port_addr``) go to the scratchpad's arbiter, whose grants come
    back to :meth:`clock`."""

    RESULT_QUEUE = hdl_units.ComputeUnit.RESULT_QUEUE

    def __init__(self, cfg: NPUConfig):
        self.cfg, self._ok = cfg, _OperandRule(cfg)
        self._memo = None           # the array's handshakes, computed once per cycle
        self.a, self.b = LineStreamer(cfg.sp_lines), LineStreamer(cfg.sp_lines)
        self.array = ArrayTiming(cfg)
        self.results = Fifo(self.RESULT_QUEUE)   # (acc_addr, accumulate, push) per COMPUTE
        self.preloads = 0
        self.row = 0
        self.s_valid = self.s_push = False
        self.s_addr = 0
        self.error = 0

    # -- dispatch ---------------------------------------------------------------------------
    def _tokens_ok(self, word: int, l2c_avail: bool, s2c_avail: bool) -> bool:
        return (((not flag(word, "pop_prev")) or l2c_avail)
                and ((not flag(word, "pop_next")) or s2c_avail))

    def _ops_ok(self, word: int) -> bool:
        op = Opcode.PRELOAD if opcode(word) == Opcode.PRELOAD else Opcode.COMPUTE
        return self._ok(op, word, self.preloads)

    def _resources_ok(self, is_preload: bool) -> bool:
        if self.cfg.dataflow == "ws":
            return self.b.cmd_ready if is_preload else \
                self.a.cmd_ready and self.results.w_rdy
        return self.a.cmd_ready and self.b.cmd_ready and self.results.w_rdy

    def go(self, word: int | None, l2c_avail: bool, s2c_avail: bool, abort: bool) -> bool:
        """``insn.ready``: the head instruction leaves the queue (accepted or refused)."""
        if word is None or abort or not self._tokens_ok(word, l2c_avail, s2c_avail):
            return False
        return self._resources_ok(opcode(word) == Opcode.PRELOAD) or not self._ops_ok(word)

    def wait_token(self, word: int | None, l2c_avail: bool, s2c_avail: bool) -> bool:
        return word is not None and not self._tokens_ok(word, l2c_avail, s2c_avail)

    def pops(self, word: int | None, l2c_avail: bool, s2c_avail: bool,
             abort: bool) -> tuple[bool, bool]:
        """``(l2c.pop, s2c.pop)``: tokens taken by the instruction accepted this cycle."""
        accept = self.go(word, l2c_avail, s2c_avail, abort) and self._ops_ok(word)
        return accept and flag(word, "pop_prev"), accept and flag(word, "pop_next")

    # -- array side -------------------------------------------------------------------------
    def _array_in(self):
        return self.a.out_valid, self.a.out_last, self.b.out_valid

    def _handshakes(self):
        """``(a_ready, b_ready, (a_fire, last_fire, b_fire))`` of this cycle."""
        if self._memo is None:
            array_in = self._array_in()
            self._memo = (*self.array.ready(*array_in), self.array.fires(*array_in))
        return self._memo

    def out_ready(self) -> tuple[bool, bool]:
        """The array's ``a.ready`` and ``b.ready``: the streamers' ``out.ready``."""
        return self._handshakes()[:2]

    def fires(self):
        return self._handshakes()[2]

    @property
    def array_busy(self) -> bool:
        return self.fires()[0]

    @property
    def stall_weights(self) -> bool:
        return self.a.out_valid and not self.out_ready()[0]

    def c2l_push(self) -> int:
        a_ready, b_ready = self.out_ready()
        return self.a.done_push(a_ready) + self.b.done_push(b_ready)

    @property
    def c2s_push(self) -> bool:
        return self.s_push

    def _target(self) -> int:
        head = self.results.out
        beat = self.row if self.cfg.dataflow == "ws" else os_drain_row(self.row, self.cfg.rows)
        return ((head[0] if head is not None else 0) + beat) % self.cfg.acc_lines

    def acc_r(self) -> tuple[bool, int]:
        """The read half of the accumulate read-modify-write: ``(en, addr)``."""
        valid = self.array.c_out()[0]
        head = self.results.out
        return valid and head is not None and head[1], self._target()

    def acc_w(self) -> tuple[bool, int]:
        return self.s_valid, self.s_addr

    @property
    def idle(self) -> bool:
        return (self.a.cmd_ready and self.b.cmd_ready and self.results.level == 0
                and self.array.idle(*self._array_in()) and not self.s_valid)

    # -- registers --------------------------------------------------------------------------
    def _stream_cmds(self, word: int):
        f, R = fields(word, Opcode.COMPUTE), self.cfg.rows
        push = flag(word, "push_prev")
        if opcode(word) == Opcode.PRELOAD:
            p = fields(word, Opcode.PRELOAD)
            return None, StreamCmd(p["sp_addr"], p["nrows"], R, push)
        a = StreamCmd(f["a_addr"], f["nrows"], f["nrows"], push)
        if self.cfg.dataflow == "ws":
            return a, None
        return a, StreamCmd(f["b_addr"], f["nrows"], f["nrows"], False)

    def clock(self, word: int | None, l2c_avail: bool, s2c_avail: bool, abort: bool,
              port_ready: tuple[bool, bool]) -> tuple[bool, bool]:
        """``port_ready``: the scratchpad's grants of the a and b ports.  Returns the
        ``(l2c pop, s2c pop)`` of this cycle."""
        go = self.go(word, l2c_avail, s2c_avail, abort)
        accept = go and self._ops_ok(word)
        a_ready, b_ready = self.out_ready()
        c_valid, c_last = self.array.c_out()
        _, target = self.acc_r()
        head = self.results.out
        array_in = self._array_in()
        self._memo = None
        if go and not accept and self.error == 0:
            self.error = ErrorCode.BAD_OPERAND
        cmd_a = cmd_b = None
        entry = None
        if accept:
            cmd_a, cmd_b = self._stream_cmds(word)
            is_preload = opcode(word) == Opcode.PRELOAD
            if self.cfg.dataflow == "ws":
                self.preloads += 1 if is_preload else -1
            if not is_preload:
                entry = (fields(word, Opcode.COMPUTE)["acc_addr"],
                         bool(fields(word, Opcode.COMPUTE)["accumulate"]),
                         flag(word, "push_next"))
        self.a.clock(cmd_a, port_ready[0], a_ready, abort)
        self.b.clock(cmd_b, port_ready[1], b_ready, abort)
        self.results.clock(entry is not None, entry, c_valid and c_last)
        self.array.clock(*array_in)
        if c_valid:
            self.row = 0 if c_last else self.row + 1
        self.s_valid, self.s_addr = c_valid, target
        self.s_push = c_valid and c_last and head is not None and head[2]
        return (accept and flag(word, "pop_prev"), accept and flag(word, "pop_next"))


class StoreUnit:
    """:class:`hdl.units.StoreUnit`: CONFIG and STORE (accumulator -> requantizer -> out
    FIFO -> write DMA, or with ``to_sp`` -> the scratchpad's second write port)."""

    OUT_FIFO = hdl_units.StoreUnit.OUT_FIFO

    def __init__(self, cfg: NPUConfig):
        self.cfg, self._ok = cfg, _OperandRule(cfg)
        self.busy = self.raw = self.push = self.draining = self.to_sp = False
        self.base = self.rows = self.ncols = self.addr = self.stride = 0
        self.issued = self.sent = 0
        self.out = Fifo(self.OUT_FIFO)
        self.inflight = 0
        self.read_valid = False
        self.valid_line = Delay(REQUANT_LATENCY, False)
        self.error = 0

    # -- combinational ----------------------------------------------------------------------
    def _ops_ok(self, word: int) -> bool:
        op = Opcode.CONFIG if opcode(word) == Opcode.CONFIG else Opcode.STORE
        return self._ok(op, word)

    def _tokens_ok(self, word: int, c2s_avail: bool) -> bool:
        return (not flag(word, "pop_prev")) or c2s_avail

    def go(self, word: int | None, c2s_avail: bool, abort: bool) -> bool:
        return (word is not None and not self.busy and not abort
                and (self._tokens_ok(word, c2s_avail) or not self._ops_ok(word)))

    def wait_token(self, word: int | None, c2s_avail: bool) -> bool:
        return word is not None and not self.busy and not self._tokens_ok(word, c2s_avail)

    def c2s_pop(self, word: int | None, c2s_avail: bool, abort: bool) -> bool:
        return (self.go(word, c2s_avail, abort) and self._ops_ok(word)
                and opcode(word) != Opcode.CONFIG and flag(word, "pop_prev"))

    def acc_en(self, abort: bool) -> bool:
        """The accumulator read wanted this cycle (granted unless compute has the bank)."""
        room = self.out.level + self.inflight < self.OUT_FIFO
        return (self.busy and not self.draining and self.issued != self.rows and room
                and not abort)

    @property
    def acc_addr(self) -> int:
        return (self.base + self.issued) % self.cfg.acc_lines

    @property
    def wr_cmd_valid(self) -> bool:
        return self.out.r_rdy and not self.to_sp

    @property
    def sp_en(self) -> bool:
        """The scratchpad write wanted this cycle (``to_sp``; granted unless the load unit
        writes the same bank)."""
        return self.out.r_rdy and self.to_sp

    @property
    def sp_addr(self) -> int:
        return self.addr % self.cfg.sp_lines

    def wr_cmd(self) -> tuple[int, int]:
        return self.addr, (4 * self.ncols if self.raw else self.ncols)

    def s2c_push(self, writer_idle: bool) -> bool:
        return self.busy and self.draining and writer_idle and self.push

    @property
    def idle(self) -> bool:
        return not self.busy

    # -- registers --------------------------------------------------------------------------
    def clock(self, word: int | None, c2s_avail: bool, abort: bool, acc_ready: bool,
              wr_ready: bool, writer_idle: bool, sp_ready: bool) -> bool:
        """Returns the c2s pop of this cycle."""
        go = self.go(word, c2s_avail, abort)
        issue = self.acc_en(abort) and acc_ready
        out_ready = sp_ready if self.to_sp else wr_ready
        wr_fire = self.out.r_rdy and out_ready
        vl_out = self.valid_line.o(self.read_valid)
        finished = self.busy and self.draining and writer_idle
        quiet = self.inflight == 0 and not self.out.r_rdy
        pop = self.c2s_pop(word, c2s_avail, abort)
        if go:
            if not self._ops_ok(word):
                if self.error == 0:
                    self.error = ErrorCode.BAD_OPERAND
            elif opcode(word) != Opcode.CONFIG:
                f = fields(word, Opcode.STORE)
                self.busy, self.draining = True, False
                self.base, self.rows, self.ncols = f["acc_addr"], f["nrows"], f["ncols"]
                self.raw, self.push = bool(f["raw"]), flag(word, "push_prev")
                self.to_sp = bool(f["to_sp"])
                self.addr, self.stride = f["dram_addr"], f["dram_stride"]
                self.issued = self.sent = 0
        if issue:
            self.issued += 1
        if wr_fire:
            if self.sent == self.rows - 1:
                self.draining = True
            self.sent += 1
            self.addr = (self.addr + self.stride) & ADDR_MASK
        self.out.clock(vl_out, True, out_ready)
        self.inflight += issue - vl_out
        self.valid_line.clock(self.read_valid)
        self.read_valid = issue
        if finished:
            self.busy = self.draining = False
        if abort and quiet:
            self.busy = self.draining = False
        return pop
