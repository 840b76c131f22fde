"""Processing elements of the systolic array, one per dataflow.

Both compute ``int{W} x int{W}`` products, sign-extend them and add them into an
``acc_width``-bit two's-complement sum that wraps on overflow (the golden model's
:func:`sim_models.golden.wrap` states the same rule).  Registers only load when the
wavefront carries valid data, so an idle array does not toggle.
"""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal, signed
from amaranth.lib import data
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .config import NPUConfig

__all__ = [
    "WeightStationaryPE", "OutputStationaryPE",
    "ws_activation_link", "ws_psum_link", "ws_weight_port", "os_row_link", "os_column_link",
]


def ws_activation_link(cfg: NPUConfig) -> wiring.Signature:
    """West -> east in a WS row: the operand, its valid flag and the weight bank it uses."""
    return wiring.Signature({
        "data": Out(signed(cfg.input_width)), "valid": Out(1), "bank": Out(1)})


def ws_psum_link(cfg: NPUConfig) -> wiring.Signature:
    """North -> south in a WS column: the partial sum."""
    return wiring.Signature({"psum": Out(signed(cfg.acc_width))})


def ws_weight_port(cfg: NPUConfig) -> wiring.Signature:
    """Weight write into one bank of a WS PE (broadcast down a column, one row enabled)."""
    return wiring.Signature({
        "data": Out(signed(cfg.input_width)), "we": Out(1), "bank": Out(1)})


def os_row_link(cfg: NPUConfig) -> wiring.Signature:
    """West -> east in an OS row: A operand, valid/last of its beat, and the drain flag."""
    return wiring.Signature({
        "data": Out(signed(cfg.input_width)), "valid": Out(1), "last": Out(1), "drain": Out(1)})


def os_column_link(cfg: NPUConfig) -> wiring.Signature:
    """North -> south in an OS column: B operand and the result being drained."""
    return wiring.Signature({
        "b": Out(signed(cfg.input_width)), "result": Out(signed(cfg.acc_width))})


class WeightStationaryPE(wiring.Component):
    """Holds two weights (double buffer) and adds ``a * w[a.bank]`` to the passing partial sum.

    The bank travels with each activation, so a new tile's weights take over exactly when
    its first activation reaches the PE, and the next tile can be preloaded meanwhile.
    """

    def __init__(self, cfg: NPUConfig):
        self.cfg = cfg
        super().__init__({
            "west": In(ws_activation_link(cfg)), "east": Out(ws_activation_link(cfg)),
            "north": In(ws_psum_link(cfg)), "south": Out(ws_psum_link(cfg)),
            "weight": In(ws_weight_port(cfg)),
        })

    def elaborate(self, platform):
        m = Module()
        W = self.cfg.input_width
        # The flops are the same as one register per value would be; they are grouped into
        # two registers (both weights; the east/south outputs) because a cycle-based
        # simulator updates each register as a whole, and with 256 PEs or more the number
        # of registers, not their width, is what it spends its time on.
        weights = Signal(2 * W)                 # bank b in bits [b*W, (b+1)*W)
        with m.If(self.weight.we):
            m.d.sync += weights.word_select(self.weight.bank, W).eq(self.weight.data)
        weight = Signal(signed(W))
        m.d.comb += weight.eq(weights.word_select(self.west.bank, W))

        # The multiply-add, wrapping in the accumulator's width.  The product is a multiply
        # written ``acc`` bits wide (the activation's sign copies are wires, which the RTLIL
        # backend drops again: ``$signed(a) * $signed(w)`` into ``acc`` bits), its ``acc``
        # low bits added to the partial sum as unsigned ``acc``-bit values: the same bits as
        # a signed sum, without the sign extensions a C++ simulator would spend on a 2W-bit
        # product and an ``acc + 1``-bit sum.  Measured on the 16x16 core's harness (GEMM
        # 1024x256x256): 418 -> 454 k cycles/s; the whole-register Mux below 462 -> 485 k;
        # the bank's word_select (a shift, not a branch) 503 k.  Synthesis (4x4 array, OSU
        # 180 nm): 432,568 -> 429,187 um2 in all; row 0's upper sum bits, copies of the
        # product's sign bit that Yosys merged before, stay separate flops (sequential
        # 86,016 -> 97,536 um2).
        acc = self.cfg.acc_width
        a = self.west.data
        product = (Cat(a, a[-1].replicate(acc - 2 * W)).as_signed() * weight)[:acc]
        total = (self.north.psum.as_unsigned() + product)[:acc]
        # valid and bank move east every cycle; the operand and the sum only with a valid one.
        # One Mux over the whole register rather than one per field: with a valid operand
        # the low fields are the west link's as they are (a C++ simulator copies them in one
        # operation), without one the held fields are the register's own.
        out = Signal(data.StructLayout({"data": signed(W), "valid": 1, "bank": 1,
                                        "psum": signed(acc)}))
        west = self.west
        m.d.sync += out.eq(Mux(west.valid, Cat(west.data, west.valid, west.bank, total),
                               Cat(out.data, 0, west.bank, out.psum)))
        m.d.comb += [self.east.data.eq(out.data), self.east.valid.eq(out.valid),
                     self.east.bank.eq(out.bank), self.south.psum.eq(out.psum)]
        return m


class OutputStationaryPE(wiring.Component):
    """Accumulates one output in place; on the tile's last beat it moves the sum into a
    result register (double buffer) and starts the next tile from zero.  Result registers
    of a column form a shift chain, drained south while the ``drain`` flag passes."""

    def __init__(self, cfg: NPUConfig):
        self.cfg = cfg
        super().__init__({
            "west": In(os_row_link(cfg)), "east": Out(os_row_link(cfg)),
            "north": In(os_column_link(cfg)), "south": Out(os_column_link(cfg)),
        })

    def elaborate(self, platform):
        m = Module()
        acc = Signal(signed(self.cfg.acc_width))
        total = Signal(signed(self.cfg.acc_width))
        m.d.comb += total.eq(acc + self.west.data * self.north.b)

        m.d.sync += [
            self.east.valid.eq(self.west.valid),
            self.east.last.eq(self.west.last),
            self.east.drain.eq(self.west.drain),
        ]
        with m.If(self.west.valid):
            m.d.sync += [self.east.data.eq(self.west.data), self.south.b.eq(self.north.b)]
            m.d.sync += acc.eq(total)
            with m.If(self.west.last):
                m.d.sync += [acc.eq(0), self.south.result.eq(total)]
        with m.If(self.west.drain & ~(self.west.valid & self.west.last)):
            m.d.sync += self.south.result.eq(self.north.result)
        return m
