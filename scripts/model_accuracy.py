"""The analytical mode against the cycle-exact model, layer by layer, at the sweep's sizes
and balanced memories (a measurement, not a test: ``testbench/test_cycle_model.py`` checks a
sample).

    python scripts/model_accuracy.py                          # every size (8x8 capped)
    python scripts/model_accuracy.py --every-layer            # 8x8 uncapped too (+50 min)
    python scripts/model_accuracy.py --sizes 16 --dataflows ws --workloads mobilenet_v2
    python scripts/model_accuracy.py --cached-only            # no exact runs: cache only
    python scripts/model_accuracy.py --backend verilator --sizes 8 16   # points on the RTL

Every distinct layer (by shape) of every chosen workload runs on the exact model (about
30 k simulated cycles/s) once per core -- at 8x8 only those the analytical mode puts at
most ``SIZE_CAPS[8]`` cycles (70 of 130; the others would take about an hour more:
``--every-layer``); its cycles are cached in ``build/model_accuracy/exact.json`` under a
hash of the core and the compiled program (a compiler or cycle-model change gives a new
program or a new ``--cycle-model-tag``, so a stale entry is never read).  Prints per layer
the exact and analytical cycles and the error, and per size x dataflow and overall the worst
and mean absolute error; writes ``build/model_accuracy/result.json``.

``--backend verilator`` re-runs the chosen points on the RTL instead (the C++ Verilator
harness, one build per core; each layer's output checked against the golden model): the
analytical mode's error against the RTL per layer, and where the exact model's cycles for the
same program are cached, whether they equal the RTL's (exit status 1 if any differ).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from hdl import isa  # noqa: E402
from hdl.config import NPUConfig  # noqa: E402
from sim_models import workloads  # noqa: E402
from sim_models.analytical import core_estimate  # noqa: E402
from sim_models.compiler import Requant, compile_conv2d, compile_gemm  # noqa: E402
from sim_models.cycle_model import CycleNPU  # noqa: E402
from testbench import BUILD  # noqa: E402

OUT_DIR = BUILD / "model_accuracy"
SIZES = (16, 32, 64, 8)
SIZE_CAPS = {8: 5e5}     # default --max-cycles per size (0: none)
# The balanced memories ``make sweep`` chose (MODEL_VERSION 5) for the square arrays: a bus
# of one scratchpad line (at most 512 bits), 16384 scratchpad and 256 accumulator lines,
# except these (size, dataflow, workload): scratchpad lines.
SP_LINES, ACC_LINES = 16384, 256
SP_EXCEPTIONS = {(8, "os", "mlp"): 4096, (8, "os", "mobilenet_v2"): 4096,
                 (16, "os", "mlp"): 4096, (16, "os", "mobilenet_v2"): 4096,
                 (16, "ws", "mlp"): 4096, (32, "os", "mlp"): 4096,
                 (32, "os", "mobilenet_v2"): 4096, (32, "ws", "mlp"): 4096,
                 (32, "ws", "mobilenet_v2"): 4096, (64, "os", "mlp"): 4096,
                 (64, "os", "mobilenet_v2"): 1024, (64, "ws", "mlp"): 1024}


def balanced_config(size: int, dataflow: str, workload: str) -> NPUConfig:
    """The sweep's balanced memory for a square ``size`` array, dataflow and workload."""
    return NPUConfig(rows=size, cols=size, dataflow=dataflow, bus_bits=min(512, 8 * size),
                     sp_lines=SP_EXCEPTIONS.get((size, dataflow, workload), SP_LINES),
                     acc_lines=ACC_LINES)


def layer_key(layer) -> tuple:
    """A layer's shape (layers of equal shape cost the same on both models)."""
    return (layer.kind, layer.h, layer.w, layer.c, layer.kh, layer.kw, layer.n, layer.stride,
            layer.pad, layer.depthwise, layer.M, layer.K, layer.N)


