"""Tests of :mod:`hdl.isa`: encoding, the generated reference, and the operand rules (the
one statement of BAD_OPERAND the HDL decoders and the models share)."""

from pathlib import Path

import pytest

from hdl import isa
from hdl.config import NPUConfig
from hdl.isa import Opcode

REPO = Path(__file__).resolve().parent.parent
WS = NPUConfig(rows=4, cols=3, dataflow="ws", sp_lines=64, acc_lines=16)
OS = NPUConfig(rows=4, cols=3, dataflow="os", sp_lines=64, acc_lines=16)


def test_isa_round_trip_and_range_checks():
    word = isa.encode(Opcode.CONFIG, lane=3, multiplier=1 << 30, shift=-5, zero_point=-128,
                      clamp_min=-128, clamp_max=127, bias=-(1 << 31), push_prev=1)
    d = isa.decode(word)
    assert (d["op"], d["lane"], d["shift"], d["zero_point"], d["bias"], d["push_prev"]) == \
        (Opcode.CONFIG, 3, -5, -128, -(1 << 31), 1)
    with pytest.raises(isa.IsaError, match="LOAD.nrows=65536 does not fit"):
        isa.encode(Opcode.LOAD, nrows=1 << 16)
    with pytest.raises(isa.IsaError, match="has no field 'bogus'"):
        isa.encode(Opcode.STORE, bogus=1)
    with pytest.raises(isa.IsaError, match="illegal opcode 0xf"):
        isa.decode(0xF)
    for op, fields in isa.FIELDS.items():      # no two fields overlap, none past 128 bits
        bits = set(range(8))
        for f in fields.values():
            span = set(range(f.lsb, f.lsb + f.width))
            assert not bits & span and f.msb < isa.INSN_BITS, (op, f)
            bits |= span


def test_isa_doc_is_generated_from_the_isa_module():
    assert (REPO / "docs" / "isa.md").read_text() == isa.markdown(), \
        "docs/isa.md is stale: run `python -m hdl.isa > docs/isa.md`"


