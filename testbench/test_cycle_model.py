"""The cycle model's fast analytical mode against its exact mode.

(The exact mode's own check is against the RTL: every program of the cocotb core regression
runs on both and the counters must be equal; see ``cocotb_core.py``.)
"""

from __future__ import annotations

import numpy as np
import pytest

from hdl.config import NPUConfig
from sim_models.analytical import core_estimate
from sim_models.compiler import BandPlan, band_plan, compile_random
from sim_models.cycle_model import CycleNPU
from sim_models.workloads import Layer

from .stimulus import stimulus_seed

LAYERS = [
    Layer("gemm_64", "gemm", M=64, K=64, N=64),
    Layer("gemm_odd", "gemm", M=37, K=53, N=29),
    Layer("gemm_tall", "gemm", M=200, K=30, N=70),
    Layer("conv3x3", "conv", h=14, w=14, c=16, kh=3, kw=3, n=32, stride=1, pad=1),
    Layer("conv3x3_s2", "conv", h=15, w=15, c=8, kh=3, kw=3, n=8, stride=2, pad=1),
    Layer("conv1x1", "conv", h=14, w=14, c=32, kh=1, kw=1, n=64),
    Layer("depthwise", "conv", h=16, w=16, c=16, kh=3, kw=3, n=16, stride=1, pad=1,
          depthwise=True),
    # batch 1: a step per weight tile, paced by the read bus (its weight rows and the
    # instruction fetches between them); the fitted minimum step of MODEL_VERSION 7 put
    # it at +66 % (4x4) and +24 % (8x8, 64-bit bus)
    Layer("gemm_b1", "gemm", M=1, K=64, N=200),
]
CONFIGS = [NPUConfig(rows=4, cols=4, dataflow="ws", sp_lines=1024, acc_lines=256),
           NPUConfig(rows=8, cols=8, dataflow="ws", bus_bits=64, sp_lines=1024, acc_lines=256),
           NPUConfig(rows=8, cols=8, dataflow="os", sp_lines=1024, acc_lines=256)]
