"""The RTL's per-unit handshake trace, recorded by a cocotb monitor from the design's own
ports (the events of :data:`sim_models.cycle.trace.RTL_EVENTS`), to be compared with the
cycle model's trace when their counters disagree."""

from __future__ import annotations

import cocotb
from cocotb.triggers import FallingEdge

from sim_models.cycle.trace import RTL_EVENTS

__all__ = ["TraceMonitor"]


def _handle(dut, path: str):
    node = dut
    for part in path.split("."):
        node = getattr(node, part)
    return node


def _high(handle) -> bool:
    try:
        return bool(handle.value)
    except ValueError:          # X or Z (before reset): no handshake
        return False


class TraceMonitor:
    """Samples every unit's handshakes once per cycle (at the falling edge, when the cycle's
    values are settled) into ``events``: ``(cycle, unit, names)``."""

    def __init__(self, dut, clk):
        self.clk = clk
        self.signals = {unit: [(name, _handle(dut, valid), ready and _handle(dut, ready))
                               for name, valid, ready in events]
                        for unit, events in RTL_EVENTS.items()}
        self.cycle = 0
        self.events: list = []
        cocotb.start_soon(self._run())

    async def _run(self):
        falling = FallingEdge(self.clk)
        while True:
            await falling
            self.cycle += 1
            for unit, signals in self.signals.items():
                names = tuple(name for name, valid, ready in signals
                              if _high(valid) and (ready is None or _high(ready)))
                if names:
                    self.events.append((self.cycle, unit, names))

    def mark(self) -> int:
        return len(self.events)

    def since(self, mark: int) -> list:
        return self.events[mark:]
