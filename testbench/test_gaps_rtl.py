"""RTL checks for the gaps issue 12 names (``cocotb_gaps.py``), both dataflows, both
simulators."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from hdl.config import NPUConfig

from .rtl import run_cocotb

CORES = [NPUConfig(rows=4, cols=4, dataflow="ws", bus_bits=128, sp_lines=1024, acc_lines=128),
         NPUConfig(rows=4, cols=4, dataflow="os", bus_bits=64, sp_lines=1024, acc_lines=128)]
#: 14-16 s per run on Verilator (8191 instructions fetched over the cocotb AXI model, the
#: cycle model traced): run on Verilator (and by make coverage) only, for make test's budget.
VERILATOR_ONLY = ("long_program_faults_at_its_end",)


def _tests() -> list[str]:
    """The module's cocotb tests (``@cocotb.test()`` coroutines), in file order."""
    tree = ast.parse((Path(__file__).parent / "cocotb_gaps.py").read_text())
    return [f.name for f in tree.body if isinstance(f, ast.AsyncFunctionDef)
            and any(ast.unparse(d).startswith("cocotb.test") for d in f.decorator_list)]


@pytest.mark.rtl
@pytest.mark.parametrize("sim,cfg", [pytest.param(s, c, id=f"{s}-{c.dataflow}")
                                     for c in CORES for s in ("icarus", "verilator")])
def test_gaps_rtl(sim, cfg):
    names = [n for n in _tests() if sim == "verilator" or n not in VERILATOR_ONLY]
    assert len(names) == 10 - (sim != "verilator") and set(VERILATOR_ONLY) <= set(_tests())
    tests, failed = run_cocotb(sim, cfg, "testbench.cocotb_gaps", core=True, seed=1,
                               testcase=",".join(names))
    assert (tests, failed) == (len(names), 0), f"{failed} of {tests} failed"
