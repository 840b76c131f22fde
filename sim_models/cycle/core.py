"""The cycle model of :class:`hdl.core.NPUCore`: the units wired as the core wires them.

Each :meth:`CycleNPU._cycle` is one clock.  First every unit's combinational outputs are
read from its registers in dependency order (read DMA commands, the array, memory grants,
dispatch, store, write DMA, fetch), then every unit's ``clock`` gives its registers their
next values from those inputs.  The core's own logic -- the fetch/load read arbiter, the
first-error latch, the deadlock detector and the counters -- is here, as it is in core.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hdl import isa
from hdl.config import NPUConfig
from hdl.core import NPUCore
from hdl.dma import BYTE_COUNTER_BITS
from hdl.isa import ErrorCode
from hdl.regmap import COUNTERS

from .base import Fifo
from .control import DeadlockDetector, ErrorLatch, ReadArbiter
from .dma import RowReader, RowWriter
from .dram import AxiRamTiming
from .memories import BankArbiter
from .trace import unit_events
from .units import (TAG_FETCH, ComputeUnit, FetchUnit, LoadUnit, StoreUnit, TokenCounter)

__all__ = ["CycleNPU", "CycleResult", "ModelError"]

Q = isa.Queue
QUEUES = (Q.LOAD, Q.COMPUTE, Q.STORE)
TOKENS = ("l2c", "c2l", "c2s", "s2c")


class ModelError(RuntimeError):
    """The model ran longer than its cycle budget (the RTL would hang too)."""


@dataclass
class CycleResult:
    done: bool
    error: ErrorCode
    err_pc: int
    counters: dict                              # the RTL's performance counters, by name
    events: dict = field(default_factory=dict)  # memory and array activity, for energy
    trace: list | None = None                   # (cycle, unit, event) when asked for

    @property
    def cycles(self) -> int:
        return self.counters["cycles"]


class CycleNPU:
    """The core, cycle by cycle.  One instance keeps its state between :meth:`run` calls,
    as the RTL does between programs (arbiter turn bits survive; engines restart)."""

    DEADLOCK_CYCLES = NPUCore.DEADLOCK_CYCLES

    def __init__(self, cfg: NPUConfig, memory: AxiRamTiming | None = None):
        self.cfg = cfg
        self.mem = memory or AxiRamTiming(cfg.bus_bytes)
        # State that no soft reset touches (outside the engines' reset domain).
        self.arbiter = ReadArbiter()
        self.errors = ErrorLatch()
        self.sp = BankArbiter(cfg.sp_lines, cfg.sp_banks, fair=True)
        self.sp_w = BankArbiter(cfg.sp_lines, cfg.sp_banks)     # load, then store (to_sp)
        self.acc = BankArbiter(cfg.acc_lines, cfg.acc_banks)
        self.reader, self.writer = RowReader(cfg.bus_bytes), RowWriter(cfg.bus_bytes)
        self.program, self.prog_addr = [], 0
        self.base, self.size = 0, 1 << 32
        self.trace = None
        self._reset_engines()

    def _reset_engines(self):
        cfg = self.cfg
        self.fetch, self.load = FetchUnit(), LoadUnit(cfg)
        self.compute, self.store = ComputeUnit(cfg), StoreUnit(cfg)
        self.reader.reset()
        self.writer.reset()
        self.queues = {q: Fifo(cfg.queue_depth) for q in QUEUES}
        self.tokens = {n: TokenCounter() for n in TOKENS}
        self.deadlock = DeadlockDetector(self.DEADLOCK_CYCLES)
        self.errors.clock((), 0, clear=True)

    def soft_reset(self):
        """CTRL.SOFT_RESET with the bus quiet: engines, queues and tokens restart."""
        self._reset_engines()

    # ---- one program -------------------------------------------------------------------
    def run(self, program: list[int], prog_addr: int = 0, dram_base: int = 0,
            dram_size: int = 1 << 32, max_cycles: int = 50_000_000,
            trace: bool = False) -> CycleResult:
        """START the program at ``prog_addr`` (``program`` are its words) and clock until
        the core is no longer busy; return the counters as the RTL's registers hold them.
        ``trace``: also record each unit's handshakes per cycle (:mod:`.trace`)."""
        self.program = list(program)
        self.prog_addr = prog_addr
        self.base, self.size = dram_base, dram_size
        self.counters = {name: 0 for name in COUNTERS}
        self.events = {"sp_line_writes": 0, "sp_line_reads": 0, "acc_line_reads": 0,
                       "acc_line_writes": 0, "array_beats": 0, "weight_beats": 0}
        self.trace = [] if trace else None
        self.now = 0
        read0, write0 = self.reader.bytes_read, self.writer.bytes_written
        self._cycle(start=True)
        while self._busy():
            self._cycle(start=False)
            if self.now > max_cycles:
                raise ModelError(f"no done or error after {max_cycles} cycles "
                                 f"(pc {self.fetch.pc})")
        wrap = (1 << BYTE_COUNTER_BITS) - 1     # the DMA engines' byte counters
        self.counters["dma_bytes_read"] = (self.reader.bytes_read - read0) & wrap
        self.counters["dma_bytes_written"] = (self.writer.bytes_written - write0) & wrap
        return CycleResult(done=self.fetch.done and not self.error,
                           error=ErrorCode(self.error), err_pc=self.errors.err_pc,
                           counters=dict(self.counters), events=dict(self.events),
                           trace=self.trace)

    @property
    def error(self) -> int:
        return self.errors.error

    @property
    def prog_len(self) -> int:
        return len(self.program)

    def _record(self, c: dict):
        self.trace.extend(unit_events(self, c))

    def _units(self):
        return (self.fetch, self.load, self.compute, self.store, self.reader, self.writer)

    def _quiet(self, dma_idle: bool) -> bool:
        """No unit working and the bus idle (the core reports an error only then)."""
        return self.load.idle and self.compute.idle and self.store.idle and dma_idle

    def _dma_idle(self) -> bool:
        abort = self.error != 0
        cmd_valid = self.load.rd_cmd_valid(abort) or self.fetch.rd_cmd_valid(abort, self.prog_len)
        return self.reader.idle(cmd_valid) and self.writer.idle(self.store.wr_cmd_valid)

    def _busy(self) -> bool:
        """Counting cycles, or a unit's error not yet taken by the core (fetch stops the
        cycle before the core's error register is set; that cycle is not counted)."""
        if self.fetch.running:
            return True
        if self.error:
            return not self._quiet(self._dma_idle())
        return any(u.error for u in self._units()) or self.deadlock.deadlock

    # ---- the clock ---------------------------------------------------------------------
    def _cycle(self, start: bool):
        """One clock: :meth:`_combinational` reads every unit's outputs (nothing changes),
        :meth:`_registers` clocks every unit with them."""
        c = self._combinational(start)
        self._count(c, start)
        if self.trace is not None:
            self._record(c)
        self._registers(c, start)
        self.now += 1

    def _combinational(self, start: bool) -> dict:
        mem = self.mem
        abort = self.error != 0
        fetch, load, compute, store = self.fetch, self.load, self.compute, self.store
        reader, writer = self.reader, self.writer
        c = {"abort": abort}
        # Read DMA commands: fetch and load, round robin per row.
        f_valid = fetch.rd_cmd_valid(abort, self.prog_len)
        l_valid = load.rd_cmd_valid(abort)
        pick_load = self.arbiter.pick_load(f_valid, l_valid)
        cmd = None
        if l_valid or f_valid:
            cmd = load.rd_cmd() if pick_load else fetch.rd_cmd(self.prog_addr, self.program)
        c.update(f_valid=f_valid, l_valid=l_valid, pick_load=pick_load, r_cmd=cmd,
                 r_cmd_ready=reader.cmd_ready(mem.arready))
        c["r_take"] = cmd is not None and c["r_cmd_ready"]
        # Accumulator: the compute unit's write and read never wait; load and store do.
        acc_r, acc_w = compute.acc_r(), compute.acc_w()
        l_target = load.mem_addr
        load_acc_ready = self.acc.ready([acc_w, (True, l_target)])[1]
        c["l_mem_ready"] = load_acc_ready if load.acc else True
        c["l_rsp_ready"] = load.rsp_ready(c["l_mem_ready"])
        to_fetch = reader.out_tag == TAG_FETCH
        c["rsp_ready"] = to_fetch or c["l_rsp_ready"]
        c["f_rsp_valid"] = reader.rsp_valid and to_fetch
        c["l_rsp_valid"] = reader.rsp_valid and not to_fetch
        c["rready"] = reader.rready(c["rsp_ready"])
        c["rsp_word"] = reader.out_word
        # Unit heads and dispatch.
        lq, cq, sq = (self.queues[q] for q in QUEUES)
        words = c["words"] = {Q.LOAD: lq.out if lq.r_rdy else None,
                              Q.COMPUTE: cq.out if cq.r_rdy else None,
                              Q.STORE: sq.out if sq.r_rdy else None}
        t = self.tokens
        c["l_start"] = load.start(words[Q.LOAD], t["c2l"].avail, abort)
        c["c_go"] = compute.go(words[Q.COMPUTE], t["l2c"].avail, t["s2c"].avail, abort)
        c["s_go"] = store.go(words[Q.STORE], t["c2s"].avail, abort)
        c["wait"] = {"load": load.wait_token(words[Q.LOAD], t["c2l"].avail),
                     "compute": compute.wait_token(words[Q.COMPUTE], t["l2c"].avail,
                                                   t["s2c"].avail),
                     "store": store.wait_token(words[Q.STORE], t["c2s"].avail)}
        # Scratchpad: the two streamers' reads, round robin on a tie.
        sp_ports = [(compute.a.port_en(abort), compute.a.port_addr),
                    (compute.b.port_en(abort), compute.b.port_addr)]
        c["sp_ports"], c["sp_ready"] = sp_ports, tuple(self.sp.ready(sp_ports))
        c["acc_r"], c["acc_w"] = acc_r, acc_w
        c["st_acc_ready"] = self.acc.ready([acc_r, (True, store.acc_addr)])[1]
        # Scratchpad writes: the load unit's never wait; a STORE to_sp's waits for its bank.
        l_sp_en = load.mem_en(c["l_rsp_valid"]) and not load.acc
        c["st_sp_ready"] = self.sp_w.ready([(l_sp_en, l_target),
                                            (store.sp_en, store.sp_addr)])[1]
        # Write DMA.
        c["wr_cmd"] = store.wr_cmd() if store.wr_cmd_valid else None
        c["wr_ready"] = writer.cmd_ready(mem.awready, mem.wready)
        c["writer_idle"] = writer.idle(store.wr_cmd_valid)
        # Fetch dispatch, SYNC and HALT.
        c["dma_idle"] = reader.idle(cmd is not None) and c["writer_idle"]
        queues_empty = lq.level == 0 and cq.level == 0 and sq.level == 0
        c["units_idle"] = (queues_empty and load.idle and compute.idle and store.idle
                           and c["dma_idle"])
        c["q_ready"] = {Q.LOAD: lq.w_rdy, Q.COMPUTE: cq.w_rdy, Q.STORE: sq.w_rdy}
        dest = fetch.dest(abort)
        c["q_valid"] = {q: dest == q for q in QUEUES}
        c["f_word"] = fetch.word
        self._errors(c)
        return c

    def _errors(self, c: dict):
        """The deadlock candidate, the error sources in priority order, ``busy``."""
        abort, fetch, queues, wait = c["abort"], self.fetch, self.queues, c["wait"]
        units = ((self.load, Q.LOAD, "load"), (self.compute, Q.COMPUTE, "compute"),
                 (self.store, Q.STORE, "store"))
        # The cheap conditions first: while the bus is busy nothing is stuck.
        c["candidate"] = (c["dma_idle"] and any(wait.values())
                          and all(u.idle and (wait[n] or queues[q].level == 0)
                                  for u, q, n in units)
                          and fetch.stuck(abort, self.prog_len, c["q_ready"], c["units_idle"]))
        deadlock = ErrorCode.DEADLOCK if self.deadlock.deadlock else 0
        c["sources"] = (fetch.error, self.load.error, self.compute.error, self.store.error,
                        self.reader.error, self.writer.error, deadlock)
        c["busy"] = fetch.running or (abort and not self._quiet(c["dma_idle"]))

    def _count(self, c: dict, start: bool):
        """The performance counters (cleared by START) and the energy model's events."""
        compute, ev = self.compute, self.events
        fire, _, b_fire = compute.fires()
        ev["array_beats"] += fire
        ev["weight_beats"] += b_fire
        ev["acc_line_reads"] += c["acc_r"][0]
        ev["acc_line_writes"] += compute.s_valid
        if not c["busy"] or start:
            return
        cnt = self.counters
        cnt["cycles"] += 1
        cnt["array_busy"] += fire
        cnt["stall_weights"] += compute.stall_weights
        cnt["stall_compute_token"] += c["wait"]["compute"]
        cnt["stall_load_token"] += c["wait"]["load"]
        cnt["stall_store_token"] += c["wait"]["store"]
        cnt["stall_queue_full"] += self.fetch.stall_queue_full(c["abort"], c["q_ready"])

    def _registers(self, c: dict, start: bool):
        mem, abort, t = self.mem, c["abort"], self.tokens
        fetch, load, compute, store = self.fetch, self.load, self.compute, self.store
        words = c["words"]
        mem_inputs = (self.reader.arvalid, self.reader.ar, c["rready"], self.writer.awvalid,
                      self.writer.aw_len, self.writer.wvalid, self.writer.w_bytes, True)
        pc_now = fetch.pc
        # Events the energy model counts on clocked activity.
        ev = self.events
        if c["l_rsp_valid"] and c["l_rsp_ready"] and load.busy:
            ev["acc_line_writes" if load.acc else "sp_line_writes"] += 1
        for (en, _), ready in zip(c["sp_ports"], c["sp_ready"]):
            ev["sp_line_reads"] += en and ready
        ev["acc_line_reads"] += store.acc_en(abort) and c["st_acc_ready"]
        ev["sp_line_writes"] += store.sp_en and c["st_sp_ready"]
        # Core: the read arbiter, tokens pushed this cycle.
        self.arbiter.clock(c["f_valid"], c["l_valid"], c["r_cmd_ready"])
        c2l_push = compute.c2l_push()
        c2s_push = compute.c2s_push
        s2c_push = store.s2c_push(c["writer_idle"])
        l_cmd_ready = c["r_cmd_ready"] and c["pick_load"]
        f_cmd_ready = c["r_cmd_ready"] and not c["pick_load"]
        # Units.
        self.reader.clock(c["r_cmd"], c["rsp_ready"], mem.arready, mem.rvalid,
                          mem.r_beat[1] if mem.r_beat else 0, self.base, self.size)
        self.writer.clock(c["wr_cmd"], mem.awready, mem.wready, mem.bvalid, mem.b_resp,
                          self.base, self.size)
        fetch.clock(start, abort, self.prog_len, f_cmd_ready, c["f_rsp_valid"], c["rsp_word"],
                    c["q_ready"], c["units_idle"])
        pops = {Q.LOAD: c["l_start"], Q.COMPUTE: c["c_go"], Q.STORE: c["s_go"]}
        for q, fifo in self.queues.items():
            fifo.clock(c["q_valid"][q], c["f_word"], pops[q])
        pop_c2l, l2c_push = load.clock(words[Q.LOAD], t["c2l"].avail, abort, l_cmd_ready,
                                       c["l_rsp_valid"], c["l_mem_ready"])
        pop_l2c, pop_s2c = compute.clock(words[Q.COMPUTE], t["l2c"].avail, t["s2c"].avail,
                                         abort, c["sp_ready"])
        self.sp.clock(c["sp_ports"])
        pop_c2s = store.clock(words[Q.STORE], t["c2s"].avail, abort, c["st_acc_ready"],
                              c["wr_ready"], c["writer_idle"], c["st_sp_ready"])
        for name, push, pop in (("l2c", l2c_push, pop_l2c), ("c2l", c2l_push, pop_c2l),
                                ("c2s", c2s_push, pop_c2s), ("s2c", s2c_push, pop_s2c)):
            t[name].clock(push, pop, clear=start)
        # Core: first error wins; deadlock after DEADLOCK_CYCLES quiet cycles.
        self.deadlock.clock(c["candidate"])
        self.errors.clock(c["sources"], pc_now)
        # The DRAM sees this cycle's outputs at the edge.
        mem.advance_pauses()
        mem.edge(*mem_inputs)
