# amaranth: UnusedElaboratable=no
"""The register map (hdl/regmap.py) and its generated decoder, RegisterBlock, in Amaranth's
simulator: every register of the description over the AXI4-Lite bus, the HWINFO encoding,
the host accessor, docs/regmap.md freshness, bad descriptions."""

import dataclasses
import random
from pathlib import Path

import pytest
from amaranth.sim import Simulator

from hdl import regmap
from hdl.config import BUS_WIDTHS, DATAFLOWS, NPUConfig
from hdl.regmap import (BY_NAME, REGISTERS, Field, HwinfoMismatch, Register, RegisterAccess,
                        RegmapError)
from hdl.regs import RegisterBlock

from .stimulus import stimulus_seed

SEED = stimulus_seed(20261127)
REPO = Path(__file__).resolve().parent.parent
WORDS = range(0, 1 << regmap.ADDR_WIDTH, 4)
PORTS = regmap.ports()
INPUTS = [p for p in PORTS.values() if p.direction == "in"]
PULSES = [p for p in PORTS.values() if p.kind == "pulse"]
STORAGE = [p for p in PORTS.values() if p.kind == "storage"]
CONFIGS = [NPUConfig(), NPUConfig(rows=4, cols=4, dataflow="os", bus_bits=64, sp_lines=1024,
                                  acc_lines=128),
           NPUConfig(rows=256, cols=1, bus_bits=256, sp_lines=1 << 16, acc_lines=1 << 16,
                     sp_banks=8, acc_banks=1, queue_depth=256, input_width=16, acc_width=64),
           NPUConfig(rows=1, cols=256, dataflow="os", sp_lines=16, acc_lines=16, sp_banks=1,
                     acc_banks=2, queue_depth=2, input_width=2, acc_width=4)]


# --- an AXI4-Lite manager in Amaranth's simulator -------------------------------------------

async def axil_write(ctx, bus, addr: int, data: int):
    """One write; returns the cycle count from valid to response.  Asserts OKAY."""
    ctx.set(bus.awaddr, addr)
    ctx.set(bus.wdata, data)
    ctx.set(bus.wstrb, 0xF)
    ctx.set(bus.awvalid, 1)
    ctx.set(bus.wvalid, 1)
    while not ctx.get(bus.awready):
        await ctx.tick()
    assert ctx.get(bus.wready), "awready without wready"
    await ctx.tick()
    ctx.set(bus.awvalid, 0)
    ctx.set(bus.wvalid, 0)
    assert ctx.get(bus.bvalid), "no write response the cycle after the write was taken"
    assert ctx.get(bus.bresp) == 0, f"write to {addr:#x}: bresp {ctx.get(bus.bresp)}"
    ctx.set(bus.bready, 1)
    await ctx.tick()
    ctx.set(bus.bready, 0)


async def axil_read(ctx, bus, addr: int) -> int:
    """One read; asserts OKAY and that the data arrives the cycle after the address."""
    ctx.set(bus.araddr, addr)
    ctx.set(bus.arvalid, 1)
    while not ctx.get(bus.arready):
        await ctx.tick()
    await ctx.tick()
    ctx.set(bus.arvalid, 0)
    assert ctx.get(bus.rvalid), "no read data the cycle after the address was taken"
    assert ctx.get(bus.rresp) == 0, f"read of {addr:#x}: rresp {ctx.get(bus.rresp)}"
    data = ctx.get(bus.rdata)
    ctx.set(bus.rready, 1)
    await ctx.tick()
    ctx.set(bus.rready, 0)
    return data


def simulate(cfg, bench, monitor=None):
    """Run ``bench(ctx, dut, host)`` against a RegisterBlock for ``cfg``; ``host`` is the
    generated accessor over the simulated bus.  ``monitor(ctx, dut)`` runs alongside."""
    dut = RegisterBlock(cfg)

    async def testbench(ctx):
        async def read_word(addr):
            return await axil_read(ctx, dut.axil, addr)

        async def write_word(addr, value):
            await axil_write(ctx, dut.axil, addr, value)

        await bench(ctx, dut, RegisterAccess(read_word, write_word))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    if monitor is not None:
        sim.add_testbench(monitor(dut), background=True)
    sim.run()


