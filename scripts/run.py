"""``make run``: one inference of a quantized ONNX model on knpu, compared with onnxruntime.

    python scripts/run.py --model m.onnx [--input x.npy] [--sim functional|model|verilator|icarus]
                          [--rows 8 --cols 8 --dataflow ws] [--seed 0] [--out build/run]

The model is imported first (an unsupported op or attribute stops here, naming the node,
before anything runs); convolutions and matrix products run as NPU layers on the chosen back
end (``testbench.backends``), the rest on the host (listed, with its share of operations).
Writes ``<out>/output.npy`` (the graph's first output, exactly as onnxruntime returns it:
same dtype and shape) and ``<out>/report.json`` (per layer: op, shape, cycles, utilization,
DRAM bytes, energy band; totals; host ops; equality with onnxruntime on the same input), and
prints them as a table.  Without ``--input``: a seeded random input.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hdl.config import ConfigError, NPUConfig  # noqa: E402
from sim_models.compiler import LayerError  # noqa: E402
from sim_models.onnx_frontend import execute, import_model, zoo  # noqa: E402

SIMS = ("functional", "model", "verilator", "icarus")


def random_input(graph, seed: int) -> dict:
    """Seeded inputs for every graph input (unknown dimensions taken as 1): floats
    uniform in [0, 1), integers uniform over their type."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for name, dtype, shape in graph.inputs:
        shape = tuple(d if d else 1 for d in (shape or ()))
        if dtype == "uint8":
            feeds[name] = rng.integers(0, 256, shape).astype(np.uint8)
        elif dtype == "int8":
            feeds[name] = rng.integers(-128, 128, shape).astype(np.int8)
        else:
            feeds[name] = rng.random(shape, dtype=np.float32)
    return feeds


def make_runner(sim: str):
    """``run_layer`` for :func:`execute` on a ``testbench.backends`` back end (the
    Verilator harness is built once per configuration and kept for every layer, and reset
    before each program: every program starts from reset on every back end, so that the
    cycle model -- a fresh one per program -- can be held to the RTL's counters; the core's
    arbiters otherwise carry their turn from one program into the next)."""
    from testbench import run
    state = {}

    def run_layer(cfg, layer):
        kw = {}
        if sim == "verilator":
            if "h" not in state:
                from testbench import Harness
                state["h"] = Harness(cfg)
            state["h"].reset()
            kw["harness"] = state["h"]
        r = run(cfg, layer.dram, layer.program_addr, program=layer.program, backend=sim, **kw)
        if not r.done:
            raise RuntimeError(f"layer {layer.name}: {sim} stopped with {r.error.name} at "
                               f"instruction {r.err_pc}")
        info = {"backend": sim, "wall_s": r.wall_s, "dram": r.dram}
        if r.counters:
            info["cycles"] = r.counters["cycles"]
            info["dram_bytes"] = r.counters["dma_bytes_read"] + r.counters["dma_bytes_written"]
            info["counters"] = dict(r.counters)
        return layer.output(r.dram), info

    def close():
        if "h" in state:
            state["h"].close()
    return run_layer, close


def compare(ours: dict, ref: dict) -> dict:
    """Per output: equal, count of differing values, max |difference|."""
    res = {}
    for name, y in ours.items():
        r = ref[name]
        diff = np.abs(y.astype(np.float64) - r.astype(np.float64))
        res[name] = {"equal": bool(y.dtype == r.dtype and y.shape == r.shape and
                                   np.array_equal(y, r)),
                     "dtype": [str(y.dtype), str(r.dtype)], "shape": [list(y.shape),
                                                                      list(r.shape)],
                     "differing": int((y != r).sum()), "of": int(r.size),
                     "max_abs_diff": float(diff.max(initial=0))}
    return res


