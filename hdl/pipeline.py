"""Delay lines and skew buffers: the registers that line data up with a systolic wavefront."""

from __future__ import annotations

from amaranth import Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["DelayLine", "SkewBuffer"]


class DelayLine(wiring.Component):
    """``o`` is ``i`` from ``depth`` cycles ago (``depth == 0`` is a plain wire)."""

    def __init__(self, shape, depth: int):
        if depth < 0:
            raise ValueError(f"DelayLine depth must be >= 0, not {depth}")
        self.depth = depth
        self.shape = shape
        super().__init__({"i": In(shape), "o": Out(shape)})

    def elaborate(self, platform):
        m = Module()
        stage = self.i
        for n in range(self.depth):
            nxt = Signal(self.shape, name=f"stage{n}")
            m.d.sync += nxt.eq(stage)
            stage = nxt
        m.d.comb += self.o.eq(stage)
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
