"""Cycle model of :class:`hdl.streamer.LineStreamer`."""

from __future__ import annotations

from typing import NamedTuple

from hdl.streamer import LineStreamer as _LineStreamerHDL

from .base import Fifo

__all__ = ["LineStreamer", "StreamCmd"]


class StreamCmd(NamedTuple):
    base: int
    count: int       #: lines read from memory
    total: int       #: lines streamed (the rest are zero lines)
    push: bool       #: ask for a token when the final line leaves


class LineStreamer:
    """Lines ``base .. base+count-1`` then zero lines up to ``total``, one per cycle, reads
    issued only with room in the output FIFO.  Ports: ``cmd_ready``, ``port_en``/``port_addr``
    (a memory read wanted), ``out_valid``/``out_last``, ``done``/``done_push``, ``busy``."""

    FIFO_DEPTH = _LineStreamerHDL.FIFO_DEPTH

    def __init__(self, depth: int = 1 << 16):
        self.depth = depth                  # of the memory read (its address width)
        self.busy = self.issuing = self.push = False
        self.base = self.count = self.total = self.issued = 0
        self.inflight = self.inflight_last = False
        self.fifo = Fifo(self.FIFO_DEPTH)

    # -- combinational ----------------------------------------------------------------------
    @property
    def cmd_ready(self) -> bool:
        return not self.busy

    def _want(self, abort: bool) -> bool:
        return self.issuing and self.fifo.level + self.inflight < self.FIFO_DEPTH and not abort

    @property
    def zero_line(self) -> bool:
        return self.issued >= self.count

    def port_en(self, abort: bool) -> bool:
        return self._want(abort) and not self.zero_line

    @property
    def port_addr(self) -> int:
        return (self.base + self.issued) % self.depth

    def issue(self, port_ready: bool, abort: bool) -> bool:
        return self._want(abort) and (self.zero_line or port_ready)

    @property
    def out_valid(self) -> bool:
        return self.fifo.r_rdy

    @property
    def out_last(self) -> bool:
        return bool(self.fifo.out[1]) if self.fifo.out is not None else False

    def done(self, out_ready: bool) -> bool:
        return self.out_valid and out_ready and self.out_last

    def done_push(self, out_ready: bool) -> bool:
        return self.done(out_ready) and self.push

    # -- registers --------------------------------------------------------------------------
    def clock(self, cmd: StreamCmd | None, port_ready: bool, out_ready: bool, abort: bool):
        """``cmd``: the command offered this cycle (``None``: ``cmd.valid`` low)."""
        issue = self.issue(port_ready, abort)
        finished = self.done(out_ready)
        is_last = self.issued == self.total - 1
        if cmd is not None and self.cmd_ready:
            self.base, self.count, self.total, self.push = cmd
            self.issued = 0
            self.busy = self.issuing = cmd.total != 0
        self.fifo.clock(self.inflight, (None, self.inflight_last), out_ready)
        self.inflight, self.inflight_last = issue, is_last
        if issue:
            self.issued += 1
            if is_last:
                self.issuing = False
        if finished or abort:
            self.busy = self.issuing = False