def ort_float_nodes(model) -> list:
    """Nodes onnxruntime's optimizer leaves in float in a QDQ model (the float islands), by
    their output tensor (node names may be empty)."""
    import onnxruntime as ort
    import tempfile
    import onnx
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    with tempfile.TemporaryDirectory() as tmp:
        so.optimized_model_filepath = str(Path(tmp) / "opt.onnx")
        ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
        opt = onnx.load(so.optimized_model_filepath)
    dq_out = {o for n in opt.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    return [n.output[0] for n in opt.graph.node
            if n.op_type not in ("DequantizeLinear", "QuantizeLinear")
            and any(i in dq_out for i in n.input)
            and not (n.op_type in ("Flatten", "Reshape") and n.output[0] in
                     {o.name for o in opt.graph.output})]


def float_kernels(ex) -> list:
    """NPU ops whose onnxruntime kernel computes in float (QLinearAveragePool outside its
    global case): their outputs are bounded, not identical (one step where the exact mean
    lies within float32 rounding of a half step)."""
    return [m["layer"] for l in ex.layers for m in l.get("members", [l])
            if m.get("onnxruntime_float_kernel")]


def report(graph, ex, cmp, cfg, sim, model_path, islands) -> dict:
    """The report.json content."""
    macs = sum(l["macs"] for l in ex.layers)
    host_ops = sum(h["ops"] for h in ex.host)
    low = sum(l["energy_pj"][0] for l in ex.layers)
    high = sum(l["energy_pj"][1] for l in ex.layers)
    return {
        "model": str(model_path), "format": graph.fmt, "backend": sim,
        "config": {"rows": cfg.rows, "cols": cfg.cols, "dataflow": cfg.dataflow},
        "layers": ex.layers, "host_ops": ex.host,
        "totals": {"npu_layers": len(ex.layers), "macs": macs,
                   "cycles": sum(l["cycles"] for l in ex.layers),
                   "dram_bytes": sum(l["dram_bytes"] for l in ex.layers),
                   "energy_pj": [low, high], "host_operations": host_ops,
                   "host_share": host_ops / max(1, host_ops + macs),
                   "wall_s": ex.wall_s},
        "onnxruntime": cmp, "onnxruntime_float_islands": islands,
        "onnxruntime_float_kernels": float_kernels(ex),
        "execution": "the NPU ops between two host ops run as one program (each reads "
                     "what the ops before it wrote in DRAM: a branch's output is stored "
                     "into every consumer's buffer); between programs the host lays the "
                     "data out (NCHW<->NHWC, zero-point padding) and runs the host ops",
        "programs": len(ex.layers),
    }


def print_table(rep: dict) -> None:
    print(f"knpu run: {rep['model']} ({rep['format']}) on {rep['backend']}, "
          f"{rep['config']['rows']}x{rep['config']['cols']} {rep['config']['dataflow']}")
    print(f"{'layer':24} {'op':14} {'M x K x N':>18} {'MACs':>10} {'cycles':>9} "
          f"{'util':>6} {'DRAM B':>9} {'energy nJ':>13}")
    for l in rep["layers"]:
        m, k, n = l["shape"]
        src = "" if l["cycles_source"] == "measured" else "*"
        print(f"{l['layer'][:24]:24} {l['op'][:14]:14} {f'{m}x{k}x{n}':>18} {l['macs']:>10} "
              f"{l['cycles']:>8}{src:1} {l['utilization']:>6.1%} {l['dram_bytes']:>9} "
              f"{l['energy_pj'][0] / 1e3:>6.1f}-{l['energy_pj'][1] / 1e3:<6.1f}")
        for mem in l.get("members", []):      # the layers of a one-program chain
            m, k, n = mem["shape"]
            print(f"  {mem['layer'][:22]:22} {mem['op'][:14]:14} {f'{m}x{k}x{n}':>18} "
                  f"{mem['macs']:>10}")
    t = rep["totals"]
    print(f"{'total':24} {'':14} {'':>18} {t['macs']:>10} {t['cycles']:>9} {'':>6} "
          f"{t['dram_bytes']:>9} {t['energy_pj'][0] / 1e3:>6.1f}-{t['energy_pj'][1] / 1e3:<6.1f}")
    if any(l["cycles_source"] != "measured" for l in rep["layers"]):
        print("* cycles from the analytical model (this back end has no timing)")
    kinds = {}
    for h in rep["host_ops"]:
        kinds.setdefault(h["op"], [0, 0])
        kinds[h["op"]][0] += 1
        kinds[h["op"]][1] += h["ops"]
    print("host: " + ", ".join(f"{k} x{c} ({o} ops)" for k, (c, o) in kinds.items()) +
          f"; {t['host_share']:.2%} of all operations")
    print(f"programs per inference: {rep['programs']}")
    for name, c in rep["onnxruntime"].items():
        verdict = "IDENTICAL to onnxruntime" if c["equal"] else \
            f"{c['differing']} of {c['of']} values differ (max |diff| {c['max_abs_diff']:g})"
        print(f"output {name} {c['shape'][0]} {c['dtype'][0]}: {verdict}")
    if rep["onnxruntime_float_kernels"]:
        print(f"onnxruntime computes {len(rep['onnxruntime_float_kernels'])} of these ops in "
              f"float (outputs bounded, not identical): "
              f"{', '.join(rep['onnxruntime_float_kernels'][:8])}")
    if rep["onnxruntime_float_islands"]:
        print(f"onnxruntime keeps {len(rep['onnxruntime_float_islands'])} node(s) in float "
              f"(QDQ islands): {', '.join(rep['onnxruntime_float_islands'][:8])}"
              f"{' ...' if len(rep['onnxruntime_float_islands']) > 8 else ''}")


def is_quantized(model) -> bool:
    """Whether the model holds quantized tensors (QuantizeLinear or QLinear*/Integer ops)."""
    return any(n.op_type == "QuantizeLinear" or n.op_type.startswith("QLinear") or
               n.op_type.endswith("Integer") or n.op_type == "QGemm" for n in model.graph.node)


def quantize_float(model, args, out: Path):
    """A float model quantized by onnxruntime's quantize_static (``--quantize`` format, int8):
    calibrated on the digits training images for the shipped digits CNN, else on eight
    seeded uniform [0, 1) inputs of the model's shape.  Saved next to the report."""
    import onnx
    shape = [d.dim_value or 1 for d in model.graph.input[0].type.tensor_type.shape.dim]
    if Path(args.model).resolve() == zoo.DIGITS_ONNX.resolve():
        calib = zoo.digits()[0][0][:128]
    else:
        calib = np.random.default_rng(args.seed + 1).random([8 * shape[0]] + shape[1:],
                                                            dtype=np.float32)
    q = zoo.quantize(model, calib, args.quantize, "int8", per_channel=True, batch=shape[0])
    out.mkdir(parents=True, exist_ok=True)
    onnx.save(q, out / "model_int8.onnx")
    print(f"knpu run: {args.model} is a float model: quantized by onnxruntime quantize_static "
          f"({args.quantize}, int8, per-channel weights) into {out / 'model_int8.onnx'}")
    return q


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--input")
    ap.add_argument("--sim", default="functional", choices=SIMS)
    ap.add_argument("--rows", type=int, default=8)
    ap.add_argument("--cols", type=int, default=8)
    ap.add_argument("--dataflow", default="ws")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="build/run")
    ap.add_argument("--quantize", default="qoperator", choices=("qoperator", "qdq"),
                    help="format used when --model is a float model")
    ap.add_argument("--approx-avgpool", action="store_true",
                    help="run on the NPU also the AveragePools it cannot provably match "
                         "onnxruntime's float kernel on (one step off at most near half "
                         "steps, flagged); default: those run on the host, exact")
    args = ap.parse_args(argv)
    import onnx
    try:
        cfg = NPUConfig(rows=args.rows, cols=args.cols, dataflow=args.dataflow)
        model = onnx.load(args.model)
        if not is_quantized(model):
            model = quantize_float(model, args, Path(args.out))     # one input, or an error
        graph = import_model(model)          # names an unsupported node before anything
        islands = ort_float_nodes(model) if graph.fmt == "qdq" else []
        if islands:
            graph = import_model(model, float_islands=islands)
    except (ConfigError, LayerError, OSError, ValueError) as err:
        print(f"knpu run: {err}", file=sys.stderr)
        return 2
    if args.input:
        x = np.load(args.input)
        if len(graph.inputs) != 1:
            print("knpu run: --input gives one array; the model has "
                  f"{len(graph.inputs)} inputs", file=sys.stderr)
            return 2
        feeds = {graph.inputs[0][0]: x}
    else:
        feeds = random_input(graph, args.seed)
    run_layer, close = make_runner(args.sim)
    t0 = time.perf_counter()
    try:
        ex = execute(graph, feeds, cfg, run_layer, approx_avgpool=args.approx_avgpool)
    except LayerError as err:
        print(f"knpu run: {err}", file=sys.stderr)
        return 2
    finally:
        close()
    ex.wall_s = time.perf_counter() - t0
    ref = zoo.ort_run(model, feeds)
    rep = report(graph, ex, compare(ex.outputs, ref), cfg, args.sim, args.model, islands)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "output.npy", ex.outputs[graph.outputs[0][0]])
    (out / "report.json").write_text(json.dumps(rep, indent=1))
    print_table(rep)
    print(f"wrote {out / 'output.npy'} and {out / 'report.json'}")
    return 0 if all(c["equal"] for c in rep["onnxruntime"].values()) or islands or \
        rep["onnxruntime_float_kernels"] else 1


if __name__ == "__main__":
    sys.exit(main())
