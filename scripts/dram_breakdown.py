"""Where the BERT block's and large GEMMs' DRAM bytes go at a core (issue 11 item 2).

Prints, per layer group of the BERT block and per square GEMM, the analytical mode's DRAM
bytes split by :func:`sim_models.dram_breakdown.gemm_breakdown` (compulsory inputs,
weights, outputs; instruction fetch; weight and input re-reads; partial sums), each as a
multiple of the compulsory bytes, and for the GEMMs the red-blue pebble lower bound and the
best resident-block schedule (data bytes only) on the same memory.

    python -m scripts.dram_breakdown [--rows 16 --cols 16 --sp-lines 16384 --acc-lines 1024]
"""

from __future__ import annotations

import argparse
import sys

from hdl.config import NPUConfig
from sim_models.dram_breakdown import (PARTS, fast_elements, gemm_breakdown, gemm_io_bound,
                                       network_breakdown, resident_block_bytes)
from sim_models.workloads import load

GEMM_SIZES = (256, 512, 1024, 2048)
_SHORT = {"inputs": "in", "weights": "w", "outputs": "out", "instructions": "insn",
          "weight_rereads": "w re", "input_rereads": "in re", "partial_sums": "psum"}


def _row(name: str, parts: dict, compulsory: int, extra: str = "") -> str:
    cells = " ".join(f"{parts[k] / 1e6:7.3f}" for k in PARTS)
    return f"{name:<14} {cells} {parts['total'] / 1e6:8.3f} {parts['total'] / compulsory:6.3f}x" \
        + extra


def bert_rows(cfg: NPUConfig) -> list[str]:
    """The BERT block's layers (the twelve heads' scores and contexts summed) and total."""
    groups: dict[str, dict] = {}
    for name, parts in network_breakdown(cfg, load("bert_base_block"))[:-1]:
        key = name.split("_h")[0] + "_h*" if "_h" in name else name
        g = groups.setdefault(key, dict.fromkeys((*PARTS, "total"), 0))
        for k in g:
            g[k] += parts[k]
    out = []
    total = dict.fromkeys((*PARTS, "total"), 0)
    for key, g in groups.items():
        out.append(_row(key, g, g["inputs"] + g["weights"] + g["outputs"]))
        total = {k: total[k] + g[k] for k in total}
    out.append(_row("BERT block", total, total["inputs"] + total["weights"] + total["outputs"]))
    return out


def gemm_rows(cfg: NPUConfig) -> list[str]:
    out = []
    for n in GEMM_SIZES:
        parts = gemm_breakdown(cfg, n, n, n)
        comp = 3 * n * n
        out.append(_row(f"GEMM {n}^3", parts, comp,
                        f"  bound {gemm_io_bound(cfg, n, n, n) / comp:5.3f}x"
                        f"  resident-block {resident_block_bytes(cfg, n, n, n) / comp:5.3f}x"))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=16)
    ap.add_argument("--cols", type=int, default=16)
    ap.add_argument("--sp-lines", type=int, default=NPUConfig.sp_lines)
    ap.add_argument("--acc-lines", type=int, default=NPUConfig.acc_lines)
    ap.add_argument("--bus-bits", type=int, default=NPUConfig.bus_bits)
    args = ap.parse_args(argv)
    cfg = NPUConfig(rows=args.rows, cols=args.cols, dataflow="ws", sp_lines=args.sp_lines,
                    acc_lines=args.acc_lines, bus_bits=args.bus_bits)
    print(f"{cfg.rows}x{cfg.cols} WS, scratchpad {cfg.sp_lines * cfg.sp_width // 1024} KiB, "
          f"accumulator {cfg.acc_lines} lines; pebble S = {fast_elements(cfg)} elements. "
          f"MB, and total / compulsory:")
    print(f"{'layer':<14} " + " ".join(f"{_SHORT[k]:>7}" for k in PARTS) +
          f" {'total':>8} {'/comp':>7}")
    for line in bert_rows(cfg) + gemm_rows(cfg):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
