"""The quick formal properties (``make formal`` proves all of them)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from amaranth.back import rtlil

from .formal.axi import mutant_dma
from .formal.properties import PROPERTIES
from .formal.report import prove_break
from .formal.runner import prove

QUICK = [p for p in PROPERTIES if p.quick]


@pytest.mark.parametrize("prop", QUICK, ids=[p.name for p in QUICK])
def test_property_holds(prop):
    design = prop.build()
    verdict = prove(prop.name, design, design.ports, mode=prop.mode, depth=prop.depth,
                    engine=prop.engine)
    assert verdict.ok, f"{prop.name}: {verdict.status}\n{verdict.detail}\nlog: {verdict.log}"


AXI_BREAKS = [p for p in PROPERTIES if p.breaks is not None]


@pytest.mark.parametrize("prop", AXI_BREAKS, ids=[p.name for p in AXI_BREAKS])
def test_break_still_applies(prop):
    """Each deliberate break still edits hdl/dma.py and the broken engine still builds
    (``make formal`` proves the property fails on it)."""
    design = prop.build(dma=mutant_dma(*prop.breaks[:2]))
    rtlil.convert(design, ports=design.ports)


def test_axi_4k_rule_catches_its_break():
    """The AW 4 KiB rule holds on the writer and fails when a row one beat past the
    boundary is no longer split."""
    prop = next(p for p in PROPERTIES if p.name == "axi_write_4k_boundary")
    design = prop.build()
    held = prove(prop.name, design, design.ports, mode="bmc", depth=8)
    assert held.status == "bounded", held.detail
    broken = prove_break(replace(prop, depth=8), log=lambda *_: None)
    assert broken.status == "caught", f"{broken.status}, log {broken.log}"


def test_probe_finds_exactly_one_engine_register():
    """The k-induction invariants read the DMA engines' registers through ``probe``: a name
    that is ambiguous or gone raises instead of binding the wrong signal."""
    import hdl.dma
    from amaranth.hdl import Fragment

    from .formal.axi import BUS_BITS, MAX_BYTES, probe
    frag = Fragment.get(hdl.dma.RowWriter(BUS_BITS, MAX_BYTES), None)
    assert probe(frag, "nbeats", register=True).name == "nbeats"
    with pytest.raises(ValueError, match="2 signals named 'nbeats'"):
        probe(frag, "nbeats")             # the burst plan's and the register
    with pytest.raises(ValueError, match="0 signals"):
        probe(frag, "no_such_register")
