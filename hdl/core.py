"""NPUCore: the systolic array made into an accelerator a host drives over AXI.

The host writes a program and tensors into memory, sets the program address and length and
the DRAM window over AXI4-Lite, writes START, and waits for ``irq`` (done or error).  Inside:
a fetch unit feeds three instruction queues; the load, compute and store units run
decoupled, synchronised by dependency tokens; one AXI4 manager port carries instruction
fetch and loads (arbitrated) and stores.
"""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal
from amaranth.hdl import ResetInserter
from amaranth.lib import fifo, wiring
from amaranth.lib.wiring import In, Out

from . import isa, regmap
from .axi import axi4_lite_signature, axi4_signature, half
from .config import ConfigError, NPUConfig
from .control import DeadlockDetector, ErrorLatch, PerfCounters, ReadArbiter
from .dma import RowReader, RowWriter
from .memories import Accumulator, Scratchpad
from .regs import RegisterBlock
from .units import ComputeUnit, FetchUnit, LoadUnit, StoreUnit, TokenCounter, read_max_bytes

__all__ = ["NPUCore"]

#: The four dependency-token counters: (name, pushing unit, popping unit).
TOKENS = (("l2c", "load", "compute"), ("c2l", "compute", "load"),
          ("c2s", "compute", "store"), ("s2c", "store", "compute"))


