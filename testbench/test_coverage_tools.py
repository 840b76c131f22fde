"""The coverage report's tools: the constant-bit analysis, the exclusion rules, the
functional bins (cocotb-coverage) and the sampling cycle model."""

from __future__ import annotations

import pytest

from hdl.config import NPUConfig
from scripts.coverage_bits import module_constants
from scripts.coverage_exclude import Excluder, verilator_name
from sim_models.cycle import CycleNPU

from . import fuzz
from .fuzz_bins import SamplingNPU, all_bins, program_bins, summarize
from .fuzz_run import _model

VERILOG = r"""
module \top.unit (a, b, s, y, clk);
  input [7:0] a;
  input [7:0] b;
  input s;
  input clk;
  output [15:0] y;
  wire [31:0] \$1 ;
  wire [31:0] \$2 ;
  wire [34:0] \$3 ;
  wire [34:0] \$4 ;
  wire [34:0] \$5 ;
  wire [63:0] \$6 ;
  wire [8:0] \$7 ;
  wire [15:0] \$8 ;
  reg [15:0] r = 16'h0000;
  wire [15:0] \$9 ;
  wire [9:0] \$10 ;
  wire [9:0] \$11 ;
  wire [9:0] \$12 ;
  wire [9:0] \$13 ;
  wire [4:0] \$15 ;
  wire [15:0] \$16 ;
  reg \$auto$verilog_backend.cc:2355:dump_module$1  = 0;
  reg \$14  = 1'h0;
  assign \$1 [31:3] = 29'h00000000;
  assign \$1 [2:0] = a[2:0];
  assign \$2  = s ? 32'd1073741824 : 32'd3221225473;
  assign \$3  = a + 4'h8;
  assign \$4  = \$3  - 1'h1;
  assign \$5  = a - b;
  assign \$6  = 1'h1 << \$7 [5:0];
  assign \$7  = { 3'h0, a[5:0] };
  assign \$8  = { 1'h0, \$9 [15:1] };
  assign \$9  = r + 1'h1;
  assign y = { a, 8'h00 };
  assign \$10  = { 2'h0, a } / 10'h040;
  assign \$11  = { 2'h0, a } % 10'h040;
  assign \$12  = { 2'h0, a } / \$13 ;
  assign \$13  = { 2'h0, b };
  assign \$15  = s * 4'h8;
  assign \$16  = a * b;
  always @* begin
    if (\$auto$verilog_backend.cc:2355:dump_module$1 ) begin end
    \$14  = s;
  end
endmodule
"""


def _masks(tmp_path):
    path = tmp_path / "t.v"
    path.write_text(VERILOG)
    return {net: mask for (_, net), mask in module_constants(path, 64).items()}


def _bits(mask):
    return {b for b in range(mask.bit_length()) if mask >> b & 1}


def test_constant_bits_of_literals_muxes_and_ranges(tmp_path):
    m = _masks(tmp_path)
    assert _bits(m["$1"]) == set(range(3, 32))                 # a literal slice
    assert _bits(m["$2"]) == set(range(1, 31))                 # two literals agree on 1..30
    assert _bits(m["$3"]) == set(range(9, 35))                 # a + 8 < 2**9
    assert _bits(m["$4"]) == set(range(9, 35))                 # no underflow: $3 >= 8
    assert "$5" not in m                                       # a - b may wrap: unknown
    assert _bits(m["$7"]) == {6, 7, 8}
    assert "$6" not in m                                       # 1 << 0..63 fills 64 bits
    assert _bits(m["y"]) == set(range(8))
    assert _bits(m["$8"]) == {15}                              # a register's sum: only the 0
    assert "$9" not in m and "r" not in m
    assert _bits(m["$10"]) == set(range(2, 10))                # a / 64 <= 3
    assert _bits(m["$11"]) == set(range(6, 10))                # a % 64 < 64
    assert "$12" not in m                                      # b may be 0: unknown
    assert _bits(m["$15"]) == {0, 1, 2, 4}                     # s * 8: 0 or 8
    assert "$16" not in m                                      # a * b: every bit free


def test_never_assigned_register_is_constant(tmp_path):
    """Yosys's ``dump_module`` trigger is declared ``= 0`` and only read by ``if (...) begin
    end``: constant; a register given an initial value and then assigned is not."""
    m = _masks(tmp_path)
    assert m["$auto$verilog_backend.cc:2355:dump_module$1"] == 1
    assert "$14" not in m


def test_verilator_names():
    assert verilator_name("$17") == "__02417"
    assert verilator_name("count__cycles") == "count___05Fcycles"
    assert verilator_name("stall_weights$326") == "stall_weights__024326"
    assert verilator_name("a.b[0]") == "a__02eb__05b0__05d"      # lower-case hex


def test_exclusions_are_listed_with_reasons(tmp_path):
    path = tmp_path / "knpu_core_os_4x4_b64_sp1024_acc128.v"
    path.write_text(VERILOG.replace(r"\top.unit", "knpu_core_os_4x4_b64_sp1024_acc128"))
    ex = Excluder(verilog_dir=tmp_path)
    fields = {"f": str(path), "h": "knpu_core_os_4x4_b64_sp1024_acc128",
              "page": "v_toggle/knpu_core_os_4x4_b64_sp1024_acc128"}
    rule = ex.rule_for(fields, verilator_name("$1"), 5)
    assert rule is not None and rule.name == "constant"
    assert ex.rule_for(fields, verilator_name("$1"), 2) is None
    assert ex.rule_for(fields, "count___05Fcycles", 16).name == "counter_high_bits"
    assert ex.rule_for(fields, "count___05Fcycles", 15) is None
    assert ex.rule_for(fields, "stall_weights", 0).name == "os_no_weights"
    assert ex.rule_for(fields, "error__024296", 3).name == "error_code_high_bits"
    assert ex.rule_for(fields, "error", 2) is None                  # DEADLOCK = 6 sets it
    ex.note(rule, "c", "m", "__0241", 5)
    ex.note(rule, "c", "m", "__0241", 6)
    (entry,) = ex.listing()
    assert entry["bits"] == "5..6" and entry["points"] == 2 and entry["reason"]


CFG = NPUConfig(rows=4, cols=4, dataflow="ws", bus_bits=128, sp_lines=1024, acc_lines=128)


def test_sampling_model_computes_what_the_cycle_model_does():
    for seed in (1, 2, 3):
        p = fuzz.generate(seed, CFG)
        a = SamplingNPU(CFG).run(p.words, p.program_addr, p.dram_base, p.dram_size)
        b = CycleNPU(CFG).run(p.words, p.program_addr, p.dram_base, p.dram_size)
        assert (a.counters, a.error, a.err_pc) == (b.counters, b.error, b.err_pc)


def test_bins_from_cocotb_coverage():
    per = []
    for seed in range(1, 11):
        p = fuzz.generate(seed, CFG)
        model = _model(CFG)
        model.run(p.words, p.program_addr, p.dram_base, p.dram_size)
        counts = program_bins(p)
        counts.update({k: v for k, v in model.samples.items() if v})
        per.append(counts)
    got = summarize("ws", per, "test_ws")
    assert got["total"] == len(all_bins("ws")) and 0 < got["hit"] < got["total"]
    assert got["hits"]["op LOAD"] == 10            # every program loads
    assert "token l2c limit" in got["missed"]       # random programs are too short for it
    with pytest.raises(ValueError, match="unknown bin kind"):
        from .fuzz_bins import Bins
        Bins("ws", "test_ws").sample("nonsense x")
