"""Delay lines and skew buffers: the registers that line data up with a systolic wavefront."""

from __future__ import annotations

from amaranth import Cat, Module, Shape, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["DelayLine", "SkewBuffer"]


class DelayLine(wiring.Component):
    """``o`` is ``i`` from ``depth`` cycles ago (``depth == 0`` is a plain wire).

    The stages are one shift register (stage ``n``, ``n + 1`` cycles old, in bits
    ``[n*w, (n+1)*w)``): the same flops as one register per stage, but one register for a
    cycle-based simulator to update instead of ``depth``.

    With ``enable``, an ``en`` input: the line shifts only while it is high and holds
    otherwise (for a line whose contents matter only while something is in it).
    """

    def __init__(self, shape, depth: int, enable: bool = False):
        if depth < 0:
            raise ValueError(f"DelayLine depth must be >= 0, not {depth}")
        self.depth = depth
        self.shape = shape
        ports = {"i": In(shape), "o": Out(shape)}
        super().__init__({**ports, "en": In(1)} if enable else ports)

    def elaborate(self, platform):
        m = Module()
        if self.depth == 0:
            m.d.comb += self.o.eq(self.i)
            return m
        width = Shape.cast(self.shape).width
        stages = Signal(self.depth * width)
        with m.If(self.en if "en" in self.signature.members else 1):
            m.d.sync += stages.eq(Cat(self.i, stages[:-width]))
        m.d.comb += self.o.eq(stages[-width:])
        return m


class SkewBuffer(wiring.Component):
    """Lane ``k`` of ``o`` is lane ``k`` of ``i`` delayed by ``delays[k]`` cycles.

    With ``delays = range(n)`` it skews a row of operands into a wavefront; with
    ``delays = reversed(range(n))`` it de-skews a wavefront back into a row.
    """

    def __init__(self, lane_shape, delays):
        self.delays = tuple(delays)
        layout = data.ArrayLayout(lane_shape, len(self.delays))
        super().__init__({"i": In(layout), "o": Out(layout)})

    def elaborate(self, platform):
        m = Module()
        for lane, depth in enumerate(self.delays):
            line = m.submodules[f"lane{lane}"] = DelayLine(self.i.shape().elem_shape, depth)
            m.d.comb += [line.i.eq(self.i[lane]), self.o[lane].eq(line.o)]
        return m
