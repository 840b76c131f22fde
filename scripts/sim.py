"""``make sim``: build a core, run a random GEMM through it on the RTL, report.

    python scripts/sim.py --rows 8 --cols 8 --dataflow ws --sim verilator --gemm 64 64 64
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from hdl.config import ConfigError, NPUConfig
from testbench.rtl import BUILD, run_cocotb
from testbench.stimulus import stimulus_seed


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=8)
    p.add_argument("--cols", type=int, default=8)
    p.add_argument("--dataflow", default="ws")
    p.add_argument("--sim", default="verilator", choices=["verilator", "icarus"])
    p.add_argument("--gemm", type=int, nargs=3, default=[64, 64, 64], metavar=("M", "K", "N"))
    p.add_argument("--waves", action="store_true", help="dump a waveform (FST)")
    args = p.parse_args(argv)
    try:
        cfg = NPUConfig(rows=args.rows, cols=args.cols, dataflow=args.dataflow)
    except ConfigError as err:
        p.error(f"bad config: {err}")
    if min(args.gemm) < 1:
        p.error(f"bad GEMM shape {args.gemm}: every dimension must be >= 1")
    M, K, N = args.gemm
    seed = stimulus_seed()
    report_path = BUILD / "reports" / "sim.json"
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.unlink(missing_ok=True)
    print(f"knpu sim: {cfg.name} on {args.sim}, GEMM {M}x{K}x{N} int8 -> int32, "
          f"seed {seed} (replay with KNPU_SEED={seed})")
    t0 = time.monotonic()
    tests, failed = run_cocotb(args.sim, cfg, "testbench.cocotb_gemm", seed=seed,
                               waves=args.waves, extra_env={
                                   "KNPU_GEMM": f"{M},{K},{N}",
                                   "KNPU_REPORT": str(report_path)})
    wall = time.monotonic() - t0
    if not report_path.exists():
        print("FAIL: the simulation wrote no report")
        return 1
    r = json.loads(report_path.read_text())
    print(f"  result      : {'MATCH' if r['matches_golden'] else 'MISMATCH'} vs NumPy golden model")
    print(f"  array passes: {r['passes']}")
    print(f"  cycles      : {r['cycles']} (first input beat to last result row)")
    print(f"  MACs        : {r['macs']}")
    print(f"  MACs/cycle  : {r['macs_per_cycle']:.2f} of {cfg.rows * cfg.cols} peak "
          f"(utilization {r['utilization']:.1%})")
    print(f"  wall time   : {wall:.1f} s (including build, cached under {BUILD}/sim)")
    print(f"  report      : {report_path}")
    if args.waves:
        fst = sorted((BUILD / "sim" / args.sim).glob(f"{cfg.name}_waves*/**/*.fst"))
        print(f"  waveform    : {fst[-1] if fst else '(none found)'}  (view: gtkwave <file>)")
    return 0 if (failed == 0 and tests == 1 and r["matches_golden"]) else 1


if __name__ == "__main__":
    sys.exit(main())
