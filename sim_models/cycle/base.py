"""Building blocks of the cycle model: the Amaranth library pieces the RTL is made of.

Every model unit in this package follows the same small clocked interface: its registers
are attributes; methods named after the HDL component's output ports compute that cycle's
combinational values from the registers (and from the inputs they depend on), without
changing anything; ``clock(...)`` takes the cycle's inputs and gives every register its
next value, in the order the HDL's ``m.d.sync`` statements do (a later statement wins).
"""

from __future__ import annotations

from collections import deque

__all__ = ["Fifo", "Delay"]


class Fifo:
    """``amaranth.lib.fifo.SyncFIFOBuffered``: ``depth - 1`` entries in a memory with a
    synchronous read, plus the output register that ``r_rdy`` flags (``out`` keeps the last
    value read, as ``r_data`` does)."""

    __slots__ = ("depth", "cap", "inner", "out", "r_rdy")

    def __init__(self, depth: int):
        if depth < 2:
            raise ValueError(f"Fifo depth must be at least 2, not {depth}")
        self.depth = depth
        self.cap = depth - 1
        self.reset()

    def reset(self):
        self.inner: deque = deque()
        self.out = None
        self.r_rdy = False

    @property
    def level(self) -> int:
        return len(self.inner) + self.r_rdy

    @property
    def w_rdy(self) -> bool:
        return len(self.inner) != self.cap

    def clock(self, w_en: bool, w_data, r_en: bool):
        do_write = w_en and len(self.inner) != self.cap
        if self.inner and (not self.r_rdy or r_en):
            self.out = self.inner.popleft()
            self.r_rdy = True
        elif r_en:
            self.r_rdy = False
        if do_write:
            self.inner.append(w_data)


class Delay:
    """``hdl.pipeline.DelayLine``: ``o`` is ``i`` from ``depth`` cycles ago."""

    __slots__ = ("line",)

    def __init__(self, depth: int, init=0):
        self.line = deque([init] * depth) if depth else None

    def o(self, i):
        return self.line[0] if self.line is not None else i

    def clock(self, i):
        if self.line is not None:
            self.line.popleft()
            self.line.append(i)
