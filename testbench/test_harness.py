"""The C++ Verilator harness (testbench/harness) against the cycle model, the functional model
and the cocotb bench: the same programs, every counter, error code, ERR_PC and DRAM byte."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from hdl import isa
from hdl.config import NPUConfig
from hdl.isa import ErrorCode, Opcode
from sim_models import workloads
from sim_models.cycle_model import AxiRamTiming, CycleNPU

from . import backends
from .core_layers import regression_layers
from .harness import ConfigMismatch, Harness, HarnessError, HarnessTimeout, pauses
from .harness.build import build_harness
from .harness.networks import run_network, scaled
from .stimulus import stimulus_seed

WS = NPUConfig(rows=4, cols=4, dataflow="ws", bus_bits=128, sp_lines=1024, acc_lines=128)
OS = NPUConfig(rows=4, cols=4, dataflow="os", bus_bits=64, sp_lines=1024, acc_lines=128)
MEM_SIZE = 1 << 20


def _image(layer_dram) -> bytearray:
    mem = bytearray(MEM_SIZE)
    mem[:len(layer_dram)] = layer_dram
    return mem


def _assert_same(label, rtl, predicted):
    diff = {k: (predicted.counters[k], rtl.counters[k]) for k in rtl.counters
            if predicted.counters[k] != rtl.counters[k]}
    assert not diff, f"{label}: cycle model != harness (model, harness): {diff}"
    assert (predicted.error, predicted.err_pc) == (rtl.error, rtl.err_pc), \
        f"{label}: model {predicted.error.name}@{predicted.err_pc}, " \
        f"harness {rtl.error.name}@{rtl.err_pc}"


@pytest.mark.rtl
@pytest.mark.parametrize("cfg", [WS, OS], ids=["ws-4x4-b128", "os-4x4-b64"])
@pytest.mark.parametrize("pause", [0.0, 0.3], ids=["no-pauses", "pauses-30"])
def test_harness_layers_match_models(cfg, pause):
    """Every regression layer: counters equal the cycle model's (state carried across
    layers on both, pauses replayed from the seed), DRAM equals the functional model's,
    outputs equal the golden model's."""
    seed = stimulus_seed()
    print(f"KNPU_SEED={seed} {cfg.to_json()} pauses {pause}")
    harness = Harness(cfg)
    model = CycleNPU(cfg)
    for layer in regression_layers(cfg, seed):
        mem = _image(layer.dram)
        got = harness.run(mem, layer.program_addr, len(layer.program), pause_seed=seed,
                          pause_probability=pause)
        assert got.done and got.error == ErrorCode.NONE, f"{layer.name}: {got.error.name}"
        assert got.meta["pause_first"] == got.meta["start_edge"] == backends.START_EDGE
        if pause:
            pauses.replay(model.mem, seed, pause, got.meta["pause_first"], got.cycles)
        _assert_same(layer.name, got, model.run(layer.program, layer.program_addr, 0, MEM_SIZE))
        functional = backends.run(cfg, mem, layer.program_addr, program=layer.program,
                                  backend="functional")
        assert got.dram == functional.dram, f"{layer.name}: DRAM differs from the functional model"
        assert np.array_equal(layer.output(got.dram), layer.expected), f"{layer.name}: golden"


def _program(words, payload=b"", data_at=0x400):
    image = bytearray(0x1000)
    for i, w in enumerate(words):
        image[16 * i:16 * (i + 1)] = w.to_bytes(16, "little")
    image[data_at:data_at + len(payload)] = payload
    return image


def _fault_cases(cfg, mem_size):
    line = cfg.sp_width
    load = lambda addr: isa.encode(Opcode.LOAD, sp_addr=0, nrows=2, ncols=line,  # noqa: E731
                                   dram_addr=addr, dram_stride=line)
    store_raw = lambda addr: isa.encode(Opcode.STORE, acc_addr=0, nrows=1,  # noqa: E731
                                        ncols=cfg.cols, raw=1, dram_addr=addr, dram_stride=0)
    halt = isa.encode(Opcode.HALT)
    return [
        ("illegal opcode", [isa.encode(Opcode.SYNC), 0xF], ErrorCode.ILLEGAL_OPCODE),
        ("DMA outside the window", [load(mem_size - line)], ErrorCode.DMA_RANGE),
        ("read SLVERR", [load(0x8000), halt], ErrorCode.AXI_SLVERR),
        ("write SLVERR", [store_raw(0x8040), halt], ErrorCode.AXI_SLVERR),
        ("write DECERR", [store_raw(0x9000), halt], ErrorCode.AXI_DECERR),
        ("read DECERR", [load(0x9040), halt], ErrorCode.AXI_DECERR),
        ("bad operand", [isa.encode(Opcode.LOAD, sp_addr=cfg.sp_lines - 1, nrows=2, ncols=1,
                                    dram_addr=0, dram_stride=0)], ErrorCode.BAD_OPERAND),
        ("token deadlock", [isa.encode(Opcode.LOAD, sp_addr=0, nrows=1, ncols=1, dram_addr=0,
                                       dram_stride=0, pop_next=1), halt], ErrorCode.DEADLOCK),
    ]


