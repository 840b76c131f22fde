"""README's sweep tables, rendered from ``build/sweep/sweep.csv``.

``python -m scripts.sweep_report`` prints them; ``--readme README.md`` rewrites every block
between ``<!-- sweep:NAME -->`` and ``<!-- /sweep:NAME -->`` in place (``make sweep-readme``),
so the figures README gives are the last sweep's, never typed by hand.  The blocks:

``balanced``
    The balanced points (best system TOPS/W with the point's own DRAM) of the workloads the
    issue's targets name (ResNet-50 and the BERT block, WS, at every square size in
    :data:`TARGET_SIZES`) and the best balanced point of every other workload.
``per_dram``
    Per workload and DRAM type, the ``balanced_dram`` point with the best system TOPS/W over
    every array size and dataflow (:func:`scripts.sweep.best_per_dram`), with the DRAM's share
    of the energy.
``targets``
    The issue's utilization and floor targets, each with the figure measured.
``breakdown``
    Where the cycles of ResNet-50's balanced WS 64x64 point go: its ``cycles_<cause>``
    columns (the causes of :data:`sim_models.analytical.BREAKDOWN`) as shares of its cycles.

The label under each block names the run by the CSV's ``model_version`` column (written by
:mod:`scripts.sweep`); a CSV without it needs ``--source``, never the current code's version.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from pathlib import Path

from scripts.sweep import DRAM_TYPES, balanced_points, best_per_dram, best_per_workload
from sim_models.analytical import BREAKDOWN

__all__ = ["read_csv", "render", "rewrite", "run_label", "TABLES", "SweepReportError"]

ROOT = Path(__file__).resolve().parents[1]
#: The square sizes at which README lists the target workloads' balanced points.
TARGET_SIZES = (16, 32, 64)
TARGET_WORKLOADS = ("resnet50", "bert_base_block")
#: Columns every table reads; a CSV without one is refused by name.
NEEDED = ("rows", "cols", "dataflow", "workload", "bus_bits", "sp_bytes", "acc_bytes",
          "dram_type", "utilization", "tops_per_w_onchip_low", "tops_per_w_onchip_high",
          "tops_per_w_system_low", "tops_per_w_system_high", "ratio_to_floor", "dram_ratio",
          "tops_per_mm2", "balanced", "balanced_dram", "status", "e_dram_uj", "energy_low_uj",
          "energy_high_uj")
_INTS = ("rows", "cols", "bus_bits", "sp_bytes", "acc_bytes")
_BOOLS = ("balanced", "balanced_dram", "balanced_area", "own_dram")


class SweepReportError(ValueError):
    """A CSV or README the report cannot use; the message names what is wrong."""


def read_csv(path: Path) -> list[dict]:
    """The sweep's rows with numbers and flags typed as :mod:`scripts.sweep` writes them."""
    path = Path(path)
    if not path.exists():
        raise SweepReportError(f"{path} does not exist: run `make sweep` first")
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in NEEDED if c not in (reader.fieldnames or [])]
        if missing:
            raise SweepReportError(f"{path} lacks column(s) {', '.join(missing)}")
        rows = list(reader)
    for r in rows:
        for k, v in r.items():
            if k in _BOOLS:
                if v not in ("True", "False", ""):
                    raise SweepReportError(f"{path}: {k}={v!r} is not True/False")
                r[k] = v == "True"
            elif k in _INTS:
                r[k] = int(v)
            elif r.get("status") == "ok" and k in NEEDED and k not in (
                    "dataflow", "workload", "dram_type", "status"):
                r[k] = float(v)
    return rows


def _band(r: dict, key: str) -> str:
    return f"{r[key + '_low']:.2f}-{r[key + '_high']:.2f}"


def _balanced_rows(rows: list[dict]) -> list[dict]:
    picked = [r for r in balanced_points(rows) if r["workload"] in TARGET_WORKLOADS
              and r["dataflow"] == "ws" and r["rows"] == r["cols"] and r["rows"] in TARGET_SIZES]
    picked.sort(key=lambda r: (TARGET_WORKLOADS.index(r["workload"]), r["rows"]))
    others = best_per_workload(rows)
    picked += [others[wl] for wl in sorted(others) if wl not in TARGET_WORKLOADS]
    return picked


