"""RegisterBlock: the core's AXI4-Lite subordinate, generated from :mod:`hdl.regmap`."""

from __future__ import annotations

import textwrap

from amaranth import Const, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from . import regmap
from .axi import axi4_lite_signature

__all__ = ["RegisterBlock"]

_DOC = """The core's AXI4-Lite register block, generated from :data:`hdl.regmap.REGISTERS`.

Every register of the description is decoded here, and every port below comes from it:
an ``RW`` register is held in the block and drives an output; each field of a ``W``
register pulses an output; ``R`` registers read inputs driven by the core, or constants
(the HWINFO registers, which encode ``cfg``).  An address not in the map reads 0 and
ignores writes; every response is OKAY.  ``docs/regmap.md`` is the host's view.

Parameters
----------
cfg : NPUConfig
    The configuration the core is built with; the HWINFO registers are constants encoding
    it (:func:`hdl.regmap.hwinfo_words`).
registers : tuple of :class:`hdl.regmap.Register`
    The description to decode (the core's map unless given); it is checked first
    (:func:`hdl.regmap.check_registers`), and a bad one raises
    :class:`hdl.regmap.RegmapError` naming the problem.

Attributes
----------
axil : In(axi4_lite_signature({addr_width}, {data_width}))
    The host's port; one write and one read are in flight at a time, independently.
    Write: in a cycle where ``awvalid`` and ``wvalid`` are both high and no write response
    is pending (``bvalid`` low), ``awready`` and ``wready`` are high (combinationally) and
    the word is taken; the register changes, and ``bvalid`` rises with ``bresp`` OKAY, on
    the next cycle; ``bvalid`` stays high until ``bready``.  ``wstrb`` and ``awprot`` are
    ignored: a write stores the whole word.
    Read: ``arready`` is high while no read response is pending (``rvalid`` low); the value
    is sampled in the cycle ``arvalid & arready`` and held on ``rdata`` with ``rvalid`` and
    ``rresp`` OKAY from the next cycle until ``rready``.  ``arprot`` is ignored.
{ports}"""

_TIMING = {
    "storage": "Holds the last word written; changes the cycle after the write is taken. "
               "Valid in every cycle.",
    "pulse": "High for exactly one cycle, the cycle after a write to {where} with this bit "
             "1; low otherwise.",
    "input": "Sampled in the cycle a read of {where} is taken; must be valid in every cycle "
             "(no handshake).",
}


def _port_uses(registers) -> dict:
    """Port name -> the register bits it backs, e.g. ``STATUS[2] (0x04)``."""
    uses: dict = {}
    for reg in registers:
        if reg.constant:
            continue
        words = " and ".join(f"{a:#04x}" for a in reg.words)
        if reg.access == "RW" or not reg.fields:
            uses.setdefault(reg.port, []).append(f"{reg.name} ({words})")
            continue
        for f in reg.fields:
            extra = ", non-zero" if f.nonzero else ""
            uses.setdefault(f.port_name, []).append(f"{reg.name}{f.bits} ({words}{extra})")
    return uses


def _port_docs(registers) -> str:
    uses = _port_uses(registers)
    out = []
    for port in regmap.ports(registers).values():
        shape = f"{'Out' if port.direction == 'out' else 'In'}({port.width}"
        shape += f", init={port.reset:#x})" if port.reset else ")"
        where = " and ".join(uses[port.name])
        reg = regmap.BY_NAME.get(port.registers[0]) if port.registers else None
        name = port.registers[0] + (" (either word)" if reg and reg.width > 32 else "")
        doc = port.doc if port.doc.endswith(".") else port.doc + "."
        text = f"{where}: {doc[0].upper()}{doc[1:]} " + _TIMING[port.kind].format(where=name)
        out.append(f"{port.name} : {shape}\n"
                   + textwrap.fill(text, 88, initial_indent="    ", subsequent_indent="    "))
    return "\n".join(out)


class RegisterBlock(wiring.Component):
    # The docstring is generated below from the description (as the ports are).

    def __init__(self, cfg, registers=regmap.REGISTERS):
        regmap.check_registers(registers)
        self.cfg = cfg
        self.registers = tuple(registers)
        constants = tuple(reg for reg in self.registers if reg.constant)
        self.constants = regmap.hwinfo_words(cfg, constants)   # raises if cfg does not fit
        ports = {}
        for port in regmap.ports(self.registers).values():
            direction = Out if port.direction == "out" else In
            ports[port.name] = direction(port.width, init=port.reset)
        super().__init__({
            "axil": In(axi4_lite_signature(regmap.ADDR_WIDTH, regmap.DATA_WIDTH)),
            **ports,
        })

    def _read_value(self, m, reg):
        """What reading ``reg`` returns: its storage, its input, a constant, or its fields
        assembled from their inputs."""
        if reg.constant:
            return Const(self.constants[reg.name], reg.width)
        if reg.access == "RW" or not reg.fields:
            return getattr(self, reg.port)
        value = Signal(reg.width, name=f"{reg.name.lower()}_value")
        for f in reg.fields:
            source = getattr(self, f.port_name)
            m.d.comb += value[f.lsb:f.msb + 1].eq(source != 0 if f.nonzero else source)
        return value

    def elaborate(self, platform):
        m = Module()
        bus = self.axil
        word = regmap.DATA_WIDTH

        pulses = [getattr(self, p.name) for p in regmap.ports(self.registers).values()
                  if p.kind == "pulse"]
        m.d.sync += [p.eq(0) for p in pulses]
        take_write = bus.awvalid & bus.wvalid & ~bus.bvalid
        m.d.comb += [bus.awready.eq(take_write), bus.wready.eq(take_write)]
        with m.If(take_write):
            m.d.sync += [bus.bvalid.eq(1), bus.bresp.eq(0)]
            with m.Switch(bus.awaddr):
                for reg in self.registers:
                    if reg.access == "R":
                        continue
                    with m.Case(reg.address):
                        if reg.access == "RW":
                            m.d.sync += getattr(self, reg.port).eq(bus.wdata)
                        for f in reg.fields if reg.access == "W" else ():
                            m.d.sync += getattr(self, f.port_name).eq(bus.wdata[f.lsb:f.msb + 1])
                        if reg.access == "W" and not reg.fields:
                            m.d.sync += getattr(self, reg.port).eq(bus.wdata)
        with m.Elif(bus.bvalid & bus.bready):
            m.d.sync += bus.bvalid.eq(0)

        readable = [(reg, self._read_value(m, reg)) for reg in self.registers
                    if reg.access != "W"]
        m.d.comb += bus.arready.eq(~bus.rvalid)
        with m.If(bus.arvalid & bus.arready):
            m.d.sync += [bus.rvalid.eq(1), bus.rresp.eq(0), bus.rdata.eq(0)]
            with m.Switch(bus.araddr):
                for reg, value in readable:
                    for i, addr in enumerate(reg.words):
                        with m.Case(addr):
                            m.d.sync += bus.rdata.eq(value[word * i:word * (i + 1)])
        with m.Elif(bus.rvalid & bus.rready):
            m.d.sync += bus.rvalid.eq(0)
        return m


RegisterBlock.__doc__ = _DOC.format(addr_width=regmap.ADDR_WIDTH, data_width=regmap.DATA_WIDTH,
                                    ports=_port_docs(regmap.REGISTERS))
