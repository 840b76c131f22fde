"""The DRAM tables: every type cited, the derived ones reproduce their IDD tables by hand
arithmetic, the quoted termination figures follow from their resistances, and the sweep
chooses balanced points for every priced DRAM type."""

import re

import pytest

from hdl.config import NPUConfig
from sim_models.energy import (DRAM_TYPES, EnergyModel, Events, derived_dram_band,
                               dram_part_energy, io_pj_per_bit, load_dram, load_dram_parts,
                               pod_line_powers_mw, resolve_dram_part, scale_io_rail,
                               tables_fingerprint)


def test_every_dram_type_is_cited_with_its_generation_and_what_was_checked():
    table = load_dram()
    # The memory types: DDR4, the LPDDRs and HBM2 priced; the rest owed with a reason.
    assert {"ddr3", "ddr4", "lpddr4", "lpddr4x", "lpddr5x", "hbm2", "hbm3"} <= set(DRAM_TYPES)
    for name, entry in table["types"].items():
        assert entry["source"] and entry["generation"], name
        assert isinstance(entry["checked_against_source"], bool), name
        assert entry["checked_against_source"] or "check" in entry, name
        lo, hi = entry["pj_per_bit"]
        assert 0 < lo <= hi < 100, name
    for name in ("lpddr5",):
        assert name not in DRAM_TYPES and len(table["owed"][name]) > 40
        with pytest.raises(ValueError, match=f"DRAM type '{name}' is not priced \\(not priced"):
            EnergyModel(NPUConfig(rows=2, cols=2), dram_type=name)
    # Every part names the repository file and the commit it was read at; a part derived
    # from another is labelled so, unchecked, and so is the type it prices.
    parts = load_dram_parts()["parts"]
    for name, part in parts.items():
        assert re.search(r"commit [0-9a-f]{40}", part["source"]), name
        assert part["check"], name
        if "derived_from" in part:
            assert part["checked_against_source"] is False and "DERIVED" in part["source"]
            assert "derived_from" not in parts[part["derived_from"]], name
            entry = table["types"][part["type"]]
            assert entry["checked_against_source"] is False and "DERIVED" in entry["generation"]
        else:
            assert part["checked_against_source"] is True, name


def test_derived_types_are_computed_from_their_parts_not_stored():
    raw = (load_dram_parts(), load_dram())
    for name in ("ddr4", "lpddr4", "lpddr4x", "lpddr5x", "hbm3"):
        entry = raw[1]["types"][name]
        assert entry["derived"] == "dram_parts"
        band, parts = derived_dram_band(name)
        assert tuple(entry["pj_per_bit"]) == band and entry["parts"] == parts
    assert load_dram()["types"]["ddr4"]["parts"] == ["dramsim3_ddr4_8gb_x8_2400",
                                                     "micron_4gb_ddr4_2400_x8"]


def test_part_energy_is_the_idd_arithmetic():
    """DRAMsim3's DDR4-2400 x8 part by hand (mA x V x ns = pJ): a read burst is
    1.2 V x (135 - 43) mA x 4 tCK, a write 1.2 x (123 - 43) x 4 tCK, an activate
    1.2 x (48 x tRC - 43 x tRAS - 34 x tRP) with tRAS 39, tRP 17 cycles of 0.83 ns."""
    part = load_dram_parts()["parts"]["dramsim3_ddr4_8gb_x8_2400"]
    e = dram_part_energy(part)
    tck = 0.83
    read, write = 1.2 * 92 * 4 * tck, 1.2 * 80 * 4 * tck
    act = 1.2 * (48 * 56 * tck - 43 * 39 * tck - 34 * 17 * tck)
    assert e["read_pj_per_bit"] == pytest.approx(read / 64)
    assert e["write_pj_per_bit"] == pytest.approx(write / 64)
    assert e["activate_pj"] == pytest.approx(act)
    assert (e["burst_bits"], e["row_bits"]) == (64, 8192)
    assert e["band"] == pytest.approx((write / 64 + act / 8192, read / 64 + act / 64))
    # HBM2 (DRAMsim3): a column is two device widths, so a row is 64 x 2 x 128 bits.
    hbm = dram_part_energy(load_dram_parts()["parts"]["dramsim3_hbm2_8gb_x128"])
    assert (hbm["burst_bits"], hbm["row_bits"]) == (512, 16384)