@pytest.mark.rtl
def test_harness_faults_match_model_and_recover():
    """Each fault kind stops the harness's core with the cycle model's code, ERR_PC and
    counters; DMA_RANGE also agrees with the functional model; after a soft reset a good
    program runs and matches again."""
    cfg, seed = WS, stimulus_seed()
    slverr, decerr = [range(0x8000, 0x8100)], [range(0x9000, 0x9100)]
    harness = Harness(cfg)
    model = CycleNPU(cfg, AxiRamTiming(cfg.bus_bytes, slverr=slverr, decerr=decerr))
    good = regression_layers(cfg, seed)[1]
    for label, words, code in _fault_cases(cfg, MEM_SIZE):
        mem = _image(_program(words))
        got = harness.run(mem, 0, len(words), slverr=slverr, decerr=decerr, max_cycles=20000)
        assert got.error == code and not got.done, f"{label}: got {got.error.name}"
        _assert_same(label, got, model.run(words, 0, 0, MEM_SIZE))
        if code in (ErrorCode.DMA_RANGE, ErrorCode.ILLEGAL_OPCODE):
            functional = backends.run(cfg, mem, 0, program=words, backend="functional")
            assert functional.error == code, f"{label}: functional {functional.error.name}"
        harness.soft_reset()
        model.soft_reset()
        mem = _image(good.dram)
        got = harness.run(mem, good.program_addr, len(good.program))
        _assert_same(f"after {label}", got, model.run(good.program, good.program_addr, 0,
                                                       MEM_SIZE))
        assert np.array_equal(good.output(got.dram), good.expected), f"after {label}"


@pytest.mark.rtl
def test_harness_dram_beyond_image_wraps_like_axiram():
    """A window larger than the memory: the core's DMA reaches past the image and the
    harness wraps the address (as the bench's AxiRam does) instead of crashing."""
    cfg = WS
    words = [isa.encode(Opcode.LOAD, sp_addr=0, nrows=1, ncols=cfg.sp_width,
                        dram_addr=0x1000 + 0x40, dram_stride=0),
             isa.encode(Opcode.STORE, acc_addr=0, nrows=1, ncols=cfg.cols, raw=1,
                        dram_addr=0x1000 + 0x80, dram_stride=0), isa.encode(Opcode.HALT)]
    got = Harness(cfg).run(_program(words), 0, len(words), dram_size=0x10000)
    assert got.done, got.error.name
    assert len(got.dram) == 0x1000 and got.counters["dma_bytes_written"] == 4 * cfg.cols
    _assert_same("wrapped", got, CycleNPU(cfg).run(words, 0, 0, 0x10000))


@pytest.mark.rtl
def test_harness_cycle_limit_then_recovers():
    """A program longer than the limit stops with HarnessTimeout carrying the counters so
    far; the next run resets the core and is exact again."""
    cfg, seed = WS, stimulus_seed()
    layer = regression_layers(cfg, seed)[1]
    harness = Harness(cfg)
    with pytest.raises(HarnessTimeout, match="no irq within 300 cycles") as info:
        harness.run(layer.dram, layer.program_addr, len(layer.program), max_cycles=300)
    partial = info.value.result
    assert 300 <= partial.counters["cycles"] < 400 and not partial.done
    assert partial.meta["status"] & 1, "the core should still be busy"
    got = harness.run(layer.dram, layer.program_addr, len(layer.program))
    _assert_same("after the limit", got, CycleNPU(cfg).run(layer.program, layer.program_addr,
                                                           0, len(got.dram)))


@pytest.mark.rtl
def test_harness_refuses_another_configuration(tmp_path):
    lib, _ = build_harness(WS)
    other = dataclasses.replace(WS, rows=8)
    with pytest.raises(ConfigMismatch, match=f"built for {WS.core_name}, not {other.core_name}"):
        Harness(other, library=lib)
    with pytest.raises(HarnessError, match="program_len=-1"):
        Harness(WS, library=lib).run(bytes(64), 0, -1)


def test_pause_stream_is_seeded_and_has_its_probability():
    a = pauses.pause_values(11, 0.3, "r", 20000)
    assert a == pauses.pause_values(11, 0.3, "r", 20000)
    assert a != pauses.pause_values(12, 0.3, "r", 20000)
    assert a != pauses.pause_values(11, 0.3, "w", 20000)
    assert abs(sum(a) / len(a) - 0.3) < 0.02
    assert not any(pauses.pause_values(11, 0.0, "ar", 100))
    assert all(pauses.pause_values(11, 1.0, "ar", 100))
    # the first value from the C++ formula, with Python ints (the stream uses numpy)
    key = pauses.mix64(11 ^ 0xD1B54A32D192ED03)
    assert pauses.pause_values(11, 0.3, "ar", 1)[0] == \
        ((pauses.mix64(key) >> 32) < pauses.threshold(0.3))


