"""Functional coverage: the bins a fuzz campaign (and ``make coverage``'s fuzz batch) must hit.

The bins are cocotb-coverage ``CoverPoint`` s and one ``CoverCross`` (:class:`Bins`), one
set per dataflow; a campaign's per-program bin counts are sampled into them and reported
with the bins hit and missed.  Three sources fill the counts:

* the program's words (:func:`program_bins`): every opcode and each dependency flag the
  hardware acts on; stores by mode (raw, requantized TFLite, requantized onnxruntime) x the
  clamp in force (none, ReLU, ReLU6, other) x whether the last CONFIG set all lanes or one;
  COMPUTE overwriting, accumulating or max-accumulating; DMA rows split at 4 KiB on reads
  and on writes;
* the RTL's run (:func:`run_bins`): the fault code it stopped with;
* the cycle model running the program in lockstep with the RTL (same counters, same
  handshakes, the RTL run's DRAM pauses replayed), observed cycle by cycle
  (:class:`SamplingNPU`): bank conflicts on each port pair (scratchpad: the two operand
  streams; accumulator writes: compute vs LOAD_ACC; accumulator reads: compute's
  accumulate vs STORE), each token counter at 0 and at its limit, the fetch unit held by a
  full queue for each queue, and a DRAM pause holding a transfer on each AXI channel.
"""

from __future__ import annotations

from collections import Counter

from cocotb_coverage.coverage import CoverCross, CoverPoint, coverage_db

from hdl import isa
from hdl.isa import ErrorCode, Opcode
from sim_models.cycle import CycleNPU
from sim_models.cycle.core import TOKENS
from sim_models.cycle.dram import AxiRamTiming
from sim_models.cycle.units import TokenCounter

__all__ = ["program_bins", "run_bins", "all_bins", "bin_space", "Bins", "SamplingNPU",
           "SamplingRam", "summarize", "CLAMPS"]

CLAMPS = {(-128, 127): "none", (0, 127): "relu", (0, 6): "relu6"}
#: flags each opcode acts on (CONFIG ignores all; PRELOAD pushes only to the load unit)
FLAGS_OF = {Opcode.LOAD: ("pop_next", "push_next"), Opcode.LOAD_ACC: ("pop_next", "push_next"),
            Opcode.PRELOAD: ("pop_prev", "pop_next", "push_prev"),
            Opcode.COMPUTE: isa.FLAGS, Opcode.STORE: ("pop_prev", "push_prev")}
STORE_MODES = ("raw", "tflite", "onnxruntime", "add")
COMPUTE_MODES = ("overwrite", "accumulate", "max")
LANES = ("all-lanes", "one-lane")
#: the memory port pairs that can meet in one bank
PORT_PAIRS = ("sp stream_a x stream_b", "acc compute_write x load_acc",
              "acc compute_read x store_read")
QUEUES = ("load", "compute", "store")


def bin_space(dataflow: str) -> dict:
    """``{kind: [bin, ...]}`` for a core of ``dataflow`` (an OS core has no PRELOAD)."""
    ops = [op for op in Opcode if dataflow == "ws" or op != Opcode.PRELOAD]
    return {
        "op": [op.name for op in ops],
        "flag": [f"{op.name}.{f}" for op, fs in FLAGS_OF.items() if op in ops for f in fs],
        "fault": [e.name for e in ErrorCode],
        "store": [f"{m}/{c}/{lanes}" for m in STORE_MODES
                  for c in (*CLAMPS.values(), "other") for lanes in LANES],
        "compute_mode": list(COMPUTE_MODES),
        "split4k": ["read", "write"],
        "bank_conflict": list(PORT_PAIRS),
        "token": [f"{t} {end}" for t in TOKENS for end in ("zero", "limit")],
        "queue_full": list(QUEUES),
        "axi_pause": list(AxiRamTiming.CHANNELS),
    }


def all_bins(dataflow: str) -> list[str]:
    """Every bin as a label ``"kind bin"``."""
    return [f"{kind} {b}" for kind, bins in bin_space(dataflow).items() for b in bins]


