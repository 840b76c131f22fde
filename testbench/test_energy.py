"""The energy tables reproduce their sources; the model never beats physics."""

import numpy as np
import pytest

from hdl.config import NPUConfig
from sim_models.compiler import Requant, compile_gemm
from sim_models.energy import EnergyModel, Events, events_from_program, load_table


def test_tables_reproduce_their_sources():
    h = load_table("horowitz_45nm")
    assert (h.node_nm, h.voltage_v) == (45, 0.9) and "ISSCC 2014" in h.source
    assert h.op("add", 8) == (0.03, 0.03) and h.op("mult", 8) == (0.2, 0.2)
    assert h.op("add", 32) == (0.1, 0.1)
    assert h.sram_read_64b(8 << 10) == (10.0, 10.0)
    assert h.sram_read_64b(32 << 10) == (20.0, 20.0)
    assert h.sram_read_64b(1 << 20) == (100.0, 100.0)
    assert tuple(h.energy_pj["dram_64b"]) == (1300.0, 2600.0)
    a = load_table("aladdin_40nm")
    assert a.node_nm == 40 and "Aladdin" in a.source
    assert a.op("add", 32) == (0.21, 0.21) and a.op("mult", 32) == (12.7, 12.7)
    # Accelergy's scaling: multipliers quadratic, adders linear in width.
    assert a.op("mult", 8) == pytest.approx((12.7 / 16, 12.7 / 16))
    assert a.op("add", 16) == pytest.approx((0.105, 0.105))


def test_sram_interpolation_is_monotonic_between_published_points():
    h = load_table("horowitz_45nm")
    sizes = [4 << 10, 8 << 10, 16 << 10, 32 << 10, 256 << 10, 1 << 20, 4 << 20]
    lows = [h.sram_read_64b(s)[0] for s in sizes]
    assert lows == sorted(lows) and 10 < h.sram_read_64b(16 << 10)[0] < 20


def test_a_real_program_costs_at_least_its_arithmetic_and_less_than_dram_everything():
    cfg = NPUConfig(rows=8, cols=8, sp_lines=4096, acc_lines=256)
    rng = np.random.default_rng(0)
    layer = compile_gemm(cfg, rng.integers(-128, 128, (64, 64)),
                         rng.integers(-128, 128, (64, 64)), Requant(scale=0.001))
    ev = events_from_program(cfg, layer.program, cycles=4703)
    assert ev.macs >= layer.macs                    # padded rows count: they burn energy too
    model = EnergyModel(cfg)
    band = model.estimate(ev)
    assert 0 < band.low_pj <= band.high_pj
    # No result beats the arithmetic-only bound ...
    assert band.low_pj >= layer.macs * model.mac_energy()[0]
    # ... and the DRAM share is what the bytes moved say.
    assert band.breakdown["dram"][0] == pytest.approx(ev.dram_bytes / 8 * 1300.0)
    assert "45 nm" in band.label and "40 nm" in band.label


def test_unknown_table_is_named():
    with pytest.raises(ValueError, match="no energy table 'tsmc7'"):
        load_table("tsmc7")
    assert (Events(macs=2) + Events(macs=3, dram_bytes=8)).dram_bytes == 8
