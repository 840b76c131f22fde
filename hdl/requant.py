"""The post-processing unit: TFLite-style requantization of int32 accumulators to int8.

Bit-exact with :func:`sim_models.golden.requantize`.  Five pipeline stages per lane, one
accumulator row per cycle:

0. add the per-channel bias (32-bit wrap, like the accumulator)
1. saturating left shift (``shift > 0``)
2. 32 x 32 -> 64-bit product with the Q31 multiplier
3. rounding doubling high multiply (gemmlowp's nudge; INT32_MIN * INT32_MIN saturates)
4. rounding divide by 2**-shift (``shift < 0``), add the zero point, clamp
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["Requantizer", "LATENCY"]

LATENCY = 5
INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


class _Lane(wiring.Component):
    """One output channel's requantization pipeline."""

    def __init__(self):
        super().__init__({
            "en": In(1),
            "acc": In(signed(32)), "bias": In(signed(32)),
            "multiplier": In(signed(32)), "shift": In(signed(8)),
            "zero_point": In(signed(8)), "clamp_min": In(signed(8)), "clamp_max": In(signed(8)),
            "out": Out(signed(8)),
        })

    def elaborate(self, platform):
        m = Module()
        # Parameters only change between STORE instructions (CONFIG is ordered with them in
        # the store queue, and a STORE completes before the next instruction starts), so
        # they need no staging.
        left = Mux(self.shift > 0, self.shift, 0)[:5]
        right = Mux(self.shift < 0, -self.shift, 0)[:6]

        s0 = Signal(signed(32))
        with m.If(self.en):
            m.d.sync += s0.eq(self.acc + self.bias)

        s1 = Signal(signed(32))
        wide = Signal(signed(64))
        m.d.comb += wide.eq(s0 << left)
        with m.If(self.en):
            m.d.sync += s1.eq(Mux(wide > INT32_MAX, INT32_MAX, Mux(wide < INT32_MIN, INT32_MIN, wide)))

        s2 = Signal(signed(64))
        s2_overflow = Signal()
        with m.If(self.en):
            m.d.sync += [s2.eq(s1 * self.multiplier),
                         s2_overflow.eq((s1 == INT32_MIN) & (self.multiplier == INT32_MIN))]

        s3 = Signal(signed(32))
        total = Signal(signed(65))
        m.d.comb += total.eq(s2 + Mux(s2 >= 0, 1 << 30, 1 - (1 << 30)))
        magnitude = Signal(65)
        m.d.comb += magnitude.eq(Mux(total < 0, -total, total) >> 31)
        high = Mux(total < 0, -magnitude.as_signed(), magnitude.as_signed())
        with m.If(self.en):
            m.d.sync += s3.eq(Mux(s2_overflow, INT32_MAX, high))

        mask = Signal(32)
        m.d.comb += mask.eq((1 << right) - 1)
        remainder = s3.as_unsigned() & mask
        threshold = (mask >> 1) + (s3 < 0)
        rounded = Signal(signed(33))
        m.d.comb += rounded.eq((s3 >> right) + (remainder > threshold))
        shifted = Signal(signed(34))
        m.d.comb += shifted.eq(rounded + self.zero_point)
        with m.If(self.en):
            m.d.sync += self.out.eq(Mux(shifted < self.clamp_min, self.clamp_min,
                                        Mux(shifted > self.clamp_max, self.clamp_max, shifted)))
        return m


class Requantizer(wiring.Component):
    """``lanes`` int32 -> int8 in a 5-stage pipeline that advances when ``en`` is high.

    Per-lane bias, multiplier and shift (per output channel; equal in every lane for per-tensor
    scaling), shared zero point and clamp range (the activation: none, ReLU, ReLU6).
    """

    def __init__(self, lanes: int):
        self.lanes = lanes
        super().__init__({
            "en": In(1),
            "acc": In(data.ArrayLayout(signed(32), lanes)),
            "bias": In(data.ArrayLayout(signed(32), lanes)),
            "multiplier": In(data.ArrayLayout(signed(32), lanes)),
            "shift": In(data.ArrayLayout(signed(8), lanes)),
            "zero_point": In(signed(8)), "clamp_min": In(signed(8)), "clamp_max": In(signed(8)),
            "out": Out(data.ArrayLayout(signed(8), lanes)),
        })

    def elaborate(self, platform):
        m = Module()
        for i in range(self.lanes):
            lane = m.submodules[f"lane{i}"] = _Lane()
            m.d.comb += [
                lane.en.eq(self.en), lane.acc.eq(self.acc[i]), lane.bias.eq(self.bias[i]),
                lane.multiplier.eq(self.multiplier[i]), lane.shift.eq(self.shift[i]),
                lane.zero_point.eq(self.zero_point), lane.clamp_min.eq(self.clamp_min),
                lane.clamp_max.eq(self.clamp_max), self.out[i].eq(lane.out),
            ]
        return m
