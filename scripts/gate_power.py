"""Gate-level power of a small array, as a cross-check of the energy model.

    python scripts/gate_power.py --size 4x4 --profiles relu_cnn zeros

The array is synthesized with Yosys to OSU's 180 nm cells (``scripts/area.py``).  For each
operand profile (``scripts/activity.py``) the netlist runs the same GEMM as the RTL under
Icarus with OSU's cell models, checked by the same cocotb bench against the golden model;
every net's toggles and time at one are read from that VCD and set on every cell pin in
OpenSTA (Debian's ``opensta``, unpacked under ``build/tech``, nothing installed), whose
``report_power`` at the liberty's 1.8 V, times the GEMM's window, gives energy per MAC.

Beside it: the energy model's MAC band, Horowitz 45 nm / 0.9 V moved to 180 nm / 1.8 V by
Stillmaker & Baas and corrected by the profile's RTL-measured activity.  Results go to
``build/gate_power.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hdl.config import NPUConfig  # noqa: E402
from scripts.activity import PROFILES, activity_factors, read_vcd  # noqa: E402
from scripts.area import liberty, synthesize  # noqa: E402
from scripts.cli import parse_size  # noqa: E402
from scripts.debian import unpack  # noqa: E402
from sim_models.energy import EnergyModel  # noqa: E402
from testbench import BUILD, fresh_report, run_cocotb  # noqa: E402

#: The OSU liberty's nominal corner (``nom_voltage : 1.8``) and node.
LIB_NODE_NM, LIB_VOLTAGE_V = 180, 1.8
CELLS_IN_PACKAGE = "usr/share/qflow/tech/osu018/osu018_stdcells.v"
CLOCK_NS = 10.0          # the testbench clock; energy per cycle does not depend on it
INSTANCE = re.compile(r"^\s*([A-Z][A-Z0-9]*)\s+(\S+)\s*\((.*?)\);", re.S | re.M)
PIN = re.compile(r"\.(\w+)\(\s*(\\\S+|[^\s()]+)\s*\)")
BIT = re.compile(r"^(.*?)(?:\[(\d+)\])?$")
#: Dumps the netlist's own nets (not the cells' insides) to the VCD named by +vcd=.
VCD_DUMP = """module knpu_vcd_dump;
  reg [8*1024-1:0] path;
  initial begin
    if (!$value$plusargs("vcd=%s", path)) path = "gates.vcd";
    $dumpfile(path);
    $dumpvars(1, {top});
  end
endmodule
"""


def opensta() -> Path:
    """OpenSTA's ``sta`` binary from Debian's package, unpacked on first use."""
    sta = unpack("opensta", "usr/bin/sta")
    proc = subprocess.run([str(sta), "-version"], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"OpenSTA from Debian's opensta package does not run here "
                         f"(a missing shared library?): {proc.stderr.strip()}")
    return sta


def instance_pins(netlist: Path) -> list[tuple[str, str, str, str]]:
    """Every (cell, instance, pin, net) connection of a flat structural netlist."""
    out = []
    for cell, inst, pins in INSTANCE.findall(netlist.read_text()):
        if cell == "module":
            continue
        for pin, net in PIN.findall(pins):
            out.append((cell, inst, pin, net.lstrip("\\")))
    return out


def simulate_gates(cfg: NPUConfig, netlist: Path, operands: Path, seed: int) -> tuple:
    """Run the GEMM in ``operands`` on the gate-level netlist under Icarus (OSU's cell
    models, zero delay); the same cocotb testbench checks it against the golden model.
    Returns the VCD of every net and the testbench's report."""
    work = netlist.parent
    dump = work / f"{cfg.name}_vcd_dump.v"
    dump.write_text(VCD_DUMP.replace("{top}", cfg.name))
    vcd = operands.with_suffix(".gates.vcd")
    report = fresh_report(f"gates_{operands.stem}.json")
    tests, failed = run_cocotb(
        "icarus", cfg, "testbench.cocotb_gemm", seed=seed, testcase="gemm_matches_golden",
        sources=[netlist, unpack("qflow-tech-osu018", CELLS_IN_PACKAGE), dump],
        tag="_gates", design_vcd=True, extra_args=["-s", "knpu_vcd_dump"], plusargs=[f"+vcd={vcd}"],
        extra_env={"KNPU_OPERANDS": str(operands), "KNPU_REPORT": str(report)})
    r = json.loads(report.read_text()) if report.exists() else {}
    if failed or not r.get("matches_golden"):
        raise RuntimeError(f"{cfg.name}: the gate-level netlist computed the GEMM in "
                           f"{operands.name} wrongly (or not at all)")
    return vcd, r