def expected_words(cfg, storage: dict, inputs: dict) -> dict:
    """Word address -> what a read returns, from the description alone (a reference model:
    RW registers hold ``storage``, R registers show ``inputs`` or HWINFO, the rest reads 0)."""
    out = {addr: 0 for addr in WORDS}
    consts = regmap.hwinfo_words(cfg)
    for reg in REGISTERS:
        if reg.access == "W":
            continue
        if reg.constant:
            value = consts[reg.name]
        elif reg.access == "RW":
            value = storage[reg.port]
        elif not reg.fields:
            value = inputs[reg.port]
        else:
            value = 0
            for f in reg.fields:
                source = inputs[f.port_name]
                value |= ((source != 0) if f.nonzero else source & ((1 << f.width) - 1)) << f.lsb
        for i, addr in enumerate(reg.words):
            out[addr] = (value >> (32 * i)) & 0xFFFF_FFFF
    return out


def random_inputs(rng) -> dict:
    return {p.name: rng.choice([0, 1, (1 << p.width) - 1, rng.getrandbits(p.width)])
            for p in INPUTS}


async def read_all(ctx, dut) -> dict:
    return {addr: await axil_read(ctx, dut.axil, addr) for addr in WORDS}


# --- the decoder in the simulator ------------------------------------------------------------

@pytest.mark.parametrize("cfg", CONFIGS[:2], ids=["default", "os4x4"])
def test_reset_values_of_every_word(cfg):
    """After reset, every word of the address space reads what the description says: RW
    registers their reset value, HWINFO the configuration, the rest 0; RW ports hold their
    reset value and no pulse is high."""
    resets = {p.name: p.reset for p in STORAGE}

    async def bench(ctx, dut, host):
        for p in PULSES:
            assert ctx.get(getattr(dut, p.name)) == 0, p.name
        for p in STORAGE:
            assert ctx.get(getattr(dut, p.name)) == p.reset, p.name
        assert await read_all(ctx, dut) == expected_words(cfg, resets, {p.name: 0 for p in INPUTS})

    simulate(cfg, bench)


def test_rw_registers_write_read_back_and_drive_their_ports():
    rng = random.Random(SEED)
    rw = [reg for reg in REGISTERS if reg.access == "RW"]
    assert rw, "the map has no RW register to test"

    async def bench(ctx, dut, host):
        for _ in range(4):
            values = {reg.port: rng.getrandbits(reg.width) for reg in rw}
            for reg in rng.sample(rw, len(rw)):
                await axil_write(ctx, dut.axil, reg.address, values[reg.port])
                assert ctx.get(getattr(dut, reg.port)) == values[reg.port], reg.name
            for reg in rw:
                assert await axil_read(ctx, dut.axil, reg.address) == values[reg.port], reg.name
                assert await host.read(reg.name) == values[reg.port], reg.name

    simulate(NPUConfig(), bench)


def test_read_only_and_unknown_addresses_ignore_writes():
    """Writes to R registers, to W-only CTRL's neighbours and to addresses outside the map
    (aligned or not) change nothing: every word reads as before, no port moves."""
    rng = random.Random(SEED + 1)
    cfg = CONFIGS[1]
    writable = {reg.address for reg in REGISTERS if reg.access != "R"}
    targets = [a for a in range(1 << regmap.ADDR_WIDTH) if a not in writable]
    pulses_seen = []

    def monitor(dut):
        async def watch(ctx):
            async for _ in ctx.tick():
                pulses_seen.extend(p.name for p in PULSES if ctx.get(getattr(dut, p.name)))
        return watch

    async def bench(ctx, dut, host):
        storage = {p.name: rng.getrandbits(p.width) for p in STORAGE}
        for p in STORAGE:
            await host.write(p.registers[0], storage[p.name])
        inputs = random_inputs(rng)
        for name, value in inputs.items():
            ctx.set(getattr(dut, name), value)
        before = await read_all(ctx, dut)
        assert before == expected_words(cfg, storage, inputs)
        for addr in targets:
            await axil_write(ctx, dut.axil, addr, rng.getrandbits(32))
        assert await read_all(ctx, dut) == before
        for p in STORAGE:
            assert ctx.get(getattr(dut, p.name)) == storage[p.name], p.name

    simulate(cfg, bench, monitor)
    assert pulses_seen == [], f"a write outside CTRL pulsed {pulses_seen}"