def table_balanced(rows: list[dict]) -> str:
    head = (f"{'workload':15s} {'array':>5s} df {'bus':>4s} {'sp KiB':>6s} {'acc KiB':>7s} "
            f"{'util':>5s} {'on-chip TOPS/W':>15s} {'system TOPS/W':>14s} {'/floor':>6s} "
            f"{'DRAM/compulsory':>15s}")
    lines = [head]
    for r in _balanced_rows(rows):
        lines.append(f"{r['workload']:15s} {r['rows']:>2d}x{r['cols']:<2d} {r['dataflow']} "
                     f"{r['bus_bits']:>4d} {r['sp_bytes'] // 1024:>6d} "
                     f"{r['acc_bytes'] // 1024:>7d} {r['utilization']:>5.2f} "
                     f"{_band(r, 'tops_per_w_onchip'):>15s} {_band(r, 'tops_per_w_system'):>14s} "
                     f"{r['ratio_to_floor']:>6.2f} {r['dram_ratio']:>15.2f}")
    return "\n".join(lines)


def table_per_dram(rows: list[dict]) -> str:
    head = (f"{'workload':16s} {'DRAM':8s} {'array':>5s} df {'bus':>4s} {'sp KiB':>6s} "
            f"{'util':>5s} {'system TOPS/W':>14s} {'on-chip TOPS/W':>15s} {'DRAM share':>10s} "
            f"{'/floor':>6s}")
    lines = [head]
    best = best_per_dram(rows)
    for (wl, dram), r in sorted(best.items(), key=lambda kv: (kv[0][0],
                                                            DRAM_TYPES.index(kv[0][1]))):
        share = r["e_dram_uj"] / ((r["energy_low_uj"] + r["energy_high_uj"]) / 2)
        lines.append(f"{wl:16s} {dram:8s} {r['rows']:>2d}x{r['cols']:<2d} {r['dataflow']} "
                     f"{r['bus_bits']:>4d} {r['sp_bytes'] // 1024:>6d} {r['utilization']:>5.2f} "
                     f"{_band(r, 'tops_per_w_system'):>14s} {_band(r, 'tops_per_w_onchip'):>15s} "
                     f"{share:>10.2f} {r['ratio_to_floor']:>6.2f}")
    return "\n".join(lines)


def _point(rows, wl, size, dataflow="ws"):
    for r in balanced_points(rows):
        if (r["workload"], r["rows"], r["cols"], r["dataflow"]) == (wl, size, size, dataflow):
            return r
    raise SweepReportError(f"the CSV has no balanced {dataflow} {size}x{size} point of {wl}")


def table_targets(rows: list[dict]) -> str:
    """Issue 11's utilization and floor targets against this sweep."""
    checks = [("resnet50", 32, "utilization", ">=", 0.70),
              ("resnet50", 64, "utilization", ">=", 0.65),
              ("bert_base_block", 64, "utilization", ">=", 0.80)]
    lines = [f"{'target':52s} {'measured':>8s}  met"]
    for wl, size, key, op, bound in checks:
        v = _point(rows, wl, size)[key]
        lines.append(f"{f'{wl} {size}x{size} WS balanced {key} {op} {bound:.2f}':52s} "
                     f"{v:>8.2f}  {'yes' if v >= bound else 'NO'}")
    best = best_per_workload(rows)
    for wl, bound in (("resnet50", 2.0), ("bert_base_block", 1.5), ("mlp", 1.5)):
        if wl not in best:
            continue
        r = best[wl]
        label = f"{wl} best point ({r['rows']}x{r['cols']} {r['dataflow']}) /floor <= {bound}"
        lines.append(f"{label:52s} {r['ratio_to_floor']:>8.2f}  "
                     f"{'yes' if r['ratio_to_floor'] <= bound else 'NO'}")
    return "\n".join(lines)


