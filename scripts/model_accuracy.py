"""The analytical mode against the exact cycles, layer by layer, at the sweep's sizes
(``sweep.DEFAULT_SIZES``, square and non-square) and balanced memories (a measurement, not
a test: ``testbench/test_cycle_model.py`` checks a sample).  The balanced memories are the
sweep's own: its points for each array, dataflow and workload are read from ``make
sweep``'s cache (``build/sweep/points``, keyed by ``sweep.MODEL_VERSION``), those missing
evaluated first by the sweep's code (about 7 minutes for all of them on 2 processes) and
added to it, and the point it marks balanced is measured (:func:`balanced_memory`).

    python scripts/model_accuracy.py                          # every size, both back ends
    python scripts/model_accuracy.py --sizes 8x32 16 --dataflows ws --workloads mobilenet_v2
    python scripts/model_accuracy.py --cached-only            # nothing run: cache only
    python scripts/model_accuracy.py --max-cycles 0           # no layer left out (hours)
    python scripts/model_accuracy.py --backend verilator --sizes 8 16   # points on the RTL

Every distinct layer (by shape) of every chosen workload is measured once per core.  With
``--backend auto`` (the default) a layer's exact cycles come from the cache of either back
end, else from the cycle-exact model when the analytical mode puts it at most
``MODEL_CAP`` cycles (the model runs about 27 k cycles/s), else from the RTL in the C++
Verilator harness (0.4-1.6 M cycles/s; its output checked against the golden model, and
where the exact model's cycles for the same program are cached, compared with them) up to
``RTL_CAP`` cycles; larger layers are left out and listed (``--max-cycles``).  Exact runs
are cached in ``build/model_accuracy/exact.json`` under a hash of the core, the compiled
program and the back end (a compiler or cycle-model change gives a new program or a new
``--cycle-model-tag``, so a stale entry is never read).  Prints per layer the back end, the
exact and analytical cycles and the error, and per size x dataflow and overall the worst and
mean absolute error and the layers left out; writes ``build/model_accuracy/result.json``.
``--backend model`` / ``verilator`` force one back end (exit status 1 if any RTL cycle
count differs from the exact model's).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import io
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
from sim_models.analytical import core_estimate, takes_im2col_input  # noqa: E402
from sim_models.compiler import Requant, compile_conv2d, compile_gemm  # noqa: E402
from sim_models.cycle_model import CycleNPU  # noqa: E402
from scripts.cli import parse_size  # noqa: E402
from scripts.sweep import (ACC_LINES as GRID_ACC, BUSES, DEFAULT_SIZES,  # noqa: E402
                           SP_LINES as GRID_SP, build_points, csv_rows, energy_options,
                           run_points)
from testbench import BUILD  # noqa: E402

OUT_DIR = BUILD / "model_accuracy"
#: ``make sweep``'s point cache: the balanced memories are read from it (or added to it).
SWEEP_CACHE = BUILD / "sweep" / "points"
#: The sweep's array sizes, (rows, cols): one source of truth, ``sweep.DEFAULT_SIZES``.
SIZES = tuple(parse_size(s) for s in DEFAULT_SIZES)
#: Which back end measures a layer not yet cached (``--backend auto``), by the analytical
#: mode's cycles for it: the cycle-exact model (about 27 k cycles/s, so 2e5 cycles ~ 8 s)
#: up to MODEL_CAP; above it the RTL in the C++ harness (0.4-1.6 M cycles/s on 4-256 PEs,
#: one 15-200 s build per core) up to RTL_CAP (2e7 cycles: 10-50 s); above that the layer
#: is left out and counted.  Arrays of more than RTL_MAX_PES PEs are measured on the exact
#: model alone up to RTL_CAP: their harness builds take 4-8 minutes and every one of their
#: layers is under 5e5 cycles.
MODEL_CAP, RTL_CAP, RTL_MAX_PES = 2e5, 2e7, 512


def sweep_points(rows: int, cols: int, dataflow: str, workload: str) -> list[dict]:
    """The points ``make sweep`` evaluates for one array, dataflow and workload (its memory
    grid, default DRAM, node and MAC activity): ``sweep.build_points``' own."""
    args = argparse.Namespace(dram=None, workloads=[workload], dataflows=[dataflow],
                              sizes=[(rows, cols)], buses=BUSES, sp_lines=GRID_SP,
                              acc_lines=GRID_ACC)
    return build_points(args, energy_options(None, None, "1.0"))