def test_status_fields_and_inputs_read_as_described():
    rng = random.Random(SEED + 2)

    async def bench(ctx, dut, host):
        for trial in range(12):
            inputs = random_inputs(rng)
            if trial < 2:      # error code 0 and non-zero both covered
                inputs["error"] = 0 if trial == 0 else 0x80
            for name, value in inputs.items():
                ctx.set(getattr(dut, name), value)
            status = await host.read("STATUS")
            assert status == {"busy": bool(inputs["busy"]), "done": bool(inputs["done"]),
                              "error": inputs["error"] != 0, "code": inputs["error"]}
            assert status == regmap.decode_status(await axil_read(ctx, dut.axil, regmap.STATUS))
            assert await host.read("ERR_PC") == inputs["err_pc"]

    simulate(NPUConfig(), bench)


def test_counters_read_as_two_halves():
    rng = random.Random(SEED + 3)
    counters = [reg for reg in REGISTERS if reg.group == "counters"]
    assert list(regmap.COUNTERS) == [reg.port for reg in counters]

    async def bench(ctx, dut, host):
        for _ in range(3):
            values = {reg.port: rng.getrandbits(64) | 1 << 63 for reg in counters}
            for name, value in values.items():
                ctx.set(getattr(dut, name), value)
            for name, addr in regmap.COUNTERS.items():
                assert await axil_read(ctx, dut.axil, addr) == values[name] & 0xFFFF_FFFF, name
                assert await axil_read(ctx, dut.axil, addr + 4) == values[name] >> 32, name
            assert await host.counters() == values

    simulate(NPUConfig(), bench)


def test_ctrl_fields_pulse_for_exactly_one_cycle():
    """Each CTRL field written 1 is high for one cycle, the cycle after the write is taken
    (when bvalid rises); fields written 0 stay low.  Reading CTRL returns 0."""
    ctrl = BY_NAME["CTRL"]
    high = {f.name: 0 for f in ctrl.fields}     # cycles each pulse was seen high

    def monitor(dut):
        async def watch(ctx):
            async for _ in ctx.tick():
                for f in ctrl.fields:
                    high[f.name] += ctx.get(getattr(dut, f.port_name))
        return watch

    combos = [{f.name: (i >> k) & 1 for k, f in enumerate(ctrl.fields)}
              for i in range(1 << len(ctrl.fields))]

    async def bench(ctx, dut, host):
        pulses = lambda: {f.name: ctx.get(getattr(dut, f.port_name))  # noqa: E731
                          for f in ctrl.fields}
        for combo in combos:
            ctx.set(dut.axil.awaddr, ctrl.address)
            ctx.set(dut.axil.wdata, ctrl.encode(**combo))
            ctx.set(dut.axil.awvalid, 1)
            ctx.set(dut.axil.wvalid, 1)
            assert ctx.get(dut.axil.awready)
            assert pulses() == {f.name: 0 for f in ctrl.fields}
            await ctx.tick()            # the write is taken at this edge
            assert ctx.get(dut.axil.bvalid)
            assert pulses() == combo, f"after writing {combo}: {pulses()}"
            ctx.set(dut.axil.awvalid, 0)
            ctx.set(dut.axil.wvalid, 0)
            ctx.set(dut.axil.bready, 1)
            await ctx.tick()
            ctx.set(dut.axil.bready, 0)
            for _ in range(3):
                assert pulses() == {f.name: 0 for f in ctrl.fields}, "pulse longer than a cycle"
                await ctx.tick()
            assert await host.read_raw("STATUS") == 0
            assert await axil_read(ctx, dut.axil, ctrl.address) == 0

    simulate(NPUConfig(), bench, monitor)
    for f in ctrl.fields:
        assert high[f.name] == sum(combo[f.name] for combo in combos), f.name