def test_lpddr5x_part_is_the_idd_arithmetic_over_three_rails():
    """Micron's Y52P LPDDR5X x16 at 7500 Mb/s by hand: tBurst = BL16 / 8 bits per CK x
    1.066667 ns; read VDD1 1.8 x (18 - 2.8) + VDD2H 1.05 x (390 - 40) + VDDQ 0.5 x
    (111.9 - 0.6) mA; write 1.8 x (16.5 - 2.8) + 1.05 x (265 - 40) + 0.5 x 0; activate
    (tRAS 42.5, tRP 18.75 ns) on VDD1 and VDD2H only (the VDDQ row has no IDD0)."""
    e = dram_part_energy(load_dram_parts()["parts"]["micron_y52p_16gb_lpddr5x_7500_x16"])
    t_burst = 16 / 8 * 1.066667
    read = (1.8 * 15.2 + 1.05 * 350 + 0.5 * 111.3) * t_burst
    write = (1.8 * 13.7 + 1.05 * 225) * t_burst
    act = 1.8 * (3.8 * 61.25 - 2.8 * 42.5 - 1.5 * 18.75) \
        + 1.05 * (53 * 61.25 - 40 * 42.5 - 32.5 * 18.75)
    assert (e["burst_bits"], e["row_bits"]) == (256, 16384)
    assert e["gbps_per_line"] == pytest.approx(7.5, rel=1e-5)
    assert e["read_pj_per_bit"] == pytest.approx(read / 256)
    assert e["write_pj_per_bit"] == pytest.approx(write / 256)
    assert e["activate_pj"] == pytest.approx(act)
    assert e["band"] == pytest.approx((write / 256 + act / 16384, read / 256 + act / 256))
    assert load_dram()["types"]["lpddr5x"]["pj_per_bit"] == pytest.approx(list(e["band"]))


def test_lpddr5x_timings_agree_with_gem5s():
    """The second source for the LPDDR5 core timings (Ramulator 2's are its maintainer's
    'guesstimates'): gem5's tRAS 42 / tRP 18 ns against 42.5 / 18.75 move the activate
    energy by 2.4 % and the band by at most 1.3 %, so the choice does not matter."""
    part = load_dram_parts()["parts"]["micron_y52p_16gb_lpddr5x_7500_x16"]
    other = part["timing_crosscheck"]
    assert re.search(r"gem5/gem5, .* at commit [0-9a-f]{40}", other["source"])
    e = dram_part_energy(part)
    g = dram_part_energy(dict(part, tras_ns=other["tras_ns"], trp_ns=other["trp_ns"]))
    assert g["activate_pj"] == pytest.approx(e["activate_pj"], rel=0.03)
    assert g["activate_pj"] != pytest.approx(e["activate_pj"], rel=1e-3)   # it was used
    assert g["band"] == pytest.approx(e["band"], rel=0.015)


def test_lpddr5_at_6400_from_the_lpddr5x_part_would_only_copy_its_band():
    """Why no derived lpddr5 type: the Y52P table moved to 6400 Mb/s (CK 800 MHz) with its
    burst currents above IDD3N scaled by 6400/7500 (energy per bit held, as PIMID derived
    its LPDDR5 row) prices exactly lpddr5x's band; the type stays owed with its trail."""
    part = load_dram_parts()["parts"]["micron_y52p_16gb_lpddr5x_7500_x16"]
    k = 6400 / 7500
    slow = dict(part, tck_ns=1.25, domains=[
        {**d, **{c: d["idd3n"] + (d[c] - d["idd3n"]) * k for c in ("idd4r", "idd4w")}}
        for d in part["domains"]])
    e, s = dram_part_energy(part), dram_part_energy(slow)
    assert s["gbps_per_line"] == pytest.approx(6.4)
    assert s["band"] == pytest.approx(e["band"], rel=1e-5)
    owed = load_dram()["owed"]["lpddr5"]
    for looked in ("PIMID", "Confidential", "DRAMPower", "DRAMSys", "DRAMsim3", "gem5",
                   "Ramulator 2", "lpddr5x's band exactly"):
        assert looked in owed, looked
    assert "lpddr5" not in DRAM_TYPES