def compile_int8(cfg: NPUConfig, layer, rng):
    """The layer with random int8 tensors and requantized int8 outputs, as the sweep's
    points store them (``core_estimate(..., out_bytes=1)``)."""
    i8 = lambda *shape: rng.integers(-128, 128, shape)  # noqa: E731
    rq = Requant(scale=0.001)
    if layer.kind == "gemm":
        return compile_gemm(cfg, i8(layer.M, layer.K), i8(layer.K, layer.N), rq, name=layer.name)
    w = i8(layer.kh, layer.kw, layer.c) if layer.depthwise else \
        i8(layer.kh, layer.kw, layer.c, layer.n)
    return compile_conv2d(cfg, i8(layer.h, layer.w, layer.c), w, layer.stride, layer.pad,
                          depthwise=layer.depthwise, requant=rq, name=layer.name)


def program_hash(cfg: NPUConfig, compiled, tag: str) -> str:
    """The cache key of an exact run: the core, the program and where it sits."""
    h = hashlib.sha256(f"{tag}|{cfg!r}|{compiled.program_addr}|".encode())
    h.update(b"".join(w.to_bytes(isa.INSN_BYTES, "little") for w in compiled.program))
    return h.hexdigest()


class ExactCache:
    """Exact cycles by program hash, saved after every new run."""

    def __init__(self, path: Path):
        self.path = path
        self.data = json.loads(path.read_text()) if path.exists() else {}

    def get(self, key):
        return self.data.get(key)

    def put(self, key, cycles: int):
        self.data[key] = cycles
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():       # another run may have added entries meanwhile
            self.data = {**json.loads(self.path.read_text()), **self.data}
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.data, indent=0, sort_keys=True))
        tmp.replace(self.path)


def exact_cycles(cfg: NPUConfig, layer, rng, cache: ExactCache | None, tag: str,
                 cached_only: bool = False, backend: str = "model") -> tuple[int | None, float]:
    """The layer's cycles on ``backend`` -- the cycle-exact model (``model``) or the RTL in
    the C++ Verilator harness (``verilator``: its output checked against the golden model)
    -- from the cache when there, and the seconds it took (0 from the cache; None cycles
    when ``cached_only`` and not cached).  Each back end has its own cache entries."""
    compiled = compile_int8(cfg, layer, rng)
    key = program_hash(cfg, compiled, tag if backend == "model" else f"{tag}|{backend}")
    if cache is not None and (hit := cache.get(key)) is not None:
        return hit, 0.0
    if cached_only:
        return None, 0.0
    t0 = time.perf_counter()
    if backend == "model":
        exact = CycleNPU(cfg).run(compiled.program, compiled.program_addr)
    else:
        exact = _harness(cfg).run(compiled.dram, compiled.program_addr, len(compiled.program))
    if not exact.done:
        raise RuntimeError(f"{layer.name} on {cfg.name}: {backend} did not finish "
                           f"(error {exact.error})")
    if backend != "model" and not np.array_equal(compiled.output(exact.dram),
                                                 compiled.expected):
        raise RuntimeError(f"{layer.name} on {cfg.name}: the RTL's output differs from the "
                           "golden model's")
    if cache is not None:
        cache.put(key, exact.cycles)
    return exact.cycles, time.perf_counter() - t0


_HARNESSES: dict = {}


def _harness(cfg: NPUConfig):
    """The C++ Verilator harness of ``cfg`` (built once per configuration, cached on disk)."""
    if cfg not in _HARNESSES:
        from testbench.harness import Harness
        _HARNESSES[cfg] = Harness(cfg)
    return _HARNESSES[cfg]


def layers_of(name: str, dataflow: str):
    """The workload's layers a dataflow runs (OS cores have no depthwise schedule)."""
    return [l for l in workloads.load(name) if dataflow == "ws" or not l.depthwise]


