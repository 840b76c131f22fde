"""Programs on the core at Verilator speed (the C++ harness), or on any other back end.

    python scripts/harness.py demo [--rows 8 --cols 8] [--waves --from 0 --to 500]
    python scripts/harness.py network --workload mobilenet_v2 [--resolution 0.25] [--model]
    python scripts/harness.py image --image img.bin --program-addr 0x1000 --program-len 40 \\
        [--backend verilator] [--out dram.bin] [--json result.json]

``demo`` runs ``make sim``'s layers, ``network`` every layer of a workload table (DRAM
checked against the functional model; ``--model``: counters against the cycle model),
``image`` one program from a raw memory image.  ``--waves`` writes an FST of the cycles
``--from``..``--to`` of each run (cycle 0 is START's) under ``build/waves``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from hdl.config import NPUConfig
from sim_models import workloads
from testbench import (BACKENDS, BUILD, BackendError, HarnessError, demo_layers, run,
                       run_network, scaled)


def _config(args) -> NPUConfig:
    return NPUConfig(rows=args.rows, cols=args.cols, dataflow=args.dataflow,
                     bus_bits=args.bus_bits)


def _waves(args, cfg, name):
    if not args.waves:
        return None
    path = BUILD / "waves" / cfg.core_name / f"{name}.fst"
    return (path, args.first, args.last)


def cmd_demo(args) -> int:
    cfg = _config(args)
    print(f"{'layer':<28} {'cycles':>8} {'wall s':>8} {'cycles/s':>10}  result")
    ok = True
    for layer in demo_layers(cfg, args.seed):
        waves = _waves(args, cfg, layer.name)
        r = run(cfg, layer.dram, layer.program_addr, program=layer.program,
                         backend=args.backend, max_cycles=args.max_cycles, waves=waves)
        good = r.done and np.array_equal(layer.output(r.dram), layer.expected)
        ok &= good
        speed = f"{r.cycles / r.wall_s:>10.0f}" if r.counters and r.wall_s else f"{'-':>10}"
        print(f"{layer.name:<28} {r.counters.get('cycles', '-'):>8} {r.wall_s:>8.3f} {speed}  "
              f"{'PASS vs golden' if good else 'FAIL: ' + r.error.name}"
              + (f"  waves: {waves[0]}" if waves else ""))
    return 0 if ok else 1


def _log_layer(r: dict) -> None:
    model = ""
    if "model_equal" in r:
        model = (f", model equal ({r['model_s']:.1f} s)" if r["model_equal"]
                 else f", model DIFFERS (counter: [RTL, model]) {r['model_diff']}")
    print(f"  {r['layer']:<24} {r['cycles']:>10} cycles {r['wall_s']:>7.3f} s  dram "
          f"{'equal' if r['dram_equal'] else 'DIFFERS'}{model}", flush=True)


def cmd_network(args) -> int:
    cfg = _config(args)
    layers = scaled(workloads.build(args.workload), args.resolution, args.channels)
    t0 = time.perf_counter()
    records = run_network(cfg, layers, seed=args.seed, model=args.model, log=_log_layer)
    cycles, wall = sum(r["cycles"] for r in records), sum(r["wall_s"] for r in records)
    ok = all(r["dram_equal"] and r["golden_equal"] and r.get("model_equal", True)
             for r in records)
    print(f"{args.workload} on {cfg.core_name}: {len(records)} layers, {cycles} cycles, "
          f"RTL {wall:.2f} s ({cycles / wall:.0f} cycles/s), {time.perf_counter() - t0:.1f} s "
          f"in all; {'all exact' if ok else 'MISMATCH'}")
    if args.model:
        diverged = [r for r in records if not r["model_equal"]]
        verdict = (f"first divergence at {diverged[0]['layer']}: {diverged[0]['model_diff']}"
                   if diverged else "equal on every counter of every layer")
        print(f"cycle model: {verdict} ({sum(r['model_s'] for r in records):.0f} s)")
    out = BUILD / f"harness-{args.workload}-{cfg.core_name}.json"
    out.write_text(json.dumps({"workload": args.workload, "config": cfg.core_name,
                               "resolution": args.resolution, "channels": args.channels,
                               "seed": args.seed, "layers": records}, indent=1))
    print(f"wrote {out}")
    return 0 if ok else 1


def cmd_image(args) -> int:
    cfg = _config(args)
    image = Path(args.image).read_bytes()
    waves = _waves(args, cfg, Path(args.image).stem)
    r = run(cfg, image, args.program_addr, args.program_len, backend=args.backend,
                     max_cycles=args.max_cycles, waves=waves)
    if args.out:
        Path(args.out).write_bytes(r.dram or b"")
    summary = {"backend": r.backend, "done": r.done, "error": r.error.name, "err_pc": r.err_pc,
               "counters": r.counters, "wall_s": r.wall_s}
    text = json.dumps(summary, indent=1)
    if args.json:
        Path(args.json).write_text(text)
    print(text)
    return 0 if r.done else 2


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("demo", "network", "image"):
        s = sub.add_parser(name)
        s.add_argument("--rows", type=int, default=8)
        s.add_argument("--cols", type=int, default=8)
        s.add_argument("--dataflow", default="ws")
        s.add_argument("--bus-bits", type=int, default=128)
        s.add_argument("--seed", type=int, default=1)
        s.add_argument("--max-cycles", type=int, default=50_000_000)
        s.add_argument("--backend", default="verilator", choices=BACKENDS)
        s.add_argument("--waves", action="store_true", help="FST of the window below")
        s.add_argument("--from", dest="first", type=int, default=0)
        s.add_argument("--to", dest="last", type=int, default=1000)
        if name == "network":
            s.add_argument("--workload", default="mobilenet_v2")
            s.add_argument("--resolution", type=float, default=1.0)
            s.add_argument("--channels", type=float, default=1.0)
            s.add_argument("--model", "--check-model", dest="model", action="store_true",
                           help="also the cycle model: every counter compared (slow)")
        if name == "image":
            s.add_argument("--image", required=True, help="raw DRAM image (from address 0)")
            s.add_argument("--program-addr", type=lambda v: int(v, 0), required=True)
            s.add_argument("--program-len", type=int, required=True)
            s.add_argument("--out", help="write the DRAM after the run here")
            s.add_argument("--json", help="write the result (status, counters) here")
    args = p.parse_args(argv)
    try:
        return {"demo": cmd_demo, "network": cmd_network, "image": cmd_image}[args.cmd](args)
    except (HarnessError, BackendError, OSError) as e:
        print(f"harness: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