def test_bus_handshakes_hold_under_backpressure():
    """The write response stays up until bready, and no second write is taken meanwhile;
    read data stays up until rready with arready low; a read and a write go together."""
    async def bench(ctx, dut, host):
        bus = dut.axil
        ctx.set(bus.awaddr, regmap.PROG_ADDR)
        ctx.set(bus.wdata, 0x1234)
        ctx.set(bus.awvalid, 1)
        ctx.set(bus.wvalid, 1)
        ctx.set(bus.araddr, regmap.PROG_ADDR)
        ctx.set(bus.arvalid, 1)
        assert ctx.get(bus.awready) and ctx.get(bus.arready)
        await ctx.tick()
        assert ctx.get(bus.rdata) == 0      # sampled before the write landed
        ctx.set(bus.wdata, 0x5678)          # a second write offered while bvalid is up
        for _ in range(3):
            assert ctx.get(bus.bvalid) and ctx.get(bus.rvalid)
            assert not ctx.get(bus.awready) and not ctx.get(bus.wready)
            assert not ctx.get(bus.arready)
            await ctx.tick()
        ctx.set(bus.awvalid, 0)
        ctx.set(bus.wvalid, 0)
        ctx.set(bus.arvalid, 0)
        ctx.set(bus.bready, 1)
        ctx.set(bus.rready, 1)
        await ctx.tick()
        assert not ctx.get(bus.bvalid) and not ctx.get(bus.rvalid)
        ctx.set(bus.bready, 0)
        ctx.set(bus.rready, 0)
        assert ctx.get(dut.prog_addr) == 0x1234
        assert await host.read("PROG_ADDR") == 0x1234

    simulate(NPUConfig(), bench)


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c.core_name)
def test_rtl_hwinfo_describes_its_configuration(cfg):
    """The block's HWINFO registers decode to every field of the configuration it was built
    with, and checking them against another configuration names the field that differs."""
    async def bench(ctx, dut, host):
        words = await host.hwinfo_words()
        assert words == regmap.hwinfo_words(cfg)
        assert regmap.config_from_hwinfo(words) == cfg
        assert await host.check_hwinfo(cfg) == dataclasses.asdict(cfg)
        other = cfg.replace(queue_depth=3 if cfg.queue_depth != 3 else 4)
        with pytest.raises(HwinfoMismatch, match=r"queue_depth: design has"):
            await host.check_hwinfo(other)

    simulate(cfg, bench)


# --- the description, its encodings, the accessor, the docs -------------------------------

def test_hwinfo_round_trips_every_config_field():
    described = {f.config for reg in regmap.HWINFO_REGISTERS for f in reg.fields}
    assert described == {f.name for f in dataclasses.fields(NPUConfig)}, \
        "an NPUConfig field is not described by a HWINFO register"
    rng = random.Random(SEED + 4)
    configs = list(CONFIGS)
    while len(configs) < 200:
        lines = 1 << rng.randrange(4, 17), 1 << rng.randrange(4, 17)
        try:
            configs.append(NPUConfig(
                rows=rng.randrange(1, 257), cols=rng.randrange(1, 257),
                dataflow=rng.choice(DATAFLOWS), bus_bits=rng.choice(BUS_WIDTHS),
                sp_lines=lines[0], acc_lines=lines[1], sp_banks=rng.choice((1, 2, 4, 8)),
                acc_banks=rng.choice((1, 2, 4, 8)), queue_depth=rng.randrange(2, 257),
                input_width=rng.randrange(2, 17), acc_width=rng.randrange(32, 65)))
        except ValueError:
            continue
    for cfg in configs:
        assert regmap.config_from_hwinfo(regmap.hwinfo_words(cfg)) == cfg


def test_hwinfo_word_is_unchanged_on_the_bus():
    """HWINFO keeps the encoding drivers already read: [8:0] rows, [17:9] cols, [18] os,
    [21:19] log2(bus_bits / 64)."""
    assert regmap.hwinfo(NPUConfig()) == 8 | 8 << 9 | 1 << 19
    assert regmap.hwinfo(NPUConfig(rows=4, cols=16, dataflow="os", bus_bits=64)) == \
        4 | 16 << 9 | 1 << 18
    assert regmap.hwinfo(NPUConfig(rows=256, cols=3, bus_bits=256)) == 256 | 3 << 9 | 2 << 19