def test_lpddr4x_is_the_lpddr4_table_with_its_vddq_rail_at_0v6():
    """The derived LPDDR4X part: VDDQ's currents x 0.6/1.1 at 0.6 V (its energy x
    (0.6/1.1)^2), VDD1 and VDD2 untouched; so only the I/O share of a burst falls."""
    parts = load_dram_parts()["parts"]
    base = parts["jedec_8gb_lpddr4_3200_x16"]
    x = resolve_dram_part(parts, "lpddr4x_vddq_0v6_from_jedec_8gb_lpddr4_3200_x16")
    assert x["type"] == "lpddr4x" and x["domains"][:2] == base["domains"][:2]
    q, q0 = x["domains"][2], base["domains"][2]
    assert q["rail"] == "VDDQ" and q["v"] == 0.6
    for c in ("idd0", "idd2n", "idd3n", "idd4r", "idd4w"):
        assert q[c] == pytest.approx(q0[c] * 0.6 / 1.1)
    e, e0 = dram_part_energy(x), dram_part_energy(base)
    t_burst = 16 / 2 * 0.625
    vddq_read = 1.1 * (150.0 - 0.75) * t_burst / 256       # the LPDDR4 VDDQ share of a read
    vddq_write = 1.1 * (55.0 - 0.75) * t_burst / 256
    k = (0.6 / 1.1) ** 2
    assert e["read_pj_per_bit"] == pytest.approx(e0["read_pj_per_bit"] - vddq_read * (1 - k))
    assert e["write_pj_per_bit"] == pytest.approx(e0["write_pj_per_bit"] - vddq_write * (1 - k))
    assert e["activate_pj"] == pytest.approx(e0["activate_pj"])    # VDDQ's IDD0 = its IDD3N
    lo, hi = load_dram()["types"]["lpddr4x"]["pj_per_bit"]
    assert (lo, hi) == pytest.approx(list(e["band"]))
    assert hi < load_dram()["types"]["lpddr4"]["pj_per_bit"][1]


def test_hbm3_part_is_the_idd_arithmetic_with_random_data():
    """CMU-SAFARI's HBM3E pseudo-channel at 6400 MT/s by hand: tBurst = BL8 / 4 x 0.625 ns,
    read 1.1 V x (560.7 - 71.2) mA, write 1.1 x (389.5 - 71.2), activate 1.1 x (106.1 x tRC
    - 71.2 x tRAS - 70.5 x tRP) with tRAS 45, tRP 26 cycles; the currents are for static
    data, random data toggles each bus at 0.5: x (3.1798 + 0.5 x 3.9375) / 3.1798."""
    e = dram_part_energy(load_dram_parts()["parts"]["ayna_hbm3e_6400_pseudo_channel"])
    t_burst, tck = 8 / 4 * 0.625, 0.625
    read, write = 1.1 * 489.5 * t_burst / 256, 1.1 * 318.3 * t_burst / 256
    act = 1.1 * (106.1 * 71 * tck - 71.2 * 45 * tck - 70.5 * 26 * tck)
    scale = (3.1798 + 0.5 * (1.04 + 1.4875 + 1.41)) / 3.1798
    assert (e["burst_bits"], e["row_bits"], e["gbps_per_line"]) == (256, 8192, 6.4)
    assert e["read_pj_per_bit"] == pytest.approx(read)
    assert e["write_pj_per_bit"] == pytest.approx(write)
    assert e["activate_pj"] == pytest.approx(act)
    assert e["random_data_scale"] == pytest.approx((scale, scale))
    assert e["band"] == pytest.approx((write + act / 8192, read * scale + act / 256))
    assert load_dram()["types"]["hbm3"]["pj_per_bit"] == pytest.approx(list(e["band"]))


