"""Switching activity measured on the RTL (scripts/activity.py): the VCD reader counts what
the stimulus implies, and realistic operands switch the array less than random ones."""

import pytest

from hdl.config import NPUConfig


def test_vcd_reader_counts_toggles_and_duty_inside_the_window(tmp_path):
    from scripts.activity import read_vcd

    vcd = tmp_path / "t.vcd"
    vcd.write_text("""$timescale 1ps $end
 $scope module $rootio $end
  $var wire 4 ! bus [3:0] $end
  $var wire 1 " bit $end
 $upscope $end
$enddefinitions $end
#0
b0000 !
0"
#10000
b1111 !
1"
#20000
b1010 !
#30000
b0101 !
0"
#40000
b0000 !
""")
    acts = read_vcd(vcd, (5.0, 35.0))
    bus, bit = acts["$rootio.bus"], acts["$rootio.bit"]
    assert (bus.width, bus.toggles) == (4, 4 + 2 + 4)      # changes at 10, 20 and 30 ns
    assert bit.toggles == 2
    # Bit-time at one in 5..35 ns: 4 bits x 10 ns + 2 x 10 + 2 x 5.
    assert bus.ones_time == pytest.approx(40 + 20 + 10)
    assert bit.ones_time == pytest.approx(20)


@pytest.mark.rtl
@pytest.mark.xdist_group("array_activity")   # shares build/activity and a VCD
def test_relu_operands_switch_the_array_less_than_random_ones():
    from scripts.activity import activity_factors

    cfg = NPUConfig(rows=2, cols=2, dataflow="ws")
    result = activity_factors(cfg, ["relu_cnn", "zeros"], gemm=(8, 8, 8), seed=3)
    runs = result["runs"]
    print({p: round(r["mac_activity"], 3) for p, r in runs.items()})
    uniform = runs["uniform"]
    # A uniform random int8 value flips 4 of its 8 bits on average, at every PE it passes.
    assert 3.5 < uniform["toggles"]["activation"] / uniform["macs"] < 4.5
    for reg in uniform["registers"].values():
        assert 0.3 < reg["duty"] < 0.7 or reg["toggles"] == 0
    assert runs["zeros"]["mac_activity"] < 0.05 < runs["relu_cnn"]["mac_activity"] < 0.9
    assert uniform["mac_activity"] == 1.0


def test_unknown_profile_is_named():
    import numpy as np

    from scripts.activity import operands

    with pytest.raises(ValueError, match="unknown operand profile 'cat'"):
        operands("cat", 2, 2, 2, np.random.default_rng(0))
