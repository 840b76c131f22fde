"""Energy model: energy = sum(events x energy per event) + leakage x time, as a band.

Per-event energies come from cited tables shipped as versioned data in
``sim_models/energy_tables/`` (Horowitz ISSCC 2014 at 45 nm; Aladdin at 40 nm, as used by
Accelergy).  Each table gives a (low, high) pair per event; where tables disagree, or a table
gives a range (DRAM), the band spans them, and it is labelled with the node and voltage of
every table that went into it.

Events are counted from a program (:func:`events_from_program`): every instruction says
exactly how many lines, rows and bytes it moves and how many MACs the array does.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from hdl import isa
from hdl.config import NPUConfig
from hdl.isa import Opcode

__all__ = ["EnergyTable", "load_table", "TABLES", "Events", "events_from_program", "Band",
           "EnergyModel", "TechScaling", "load_scaling", "load_dram", "DRAM_TYPES",
           "sram_area_mm2", "REFERENCE_NODE", "load_dram_parts", "dram_part_energy",
           "pod_line_powers_mw", "io_pj_per_bit", "derived_dram_band", "tables_fingerprint",
           "resolve_dram_part", "scale_io_rail"]

TABLE_DIR = Path(__file__).resolve().parent / "energy_tables"
TABLES = ("horowitz_45nm", "aladdin_40nm")
SCALING = "stillmaker_baas_2017"
CALIBRATION = "gate_level_osu018"     # the project's own gate-level clock and register figures
REFERENCE_NODE = (45, 0.9)            # where an unscaled model puts the calibration table
DEFAULT_DRAM = "ddr3"


@functools.lru_cache(maxsize=None)
def load_dram_parts() -> dict:
    """The cited DRAM parts (IDD tables) and I/O figures of ``energy_tables/dram_parts.json``."""
    return json.loads((TABLE_DIR / "dram_parts.json").read_text())


_CURRENTS = ("idd0", "idd2n", "idd3n", "idd4r", "idd4w")


def _part_timings_ns(part: dict) -> tuple[float, float]:
    """(tRAS, tRP) in ns: given in clock cycles (``tras``, ``trp`` x ``tck_ns``) or, for a
    part whose core timings come from a source in ns, as ``tras_ns``/``trp_ns``."""
    if "tras_ns" in part or "trp_ns" in part:
        if not {"tras_ns", "trp_ns"} <= part.keys():
            raise ValueError("dram part: give both tras_ns and trp_ns, or tras and trp")
        return part["tras_ns"], part["trp_ns"]
    return part["tras"] * part["tck_ns"], part["trp"] * part["tck_ns"]


def _domain_energy(d: dict, t_burst: float, tras: float, trp: float) -> tuple:
    """(read, write, activate) pJ of one supply domain: mA x V x ns.  A domain without
    ``idd0``/``idd2n`` (a source that gives only the burst and standby currents of a rail,
    as LPDDR5's VDDQ) carries no activate term."""
    currents = {k: d[k] for k in _CURRENTS if k in d}
    if ("idd0" in d) != ("idd2n" in d) or not {"idd3n", "idd4r", "idd4w"} <= d.keys():
        raise ValueError(f"dram part: a domain needs idd3n, idd4r, idd4w and both or neither "
                         f"of idd0/idd2n, got {sorted(currents)}")
    if d["v"] <= 0 or min(currents.values()) < 0:
        raise ValueError(f"dram part: negative current or supply in {d}")
    read = d["v"] * (d["idd4r"] - d["idd3n"]) * t_burst
    write = d["v"] * (d["idd4w"] - d["idd3n"]) * t_burst
    act = d["v"] * (d["idd0"] * (tras + trp) - d["idd3n"] * tras - d["idd2n"] * trp) \
        if "idd0" in d else 0.0
    return read, write, act


def _random_data_scale(part: dict) -> tuple[float, float]:
    """(read, write) factor on a burst's energy for uniform-random data over the table's
    static-data currents, from a part's fitted ``data_pattern`` (energy per bit linear in
    the buses' toggle rates: ``floor + rate * sum(coefficients)``, random data toggling at
    ``rate_random``); (1, 1) for a part whose currents are already for its stated data."""
    dp = part.get("data_pattern")
    if dp is None:
        return 1.0, 1.0
    floor, coefs, rate = dp["floor_pj_per_bit"], dp["coef_pj_per_bit"], dp["rate_random"]
    if floor <= 0 or min(coefs) < 0 or not 0 <= rate <= 1:
        raise ValueError(f"dram part: bad data_pattern {dp}")
    scale = (floor + rate * sum(coefs)) / floor
    return scale, scale if dp["applies_to_writes"] else 1.0


def dram_part_energy(part: dict) -> dict:
    """Per-bit energy of one DRAM part from its IDD table, by DRAMsim3's and DRAMPower's method.

    Per supply domain (``v`` in V, currents in mA), a read burst costs
    ``v * (idd4r - idd3n) * tBurst``, a write ``v * (idd4w - idd3n) * tBurst``
    (``tBurst = burst_length / data_rate * tCK``), an activate + precharge
    ``v * (idd0 * tRC - idd3n * tRAS - idd2n * tRP)`` with ``tRC = tRAS + tRP``
    (mA x V x ns = pJ).  A burst moves ``width * burst_length`` bits, a row holds
    ``width * columns * column_multiplier``.

    Parameters
    ----------
    part : dict
        One entry of ``dram_parts.json``'s ``parts`` (a derived part resolved by
        :func:`resolve_dram_part` first).

    Returns
    -------
    dict
        ``read_pj_per_bit``, ``write_pj_per_bit``, ``activate_pj`` (per activation of one
        device), ``burst_bits``, ``row_bits``, ``gbps_per_line``, ``random_data_scale``
        (read, write factors for random data over a table given for static data, else 1)
        and ``band``: (low, high) pJ per bit, low = the cheaper of read and write with a
        whole row used per activation, high = the dearer (with random data) with one burst
        per activation.
    """
    tck = part["tck_ns"]
    t_burst = part["burst_length"] / part["data_rate"] * tck
    tras, trp = _part_timings_ns(part)
    per_domain = [_domain_energy(d, t_burst, tras, trp) for d in part["domains"]]
    read, write, act = (sum(x) for x in zip(*per_domain))
    if min(read, write, act) <= 0:
        raise ValueError(f"dram part: its IDD table gives a non-positive burst or activate "
                         f"energy (read {read:.3g}, write {write:.3g}, activate {act:.3g} pJ)")
    burst_bits = part["width"] * part["burst_length"]
    row_bits = part["width"] * part["columns"] * part["column_multiplier"]
    rd, wr = read / burst_bits, write / burst_bits
    s_rd, s_wr = _random_data_scale(part)
    return dict(read_pj_per_bit=rd, write_pj_per_bit=wr, activate_pj=act,
                burst_bits=burst_bits, row_bits=row_bits,
                gbps_per_line=part["data_rate"] / tck, random_data_scale=(s_rd, s_wr),
                band=(min(rd, wr) + act / row_bits,
                      max(rd * s_rd, wr * s_wr) + act / burst_bits))


def scale_io_rail(part: dict, rail: str, v: float) -> dict:
    """``part`` with its ``rail`` supply moved to ``v`` volts: that rail's currents scale
    with its voltage, so its energy per bit scales with the voltage squared.

    The law: the I/O rail drives its data lines into a resistive termination (current
    V/R; DRAMPower's LPDDR4 interface model prices static termination as V^2/R x t,
    ``interface_calculation_LPDDR4.cpp: calc_static_energy``) or a capacitive load
    (current C x V x f): in both the current is proportional to the rail's voltage.  Only
    meant for an I/O rail; the core rails' currents do not follow this law."""
    rails = [d.get("rail") for d in part["domains"]]
    if rails.count(rail) != 1:
        raise ValueError(f"dram part: rail {rail!r} must name exactly one domain, have {rails}")
    if v <= 0:
        raise ValueError(f"dram part: the {rail} rail needs a positive voltage, got {v}")
    domains = []
    for d in part["domains"]:
        if d.get("rail") == rail:
            k = v / d["v"]
            d = {**{c: d[c] * k for c in _CURRENTS if c in d}, "rail": rail, "v": v}
        domains.append(d)
    return {**part, "domains": domains}


def resolve_dram_part(parts: dict, name: str) -> dict:
    """The part ``name`` of ``dram_parts.json``'s ``parts``, with a derived part (one that
    names ``derived_from`` and an ``io_rail`` moved to another voltage) built from its
    base part by :func:`scale_io_rail`."""
    part = parts[name]
    if "derived_from" not in part:
        return part
    base = parts[part["derived_from"]]
    if "derived_from" in base:
        raise ValueError(f"dram part {name}: derived from a derived part "
                         f"({part['derived_from']})")
    rail = part["io_rail"]
    own = {k: v for k, v in part.items() if k not in ("derived_from", "io_rail")}
    return {**scale_io_rail(base, rail["rail"], rail["v"]), **own}


def pod_line_powers_mw(vddq: float, ranks: int, ohms: dict, write: bool) -> dict:
    """Static power (mW) of one pseudo-open-drain data line while it is driven low, by nodal
    analysis: every rank's pad reaches the controller's through a trace; the driving end
    pulls to ground through its driver, the others terminate to VDDQ (the target rank with
    RTT_WR on writes, other ranks with RTT_NOM, the controller with its RTT on reads).

    Returns ``{"controller": P, "target_rank": [P_pad, P_trace], "other_rank": [P_pad,
    P_trace]}`` (other ranks summed), the layout Micron's DDR4 power calculator reports."""
    if ranks < 1 or vddq <= 0 or min(ohms.values()) <= 0:
        raise ValueError(f"pod_line_powers_mw: bad ranks={ranks}, vddq={vddq} or ohms={ohms}")
    # (conductance, potential) of each node's shunt: ranks 0..ranks-1, then the controller
    shunts = [(1 / ohms["rtt_wr"], vddq) if write else (1 / ohms["driver"], 0.0)]
    shunts += [(1 / ohms["rtt_nom"], vddq)] * (ranks - 1)
    shunts += [(1 / ohms["driver"], 0.0) if write else (1 / ohms["controller_rtt"], vddq)]
    n, gs = ranks + 1, 1 / ohms["trace"]
    a, b = [[0.0] * n for _ in range(n)], [0.0] * n
    for i, (g, u) in enumerate(shunts):
        a[i][i] += g
        b[i] += g * u
    for i in range(ranks):              # trace between rank i and the controller
        a[i][i] += gs
        a[-1][-1] += gs
        a[i][-1] -= gs
        a[-1][i] -= gs
    v = [float(x) for x in np.linalg.solve(a, b)]
    pad = [g * (v[i] - u) ** 2 * 1e3 for i, (g, u) in enumerate(shunts)]
    trace = [gs * (v[i] - v[-1]) ** 2 * 1e3 for i in range(ranks)]
    return {"controller": pad[-1], "target_rank": [pad[0], trace[0]],
            "other_rank": [sum(pad[1:ranks]), sum(trace[1:])]}


def _line_mw(powers: dict) -> float:
    return powers["controller"] + sum(powers["target_rank"]) + sum(powers["other_rank"])


def io_pj_per_bit(io: dict, gbps_per_line: float) -> tuple[float, float]:
    """(low, high) pJ per bit of a cited termination figure (mW per data line while
    dissipating) at ``gbps_per_line``: low = the cheaper of read and write times the low
    dissipating fraction (random data), high = the dearer times the high one."""
    rd, wr = _line_mw(io["read_mw"]), _line_mw(io["write_mw"])
    f_lo, f_hi = io["dissipating_fraction"]
    return min(rd, wr) * f_lo / gbps_per_line, max(rd, wr) * f_hi / gbps_per_line


def derived_dram_band(dram_type: str) -> tuple[tuple[float, float], list[str]]:
    """The (low, high) pJ/bit of ``dram_type`` from every part of that type in
    ``dram_parts.json`` (plus the I/O figure that ``applies`` to it), spanning the parts;
    and the parts' names."""
    table = load_dram_parts()
    parts = {k: p for k, p in table["parts"].items() if p["type"] == dram_type}
    if not parts:
        raise ValueError(f"dram_parts.json has no part of type {dram_type!r}")
    io = table["io"][table["applies"][dram_type]] if dram_type in table["applies"] else None
    lows, highs = [], []
    for name in parts:
        e = dram_part_energy(resolve_dram_part(table["parts"], name))
        io_lo, io_hi = io_pj_per_bit(io, e["gbps_per_line"]) if io else (0.0, 0.0)
        lows.append(e["band"][0] + io_lo)
        highs.append(e["band"][1] + io_hi)
    return (min(lows), max(highs)), sorted(parts)


@functools.lru_cache(maxsize=None)
def load_dram() -> dict:
    """DRAM type -> {"pj_per_bit": [low, high], "generation", "source", ...} (cited, in
    ``energy_tables/dram.json``).  A type marked ``"derived": "dram_parts"`` is priced from
    the IDD tables of ``dram_parts.json`` by :func:`derived_dram_band` (its ``parts`` are
    filled in)."""
    raw = json.loads((TABLE_DIR / "dram.json").read_text())
    for name, entry in raw["types"].items():
        if entry.get("derived") == "dram_parts":
            band, entry["parts"] = derived_dram_band(name)
            entry["pj_per_bit"] = list(band)
        lo, hi = entry["pj_per_bit"]
        if not 0 < lo <= hi or not entry.get("source"):
            raise ValueError(f"dram table: {name} needs a cited [low, high] pj_per_bit")
    return raw


DRAM_TYPES = tuple(load_dram()["types"])


def tables_fingerprint() -> str:
    """A digest of every energy table's text: what a cached result priced by them depends on."""
    h = hashlib.sha1()
    for path in sorted(TABLE_DIR.glob("*.json")):
        h.update(path.name.encode() + path.read_bytes())
    return h.hexdigest()[:12]


def sram_area_mm2(nbytes: int, node_nm: int) -> tuple[float, str]:
    """Bitcell area (mm^2) of ``nbytes`` of SRAM at ``node_nm`` from the cited density table
    (``energy_tables/sram_density.json``), and how it was obtained.  A node the table does
    not list is moved from the nearest listed node by Stillmaker & Baas's area ratios."""
    table = json.loads((TABLE_DIR / "sram_density.json").read_text())["bitcell_um2"]
    if str(node_nm) in table:
        um2, source = table[str(node_nm)]
        return nbytes * 8 * um2 / 1e6, source
    listed = sorted(int(n) for n in table)
    near = min(listed, key=lambda n: abs(n - node_nm))
    um2, source = table[str(near)]
    factor = load_scaling().area_factor(near, node_nm)
    return nbytes * 8 * um2 * factor / 1e6, f"{source}; moved {near} -> {node_nm} nm by " \
                                               f"Stillmaker & Baas (x{factor:.3g})"


@dataclass(frozen=True)
class EnergyTable:
    name: str
    version: int
    source: str
    node_nm: int
    voltage_v: float | None
    energy_pj: dict
    leakage_mw: dict = field(default_factory=dict)
    scaled_from: str | None = None

    @property
    def label(self) -> str:
        volts = f"{self.voltage_v} V" if self.voltage_v else "voltage not stated"
        moved = f", scaled from {self.scaled_from}" if self.scaled_from else ""
        return f"{self.name} ({self.node_nm} nm, {volts}{moved})"

    def op(self, kind: str, width: int) -> tuple[float, float] | None:
        """Energy of an integer ``add`` or ``mult`` of ``width`` bits, scaled from the nearest
        published width: adders linearly, multipliers quadratically (Accelergy's rule)."""
        widths = sorted(int(k.split("_int")[1]) for k in self.energy_pj if k.startswith(f"{kind}_int"))
        if not widths:
            return None
        base = min(widths, key=lambda w: (abs(w - width), -w))
        lo, hi = self.energy_pj[f"{kind}_int{base}"]
        power = 1 if kind == "add" else 2
        scale = (width / base) ** power
        return lo * scale, hi * scale

    def sram_read_64b(self, size_bytes: int) -> tuple[float, float] | None:
        """64-bit SRAM read, interpolated in log(size) between published sizes."""
        points = []
        for key, (lo, hi) in self.energy_pj.items():
            if key.startswith("sram_read_64b_"):
                size = key.rsplit("_", 1)[1]
                mult = {"KiB": 1024, "MiB": 1 << 20}[size[-3:]]
                points.append((int(size[:-3]) * mult, lo, hi))
        if not points:
            return None
        points.sort()
        if size_bytes <= points[0][0]:
            return points[0][1], points[0][2]
        if size_bytes >= points[-1][0]:
            return points[-1][1], points[-1][2]
        for (s0, l0, h0), (s1, l1, h1) in zip(points, points[1:]):
            if s0 <= size_bytes <= s1:
                t = math.log(size_bytes / s0) / math.log(s1 / s0)
                return l0 + t * (l1 - l0), h0 + t * (h1 - h0)
        raise AssertionError("unreachable")


    def scaled(self, node_nm: int, voltage_v: float, scaling: "TechScaling",
               flavours=("HP", "LP")) -> "EnergyTable":
        """This table moved to another node and supply voltage.  The published node's device
        flavour is unknown, and the target's may be chosen: the band spans every pairing.
        Leakage is not carried over (the fits are for switching energy), and DRAM stays as
        published: it is another chip, whatever node the NPU is built in."""
        if self.voltage_v is None:
            raise ValueError(f"energy table {self.name}: cannot scale, its source states no "
                             f"supply voltage")
        lo, hi = scaling.energy_factor(self.node_nm, self.voltage_v, node_nm, voltage_v,
                                       flavours)
        energy = {k: v if k.startswith("dram") else [v[0] * lo, v[1] * hi]
                  for k, v in self.energy_pj.items()}
        return EnergyTable(
            name=self.name, version=self.version,
            source=f"{self.source}; scaled by {scaling.source}",
            node_nm=node_nm, voltage_v=voltage_v, energy_pj=energy,
            scaled_from=f"{self.node_nm} nm {self.voltage_v} V, x{lo:.3g}-{hi:.3g} "
                        f"({'/'.join(flavours)})")


@dataclass(frozen=True)
class TechScaling:
    """Stillmaker & Baas (2017) technology scaling: energy and delay as polynomial fits in
    supply voltage per node (bulk 180-65 nm, HP and LP devices 45-7 nm), and area ratios.

    Only ratios of the fits mean anything: energy moves from (node a, Va) to (node b, Vb)
    by E_b(Vb) / E_a(Va)."""
    name: str
    version: int
    source: str
    energy_fit: dict
    delay_fit: dict
    area_nodes_nm: list
    area_ratio: list

    def _keys(self, node_nm: int, flavours) -> list[str]:
        if str(node_nm) in self.energy_fit:
            return [str(node_nm)]
        keys = [f"{node_nm}{f}" for f in flavours if f"{node_nm}{f}" in self.energy_fit]
        if not keys:
            nodes = sorted({int(k.rstrip("HPL")) for k in self.energy_fit}, reverse=True)
            raise ValueError(f"technology node {node_nm} nm not covered by {self.name} "
                             f"(nodes: {', '.join(map(str, nodes))} nm; flavours HP, LP)")
        return keys

    def energy(self, key: str, voltage_v: float) -> float:
        c2, c1, c0 = self.energy_fit[key]
        e = c2 * voltage_v ** 2 + c1 * voltage_v + c0
        if not 0.3 <= voltage_v <= 2.0 or e <= 0:
            raise ValueError(f"supply voltage {voltage_v} V is outside the {key} energy fit")
        return e

    def energy_factor(self, src_nm: int, src_v: float, dst_nm: int, dst_v: float,
                      flavours=("HP", "LP")) -> tuple[float, float]:
        """(low, high) energy multiplier over the source's possible flavours and the
        chosen target flavours."""
        bad = [f for f in flavours if f not in ("HP", "LP")]
        if bad or not flavours:
            raise ValueError(f"device flavour must be HP or LP, got {list(flavours)}")
        factors = [self.energy(d, dst_v) / self.energy(s, src_v)
                   for s in self._keys(src_nm, ("HP", "LP"))
                   for d in self._keys(dst_nm, flavours)]
        return min(factors), max(factors)

    def area_factor(self, src_nm: int, dst_nm: int) -> float:
        """Area at ``dst_nm`` per unit area at ``src_nm``."""
        nodes = self.area_nodes_nm
        for n in (src_nm, dst_nm):
            if n not in nodes:
                raise ValueError(f"technology node {n} nm not covered by {self.name} area "
                                 f"scaling (nodes: {', '.join(map(str, nodes))} nm)")
        return self.area_ratio[nodes.index(src_nm)][nodes.index(dst_nm)]


@functools.lru_cache(maxsize=None)
def load_scaling(name: str = SCALING) -> TechScaling:
    """The scaling data (read once: every scaled model and sweep point asks for it)."""
    raw = json.loads((TABLE_DIR / f"{name}.json").read_text())
    keep = {f.name for f in fields(TechScaling)}
    return TechScaling(**{k: v for k, v in raw.items() if k in keep})


def load_table(name: str) -> EnergyTable:
    path = TABLE_DIR / f"{name}.json"
    if not path.exists():
        raise ValueError(f"no energy table {name!r} (have: {', '.join(TABLES)})")
    raw = json.loads(path.read_text())
    keep = {f.name for f in fields(EnergyTable)}
    table = EnergyTable(**{k: v for k, v in raw.items() if k in keep})
    for key, pair in table.energy_pj.items():
        if len(pair) != 2 or not 0 <= pair[0] <= pair[1]:
            raise ValueError(f"energy table {name}: {key} must be [low, high], got {pair}")
    return table


@dataclass
class Events:
    """What a run does, counted in the units the tables price."""
    macs: int = 0                 # int8 x int8 products added into int32
    array_reg_bits: int = 0       # PE register bits written (operands, partial sums, weights)
    sp_read_bytes: int = 0
    sp_write_bytes: int = 0
    acc_read_bytes: int = 0
    acc_write_bytes: int = 0
    dram_bytes: int = 0
    cycles: int = 0               # for leakage

    def __add__(self, other: "Events") -> "Events":
        return Events(**{f.name: getattr(self, f.name) + getattr(other, f.name)
                         for f in fields(Events)})

    def __mul__(self, count: int) -> "Events":
        """The events of ``count`` repeats."""
        return Events(**{f.name: count * getattr(self, f.name) for f in fields(Events)})


def events_from_program(cfg: NPUConfig, program: list[int], cycles: int = 0) -> Events:
    """Count events from the instructions themselves (each says exactly what it moves)."""
    R, C, line = cfg.rows, cfg.cols, cfg.sp_width
    ev = Events(cycles=cycles, dram_bytes=isa.INSN_BYTES * len(program))
    for word in program:
        i = isa.decode(word)
        op = i["op"]
        if op == Opcode.LOAD:
            ev.dram_bytes += i["nrows"] * i["ncols"]
            ev.sp_write_bytes += i["nrows"] * line
        elif op == Opcode.LOAD_ACC:
            ev.dram_bytes += 4 * i["nrows"] * i["ncols"]
            ev.acc_write_bytes += 4 * i["nrows"] * C
        elif op == Opcode.PRELOAD:
            ev.sp_read_bytes += i["nrows"] * line
            ev.array_reg_bits += R * C * cfg.input_width          # every weight written once
        elif op == Opcode.COMPUTE:
            n = i["nrows"]
            ev.macs += n * R * C
            out_rows = n if cfg.dataflow == "ws" else R
            ev.sp_read_bytes += n * line * (1 if cfg.dataflow == "ws" else 2)
            ev.acc_write_bytes += 4 * out_rows * C
            ev.acc_read_bytes += 4 * out_rows * C * i["accumulate"]
            # Each streamed beat updates every PE's operand and sum registers.
            ev.array_reg_bits += n * R * C * (cfg.input_width * (1 if cfg.dataflow == "ws" else 2)
                                             + cfg.acc_width)
        elif op == Opcode.STORE:
            ev.acc_read_bytes += 4 * i["nrows"] * C
            if i["to_sp"]:        # rows kept on chip: scratchpad lines, no DRAM bytes
                ev.sp_write_bytes += i["nrows"] * line
            else:
                ev.dram_bytes += i["nrows"] * i["ncols"] * (4 if i["raw"] else 1)
    return ev


@dataclass
class Band:
    low_pj: float
    high_pj: float
    breakdown: dict           # component -> (low_pj, high_pj)
    label: str
    not_priced: list = field(default_factory=list)

    def per_mac(self, macs: int) -> tuple[float, float]:
        return self.low_pj / macs, self.high_pj / macs

    @property
    def onchip_pj(self) -> tuple[float, float]:
        """(low, high) energy of the core alone: every component but DRAM."""
        parts = [v for k, v in self.breakdown.items() if k != "dram"]
        return sum(p[0] for p in parts), sum(p[1] for p in parts)


class EnergyModel:
    """Prices :class:`Events` with every table that covers an event; the band spans them.

    ``node_nm``/``voltage_v`` move every table to that node and supply by Stillmaker &
    Baas; a table that cannot be moved (no stated voltage) is left out and named in
    ``left_out``.  ``mac_activity`` scales the MAC and array-register energy by the data's
    switching activity relative to uniform random operands (measured on the RTL by
    ``scripts/activity.py``; 1.0 is the tables' own random-data figure)."""

    def __init__(self, cfg: NPUConfig, tables=TABLES, clock_hz: float = 1e9,
                 node_nm: int | None = None, voltage_v: float | None = None,
                 flavours=("HP", "LP"), mac_activity: float = 1.0,
                 dram_type: str = DEFAULT_DRAM):
        self.cfg = cfg
        self.clock_hz = clock_hz
        if not mac_activity > 0:
            raise ValueError(f"mac_activity must be positive, got {mac_activity}")
        self.mac_activity = mac_activity
        drams = load_dram()["types"]
        if dram_type not in drams:
            owed = load_dram().get("owed", {})
            why = f" ({owed[dram_type]})" if dram_type in owed else ""
            raise ValueError(f"DRAM type {dram_type!r} is not priced{why}; have: "
                             f"{', '.join(drams)}")
        self.dram_type = dram_type
        self.dram = drams[dram_type]
        tables = [load_table(t) if isinstance(t, str) else t for t in tables]
        self.left_out = {}
        if node_nm is not None or voltage_v is not None:
            if node_nm is None or voltage_v is None:
                raise ValueError("technology scaling needs both node_nm and voltage_v")
            scaling = load_scaling()
            moved = []
            for t in tables:
                if t.voltage_v is None:
                    self.left_out[t.name] = "its source states no supply voltage"
                else:
                    moved.append(t.scaled(node_nm, voltage_v, scaling, flavours))
            if not moved:
                raise ValueError(f"no energy table can be scaled to {node_nm} nm "
                                 f"{voltage_v} V: {self.left_out}")
            tables = moved
        self.tables = tables
        # The project's gate-level clock and register figures, always moved to the model's
        # node (the reference node, 45 nm 0.9 V, when the published tables stay as they are).
        node, volts = (node_nm, voltage_v) if node_nm is not None else REFERENCE_NODE
        self.calibration = load_table(CALIBRATION).scaled(node, volts, load_scaling(),
                                                          flavours)

    def _span(self, prices) -> tuple[float, float]:
        prices = [p for p in prices if p is not None]
        if not prices:
            raise ValueError("no energy table prices this event")
        return min(p[0] for p in prices), max(p[1] for p in prices)

    def mac_energy(self) -> tuple[float, float]:
        """An int8 multiply plus an int32 add, per table."""
        prices = []
        for t in self.tables:
            mult, add = t.op("mult", self.cfg.input_width), t.op("add", self.cfg.acc_width)
            if mult and add:
                prices.append((mult[0] + add[0], mult[1] + add[1]))
        return self._span(prices)

    def sram_price(self, capacity_bytes: int, banks: int, word_bytes: int):
        """Per-table (low, high) pJ per *byte* of one access of ``word_bytes`` to one bank of
        ``capacity_bytes / banks``: the published 64-bit read at the bank's size, scaled to
        the word actually accessed (so per byte it is the 64-bit figure / 8).  Horowitz gives
        reads only: writes are priced as reads."""
        bank = max(1, capacity_bytes // banks)
        prices = []
        for t in self.tables:
            p = t.sram_read_64b(bank)
            if p is not None:
                words64 = word_bytes * 8 / 64
                prices.append((p[0] * words64 / word_bytes, p[1] * words64 / word_bytes))
        return prices

    def clock_energy(self) -> tuple[float, float]:
        """(low, high) pJ per powered cycle for the array's clock: the gate-level flip-flop
        figure per PE per cycle, moved to this node, times the PEs."""
        lo, hi = self.calibration.energy_pj["clock_pe_cycle"]
        pes = self.cfg.rows * self.cfg.cols
        return lo * pes, hi * pes

    def estimate(self, ev: Events) -> Band:
        """The band for ``ev``.  Every cycle in ``ev.cycles`` pays the array's clock; a
        component no table prices is named in ``Band.not_priced``."""
        cfg = self.cfg
        sp_bytes = cfg.sp_lines * cfg.sp_width
        acc_line = cfg.cols * 4
        acc_bytes = cfg.acc_lines * acc_line
        act = self.mac_activity
        regs = [tuple(t.energy_pj["reg_bit"]) for t in self.tables + [self.calibration]
                if "reg_bit" in t.energy_pj]
        d_lo, d_hi = self.dram["pj_per_bit"]
        # component -> (count, per-unit prices from every table that has one)
        priced = {
            "mac": (ev.macs * act, [self.mac_energy()]),
            "array_registers": (ev.array_reg_bits * act, regs),
            "scratchpad": (ev.sp_read_bytes + ev.sp_write_bytes,
                           self.sram_price(sp_bytes, cfg.sp_banks, cfg.sp_width)),
            "accumulator": (ev.acc_read_bytes + ev.acc_write_bytes,
                            self.sram_price(acc_bytes, cfg.acc_banks, acc_line)),
            "clock": (ev.cycles, [self.clock_energy()]),
            "dram": (ev.dram_bytes * 8, [(d_lo, d_hi)]),
        }
        parts, not_priced = {}, []
        for part, (count, prices) in priced.items():
            if any(p is not None for p in prices):
                lo, hi = self._span(prices)
                parts[part] = (count * lo, count * hi)
            else:
                not_priced.append(part)
        leak = [t.leakage_mw for t in self.tables if t.leakage_mw]
        if leak and ev.cycles:
            pes = cfg.rows * cfg.cols
            per_pe_mw = [(l.get("mult_int32", 0) * (cfg.input_width / 32) ** 2
                          + l.get("add_int32", 0) * cfg.acc_width / 32
                          + l.get("reg_bit", 0) * (2 * cfg.input_width + cfg.acc_width))
                         for l in leak]
            seconds = ev.cycles / self.clock_hz
            lo = min(per_pe_mw) * pes * 1e-3 * seconds * 1e12
            hi = max(per_pe_mw) * pes * 1e-3 * seconds * 1e12
            parts["array_leakage"] = (lo, hi)
        low = sum(p[0] for p in parts.values())
        high = sum(p[1] for p in parts.values())
        label = " + ".join(t.label for t in self.tables)
        label += f"; clock/registers: {self.calibration.label}; DRAM: {self.dram_type}"
        if act != 1.0:
            label += f"; MAC activity x{act:.3g}"
        if not_priced:
            label += f"; not priced: {', '.join(not_priced)}"
        return Band(low, high, parts, label, not_priced)

    def floor(self, macs: int, compulsory_dram_bytes: int, compulsory_onchip_bytes: int,
              outputs: int) -> Band:
        """The compulsory floor: every MAC once, every compulsory DRAM byte once, each of
        those bytes written to and read from the scratchpad once, each output written to and
        read from the accumulator once (int32), each MAC's register bits written once, and
        the clock for MACs / PEs cycles (a perfectly busy array), priced by the same tables."""
        cfg = self.cfg
        ev = Events(macs=macs, dram_bytes=compulsory_dram_bytes,
                    sp_write_bytes=compulsory_onchip_bytes,
                    sp_read_bytes=compulsory_onchip_bytes,
                    acc_write_bytes=4 * outputs, acc_read_bytes=4 * outputs,
                    array_reg_bits=macs * (cfg.input_width + cfg.acc_width),
                    cycles=-(-macs // (cfg.rows * cfg.cols)))
        return self.estimate(ev)
