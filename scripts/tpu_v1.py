"""A published chip as a check: the analytical model configured like Google's TPU v1 and
its six production workloads placed on the paper's roofline.

    python scripts/tpu_v1.py            # table + build/tpu_v1/roofline.{png,svg} + .json

Source: N. P. Jouppi et al., "In-Datacenter Performance Analysis of a Tensor Processing
Unit", ISCA 2017.  The chip: a 256x256 int8 weight-stationary array at 700 MHz (92 TOPS
peak), a 24 MiB unified buffer for activations, 4 MiB of accumulators, and weights from an
8 GiB DDR3 weight memory at 34 GB/s; the roofline's ridge is at 1350 MAC operations per
weight byte.  Table 1 gives per application its weights, layers, batch and operations per
weight byte; the measured TOPS are the paper's (Table 3 / Figure 5).

What the model does *not* have from the paper: the layer shapes.  Each application becomes
the paper's number of FC (or conv) layers of equal square weight matrices holding its
published weight count, run with M = its operations per weight byte (each weight is used
once per row of M).  That keeps the two figures the roofline depends on -- weight bytes
and operations per weight byte -- and nothing else; CNN1's mix of FC and conv layers is one
average reuse.  Our core has one AXI port and widths of 256 or 512 bits only: at 700 MHz
they carry 22.4 or 44.8 GB/s, so each application is run at both, bracketing the TPU's
34 GB/s; activations are kept on chip (``core_estimate(..., inputs_on_chip=True)``, the
unified buffer's role), so only weights (and instructions) cross the bus, as on the TPU.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from hdl.config import NPUConfig  # noqa: E402
from sim_models.analytical import core_estimate  # noqa: E402
from sim_models.workloads import Layer  # noqa: E402
from testbench import BUILD  # noqa: E402

SOURCE = ("N. P. Jouppi et al., \"In-Datacenter Performance Analysis of a Tensor Processing "
          "Unit\", ISCA 2017")
CLOCK_HZ = 700e6
ARRAY = 256
WEIGHT_GBPS = 34.0
PEAK_TOPS = 2 * ARRAY * ARRAY * CLOCK_HZ / 1e12           # 91.75: the paper's 92
RIDGE = PEAK_TOPS * 1e12 / 2 / (WEIGHT_GBPS * 1e9)        # MACs per weight byte: ~1350
UNIFIED_BUFFER_LINES = 1 << 16   # 16 MiB of 256-byte lines: the RTL's deepest scratchpad
ACC_LINES = 4096                 # 4 MiB of 256 x int32 lines, as on the TPU
# Table 1 (layers that use the matrix unit, weights, ops per weight byte) and the measured
# TOPS on the TPU (Table 3 / Figure 5), per application.
APPS = {
    "MLP0": {"layers": 5, "weights": 20e6, "ops_per_weight_byte": 200, "measured_tops": 12.3},
    "MLP1": {"layers": 4, "weights": 5e6, "ops_per_weight_byte": 168, "measured_tops": 9.7},
    "LSTM0": {"layers": 24, "weights": 52e6, "ops_per_weight_byte": 64, "measured_tops": 3.7},
    "LSTM1": {"layers": 37, "weights": 34e6, "ops_per_weight_byte": 96, "measured_tops": 2.8},
    "CNN0": {"layers": 16, "weights": 8e6, "ops_per_weight_byte": 2888, "measured_tops": 86.0},
    "CNN1": {"layers": 76, "weights": 100e6, "ops_per_weight_byte": 1750, "measured_tops": 14.1},
}
WHY = {
    "MLP0": "weight-bound like the TPU; the gap to the paper is the time the TPU spends "
            "outside the matrix unit (host interaction, activation pipeline) that the model "
            "does not have",
    "MLP1": "as MLP0",
    "LSTM0": "the paper's LSTMs also run vector layers (sigmoid/tanh, elementwise) between "
             "the FC layers, which stall the matrix unit; the model runs only the FC layers",
    "LSTM1": "as LSTM0",
    "CNN0": "compute-bound in both; the model loses to the assumed equal 704x704 layers' "
            "partial tiles (704 of 768 rows and columns used, 0.84), each layer's start-up "
            "and drain, and the first 2048-row accumulator block's store, which the second "
            "block's first tile waits for (its blocks alternate scratchpad regions, no "
            "SYNC). The TPU's real layers reach 86 of 92 TOPS",
    "CNN1": "the paper attributes CNN1's low rate to its FC layers (reuse = batch 32, deeply "
            "weight-bound) and shallow feature depths that leave the 256 rows idle; the "
            "model's single average reuse of 1750 hides both, so it lands near the ridge",
}


def roofline_tops(ops_per_weight_byte: float) -> float:
    """The paper's roofline: min(peak, 2 x MACs-per-weight-byte x weight bandwidth)."""
    return min(PEAK_TOPS, 2 * ops_per_weight_byte * WEIGHT_GBPS * 1e9 / 1e12)


