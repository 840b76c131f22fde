"""Host side of the NPU core in cocotb: cocotbext-axi models the DRAM (AxiRam) and the CPU's
register port (AxiLiteMaster); this module loads a compiled layer, runs it, reads back.

Faults are injected by hooking the AxiRam's own read/write paths: an access to a SLVERR
region raises (cocotbext answers SLVERR), and a DECERR region rewrites the response code.
"""

from __future__ import annotations

import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, First, RisingEdge
from cocotbext.axi import AxiBus, AxiLiteBus, AxiLiteMaster, AxiRam
from cocotbext.axi.constants import AxiResp

from hdl import regmap
from hdl.isa import ErrorCode

from .axi_checker import AxiChecker
from .trace_monitor import TraceMonitor

__all__ = ["CoreBench"]


def _pauses(rng: random.Random, probability: float, log: list):
    """A pause generator that also logs every value it gives (one per clock edge), so the
    cycle model can replay the DRAM's pauses."""
    while True:
        value = rng.random() < probability
        log.append(value)
        yield value


class CoreBench:
    def __init__(self, dut, cfg, mem_size: int, seed: int = 0, pause_probability: float = 0.0,
                 trace: bool = False):
        self.dut, self.cfg, self.mem_size = dut, cfg, mem_size
        cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
        self.ram = AxiRam(AxiBus.from_prefix(dut, "m_axi_"), dut.clk, dut.rst, size=mem_size)
        self.host = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil_"), dut.clk, dut.rst)
        for logger in (self.ram.write_if.log, self.ram.read_if.log, self.host.write_if.log,
                       self.host.read_if.log):
            logger.setLevel("WARNING")
        #: Named register access generated from ``hdl/regmap.py`` (``await
        #: bench.regs.read("STATUS")`` gives the decoded fields).
        self.regs = regmap.RegisterAccess(self.read_reg, self.write_reg)
        self.hwinfo: dict | None = None      # the design's HWINFO, decoded, after reset()
        # Each unit's handshakes per cycle, to name where the RTL and the cycle model part.
        self.tracer = TraceMonitor(dut, dut.clk) if trace else None
        self.slverr: list[range] = []
        self.decerr: list[range] = []
        self._install_fault_hooks()
        #: Independent AXI4 / AXI4-Lite protocol checker on both ports (fails the test).
        self.axi_checker = AxiChecker(dut, cfg.bus_bytes)
        self.pause_log: dict[str, list] = {}     # DRAM channel -> pause value per edge
        if pause_probability:
            rng = random.Random(seed)
            channels = {"aw": self.ram.write_if.aw_channel, "w": self.ram.write_if.w_channel,
                        "b": self.ram.write_if.b_channel, "ar": self.ram.read_if.ar_channel,
                        "r": self.ram.read_if.r_channel,
                        "host_aw": self.host.write_if.aw_channel,
                        "host_w": self.host.write_if.w_channel,
                        "host_b": self.host.write_if.b_channel,
                        "host_ar": self.host.read_if.ar_channel,
                        "host_r": self.host.read_if.r_channel}
            for name, ch in channels.items():
                log = self.pause_log.setdefault(name, [])
                ch.set_pause_generator(_pauses(random.Random(rng.random()), pause_probability,
                                               log))

    def _install_fault_hooks(self):
        bench = self

        def hook(iface, method, channel, resp_field):
            original = getattr(iface, method)
            state = {"decerr": False}

            async def access(address, *args):
                if any(address in r for r in bench.slverr):
                    raise IOError(f"injected SLVERR at {address:#x}")
                if any(address in r for r in bench.decerr):
                    state["decerr"] = True
                return await original(address, *args)

            setattr(iface, method, access)
            send = channel.send

            async def send_with_fault(tr):
                if state["decerr"]:
                    setattr(tr, resp_field, AxiResp.DECERR)
                    if resp_field == "bresp" or getattr(tr, "rlast", 1):
                        state["decerr"] = False
                await send(tr)

            channel.send = send_with_fault

        hook(self.ram.read_if, "_read", self.ram.read_if.r_channel, "rresp")
        hook(self.ram.write_if, "_write", self.ram.write_if.b_channel, "bresp")

    async def reset(self):
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, 4)
        self.dut.rst.value = 0
        await ClockCycles(self.dut.clk, 2)
        await self.check_hwinfo()

    async def check_hwinfo(self) -> dict:
        """Read the HWINFO registers and check that the design is the configuration this
        bench was built for (fails naming each field that differs)."""
        self.hwinfo = await self.regs.check_hwinfo(self.cfg)
        return self.hwinfo

    async def write_reg(self, addr, value):
        await self.host.write_dword(addr, value)

    async def read_reg(self, addr) -> int:
        return await self.host.read_dword(addr)

    async def counters(self) -> dict:
        """Every performance counter (name -> value), low word then high word of each."""
        return await self.regs.counters()

    async def soft_reset(self):
        await self.regs.write("CTRL", soft_reset=1)
        await ClockCycles(self.dut.clk, 4)

    async def run(self, program_addr: int, program_len: int, image: bytes | None = None,
                  timeout_cycles: int = 2_000_000, dram_base: int = 0,
                  dram_size: int | None = None) -> dict:
        """Load ``image`` at address 0, start the program, wait for ``irq`` (bounded).
        ``dram_base``/``dram_size``: the DMA window (default: the whole memory)."""
        if image is not None:
            self.ram.write(0, bytes(image))
        await self.regs.write("PROG_ADDR", program_addr)
        await self.regs.write("PROG_LEN", program_len)
        await self.regs.write("DRAM_BASE", dram_base)
        await self.regs.write("DRAM_SIZE", self.mem_size if dram_size is None else dram_size)
        mark = self.tracer.mark() if self.tracer else 0
        await self.regs.write("CTRL", start=1)
        await RisingEdge(self.dut.clk)
        timeout = ClockCycles(self.dut.clk, timeout_cycles)
        irq_marks = None     # pause values given up to irq's edge (None: irq was already up)
        if not int(self.dut.irq.value):
            fired = await First(RisingEdge(self.dut.irq), timeout)
            # Pause values given so far, the one for this (irq) edge included.
            irq_marks = {name: len(log) for name, log in self.pause_log.items()}
            if fired is timeout:
                status = await self.regs.read("STATUS")
                raise AssertionError(f"core hung: no irq after {timeout_cycles} cycles, "
                                     f"status {status}")
        status = await self.regs.read("STATUS")
        status["error_name"] = ErrorCode(status["code"]).name
        status["err_pc"] = await self.regs.read("ERR_PC")
        status["counters"] = await self.counters()
        if self.pause_log and irq_marks is not None:
            status["pause_marks"] = irq_marks
        if self.tracer:
            status["trace"] = self.tracer.since(mark)
        self.axi_checker.check()
        return status

    def read_dram(self, addr: int, nbytes: int) -> bytes:
        return self.ram.read(addr, nbytes)
