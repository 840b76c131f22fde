"""RegisterBlock: the core's AXI4-Lite subordinate (control, status, counters)."""

from __future__ import annotations

from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from . import regmap
from .axi import axi4_lite_signature

__all__ = ["RegisterBlock"]


class RegisterBlock(wiring.Component):
    """One write and one read in flight at a time; unknown addresses read 0, writes to them
    are ignored (OKAY), as in most AXI-Lite register files."""

    def __init__(self, cfg):
        self.cfg = cfg
        counters = {name: In(64) for name in regmap.COUNTERS}
        super().__init__({
            "axil": In(axi4_lite_signature(8, 32)),
            "start": Out(1), "soft_reset": Out(1),
            "prog_addr": Out(32), "prog_len": Out(32),
            "dram_base": Out(32), "dram_size": Out(32, init=0xFFFF_FFFF),
            "busy": In(1), "done": In(1), "error": In(8), "err_pc": In(32),
            **counters,
        })

    def elaborate(self, platform):
        m = Module()
        bus = self.axil
        writable = {regmap.PROG_ADDR: self.prog_addr, regmap.PROG_LEN: self.prog_len,
                    regmap.DRAM_BASE: self.dram_base, regmap.DRAM_SIZE: self.dram_size}

        m.d.sync += [self.start.eq(0), self.soft_reset.eq(0)]
        take_write = bus.awvalid & bus.wvalid & ~bus.bvalid
        m.d.comb += [bus.awready.eq(take_write), bus.wready.eq(take_write)]
        with m.If(take_write):
            m.d.sync += [bus.bvalid.eq(1), bus.bresp.eq(0)]
            with m.Switch(bus.awaddr):
                with m.Case(regmap.CTRL):
                    m.d.sync += [self.start.eq(bus.wdata[0]), self.soft_reset.eq(bus.wdata[1])]
                for addr, reg in writable.items():
                    with m.Case(addr):
                        m.d.sync += reg.eq(bus.wdata)
        with m.Elif(bus.bvalid & bus.bready):
            m.d.sync += bus.bvalid.eq(0)

        status = Signal(32)
        m.d.comb += status.eq(self.busy | (self.done << 1) | ((self.error != 0) << 2) |
                              (self.error << 8))
        readable = {regmap.STATUS: status, regmap.ERR_PC: self.err_pc,
                    regmap.HWINFO: regmap.hwinfo(self.cfg), **writable}
        for name, addr in regmap.COUNTERS.items():
            value = getattr(self, name)
            readable[addr] = value[:32]
            readable[addr + 4] = value[32:]
        m.d.comb += bus.arready.eq(~bus.rvalid)
        with m.If(bus.arvalid & bus.arready):
            m.d.sync += [bus.rvalid.eq(1), bus.rresp.eq(0), bus.rdata.eq(0)]
            with m.Switch(bus.araddr):
                for addr, value in readable.items():
                    with m.Case(addr):
                        m.d.sync += bus.rdata.eq(value)
        with m.Elif(bus.rvalid & bus.rready):
            m.d.sync += bus.rvalid.eq(0)
        return m