ROW_ALIGN = 64


def app_layers(name: str, app: dict) -> list[Layer]:
    """Equal square weight matrices holding the published weights, M = reuse; the side is
    rounded to a multiple of 64 bytes (the widest bus word), as a compiler would pad the
    weight rows: an unaligned row costs the DMA an extra beat (``dma.burst_plan``)."""
    side = ROW_ALIGN * max(1, round(math.sqrt(app["weights"] / app["layers"]) / ROW_ALIGN))
    return [Layer(f"{name}_{i}", "gemm", M=app["ops_per_weight_byte"], K=side, N=side)
            for i in range(app["layers"])]


def model_tops(name: str, bus_bits: int) -> dict:
    """The analytical model's TOPS for one application at one bus width."""
    cfg = NPUConfig(rows=ARRAY, cols=ARRAY, dataflow="ws", bus_bits=bus_bits,
                    sp_lines=UNIFIED_BUFFER_LINES, acc_lines=ACC_LINES)
    cycles = macs = weight_bytes = 0
    for layer in app_layers(name, APPS[name]):
        est = core_estimate(cfg, layer, inputs_on_chip=True)
        cycles, macs = cycles + est.cycles, macs + est.macs
        weight_bytes += layer.K * layer.N
    seconds = cycles / CLOCK_HZ
    return {"bus_bits": bus_bits, "gbps": bus_bits / 8 * CLOCK_HZ / 1e9,
            "tops": 2 * macs / seconds / 1e12, "utilization": macs / (ARRAY * ARRAY * cycles),
            "macs_per_weight_byte": macs / weight_bytes}


def evaluate() -> list[dict]:
    out = []
    for name, app in APPS.items():
        runs = [model_tops(name, b) for b in (256, 512)]
        out.append({"app": name, **app, "roofline_tops": roofline_tops(app["ops_per_weight_byte"]),
                    "model_tops_256b": runs[0]["tops"], "model_tops_512b": runs[1]["tops"],
                    "model_util_512b": runs[1]["utilization"],
                    "model_macs_per_weight_byte": runs[1]["macs_per_weight_byte"],
                    "why": WHY[name]})
    return out


def chart(rows: list[dict], out: Path) -> list[Path]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    x = [10 ** (k / 20) for k in range(0, 81)]
    ax.plot(x, [roofline_tops(v) for v in x], "k-", lw=1,
            label=f"TPU v1 roofline (34 GB/s, {PEAK_TOPS:.0f} TOPS, ridge {RIDGE:.0f})")
    for i, r in enumerate(rows):
        oi = r["ops_per_weight_byte"]
        ax.scatter([oi], [r["measured_tops"]], marker="*", s=80, color=f"C{i}",
                   label=f"{r['app']}: paper {r['measured_tops']}")
        ax.plot([oi, oi], [r["model_tops_256b"], r["model_tops_512b"]], "-", color=f"C{i}", lw=4,
                alpha=0.6)
    ax.plot([], [], "-", color="gray", lw=4, alpha=0.6, label="knpu model, 22.4-44.8 GB/s")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("MAC operations per weight byte")
    ax.set_ylabel("TOPS")
    ax.set_title(f"TPU v1 workloads on the model vs the paper ({SOURCE})", fontsize=6)
    ax.legend(fontsize=6)
    ax.grid(alpha=0.3, which="both")
    files = []
    for ext in ("png", "svg"):
        p = out / f"roofline.{ext}"
        fig.savefig(p, dpi=120, bbox_inches="tight")
        files.append(p)
    plt.close(fig)
    return files


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=BUILD / "tpu_v1")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = evaluate()
    print(f"TPU v1 as modelled: {ARRAY}x{ARRAY} @ {CLOCK_HZ / 1e6:.0f} MHz, peak "
          f"{PEAK_TOPS:.1f} TOPS, ridge {RIDGE:.0f} MACs/weight byte ({SOURCE})")
    print(f"{'app':6s} {'MAC/B':>6s} {'roofline':>8s} {'paper':>6s} {'model 22.4-44.8 GB/s':>21s}"
          f" {'paper/roof':>10s}")
    for r in rows:
        print(f"{r['app']:6s} {r['ops_per_weight_byte']:>6d} {r['roofline_tops']:>8.1f} "
              f"{r['measured_tops']:>6.1f} {r['model_tops_256b']:>10.1f}-{r['model_tops_512b']:<10.1f}"
              f" {r['measured_tops'] / r['roofline_tops']:>10.2f}")
        print(f"       {r['why']}")
    (args.out / "tpu_v1.json").write_text(json.dumps({"source": SOURCE, "rows": rows}, indent=1))
    for f in chart(rows, args.out):
        print(f"  chart {f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
