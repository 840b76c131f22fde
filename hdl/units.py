"""The decoupled units of the core (the VTA scheme): fetch, load, compute, store.

Each unit takes instructions from its own queue in order.  Dependencies between units are
explicit tokens, counted by :class:`TokenCounter`; a unit that must pop a token waits for
it before starting an instruction, and pushes tokens when the instruction's effect is
complete (load: every line written; compute: every result row written to the accumulator,
or, towards load, every scratchpad line read; store: every write acknowledged).
"""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal, signed
from amaranth.hdl import ResetInserter
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from . import isa
from .array import SystolicArray
from .config import WEIGHT_BANKS, NPUConfig, os_drain_row
from .dma import read_cmd_layout, read_rsp_layout, write_cmd_layout
from .isa import ErrorCode, Opcode
from .memories import read_port_signature, write_port_signature
from .pipeline import DelayLine
from .requant import LATENCY as REQUANT_LATENCY
from .requant import Requantizer
from .streamer import LineStreamer

__all__ = ["TokenCounter", "FetchUnit", "LoadUnit", "ComputeUnit", "StoreUnit",
           "TAG_FETCH", "TAG_LOAD", "read_max_bytes"]

TAG_FETCH, TAG_LOAD = 0, 1
INSN = isa.INSN_BITS


def read_max_bytes(cfg: NPUConfig) -> int:
    """Longest row the read DMA moves: a scratchpad line, an int32 accumulator row, or an
    instruction."""
    return max(cfg.sp_width, 4 * cfg.cols, isa.INSN_BYTES)


def _field(word, op, name):
    """Slice one ISA field out of an instruction word (signed fields as signed values)."""
    f = isa.field(op, name)
    bits = word[f.lsb:f.lsb + f.width]
    return bits.as_signed() if f.signed else bits


def _flag(word, name):
    return isa.flag_bit(word, name)


def insn_stream() -> stream.Signature:
    return stream.Signature(INSN)


class TokenCounter(wiring.Component):
    """Dependency tokens from one unit to another: pushes add, a pop takes one.  Saturates at
    ``limit`` rather than wrapping, so a program that pushes more than it ever pops cannot
    turn a full count into none.

    Attributes
    ----------
    push : In(2)
        Tokens given this cycle (the compute unit can finish two streams at once).
    pop : In(1)
        Take one token; ignored (nothing taken) while ``avail`` is low.
    avail : Out(1)
        At least one token; combinational from ``count``.
    count : Out(range(limit + 1))
        Tokens held; the pushes and pop of a cycle show in the next.
    """

    #: Highest count; pushes beyond it are dropped (saturation).
    LIMIT = 255

    def __init__(self, limit: int = LIMIT):
        self.limit = limit
        super().__init__({"push": In(2), "pop": In(1), "avail": Out(1),
                          "count": Out(range(limit + 1))})

    def elaborate(self, platform):
        m = Module()
        nxt = Signal(range(self.limit + 3))
        m.d.comb += [nxt.eq(self.count + self.push - (self.pop & self.avail)),
                     self.avail.eq(self.count != 0)]
        m.d.sync += self.count.eq(Mux(nxt > self.limit, self.limit, nxt))
        return m


def _token_port():
    """A unit's view of one token counter: pop side (avail/pop) or push side."""
    return {"avail": In(1), "pop": Out(1)}


