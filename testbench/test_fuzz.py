"""Random legal programs (``testbench.fuzz``): a fixed number per configuration and back end
in the regression (``make fuzz`` runs the long campaign)."""

from __future__ import annotations

import collections

import pytest

from hdl import isa
from hdl.config import NPUConfig
from hdl.isa import ErrorCode, Opcode

from . import fuzz, fuzz_run

WS = NPUConfig(rows=4, cols=4, dataflow="ws", bus_bits=128, sp_lines=1024, acc_lines=128)
OS = NPUConfig(rows=4, cols=4, dataflow="os", bus_bits=64, sp_lines=1024, acc_lines=128)
WS8 = NPUConfig(rows=8, cols=4, dataflow="ws", bus_bits=256, sp_lines=1024, acc_lines=128)
SEED = 20261127      # fixed: the regression runs the same programs every time

#: (config, back end, programs) run by the regression.
RTL_RUNS = [(WS, "verilator", 60), (OS, "verilator", 60), (WS, "icarus", 25),
            (OS, "icarus", 25), (WS, "cocotb-verilator", 15), (OS, "cocotb-verilator", 15),
            (WS8, "cocotb-verilator", 15)]


@pytest.mark.parametrize("cfg", [WS, OS], ids=["ws", "os"])
def test_programs_are_legal_and_models_agree(cfg):
    """300 programs per dataflow: each one the generator meant to fault stops with that
    fault on the functional model, and the cycle model agrees on every error code; every
    fault code and every opcode occurs."""
    seeds = list(range(SEED, SEED + 300))
    progs, report = fuzz_run.check_seeds(cfg, seeds, ["model"])
    bad = {s: r["problems"] for s, r in report.items() if r["problems"]}
    assert not bad, f"{len(bad)} programs disagree, e.g. {next(iter(bad.items()))}"
    faults = collections.Counter(p.fault for p in progs)
    assert set(faults) == set(fuzz.FAULTS), faults
    ops = collections.Counter(isa.opcode_bits(w) for p in progs for w in p.words)
    want = {op for op in Opcode if cfg.dataflow == "ws" or op != Opcode.PRELOAD}
    assert want <= set(ops), f"opcodes never generated: {want - set(ops)}"
    to_sp = sum(isa.decode(w)["to_sp"] for p in progs for w in p.words
                if isa.opcode_bits(w) == Opcode.STORE)
    assert to_sp >= 50, f"only {to_sp} STOREs to the scratchpad"



@pytest.mark.parametrize("cfg", [WS, OS], ids=["ws", "os"])
def test_stores_read_only_this_programs_parameters(cfg):
    """A core running programs back to back keeps its requantization parameters from the
    program before, while the functional model starts each program fresh: so no STORE may
    come before an all-lanes CONFIG, nor, in the add mode, before an ``add_inner`` CONFIG
    (seeds 1..60 of the coverage batch once broke the second rule)."""
    seen = collections.Counter()
    for s in list(range(1, 61)) + list(range(SEED, SEED + 200)):
        all_lanes = inner = False
        mode = 0
        prog = fuzz.generate(s, cfg)
        for w in prog.words[:prog.prefix_len]:        # the faulting tail changes nothing
            d = isa.decode(w)
            if d["op"] == Opcode.CONFIG and d["add_inner"]:
                inner = True
            elif d["op"] == Opcode.CONFIG:
                mode = d["rounding"]
                all_lanes |= d["lane"] == isa.CONFIG_ALL_LANES
            elif d["op"] == Opcode.STORE:
                assert all_lanes, f"seed {s}: a STORE before any all-lanes CONFIG"
                assert mode != 2 or inner, f"seed {s}: an add-mode STORE before add_inner"
                seen[mode] += 1
    assert seen[2], "no add-mode STORE generated"