#: The point whose cycles README breaks down (workload, square size, dataflow).
BREAKDOWN_POINT = ("resnet50", 64, "ws")


def table_breakdown(rows: list[dict]) -> str:
    """The cycles of :data:`BREAKDOWN_POINT`'s balanced point, by cause, in % of all."""
    wl, size, dataflow = BREAKDOWN_POINT
    r = _point(rows, wl, size, dataflow)
    cols = ["cycles"] + [f"cycles_{c}" for c in BREAKDOWN]
    missing = [c for c in cols if c not in r]
    if missing:
        raise SweepReportError(f"the CSV lacks column(s) {', '.join(missing)} (breakdown)")
    cycles = float(r["cycles"])
    shares = [100 * float(r[c]) / cycles for c in cols[1:]]
    head = f"{'point':33s} {'cycles':>10s} " + " ".join(f"{c:>8s}" for c in BREAKDOWN)
    label = (f"{wl} {size}x{size} {dataflow} {r['bus_bits']}b "
             f"{r['sp_bytes'] // 1024}K/{r['acc_bytes'] // 1024}K")
    body = f"{label:33s} {int(cycles):>10,d} " + " ".join(f"{s:>8.1f}" for s in shares)
    return f"{head}\n{body}"


TABLES = {"balanced": table_balanced, "per_dram": table_per_dram, "targets": table_targets,
          "breakdown": table_breakdown}


def render(rows: list[dict], name: str) -> str:
    if name not in TABLES:
        raise SweepReportError(f"unknown sweep table {name!r}: one of {sorted(TABLES)}")
    ok = [r for r in rows if r.get("status") == "ok"]
    return TABLES[name](ok)


_BLOCK = re.compile(r"(<!-- sweep:(\w+) -->\n)(.*?)(<!-- /sweep:\2 -->)", re.S)


def rewrite(text: str, rows: list[dict], source: str) -> tuple[str, list[str]]:
    """``text`` with every marked block replaced by its table (a fenced block, with the CSV
    it came from); the names rewritten.  An unknown name or an unclosed marker raises."""
    opened = re.findall(r"<!-- sweep:(\w+) -->", text)
    closed = re.findall(r"<!-- /sweep:(\w+) -->", text)
    if sorted(opened) != sorted(closed):
        raise SweepReportError(f"README sweep markers do not pair: opened {opened}, "
                               f"closed {closed}")
    names = []

    def fill(m):
        names.append(m.group(2))
        body = render(rows, m.group(2))
        return (f"{m.group(1)}```\n{body}\n```\n(generated by `make sweep-readme` from "
                f"{source})\n{m.group(4)}")
    return _BLOCK.sub(fill, text), names


def run_label(rows: list[dict], path: Path) -> str:
    """How README names the run: by the CSV's own ``model_version`` (one value)."""
    versions = sorted({r.get("model_version") for r in rows})
    if versions == [None] or any(v in (None, "") for v in versions):
        raise SweepReportError(f"{path} has no model_version column (a sweep before it was "
                               f"written): re-run `make sweep` or pass --source")
    if len(versions) != 1:
        raise SweepReportError(f"{path} mixes model_version values {versions}")
    return f"`make sweep` at MODEL_VERSION {versions[0]}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--csv", type=Path, default=ROOT / "build" / "sweep" / "sweep.csv")
    ap.add_argument("--readme", type=Path, default=None,
                    help="rewrite this file's <!-- sweep:NAME --> blocks in place")
    ap.add_argument("--source", default=None,
                    help="how the README names the run (default: the sweep's MODEL_VERSION)")
    args = ap.parse_args(argv)
    try:
        rows = read_csv(args.csv)
        if args.readme is None:
            for name in TABLES:
                print(f"{name}:\n{render(rows, name)}\n")
            return 0
        source = args.source or run_label(rows, args.csv)
        text, names = rewrite(args.readme.read_text(), rows, source)
    except SweepReportError as exc:
        print(f"sweep_report: {exc}", file=sys.stderr)
        return 2
    args.readme.write_text(text)
    print(f"rewrote {', '.join(names) or 'no'} sweep block(s) in {args.readme}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
