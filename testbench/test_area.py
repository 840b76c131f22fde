"""Synthesis to the OSU 180 nm liberty gives a real, positive area (scripts/area.py)."""

import pytest

from hdl.config import NPUConfig


@pytest.mark.synth
def test_a_pe_synthesizes_to_a_plausible_area():
    from scripts.area import liberty, synthesize

    lib = liberty()
    ws = synthesize(NPUConfig(rows=1, cols=1, dataflow="ws"), lib)
    assert ws["cells"] > 100 and ws["area_um2"] > 0
    # A 1x1 WS array holds at least two 8-bit weights, an 8-bit operand and a 32-bit sum:
    # its sequential area is a real share, not zero and not everything.
    assert 0.05 < ws["sequential_um2"] / ws["area_um2"] < 0.6