def run(sizes, dataflows, names, max_cycles: float, cache, tag: str, cached_only=False,
        seed: int = 0, backend: str = "model") -> dict:
    """Every distinct layer at every (size, dataflow): exact (on ``backend``) and analytical
    cycles; with the RTL, also whether the exact model's cached cycles (if any) equal it."""
    out = {}
    for size in sizes:
        for df in dataflows:
            key = f"{df}-{size}x{size}"
            rows, skipped, missing, seen = [], 0, 0, set()
            for name in names:
                cfg = balanced_config(size, df, name)
                for layer in layers_of(name, df):
                    if (cfg, layer_key(layer)) in seen:
                        continue
                    seen.add((cfg, layer_key(layer)))
                    est = core_estimate(cfg, layer).cycles
                    cap = max_cycles if max_cycles is not None else SIZE_CAPS.get(size, 0)
                    if cap and est > cap:
                        skipped += 1
                        continue
                    rng = np.random.default_rng(seed)
                    exact, wall = exact_cycles(cfg, layer, rng, cache, tag, cached_only,
                                               backend)
                    if exact is None:
                        missing += 1
                        continue
                    r = {"workload": name, "layer": layer.name, "core": cfg.name,
                         "backend": backend, "exact": exact, "analytical": est,
                         "error": est / exact - 1, "wall_s": round(wall, 2)}
                    if backend != "model":
                        model, _ = exact_cycles(cfg, layer, np.random.default_rng(seed),
                                                cache, tag, cached_only=True)
                        r["model_equal"] = None if model is None else model == exact
                    rows.append(r)
                    same = {None: "", True: "  model equal", False: "  MODEL DIFFERS"}
                    print(f"{key} {name:16s} {layer.name:24s} {backend} {exact:>9d} analytical "
                          f"{est:>9d} {100 * r['error']:+6.1f}%  ({wall:.0f} s)"
                          + same[r.get("model_equal")], flush=True)
            errs = [abs(r["error"]) for r in rows]
            out[key] = {"layers": rows, "skipped": skipped, "missing": missing,
                        "worst": max(errs) if errs else None,
                        "mean": float(np.mean(errs)) if errs else None}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", nargs="+", type=int, default=list(SIZES))
    ap.add_argument("--dataflows", nargs="+", default=["ws", "os"])
    ap.add_argument("--workloads", nargs="+", default=list(workloads.WORKLOADS))
    ap.add_argument("--max-cycles", type=float, default=None,
                    help="skip layers the analytical mode puts above this (0: none skipped; "
                         f"default per size {SIZE_CAPS}, else none)")
    ap.add_argument("--every-layer", action="store_true", help="same as --max-cycles 0")
    ap.add_argument("--cached-only", action="store_true",
                    help="run nothing on the exact model: layers not in the cache are missing")
    ap.add_argument("--no-cache", action="store_true")
    ap.add_argument("--cycle-model-tag", default="v1",
                    help="part of every cache key: change it when the exact model changes")
    ap.add_argument("--backend", choices=("model", "verilator"), default="model",
                    help="where the exact cycles come from: the cycle-exact model, or the RTL "
                         "in the C++ Verilator harness (sweep points re-run on the RTL)")
    ap.add_argument("--out", type=Path, default=OUT_DIR / "result.json")
    args = ap.parse_args(argv)
    cache = None if args.no_cache else ExactCache(OUT_DIR / "exact.json")
    t0 = time.perf_counter()
    result = run(args.sizes, args.dataflows, args.workloads,
                 0 if args.every_layer else args.max_cycles, cache,
                 args.cycle_model_tag, args.cached_only, backend=args.backend)
    every = [abs(r["error"]) for v in result.values() for r in v["layers"]]
    differ = [r["layer"] for v in result.values() for r in v["layers"]
              if r.get("model_equal") is False]
    if differ:
        print(f"the RTL and the exact model differ on: {', '.join(differ)}")
    for key, v in result.items():
        if v["worst"] is not None:
            print(f"{key}: {len(v['layers'])} layers ({v['skipped']} skipped, {v['missing']} "
                  f"not cached); worst {100 * v['worst']:.1f}%, mean {100 * v['mean']:.2f}%")
    if every:
        print(f"overall: {len(every)} layers, worst {100 * max(every):.1f}%, "
              f"mean {100 * float(np.mean(every)):.2f}% ({time.perf_counter() - t0:.0f} s)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
