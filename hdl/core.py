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

from . import isa
from .axi import axi4_lite_signature, axi4_signature
from .config import ConfigError, NPUConfig
from .dma import RowReader, RowWriter
from .memories import Accumulator, Scratchpad
from .regs import RegisterBlock
from .units import (TAG_FETCH, ComputeUnit, FetchUnit, LoadUnit, StoreUnit, TokenCounter,
                    read_max_bytes)

__all__ = ["NPUCore"]


class NPUCore(wiring.Component):
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
            "s_axil": In(axi4_lite_signature(8, 32)),
            "irq": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        regs = m.submodules.regs = RegisterBlock(cfg)
        wiring.connect(m, wiring.flipped(self.s_axil), regs.axil)

        # Everything but the register block restarts on a soft reset, which is only taken
        # while no AXI transaction is outstanding (so the bus never sees a torn burst).
        soft_reset_pending = Signal()
        engine_reset = Signal()
        engines = {}

        def engine(name, elaboratable):
            engines[name] = elaboratable
            m.submodules[name] = ResetInserter({"sync": engine_reset})(elaboratable)
            return elaboratable

        reader = engine("reader", RowReader(cfg.bus_bits, read_max_bytes(cfg)))
        writer = engine("writer", RowWriter(cfg.bus_bits, 4 * cfg.cols))
        fetch = engine("fetch", FetchUnit(cfg))
        load = engine("load", LoadUnit(cfg))
        compute = engine("compute", ComputeUnit(cfg))
        store = engine("store", StoreUnit(cfg))
        sp = m.submodules.scratchpad = Scratchpad(cfg)
        acc = m.submodules.accumulator = Accumulator(cfg)
        queues = {name: engine(f"{name}_queue", fifo.SyncFIFOBuffered(
            width=isa.INSN_BITS, depth=cfg.queue_depth)) for name in ("load", "compute", "store")}
        # Tokens also clear on START: a program may leave tokens nobody popped.
        tokens = {}
        for name in ("l2c", "c2l", "c2s", "s2c"):
            tokens[name] = TokenCounter()
            m.submodules[f"tok_{name}"] = ResetInserter({"sync": engine_reset | regs.start})(
                tokens[name])

        # AXI4 manager: reads from the reader, writes from the writer.
        axi = self.m_axi
        for name in ("araddr", "arlen", "arsize", "arburst", "arvalid", "rready"):
            m.d.comb += getattr(axi, name).eq(getattr(reader, name))
        for name in ("arready", "rdata", "rresp", "rlast", "rvalid"):
            m.d.comb += getattr(reader, name).eq(getattr(axi, name))
        for name in ("awaddr", "awlen", "awsize", "awburst", "awvalid", "wdata", "wstrb",
                     "wlast", "wvalid", "bready"):
            m.d.comb += getattr(axi, name).eq(getattr(writer, name))
        for name in ("awready", "wready", "bresp", "bvalid"):
            m.d.comb += getattr(writer, name).eq(getattr(axi, name))
        for dma in (reader, writer):
            m.d.comb += [dma.base.eq(regs.dram_base),
                         dma.size.eq(Mux(regs.dram_size == 0xFFFF_FFFF, 1 << 32, regs.dram_size))]

        # Read arbitration between fetch and load (round robin per row); responses come
        # back in order, routed by tag.
        prefer_load = Signal()
        pick_load = load.rd_cmd.valid & (~fetch.rd_cmd.valid | prefer_load)
        m.d.comb += [
            reader.cmd.valid.eq(load.rd_cmd.valid | fetch.rd_cmd.valid),
            reader.cmd.payload.eq(Mux(pick_load, load.rd_cmd.payload.as_value(),
                                      fetch.rd_cmd.payload.as_value())),
            load.rd_cmd.ready.eq(reader.cmd.ready & pick_load),
            fetch.rd_cmd.ready.eq(reader.cmd.ready & ~pick_load),
        ]
        with m.If(reader.cmd.valid & reader.cmd.ready):
            m.d.sync += prefer_load.eq(~pick_load)
        to_fetch = reader.rsp.payload.tag == TAG_FETCH
        m.d.comb += [
            reader.rsp.ready.eq(to_fetch | load.rd_rsp.ready),
            fetch.rd_rsp.payload.eq(reader.rsp.payload), load.rd_rsp.payload.eq(reader.rsp.payload),
            fetch.rd_rsp.valid.eq(reader.rsp.valid & to_fetch),
            load.rd_rsp.valid.eq(reader.rsp.valid & ~to_fetch),
        ]
        wiring.connect(m, store.wr_cmd, writer.cmd)
        m.d.comb += store.writer_idle.eq(writer.idle)

        # Queues between fetch and the units.
        for name, unit_q, unit in (("load", fetch.load_q, load), ("compute", fetch.compute_q,
                                                                   compute),
                                   ("store", fetch.store_q, store)):
            q = queues[name]
            m.d.comb += [q.w_data.eq(unit_q.payload), q.w_en.eq(unit_q.valid),
                         unit_q.ready.eq(q.w_rdy),
                         unit.insn.payload.eq(q.r_data), unit.insn.valid.eq(q.r_rdy),
                         q.r_en.eq(unit.insn.ready)]

        # Memories.
        wiring.connect(m, load.sp, sp.w_load)
        wiring.connect(m, load.acc, acc.w_load)
        wiring.connect(m, compute.sp_a, sp.r_a)
        wiring.connect(m, compute.sp_b, sp.r_b)
        wiring.connect(m, compute.acc_r, acc.r_compute)
        wiring.connect(m, compute.acc_w, acc.w_compute)
        wiring.connect(m, store.acc, acc.r_store)

        # Dependency tokens.
        m.d.comb += [
            tokens["l2c"].push.eq(load.l2c_push), compute.l2c.avail.eq(tokens["l2c"].avail),
            tokens["l2c"].pop.eq(compute.l2c.pop),
            tokens["c2l"].push.eq(compute.c2l_push), load.c2l.avail.eq(tokens["c2l"].avail),
            tokens["c2l"].pop.eq(load.c2l.pop),
            tokens["c2s"].push.eq(compute.c2s_push), store.c2s.avail.eq(tokens["c2s"].avail),
            tokens["c2s"].pop.eq(store.c2s.pop),
            tokens["s2c"].push.eq(store.s2c_push), compute.s2c.avail.eq(tokens["s2c"].avail),
            tokens["s2c"].pop.eq(compute.s2c.pop),
        ]

        # Errors: the first one wins and stops everything; the core then waits for the bus
        # to go quiet and reports.
        error = Signal(8)
        deadlock = self._deadlock_detector(m, fetch, queues, (load, compute, store),
                                           reader.idle & writer.idle)
        sources = [fetch.error, load.error, compute.error, store.error, reader.error,
                   writer.error, Mux(deadlock, isa.ErrorCode.DEADLOCK, 0)]
        first = 0
        for src in reversed(sources):
            first = Mux(src != 0, src, first)
        with m.If((error == 0) & Cat(*[s != 0 for s in sources]).any()):
            m.d.sync += error.eq(first)
        abort = error != 0
        for unit in (fetch, load, compute, store):
            m.d.comb += unit.abort.eq(abort)

        queues_empty = Cat(*[q.level == 0 for q in queues.values()]).all()
        units_idle = queues_empty & load.idle & compute.idle & store.idle
        dma_idle = reader.idle & writer.idle
        m.d.comb += fetch.units_idle.eq(units_idle & dma_idle)
        # After an error the queues may still hold instructions nobody will run (a soft reset
        # drops them): the core is quiet once no unit is working and the bus is idle.
        quiet = load.idle & compute.idle & store.idle & dma_idle
        busy = fetch.running | (abort & ~quiet)
        m.d.comb += [fetch.start.eq(regs.start & ~abort), fetch.prog_addr.eq(regs.prog_addr),
                     fetch.prog_len.eq(regs.prog_len)]

        # Soft reset.
        with m.If(regs.soft_reset):
            m.d.sync += soft_reset_pending.eq(1)
        m.d.comb += engine_reset.eq(soft_reset_pending & dma_idle)
        with m.If(engine_reset):
            m.d.sync += [soft_reset_pending.eq(0), error.eq(0)]

        err_pc = Signal(32)
        with m.If((error == 0) & Cat(*[s != 0 for s in sources]).any()):
            m.d.sync += err_pc.eq(fetch.pc)
        done = fetch.done & ~abort
        m.d.comb += [regs.busy.eq(busy), regs.done.eq(done), regs.error.eq(error),
                     regs.err_pc.eq(err_pc), self.irq.eq((done | (abort & ~busy)))]

        # Performance counters, cleared by start.
        events = {
            "cycles": busy, "array_busy": compute.array_busy,
            "stall_weights": compute.stall_weights,
            "stall_compute_token": compute.wait_token, "stall_load_token": load.wait_token,
            "stall_store_token": store.wait_token, "stall_queue_full": fetch.stall_queue_full,
        }
        for name, event in events.items():
            counter = Signal(64, name=f"count_{name}")
            with m.If(regs.start):
                m.d.sync += counter.eq(0)
            with m.Elif(event & busy):
                m.d.sync += counter.eq(counter + 1)
            m.d.comb += getattr(regs, name).eq(counter)
        read_base, write_base = Signal(32), Signal(32)  # DMA byte counters at START
        with m.If(regs.start):
            m.d.sync += [read_base.eq(reader.bytes_read), write_base.eq(writer.bytes_written)]
        m.d.comb += [regs.dma_bytes_read.eq((reader.bytes_read - read_base)[:32]),
                     regs.dma_bytes_written.eq((writer.bytes_written - write_base)[:32])]
        return m

    @staticmethod
    def _deadlock_detector(m, fetch, queues, units, dma_idle):
        """A program whose tokens do not match would wait forever.  That state is exact:
        every unit is idle with an empty queue or waits for a token, at least one waits,
        the bus is quiet and fetch can do nothing.  Nothing can change it, so it is reported
        (after a few cycles, to let a token pushed in the last cycle be seen)."""
        stuck = [unit.idle & (unit.wait_token | (q.level == 0))
                 for unit, q in zip(units, queues.values())]
        waiting = Cat(*[unit.wait_token for unit in units]).any()
        candidate = fetch.stuck & dma_idle & Cat(*stuck).all() & waiting
        limit = NPUCore.DEADLOCK_CYCLES
        count = Signal(range(limit + 1))
        m.d.sync += count.eq(Mux(candidate, Mux(count == limit, limit, count + 1), 0))
        return count == limit