def test_hbm3_agrees_with_measured_h200_memory_power():
    """The measured check: three H200s reading HBM3E at random, 4 reads per activation, with
    random data ((total - idle) memory power / read bandwidth) against the part's energy
    for that pattern: a random-data read plus a quarter of an activation per burst."""
    part = load_dram_parts()["parts"]["ayna_hbm3e_6400_pseudo_channel"]
    e, m = dram_part_energy(part), part["measured"]
    n = m["reads_per_activation"]
    model = e["read_pj_per_bit"] * e["random_data_scale"][0] + e["activate_pj"] / (n * 256)
    measured = [(u["total_w"] - u["idle_w"]) / (u["read_gbytes_per_s"] * 8) * 1e3
                for u in m["units"]]                       # W / (Gb/s) = nJ/bit -> pJ/bit
    assert len(measured) == 3 and 5.7 < min(measured) <= max(measured) < 5.9
    for x in measured:
        assert model == pytest.approx(x, rel=0.05)
    # Static data would miss it: the data-pattern factor is needed to meet the silicon.
    static = e["read_pj_per_bit"] + e["activate_pj"] / (n * 256)
    assert static < 0.8 * min(measured)


def test_a_bad_rail_or_derivation_is_refused_by_name():
    parts = load_dram_parts()["parts"]
    base = parts["jedec_8gb_lpddr4_3200_x16"]
    with pytest.raises(ValueError, match="rail 'VDDQL' must name exactly one domain"):
        scale_io_rail(base, "VDDQL", 0.4)
    with pytest.raises(ValueError, match="needs a positive voltage"):
        scale_io_rail(base, "VDDQ", 0.0)
    chained = {**parts, "twice": {"type": "lpddr4x", "derived_from":
                                  "lpddr4x_vddq_0v6_from_jedec_8gb_lpddr4_3200_x16",
                                  "io_rail": {"rail": "VDDQ", "v": 0.5}}}
    with pytest.raises(ValueError, match="derived from a derived part"):
        resolve_dram_part(chained, "twice")
    half = dict(base, domains=[{"rail": "VDD2", "v": 1.1, "idd0": 45.0, "idd3n": 30.0,
                                "idd4r": 275.0, "idd4w": 210.0}])
    with pytest.raises(ValueError, match="both or neither of idd0/idd2n"):
        dram_part_energy(half)
    bad_pattern = dict(parts["ayna_hbm3e_6400_pseudo_channel"])
    bad_pattern["data_pattern"] = dict(bad_pattern["data_pattern"], rate_random=1.5)
    with pytest.raises(ValueError, match="bad data_pattern"):
        dram_part_energy(bad_pattern)
    one_timing = {k: v for k, v in parts["micron_y52p_16gb_lpddr5x_7500_x16"].items()
                  if k != "trp_ns"}
    with pytest.raises(ValueError, match="give both tras_ns and trp_ns"):
        dram_part_energy(one_timing)


def test_a_bad_part_is_refused_by_name():
    part = dict(load_dram_parts()["parts"]["dramsim3_ddr4_8gb_x8_2400"])
    part["domains"] = [{"v": 1.2, "idd0": 48, "idd2n": 34, "idd3n": 43, "idd4r": 40,
                        "idd4w": 123}]
    with pytest.raises(ValueError, match="non-positive burst or activate energy"):
        dram_part_energy(part)
    part["domains"] = [{"v": 1.2, "idd0": -1, "idd2n": 34, "idd3n": 43, "idd4r": 135,
                        "idd4w": 123}]
    with pytest.raises(ValueError, match="negative current"):
        dram_part_energy(part)


def test_quoted_termination_figures_follow_from_their_resistances():
    """Micron's DDR4 power calculator figures (as quoted) are reproduced by nodal analysis of
    the stated network within their 0.1 mW rounding: the transcription is consistent."""
    io = load_dram_parts()["io"]["ddr4_pod_micron_power_calc"]
    for write, quoted in ((False, io["read_mw"]), (True, io["write_mw"])):
        got = pod_line_powers_mw(io["vddq"], io["ranks"], io["ohms"], write)
        assert got["controller"] == pytest.approx(quoted["controller"], abs=0.05)
        for part in ("target_rank", "other_rank"):
            assert got[part] == pytest.approx(quoted[part], abs=0.05), (write, part)
    # One rank (no other rank's termination) dissipates less than two.
    one = pod_line_powers_mw(io["vddq"], 1, io["ohms"], False)
    assert one["other_rank"] == [0, 0] and one["controller"] > 0
    with pytest.raises(ValueError, match="bad ranks=0"):
        pod_line_powers_mw(1.2, 0, io["ohms"], False)
    # mW per line / (Gb/s per line) = pJ per bit; random data dissipates half the time.
    lo, hi = io_pj_per_bit(io, 2.4)
    assert lo == pytest.approx(18.2 / 2 / 2.4) and hi == pytest.approx(20.5 / 2.4)