class FetchUnit(wiring.Component):
    """Fetches the program over the read DMA, decodes opcodes and dispatches in order to the
    load, compute and store queues; handles SYNC and HALT itself.

    Attributes
    ----------
    start : In(1)
        Pulse: run the program at ``prog_addr`` (``prog_len`` words); ignored while running.
    abort : In(1)
        The core has an error: stop fetching and dispatching (``running`` falls next cycle).
    rd_cmd : Out(stream), read command layout
        One instruction word per command (tag ``TAG_FETCH``), at most :attr:`IBUF_DEPTH`
        words fetched and not yet dispatched.
    rd_rsp : In(stream)
        The words, in order; always accepted (``ready`` is 1: room was reserved).
    load_q, compute_q, store_q : Out(stream of 128-bit words)
        The head word goes to its unit's queue; ``valid`` only for its opcodes.
    units_idle : In(1)
        Every queue empty and every unit and DMA engine idle: SYNC and HALT wait for it.
    running, done : Out(1)
        Registered.  ``done`` rises when HALT (or the end of the program) is reached with
        ``units_idle``, and stays until the next ``start``.
    error : Out(3)
        ``ILLEGAL_OPCODE`` once an undefined opcode reaches the head; 0 otherwise.
    pc : Out(32)
        Instructions dispatched since ``start``.
    stall_queue_full : Out(1)
        The head waits for a full queue (a performance event).
    stuck : Out(1)
        Running, but can neither fetch nor dispatch and nothing is on its way (the
        deadlock detector's view of fetch).
    """

    IBUF_DEPTH = 4

    def __init__(self, cfg: NPUConfig):
        self.cfg = cfg
        rmax = read_max_bytes(cfg)
        super().__init__({
            "start": In(1), "abort": In(1), "prog_addr": In(32), "prog_len": In(32),
            "rd_cmd": Out(stream.Signature(read_cmd_layout(rmax, 2))),
            "rd_rsp": In(stream.Signature(read_rsp_layout(rmax, 2))),
            "load_q": Out(insn_stream()), "compute_q": Out(insn_stream()),
            "store_q": Out(insn_stream()),
            "units_idle": In(1),  # every queue empty and every unit idle
            "running": Out(1), "done": Out(1), "error": Out(3), "pc": Out(32),
            "stall_queue_full": Out(1),
            "stuck": Out(1),  # can neither fetch nor dispatch, and nothing is on its way
        })

    def elaborate(self, platform):
        m = Module()
        # START empties the buffer: a program's HALT stays in it (HALT is never popped).
        ibuf = fifo.SyncFIFOBuffered(width=INSN, depth=self.IBUF_DEPTH)
        restart = self.start & ~self.running
        m.submodules.ibuf = ResetInserter({"sync": restart})(ibuf)
        issued = Signal(32)
        inflight = Signal(range(self.IBUF_DEPTH + 1))

        fetching = self.running & (issued < self.prog_len) & ~self.abort
        room = (ibuf.level + inflight) < self.IBUF_DEPTH
        m.d.comb += [
            self.rd_cmd.valid.eq(fetching & room),
            self.rd_cmd.payload.addr.eq(self.prog_addr + issued * isa.INSN_BYTES),
            self.rd_cmd.payload.nbytes.eq(isa.INSN_BYTES),
            self.rd_cmd.payload.tag.eq(TAG_FETCH),
        ]
        cmd_fire = self.rd_cmd.valid & self.rd_cmd.ready
        with m.If(cmd_fire):
            m.d.sync += issued.eq(issued + 1)
        m.d.comb += [
            self.rd_rsp.ready.eq(1),
            ibuf.w_data.eq(self.rd_rsp.payload.data[:INSN]),
            ibuf.w_en.eq(self.rd_rsp.valid),
        ]
        m.d.sync += inflight.eq(Mux(restart, 0, inflight + cmd_fire - self.rd_rsp.valid))

        word = ibuf.r_data
        opcode = isa.opcode_bits(word)
        for q in (self.load_q, self.compute_q, self.store_q):
            m.d.comb += q.payload.eq(word)
        head = ibuf.r_rdy & self.running & ~self.abort
        program_over = (self.pc == self.prog_len) & (inflight == 0) & (ibuf.level == 0)

        # Routing is plain logic (no comb processes: see test_verilog_has_no_comb_process...).
        targets = {isa.Queue.LOAD: self.load_q, isa.Queue.COMPUTE: self.compute_q,
                   isa.Queue.STORE: self.store_q}
        routes = [(q, [op for op, queue in isa.QUEUE_OF.items() if queue == which])
                  for which, q in targets.items()]
        taken, stalled = [], []
        for q, ops in routes:
            mine = Cat(*[opcode == op for op in ops]).any()
            m.d.comb += q.valid.eq(head & mine)
            taken.append(mine & q.ready)
            stalled.append(mine & ~q.ready)
        is_sync = opcode == Opcode.SYNC
        is_halt = opcode == Opcode.HALT
        legal = Cat(*[opcode == op for op in Opcode]).any()
        m.d.comb += [
            ibuf.r_en.eq(head & (Cat(*taken).any() | (is_sync & self.units_idle))),
            self.stall_queue_full.eq(head & Cat(*stalled).any()),
        ]
        with m.If(head & is_halt & self.units_idle):
            m.d.sync += [self.done.eq(1), self.running.eq(0)]
        with m.If(head & ~legal):
            m.d.sync += [self.error.eq(ErrorCode.ILLEGAL_OPCODE), self.running.eq(0)]
        m.d.comb += self.stuck.eq(self.running & ~self.rd_cmd.valid & (inflight == 0) &
                                  ~ibuf.r_en)
        with m.If(ibuf.r_en):
            m.d.sync += self.pc.eq(self.pc + 1)
        with m.If(self.running & program_over & self.units_idle):
            m.d.sync += [self.done.eq(1), self.running.eq(0)]  # no HALT: end of program
        with m.If(self.abort):
            m.d.sync += self.running.eq(0)
        with m.If(self.start & ~self.running):
            m.d.sync += [self.running.eq(1), self.done.eq(0), self.error.eq(0),
                         issued.eq(0), self.pc.eq(0)]
        return m