@functools.lru_cache(maxsize=None)
def balanced_memory(rows: int, cols: int, dataflow: str, workload: str,
                    workers: int = 1) -> tuple[int, int, int]:
    """``(bus_bits, sp_lines, acc_lines)`` of the point ``make sweep`` marks balanced (best
    system TOPS/W, ``sweep.mark_balanced``) for this array, dataflow and workload: its points
    read from the sweep's own cache (``build/sweep/points``, keyed by ``MODEL_VERSION``),
    those missing evaluated by the sweep's code and cached there (``workers`` > 1: on a
    local Dask cluster)."""
    if workload not in workloads.WORKLOADS:
        raise ValueError(f"unknown workload {workload!r} (have: {', '.join(workloads.WORKLOADS)})")
    with contextlib.redirect_stdout(io.StringIO()):       # its per-call count line
        results = run_points(sweep_points(rows, cols, dataflow, workload),
                             "synchronous" if workers <= 1 else None, workers, SWEEP_CACHE,
                             progress=False)
    if failed := [r for r in results if r.get("status") != "ok"]:
        raise RuntimeError(f"sweep point failed: {failed[0]['error']}")
    best = [r for r in csv_rows(results) if r["balanced"]]
    if len(best) != 1:
        raise RuntimeError(f"{rows}x{cols} {dataflow} {workload}: {len(best)} balanced points")
    return best[0]["bus_bits"], best[0]["sp_lines"], best[0]["acc_lines"]


def balanced_config(rows: int, cols: int, dataflow: str, workload: str) -> NPUConfig:
    """The sweep's balanced core for a ``rows`` x ``cols`` array, dataflow and workload
    (:func:`balanced_memory`)."""
    bus, sp, acc = balanced_memory(rows, cols, dataflow, workload)
    return NPUConfig(rows=rows, cols=cols, dataflow=dataflow, bus_bits=bus, sp_lines=sp,
                     acc_lines=acc)


def warm_sweep_cache(sizes, dataflows, names, workers: int) -> None:
    """Evaluate (or read from the sweep's cache) every point whose balanced memory a run
    needs, ``workers`` processes at once, before any layer is measured."""
    points = [p for r, c in sizes for df in dataflows for wl in names
              for p in sweep_points(r, c, df, wl)]
    run_points(points, "synchronous" if workers <= 1 else None, workers, SWEEP_CACHE,
               progress=False)


def parse_size_arg(text: str) -> tuple[int, int]:
    """``"16"`` -> ``(16, 16)``, ``"8x32"`` -> ``(8, 32)`` (for ``--sizes``)."""
    return (int(text), int(text)) if text.isdigit() else parse_size(text)


def layer_key(layer) -> tuple:
    """A layer's shape (layers of equal shape cost the same on both models)."""
    return (layer.kind, layer.h, layer.w, layer.c, layer.kh, layer.kw, layer.n, layer.stride,
            layer.pad, layer.depthwise, layer.M, layer.K, layer.N)


def compile_int8(cfg: NPUConfig, layer, rng, im2col_input: bool = False):
    """The layer with random int8 tensors and requantized int8 outputs, as the sweep's
    points store them (``core_estimate(..., out_bytes=1)``); ``im2col_input``: a network's
    first convolution on the host's im2col rows, as ``analytical.network_estimates``
    costs it where ``takes_im2col_input``."""
    i8 = lambda *shape: rng.integers(-128, 128, shape)  # noqa: E731
    rq = Requant(scale=0.001)
    if layer.kind == "gemm":
        return compile_gemm(cfg, i8(layer.M, layer.K), i8(layer.K, layer.N), rq, name=layer.name)
    w = i8(layer.kh, layer.kw, layer.c) if layer.depthwise else \
        i8(layer.kh, layer.kw, layer.c, layer.n)
    return compile_conv2d(cfg, i8(layer.h, layer.w, layer.c), w, layer.stride, layer.pad,
                          depthwise=layer.depthwise, requant=rq, name=layer.name,
                          im2col_input=im2col_input)


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
    return _exact_of(cfg, layer, compile_int8(cfg, layer, rng), cache, tag, cached_only,
                     backend)


def _exact_of(cfg: NPUConfig, layer, compiled, cache: ExactCache | None, tag: str,
              cached_only: bool, backend: str) -> tuple[int | None, float]:
    """:func:`exact_cycles` of an already compiled program."""
    key = program_hash(cfg, compiled, tag if backend == "model" else f"{tag}|{backend}")
    if cache is not None and (hit := cache.get(key)) is not None:
        return hit, 0.0
    if cached_only:
        return None, 0.0
    t0 = time.perf_counter()
    if backend == "model":
        exact = CycleNPU(cfg).run(compiled.program, compiled.program_addr,
                                  max_cycles=10 * int(RTL_CAP))
    else:
        exact = _harness(cfg).run(compiled.dram, compiled.program_addr, len(compiled.program),
                                  max_cycles=10 * int(RTL_CAP))
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


