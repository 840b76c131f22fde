"""RTL checks for the gaps issue 12 names (``cocotb_gaps.py``), both dataflows, both
simulators."""

from __future__ import annotations

import pytest

from hdl.config import NPUConfig

from .rtl import run_cocotb

CORES = [NPUConfig(rows=4, cols=4, dataflow="ws", bus_bits=128, sp_lines=1024, acc_lines=128),
         NPUConfig(rows=4, cols=4, dataflow="os", bus_bits=64, sp_lines=1024, acc_lines=128)]


@pytest.mark.rtl
@pytest.mark.parametrize("sim,cfg", [pytest.param(s, c, id=f"{s}-{c.dataflow}")
                                     for c in CORES for s in ("icarus", "verilator")])
def test_gaps_rtl(sim, cfg):
    tests, failed = run_cocotb(sim, cfg, "testbench.cocotb_gaps", core=True, seed=1)
    assert (tests, failed) == (5, 0), f"{failed} of {tests} failed"
