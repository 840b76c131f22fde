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

import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path

from hdl import isa
from hdl.config import NPUConfig
from hdl.isa import Opcode

__all__ = ["EnergyTable", "load_table", "TABLES", "Events", "events_from_program", "Band",
           "EnergyModel"]

TABLE_DIR = Path(__file__).resolve().parent / "energy_tables"
TABLES = ("horowitz_45nm", "aladdin_40nm")


@dataclass(frozen=True)
class EnergyTable:
    name: str
    version: int
    source: str
    node_nm: int
    voltage_v: float | None
    energy_pj: dict
    leakage_mw: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        volts = f"{self.voltage_v} V" if self.voltage_v else "voltage not stated"
        return f"{self.name} ({self.node_nm} nm, {volts})"

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
            ev.dram_bytes += i["nrows"] * i["ncols"] * (4 if i["raw"] else 1)
    return ev


@dataclass
class Band:
    low_pj: float
    high_pj: float
    breakdown: dict           # component -> (low_pj, high_pj)
    label: str

    def per_mac(self, macs: int) -> tuple[float, float]:
        return self.low_pj / macs, self.high_pj / macs


class EnergyModel:
    """Prices :class:`Events` with every table that covers an event; the band spans them."""

    def __init__(self, cfg: NPUConfig, tables=TABLES, clock_hz: float = 1e9):
        self.cfg = cfg
        self.tables = [load_table(t) if isinstance(t, str) else t for t in tables]
        self.clock_hz = clock_hz

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

    def estimate(self, ev: Events) -> Band:
        cfg = self.cfg
        sp_bytes = cfg.sp_lines * cfg.sp_width
        acc_bytes = cfg.acc_lines * cfg.cols * 4
        per_bit_reg = self._span([(t.energy_pj["reg_bit"][0], t.energy_pj["reg_bit"][1])
                                  for t in self.tables if "reg_bit" in t.energy_pj])
        sp = self._span([t.sram_read_64b(sp_bytes) for t in self.tables])
        acc = self._span([t.sram_read_64b(acc_bytes) for t in self.tables])
        dram = self._span([tuple(t.energy_pj["dram_64b"]) for t in self.tables
                           if "dram_64b" in t.energy_pj])
        mac = self.mac_energy()
        parts = {
            "mac": (ev.macs * mac[0], ev.macs * mac[1]),
            "array_registers": (ev.array_reg_bits * per_bit_reg[0],
                                ev.array_reg_bits * per_bit_reg[1]),
            # SRAM writes priced as reads (the tables give reads only).
            "scratchpad": ((ev.sp_read_bytes + ev.sp_write_bytes) / 8 * sp[0],
                           (ev.sp_read_bytes + ev.sp_write_bytes) / 8 * sp[1]),
            "accumulator": ((ev.acc_read_bytes + ev.acc_write_bytes) / 8 * acc[0],
                            (ev.acc_read_bytes + ev.acc_write_bytes) / 8 * acc[1]),
            "dram": (ev.dram_bytes / 8 * dram[0], ev.dram_bytes / 8 * dram[1]),
        }
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
        return Band(low, high, parts, " + ".join(t.label for t in self.tables))