def test_legalize_orders_every_hazard():
    """A STORE reading what a COMPUTE wrote pops the COMPUTE's token; a LOAD reading what a
    STORE wrote gets a SYNC (the load and store units share no token queue)."""
    load = fuzz.Op(Opcode.LOAD, dict(sp_addr=0, nrows=2, ncols=4, dram_addr=0x1000,
                                     dram_stride=4))
    pre = fuzz.Op(Opcode.PRELOAD, dict(sp_addr=0, nrows=2))
    comp = fuzz.Op(Opcode.COMPUTE, dict(a_addr=0, b_addr=0, acc_addr=0, nrows=2, accumulate=0))
    conf = fuzz.Op(Opcode.CONFIG, dict(lane=255, multiplier=1 << 30, shift=0, zero_point=0,
                                       clamp_min=-128, clamp_max=127, bias=0))
    store = fuzz.Op(Opcode.STORE, dict(acc_addr=0, nrows=2, ncols=4, raw=1, dram_addr=0x2000,
                                       dram_stride=16))
    reload = fuzz.Op(Opcode.LOAD, dict(sp_addr=8, nrows=1, ncols=4, dram_addr=0x2000,
                                       dram_stride=0))
    kept, words = fuzz.legalize(WS, [load, pre, comp, conf, store, reload])
    d = [isa.decode(w) for w in words]
    assert [x["op"] for x in d] == [Opcode.LOAD, Opcode.PRELOAD, Opcode.COMPUTE, Opcode.CONFIG,
                                    Opcode.STORE, Opcode.SYNC, Opcode.LOAD]
    assert d[0]["push_next"] and d[1]["pop_prev"]           # LOAD -> PRELOAD
    assert d[2]["push_next"] and d[4]["pop_prev"]           # COMPUTE -> STORE
    assert not any(d[3][f] for f in isa.FLAGS)              # CONFIG carries no token
    # A STORE before any all-lanes CONFIG is dropped (its lanes would be undefined).
    kept, _ = fuzz.legalize(WS, [load, pre, comp, store])
    assert [o.op for o in kept] == [Opcode.LOAD, Opcode.PRELOAD, Opcode.COMPUTE]


def test_shrink_keeps_the_failure(monkeypatch):
    """Shrinking deletes operations while the failure stays (here: any raw STORE fails)."""
    def fake(cfg, progs, backends, *a, **k):
        return {p.seed: {"problems": ["x: fails"] if any(
            isa.opcode_bits(w) == Opcode.STORE and isa.decode(w)["raw"] for w in p.words)
            else [], "wall": {}} for p in progs}

    monkeypatch.setattr(fuzz_run, "check_programs", fake)
    prog = next(p for p in (fuzz.generate(s, WS, n_ops=24, fault=None) for s in range(100))
                if fake(WS, [p], [])[p.seed]["problems"] and len(p.ops) > 12)
    small = fuzz_run.shrink(prog, "model", log=lambda m: None)
    assert fake(WS, [small], [])[small.seed]["problems"]
    assert len(small.ops) < len(prog.ops) and len(small.ops) <= 6, small.describe()


def test_bad_requests_are_named():
    with pytest.raises(fuzz.FuzzError, match="sp_lines >= 64"):
        fuzz.generate(1, NPUConfig(rows=4, cols=4, sp_lines=32, acc_lines=32))
    with pytest.raises(fuzz.FuzzError, match="fewer operations"):
        fuzz.generate(1, WS, n_ops=400)
    with pytest.raises(ValueError, match="unknown back end"):
        fuzz_run.run_programs(WS, [], "spice")


@pytest.mark.rtl
@pytest.mark.parametrize("cfg,backend,n", [pytest.param(*r, id=f"{r[1]}-{r[0].core_name}")
                                           for r in RTL_RUNS])
def test_fuzz_rtl(cfg, backend, n):
    """``n`` random legal programs on the RTL with 30 % AXI pauses: DRAM, status and error
    equal to the functional model, ERR_PC and every counter equal to the cycle model."""
    seeds = list(range(SEED, SEED + n))
    print(f"fuzz seeds {seeds[0]}..{seeds[-1]} on {backend} {cfg.to_json()}")
    progs, report = fuzz_run.check_seeds(cfg, seeds, [backend], 0.3)
    bad = {s: r["problems"] for s, r in report.items() if r["problems"]}
    assert not bad, "\n".join(f"seed {s}: {p}" for s, p in bad.items())
    assert {p.fault for p in progs} >= {None, ErrorCode.BAD_OPERAND}
