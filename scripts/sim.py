"""``make sim``: build the default core, run a small network through the RTL, report per layer.

    python scripts/sim.py                      # 8x8 WS core, 128-bit bus, Verilator
    python scripts/sim.py --dataflow os --sim icarus --waves
    python scripts/sim.py --array --gemm 64 64 64   # the bare systolic array instead
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from hdl.config import ConfigError, NPUConfig
from testbench import BUILD, fresh_report, run_cocotb
from testbench import stimulus_seed


def _waveform(sim: str, name: str) -> str:
    found = sorted((BUILD / "sim" / sim).glob(f"{name}_waves*/**/*.fst")) + \
        sorted((BUILD / "sim" / sim).glob(f"{name}_waves*/**/*.vcd"))
    return str(found[-1]) if found else "(none found)"


def run_core(cfg: NPUConfig, sim: str, waves: bool) -> int:
    seed = stimulus_seed()
    report = fresh_report("sim.json")
    print(f"knpu sim: {cfg.core_name} on {sim}, seed {seed} (replay with KNPU_SEED={seed})")
    t0 = time.monotonic()
    tests, failed = run_cocotb(sim, cfg, "testbench.cocotb_demo", core=True, seed=seed,
                               waves=waves,
                               extra_env={"KNPU_REPORT": str(report)})
    wall = time.monotonic() - t0
    records = json.loads(report.read_text()) if report.exists() else []
    head = f"{'layer':<24} {'MACs':>9} {'cycles':>8} {'util':>6} {'DMA in/out (B)':>16}  result"
    print(head)
    print("-" * len(head))
    for r in records:
        print(f"{r['layer']:<24} {r['macs']:>9} {r['cycles']:>8} {r['utilization']:>6.1%} "
              f"{r['dma_bytes_read']:>8}/{r['dma_bytes_written']:<7}  "
              f"{'PASS' if r['matches_golden'] else 'FAIL'} vs golden")
    ok = failed == 0 and tests == 1 and len(records) > 0
    if not ok:
        print(f"FAIL: {failed} of {tests} cocotb tests failed; "
              f"see {BUILD}/sim/{sim}/{cfg.core_name}*.run/cocotb_demo/sim.log")
    print(f"wall time {wall:.1f} s (build cached under {BUILD}/sim); report {report}")
    if waves:
        print(f"waveform: {_waveform(sim, cfg.core_name)}  (view: gtkwave <file>)")
    return 0 if ok else 1


def run_array(cfg: NPUConfig, sim: str, gemm, waves: bool) -> int:
    M, K, N = gemm
    seed = stimulus_seed()
    report = fresh_report("sim_array.json")
    print(f"knpu sim: {cfg.name} on {sim}, GEMM {M}x{K}x{N}, seed {seed}")
    tests, failed = run_cocotb(sim, cfg, "testbench.cocotb_gemm", seed=seed, waves=waves,
                               extra_env={"KNPU_GEMM": f"{M},{K},{N}",
                                          "KNPU_REPORT": str(report)})
    if not report.exists():
        print("FAIL: the simulation wrote no report")
        return 1
    r = json.loads(report.read_text())
    print(f"  result      : {'MATCH' if r['matches_golden'] else 'MISMATCH'} vs golden model")
    print(f"  cycles      : {r['cycles']} (first input beat to last result row)")
    print(f"  MACs/cycle  : {r['macs_per_cycle']:.2f} of {cfg.rows * cfg.cols} "
          f"(utilization {r['utilization']:.1%})")
    if waves:
        print(f"  waveform    : {_waveform(sim, cfg.name)}")
    return 0 if (failed == 0 and tests == 1 and r["matches_golden"]) else 1


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=8)
    p.add_argument("--cols", type=int, default=8)
    p.add_argument("--dataflow", default="ws")
    p.add_argument("--bus-bits", type=int, default=128)
    p.add_argument("--sim", default="verilator", choices=["verilator", "icarus"])
    p.add_argument("--waves", action="store_true", help="dump a waveform and print its path")
    p.add_argument("--array", action="store_true", help="the bare array with one GEMM")
    p.add_argument("--gemm", type=int, nargs=3, default=[64, 64, 64], metavar=("M", "K", "N"))
    args = p.parse_args(argv)
    try:
        cfg = NPUConfig(rows=args.rows, cols=args.cols, dataflow=args.dataflow,
                        bus_bits=args.bus_bits, sp_lines=4096, acc_lines=256)
    except ConfigError as err:
        p.error(f"bad config: {err}")
    if args.array:
        if min(args.gemm) < 1:
            p.error(f"bad GEMM shape {args.gemm}: every dimension must be >= 1")
        return run_array(cfg, args.sim, args.gemm, args.waves)
    return run_core(cfg, args.sim, args.waves)


if __name__ == "__main__":
    sys.exit(main())
