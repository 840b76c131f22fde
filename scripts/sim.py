"""``make sim``: build the default core, run a small network through the RTL, report per layer;
then the digits CNN (one program per inference) on the RTL next to onnxruntime.

    python scripts/sim.py                      # 8x8 WS core, 128-bit bus, Verilator
    python scripts/sim.py --dataflow os --sim icarus --waves
    python scripts/sim.py --array --gemm 64 64 64   # the bare systolic array instead
    python scripts/sim.py --digits-only --images 32  # only the digits CNN
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


def _digits_rows(cfg, ex, programs):
    """Table rows (layer, op, shape, MACs, cycles, DRAM bytes) of the digits run: each
    linked program split per layer by the cycle model (:func:`split_by_layer`)."""
    from sim_models.onnx_frontend.wholegraph import split_by_layer
    rows, mismatch = [], []
    for entry, prog in zip(ex.layers, programs):
        if "members" not in entry:
            rows.append((entry["layer"], entry["op"], entry["shape"], entry["macs"],
                         entry["cycles"], entry["dram_bytes"]))
            continue
        parts = split_by_layer(cfg, prog)
        if parts[0]["run"] != entry["counters"]:
            mismatch.append(entry["layer"])
        for member, part in zip(entry["members"], parts):
            rows.append(("  " + member["layer"], member["op"], member["shape"], member["macs"],
                         part["cycles"], part["dram_bytes"]))
        rows.append((f"one program ({len(parts)} layers)", "", None, entry["macs"],
                     entry["cycles"], entry["dram_bytes"]))
    return rows, mismatch


def run_digits(cfg: NPUConfig, sim: str, images: int) -> int:
    """The shipped digits CNN, quantized by onnxruntime (QOperator, uint8), on ``images``
    test images through the RTL: per-layer table and accuracy next to onnxruntime's."""
    import numpy as np
    import onnx

    from scripts.run import make_runner
    from sim_models.onnx_frontend import execute, import_model, zoo
    (xtr, _), (xte, yte) = zoo.digits()
    qm = zoo.quantize(onnx.load(str(zoo.DIGITS_ONNX)), xtr[:128], "qoperator", "uint8", True)
    x, labels = xte[:images], yte[:images]
    run_layer, close = make_runner(sim)
    programs = []

    def capture(cfg, layer):
        programs.append(layer)
        return run_layer(cfg, layer)
    t0 = time.monotonic()
    try:
        ex = execute(import_model(qm), {"input": x}, cfg, capture)
    finally:
        close()
    wall = time.monotonic() - t0
    ours, ref = ex.outputs["output"], zoo.ort_run(qm, {"input": x})["output"]
    print(f"\ndigits CNN (onnxruntime quantize_static, QOperator uint8) on {sim}: {images} test "
          f"images as one batch, {len(programs)} NPU program(s) per inference")
    head = f"{'layer':<26} {'op':<12} {'M x K x N':>12} {'MACs':>8} {'cycles':>8} {'util':>6} " \
           f"{'DRAM B':>8}"
    print(head)
    print("-" * len(head))
    rows, mismatch = _digits_rows(cfg, ex, programs)
    for name, op, shape, macs, cycles, dram in rows:
        mkn = "x".join(map(str, shape)) if shape else ""
        print(f"{name[:26]:<26} {op[:12]:<12} {mkn:>12} {macs:>8} {cycles:>8} "
              f"{macs / (cycles * cfg.rows * cfg.cols):>6.1%} {dram:>8}")
    host = sum(h["ops"] for h in ex.host)
    macs = sum(entry["macs"] for entry in ex.layers)
    print(f"host: {', '.join(h['op'] for h in ex.host)} ({host} operations, "
          f"{host / (host + macs):.2%} of all)")
    same = bool(np.array_equal(ours, ref))
    acc_k, acc_o = (float((v.argmax(1) == labels).mean()) for v in (ours, ref))
    print(f"accuracy on these {images} images: knpu {acc_k:.1%}, onnxruntime {acc_o:.1%}; "
          f"outputs {'IDENTICAL' if same else 'DIFFERENT'} "
          f"({int((ours != ref).sum())} of {ref.size} values differ)")
    golden = all(entry["golden_equal"] for entry in ex.layers)
    print(f"every layer's output equal to the golden model: {golden}; cycle model equal to "
          f"the RTL on every counter: {not mismatch}; wall time {wall:.1f} s")
    return 0 if same and golden and not mismatch else 1


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
    p.add_argument("--images", type=int, default=16, help="digits test images on the RTL")
    p.add_argument("--digits-only", action="store_true", help="skip the layer demo")
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
    if args.images < 1:
        p.error(f"--images {args.images}: must be >= 1")
    status = 0 if args.digits_only else run_core(cfg, args.sim, args.waves)
    return run_digits(cfg, args.sim, args.images) or status


if __name__ == "__main__":
    sys.exit(main())