MAX_ERROR, MAX_MEAN_ERROR = 0.04, 0.012   # measured: worst 2.2%, mean 0.67% (23 cases)
# The sweep's own points: a point of its memory grid per size (:func:`_sweep_point`: the
# widest bus, the largest scratchpad and the smallest accumulator, where the sweep balanced
# most groups up to MODEL_VERSION 12; ``make model-accuracy`` measures every layer at its own
# balanced points), int8 outputs, per size and dataflow the layers of each class that came
# out worst in ``make model-accuracy`` before and after MODEL_VERSION 8 (stride-2
# depthwise, small layers where start-up and drain dominate, activations sharing a
# scratchpad bank with the next weights, small-K OS expands, load-bound 8x8 steps whose
# fetches share the 64-bit bus).
SWEEP_LAYERS = {
    ("ws", (8, 8)): [("mobilenet_v2", "block13.dw"), ("mlp", "fc3"),
                     ("bert_base_block", "scores_h0")],
    ("ws", (16, 16)): [("mobilenet_v2", "block13.dw"), ("mobilenet_v2", "block6.dw"),
                       ("resnet18", "layer4.0.downsample"), ("mlp", "fc3")],
    ("ws", (32, 32)): [("mobilenet_v2", "block13.project"),
                       ("resnet18", "layer4.0.downsample"), ("mlp", "fc3"),
                       ("bert_base_block", "scores_h0")],
    ("ws", (64, 64)): [("mlp", "fc1"), ("bert_base_block", "scores_h0")],
    ("os", (16, 16)): [("mobilenet_v2", "block7.expand"), ("bert_base_block", "scores_h0"),
                       ("mlp", "fc3"), ("resnet18", "layer3.0.downsample")],
    ("os", (32, 32)): [("mobilenet_v2", "block14.expand"), ("mobilenet_v2", "block2.expand"),
                       ("mlp", "fc3"), ("bert_base_block", "scores_h0")],
    ("os", (64, 64)): [("bert_base_block", "context_h0"), ("mobilenet_v2", "block7.expand"),
                       ("mlp", "fc3"), ("resnet50", "layer3.0.conv3")],
    # 4x4 (its only layer under 1e5 cycles) and the non-square sizes (rows != cols: the
    # scratchpad line max(rows, cols) wide), each the worst of its size's cheap layers
    ("ws", (4, 4)): [("mlp", "fc3")],
    ("os", (4, 4)): [("mlp", "fc3")],
    ("ws", (16, 4)): [("mlp", "fc3")],
    ("ws", (4, 16)): [("bert_base_block", "scores_h0")],
    ("ws", (32, 8)): [("mobilenet_v2", "block7.project")],
    ("os", (8, 32)): [("mobilenet_v2", "block4.expand")],
    ("ws", (64, 16)): [("resnet50", "layer3.1.conv1"), ("mlp", "fc3")],
    ("os", (64, 16)): [("bert_base_block", "scores_h0"), ("mlp", "fc3")],
}
# Every layer measured at 4x4 and up is within 1.7 % (make model-accuracy, MODEL_VERSION 12;
# at 2x2 WS MobileNetV2's block14.dw was +14.6 %, -2.3 % from MODEL_VERSION 14, see README);
# the sample is held to 3 % worst and the 2 % mean (measured at MODEL_VERSION 14:
# worst 1.7 %, OS 32x32 scores_h0; 64x16 OS's two average 1.05 %, every other entry's mean
# is under 1 %).
SWEEP_MAX_ERROR, SWEEP_MAX_MEAN_ERROR = 0.03, 0.02


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c.dataflow}-{c.rows}x{c.cols}")
def test_analytical_mode_tracks_exact_mode(cfg):
    seed = stimulus_seed()
    print(f"KNPU_SEED={seed}")
    rng = np.random.default_rng(seed)
    errors = []
    for layer in LAYERS:
        if cfg.dataflow == "os" and layer.depthwise:
            continue
        compiled = compile_random(cfg, layer, rng)
        exact = CycleNPU(cfg).run(compiled.program, compiled.program_addr)
        estimate = core_estimate(cfg, layer, out_bytes=4)   # these layers store int32
        assert estimate.macs == compiled.macs
        errors.append(estimate.cycles / exact.cycles - 1)
        print(f"{layer.name}: exact {exact.cycles}, analytical {estimate.cycles} "
              f"({100 * errors[-1]:+.1f}%)")
    assert max(map(abs, errors)) <= MAX_ERROR
    assert np.mean(np.abs(errors)) <= MAX_MEAN_ERROR


def _size_id(x) -> str:
    """A parameter's test id: the dataflow, or the size as ROWSxCOLS."""
    return x if isinstance(x, str) else "x".join(map(str, x))


def _sweep_point(size, dataflow) -> NPUConfig:
    """A point of the sweep's memory grid (``sweep.memory_grid``) for ``size``: its widest
    bus, largest scratchpad and smallest accumulator."""
    from scripts.sweep import memory_grid

    grid = memory_grid(*size)
    mem = {k: max(m[k] for m in grid) for k in ("bus_bits", "sp_lines")}
    mem["acc_lines"] = min(m["acc_lines"] for m in grid)
    assert mem in grid
    return NPUConfig(rows=size[0], cols=size[1], dataflow=dataflow, **mem)


@pytest.mark.parametrize("dataflow,size", list(SWEEP_LAYERS), ids=_size_id)
def test_analytical_mode_at_the_sweep_points_is_within_five_percent(dataflow, size):
    """The issue's bound (5 % worst) on a sample of the sweep's own layers at a point of
    its memory grid, int8 outputs as the sweep prices them; every layer is measured at the
    sweep's balanced points by ``make model-accuracy``."""
    from scripts.model_accuracy import compile_int8
    from sim_models import workloads

    rng = np.random.default_rng(stimulus_seed())
    errors = []
    cfg = _sweep_point(size, dataflow)
    for wl, name in SWEEP_LAYERS[dataflow, size]:
        layer = next(l for l in workloads.load(wl) if l.name == name)
        compiled = compile_int8(cfg, layer, rng)
        exact = CycleNPU(cfg).run(compiled.program, compiled.program_addr)
        errors.append(core_estimate(cfg, layer).cycles / exact.cycles - 1)
        print(f"{cfg.name} {wl} {name}: exact {exact.cycles} ({100 * errors[-1]:+.1f}%)")
    assert max(map(abs, errors)) <= SWEEP_MAX_ERROR
    assert np.mean(np.abs(errors)) <= SWEEP_MAX_MEAN_ERROR