class Bins:
    """The cocotb-coverage points of one configuration named ``name`` (a core of
    ``dataflow``): ``knpu.<name>.<kind>``; the store bins are the cross of three points
    ``store_mode``, ``store_clamp``, ``store_lanes``.  cocotb-coverage's database is global
    to the process: one set per name, made once, counting every sample given to it."""

    _made: dict = {}

    def __new__(cls, dataflow: str, name: str | None = None):
        name = name or dataflow
        if name not in cls._made:
            cls._made[name] = super().__new__(cls)
            cls._made[name]._define(dataflow, name)
        elif cls._made[name].dataflow != dataflow:
            raise ValueError(f"bins {name!r} were made for a {cls._made[name].dataflow} core")
        return cls._made[name]

    def _define(self, dataflow: str, name: str):
        self.dataflow = dataflow
        self.prefix = f"knpu.{name}"
        self.space = bin_space(dataflow)
        self.samplers = {}
        for kind, bins in self.space.items():
            if kind == "store":
                continue
            self.samplers[kind] = CoverPoint(f"{self.prefix}.{kind}", xf=lambda v: v,
                                             bins=list(bins))(lambda v: None)
        parts = {"mode": list(STORE_MODES), "clamp": [*CLAMPS.values(), "other"],
                 "lanes": list(LANES)}
        f = (lambda mode, clamp, lanes: None)
        for i, (name, bins) in enumerate(parts.items()):
            f = CoverPoint(f"{self.prefix}.store_{name}", xf=lambda *a, i=i: a[i],
                           bins=bins)(f)
        self.samplers["store"] = CoverCross(
            f"{self.prefix}.store", items=[f"{self.prefix}.store_{n}" for n in parts])(f)

    def sample(self, label: str, times: int = 1):
        kind, value = label.split(" ", 1)
        if kind not in self.samplers:
            raise ValueError(f"unknown bin kind {kind!r} in {label!r}")
        for _ in range(times):
            if kind == "store":
                self.samplers[kind](*value.split("/"))
            else:
                self.samplers[kind](value)

    def hits(self) -> dict:
        """``{label: hits}`` for every bin, as cocotb-coverage counted them."""
        out = {}
        for kind in self.space:
            detail = coverage_db[f"{self.prefix}.{kind}"].detailed_coverage
            for b, n in detail.items():
                out[f"{kind} {'/'.join(b) if isinstance(b, tuple) else b}"] = n
        return out


def _split(addr, nbytes):
    return nbytes > 0 and addr // 4096 != (addr + nbytes - 1) // 4096


def program_bins(prog) -> Counter:
    """Bins reached by the instructions of one program (the faulting tail included)."""
    c = Counter()
    clamp, lanes, mode = None, None, "tflite"
    for w in prog.words:
        try:
            d = isa.decode(w)
        except isa.IsaError:
            continue
        op = d["op"]
        c[f"op {op.name}"] += 1
        for f in FLAGS_OF.get(op, ()):
            c[f"flag {op.name}.{f}"] += d[f]
        if op == Opcode.CONFIG and not d["add_inner"]:
            lanes = "all-lanes" if d["lane"] == isa.CONFIG_ALL_LANES else "one-lane"
            clamp = CLAMPS.get((d["clamp_min"], d["clamp_max"]), "other")
            # A refused CONFIG (rounding 3) changes nothing.
            mode = dict(enumerate(STORE_MODES[1:])).get(d["rounding"], mode)
        if op == Opcode.COMPUTE:
            mode = d["accumulate"] + (d["accumulate"] & d["acc_max"])
            c[f"compute_mode {COMPUTE_MODES[mode]}"] += 1
        if op == Opcode.STORE and clamp is not None:
            c[f"store {'raw' if d['raw'] else mode}/{clamp}/{lanes}"] += 1
        if op in (Opcode.LOAD, Opcode.LOAD_ACC, Opcode.STORE):
            width = d["ncols"] * (1 if op == Opcode.LOAD or (op == Opcode.STORE and
                                                             not d["raw"]) else 4)
            rows = [d["dram_addr"] + r * d["dram_stride"] for r in range(min(d["nrows"], 64))]
            if any(_split(a, width) for a in rows):
                c["split4k write" if op == Opcode.STORE else "split4k read"] += 1
    return c


