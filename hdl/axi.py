"""AXI4 and AXI4-Lite interface signatures (manager's view).

Member names follow the AMBA spec, so Amaranth's flattened ports come out as
``m_axi__araddr`` etc. and cocotbext-axi binds to them with ``from_prefix(dut, "m_axi_")``.
"""

from __future__ import annotations

from amaranth import Shape
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["axi4_signature", "axi4_read_signature", "axi4_write_signature", "axi4_lite_signature",
           "half", "RESP_OKAY", "RESP_SLVERR", "RESP_DECERR", "BURST_INCR"]

RESP_OKAY, RESP_EXOKAY, RESP_SLVERR, RESP_DECERR = 0, 1, 2, 3
BURST_INCR = 1


ID_WIDTH = 4


def axi4_read_signature(addr_width: int, data_width: int) -> wiring.Signature:
    """The read half of an AXI4 manager port: AR and R channels (INCR bursts, one ID)."""
    return wiring.Signature({
        "arid": Out(ID_WIDTH), "rid": In(ID_WIDTH),
        "araddr": Out(addr_width), "arlen": Out(8), "arsize": Out(3), "arburst": Out(2),
        "arvalid": Out(1), "arready": In(1),
        "rdata": In(data_width), "rresp": In(2), "rlast": In(1),
        "rvalid": In(1), "rready": Out(1),
    })


def axi4_write_signature(addr_width: int, data_width: int) -> wiring.Signature:
    """The write half of an AXI4 manager port: AW, W and B channels."""
    return wiring.Signature({
        "awid": Out(ID_WIDTH), "bid": In(ID_WIDTH),
        "awaddr": Out(addr_width), "awlen": Out(8), "awsize": Out(3), "awburst": Out(2),
        "awvalid": Out(1), "awready": In(1),
        "wdata": Out(data_width), "wstrb": Out(data_width // 8), "wlast": Out(1),
        "wvalid": Out(1), "wready": In(1),
        "bresp": In(2), "bvalid": In(1), "bready": Out(1),
    })


def axi4_signature(addr_width: int, data_width: int) -> wiring.Signature:
    """A full AXI4 manager port (INCR bursts; one ID, 0, so responses come in order): the
    members of both halves, flat, so the Verilog ports are ``m_axi__araddr`` and so on."""
    members = dict(axi4_write_signature(addr_width, data_width).members)
    members.update(axi4_read_signature(addr_width, data_width).members)
    return wiring.Signature(members)


class _Half:
    """The members of one half of a flat AXI4 port, as an interface of that half."""

    def __init__(self, signature: wiring.Signature, port):
        self.signature = signature
        for name in signature.members:
            setattr(self, name, getattr(port, name))


def half(port, which: str) -> _Half:
    """``port``'s read (``"read"``) or write (``"write"``) half, for :func:`wiring.connect`
    to a component that speaks only that half (the DMA engines)."""
    members = port.signature.members
    widths = [Shape.cast(members[name].shape).width for name in ("awaddr", "wdata")]
    make = {"read": axi4_read_signature, "write": axi4_write_signature}[which]
    return _Half(make(*widths), port)


def axi4_lite_signature(addr_width: int = 8, data_width: int = 32) -> wiring.Signature:
    """An AXI4-Lite manager port; the core's register block takes it flipped."""
    return wiring.Signature({
        "awaddr": Out(addr_width), "awprot": Out(3), "awvalid": Out(1), "awready": In(1),
        "wdata": Out(data_width), "wstrb": Out(data_width // 8), "wvalid": Out(1),
        "wready": In(1),
        "bresp": In(2), "bvalid": In(1), "bready": Out(1),
        "araddr": Out(addr_width), "arprot": Out(3), "arvalid": Out(1), "arready": In(1),
        "rdata": In(data_width), "rresp": In(2), "rvalid": In(1), "rready": Out(1),
    })