class LoadUnit(wiring.Component):
    """LOAD (DRAM -> scratchpad) and LOAD_ACC (DRAM -> accumulator): 2-D strided rows.

    Attributes
    ----------
    insn : In(stream of 128-bit words)
        Taken (``ready``) when idle and its ``pop_next`` token is there; an instruction whose
        operands break :func:`hdl.isa.operands_ok` is taken and raises ``BAD_OPERAND``.
    abort : In(1)
        Stop issuing; the unit goes idle once every issued row has come back.
    rd_cmd : Out(stream)
        One command per row (tag ``TAG_LOAD``): ``addr`` advances by the stride.
    rd_rsp : In(stream)
        The rows, in order; ``ready`` while the target memory's write port is granted.
    sp, acc : Out(write port)
        One line per response, in the cycle it is accepted, to consecutive lines.
    c2l : Out(token port)
        Pops a token from compute when the instruction is taken (``pop_next``).
    l2c_push : Out(1)
        With the last line's write, if ``push_next``.
    idle : Out(1)
        No instruction in progress.
    error : Out(3)
        ``BAD_OPERAND``, sticky until reset.
    wait_token : Out(1)
        An instruction waits for its token (a performance event).
    """

    def __init__(self, cfg: NPUConfig):
        self.cfg = cfg
        rmax = read_max_bytes(cfg)
        super().__init__({
            "insn": In(insn_stream()), "abort": In(1),
            "rd_cmd": Out(stream.Signature(read_cmd_layout(rmax, 2))),
            "rd_rsp": In(stream.Signature(read_rsp_layout(rmax, 2))),
            "sp": Out(write_port_signature(8 * cfg.sp_width, cfg.sp_lines)),
            "acc": Out(write_port_signature(32 * cfg.cols, cfg.acc_lines)),
            "c2l": Out(wiring.Signature(_token_port())),
            "l2c_push": Out(1),
            "idle": Out(1), "error": Out(3), "wait_token": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        word = self.insn.payload
        op = isa.opcode_bits(word)
        to_acc = op == Opcode.LOAD_ACC
        mem_addr = Mux(to_acc, _field(word, Opcode.LOAD_ACC, "acc_addr"),
                       _field(word, Opcode.LOAD, "sp_addr"))
        nrows = _field(word, Opcode.LOAD, "nrows")
        ncols = _field(word, Opcode.LOAD, "ncols")
        valid_operands = Mux(to_acc,
                             isa.operands_ok(cfg, Opcode.LOAD_ACC, isa.Fields(word, Opcode.LOAD_ACC)),
                             isa.operands_ok(cfg, Opcode.LOAD, isa.Fields(word, Opcode.LOAD)))
        need_token = _flag(word, "pop_next")
        ready_to_start = ~need_token | self.c2l.avail

        busy = Signal()
        r_acc, r_push = Signal(), Signal()
        r_base = Signal(16)
        r_rows = Signal(16)
        r_nbytes = Signal(range(read_max_bytes(cfg) + 1))
        r_addr, r_stride = Signal(32), Signal(32)
        issued, written = Signal(16), Signal(16)

        start = self.insn.valid & ~busy & ~self.abort & ready_to_start
        m.d.comb += [self.insn.ready.eq(start), self.wait_token.eq(
            self.insn.valid & ~busy & ~ready_to_start)]
        m.d.comb += self.c2l.pop.eq(start & valid_operands & need_token)
        with m.If(start):
            with m.If(valid_operands):
                m.d.sync += [
                    busy.eq(1), r_acc.eq(to_acc), r_push.eq(_flag(word, "push_next")),
                    r_base.eq(mem_addr), r_rows.eq(nrows),
                    r_nbytes.eq(Mux(to_acc, ncols << 2, ncols)),
                    r_addr.eq(_field(word, Opcode.LOAD, "dram_addr")),
                    r_stride.eq(_field(word, Opcode.LOAD, "dram_stride")),
                    issued.eq(0), written.eq(0),
                ]
            with m.Elif(self.error == 0):
                m.d.sync += self.error.eq(ErrorCode.BAD_OPERAND)

        m.d.comb += [
            self.rd_cmd.valid.eq(busy & (issued != r_rows) & ~self.abort),
            self.rd_cmd.payload.addr.eq(r_addr), self.rd_cmd.payload.nbytes.eq(r_nbytes),
            self.rd_cmd.payload.tag.eq(TAG_LOAD),
        ]
        with m.If(self.rd_cmd.valid & self.rd_cmd.ready):
            m.d.sync += [issued.eq(issued + 1), r_addr.eq(r_addr + r_stride)]

        # A response is taken when its memory bank is free (always, outside an instruction:
        # stray responses after an abort are dropped).
        m.d.comb += self.rd_rsp.ready.eq(~busy | Mux(r_acc, self.acc.ready, self.sp.ready))
        rsp = self.rd_rsp.valid & self.rd_rsp.ready
        m.d.comb += [
            self.sp.addr.eq(r_base + written), self.sp.data.eq(self.rd_rsp.payload.data),
            self.sp.en.eq(self.rd_rsp.valid & busy & ~r_acc),
            self.acc.addr.eq(r_base + written), self.acc.data.eq(self.rd_rsp.payload.data),
            self.acc.en.eq(self.rd_rsp.valid & busy & r_acc),
        ]
        last_row = rsp & busy & (written == r_rows - 1)
        m.d.comb += self.l2c_push.eq(last_row & r_push)
        with m.If(rsp & busy):
            m.d.sync += written.eq(written + 1)
        with m.If(last_row):
            m.d.sync += busy.eq(0)
        with m.If(self.abort & (issued == written)):
            m.d.sync += busy.eq(0)
        m.d.comb += self.idle.eq(~busy)
        return m


class ComputeUnit(wiring.Component):
    """PRELOAD and COMPUTE: scratchpad lines through the systolic array into the accumulator.

    Weights (PRELOAD, or B in OS) and activations stream from two scratchpad ports at once,
    so the next tile's weights load while the current tile computes.  Results are written
    (or added, or the larger of the two kept: read-modify-write) to accumulator lines as
    they leave the array.

    Attributes
    ----------
    insn : In(stream of 128-bit words)
        Taken when its tokens are there and its streamer (and, for COMPUTE, a result-queue
        entry, :attr:`RESULT_QUEUE` in flight) is free; bad operands are taken and raise
        ``BAD_OPERAND``.  Several instructions overlap.
    abort : In(1)
        Stop taking instructions and reading; what is inside the array drains.
    sp_a, sp_b : Out(read port)
        Activation (A) and weight/B lines, one per cycle each while the streamers have room;
        a refused read (``ready`` low) is retried.
    acc_r, acc_w : Out(read and write port)
        The read-modify-write of each result row: the read with the row leaving the array
        (when accumulating), the write one cycle later.  They never wait: the accumulator
        gives them priority.
    l2c, s2c : Out(token port)
        Popped when an instruction is taken (``pop_prev``: from load; ``pop_next``: from
        store).
    c2l_push : Out(2)
        One per streamer whose command asked (``push_prev``), with its last line read.
    c2s_push : Out(1)
        With the write of a COMPUTE's last result row, if ``push_next``.
    idle : Out(1)
        Nothing queued, streaming, in the array or being written.
    error : Out(3)
    array_busy, stall_weights, wait_token : Out(1)
        Performance events: an activation row entered the array; activations wait for
        weights; an instruction waits for a token.
    """

    RESULT_QUEUE = 8

    def __init__(self, cfg: NPUConfig):
        self.cfg = cfg
        line = 8 * cfg.sp_width
        super().__init__({
            "insn": In(insn_stream()), "abort": In(1),
            "sp_a": Out(read_port_signature(line, cfg.sp_lines)),
            "sp_b": Out(read_port_signature(line, cfg.sp_lines)),
            "acc_r": Out(read_port_signature(32 * cfg.cols, cfg.acc_lines)),
            "acc_w": Out(write_port_signature(32 * cfg.cols, cfg.acc_lines)),
            "l2c": Out(wiring.Signature(_token_port())),
            "s2c": Out(wiring.Signature(_token_port())),
            "c2l_push": Out(2), "c2s_push": Out(1),
            "idle": Out(1), "error": Out(3),
            "array_busy": Out(1), "stall_weights": Out(1), "wait_token": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        R, C = cfg.rows, cfg.cols
        array = m.submodules.array = SystolicArray(cfg)
        line = 8 * cfg.sp_width
        a_stream = m.submodules.a_stream = LineStreamer(line, cfg.sp_lines)
        b_stream = m.submodules.b_stream = LineStreamer(line, cfg.sp_lines)
        wiring.connect(m, a_stream.port, wiring.flipped(self.sp_a))
        wiring.connect(m, b_stream.port, wiring.flipped(self.sp_b))
        m.d.comb += [a_stream.abort.eq(self.abort), b_stream.abort.eq(self.abort)]

        # Streamers -> array.
        m.d.comb += [
            array.a.valid.eq(a_stream.out.valid), a_stream.out.ready.eq(array.a.ready),
            array.a.payload.data.eq(a_stream.out.payload.data[:8 * R]),
            array.a.payload.last.eq(a_stream.out.payload.last),
            array.b.valid.eq(b_stream.out.valid), b_stream.out.ready.eq(array.b.ready),
            array.b.payload.data.eq(b_stream.out.payload.data[:8 * C]),
        ]
        m.d.comb += [self.array_busy.eq(array.a.valid & array.a.ready),
                     self.stall_weights.eq(array.a.valid & ~array.a.ready)]

        # Result bookkeeping, one entry per COMPUTE in flight.
        info = data.StructLayout({"acc_addr": 16, "accumulate": 1, "acc_max": 1, "push": 1})
        results = m.submodules.results = fifo.SyncFIFOBuffered(width=info.size,
                                                               depth=self.RESULT_QUEUE)

        # Dispatch.
        word = self.insn.payload
        op = isa.opcode_bits(word)
        is_preload = op == Opcode.PRELOAD
        nrows = _field(word, Opcode.COMPUTE, "nrows")
        a_addr = _field(word, Opcode.COMPUTE, "a_addr")
        b_addr = _field(word, Opcode.COMPUTE, "b_addr")
        acc_addr = _field(word, Opcode.COMPUTE, "acc_addr")
        pre_addr = _field(word, Opcode.PRELOAD, "sp_addr")
        pre_rows = _field(word, Opcode.PRELOAD, "nrows")
        need_l2c, need_s2c = _flag(word, "pop_prev"), _flag(word, "pop_next")
        tokens_ok = (~need_l2c | self.l2c.avail) & (~need_s2c | self.s2c.avail)
        # WS: every COMPUTE consumes one PRELOAD and the array holds two weight tiles, so a
        # COMPUTE without one, or a third PRELOAD, would hang the array: refuse them.
        preloads = Signal(range(WEIGHT_BANKS + 1))
        operands_ok = Mux(is_preload,
                          isa.operands_ok(cfg, Opcode.PRELOAD, isa.Fields(word, Opcode.PRELOAD),
                                          preloads),
                          isa.operands_ok(cfg, Opcode.COMPUTE, isa.Fields(word, Opcode.COMPUTE),
                                          preloads))
        if cfg.dataflow == "ws":
            resources_ok = Mux(is_preload, b_stream.cmd.ready,
                               a_stream.cmd.ready & results.w_rdy)
        else:
            resources_ok = a_stream.cmd.ready & b_stream.cmd.ready & results.w_rdy

        go = self.insn.valid & ~self.abort & tokens_ok & (resources_ok | ~operands_ok)
        m.d.comb += [self.insn.ready.eq(go),
                     self.wait_token.eq(self.insn.valid & ~tokens_ok)]
        accept = go & operands_ok
        if cfg.dataflow == "ws":
            with m.If(accept):
                m.d.sync += preloads.eq(Mux(is_preload, preloads + 1, preloads - 1))
        with m.If(go & ~operands_ok & (self.error == 0)):
            m.d.sync += self.error.eq(ErrorCode.BAD_OPERAND)
        m.d.comb += [self.l2c.pop.eq(accept & need_l2c), self.s2c.pop.eq(accept & need_s2c)]

        entry = Signal(info)
        m.d.comb += [entry.acc_addr.eq(acc_addr), entry.accumulate.eq(
            _field(word, Opcode.COMPUTE, "accumulate")),
            entry.acc_max.eq(_field(word, Opcode.COMPUTE, "acc_max")),
            entry.push.eq(_flag(word, "push_next")),
            results.w_data.eq(entry)]
        push_prev = _flag(word, "push_prev")
        if cfg.dataflow == "ws":
            m.d.comb += [
                b_stream.cmd.valid.eq(accept & is_preload),
                b_stream.cmd.payload.base.eq(pre_addr),
                b_stream.cmd.payload.count.eq(pre_rows),
                b_stream.cmd.payload.total.eq(R),
                b_stream.cmd.payload.push.eq(push_prev),
            ]
        else:
            m.d.comb += [
                b_stream.cmd.valid.eq(accept), b_stream.cmd.payload.base.eq(b_addr),
                b_stream.cmd.payload.count.eq(nrows), b_stream.cmd.payload.total.eq(nrows),
            ]
        m.d.comb += [
            a_stream.cmd.valid.eq(accept & ~is_preload),
            a_stream.cmd.payload.base.eq(a_addr), a_stream.cmd.payload.count.eq(nrows),
            a_stream.cmd.payload.total.eq(nrows), a_stream.cmd.payload.push.eq(push_prev),
            results.w_en.eq(accept & ~is_preload),
            self.c2l_push.eq(a_stream.done_push + b_stream.done_push),
        ]

        s_valid = self._result_writer(m, array, results, info)
        m.d.comb += self.idle.eq(a_stream.cmd.ready & b_stream.cmd.ready & (results.level == 0) &
                                 array.idle & ~s_valid)
        return m


    def _result_writer(self, m, array, results, info):
        """Array rows -> accumulator lines (read-modify-write when accumulating), addressed
        by the head of the result queue; returns the write stage's ``valid``."""
        cfg, R, C = self.cfg, self.cfg.rows, self.cfg.cols
        head = Signal(info)
        m.d.comb += head.eq(results.r_data)
        row = Signal(16)
        c = array.c
        target = Signal(16)
        if cfg.dataflow == "ws":
            m.d.comb += target.eq(head.acc_addr + row)
        else:
            m.d.comb += target.eq(head.acc_addr + os_drain_row(row, R))
        with m.If(c.valid):
            m.d.sync += row.eq(Mux(c.payload.last, 0, row + 1))
        m.d.comb += [self.acc_r.addr.eq(target), self.acc_r.en.eq(c.valid & head.accumulate),
                     results.r_en.eq(c.valid & c.payload.last)]
        s_valid, s_acc, s_max, s_push = Signal(), Signal(), Signal(), Signal()
        s_addr = Signal(16)
        s_data = Signal(data.ArrayLayout(signed(32), C))
        m.d.sync += [s_valid.eq(c.valid), s_addr.eq(target), s_data.eq(c.payload.data),
                     s_acc.eq(head.accumulate), s_max.eq(head.accumulate & head.acc_max),
                     s_push.eq(c.valid & c.payload.last & head.push)]
        old = data.View(data.ArrayLayout(signed(32), C), self.acc_r.data)

        def merged(i):      # overwrite, add (32-bit wrap), or keep the larger (max pooling)
            larger = Mux(s_data[i] > old[i], s_data[i], old[i])
            return Mux(s_max, larger, (s_data[i] + Mux(s_acc, old[i], 0))[:32])
        m.d.comb += [
            self.acc_w.addr.eq(s_addr), self.acc_w.en.eq(s_valid),
            self.acc_w.data.eq(Cat(*[merged(i)[:32] for i in range(C)])),
            self.c2s_push.eq(s_push),
        ]
        return s_valid


class StoreUnit(wiring.Component):
    """CONFIG (post-processing parameters) and STORE (accumulator -> requantize -> DRAM, or
    with ``to_sp`` -> scratchpad lines).

    Attributes
    ----------
    insn : In(stream of 128-bit words)
        CONFIG takes effect at once; STORE is taken when idle with its ``pop_prev`` token and
        occupies the unit until every write is acknowledged.
    abort : In(1)
        Stop reading; the unit goes idle once nothing is in flight.
    acc : Out(read port)
        One accumulator row per cycle while the out FIFO (:attr:`OUT_FIFO`) has room; waits
        while the compute unit has the bank.
    wr_cmd : Out(stream)
        One row per command, in order, once it has passed the read, the requantizer's
        :data:`hdl.requant.LATENCY` stages and the out FIFO: int8 (``ncols`` bytes) or raw
        int32 (``4 ncols`` bytes), ``addr`` advancing by the stride.  Not for ``to_sp``.
    sp : Out(write port)
        ``to_sp``: the same rows, once out of the out FIFO, to scratchpad line ``dram_addr``
        advancing by ``dram_stride`` (lines): the low ``ncols`` bytes of the int8 row, the
        rest zero; written in a cycle the load unit does not write the same bank.
    writer_idle : In(1)
        The write DMA has every response back: a STORE completes only then.
    c2s : Out(token port)
    s2c_push : Out(1)
        When a STORE completes (``to_sp``: its last line written), if ``push_prev``.
    idle, error, wait_token : Out
    """

    OUT_FIFO = 8

    def __init__(self, cfg: NPUConfig):
        self.cfg = cfg
        super().__init__({
            "insn": In(insn_stream()), "abort": In(1),
            "acc": Out(read_port_signature(32 * cfg.cols, cfg.acc_lines)),
            "wr_cmd": Out(stream.Signature(write_cmd_layout(4 * cfg.cols))),
            "sp": Out(write_port_signature(8 * cfg.sp_width, cfg.sp_lines)),
            "writer_idle": In(1),
            "c2s": Out(wiring.Signature(_token_port())),
            "s2c_push": Out(1),
            "idle": Out(1), "error": Out(3), "wait_token": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, C = self.cfg, self.cfg.cols
        rq = m.submodules.requant = Requantizer(C)
        lane_mult = [Signal(signed(32), name=f"multiplier{i}", init=1 << 30) for i in range(C)]
        lane_shift = [Signal(signed(8), name=f"shift{i}", init=1) for i in range(C)]
        lane_bias = [Signal(signed(32), name=f"bias{i}") for i in range(C)]
        zp, cmin, cmax = Signal(signed(8)), Signal(signed(8), init=-128), Signal(signed(8), init=127)
        mode = Signal(2)
        inner_mult, inner_bias = Signal(32), Signal(signed(32))
        inner_shift = Signal(8)
        for i in range(C):
            m.d.comb += [rq.multiplier[i].eq(lane_mult[i]), rq.shift[i].eq(lane_shift[i]),
                         rq.bias[i].eq(lane_bias[i])]
        m.d.comb += [rq.zero_point.eq(zp), rq.clamp_min.eq(cmin), rq.clamp_max.eq(cmax),
                     rq.mode.eq(mode), rq.inner_multiplier.eq(inner_mult),
                     rq.inner_bias.eq(inner_bias), rq.inner_shift.eq(inner_shift)]

        word = self.insn.payload
        op = isa.opcode_bits(word)
        is_config = op == Opcode.CONFIG
        lane = _field(word, Opcode.CONFIG, "lane")
        nrows = _field(word, Opcode.STORE, "nrows")
        ncols = _field(word, Opcode.STORE, "ncols")
        acc_addr = _field(word, Opcode.STORE, "acc_addr")
        need = _flag(word, "pop_prev")
        operands_ok = Mux(is_config,
                          isa.operands_ok(cfg, Opcode.CONFIG, isa.Fields(word, Opcode.CONFIG)),
                          isa.operands_ok(cfg, Opcode.STORE, isa.Fields(word, Opcode.STORE)))

        busy = Signal()
        r_base, r_rows = Signal(16), Signal(16)
        r_raw, r_push, r_sp = Signal(), Signal(), Signal()
        r_ncols = Signal(12)
        r_addr, r_stride = Signal(32), Signal(32)
        issued, sent = Signal(16), Signal(16)
        draining = Signal()

        tokens_ok = ~need | self.c2s.avail
        go = self.insn.valid & ~busy & ~self.abort & (tokens_ok | ~operands_ok)
        m.d.comb += [self.insn.ready.eq(go),
                     self.wait_token.eq(self.insn.valid & ~busy & ~tokens_ok)]
        with m.If(go & ~operands_ok & (self.error == 0)):
            m.d.sync += self.error.eq(ErrorCode.BAD_OPERAND)
        with m.If(go & operands_ok & is_config & _field(word, Opcode.CONFIG, "add_inner")):
            m.d.sync += [inner_mult.eq(_field(word, Opcode.CONFIG, "multiplier")),
                         inner_bias.eq(_field(word, Opcode.CONFIG, "bias")),
                         inner_shift.eq(_field(word, Opcode.CONFIG, "shift"))]
        with m.Elif(go & operands_ok & is_config):
            for i in range(C):
                with m.If((lane == isa.CONFIG_ALL_LANES) | (lane == i)):
                    m.d.sync += [
                        lane_mult[i].eq(_field(word, Opcode.CONFIG, "multiplier").as_signed()),
                        lane_shift[i].eq(_field(word, Opcode.CONFIG, "shift")),
                        lane_bias[i].eq(_field(word, Opcode.CONFIG, "bias"))]
            m.d.sync += [zp.eq(_field(word, Opcode.CONFIG, "zero_point")),
                         cmin.eq(_field(word, Opcode.CONFIG, "clamp_min")),
                         cmax.eq(_field(word, Opcode.CONFIG, "clamp_max")),
                         mode.eq(_field(word, Opcode.CONFIG, "rounding"))]
        m.d.comb += self.c2s.pop.eq(go & operands_ok & ~is_config & need)
        with m.If(go & operands_ok & ~is_config):
            m.d.sync += [busy.eq(1), r_base.eq(acc_addr), r_rows.eq(nrows), r_ncols.eq(ncols),
                         r_raw.eq(_field(word, Opcode.STORE, "raw")),
                         r_sp.eq(_field(word, Opcode.STORE, "to_sp")),
                         r_push.eq(_flag(word, "push_prev")),
                         r_addr.eq(_field(word, Opcode.STORE, "dram_addr")),
                         r_stride.eq(_field(word, Opcode.STORE, "dram_stride")),
                         issued.eq(0), sent.eq(0), draining.eq(0)]

        # acc read -> (1 cycle) -> requantizer / raw delay (LATENCY) -> out FIFO -> writer.
        out = m.submodules.out = fifo.SyncFIFOBuffered(width=32 * C, depth=self.OUT_FIFO)
        inflight = Signal(range(self.OUT_FIFO + 1))
        room = (out.level + inflight) < self.OUT_FIFO
        want = busy & ~draining & (issued != r_rows) & room & ~self.abort
        issue = want & self.acc.ready     # the compute unit has the bank this cycle otherwise
        m.d.comb += [self.acc.addr.eq(r_base + issued), self.acc.en.eq(want)]
        with m.If(issue):
            m.d.sync += issued.eq(issued + 1)
        read_valid = Signal()
        m.d.sync += read_valid.eq(issue)
        m.d.comb += [rq.acc.eq(self.acc.data), rq.en.eq(read_valid)]
        # The raw rows' delay only shifts while a row of a raw STORE is in it (every row in
        # flight is counted by ``inflight``), so it keeps its timing and idles otherwise.
        raw_line = m.submodules.raw_delay = DelayLine(32 * C, REQUANT_LATENCY, enable=True)
        valid_line = m.submodules.valid_delay = DelayLine(1, REQUANT_LATENCY)
        m.d.comb += [raw_line.i.eq(self.acc.data), raw_line.en.eq(r_raw & (inflight != 0)),
                     valid_line.i.eq(read_valid)]
        m.d.comb += [out.w_en.eq(valid_line.o),
                     out.w_data.eq(Mux(r_raw, raw_line.o, rq.out.as_value()))]
        m.d.sync += inflight.eq(inflight + issue - valid_line.o)

        # Out FIFO -> the write DMA, or (to_sp) -> a scratchpad line: int8 lanes past ncols
        # are zero, and so is the rest of the line.
        lanes = [out.r_data[8 * i:8 * (i + 1)] for i in range(C)]
        to_sp = self.sp.en & self.sp.ready
        m.d.comb += [
            self.wr_cmd.valid.eq(out.r_rdy & ~r_sp),
            out.r_en.eq(Mux(r_sp, self.sp.ready, self.wr_cmd.ready)),
            self.wr_cmd.payload.data.eq(out.r_data), self.wr_cmd.payload.addr.eq(r_addr),
            self.wr_cmd.payload.nbytes.eq(Mux(r_raw, r_ncols << 2, r_ncols)),
            self.sp.en.eq(out.r_rdy & r_sp), self.sp.addr.eq(r_addr),
            self.sp.data.eq(Cat(*[Mux(i < r_ncols, lane, 0) for i, lane in enumerate(lanes)])),
        ]
        with m.If((self.wr_cmd.valid & self.wr_cmd.ready) | to_sp):
            m.d.sync += [sent.eq(sent + 1), r_addr.eq(r_addr + r_stride)]
            with m.If(sent == r_rows - 1):
                m.d.sync += draining.eq(1)
        # Done once every row is handed to the writer and every write is acknowledged.
        finished = busy & draining & self.writer_idle
        m.d.comb += self.s2c_push.eq(finished & r_push)
        with m.If(finished):
            m.d.sync += [busy.eq(0), draining.eq(0)]
        with m.If(self.abort & (inflight == 0) & ~out.r_rdy):
            m.d.sync += [busy.eq(0), draining.eq(0)]
        m.d.comb += self.idle.eq(~busy)
        return m
