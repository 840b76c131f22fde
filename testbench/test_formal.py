"""The quick formal properties (``make formal`` proves all of them)."""

from __future__ import annotations

import pytest

from .formal.properties import PROPERTIES
from .formal.runner import prove

QUICK = [p for p in PROPERTIES if p.quick]


@pytest.mark.parametrize("prop", QUICK, ids=[p.name for p in QUICK])
def test_property_holds(prop):
    design = prop.build()
    verdict = prove(prop.name, design, design.ports, mode=prop.mode, depth=prop.depth,
                    engine=prop.engine)
    assert verdict.ok, f"{prop.name}: {verdict.status}\n{verdict.detail}\nlog: {verdict.log}"
