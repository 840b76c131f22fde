"""Switching activity of the systolic array, measured on the RTL, and the MAC-energy correction
it gives.

    python scripts/activity.py --size 4x4 --gemm 32 32 32

The energy tables price a MAC as if its operands were uniform random bits.  Real layers are
not: post-ReLU activations are half zeros and small, trained weights cluster near zero, so the
array's registers and the multipliers behind them switch less.  For each operand profile this
runs one GEMM through the bare array under Verilator with a VCD dump, counts the bit toggles of
every PE register (activation, weights, partial sum) in the window from the first beat to the
last result, and divides by the same count for uniform random operands of the same shape.
That ratio is :class:`sim_models.energy.EnergyModel`'s ``mac_activity``.

Results go to ``build/activity.json`` (per profile: toggles per MAC per register group, the
factor, and every PE register's toggles and duty cycle).  ``scripts/gate_power.py`` reuses the
runs' operands for its gate-level simulation.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hdl.config import NPUConfig  # noqa: E402
from scripts.cli import parse_size  # noqa: E402
from testbench import BUILD, fresh_report, run_cocotb  # noqa: E402

#: Operand profiles: name -> description (:func:`operands` generates them).
PROFILES = {
    "uniform": "a and b uniform random int8 (what the energy tables assume)",
    "relu_cnn": "a = ReLU(N(0, 40)) in 0..127 (half zeros), b = N(0, 20) in -127..127 "
                "(post-ReLU activations, trained int8 weights)",
    "sparse_relu_cnn": "relu_cnn with 75% of activations zero (a deep, sparse layer)",
    "zeros": "all-zero activations (the floor: only clock and control switch)",
}

#: PE registers by what they hold, as the generated Verilog names them (each PE's outputs
#: only: a neighbour's input port is the same net under another name).
REGISTER_GROUPS = {"activation": re.compile(r"\.east__data$"),
                   "weight": re.compile(r"\.w[01]$"),
                   "partial_sum": re.compile(r"\.south__psum$")}
PE_SCOPE = re.compile(r"\.pe_\d+_\d+\.")


def operands(profile: str, M: int, K: int, N: int, rng: np.random.Generator):
    """The (a, b) int8 operands of ``profile``."""
    if profile == "uniform":
        return rng.integers(-128, 128, (M, K)), rng.integers(-128, 128, (K, N))
    if profile in ("relu_cnn", "sparse_relu_cnn"):
        a = np.clip(np.rint(rng.normal(0, 40, (M, K))), 0, 127)
        if profile == "sparse_relu_cnn":
            a[rng.random((M, K)) < 0.5] = 0          # on top of ReLU's half: ~75% zeros
        b = np.clip(np.rint(rng.normal(0, 20, (K, N))), -127, 127)
        return a.astype(np.int64), b.astype(np.int64)
    if profile == "zeros":
        return np.zeros((M, K), np.int64), rng.integers(-128, 128, (K, N))
    raise ValueError(f"unknown operand profile {profile!r} (have: {', '.join(PROFILES)})")


@dataclass
class BitActivity:
    """One signal's switching inside a window, bit by bit (bit 0 first)."""
    width: int
    bit_toggles: list = None      # flips per bit
    bit_ones: list = None         # time at 1 per bit, ns (for the duty cycle)

    def __post_init__(self):
        self.bit_toggles = self.bit_toggles or [0] * self.width
        self.bit_ones = self.bit_ones or [0.0] * self.width

    @property
    def toggles(self) -> int:
        return sum(self.bit_toggles)

    @property
    def ones_time(self) -> float:
        return sum(self.bit_ones)


def _bits(x: int):
    """Indices of the set bits of ``x``."""
    while x:
        low = x & -x
        yield low.bit_length() - 1
        x ^= low


def read_vcd(path: Path, window: tuple[float, float], keep=lambda name: True
             ) -> dict[str, BitActivity]:
    """Toggle counts and time-at-one of every kept signal of a VCD inside ``window``
    (simulation time in ns), by hierarchical name.  (A few lines of VCD reading rather than
    pyvcd: its reader rejects the ``$rootio`` scope Verilator writes.)"""
    units = {"s": 1e9, "ms": 1e6, "us": 1e3, "ns": 1.0, "ps": 1e-3, "fs": 1e-6}
    scope: list[str] = []
    ids: dict[str, list[BitActivity]] = {}
    acts: dict[str, BitActivity] = {}
    value: dict[str, int] = {}
    since: dict[str, float] = {}
    ns_per_unit, now = 1.0, 0.0
    t0, t1 = window

    def change(ident: str, new: int) -> None:
        old = value.get(ident)
        value[ident] = new
        if old is None or old == new or ident not in ids:
            return
        lo, hi = max(since.get(ident, t0), t0), min(now, t1)
        for a in ids[ident]:
            if t0 <= now <= t1:
                for bit in _bits(old ^ new):
                    a.bit_toggles[bit] += 1
            if hi > lo:
                for bit in _bits(old):
                    a.bit_ones[bit] += hi - lo
        since[ident] = now

    with open(path) as f:
        header = True
        for line in f:
            if header:
                words = line.split()
                if not words:
                    continue
                if words[0] == "$timescale":
                    m = re.match(r"(\d+)\s*(\w+)", " ".join(words[1:-1]) or next(f).strip())
                    ns_per_unit = int(m.group(1)) * units[m.group(2)]
                elif words[0] == "$scope":
                    scope.append(words[2])
                elif words[0] == "$upscope":
                    scope.pop()
                elif words[0] == "$var":
                    name = ".".join(scope + [words[4].lstrip("\\")])
                    if keep(name):
                        acts[name] = BitActivity(int(words[2]))
                        ids.setdefault(words[3], []).append(acts[name])
                elif words[0] == "$enddefinitions":
                    header = False
                continue
            c = line[0]
            if c == "#":
                now = int(line[1:]) * ns_per_unit
                if now > t1:
                    break
            elif c in "01xzXZ":
                change(line[1:].strip(), 1 if c == "1" else 0)
            elif c in "bB":
                bits, ident = line[1:].split()
                change(ident, int(bits.translate(_XZ_TO_0), 2))
    # Close every signal's last interval at the end of the window.
    for ident, group in ids.items():
        lo = max(since.get(ident, t0), t0)
        if t1 > lo and ident in value:
            for a in group:
                for bit in _bits(value[ident]):
                    a.bit_ones[bit] += t1 - lo
    return acts


