"""Whole GEMMs of awkward shapes through the array on both simulators."""

import json

import pytest

from hdl.config import NPUConfig

from .rtl import fresh_report, cocotb_tests, run_cocotb
from .stimulus import stimulus_seed

SHAPES = [(1, 1, 1), (37, 53, 29)]


@pytest.mark.rtl
@pytest.mark.parametrize("sim", ["icarus", "verilator"])
@pytest.mark.parametrize("dataflow", ["ws", "os"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_gemm_rtl(sim, dataflow, shape):
    cfg = NPUConfig(rows=4, cols=4, dataflow=dataflow)
    seed = stimulus_seed()
    report = fresh_report(f"gemm-{sim}-{cfg.name}-{'x'.join(map(str, shape))}.json")
    print(f"KNPU_SEED={seed} {sim} {cfg.to_json()} GEMM {shape}")
    tests, failed = run_cocotb(sim, cfg, "testbench.cocotb_gemm", seed=seed, extra_env={
        "KNPU_GEMM": ",".join(map(str, shape)), "KNPU_REPORT": str(report)})
    expected = len(cocotb_tests("testbench.cocotb_gemm"))
    assert (tests, failed) == (expected, 0), f"GEMM failed (replay: KNPU_SEED={seed})"
    assert json.loads(report.read_text())["matches_golden"] is True
