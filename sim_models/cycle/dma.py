"""Cycle models of :class:`hdl.dma.RowReader` and :class:`hdl.dma.RowWriter`.

Rows are split into bursts by the very function the engines use (:func:`hdl.dma.burst_plan`);
queue depths and limits are the engines' own class attributes.  Data is not carried, except
the instruction word of a fetch (the fetch unit's timing depends on it).
"""

from __future__ import annotations

from typing import NamedTuple

from hdl.axi import RESP_OKAY, RESP_SLVERR
from hdl.dma import RowReader as _RowReaderHDL
from hdl.dma import RowWriter as _RowWriterHDL
from hdl.dma import burst_plan
from hdl.isa import ErrorCode

from .base import Fifo

__all__ = ["RowReader", "RowWriter", "ReadCmd", "bus_error"]


class ReadCmd(NamedTuple):
    addr: int
    nbytes: int
    tag: int
    word: int = 0        #: the data the model carries: a fetched instruction word


class _Pending(NamedTuple):
    nbytes: int
    nbeats: int
    tag: int
    skip: bool           #: refused (outside the window): answered without a bus access
    word: int


def bus_error(resp: int) -> ErrorCode:
    return ErrorCode.AXI_SLVERR if resp == RESP_SLVERR else ErrorCode.AXI_DECERR


class RowReader:
    """Rows over AR/R; responses in command order.  Ports as in the HDL: ``cmd_ready``,
    ``arvalid``/``ar`` (address, length), ``rready``, ``rsp_valid``/``rsp_tag``/``rsp_word``,
    ``idle``, ``error``, ``bytes_read``."""

    OUTSTANDING = _RowReaderHDL.OUTSTANDING

    def __init__(self, bus_bytes: int):
        self.B = bus_bytes
        self.bytes_read = 0
        self.reset()

    def reset(self):
        self.pending = Fifo(self.OUTSTANDING)
        self.arvalid, self.ar = False, (0, 0)
        self.second, self.second_due = (0, 0), False
        self.beat = 0
        self.out_valid, self.out_tag, self.out_word = False, 0, 0
        self.error = 0

    # -- combinational ----------------------------------------------------------------------
    def cmd_ready(self, arready: bool) -> bool:
        ar_free = (not self.arvalid) or (arready and not self.second_due)
        return ar_free and self.pending.w_rdy

    def _head(self):
        return self.pending.out if self.pending.r_rdy else None

    def _out_free(self, rsp_ready: bool) -> bool:
        return (not self.out_valid) or rsp_ready

    def _last_beat(self) -> bool:
        head = self._head()
        return head is not None and not head.skip and self.beat == head.nbeats - 1

    def rready(self, rsp_ready: bool) -> bool:
        head = self._head()
        collecting = head is not None and not head.skip
        return collecting and ((not self._last_beat()) or self._out_free(rsp_ready))

    @property
    def rsp_valid(self) -> bool:
        return self.out_valid

    def idle(self, cmd_valid: bool) -> bool:
        return not (self.pending.r_rdy or self.arvalid or self.out_valid or cmd_valid)

    # -- registers --------------------------------------------------------------------------
    def clock(self, cmd: ReadCmd | None, rsp_ready: bool, arready: bool, rvalid: bool,
              rresp: int, base: int, size: int):
        """``cmd``: the command offered this cycle (``None``: ``cmd.valid`` low)."""
        take = cmd is not None and self.cmd_ready(arready)
        r_fire = rvalid and self.rready(rsp_ready)
        last_beat = self._last_beat()
        head = self._head()
        finish = (r_fire and last_beat) or \
            (head is not None and head.skip and self._out_free(rsp_ready))
        if self.arvalid and arready:
            if self.second_due:
                self.ar, self.second_due = self.second, False
            else:
                self.arvalid = False
        entry = None
        if take:
            plan = burst_plan(cmd.addr, cmd.nbytes, self.B, base, size)
            if plan.in_range:
                self.ar, self.arvalid = (plan.first, plan.len1 - 1), True
                self.second, self.second_due = (plan.addr2, plan.len2 - 1), plan.split
            elif self.error == 0:
                self.error = ErrorCode.DMA_RANGE
            entry = _Pending(cmd.nbytes, plan.nbeats, cmd.tag, not plan.in_range,
                             cmd.word if plan.in_range else 0)
        self.pending.clock(take, entry, finish)
        if r_fire:
            self.bytes_read += self.B
            if self.error == 0 and rresp != RESP_OKAY:
                self.error = bus_error(rresp)
            self.beat = 0 if last_beat else self.beat + 1
        if finish:
            self.out_valid, self.out_tag, self.out_word = True, head.tag, head.word
        elif rsp_ready:
            self.out_valid = False


