"""Prove the properties of :mod:`testbench.formal.properties` and print one line each."""

from __future__ import annotations

import argparse
import json

from testbench.rtl import BUILD

from .axi import mutant_dma
from .properties import PROPERTIES
from .runner import prove

__all__ = ["run", "main"]


def run(names=None, quick=False, log=print) -> list:
    """Prove the chosen properties (all, the ``quick`` ones, or by name); returns verdicts."""
    chosen = [p for p in PROPERTIES if (not names or p.name in names) and (p.quick or not quick)]
    unknown = set(names or ()) - {p.name for p in PROPERTIES}
    if unknown:
        raise ValueError(f"unknown properties {sorted(unknown)}: known are "
                         f"{[p.name for p in PROPERTIES]}")
    verdicts = []
    for p in chosen:
        design = p.build()
        v = prove(p.name, design, design.ports, mode=p.mode, depth=p.depth, engine=p.engine)
        kind = "k-induction" if p.mode == "prove" else "BMC"
        log(f"{p.name:28s} {v.status:8s} {kind:11s} depth {p.depth:3d}  {v.seconds:6.1f} s  "
            f"{p.what}" + (f"\n    {v.detail}\n    log: {v.log}" if not v.ok else ""))
        verdicts.append(v)
        if p.breaks is not None and not quick:
            verdicts.append(prove_break(p, log))
    return verdicts


def prove_break(p, log=print):
    """Prove ``p`` on its deliberate break of ``hdl/dma.py``: the verdict must be
    ``failed`` (the returned verdict is ``ok`` when it is)."""
    old, new, what = p.breaks
    design = p.build(dma=mutant_dma(old, new))
    v = prove(f"{p.name}.break", design, design.ports, mode=p.mode, depth=p.depth,
              engine=p.engine)
    caught = v.status == "failed"
    log(f"  {'caught' if caught else 'MISSED':8s} break: {what} ({v.seconds:.1f} s)"
        + ("" if caught else f"  [{v.status}] log: {v.log}"))
    v.status = "caught" if caught else f"missed ({v.status})"
    return v


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="knpu formal properties (SymbiYosys)")
    ap.add_argument("names", nargs="*", help="properties to prove (default: all)")
    ap.add_argument("--quick", action="store_true", help="only the quick ones (make test)")
    args = ap.parse_args(argv)
    verdicts = run(args.names, args.quick)
    out = BUILD / "formal" / "summary.json"
    out.write_text(json.dumps([{"name": v.name, "status": v.status, "mode": v.mode,
                                "depth": v.depth, "seconds": round(v.seconds, 2)}
                               for v in verdicts], indent=1))
    bad = [v.name for v in verdicts if not v.ok]
    print(f"knpu formal: {len(verdicts) - len(bad)} of {len(verdicts)} hold; summary {out}")
    return 1 if bad else 0
