"""``make bench``: int8 GEMMs on the RTL core (Verilator), a table and ``build/bench.json``.

Every cycle from START to done is counted (program fetch, loads, compute, stores).  For
reference the table shows what SCALE-Sim's weight-stationary model gives for the same layer
and array: each fold costs 2R + C + T - 2 cycles with T = M, folds = ceil(K/R) * ceil(N/C).

Then the C++ Verilator harness (``testbench/harness``): its speed per array size on the
same 256^3 GEMM program (and, where the cocotb bench ran it, against the cocotb bench's
speed measured in this run), its one-time build cost, and whole networks (ResNet-50,
MobileNetV2: every layer of the workload table, random int8 tensors) on the 16x16 core,
each layer's DRAM checked against the functional model (``--model``: and every counter
against the cycle-exact model, which is slow).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")   # no BLAS threads spinning beside the RTL

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from hdl.config import NPUConfig  # noqa: E402
from sim_models.compiler import Requant, compile_gemm  # noqa: E402
from testbench import BUILD, build, fresh_report, run_cocotb, stimulus_seed  # noqa: E402

DEFAULT_CASES = [
    # rows, cols, dataflow, bus_bits, M, K, N
    (16, 16, "ws", 128, 256, 256, 256),
    (8, 8, "ws", 128, 256, 256, 256),
    (8, 8, "ws", 64, 128, 128, 128),
    (8, 8, "os", 128, 64, 256, 64),
]
HARNESS_SIZES = ["4x4", "8x8", "16x16", "32x32"]
NETWORKS = ["resnet50", "mobilenet_v2"]


def scalesim_ws_cycles(R, C, M, K, N) -> int:
    folds = math.ceil(K / R) * math.ceil(N / C)
    return folds * (2 * R + C + M - 2)


def bench_gemm(cfg: NPUConfig, M: int, K: int, N: int, seed: int):
    """The program ``testbench/cocotb_bench.py`` runs for this seed (same data, same words)."""
    rng = np.random.default_rng(seed)
    return compile_gemm(cfg, rng.integers(-128, 128, (M, K)), rng.integers(-128, 128, (K, N)),
                        requant=Requant(scale=1.0 / (16 * K)), name=f"gemm_{M}x{K}x{N}")


def cocotb_cases(cases, seed: int) -> list[dict] | None:
    """The GEMM cases on the cocotb bench (Verilator -O1), as before."""
    records = []
    for R, C, df, bus, M, K, N in cases:
        cfg = NPUConfig(rows=R, cols=C, dataflow=df, bus_bits=bus)
        report = fresh_report(f"bench-{cfg.core_name}-{M}x{K}x{N}.json")
        print(f"running {M}x{K}x{N} on {cfg.core_name} (seed {seed}) ...", flush=True)
        t0 = time.perf_counter()
        build("verilator", cfg, core=True, opt="-O1")
        build_s = time.perf_counter() - t0
        tests, failed = run_cocotb("verilator", cfg, "testbench.cocotb_bench", core=True,
                                   seed=seed, opt="-O1",
                                   extra_env={"KNPU_GEMM": f"{M},{K},{N}",
                                              "KNPU_REPORT": str(report)})
        if not report.exists():
            print(f"  FAILED: no report ({failed} of {tests} cocotb tests failed)")
            return None
        r = json.loads(report.read_text())
        r["scalesim_ws_cycles"] = scalesim_ws_cycles(R, C, M, K, N)
        r["scalesim_ws_utilization"] = r["macs"] / (R * C * r["scalesim_ws_cycles"])
        r.update(backend="cocotb-verilator", wall_s=r["sim_wall_s"], cpu_s=r["sim_cpu_s"],
                 cycles_per_s=r["cycles"] / r["sim_wall_s"],
                 cycles_per_cpu_s=r["cycles"] / r["sim_cpu_s"], build_s=round(build_s, 2),
                 load_average=os.getloadavg()[0])
        records.append(r)
    return records


def print_cocotb(records) -> None:
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
    print("model: the cycle-exact model's prediction (every counter equal to the RTL's: "
          f"{all(r['model_counters_equal'] for r in records)})")
    for r in records:
        print(f"cocotb bench speed {r['rows']}x{r['cols']} {r['dataflow']} "
              f"{r['M']}x{r['K']}x{r['N']}: {r['cycles_per_s']:.0f} cycles/s, "
              f"{r['cycles_per_cpu_s']:.0f} per CPU s (load average {r['load_average']:.1f})")


def harness_speed(size: str, seed: int, cocotb: list[dict], repeats: int = 5,
                  threads: int = 1) -> dict:
    """Build (timed) and run the 256^3 GEMM on the harness for one array size and Verilator
    thread count; best of ``repeats`` runs, checked against the golden model and, where the
    cocotb bench ran the same program, against its counters."""
    from scripts.cli import parse_size
    from testbench import Harness, build_harness, recorded_build_seconds

    R, C = parse_size(size)
    cfg = NPUConfig(rows=R, cols=C)
    print(f"harness {cfg.core_name} --threads {threads}: build ...", flush=True)
    lib, build_s = build_harness(cfg, threads=threads)
    layer = bench_gemm(cfg, 256, 256, 256, seed)
    harness = Harness(cfg, library=lib)
    runs = [harness.run(layer.dram, layer.program_addr, len(layer.program))
            for _ in range(repeats)]
    best = min(runs, key=lambda r: r.wall_s)
    rec = {"backend": "verilator", "rows": R, "cols": C, "threads": threads,
           "dataflow": cfg.dataflow,
           "bus_bits": cfg.bus_bits, "M": 256, "K": 256, "N": 256, "cycles": best.cycles,
           "wall_s": best.wall_s, "cycles_per_s": best.cycles / best.wall_s,
           "cpu_s": best.meta["cpu_s"], "cycles_per_cpu_s": best.cycles / best.meta["cpu_s"],
           "build_s": round(build_s, 2), "build_cached": build_s == 0.0,
           "first_build_s": recorded_build_seconds(lib),
           "matches_golden": bool(np.array_equal(layer.output(best.dram), layer.expected)),
           "load_average": os.getloadavg()[0]}
    same = [c for c in cocotb if (c["rows"], c["cols"], c["dataflow"], c["bus_bits"], c["M"],
                                  c["K"], c["N"]) == (R, C, "ws", cfg.bus_bits, 256, 256, 256)]
    if same:
        rec["cocotb_cycles_per_s"] = same[0]["cycles_per_s"]
        rec["speedup_vs_cocotb"] = rec["cycles_per_s"] / same[0]["cycles_per_s"]
        rec["cocotb_cycles_per_cpu_s"] = same[0]["cycles_per_cpu_s"]
        rec["speedup_vs_cocotb_cpu"] = rec["cycles_per_cpu_s"] / same[0]["cycles_per_cpu_s"]
        rec["counters_equal_cocotb"] = best.counters == same[0]["counters"]
    return rec


def print_harness(records) -> None:
    head = (f"{'array':>7} {'thr':>3} {'cycles':>9} {'wall s':>8} {'cycles/s':>10} {'/CPU s':>10} "
            f"{'build s':>8} "
            f"{'golden':>6} | {'cocotb c/s':>10} {'/CPU s':>8} {'speedup':>8} {'/CPU s':>7} "
            f"{'counters':>8}")
    print(head)
    print("-" * len(head))
    for r in records:
        build_s = r["first_build_s"] if r["build_cached"] else r["build_s"]
        cached = "*" if r["build_cached"] else " "
        line = (f"{r['rows']:>3}x{r['cols']:<3} {r['threads']:>3} {r['cycles']:>9} "
                f"{r['wall_s']:>8.3f} "
                f"{r['cycles_per_s']:>10.0f} {r['cycles_per_cpu_s']:>10.0f} "
                f"{build_s or 0:>7.1f}{cached} "
                f"{str(r['matches_golden']):>6} |")
        if "speedup_vs_cocotb" in r:
            line += (f" {r['cocotb_cycles_per_s']:>10.0f} {r['cocotb_cycles_per_cpu_s']:>8.0f} "
                     f"{r['speedup_vs_cocotb']:>7.0f}x {r['speedup_vs_cocotb_cpu']:>6.0f}x "
                     f"{'equal' if r['counters_equal_cocotb'] else 'DIFFER':>8}")
        print(line)
    print("cycles/s: per second of wall time; /CPU s: per second of the simulation's CPU time "
          "(all its threads; what other jobs on the machine do not take away; cocotb: its "
          "process's)")
    for size in dict.fromkeys((r["rows"], r["cols"]) for r in records):
        runs = [r for r in records if (r["rows"], r["cols"]) == size]
        best = max(runs, key=lambda r: r["cycles_per_s"])
        others = ", ".join(f"--threads {r['threads']} {r['cycles_per_s'] / 1e3:.0f} k"
                           for r in runs if r is not best)
        print(f"harness {size[0]}x{size[1]}: {best['cycles_per_s'] / 1e3:.0f} k cycles/s "
              f"(wall, --threads {best['threads']}, {best['cycles_per_cpu_s'] / 1e3:.0f} k per "
              f"CPU s)" + (f"; {others}" if others else ""))
    loads = ", ".join(f"{r['load_average']:.1f}" for r in records)
    print(f"load average during the runs: {loads}")
    print("build s: one-time Verilator + C++ build (* cached: the time recorded when it was built)")


def run_networks(names, seed: int, model: bool) -> list[dict]:
    """Each network, every layer, on the 16x16 harness (one simulated chip per network)."""
    from testbench import Harness, build_harness, run_network

    cfg = NPUConfig(rows=16, cols=16)
    lib, _ = build_harness(cfg)
    out = []
    for name in names:
        print(f"{name} on {cfg.core_name}{' (+ cycle model)' if model else ''} ...", flush=True)
        t0 = time.perf_counter()

        def log(r):
            extra = f" model {'equal' if r['model_equal'] else 'DIFFERS'} {r['model_s']:.1f}s" \
                if "model_s" in r else ""
            print(f"  {r['layer']:<24} {r['cycles']:>10} cycles {r['wall_s']:>7.2f}s "
                  f"dram {'equal' if r['dram_equal'] else 'DIFFERS'}{extra}", flush=True)

        layers = run_network(cfg, name, seed=seed, model=model,
                             harness=Harness(cfg, library=lib), log=log)
        total = time.perf_counter() - t0
        rec = {"backend": "verilator", "network": name, "rows": 16, "cols": 16,
               "layers": len(layers), "cycles": sum(r["cycles"] for r in layers),
               "wall_s": sum(r["wall_s"] for r in layers), "total_wall_s": total,
               "cpu_s": sum(r["cpu_s"] for r in layers),
               "functional_s": sum(r["functional_s"] for r in layers),
               "dram_equal_functional": all(r["dram_equal"] for r in layers),
               "golden_equal": all(r["golden_equal"] for r in layers), "per_layer": layers}
        rec["cycles_per_s"] = rec["cycles"] / rec["wall_s"]
        if model:
            rec["model_equal"] = all(r["model_equal"] for r in layers)
            rec["model_s"] = sum(r["model_s"] for r in layers)
        print(f"{name}: {rec['layers']} layers, {rec['cycles']} cycles, RTL {rec['wall_s']:.1f} s "
              f"({rec['cycles_per_s']:.0f} cycles/s; {rec['cpu_s']:.1f} s CPU), {total:.1f} s "
              f"in all (compile and "
              f"functional model included); DRAM equal to the functional model: "
              f"{rec['dram_equal_functional']}"
              + (f"; cycle model equal: {rec['model_equal']} ({rec['model_s']:.0f} s)"
                 if model else ""), flush=True)
        out.append(rec)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="only the 8x8 128^3 case")
    p.add_argument("--cocotb", choices=("all", "16x16", "none"), default="all",
                   help="which cocotb GEMM cases to run (default: all)")
    p.add_argument("--harness-sizes", nargs="*", default=HARNESS_SIZES,
                   help="array sizes for the harness speed (default: %(default)s)")
    p.add_argument("--harness-threads", nargs="*", type=int, default=[1],
                   help="Verilator --threads of the harness, each size run with each "
                        "(default: %(default)s)")
    p.add_argument("--networks", nargs="*", default=NETWORKS,
                   help="whole networks on the 16x16 harness (default: %(default)s)")
    p.add_argument("--model", action="store_true",
                   help="also check every network layer's counters with the cycle model (slow)")
    args = p.parse_args(argv)
    cases = {"all": DEFAULT_CASES, "16x16": DEFAULT_CASES[:1], "none": []}[args.cocotb]
    cases = DEFAULT_CASES[2:3] if args.quick else cases
    seed = stimulus_seed()
    records = cocotb_cases(cases, seed)
    if records is None:
        return 1
    if records:
        print_cocotb(records)
    harness = [harness_speed(size, seed, records, threads=t) for size in args.harness_sizes
               for t in args.harness_threads]
    if harness:
        print_harness(harness)
    networks = run_networks(args.networks, seed, args.model) if args.networks else []
    out = BUILD / "bench.json"
    out.write_text(json.dumps(records + harness + networks, indent=1))
    print(f"wrote {out}")
    ok = all(r["matches_golden"] and r["model_counters_equal"] for r in records)
    ok &= all(r["matches_golden"] and r.get("counters_equal_cocotb", True) for r in harness)
    ok &= all(r["dram_equal_functional"] and r["golden_equal"] and r.get("model_equal", True)
              for r in networks)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
