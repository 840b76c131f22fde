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


@pytest.mark.synth
def test_ecp5_place_and_route_reports_fmax():
    """A 2x2 array through synth_ecp5 and nextpnr-ecp5: routed, with a clock fmax that an
    int8 MAC plus an adder chain can plausibly reach on ECP5 (measured 98 MHz)."""
    from scripts.fmax import place_and_route

    r = place_and_route(NPUConfig(rows=2, cols=2, dataflow="ws"))
    assert r.get("error") is None, r
    assert 20 < r["fmax_mhz"] < 400
    assert r["mult18x18d"] == 4          # one DSP multiplier per PE
