"""Cycle models of :mod:`hdl.control`: the read arbiter, the error latch and the deadlock
detector."""

from __future__ import annotations

__all__ = ["ReadArbiter", "ErrorLatch", "DeadlockDetector"]


class ReadArbiter:
    """:class:`hdl.control.ReadArbiter`: ``pick_load(fetch_valid, load_valid)``; the turn
    changes when a command is taken."""

    def __init__(self):
        self.prefer_load = False

    def pick_load(self, fetch_valid: bool, load_valid: bool) -> bool:
        return load_valid and ((not fetch_valid) or self.prefer_load)

    def clock(self, fetch_valid: bool, load_valid: bool, cmd_ready: bool):
        if (fetch_valid or load_valid) and cmd_ready:
            self.prefer_load = not self.pick_load(fetch_valid, load_valid)


class ErrorLatch:
    """:class:`hdl.control.ErrorLatch`: the first nonzero source, with the pc of its cycle."""

    def __init__(self):
        self.error = self.err_pc = 0

    def clock(self, sources, pc: int, clear: bool = False):
        if self.error == 0 and any(sources):
            self.error = next(s for s in sources if s)
            self.err_pc = pc
        if clear:
            self.error = 0


class DeadlockDetector:
    """:class:`hdl.control.DeadlockDetector`: ``deadlock`` after ``cycles`` candidate cycles."""

    def __init__(self, cycles: int):
        self.cycles = cycles
        self.count = 0

    @property
    def deadlock(self) -> bool:
        return self.count == self.cycles

    def clock(self, candidate: bool):
        self.count = min(self.cycles, self.count + 1) if candidate else 0