# Each row: configuration, opcode, fields, preloads, legal.  Boundaries of every rule.
RULES = [
    (WS, Opcode.LOAD, dict(sp_addr=62, nrows=2, ncols=4), 0, True),
    (WS, Opcode.LOAD, dict(sp_addr=63, nrows=2, ncols=4), 0, False),    # past the scratchpad
    (WS, Opcode.LOAD, dict(sp_addr=0, nrows=1, ncols=5), 0, False),     # wider than a line
    (WS, Opcode.LOAD, dict(sp_addr=0, nrows=0, ncols=1), 0, False),
    (WS, Opcode.LOAD, dict(sp_addr=0, nrows=1, ncols=0), 0, False),
    (WS, Opcode.LOAD_ACC, dict(acc_addr=15, nrows=1, ncols=3), 0, True),
    (WS, Opcode.LOAD_ACC, dict(acc_addr=15, nrows=1, ncols=4), 0, False),  # more than cols
    (WS, Opcode.LOAD_ACC, dict(acc_addr=16, nrows=1, ncols=1), 0, False),
    (WS, Opcode.PRELOAD, dict(sp_addr=60, nrows=4), 1, True),
    (WS, Opcode.PRELOAD, dict(sp_addr=0, nrows=0), 0, True),            # an all-zero tile
    (WS, Opcode.PRELOAD, dict(sp_addr=0, nrows=5), 0, False),           # more than rows
    (WS, Opcode.PRELOAD, dict(sp_addr=61, nrows=4), 0, False),
    (WS, Opcode.PRELOAD, dict(sp_addr=0, nrows=1), 2, False),           # both banks full
    (OS, Opcode.PRELOAD, dict(sp_addr=0, nrows=1), 0, False),           # OS has no PRELOAD
    (WS, Opcode.COMPUTE, dict(a_addr=60, acc_addr=12, nrows=4), 1, True),
    (WS, Opcode.COMPUTE, dict(a_addr=60, acc_addr=12, nrows=4), 0, False),  # no weights
    (WS, Opcode.COMPUTE, dict(a_addr=61, acc_addr=0, nrows=4), 1, False),
    (WS, Opcode.COMPUTE, dict(a_addr=0, acc_addr=13, nrows=4), 1, False),
    (WS, Opcode.COMPUTE, dict(a_addr=0, acc_addr=0, nrows=0), 1, False),
    (OS, Opcode.COMPUTE, dict(a_addr=0, b_addr=63, acc_addr=12, nrows=1), 0, True),
    (OS, Opcode.COMPUTE, dict(a_addr=0, b_addr=63, acc_addr=12, nrows=2), 0, False),
    (OS, Opcode.COMPUTE, dict(a_addr=0, b_addr=0, acc_addr=13, nrows=1), 0, False),  # R rows
    (WS, Opcode.STORE, dict(acc_addr=15, nrows=1, ncols=3), 0, True),
    (WS, Opcode.STORE, dict(acc_addr=15, nrows=2, ncols=3), 0, False),
    (WS, Opcode.STORE, dict(acc_addr=0, nrows=1, ncols=4), 0, False),
    (WS, Opcode.STORE, dict(acc_addr=0, nrows=1, ncols=0), 0, False),
    # to_sp: int8 rows to lines dram_addr + i * dram_stride, the last inside the scratchpad
    (WS, Opcode.STORE, dict(acc_addr=0, nrows=3, ncols=3, to_sp=1, dram_addr=59,
                            dram_stride=2), 0, True),
    (WS, Opcode.STORE, dict(acc_addr=0, nrows=3, ncols=3, to_sp=1, dram_addr=60,
                            dram_stride=2), 0, False),
    (WS, Opcode.STORE, dict(acc_addr=0, nrows=1, ncols=3, to_sp=1, dram_addr=63,
                            dram_stride=0xFFFF_FFFF), 0, True),    # one row: stride unused
    (WS, Opcode.STORE, dict(acc_addr=0, nrows=2, ncols=3, to_sp=1, dram_addr=0,
                            dram_stride=0xFFFF_FFFF), 0, False),   # no wrap-around
    (WS, Opcode.STORE, dict(acc_addr=0, nrows=1, ncols=3, to_sp=1, dram_addr=64,
                            dram_stride=0), 0, False),
    (OS, Opcode.STORE, dict(acc_addr=0, nrows=1, ncols=1, to_sp=1, raw=1, dram_addr=0,
                            dram_stride=0), 0, False),             # int32 rows: not to_sp
    (OS, Opcode.STORE, dict(acc_addr=0, nrows=1, ncols=1, to_sp=0, raw=1, dram_addr=1 << 31,
                            dram_stride=0), 0, True),
    (WS, Opcode.CONFIG, dict(lane=2, rounding=0), 0, True),
    (WS, Opcode.CONFIG, dict(lane=isa.CONFIG_ALL_LANES, rounding=2), 0, True),
    (WS, Opcode.CONFIG, dict(lane=3, rounding=1), 0, False),
    (WS, Opcode.CONFIG, dict(lane=2, rounding=3), 0, False),       # no mode 3
    (WS, Opcode.SYNC, {}, 0, True),
]


@pytest.mark.parametrize("cfg,op,fields,preloads,legal", RULES)
def test_operand_rules_at_their_boundaries(cfg, op, fields, preloads, legal):
    """On decoded fields (the functional model's view) and on the word's own bits (the
    cycle model's and, through the same function, the HDL's)."""
    assert bool(isa.operands_ok(cfg, op, fields, preloads)) == legal
    word = isa.encode(op, **fields)
    assert bool(isa.operands_ok(cfg, op, isa.Fields(word, op), preloads)) == legal


def test_operand_rules_give_hdl_logic_equal_to_the_python_rule():
    """The same function on Amaranth values, evaluated by the simulator, for every row."""
    from amaranth import Module, Signal
    from amaranth.sim import Simulator

    word = Signal(isa.INSN_BITS)
    preloads = Signal(2)
    checks = [(cfg, op, Signal(name=f"ok{i}"), isa.encode(op, **f), p, legal)
              for i, (cfg, op, f, p, legal) in enumerate(RULES)]

    async def bench(ctx):
        for cfg, op, ok, value, p, legal in checks:
            ctx.set(word, value)
            ctx.set(preloads, p)
            assert ctx.get(ok) == legal, (cfg.dataflow, op.name, value)

    m = Module()
    for cfg, op, ok, _, _, _ in checks:
        m.d.comb += ok.eq(isa.operands_ok(cfg, op, isa.Fields(word, op), preloads))
    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()


def test_program_bytes_is_the_fetch_layout():
    words = [isa.encode(Opcode.SYNC, push_next=1), (1 << 127) | int(Opcode.HALT)]
    raw = isa.program_bytes(words)
    assert len(raw) == 2 * isa.INSN_BYTES
    assert [int.from_bytes(raw[i:i + isa.INSN_BYTES], "little")
            for i in range(0, len(raw), isa.INSN_BYTES)] == words