def choose_backend(cfg: NPUConfig, estimate: float, model_cap: float = MODEL_CAP,
                   rtl_cap: float = RTL_CAP) -> str | None:
    """Where ``--backend auto`` measures a layer the analytical mode puts at ``estimate``
    cycles (see :data:`MODEL_CAP`): ``"model"``, ``"verilator"`` or None (left out)."""
    if rtl_cap and estimate > rtl_cap:
        return None
    if estimate <= model_cap or cfg.rows * cfg.cols > RTL_MAX_PES:
        return "model"
    return "verilator"


def measure(cfg: NPUConfig, layer, seed: int, cache: ExactCache | None, tag: str,
            estimate: float, backend: str, cap: float, cached_only: bool = False,
            model_cap: float = MODEL_CAP, im2col_input: bool = False) -> dict | None:
    """One layer's exact cycles: ``backend`` ``model`` or ``verilator`` runs it there
    (left out above ``cap`` cycles, 0: none); ``auto`` takes either back end's cached
    cycles, else runs it where :func:`choose_backend` says (``cap``: its RTL cap; a layer
    above it is left out even when cached).  None when left out or (``cached_only``) not
    cached; else ``{"backend", "exact", "wall_s", "model_equal"}`` (``model_equal``:
    whether the exact model's cached cycles for the same program equal the RTL's, None
    when not cached or measured on the model)."""
    where = choose_backend(cfg, estimate, model_cap, cap) if backend == "auto" else \
        None if cap and estimate > cap else backend
    if where is None:
        return None
    compiled = compile_int8(cfg, layer, np.random.default_rng(seed), im2col_input)
    if backend == "auto":
        for other in ("model", "verilator"):
            if _exact_of(cfg, layer, compiled, cache, tag, True, other)[0] is not None:
                where = other
                break
    exact, wall = _exact_of(cfg, layer, compiled, cache, tag, cached_only, where)
    if exact is None:
        return None
    equal = None
    if where != "model":
        model, _ = _exact_of(cfg, layer, compiled, cache, tag, True, "model")
        equal = None if model is None else model == exact
    return {"backend": where, "exact": exact, "wall_s": round(wall, 2), "model_equal": equal}


_HARNESSES: dict = {}


def _harness(cfg: NPUConfig):
    """The C++ Verilator harness of ``cfg`` (built once per configuration, cached on disk)."""
    if cfg not in _HARNESSES:
        from testbench.harness import Harness
        _HARNESSES[cfg] = Harness(cfg)
    return _HARNESSES[cfg]


def layers_of(name: str, cfg: NPUConfig) -> list[tuple]:
    """The workload's layers a core runs (OS cores have no depthwise schedule), each with
    whether it reads the host's im2col rows, as the sweep costs them
    (``analytical.network_estimates``: the first layer where ``takes_im2col_input``)."""
    return [(l, i == 0 and takes_im2col_input(cfg, l))
            for i, l in enumerate(workloads.load(name))
            if cfg.dataflow == "ws" or not l.depthwise]


def run(sizes, dataflows, names, cap: float | None, cache, tag: str, cached_only=False,
        seed: int = 0, backend: str = "auto", model_cap: float = MODEL_CAP) -> dict:
    """Every distinct layer at every (size, dataflow): exact cycles (from :func:`measure`:
    ``cap`` None is :data:`RTL_CAP` with ``auto``, else no cap) and analytical cycles."""
    if cap is None:
        cap = RTL_CAP if backend == "auto" else 0
    out = {}
    for rows, cols in sizes:
        for df in dataflows:
            key = f"{df}-{rows}x{cols}"
            out[key] = _run_core(rows, cols, df, names, cap, cache, tag, cached_only, seed,
                                 backend, model_cap, key)
    return out