def test_check_hwinfo_names_each_field_that_differs():
    cfg = NPUConfig()
    words = regmap.hwinfo_words(cfg.replace(rows=4, sp_banks=4))
    with pytest.raises(HwinfoMismatch) as err:
        regmap.check_hwinfo(cfg, words)
    message = str(err.value)
    assert "rows: design has 4, expected 8 (HWINFO[8:0] = 0x4)" in message
    assert "sp_banks: design has 4, expected 2 (HWINFO1[11:10] = 0x2)" in message
    assert "cols" not in message
    words["HWINFO"] |= 7 << 19      # no bus width has index 7
    with pytest.raises(HwinfoMismatch, match=r"bus_bits: design has 'undecodable raw value 7'"):
        regmap.check_hwinfo(cfg, words)
    with pytest.raises(RegmapError, match="HWINFO words missing: HWINFO2"):
        regmap.check_hwinfo(cfg, {"HWINFO": 0, "HWINFO1": 0})


@pytest.mark.parametrize("field,value,problem", [
    (Field("n", 0, 4, "", coding="log2"), 12, "12 is not a power of two"),
    (Field("n", 0, 4, "", coding="log2"), 1 << 16, "does not fit in 4 bits"),
    (Field("n", 0, 4, ""), 16, "16 does not fit in 4 bits"),
    (Field("n", 0, 4, ""), -1, "not a non-negative integer"),
    (Field("n", 0, 4, ""), "3", "not a non-negative integer"),
    (Field("n", 0, 1, "", coding=("ws", "os")), "xs", "'xs' is not one of"),
    (Field("n", 0, 1, "", coding="flag"), 2, "flag value must be 0 or 1"),
])
def test_field_encoding_rejects_what_does_not_fit(field, value, problem):
    with pytest.raises(RegmapError, match=problem):
        field.encode(value)


R = Register
BAD_MAPS = [
    ((R("A", 0, "RW", ""), R("A", 4, "RW", "")), "register A is described twice"),
    ((R("A", 0, "RW", ""), R("B", 0, "R", "")), "register B at 0x0 overlaps A"),
    ((R("C", 0x20, "R", "", width=64), R("D", 0x24, "R", "")), "D at 0x24 overlaps C"),
    ((R("A", 2, "RW", ""),), "address 0x2 is not 4-byte aligned"),
    ((R("A", 0x24, "R", "", width=64),), "address 0x24 is not 8-byte aligned"),
    ((R("A", 0x100, "RW", ""),), "inside the 256-byte space"),
    ((R("A", 0, "RW", "", width=64),), "a 64-bit register must be read-only"),
    ((R("A", 0, "RO", ""),), "access 'RO' is not one of"),
    ((R("A", 0, "R", "", width=16),), "width 16 is not 32 or 64"),
    ((R("a", 0, "R", ""),), "upper-case identifier"),
    ((R("A", 0, "R", "", reset=1),), "only an RW register has one"),
    ((R("A", 0, "RW", "", reset=1 << 32),), "must fit its width"),
    ((R("A", 0, "R", "", fields=(Field("x", 30, 4, ""),)),), "bits \\[33:30\\] are outside"),
    ((R("A", 0, "R", "", fields=(Field("x", 0, 4, ""), Field("y", 3, 2, ""))),),
     "field y: bits \\[4:3\\] overlap another field"),
    ((R("A", 0, "R", "", fields=(Field("x", 0, 2, "", coding="flag"),)),), "a flag is one bit"),
    ((R("A", 0, "R", "", fields=(Field("x", 0, 2, "", coding="gray"),)),), "coding 'gray'"),
    ((R("A", 0, "R", "", fields=(Field("x", 0, 1, "", coding=(1, 2, 3)),)),),
     "3 choices do not fit in 1 bits"),
    ((R("A", 0, "R", "", fields=(Field("x", 0, 4, "", config="colz"),)),),
     "config='colz' is not an NPUConfig field"),
    ((R("A", 0, "R", "", fields=(Field("x", 0, 4, "", config="rows"), Field("y", 4, 1, ""))),),
     "a constant \\(config\\) register is read-only and every field names its config"),
    ((R("A", 0, "RW", "", fields=(Field("x", 0, 4, "", port="p"),)),),
     "fields of an RW register only document its bits"),
    ((R("A", 0, "W", "", fields=(Field("x", 0, 1, "", nonzero=True),)),),
     "a nonzero field is one bit of a read-only register"),
    ((R("A", 0, "RW", ""), R("B", 4, "W", "", fields=(Field("a", 0, 1, ""),))),
     "port a of register B is already used by A"),
    ((R("A", 0, "R", "", fields=(Field("x", 0, 1, "", port="p", nonzero=True),)),),
     "port p \\(A\\) is only read through nonzero fields"),
]