_XZ_TO_0 = str.maketrans("xzXZ", "0000")


def _waveform(cfg: NPUConfig) -> Path:
    """The VCD the last Verilator run of ``cfg`` with waves wrote."""
    found = sorted((p for d in (BUILD / "sim" / "verilator").glob(f"{cfg.name}_waves*")
                    for p in d.rglob("*.vcd")), key=lambda p: p.stat().st_mtime)
    if not found:
        raise RuntimeError(f"the simulation of {cfg.name} wrote no VCD")
    return found[-1]


def measure(cfg: NPUConfig, profile: str, gemm=(32, 32, 32), seed: int = 1) -> dict:
    """Run one GEMM of ``profile`` operands on the RTL; toggles of every PE register."""
    M, K, N = gemm
    rng = np.random.default_rng(seed)
    a, b = operands(profile, M, K, N, rng)
    work = BUILD / "activity"
    work.mkdir(parents=True, exist_ok=True)
    npz = work / f"{cfg.name}_{profile}.npz"
    np.savez(npz, a=a, b=b)
    report = fresh_report(f"activity_{cfg.name}_{profile}.json")
    tests, failed = run_cocotb("verilator", cfg, "testbench.cocotb_gemm", seed=seed, waves=True,
                               testcase="gemm_matches_golden",
                               extra_env={"KNPU_OPERANDS": str(npz), "KNPU_REPORT": str(report)})
    if failed or not report.exists():
        raise RuntimeError(f"{cfg.name} {profile}: the GEMM failed on the RTL")
    r = json.loads(report.read_text())
    if not r["matches_golden"]:
        raise RuntimeError(f"{cfg.name} {profile}: RTL result differs from the golden model")
    vcd = _waveform(cfg)
    window = tuple(r["window_ns"])
    acts = read_vcd(vcd, window, keep=lambda n: PE_SCOPE.search(n) is not None)
    seconds_ns = window[1] - window[0]
    macs = r["macs"]
    groups = {g: 0 for g in REGISTER_GROUPS}
    registers = {}
    for name, act in acts.items():
        for group, pattern in REGISTER_GROUPS.items():
            if pattern.search(name):
                groups[group] += act.toggles
                registers[name] = {"width": act.width, "toggles": act.toggles,
                                   "duty": act.ones_time / (act.width * seconds_ns)}
    if not registers:
        raise RuntimeError(f"no PE registers found in {vcd}")
    return {"profile": profile, "description": PROFILES[profile], "seed": seed,
            "gemm": [M, K, N], "macs": macs, "cycles": r["cycles"],
            "window_ns": list(window), "vcd": str(vcd), "operands": str(npz),
            "toggles": groups, "toggles_per_mac": sum(groups.values()) / macs,
            "registers": registers}


def activity_factors(cfg: NPUConfig, profiles, gemm=(32, 32, 32), seed: int = 1) -> dict:
    """Each profile's PE-register toggles per MAC relative to uniform random operands."""
    runs = {p: measure(cfg, p, gemm, seed) for p in dict.fromkeys(["uniform", *profiles])}
    base = runs["uniform"]["toggles_per_mac"]
    for r in runs.values():
        r["mac_activity"] = r["toggles_per_mac"] / base
    return {"config": json.loads(cfg.to_json()), "runs": runs}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=parse_size, default=(4, 4), help="ROWSxCOLS (default 4x4)")
    p.add_argument("--dataflow", default="ws", choices=["ws"],
                   help="the WS array (register names are read from its Verilog)")
    p.add_argument("--gemm", type=int, nargs=3, default=[32, 32, 32], metavar=("M", "K", "N"))
    p.add_argument("--profiles", nargs="+", default=[p for p in PROFILES if p != "uniform"],
                   choices=list(PROFILES))
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", type=Path, default=BUILD / "activity.json")
    args = p.parse_args(argv)
    rows, cols = args.size
    cfg = NPUConfig(rows=rows, cols=cols, dataflow=args.dataflow)
    result = activity_factors(cfg, args.profiles, tuple(args.gemm), args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"{cfg.name}: GEMM {'x'.join(map(str, args.gemm))}, seed {args.seed} (Verilator, VCD)")
    print(f"{'profile':>16} {'act':>7} {'weight':>7} {'psum':>7} {'toggles/MAC':>12} "
          f"{'mac_activity':>13}")
    for name, r in result["runs"].items():
        t = r["toggles"]
        print(f"{name:>16} {t['activation']:>7} {t['weight']:>7} {t['partial_sum']:>7} "
              f"{r['toggles_per_mac']:>12.2f} {r['mac_activity']:>13.3f}")
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
