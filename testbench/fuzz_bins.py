"""Functional coverage of a fuzz campaign: which bins its programs and runs reached.

Bins from the programs (what was asked of the core) and from the RTL's counters (what it
did): every opcode with each dependency flag the hardware acts on, every fault code the
RTL stopped with, store modes (raw, requantized with each clamp mode) with per-lane and
all-lanes CONFIGs, DMA rows split at 4 KiB on reads and writes, queue-full back-pressure and
token waits in each unit.  Not binned here (no observation point yet): bank conflicts per
port pair, token counters at their limit (255; a program cannot hold that many), pauses
per AXI channel (the benches pause every channel with probability 0.3 in every run).
"""

from __future__ import annotations

from collections import Counter

from hdl import isa
from hdl.isa import ErrorCode, Opcode

__all__ = ["program_bins", "all_bins", "CLAMPS"]

CLAMPS = {(-128, 127): "none", (0, 127): "relu", (0, 6): "relu6"}
#: flags each opcode acts on (CONFIG ignores all; PRELOAD pushes only to the load unit)
FLAGS_OF = {Opcode.LOAD: ("pop_next", "push_next"), Opcode.LOAD_ACC: ("pop_next", "push_next"),
            Opcode.PRELOAD: ("pop_prev", "pop_next", "push_prev"),
            Opcode.COMPUTE: isa.FLAGS, Opcode.STORE: ("pop_prev", "push_prev")}


def all_bins(dataflow: str) -> list[str]:
    """Every bin a campaign on a core of ``dataflow`` should reach."""
    bins = [f"op {op.name}" for op in Opcode if dataflow == "ws" or op != Opcode.PRELOAD]
    bins += [f"flag {op.name}.{f}" for op, fs in FLAGS_OF.items() for f in fs
             if dataflow == "ws" or op != Opcode.PRELOAD]
    bins += [f"fault {e.name}" for e in ErrorCode]
    bins += ["store raw"] + [f"store requant clamp={c}" for c in
                             (*CLAMPS.values(), "other")]
    bins += ["config all-lanes", "config one lane", "split4k read", "split4k write",
             "stall queue_full", "stall load_token", "stall compute_token",
             "stall store_token"]
    return bins


def _split(addr, nbytes):
    return nbytes > 0 and addr // 4096 != (addr + nbytes - 1) // 4096


def program_bins(prog) -> Counter:
    """Bins reached by the instructions of one program (the faulting tail included)."""
    c = Counter()
    clamp = None
    for w in prog.words:
        try:
            d = isa.decode(w)
        except isa.IsaError:
            continue
        op = d["op"]
        c[f"op {op.name}"] += 1
        for f in FLAGS_OF.get(op, ()):
            c[f"flag {op.name}.{f}"] += d[f]
        if op == Opcode.CONFIG:
            c["config all-lanes" if d["lane"] == isa.CONFIG_ALL_LANES else "config one lane"] += 1
            clamp = CLAMPS.get((d["clamp_min"], d["clamp_max"]), "other")
        if op == Opcode.STORE:
            c["store raw" if d["raw"] else f"store requant clamp={clamp}"] += 1
        if op in (Opcode.LOAD, Opcode.LOAD_ACC, Opcode.STORE):
            width = d["ncols"] * (1 if op == Opcode.LOAD or (op == Opcode.STORE and
                                                             not d["raw"]) else 4)
            rows = [d["dram_addr"] + r * d["dram_stride"] for r in range(min(d["nrows"], 64))]
            if any(_split(a, width) for a in rows):
                c["split4k write" if op == Opcode.STORE else "split4k read"] += 1
    return c


def run_bins(result) -> Counter:
    """Bins reached by one RTL run (its error code and stall counters)."""
    c = Counter({f"fault {result.error.name}": 1})
    for k in ("queue_full", "load_token", "compute_token", "store_token"):
        c[f"stall {k}"] += int(result.counters.get(f"stall_{k}", 0) > 0)
    return c
