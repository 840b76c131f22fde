"""On-chip memories of the core, built on ``amaranth.lib.memory``.

Both are modelled as one multi-ported array (synchronous reads, one cycle of latency).
The scratchpad holds int8 operand lines; the accumulator holds rows of int32 sums.
"""

from __future__ import annotations

from amaranth import Module
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["Scratchpad", "Accumulator", "write_port_signature", "read_port_signature"]


def write_port_signature(width: int, depth: int) -> wiring.Signature:
    return wiring.Signature({"addr": Out(range(depth)), "data": Out(width), "en": Out(1)})


def read_port_signature(width: int, depth: int) -> wiring.Signature:
    """Address and enable in; data one cycle later."""
    return wiring.Signature({"addr": Out(range(depth)), "en": Out(1), "data": In(width)})


class _PortedMemory(wiring.Component):
    def __init__(self, width: int, depth: int, writers: tuple[str, ...],
                 readers: tuple[str, ...], transparent: dict[str, str] | None = None):
        self.width, self.depth = width, depth
        self.writers, self.readers = writers, readers
        self.transparent = transparent or {}
        members = {f"w_{n}": In(write_port_signature(width, depth)) for n in writers}
        members.update({f"r_{n}": In(read_port_signature(width, depth)) for n in readers})
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        mem = m.submodules.mem = memory.Memory(shape=self.width, depth=self.depth, init=[])
        wports = {}
        for name in self.writers:
            port = wports[name] = mem.write_port()
            bus = getattr(self, f"w_{name}")
            m.d.comb += [port.addr.eq(bus.addr), port.data.eq(bus.data), port.en.eq(bus.en)]
        for name in self.readers:
            transparent = (wports[self.transparent[name]],) if name in self.transparent else ()
            port = mem.read_port(transparent_for=transparent)
            bus = getattr(self, f"r_{name}")
            m.d.comb += [port.addr.eq(bus.addr), port.en.eq(bus.en), bus.data.eq(port.data)]
        return m


class Scratchpad(_PortedMemory):
    """int8 operand lines: written by the load unit, read by the compute unit on two ports
    (activations and weights/B stream at the same time)."""

    def __init__(self, cfg):
        super().__init__(8 * cfg.sp_width, cfg.sp_lines, writers=("load",),
                         readers=("a", "b"))


class Accumulator(_PortedMemory):
    """int32 result rows: the compute unit reads-modifies-writes them (its read port sees its
    own write of the same cycle), the load unit writes biases, the store unit reads."""

    def __init__(self, cfg):
        super().__init__(32 * cfg.cols, cfg.acc_lines, writers=("compute", "load"),
                         readers=("compute", "store"), transparent={"compute": "compute"})
