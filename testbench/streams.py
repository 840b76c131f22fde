"""cocotb drivers and monitors for Amaranth ``lib.stream`` ports (``<name>__valid``,
``<name>__ready``, ``<name>__payload``).

cocotbext-axi covers AXI; Amaranth streams carry packed struct payloads with no byte lanes,
so these two small classes follow cocotbext's source/monitor pattern for them.
"""

from __future__ import annotations

import random
from collections import deque

import cocotb
from cocotb.triggers import RisingEdge

from hdl.layout import pack, unpack

__all__ = ["StreamSource", "StreamMonitor"]


class StreamSource:
    """Drives beats (dicts of payload fields) onto a valid/ready input of the DUT.

    ``pause_probability`` drops ``valid`` at random between beats (seeded ``rng``), to prove
    the DUT's flow control.  ``stalls`` counts cycles a beat was offered but not taken.
    """

    def __init__(self, dut, name: str, layout, clk, rng: random.Random | None = None,
                 pause_probability: float = 0.0):
        self.valid = getattr(dut, f"{name}__valid")
        self.ready = getattr(dut, f"{name}__ready")
        self.payload = getattr(dut, f"{name}__payload")
        self.layout, self.clk = layout, clk
        self.rng, self.pause_probability = rng, pause_probability
        self.queue: deque = deque()
        self.sent = 0
        self.stalls = 0
        self.first_fire: int | None = None
        self.cycle = 0
        self.valid.value = 0
        self._task = cocotb.start_soon(self._run())

    def send(self, beats) -> None:
        self.queue.extend(beats)

    @property
    def empty(self) -> bool:
        return not self.queue and not int(self.valid.value)

    def stop(self) -> None:
        self._task.cancel()
        self.valid.value = 0

    async def _run(self):
        offered = False
        while True:
            await RisingEdge(self.clk)
            self.cycle += 1
            if offered:
                if int(self.ready.value):
                    if self.queue:  # a test may have flushed the queue meanwhile
                        self.queue.popleft()
                    self.sent += 1
                    if self.first_fire is None:
                        self.first_fire = self.cycle
                else:
                    self.stalls += 1
            pause = self.rng is not None and self.rng.random() < self.pause_probability
            offered = bool(self.queue) and not pause
            self.valid.value = int(offered)
            if offered:
                self.payload.value = pack(self.layout, **self.queue[0])


class StreamMonitor:
    """Collects every beat the DUT presents on a valid-only (or valid/ready) output."""

    def __init__(self, dut, name: str, layout, clk):
        self.valid = getattr(dut, f"{name}__valid")
        self.payload = getattr(dut, f"{name}__payload")
        self.layout, self.clk = layout, clk
        self.beats: list = []
        self.cycles: list = []
        self.cycle = 0
        self._task = cocotb.start_soon(self._run())

    def stop(self) -> None:
        self._task.cancel()

    async def _run(self):
        powered_up = False
        while True:
            await RisingEdge(self.clk)
            self.cycle += 1
            valid = self.valid.value
            if not valid.is_resolvable:
                # Flip-flops power up unknown in a gate-level netlist: X is fine until reset
                # has made valid known, and a bug after that.
                if powered_up:
                    raise AssertionError(f"{self.valid._name} is {valid} after reset")
                continue
            powered_up = True
            if int(valid):
                value = self.payload.value
                if not value.is_resolvable:
                    raise AssertionError(
                        f"{self.valid._name}: valid beat with X/Z in the payload: {value}")
                self.beats.append(unpack(self.layout, int(value)))
                self.cycles.append(self.cycle)
