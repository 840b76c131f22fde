"""An independent AXI4 / AXI4-Lite protocol checker for the cocotb benches.

:class:`AxiChecker` samples every channel of the core's AXI4 manager port (``m_axi_``) and
AXI4-Lite subordinate port (``s_axil_``) at each rising clock edge and records a violation
of any of these rules (AMBA AXI and ACE Protocol Specification, issue H, A3.2-A3.4, B1):

* a VALID, once high, stays high with its payload unchanged until READY (every channel, both
  directions: the core's requests and the bus models' responses);
* AR/AW: INCR bursts of ``2**size <= bus width`` bytes that do not cross a 4 KiB boundary;
* W: WLAST on the last beat of each burst only (beats counted against the AW lengths, in
  order, whichever of AW and W comes first);
* R: only for an outstanding read burst, RLAST on its last beat only; B: only for a write
  burst whose AW and last W beat have both been seen;
* AXI4-Lite: B only after a write's AW and W, R only after an AR.

Nothing is checked while reset is high.  The first violation fails the test (the bench also
calls :meth:`AxiChecker.check` after each program).
"""

from __future__ import annotations

from collections import deque

import cocotb
from cocotb.triggers import RisingEdge
from cocotbext.axi import AxiBus, AxiLiteBus

__all__ = ["AxiChecker", "AxiProtocolError"]

BOUNDARY = 4096
BURST_INCR = 1


class AxiProtocolError(AssertionError):
    """An AXI rule was broken (the message names the port, channel, rule and time)."""


def _v(sig) -> int:
    return int(sig.value)


class _Channel:
    """VALID/READY and payload stability of one channel."""

    def __init__(self, name, valid, ready, payload):
        self.name, self.valid, self.ready = name, valid, ready
        self.payload = payload          # name -> signal
        self.pending = None             # payload of a VALID not yet taken

    def sample(self):
        """``(fire, payload, problem)`` for this edge."""
        valid, ready = _v(self.valid), _v(self.ready)
        problem = None
        payload = {k: _v(s) for k, s in self.payload.items()} if valid else None
        if self.pending is not None:
            if not valid:
                problem = f"{self.name}VALID fell before {self.name}READY"
            elif payload != self.pending:
                diff = {k: (self.pending[k], payload[k]) for k in payload
                        if payload[k] != self.pending[k]}
                problem = f"{self.name} payload changed while waiting for READY: {diff}"
        self.pending = payload if valid and not ready else None
        return bool(valid and ready), payload, problem