def test_backends_refuse_bad_input():
    layer = regression_layers(WS, 1)[0]
    with pytest.raises(backends.BackendError, match="unknown back end 'spice'"):
        backends.run(WS, layer.dram, layer.program_addr, program=layer.program, backend="spice")
    with pytest.raises(backends.BackendError, match="outside the"):
        backends.run(WS, layer.dram, len(layer.dram), 4, backend="functional")
    with pytest.raises(backends.BackendError, match="program differs"):
        backends.run(WS, layer.dram, layer.program_addr, program=[0] * len(layer.program),
                     backend="functional")
    with pytest.raises(backends.BackendError, match="no seeded pauses"):
        backends.run(WS, layer.dram, layer.program_addr, program=layer.program,
                     backend="functional", pause_probability=0.1)


@pytest.mark.rtl
def test_seeded_pauses_equal_on_harness_cocotb_and_model():
    """The same program with the same seeded DRAM pauses on the harness, the cocotb bench
    on Verilator and on Icarus, and the cycle model: identical DRAM and every counter (the
    cocotb builds are the ones test_core_rtl and the ONNX tests use).  The pauses take
    effect: the run is longer than without them."""
    seed = stimulus_seed()
    layer = regression_layers(WS, seed)[3]
    mem = _image(layer.dram)
    runs = {b: backends.run(WS, mem, layer.program_addr, program=layer.program, backend=b,
                            pause_seed=seed, pause_probability=0.3)
            for b in ("verilator", "cocotb-verilator", "icarus", "model")}
    plain = backends.run(WS, mem, layer.program_addr, program=layer.program)
    harness = runs["verilator"]
    assert harness.done and harness.cycles > plain.cycles, (harness.cycles, plain.cycles)
    for name, got in runs.items():
        diff = {k: (harness.counters[k], got.counters[k]) for k in harness.counters
                if got.counters[k] != harness.counters[k]}
        assert not diff, f"seed {seed}: {name} != harness (harness, {name}): {diff}"
        assert got.dram == harness.dram, f"seed {seed}: {name}'s DRAM differs"
        assert (got.error, got.err_pc) == (harness.error, harness.err_pc), name


@pytest.mark.rtl
def test_waves_cover_the_requested_window(tmp_path):
    """The traced variant writes an FST holding only the cycles asked for: a longer
    window gives a larger file, and the run's counters are unchanged by tracing."""
    layer = regression_layers(WS, 5)[1]
    sizes = {}
    for first, last in ((0, 20), (0, 2000)):
        path = tmp_path / f"w{last}.fst"
        got = backends.run(WS, layer.dram, layer.program_addr, program=layer.program,
                           waves=(path, first, last))
        sizes[last] = path.stat().st_size
        assert path.read_bytes()[:1] == b"\x00"      # FST header block
    assert sizes[2000] > 2 * sizes[20] > 0
    plain = backends.run(WS, layer.dram, layer.program_addr, program=layer.program)
    assert plain.counters == got.counters and plain.dram == got.dram


@pytest.mark.rtl
def test_whole_network_mobilenet_v2_on_harness():
    """Every layer of MobileNetV2 (56x56 input, channels / 4) on the 4x4 core through the
    harness: DRAM bit-exact vs the functional model and every counter equal to the cycle
    model's, layer after layer on one simulated chip."""
    cfg = WS
    layers = scaled(workloads.build("mobilenet_v2"), resolution=0.25, channels=0.25)
    records = run_network(cfg, layers, seed=stimulus_seed(), model=True)
    assert len(records) == len(workloads.build("mobilenet_v2"))
    bad = [r for r in records if not (r["done"] and r["dram_equal"] and r["golden_equal"]
                                      and r["model_equal"])]
    assert not bad, bad
    cycles = sum(r["cycles"] for r in records)
    wall = sum(r["wall_s"] for r in records)
    print(f"mobilenet_v2 (reduced): {len(records)} layers, {cycles} cycles, harness {wall:.2f} s, "
          f"model {sum(r['model_s'] for r in records):.1f} s")


@pytest.mark.rtl
def test_model_accuracy_reruns_points_on_the_rtl(tmp_path):
    """``scripts/model_accuracy.py --backend verilator``: a layer's cycles on the RTL
    harness (output checked against the golden model) equal the exact model's for the same
    program, each back end under its own cache key."""
    from scripts import model_accuracy as ma
    layer = workloads.Layer(name="c", kind="conv", h=6, w=6, c=5, kh=3, kw=3, n=6, stride=1,
                            pad=1)
    cache = ma.ExactCache(tmp_path / "exact.json")
    model, _ = ma.exact_cycles(WS, layer, np.random.default_rng(0), cache, "t")
    rtl, _ = ma.exact_cycles(WS, layer, np.random.default_rng(0), cache, "t",
                             backend="verilator")
    assert rtl == model > 0
    assert len(cache.data) == 2          # one entry per back end
    again, wall = ma.exact_cycles(WS, layer, np.random.default_rng(0), cache, "t",
                                  cached_only=True, backend="verilator")
    assert (again, wall) == (rtl, 0.0)