def _net_activity(acts, top: str, net: str):
    """(BitActivity, bit) of netlist net ``net`` in the gate-level VCD, or None."""
    a = acts.get(f"{top}.{net}")
    if a is not None:
        return a, 0
    m = BIT.match(net)
    a = acts.get(f"{top}.{m.group(1)}")
    if a is not None and m.group(2) is not None and int(m.group(2)) < a.width:
        return a, int(m.group(2))
    return None


def tcl_script(cfg: NPUConfig, lib: Path, netlist: Path, pins, acts, window_ns, cycles: int
               ) -> tuple[str, dict]:
    """OpenSTA commands giving every cell pin (``pins``: :func:`instance_pins` of
    ``netlist``) the activity of its net in the simulation (nothing is left to OpenSTA's
    probabilistic propagation); and what was annotated."""
    rel = lambda p: os.path.relpath(p, netlist.parent)  # noqa: E731
    span = window_ns[1] - window_ns[0]
    lines = [f"read_liberty {rel(lib)}", f"read_verilog {rel(netlist)}",
             f"link_design {cfg.name}",
             f"create_clock -name clk -period {CLOCK_NS} [get_ports clk]",
             "set_power_activity -input -activity 0 -duty 0"]
    stats = {"pins": 0, "pins_annotated": 0, "unmatched": []}
    for cell, inst, pin, net in pins:
        if net == "clk":
            continue                       # OpenSTA knows the clock
        stats["pins"] += 1
        if net in ("1'b0", "1'b1"):
            activity, duty = 0.0, float(net == "1'b1")
        else:
            found = _net_activity(acts, cfg.name, net)
            if found is None:
                stats["unmatched"].append(net)
                continue
            a, bit = found
            activity = a.bit_toggles[bit] / cycles          # transitions per clock period
            duty = min(1.0, a.bit_ones[bit] / span)
        stats["pins_annotated"] += 1
        # The low-level call: set_power_activity -pins takes input pins only in this
        # OpenSTA, and an output pin's activity is what prices its net's switching.
        lines.append(f"sta::set_power_pin_activity [get_pins {{{inst}/{pin}}}] "
                     f"{activity:.6g} {duty:.6g}")
    stats["unmatched"] = sorted(set(stats["unmatched"]))[:20]
    lines.append("report_power -digits 6")
    return "\n".join(lines) + "\n", stats


def run_opensta(sta: Path, script: str, work: Path) -> dict:
    """Run ``script``; the report's groups as {group: {internal, switching, leakage, total}}
    in watts."""
    tcl = work / "power.tcl"
    tcl.write_text(script)
    proc = subprocess.run([str(sta), "-no_splash", "-exit", tcl.name], cwd=work,
                          capture_output=True, text=True, timeout=1800)
    out = proc.stdout + proc.stderr
    if proc.returncode != 0 or "Error" in out:
        raise RuntimeError(f"OpenSTA failed:\n{out[-3000:]}")
    groups = {}
    for m in re.finditer(r"^(Sequential|Combinational|Macro|Pad|Total)\s+([-0-9.e+]+)\s+"
                         r"([-0-9.e+]+)\s+([-0-9.e+]+)\s+([-0-9.e+]+)", out, re.M):
        groups[m.group(1).lower()] = dict(zip(("internal", "switching", "leakage", "total"),
                                              map(float, m.group(2, 3, 4, 5))))
    if "total" not in groups:
        raise RuntimeError(f"no power report in OpenSTA's output:\n{out[-3000:]}")
    return groups