def run_bins(result) -> Counter:
    """Bins reached by one RTL run (its error code) and by the cycle model that ran in
    lockstep with it (``result.meta["model_bins"]``, from :class:`SamplingNPU`)."""
    c = Counter({f"fault {result.error.name}": 1})
    c.update(result.meta.get("model_bins") or {})
    return c


class SamplingRam(AxiRamTiming):
    """The cycle model's DRAM, noting each channel on which a pause held a transfer."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.samples = Counter()
        self._low = {"ar": False, "aw": False, "w": False}   # READY low for a pause only

    def edge(self, arvalid, ar, rready, awvalid, aw, wvalid, w_bytes, bready):
        held = {"ar": arvalid and self._low["ar"], "aw": awvalid and self._low["aw"],
                "w": wvalid and self._low["w"],
                "r": (not self.rvalid or rready) and bool(self.r_q) and self._paused["r"],
                "b": (not self.bvalid or bready) and bool(self.b_q) and self._paused["b"]}
        for ch, h in held.items():
            self.samples[f"axi_pause {ch}"] += bool(h)
        super().edge(arvalid, ar, rready, awvalid, aw, wvalid, w_bytes, bready)
        queues = {"ar": self.ar_q, "aw": self.aw_q, "w": self.w_q}
        for ch, q in queues.items():
            self._low[ch] = self._before[ch] and len(q) < self.LIMIT


class SamplingNPU(CycleNPU):
    """The cycle model, noting per cycle the dynamic bins (see the module's docstring) in
    :attr:`samples` (cleared by each :meth:`run`); it computes exactly what
    :class:`CycleNPU` does."""

    def __init__(self, cfg, memory: SamplingRam | None = None):
        super().__init__(cfg, memory or SamplingRam(cfg.bus_bytes))
        self.samples = Counter()

    def run(self, *args, **kwargs):
        self.samples = Counter()
        if isinstance(self.mem, SamplingRam):
            self.mem.samples = self.samples
        return super().run(*args, **kwargs)

    def _registers(self, c: dict, start: bool):
        s = self.samples
        (a_en, a_addr), (b_en, b_addr) = c["sp_ports"]
        s["bank_conflict " + PORT_PAIRS[0]] += a_en and b_en and \
            self.sp.bank(a_addr) == self.sp.bank(b_addr)
        (w_en, w_addr), (r_en, r_addr) = c["acc_w"], c["acc_r"]
        load_writes = c["l_rsp_valid"] and self.load.busy and self.load.acc
        s["bank_conflict " + PORT_PAIRS[1]] += w_en and load_writes and \
            self.acc.bank(w_addr) == self.acc.bank(self.load.mem_addr)
        s["bank_conflict " + PORT_PAIRS[2]] += r_en and self.store.acc_en(c["abort"]) and \
            self.acc.bank(r_addr) == self.acc.bank(self.store.acc_addr)
        dest = self.fetch.dest(c["abort"])
        if dest is not None and not c["q_ready"][dest]:
            s[f"queue_full {dest.name.lower()}"] += 1
        super()._registers(c, start)
        for name, t in self.tokens.items():
            s[f"token {name} zero"] += t.count == 0
            s[f"token {name} limit"] += t.count == TokenCounter.LIMIT


def summarize(dataflow: str, per_program, name: str | None = None) -> dict:
    """Sample each program's bins (a ``{label: count}`` per program; a bin counts once per
    program that reached it) into the :class:`Bins` named ``name`` (once per process) and
    report from cocotb-coverage: ``{"hit", "total", "missed", "hits"}`` (``hits``: programs
    per bin)."""
    bins = Bins(dataflow, name)
    if getattr(bins, "summarized", False):
        raise ValueError(f"bins {name or dataflow!r} were already summarized in this process")
    bins.summarized = True
    known = set(all_bins(dataflow))
    for counts in per_program:
        for label, n in counts.items():
            if n and label in known:
                bins.sample(label)
    hits = bins.hits()
    missed = [b for b in all_bins(dataflow) if not hits.get(b)]
    return {"hit": len(known) - len(missed), "total": len(known), "missed": missed,
            "hits": hits}