class NPUCore(wiring.Component):
    """The whole core.

    Parameters
    ----------
    cfg : NPUConfig
        Needs ``input_width=8`` and ``acc_width=32``.

    Attributes
    ----------
    m_axi : Out(axi4_signature(32, cfg.bus_bits))
        The AXI4 manager port to memory: instruction fetch and loads on AR/R (one ID, in
        order, up to :attr:`RowReader.OUTSTANDING` rows in flight), stores on AW/W/B (up to
        :attr:`RowWriter.MAX_OUTSTANDING` bursts awaiting B).  INCR bursts, never across
        4 KiB; VALID and payload held until READY.
    s_axil : In(axi4_lite_signature)
        The host's register port (:mod:`hdl.regmap`): one read and one write at a time.
    irq : Out(1)
        High from the cycle the program is done, or from the cycle after an error once the
        bus is quiet, until the next START (done) or soft reset (error).
    """

    #: Cycles the deadlock condition must hold before it is reported (a token pushed in the
    #: last cycle needs a few cycles to be seen by the unit waiting for it).
    DEADLOCK_CYCLES = 7

    def __init__(self, cfg: NPUConfig):
        if cfg.acc_width != 32 or cfg.input_width != 8:
            raise ConfigError("the NPU core needs input_width=8 and acc_width=32 "
                              f"(got {cfg.input_width} and {cfg.acc_width})")
        self.cfg = cfg
        super().__init__({
            "m_axi": Out(axi4_signature(32, cfg.bus_bits)),
            "s_axil": In(axi4_lite_signature(regmap.ADDR_WIDTH, regmap.DATA_WIDTH)),
            "irq": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        regs = m.submodules.regs = RegisterBlock(cfg)
        wiring.connect(m, wiring.flipped(self.s_axil), regs.axil)

        # Everything but the register block restarts on a soft reset, which is only taken
        # while no AXI transaction is outstanding (so the bus never sees a torn burst).
        engine_reset = Signal()

        def engine(name, elaboratable, reset=engine_reset):
            m.submodules[name] = ResetInserter({"sync": reset})(elaboratable)
            return elaboratable

        reader = engine("reader", RowReader(cfg.bus_bits, read_max_bytes(cfg)))
        writer = engine("writer", RowWriter(cfg.bus_bits, 4 * cfg.cols))
        units = {"fetch": engine("fetch", FetchUnit(cfg)), "load": engine("load", LoadUnit(cfg)),
                 "compute": engine("compute", ComputeUnit(cfg)),
                 "store": engine("store", StoreUnit(cfg))}
        fetch, load, compute, store = units.values()
        queues = {name: engine(f"{name}_queue", fifo.SyncFIFOBuffered(
            width=isa.INSN_BITS, depth=cfg.queue_depth)) for name in ("load", "compute", "store")}
        # Tokens also clear on START: a program may leave tokens nobody popped.
        tokens = {name: engine(f"tok_{name}", TokenCounter(), engine_reset | regs.start)
                  for name, _, _ in TOKENS}
        # The arbiter's turn survives a soft reset, as the memories' do.
        arbiter = m.submodules.read_arbiter = ReadArbiter(read_max_bytes(cfg))

        self._connect_datapath(m, regs, reader, writer, units, queues, tokens, arbiter)
        self._connect_control(m, regs, reader, writer, units, queues, engine_reset)
        return m

    def _connect_datapath(self, m, regs, reader, writer, units, queues, tokens, arbiter):
        """The bus, the memories, the queues and the dependency tokens."""
        cfg = self.cfg
        fetch, load, compute, store = units.values()
        wiring.connect(m, wiring.flipped(half(self.m_axi, "read")), reader.axi)
        wiring.connect(m, wiring.flipped(half(self.m_axi, "write")), writer.axi)
        for dma in (reader, writer):
            m.d.comb += [dma.base.eq(regs.dram_base),
                         dma.size.eq(Mux(regs.dram_size == 0xFFFF_FFFF, 1 << 32, regs.dram_size))]
        sp = m.submodules.scratchpad = Scratchpad(cfg)
        acc = m.submodules.accumulator = Accumulator(cfg)
        for source, sink in (
                # Reads (fetch and load share the reader) and writes.
                (fetch.rd_cmd, arbiter.fetch_cmd), (load.rd_cmd, arbiter.load_cmd),
                (arbiter.cmd, reader.cmd), (reader.rsp, arbiter.rsp),
                (arbiter.fetch_rsp, fetch.rd_rsp), (arbiter.load_rsp, load.rd_rsp),
                (store.wr_cmd, writer.cmd),
                # Memory ports.
                (load.sp, sp.w_load), (load.acc, acc.w_load), (compute.sp_a, sp.r_a),
                (compute.sp_b, sp.r_b), (compute.acc_r, acc.r_compute),
                (compute.acc_w, acc.w_compute), (store.acc, acc.r_store),
                (store.sp, sp.w_store)):
            wiring.connect(m, source, sink)
        m.d.comb += store.writer_idle.eq(writer.idle)

        # Queues between fetch and the units.
        for name, unit_q in (("load", fetch.load_q), ("compute", fetch.compute_q),
                             ("store", fetch.store_q)):
            q, unit = queues[name], units[name]
            m.d.comb += [q.w_data.eq(unit_q.payload), q.w_en.eq(unit_q.valid),
                         unit_q.ready.eq(q.w_rdy),
                         unit.insn.payload.eq(q.r_data), unit.insn.valid.eq(q.r_rdy),
                         q.r_en.eq(unit.insn.ready)]

        # Dependency tokens: the pushing unit's ``<name>_push``, the popping unit's port.
        for name, pusher, popper in TOKENS:
            counter, port = tokens[name], getattr(units[popper], name)
            m.d.comb += [counter.push.eq(getattr(units[pusher], f"{name}_push")),
                         port.avail.eq(counter.avail), counter.pop.eq(port.pop)]

    def _connect_control(self, m, regs, reader, writer, units, queues, engine_reset):
        """Start, errors, deadlock, soft reset, status and the performance counters."""
        fetch, load, compute, store = units.values()
        workers = (load, compute, store)
        dma_idle = reader.idle & writer.idle

        deadlock = m.submodules.deadlock = DeadlockDetector(self.DEADLOCK_CYCLES)
        stuck = [unit.idle & (unit.wait_token | (q.level == 0))
                 for unit, q in zip(workers, queues.values())]
        waiting = Cat(*[unit.wait_token for unit in workers]).any()
        m.d.comb += deadlock.candidate.eq(fetch.stuck & dma_idle & Cat(*stuck).all() & waiting)

        # Errors: the first one wins and stops everything; the core then waits for the bus
        # to go quiet and reports.
        sources = [fetch.error, load.error, compute.error, store.error, reader.error,
                   writer.error, Mux(deadlock.deadlock, isa.ErrorCode.DEADLOCK, 0)]
        latch = m.submodules.errors = ErrorLatch(len(sources))
        for port, src in zip(latch.sources, sources):
            m.d.comb += port.eq(src)
        m.d.comb += [latch.pc.eq(fetch.pc), latch.clear.eq(engine_reset)]
        abort = latch.error != 0
        for unit in units.values():
            m.d.comb += unit.abort.eq(abort)

        queues_empty = Cat(*[q.level == 0 for q in queues.values()]).all()
        units_idle = queues_empty & load.idle & compute.idle & store.idle
        m.d.comb += fetch.units_idle.eq(units_idle & dma_idle)
        # After an error the queues may still hold instructions nobody will run (a soft reset
        # drops them): the core is quiet once no unit is working and the bus is idle.
        quiet = load.idle & compute.idle & store.idle & dma_idle
        busy = fetch.running | (abort & ~quiet)
        m.d.comb += [fetch.start.eq(regs.start & ~abort), fetch.prog_addr.eq(regs.prog_addr),
                     fetch.prog_len.eq(regs.prog_len)]

        # Soft reset: taken once the bus is quiet.
        soft_reset_pending = Signal()
        with m.If(regs.soft_reset):
            m.d.sync += soft_reset_pending.eq(1)
        m.d.comb += engine_reset.eq(soft_reset_pending & dma_idle)
        with m.If(engine_reset):
            m.d.sync += soft_reset_pending.eq(0)

        done = fetch.done & ~abort
        m.d.comb += [regs.busy.eq(busy), regs.done.eq(done), regs.error.eq(latch.error),
                     regs.err_pc.eq(latch.err_pc), self.irq.eq((done | (abort & ~busy)))]

        # Performance counters, cleared by start.
        events = {
            "cycles": busy, "array_busy": compute.array_busy,
            "stall_weights": compute.stall_weights,
            "stall_compute_token": compute.wait_token, "stall_load_token": load.wait_token,
            "stall_store_token": store.wait_token, "stall_queue_full": fetch.stall_queue_full,
        }
        counters = m.submodules.counters = PerfCounters(events)
        m.d.comb += [counters.start.eq(regs.start), counters.busy.eq(busy)]
        for name, event in events.items():
            m.d.comb += [getattr(counters.events, name).eq(event),
                         getattr(regs, name).eq(getattr(counters.count, name))]
        read_base, write_base = Signal(32), Signal(32)  # DMA byte counters at START
        with m.If(regs.start):
            m.d.sync += [read_base.eq(reader.bytes_read), write_base.eq(writer.bytes_written)]
        m.d.comb += [regs.dma_bytes_read.eq((reader.bytes_read - read_base)[:32]),
                     regs.dma_bytes_written.eq((writer.bytes_written - write_base)[:32])]