def gate_power(cfg: NPUConfig, profiles, gemm=(32, 32, 32), seed: int = 1) -> dict:
    """Gate-level energy per MAC per operand profile, beside the energy model's band."""
    lib, sta = liberty(), opensta()
    work = BUILD / "gate_power"
    work.mkdir(parents=True, exist_ok=True)
    netlist = work / f"{cfg.name}.v"
    synth = synthesize(cfg, lib, netlist)
    # The RTL's activity factor per profile (the model's correction), same operands.
    measured = activity_factors(cfg, profiles, gemm, seed)
    model = EnergyModel(cfg, node_nm=LIB_NODE_NM, voltage_v=LIB_VOLTAGE_V)
    mac_lo, mac_hi = model.mac_energy()
    pins = instance_pins(netlist)
    results = {}
    for profile, run in measured["runs"].items():
        vcd, r = simulate_gates(cfg, netlist, Path(run["operands"]), seed)
        window = tuple(r["window_ns"])
        acts = read_vcd(vcd, window)
        script, stats = tcl_script(cfg, lib, netlist, pins, acts, window, r["cycles"])
        groups = run_opensta(sta, script, work)
        joules = lambda w: w * r["cycles"] * CLOCK_NS * 1e-9  # noqa: E731
        act = run["mac_activity"]
        results[profile] = {
            "description": PROFILES[profile], "macs": r["macs"], "cycles": r["cycles"],
            "rtl_cycles": run["cycles"], "mac_activity": act, **stats, "power_w": groups,
            "gate_pj_per_mac": {g: joules(v["total"]) * 1e12 / r["macs"]
                                for g, v in groups.items()},
            "model_mac_pj": [mac_lo * act, mac_hi * act],
        }
    return {"config": json.loads(cfg.to_json()), "gemm": list(gemm), "seed": seed,
            "liberty": f"OSU 0.18 um ({LIB_NODE_NM} nm, {LIB_VOLTAGE_V} V)",
            "cells": synth["cells"], "area_um2": synth["area_um2"],
            "model_label": " + ".join(t.label for t in model.tables), "profiles": results}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=parse_size, default=(2, 2), help="ROWSxCOLS (default 2x2)")
    p.add_argument("--gemm", type=int, nargs=3, default=[32, 32, 32], metavar=("M", "K", "N"))
    p.add_argument("--profiles", nargs="+", default=["relu_cnn"], choices=list(PROFILES))
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", type=Path, default=BUILD / "gate_power.json")
    args = p.parse_args(argv)
    rows, cols = args.size
    cfg = NPUConfig(rows=rows, cols=cols, dataflow="ws")
    r = gate_power(cfg, args.profiles, tuple(args.gemm), args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(r, indent=1))
    print(f"{cfg.name}: {r['cells']} cells, {r['area_um2']:.0f} um2 on {r['liberty']}; "
          f"GEMM {'x'.join(map(str, args.gemm))}, seed {args.seed}")
    print(f"model: {r['model_label']}")
    print("pJ per MAC; 'RTL act' is the model's activity factor (PE-register toggles vs "
          "uniform), 'gate act' the gates' combinational energy vs uniform")
    print(f"{'profile':>16} {'pins':>11} {'RTL act':>8} {'gate act':>8} {'gate seq':>9} "
          f"{'gate comb':>9} {'gate total':>10} {'model MAC':>15} {'comb/model':>10}")
    base = r["profiles"]["uniform"]["gate_pj_per_mac"]["combinational"]
    for name, x in r["profiles"].items():
        g = x["gate_pj_per_mac"]
        lo, hi = x["model_mac_pj"]
        print(f"{name:>16} {x['pins_annotated']:>5}/{x['pins']:<5} {x['mac_activity']:>8.3f} "
              f"{g['combinational'] / base:>8.3f} {g['sequential']:>9.2f} "
              f"{g['combinational']:>9.2f} {g['total']:>10.2f} {lo:>7.2f}-{hi:<7.2f} "
              f"{g['combinational'] / hi:>4.1f}-{g['combinational'] / lo:<4.1f}")
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