@pytest.mark.parametrize("registers,problem", BAD_MAPS, ids=[p for _, p in BAD_MAPS])
def test_bad_descriptions_are_rejected_with_the_problem_named(registers, problem):
    with pytest.raises(RegmapError, match=problem):
        regmap.check_registers(registers)
    with pytest.raises(RegmapError, match=problem):
        RegisterBlock(NPUConfig(), registers)


def test_a_config_that_does_not_fit_hwinfo_is_rejected_by_name():
    narrow = (Register("INFO", 0, "R", "", fields=(Field("rows", 0, 4, "", config="rows"),)),)
    with pytest.raises(RegmapError, match="field rows: 16 does not fit in 4 bits"):
        RegisterBlock(NPUConfig(rows=16), narrow)


def test_accessor_refuses_what_the_map_forbids():
    import asyncio

    async def read_word(addr):
        raise AssertionError("no bus access expected")

    host = RegisterAccess(read_word, read_word)
    for call, problem in [(host.read("CTRL"), "CTRL is write-only"),
                          (host.write("STATUS", 1), "STATUS is read-only"),
                          (host.read("NOPE"), "no register 'NOPE'"),
                          (host.write("PROG_LEN", 1 << 32), "does not fit in 32 bits"),
                          (host.write("CTRL", 1, start=1), "not both or neither"),
                          (host.write("CTRL", go=1), "CTRL has no field 'go'")]:
        with pytest.raises(RegmapError, match=problem):
            asyncio.run(call)


def test_module_names_come_from_the_description():
    for reg in REGISTERS:
        if reg.group != "counters":
            assert getattr(regmap, reg.name) == reg.address, reg.name
    assert regmap.CTRL_START == 1 << BY_NAME["CTRL"].field("start").lsb
    assert (regmap.STATUS_BUSY, regmap.STATUS_DONE, regmap.STATUS_ERROR) == (1, 2, 4)
    assert regmap.decode_status(0x0306) == {"busy": False, "done": True, "error": True,
                                            "code": 3}


def test_docstring_gives_every_port_its_direction_and_timing():
    doc = RegisterBlock.__doc__
    for port in PORTS.values():
        direction = "Out" if port.direction == "out" else "In"
        assert f"\n{port.name} : {direction}({port.width}" in doc, port.name
    assert "\naxil : In(axi4_lite_signature(8, 32))" in doc
    block = RegisterBlock(NPUConfig())
    assert set(block.signature.members) == set(PORTS) | {"axil"}


def test_regmap_doc_is_fresh():
    assert (REPO / "docs" / "regmap.md").read_text() == regmap.markdown(), \
        "docs/regmap.md is stale: run `python -m hdl.regmap > docs/regmap.md` (make regmap-doc)"


def test_addresses_are_the_bus_contract():
    """Drivers and the C++ harness use these addresses: moving one is a bus change."""
    assert {reg.name: reg.address for reg in REGISTERS} == {
        "CTRL": 0x00, "STATUS": 0x04, "PROG_ADDR": 0x08, "PROG_LEN": 0x0C, "DRAM_BASE": 0x10,
        "DRAM_SIZE": 0x14, "ERR_PC": 0x18, "HWINFO": 0x1C, "CYCLES": 0x20, "ARRAY_BUSY": 0x28,
        "STALL_WEIGHTS": 0x30, "STALL_COMPUTE_TOKEN": 0x38, "STALL_LOAD_TOKEN": 0x40,
        "STALL_STORE_TOKEN": 0x48, "STALL_QUEUE_FULL": 0x50, "DMA_BYTES_READ": 0x58,
        "DMA_BYTES_WRITTEN": 0x60, "HWINFO1": 0x68, "HWINFO2": 0x6C}
    assert (regmap.CTRL_START, regmap.CTRL_SOFT_RESET, regmap.STATUS_CODE_SHIFT) == (1, 2, 8)