# (config, layer) pairs whose breakdown is checked: a plain WS GEMM with odd tiles (underfill),
# an on-chip band (padding columns), a strided conv and an OS GEMM.
BREAKDOWN_CASES = [(1, "gemm_odd"), (0, "conv3x3"), (1, "conv3x3_s2"), (2, "gemm_tall")]


@pytest.mark.parametrize("case", BREAKDOWN_CASES, ids=lambda c: f"{CONFIGS[c[0]].name}-{c[1]}")
def test_cycle_breakdown_adds_up_and_its_busy_beats_are_the_exact_models(case):
    """The analytical mode's breakdown (``CoreEstimate.breakdown``): every cause is
    non-negative, they sum to the estimate's cycles, and its array-busy part (useful +
    underfill + padding) equals the exact model's ``array_busy`` counter, beat for beat;
    the idle part is then the exact model's idle cycles within the model's accuracy."""
    from sim_models.analytical import BREAKDOWN

    cfg = CONFIGS[case[0]]
    layer = next(l for l in LAYERS if l.name == case[1])
    compiled = compile_random(cfg, layer, np.random.default_rng(stimulus_seed()))
    exact = CycleNPU(cfg).run(compiled.program, compiled.program_addr)
    estimate = core_estimate(cfg, layer, out_bytes=4)
    b = estimate.breakdown
    assert set(b) == set(BREAKDOWN) and min(b.values()) >= 0, b
    assert sum(b.values()) == pytest.approx(estimate.cycles, abs=1e-6)
    assert b["useful"] == pytest.approx(compiled.macs / (cfg.rows * cfg.cols))
    assert b["useful"] + b["underfill"] + b["padding"] == \
        pytest.approx(exact.counters["array_busy"], abs=1e-6)
    assert (b["padding"] > 0) == (compiled.meta.get("on_chip_im2col", False))
    idle, exact_idle = estimate.cycles - exact.counters["array_busy"], \
        exact.cycles - exact.counters["array_busy"]
    assert abs(idle - exact_idle) <= MAX_ERROR * exact.cycles


def _events_from_program(cfg, program) -> dict:
    """What the energy model's events must be, read off the program alone: every line each
    instruction moves (an independent statement of what the units do)."""
    from hdl import isa
    from hdl.isa import Opcode

    R, ev = cfg.rows, dict.fromkeys(["sp_line_writes", "sp_line_reads", "acc_line_reads",
                                     "acc_line_writes", "array_beats", "weight_beats"], 0)
    for word in program:
        i = isa.decode(word)
        op, n = i["op"], i.get("nrows", 0)
        if op == Opcode.LOAD:
            ev["sp_line_writes"] += n
        elif op == Opcode.LOAD_ACC:
            ev["acc_line_writes"] += n
        elif op == Opcode.PRELOAD:
            ev["sp_line_reads"] += n
            ev["weight_beats"] += R               # rows past nrows stream as zero lines
        elif op == Opcode.COMPUTE:
            out_rows = n if cfg.dataflow == "ws" else R
            ev["array_beats"] += n
            ev["sp_line_reads"] += n if cfg.dataflow == "ws" else 2 * n
            ev["weight_beats"] += 0 if cfg.dataflow == "ws" else n
            ev["acc_line_writes"] += out_rows
            ev["acc_line_reads"] += out_rows if i["accumulate"] else 0
        elif op == Opcode.STORE:
            ev["acc_line_reads"] += n
    return ev


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c.dataflow}-{c.rows}x{c.cols}")
def test_exact_mode_events_are_the_lines_the_program_moves(cfg):
    """The events the energy model prices equal what the program's instructions move, and
    the array-busy counter equals the activation beats."""
    rng = np.random.default_rng(stimulus_seed())
    for layer in (LAYERS[1], LAYERS[4]):
        compiled = compile_random(cfg, layer, rng)
        result = CycleNPU(cfg).run(compiled.program, compiled.program_addr)
        assert result.done
        assert result.events == _events_from_program(cfg, compiled.program), layer.name
        assert result.counters["array_busy"] == result.events["array_beats"]
        assert result.counters["dma_bytes_written"] >= compiled.macs // layer_k(layer)


