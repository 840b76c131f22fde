"""Random legal programs on every back end (``make fuzz N=... SEED=...``).

    python scripts/fuzz.py --n 200 --seed 1                     # this machine
    python scripts/fuzz.py --n 5000 --scheduler tcp://host:8786  # a Dask cluster (the
                                                                 # workers need this repo)
    python scripts/fuzz.py --replay build/fuzz/<core>-seed<S>-<backend>.json

Per configuration, seeds ``SEED .. SEED+N-1`` each give one program (``testbench.fuzz``);
batches of them run on the functional model, the cycle model, the Verilator harness and the
cocotb bench on Icarus and on Verilator, with random AXI pauses, and every result is compared
(``testbench.fuzz_run``).  A failing program is shrunk and saved under ``build/fuzz/``; the
summary (programs, failures and wall time per back end) goes to ``build/fuzz/report.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hdl.config import NPUConfig  # noqa: E402
from testbench import fuzz_run  # noqa: E402
from testbench import BUILD  # noqa: E402

CONFIGS = {
    "ws-4x4-b128": NPUConfig(rows=4, cols=4, dataflow="ws", bus_bits=128, sp_lines=1024,
                             acc_lines=128),
    "os-4x4-b64": NPUConfig(rows=4, cols=4, dataflow="os", bus_bits=64, sp_lines=1024,
                            acc_lines=128),
    "ws-8x4-b256": NPUConfig(rows=8, cols=4, dataflow="ws", bus_bits=256, sp_lines=1024,
                             acc_lines=128),
}


def run_batch(config: str, seeds: list, backends: list, pause: float) -> dict:
    """One batch on one configuration: ``{"config", "seeds", "problems": {seed: [...]},
    "wall": {backend: seconds}}`` (what a Dask worker returns)."""
    cfg = CONFIGS[config]
    t0 = time.perf_counter()
    _, report = fuzz_run.check_seeds(cfg, seeds, backends, pause)
    wall = {b: sum(r["wall"].get(b, 0.0) for r in report.values()) for b in backends}
    wall["functional"] = wall.get("functional", 0.0)
    bins = {}
    for r in report.values():
        for k, v in r["bins"].items():
            bins[k] = bins.get(k, 0) + v
    return {"config": config, "seeds": seeds, "wall": wall, "bins": bins,
            "program_bins": [dict(r["bins"]) for r in report.values()],
            "total_s": time.perf_counter() - t0,
            "problems": {s: r["problems"] for s, r in report.items() if r["problems"]}}


def _batches(configs, seed, n, batch):
    for config in configs:
        for lo in range(seed, seed + n, batch):
            yield config, list(range(lo, min(seed + n, lo + batch)))


def campaign(configs, seed, n, backends, pause, batch, scheduler=None) -> list:
    """Every batch of the campaign, locally or on a Dask cluster."""
    jobs = list(_batches(configs, seed, n, batch))
    if not scheduler:
        out = []
        for config, seeds in jobs:
            r = run_batch(config, seeds, backends, pause)
            _progress(r)
            out.append(r)
        return out
    from dask.distributed import Client, as_completed
    client = Client(scheduler)
    try:
        futures = [client.submit(run_batch, c, s, backends, pause, pure=False) for c, s in jobs]
        out = []
        for fut in as_completed(futures):
            out.append(fut.result())
            _progress(out[-1])
        return out
    finally:
        client.close()


def _progress(r):
    bad = len(r["problems"])
    print(f"  {r['config']}: seeds {r['seeds'][0]}..{r['seeds'][-1]}: "
          f"{len(r['seeds']) - bad} agree, {bad} fail ({r['total_s']:.1f} s)", flush=True)


def shrink_failures(results, backends, pause, shrink_budget, limit=3) -> list:
    """Shrink the first ``limit`` failing programs on the first back end each failed on and
    save reproducers (the others are in the report with their problems)."""
    from testbench import fuzz
    saved = []
    for r in results:
        for seed, problems in r["problems"].items():
            if len(saved) >= limit:
                return saved
            cfg = CONFIGS[r["config"]]
            prog = fuzz.generate(int(seed), cfg)
            failing = [b for b in backends if any(p.startswith(b + ":") for p in problems)]
            backend = failing[0] if failing else "model"
            alone = fuzz_run.check_programs(cfg, [prog], [backend], pause, fresh=True)
            note = []
            if not alone[prog.seed]["problems"]:
                note = [f"passes alone on a fresh core: fails only after the programs before "
                        f"it in its batch (seeds {r['seeds'][0]}..{seed})"]
                small = prog
            else:
                small = fuzz_run.shrink(prog, backend, pause, budget=shrink_budget)
            path = fuzz_run.save_reproducer(small, backend, note + list(problems))
            print(f"  seed {seed} ({r['config']}): {problems[0]}\n    reproducer "
                  f"({len(small.words)} instructions): {path}")
            saved.append(str(path))
    return saved


def replay(path: Path, pause: float) -> int:
    prog, backend = fuzz_run.load_reproducer(path)
    report = fuzz_run.check_programs(prog.cfg, [prog], [backend], pause, fresh=True)
    problems = report[prog.seed]["problems"]
    print(prog.describe())
    print("\n".join(problems) if problems else f"{backend}: agrees with the models")
    return 1 if problems else 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=100, help="programs per configuration")
    ap.add_argument("--seed", type=int, default=1, help="first seed")
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    ap.add_argument("--backends", nargs="+", default=list(fuzz_run.BACKENDS),
                    choices=list(fuzz_run.BACKENDS))
    ap.add_argument("--pause", type=float, default=0.3, help="AXI pause probability")
    ap.add_argument("--batch", type=int, default=50, help="programs per simulator run")
    ap.add_argument("--scheduler", default=None, help="Dask scheduler address (tcp://...)")
    ap.add_argument("--shrink-budget", type=int, default=150)
    ap.add_argument("--reproducers", type=int, default=3, help="failures to shrink and save")
    ap.add_argument("--replay", type=Path, help="rerun a saved reproducer")
    ap.add_argument("--out", type=Path, default=BUILD / "fuzz" / "report.json")
    args = ap.parse_args(argv)
    if args.replay:
        return replay(args.replay, args.pause)
    if args.n < 1 or args.batch < 1:
        ap.error(f"--n ({args.n}) and --batch ({args.batch}) must be at least 1")
    if not 0.0 <= args.pause < 1.0:
        ap.error(f"--pause {args.pause} must be in [0, 1)")
    backends = list(dict.fromkeys(args.backends))
    print(f"knpu fuzz: seeds {args.seed}..{args.seed + args.n - 1} on {', '.join(args.configs)}; "
          f"back ends {', '.join(backends)}; AXI pauses {args.pause:.0%} "
          f"(replay: make fuzz N={args.n} SEED={args.seed})", flush=True)
    t0 = time.perf_counter()
    results = campaign(args.configs, args.seed, args.n, backends, args.pause, args.batch,
                       args.scheduler)
    wall = time.perf_counter() - t0
    failures = sum(len(r["problems"]) for r in results)
    per_backend = {b: round(sum(r["wall"].get(b, 0.0) for r in results), 2) for b in backends}
    saved = shrink_failures(results, backends, args.pause, args.shrink_budget,
                            args.reproducers) if failures else []
    from testbench.fuzz_bins import summarize as bins_summary
    coverage = {}
    for config in args.configs:
        per_program = [b for r in results if r["config"] == config
                       for b in r.get("program_bins", [])]
        got = coverage[config] = bins_summary(CONFIGS[config].dataflow, per_program, config)
        print(f"functional bins {config} (cocotb-coverage): {got['hit']}/{got['total']} hit"
              + (f"; missed: {', '.join(got['missed'])}" if got["missed"] else ""))
    summary = {"functional_bins": coverage, "seed": args.seed, "n_per_config": args.n, "configs": args.configs,
               "backends": backends, "pause": args.pause,
               "programs": args.n * len(args.configs), "failures": failures,
               "wall_s": round(wall, 1), "backend_s": per_backend, "reproducers": saved,
               "problems": {f"{r['config']}:{s}": p for r in results
                            for s, p in r["problems"].items()}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=1))
    print(f"knpu fuzz: {summary['programs']} programs, {failures} failing, {wall:.0f} s "
          f"(simulation per back end: {per_backend}); report {args.out}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
