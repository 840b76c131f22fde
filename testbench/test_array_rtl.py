"""cocotb regression of the systolic array on generated Verilog: simulator x configuration."""

from __future__ import annotations

import pytest

from hdl.config import NPUConfig

from .rtl import cocotb_tests, run_cocotb
from .stimulus import stimulus_seed

# (rows, cols, dataflow, acc_width) on both simulators; the big ones on Verilator only,
# where a 32x32 array simulates in seconds rather than minutes.
BOTH = [(r, c, df, 32) for (r, c) in [(1, 1), (2, 2), (4, 4), (8, 8), (4, 8), (8, 4)]
        for df in ("ws", "os")] + [(4, 4, "os", 18), (3, 5, "ws", 20)]
VERILATOR_ONLY = [(16, 16, "ws", 32), (16, 16, "os", 32), (32, 32, "ws", 32),
                  (32, 32, "os", 32)]

CASES = [pytest.param(sim, NPUConfig(rows=r, cols=c, dataflow=df, acc_width=acc),
                      id=f"{sim}-{df}-{r}x{c}" + (f"-acc{acc}" if acc != 32 else ""))
         for (r, c, df, acc) in BOTH for sim in ("icarus", "verilator")]
CASES += [pytest.param("verilator", NPUConfig(rows=r, cols=c, dataflow=df, acc_width=acc),
                       id=f"verilator-{df}-{r}x{c}")
          for (r, c, df, acc) in VERILATOR_ONLY]

MODULE = "testbench.cocotb_array"


@pytest.mark.rtl
@pytest.mark.parametrize("sim,cfg", CASES)
def test_array_rtl(sim, cfg):
    seed = stimulus_seed()
    print(f"KNPU_SEED={seed} {sim} {cfg.to_json()}")
    tests, failed = run_cocotb(sim, cfg, MODULE, seed=seed)
    expected = cocotb_tests(MODULE)
    assert tests == len(expected), f"ran {tests} cocotb tests, expected {len(expected)}: {expected}"
    assert failed == 0, f"{failed} of {tests} cocotb tests failed (replay: KNPU_SEED={seed})"