class AxiChecker:
    """Protocol checker on the core's ports; ``errors`` lists every violation seen.

    Parameters
    ----------
    dut : cocotb handle
        The core (ports ``m_axi_*``, ``s_axil_*``, ``clk``, ``rst``).
    bus_bytes : int
        The AXI4 data width in bytes.
    """

    def __init__(self, dut, bus_bytes: int):
        self.dut, self.bus_bytes = dut, bus_bytes
        self.errors: list[str] = []
        self.counts = {"ar": 0, "r": 0, "aw": 0, "w": 0, "b": 0, "lite_w": 0, "lite_r": 0}
        axi = AxiBus.from_prefix(dut, "m_axi_")
        lite = AxiLiteBus.from_prefix(dut, "s_axil_")
        ar, r, aw = axi.read.ar, axi.read.r, axi.write.aw
        w, b = axi.write.w, axi.write.b
        self.ch = {
            "AR": _Channel("AR", ar.arvalid, ar.arready, {
                "addr": ar.araddr, "len": ar.arlen, "size": ar.arsize, "burst": ar.arburst}),
            "R": _Channel("R", r.rvalid, r.rready, {"data": r.rdata, "resp": r.rresp,
                                                     "last": r.rlast}),
            "AW": _Channel("AW", aw.awvalid, aw.awready, {
                "addr": aw.awaddr, "len": aw.awlen, "size": aw.awsize, "burst": aw.awburst}),
            "W": _Channel("W", w.wvalid, w.wready, {"data": w.wdata, "strb": w.wstrb,
                                                     "last": w.wlast}),
            "B": _Channel("B", b.bvalid, b.bready, {"resp": b.bresp}),
        }
        lw, lr = lite.write, lite.read
        self.lite = {
            "AW": _Channel("s_axil AW", lw.aw.awvalid, lw.aw.awready, {"addr": lw.aw.awaddr}),
            "W": _Channel("s_axil W", lw.w.wvalid, lw.w.wready, {"data": lw.w.wdata}),
            "B": _Channel("s_axil B", lw.b.bvalid, lw.b.bready, {"resp": lw.b.bresp}),
            "AR": _Channel("s_axil AR", lr.ar.arvalid, lr.ar.arready, {"addr": lr.ar.araddr}),
            "R": _Channel("s_axil R", lr.r.rvalid, lr.r.rready, {"data": lr.r.rdata}),
        }
        self._reset_state()
        self._task = cocotb.start_soon(self._run())

    def _reset_state(self):
        self.reads = deque()        # beats left of each outstanding read burst
        self.aw_lens = deque()      # beats of AW bursts whose W beats are not all counted
        self.w_done = deque()       # W bursts (beat counts) ended by WLAST, AW not yet seen
        self.w_beats = 0            # beats of the W burst in progress
        self.b_due = 0              # bursts with AW and last W seen, B not yet
        self.aw_done = 0            # AW bursts whose W beats are complete
        self.lite_aw = self.lite_w = self.lite_ar = 0
        for c in list(self.ch.values()) + list(self.lite.values()):
            c.pending = None

    def check(self):
        """Raise :class:`AxiProtocolError` if any rule was broken so far."""
        if self.errors:
            raise AxiProtocolError(f"{len(self.errors)} AXI protocol violations, first: "
                                   f"{self.errors[0]}")

    def _fail(self, msg):
        t = cocotb.utils.get_sim_time("ns")
        self.errors.append(f"{t:.0f} ns: {msg}")
        raise AxiProtocolError(self.errors[-1])

    async def _run(self):
        clk, rst = self.dut.clk, self.dut.rst
        while True:
            await RisingEdge(clk)
            if _v(rst):
                self._reset_state()
                continue
            for name, c in self.ch.items():
                fire, p, problem = c.sample()
                if problem:
                    self._fail(f"m_axi {problem}")
                if fire:
                    getattr(self, f"_on_{name.lower()}")(p)
            self._lite()

    def _burst(self, kind, p):
        if p["burst"] != BURST_INCR:
            self._fail(f"m_axi {kind}BURST={p['burst']}, not INCR")
        nbytes = 1 << p["size"]
        if nbytes > self.bus_bytes:
            self._fail(f"m_axi {kind}SIZE={p['size']} wider than the {self.bus_bytes}-byte bus")
        first = p["addr"] & ~(nbytes - 1)
        end = first + (p["len"] + 1) * nbytes
        if first // BOUNDARY != (end - 1) // BOUNDARY:
            self._fail(f"m_axi {kind} burst {p['addr']:#x} + {p['len'] + 1} beats of {nbytes} B "
                       f"crosses a 4 KiB boundary")

    def _on_ar(self, p):
        self.counts["ar"] += 1
        self._burst("AR", p)
        self.reads.append(p["len"] + 1)

    def _on_r(self, p):
        self.counts["r"] += 1
        if not self.reads:
            self._fail("m_axi R beat with no outstanding read burst")
        self.reads[0] -= 1
        last = self.reads[0] == 0
        if p["last"] != last:
            self._fail(f"m_axi RLAST={p['last']} on a beat that is {'' if last else 'not '}"
                       f"the last of its burst")
        if last:
            self.reads.popleft()

    def _on_aw(self, p):
        self.counts["aw"] += 1
        self._burst("AW", p)
        self.aw_lens.append(p["len"] + 1)
        self._match_w()

    def _on_w(self, p):
        self.counts["w"] += 1
        self.w_beats += 1
        if self.aw_lens and len(self.w_done) == 0 and self.w_beats > self.aw_lens[0]:
            self._fail(f"m_axi W beat {self.w_beats} of a {self.aw_lens[0]}-beat burst "
                       f"(WLAST missing)")
        if p["last"]:
            self.w_done.append(self.w_beats)
            self.w_beats = 0
            self._match_w()

    def _match_w(self):
        while self.aw_lens and self.w_done:
            want, got = self.aw_lens.popleft(), self.w_done.popleft()
            if want != got:
                self._fail(f"m_axi WLAST after {got} beats of a {want}-beat burst")
            self.b_due += 1

    def _on_b(self, p):
        self.counts["b"] += 1
        if self.b_due == 0:
            self._fail("m_axi B response with no write burst complete (AW and WLAST)")
        self.b_due -= 1

    def _lite(self):
        fires = {}
        for name, c in self.lite.items():
            fire, p, problem = c.sample()
            if problem:
                self._fail(problem)
            fires[name] = fire
        self.lite_aw += fires["AW"]
        self.lite_w += fires["W"]
        self.lite_ar += fires["AR"]
        if fires["B"]:
            self.counts["lite_w"] += 1
            if min(self.lite_aw, self.lite_w) == 0:
                self._fail("s_axil B response before the write's AW and W")
            self.lite_aw -= 1
            self.lite_w -= 1
        if fires["R"]:
            self.counts["lite_r"] += 1
            if self.lite_ar == 0:
                self._fail("s_axil R response with no read outstanding")
            self.lite_ar -= 1