def _run_core(rows, cols, df, names, cap, cache, tag, cached_only, seed, backend, model_cap,
              key) -> dict:
    """:func:`run` at one size and dataflow: its layers, left-out and uncached counts, the
    worst and mean absolute error, and the layers left out (workload, layer, estimate)."""
    layers, left, missing, seen = [], [], 0, set()
    for name in names:
        cfg = balanced_config(rows, cols, df, name)
        for layer, im2col in layers_of(name, cfg):
            if (cfg, layer_key(layer), im2col) in seen:
                continue
            seen.add((cfg, layer_key(layer), im2col))
            est = core_estimate(cfg, layer, im2col_input=im2col).cycles
            m = measure(cfg, layer, seed, cache, tag, est, backend, cap, cached_only,
                        model_cap, im2col)
            if m is None:
                runs = choose_backend(cfg, est, model_cap, cap) if backend == "auto" \
                    else not cap or est <= cap
                if cached_only and runs:
                    missing += 1
                else:
                    left.append((name, layer.name + " (im2col)" * im2col, est))
                continue
            r = {"workload": name, "layer": layer.name + " (im2col)" * im2col,
                 "core": cfg.name, **m,
                 "analytical": est, "error": est / m["exact"] - 1}
            layers.append(r)
            same = {None: "", True: "  model equal", False: "  MODEL DIFFERS"}
            print(f"{key} {name:16s} {r['layer']:24s} {m['backend']:9s} {m['exact']:>9d} "
                  f"analytical {est:>9d} {100 * r['error']:+6.1f}%  ({m['wall_s']:.0f} s)"
                  + same[m["model_equal"]], flush=True)
    errs = [abs(r["error"]) for r in layers]
    return {"layers": layers, "skipped": len(left), "left_out": left, "missing": missing,
            "backends": sorted({r["backend"] for r in layers}),
            "worst": max(errs) if errs else None,
            "mean": float(np.mean(errs)) if errs else None}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", nargs="+", type=parse_size_arg, default=list(SIZES),
                    help="ROWSxCOLS or N (NxN); default the sweep's sizes")
    ap.add_argument("--dataflows", nargs="+", default=["ws", "os"])
    ap.add_argument("--workloads", nargs="+", default=list(workloads.WORKLOADS))
    ap.add_argument("--max-cycles", type=float, default=None,
                    help="leave out layers the analytical mode puts above this (0: none); "
                         f"default {RTL_CAP:.0e} with --backend auto, else none")
    ap.add_argument("--model-cap", type=float, default=MODEL_CAP,
                    help="--backend auto: the exact model up to this many cycles, the RTL "
                         f"above (default {MODEL_CAP:.0e})")
    ap.add_argument("--every-layer", action="store_true", help="same as --max-cycles 0")
    ap.add_argument("--cached-only", action="store_true",
                    help="run nothing: layers not in the cache are missing")
    ap.add_argument("--no-cache", action="store_true")
    ap.add_argument("--cycle-model-tag", default="v1",
                    help="part of every cache key: change it when the exact model changes")
    ap.add_argument("--backend", choices=("auto", "model", "verilator"), default="auto",
                    help="where the exact cycles come from: auto (either back end's cache, "
                         "else the exact model up to --model-cap and the RTL above), the "
                         "cycle-exact model, or the RTL in the C++ Verilator harness")
    ap.add_argument("--out", type=Path, default=OUT_DIR / "result.json")
    ap.add_argument("--sweep-workers", type=int, default=2,
                    help="processes evaluating the sweep points not yet in its cache (their "
                         "balanced memories; 1: in this process)")
    args = ap.parse_args(argv)
    warm_sweep_cache(args.sizes, args.dataflows, args.workloads, args.sweep_workers)
    cache = None if args.no_cache else ExactCache(OUT_DIR / "exact.json")
    t0 = time.perf_counter()
    result = run(args.sizes, args.dataflows, args.workloads,
                 0 if args.every_layer else args.max_cycles, cache,
                 args.cycle_model_tag, args.cached_only, backend=args.backend,
                 model_cap=args.model_cap)
    report(result, time.perf_counter() - t0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    return 1 if any(r["model_equal"] is False for v in result.values() for r in v["layers"]) \
        else 0


def report(result: dict, seconds: float) -> None:
    """Print per size x dataflow and overall: layers, back ends, worst and mean error, the
    layers left out, and any layer whose RTL cycles differ from the exact model's."""
    every = [abs(r["error"]) for v in result.values() for r in v["layers"]]
    differ = [f"{v_key} {r['layer']}" for v_key, v in result.items() for r in v["layers"]
              if r["model_equal"] is False]
    if differ:
        print(f"the RTL and the exact model differ on: {', '.join(differ)}")
    for key, v in result.items():
        both = sum(r["model_equal"] is True for r in v["layers"])
        if v["worst"] is not None:
            print(f"{key}: {len(v['layers'])} layers on {'+'.join(v['backends'])} "
                  f"({v['skipped']} left out, {v['missing']} not cached, {both} RTL = model); "
                  f"worst {100 * v['worst']:.1f}%, mean {100 * v['mean']:.2f}%")
        if 0 < len(v["left_out"]) <= 12:
            print("  left out: " + ", ".join(f"{w}/{n} ({e:.1e})" for w, n, e in v["left_out"]))
    if every:
        print(f"overall: {len(every)} layers, worst {100 * max(every):.1f}%, "
              f"mean {100 * float(np.mean(every)):.2f}% ({seconds:.0f} s)")


if __name__ == "__main__":
    sys.exit(main())