def layer_k(layer) -> int:
    """The reduction length of a layer: each output element sums this many products."""
    if layer.kind == "gemm":
        return layer.K
    return layer.kh * layer.kw * (1 if layer.depthwise else layer.c)


def test_model_stops_on_a_deadlock_instead_of_hanging():
    from hdl import isa
    from hdl.isa import ErrorCode, Opcode
    cfg = CONFIGS[0]
    words = [isa.encode(Opcode.LOAD, sp_addr=0, nrows=1, ncols=1, dram_addr=0, dram_stride=0,
                        pop_next=1), isa.encode(Opcode.HALT)]
    result = CycleNPU(cfg).run(words, 0, 0, 1 << 20)
    assert result.error == ErrorCode.DEADLOCK and not result.done


STEM_CONFIGS = [CONFIGS[0], CONFIGS[1], NPUConfig(rows=16, cols=16, dataflow="ws",
                                                  sp_lines=1024, acc_lines=256)]


@pytest.mark.parametrize("cfg", STEM_CONFIGS, ids=lambda c: f"{c.dataflow}-{c.rows}x{c.cols}")
def test_analytical_mode_tracks_a_stem_on_host_im2col_rows(cfg):
    """A network's stem compiled with ``im2col_input`` (the host's aligned im2col rows):
    the analytical mode costs that schedule within the small cases' bound (measured
    -0.02 % at 4x4, -1.5 % at 8x8, +0.6 % at 16x16)."""
    layer = Layer("stem", "conv", h=20, w=20, c=3, kh=7, kw=7, n=16, stride=2, pad=3)
    compiled = compile_random(cfg, layer, np.random.default_rng(stimulus_seed()),
                              im2col_input=True)
    assert compiled.meta["im2col_input"]
    exact = CycleNPU(cfg).run(compiled.program, compiled.program_addr)
    estimate = core_estimate(cfg, layer, out_bytes=4, im2col_input=True)
    assert estimate.breakdown["useful"] + estimate.breakdown["underfill"] == \
        exact.counters["array_busy"]
    assert abs(estimate.cycles / exact.cycles - 1) <= MAX_ERROR


def test_analytical_mode_tracks_a_load_bound_band_at_2x2():
    """MobileNetV2 block14.dw's schedule at 2x2 WS (a 7x7 depthwise band of one output
    row, weights re-read every step: 2 one-beat rows and 3 two-beat instruction fetches a
    step on the 64-bit bus), here with 64 channels and a 1024-line scratchpad so the plan
    is the same one-row band.  The band path counts a step's fetches as the GEMM path does
    (``analytical._step_fetch``): measured -3.2 % (+12.8 % before; the sweep's own layer
    +14.6 % -> -2.3 %), held to the issue's 5 %."""
    cfg = NPUConfig(rows=2, cols=2, dataflow="ws", bus_bits=64, sp_lines=1024,
                    acc_lines=256)
    layer = Layer("dw_band", "conv", h=7, w=7, c=64, kh=3, kw=3, n=64, stride=1, pad=1,
                  depthwise=True)
    # one output row a band, weights re-read (9 taps x 2 channels x 2 rows = 36 bytes per
    # N-tile): 9x9 padded pixels of 64 channels in
    assert band_plan(cfg, 7, 9, 7, 64, 3, 3, 1, 64 * 9, 9 * 9 * 64, 32 * 36) == \
        BandPlan(ob=1, w_resident=False, regions=1, slots=3)
    compiled = compile_random(cfg, layer, np.random.default_rng(stimulus_seed()))
    exact = CycleNPU(cfg).run(compiled.program, compiled.program_addr)
    estimate = core_estimate(cfg, layer, out_bytes=4)
    print(f"exact {exact.cycles}, analytical {estimate.cycles} "
          f"({100 * (estimate.cycles / exact.cycles - 1):+.1f}%)")
    assert abs(estimate.cycles / exact.cycles - 1) <= 0.05
