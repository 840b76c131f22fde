"""Tests of :mod:`hdl.verilog`: what the generated Verilog must not contain."""

import pytest

from hdl.config import NPUConfig


@pytest.mark.parametrize("dataflow", ["ws", "os"])
def test_verilog_has_no_comb_process_that_icarus_would_leave_at_x(dataflow):
    """Icarus does not run ``always @*`` blocks at time zero.  Yosys emits one per
    combinational process; those that read ``rst`` are kicked by the reset, any other would
    hold X until its inputs happen to change (a real bug found this way: a weight mux read
    X when a PE's first weight was 0).  Combinational logic must stay in expressions."""
    import re

    from hdl.verilog import array_verilog, core_verilog

    cfg = NPUConfig(rows=2, cols=3, dataflow=dataflow, sp_lines=64, acc_lines=16)
    text = array_verilog(cfg) + core_verilog(cfg)
    blocks = re.findall(r"always @\* begin(.*?)\n  end\n", text, re.S)
    assert blocks, "expected Yosys' next-state processes"
    assert [b for b in blocks if "rst" not in b] == []
