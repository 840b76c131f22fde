"""DRAM bytes of the ONNX front end's whole-graph programs with and without layers chained
on chip (issue 11 item 2): every zoo network (``mobilenet_v2_224``, full size, on
request), quantized by onnxruntime (QOperator, int8, per-channel), run through ``execute``
twice -- ``chain=False`` (every output through DRAM) and ``chain=True`` (a convolution's
output kept in the scratchpad for the 1x1 convolution that alone reads it, an MLP's
matrix products chained) -- on the cycle-exact model (its ``dma_bytes_read +
dma_bytes_written`` counters, summed over the programs of one inference; the model equals
the RTL on every counter), each run's output checked identical to onnxruntime's.

    python scripts/onnx_chains.py [--cores harness,default,16x16] [--nets digits,mlp,...]
        [--batch 1] [--out build/onnx_chains.json]

Prints a Markdown table (one row per network and core) and writes the JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hdl.config import NPUConfig  # noqa: E402

#: The cores: the 4x4 harness core of test_onnx_rtl, the default (8x8) WS core and a 16x16
#: one with the default memories.
CORES = {"harness": NPUConfig(rows=4, cols=4, dataflow="ws", bus_bits=128, sp_lines=1024,
                              acc_lines=128),
         "default": NPUConfig(dataflow="ws"),
         "16x16": NPUConfig(rows=16, cols=16, dataflow="ws")}


def _nets():
    """Each zoo network as ``(float model, input shape without the batch, label)``."""
    import onnx
    from sim_models.onnx_frontend import zoo
    return {
        "digits": lambda: (onnx.load(str(zoo.DIGITS_ONNX)), (1, 8, 8), "digits CNN"),
        "mlp": lambda: (zoo.mlp(), (64,), "MLP 64-256-128-10"),
        "resnet18": lambda: (zoo.resnet18(width=0.125, resolution=32, classes=10),
                             (3, 32, 32), "ResNet-18 1/8 width 32x32"),
        "mobilenet_v2": lambda: (zoo.mobilenet_v2(width=0.25, resolution=32, classes=10),
                                 (3, 32, 32), "MobileNetV2 1/4 width 32x32"),
        "mixed": lambda: (zoo.mixed(), (4, 12, 12), "mixed graph 12x12"),
        "mobilenet_v2_224": lambda: (zoo.mobilenet_v2(), (3, 224, 224),
                                     "MobileNetV2 224x224"),
    }


def measure(cfg: NPUConfig, model, shape, batch: int) -> dict:
    """One network on one core, chained and not: DRAM bytes, cycles, programs, chains."""
    from scripts.run import make_runner
    from sim_models.onnx_frontend import execute, import_model, zoo
    qm = zoo.quantize(model, zoo.calibration(shape, 4), "qoperator", "int8", True)
    graph = import_model(qm)
    x = zoo.calibration(shape, batch, seed=9)
    ref = zoo.ort_run(qm, {"input": x})["output"]
    out = {}
    for chain in (False, True):
        run_layer, close = make_runner("model")
        t0 = time.perf_counter()
        try:
            ex = execute(graph, {"input": x}, cfg, run_layer, chain=chain)
        finally:
            close()
        if not np.array_equal(ex.outputs["output"], ref) or \
                not all(e["golden_equal"] for e in ex.layers):
            raise RuntimeError(f"chain={chain}: the output differs from onnxruntime's or "
                               f"an op from the golden model")
        out["chained" if chain else "dram"] = {
            "dram_bytes": sum(e["dram_bytes"] for e in ex.layers),
            "cycles": sum(e["cycles"] for e in ex.layers),
            "programs": len(ex.layers),
            "chains": [c for e in ex.layers for c in e.get("chains", [])],
            "wall_s": round(time.perf_counter() - t0, 1)}
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cores", default="harness,default,16x16")
    ap.add_argument("--nets", default="digits,mlp,resnet18,mobilenet_v2,mixed")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--out", default="build/onnx_chains.json")
    args = ap.parse_args(argv)
    nets = _nets()
    rows = []
    print("| network | core | programs | chains | DRAM bytes, all through DRAM | chained "
          "| change | cycles, through DRAM | chained |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for core in args.cores.split(","):
        cfg = CORES[core]
        for name in args.nets.split(","):
            model, shape, label = nets[name]()
            r = measure(cfg, model, shape, args.batch)
            d, c = r["dram"], r["chained"]
            rows.append({"net": name, "core": core, "batch": args.batch,
                         "cfg": [cfg.rows, cfg.cols, cfg.sp_lines, cfg.bus_bits], **r})
            print(f"| {label} | {cfg.rows}x{cfg.cols}, {cfg.sp_lines} lines | {c['programs']} "
                  f"| {len(c['chains'])} | {d['dram_bytes']:,} | {c['dram_bytes']:,} | "
                  f"{100 * (c['dram_bytes'] / d['dram_bytes'] - 1):+.1f} % | "
                  f"{d['cycles']:,} | {c['cycles']:,} |", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
