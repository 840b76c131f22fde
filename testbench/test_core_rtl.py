"""End-to-end regression of the NPU core on generated Verilog: simulator x configuration."""

from __future__ import annotations

import pytest

from hdl.config import NPUConfig

from .rtl import cocotb_tests, run_cocotb
from .stimulus import stimulus_seed

CORES = [
    NPUConfig(rows=4, cols=4, dataflow="ws", bus_bits=128, sp_lines=1024, acc_lines=128),
    NPUConfig(rows=4, cols=4, dataflow="os", bus_bits=64, sp_lines=1024, acc_lines=128),
]
CASES = [pytest.param(sim, cfg, id=f"{sim}-{cfg.dataflow}-{cfg.rows}x{cfg.cols}-b{cfg.bus_bits}")
         for cfg in CORES for sim in ("icarus", "verilator")]
CASES += [pytest.param("verilator", NPUConfig(rows=8, cols=4, dataflow="ws", bus_bits=256,
                                               sp_lines=1024, acc_lines=128),
                       id="verilator-ws-8x4-b256")]


@pytest.mark.rtl
@pytest.mark.parametrize("sim,cfg", CASES)
def test_core_rtl(sim, cfg):
    seed = stimulus_seed()
    print(f"KNPU_SEED={seed} {sim} {cfg.to_json()}")
    tests, failed = run_cocotb(sim, cfg, "testbench.cocotb_core", core=True, seed=seed)
    expected = len(cocotb_tests("testbench.cocotb_core"))
    assert (tests, failed) == (expected, 0), \
        f"{failed} of {tests} failed, {expected} expected (replay KNPU_SEED={seed})"
