"""``make bench``: int8 GEMMs on the RTL core (Verilator), a table and ``build/bench.json``.

Every cycle from START to done is counted (program fetch, loads, compute, stores).  For
reference the table shows what SCALE-Sim's weight-stationary model gives for the same layer
and array: each fold costs 2R + C + T - 2 cycles with T = M, folds = ceil(K/R) * ceil(N/C).
"""

from __future__ import annotations

import argparse
import json
import math
import sys

from hdl.config import NPUConfig
from testbench.rtl import BUILD, fresh_report, run_cocotb
from testbench.stimulus import stimulus_seed

DEFAULT_CASES = [
    # rows, cols, dataflow, bus_bits, M, K, N
    (16, 16, "ws", 128, 256, 256, 256),
    (8, 8, "ws", 128, 256, 256, 256),
    (8, 8, "ws", 64, 128, 128, 128),
    (8, 8, "os", 128, 64, 256, 64),
]


def scalesim_ws_cycles(R, C, M, K, N) -> int:
    folds = math.ceil(K / R) * math.ceil(N / C)
    return folds * (2 * R + C + M - 2)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="only the 8x8 128^3 case")
    args = p.parse_args(argv)
    cases = DEFAULT_CASES[2:3] if args.quick else DEFAULT_CASES
    records = []
    for R, C, df, bus, M, K, N in cases:
        cfg = NPUConfig(rows=R, cols=C, dataflow=df, bus_bits=bus)
        report = fresh_report(f"bench-{cfg.core_name}-{M}x{K}x{N}.json")
        seed = stimulus_seed()
        print(f"running {M}x{K}x{N} on {cfg.core_name} (seed {seed}) ...", flush=True)
        tests, failed = run_cocotb("verilator", cfg, "testbench.cocotb_bench", core=True,
                                   seed=seed, opt="-O1",
                                   extra_env={"KNPU_GEMM": f"{M},{K},{N}",
                                              "KNPU_REPORT": str(report)})
        if not report.exists():
            print(f"  FAILED: no report ({failed} of {tests} cocotb tests failed)")
            return 1
        r = json.loads(report.read_text())
        r["scalesim_ws_cycles"] = scalesim_ws_cycles(R, C, M, K, N)
        r["scalesim_ws_utilization"] = r["macs"] / (R * C * r["scalesim_ws_cycles"])
        records.append(r)
    out = BUILD / "bench.json"
    out.write_text(json.dumps(records, indent=1))
    head = (f"{'array':>7} {'df':>3} {'bus':>4} {'M x K x N':>13} {'cycles':>9} {'util':>6} "
            f"{'golden':>6} {'model':>9} | {'SCALE-Sim WS':>12} {'util':>6} {'speedup':>7}")
    print(head)
    print("-" * len(head))
    for r in records:
        print(f"{r['rows']:>3}x{r['cols']:<3} {r['dataflow']:>3} {r['bus_bits']:>4} "
              f"{r['M']:>4}x{r['K']:>3}x{r['N']:<4} {r['cycles']:>9} {r['utilization']:>6.3f} "
              f"{str(r['matches_golden']):>6} {r['model_cycles']:>9} | {r['scalesim_ws_cycles']:>12} "
              f"{r['scalesim_ws_utilization']:>6.3f} "
              f"{r['scalesim_ws_cycles'] / r['cycles']:>6.2f}x")
    print(f"wrote {out}")
    print("model: the cycle-exact model's prediction (every counter equal to the RTL's: "
          f"{all(r['model_counters_equal'] for r in records)})")
    return 0 if all(r["matches_golden"] and r["model_counters_equal"] for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