class RowWriter:
    """Rows over AW/W/B with byte strobes.  Ports as in the HDL: ``cmd_ready``,
    ``awvalid``/``aw_len``, ``wvalid`` with the byte ranges of the current beat, ``idle``,
    ``error``, ``bytes_written`` (``bready`` is always high)."""

    MAX_OUTSTANDING = _RowWriterHDL.MAX_OUTSTANDING

    def __init__(self, bus_bytes: int):
        self.B = bus_bytes
        self.bytes_written = 0
        self.reset()

    def reset(self):
        self.awvalid = self.aw_busy = self.w_busy = False
        self.aw_len, self.second_len, self.second_due = 0, 0, False
        self.w_beats = []            # per beat: the (lo, hi) byte ranges it writes
        self.beat = 0
        self.outstanding = 0
        self.error = 0

    # -- combinational ----------------------------------------------------------------------
    @property
    def wvalid(self) -> bool:
        return self.w_busy

    @property
    def w_bytes(self):
        return self.w_beats[self.beat] if self.w_busy else ()

    def _w_last_beat(self) -> bool:
        return self.w_busy and self.beat == len(self.w_beats) - 1

    def cmd_ready(self, awready: bool, wready: bool) -> bool:
        aw_free = (not self.aw_busy) or (awready and not self.second_due)
        w_free = (not self.w_busy) or (self.w_busy and wready and self._w_last_beat())
        return aw_free and w_free and self.outstanding < self.MAX_OUTSTANDING

    def idle(self, cmd_valid: bool) -> bool:
        return not (self.aw_busy or self.w_busy or self.outstanding or cmd_valid)

    # -- registers --------------------------------------------------------------------------
    def clock(self, cmd: tuple | None, awready: bool, wready: bool, bvalid: bool, bresp: int,
              base: int, size: int):
        """``cmd``: ``(addr, nbytes)`` offered this cycle, or ``None``."""
        take = cmd is not None and self.cmd_ready(awready, wready)
        w_fire = self.w_busy and wready
        last = self._w_last_beat()
        aw_fire = self.awvalid and awready
        if aw_fire:
            if self.second_due:
                self.aw_len, self.second_due = self.second_len, False
            else:
                self.awvalid = self.aw_busy = False
        if w_fire:
            self.bytes_written += self.B
            if last:
                self.w_busy = False
            self.beat += 1
        if take:
            addr, nbytes = cmd
            plan = burst_plan(addr, nbytes, self.B, base, size)
            if plan.in_range:
                B, first = self.B, plan.first
                self.w_beats = [((max(addr, first + i * B), min(addr + nbytes, first + (i + 1) * B)),)
                                for i in range(plan.nbeats)]
                self.beat = 0
                self.awvalid = self.aw_busy = self.w_busy = True
                self.aw_len, self.second_len = plan.len1 - 1, plan.len2 - 1
                self.second_due = plan.split
            elif self.error == 0:
                self.error = ErrorCode.DMA_RANGE
        self.outstanding += aw_fire - bvalid
        if bvalid and self.error == 0 and bresp != RESP_OKAY:
            self.error = bus_error(bresp)