def test_hbm2_band_is_consistent_with_an_idd_derived_core_figure():
    """The O'Connor HBM2 band (with I/O, still unchecked against the paper's text) cannot
    lie below the DRAM core alone when streaming, from DRAMsim3's HBM2 IDD table."""
    hbm2 = load_dram()["types"]["hbm2"]
    assert hbm2["checked_against_source"] is False and "re-check" in hbm2["check"]
    core = dram_part_energy(load_dram_parts()["parts"]["dramsim3_hbm2_8gb_x128"])["band"]
    assert hbm2["pj_per_bit"][0] >= core[0]


def test_hbm2_band_lies_between_measured_silicons_static_and_random_data():
    """Measured HBM2 silicon (CMU-SAFARI's 36 stacks, per pseudo-channel at 1.2 Gb/s) by hand:
    tBurst = BL4 / 2 x 1.6667 ns, read 1.2 V x (202.769 - 12.394) mA, activate 1.2 x
    (28.544 x tRC - 12.394 x tRAS - 11.756 x tRP), tRAS 20, tRP 9 cycles, 1 KB row. Reading
    whole rows, static data costs less than O'Connor's band and random data more: the band
    (its GPU workloads' data) sits between them."""
    e = dram_part_energy(load_dram_parts()["parts"]["ayna_hbm2_1200_pseudo_channel"])
    tck = 1.6667
    read = 1.2 * (202.769 - 12.394) * 2 * tck / 256
    act = 1.2 * (28.544 * 29 * tck - 12.394 * 20 * tck - 11.756 * 9 * tck)
    assert e["read_pj_per_bit"] == pytest.approx(read) and e["activate_pj"] == pytest.approx(act)
    assert e["row_bits"] == 8192
    static = read + act / 8192
    random = read * e["random_data_scale"][0] + act / 8192
    lo, hi = load_dram()["types"]["hbm2"]["pj_per_bit"]
    assert static < lo <= hi < random


def test_each_type_prices_dram_bytes_and_the_fingerprint_follows_the_tables():
    cfg = NPUConfig(rows=4, cols=4)
    for name in DRAM_TYPES:
        band = EnergyModel(cfg, dram_type=name).estimate(Events(dram_bytes=1000))
        lo, hi = load_dram()["types"][name]["pj_per_bit"]
        assert band.breakdown["dram"] == pytest.approx((8000 * lo, 8000 * hi))
        assert f"DRAM: {name}" in band.label
    assert re.fullmatch(r"[0-9a-f]{12}", tables_fingerprint())


def test_sweep_marks_a_balanced_memory_for_every_dram_type():
    from scripts.sweep import best_per_dram, mark_balanced

    def row(bus, dram, lo, hi, own):
        return dict(status="ok", rows=16, cols=16, dataflow="ws", workload="mlp",
                    bus_bits=bus, dram_type=dram, tops_per_w_system_low=lo,
                    tops_per_w_system_high=hi, tops_per_mm2=1.0, own_dram=own)
    rows = [row(128, "ddr3", 0.2, 0.4, True), row(128, "hbm2", 0.5, 0.7, False),
            row(256, "ddr3", 0.3, 0.5, True), row(256, "hbm2", 0.4, 0.6, False)]
    mark_balanced(rows)
    assert [r["balanced"] for r in rows] == [False, False, True, False]
    assert [r["balanced_dram"] for r in rows] == [False, True, True, False]
    best = best_per_dram(rows)
    assert best[("mlp", "hbm2")]["bus_bits"] == 128 and best[("mlp", "ddr3")]["bus_bits"] == 256


def test_the_sweep_balances_with_the_dram_of_the_nodes_era():
    from scripts.sweep import default_dram
    assert [default_dram(n) for n in (None, 180, 45, 32, 20, 16, 7)] == \
        ["ddr3", "ddr3", "ddr3", "ddr4", "ddr4", "hbm2", "hbm2"]
    assert {default_dram(n) for n in (None, 45, 28, 7)} <= set(DRAM_TYPES)
