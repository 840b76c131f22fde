"""The DRAM the cycle model runs against: the timing of cocotbext-axi's ``AxiRam``.

This is the testbench's memory, not part of the core: its queue limit of 2 per channel is
cocotbext-axi's, not an RTL fact.  The response codes are the AXI ones of :mod:`hdl.axi`.
"""

from __future__ import annotations

from collections import deque

from hdl.axi import RESP_DECERR, RESP_OKAY, RESP_SLVERR

__all__ = ["AxiRamTiming"]


def _pause_stream(gen):
    """One value per clock edge from a pause generator; False when there is none."""
    if gen is None:
        while True:
            yield False
    yield from gen


# --- the DRAM: cocotbext-axi AxiRam timing ---------------------------------------------

class AxiRamTiming:
    """The cycle behaviour of cocotbext-axi's ``AxiRam`` as the core sees it.

    Per clock edge: each sink (AR, AW, W) queues a beat that handshook in the cycle before
    and sets ``ready`` for the next cycle to "queue below 2 and not paused"; each source
    (R, B) drives its next queued beat if the previous one was taken (or none was shown).
    Then the read and write processes advance until they block: a read burst becomes one R
    beat per queue slot, a write burst takes its W beats and answers one B.
    ``slverr``/``decerr`` are address ranges answered with that response, as the
    testbench's fault hooks do.
    """

    LIMIT = 2
    CHANNELS = ("ar", "r", "aw", "w", "b")

    def __init__(self, bus_bytes: int, pauses: dict | None = None,
                 slverr=(), decerr=()):
        self.B = bus_bytes
        self.slverr, self.decerr = list(slverr), list(decerr)
        self._pause = {ch: _pause_stream(None) for ch in self.CHANNELS}
        self._paused = {ch: False for ch in self.CHANNELS}     # value set at this edge
        self._before = {ch: False for ch in self.CHANNELS}     # value set at the edge before
        if pauses:
            self.set_pauses(pauses)
        self.ar_q, self.r_q, self.aw_q, self.w_q, self.b_q = (deque() for _ in range(5))
        self.arready = self.awready = self.wready = False
        self.rvalid, self.r_beat = False, None     # r_beat: (last, resp)
        self.bvalid, self.b_resp = False, RESP_OKAY
        self._rd = None    # [word address, beats left]
        self._wr = None    # [word address, beats left, resp]
        self._rd_decerr = self._wr_decerr = False

    def set_pauses(self, values: dict, first: dict | int = 0):
        """Pause the channels as cocotbext's pause generators do: ``values[ch][i]`` is the
        value set at the generator's i-th clock edge; ``first[ch]`` is the index that falls on
        the edge ending the START cycle.  A generator is advanced before the sinks and sources
        run at an edge, so a sink's ``ready`` follows the value of the edge before (its
        sample is taken before it waits), a source's drive the value of this edge."""
        for ch in self.CHANNELS:
            seq = list(values.get(ch, ()))
            i = first[ch] if isinstance(first, dict) else first
            at = lambda k: bool(seq[k]) if 0 <= k < len(seq) else False  # noqa: E731
            self._pause[ch] = _pause_stream(iter(seq[i:]) if seq else None)
            self._paused[ch] = at(i - 1)
            # Idle before START: ready is "queue below the limit and not paused".
            ready = at(i - 2) is False
            if ch == "ar":
                self.arready = ready and len(self.ar_q) < self.LIMIT
            elif ch == "aw":
                self.awready = ready and len(self.aw_q) < self.LIMIT
            elif ch == "w":
                self.wready = ready and len(self.w_q) < self.LIMIT

    def advance_pauses(self):
        """The pause generators' values for the coming edge (they step once per edge)."""
        for ch, gen in self._pause.items():
            self._before[ch] = self._paused[ch]
            self._paused[ch] = bool(next(gen, False))

    def _fault(self, addr: int, nbytes: int):
        if any(a in r for r in self.slverr for a in range(addr, addr + nbytes)):
            return RESP_SLVERR
        if any(a in r for r in self.decerr for a in range(addr, addr + nbytes)):
            return RESP_DECERR
        return RESP_OKAY

    def edge(self, arvalid, ar, rready, awvalid, aw, wvalid, w_bytes, bready):
        """One rising edge, given the core's outputs in the cycle before it."""
        paused, before = self._paused, self._before
        # Sinks: pause is sampled before the edge (the value set at the previous edge).
        if self.arready and arvalid:
            self.ar_q.append(ar)
        if self.awready and awvalid:
            self.aw_q.append(aw)
        if self.wready and wvalid:
            self.w_q.append(w_bytes)
        # Sources.
        if not self.rvalid or rready:
            if self.r_q and not paused["r"]:
                self.r_beat, self.rvalid = self.r_q.popleft(), True
            else:
                self.rvalid = False
        if not self.bvalid or bready:
            if self.b_q and not paused["b"]:
                self.b_resp, self.bvalid = self.b_q.popleft(), True
            else:
                self.bvalid = False
        self.arready = len(self.ar_q) < self.LIMIT and not before["ar"]
        self.awready = len(self.aw_q) < self.LIMIT and not before["aw"]
        self.wready = len(self.w_q) < self.LIMIT and not before["w"]
        self._run_read()
        self._run_write()

    def _run_read(self):
        while True:
            if self._rd is None:
                if not self.ar_q:
                    return
                addr, length = self.ar_q.popleft()
                self._rd = [addr, length + 1]
            if len(self.r_q) >= self.LIMIT:
                return
            addr, left = self._rd
            resp = self._fault(addr, self.B)
            if resp == RESP_DECERR:
                self._rd_decerr, resp = True, RESP_OKAY
            if self._rd_decerr:
                resp = RESP_DECERR
                if left == 1:
                    self._rd_decerr = False
            self.r_q.append((left == 1, resp))
            self._rd = None if left == 1 else [addr + self.B, left - 1]

    def _run_write(self):
        while True:
            if self._wr is None:
                if not self.aw_q:
                    return
                length = self.aw_q.popleft()
                self._wr = [length + 1, RESP_OKAY]
            if self._wr[0]:
                if not self.w_q:
                    return
                for lo, hi in self.w_q.popleft():       # bytes the strobes write
                    resp = self._fault(lo, hi - lo)
                    if resp == RESP_SLVERR:
                        self._wr[1] = RESP_SLVERR
                    elif resp == RESP_DECERR:
                        self._wr_decerr = True
                self._wr[0] -= 1
                continue
            if len(self.b_q) >= self.LIMIT:
                return
            resp = RESP_DECERR if self._wr_decerr else self._wr[1]
            self._wr_decerr = False
            self.b_q.append(resp)
            self._wr = None

    @property
    def idle(self) -> bool:
        return not (self.ar_q or self.r_q or self.aw_q or self.w_q or self.b_q or self.rvalid
                    or self.bvalid or self._rd or self._wr)

