"""The compiler and the functional model (pure Python, no simulator)."""

from pathlib import Path

import numpy as np
import pytest

from hdl import isa
from hdl.config import NPUConfig
from hdl.isa import ErrorCode, Opcode
from sim_models.compiler import (Requant, compile_conv2d, compile_gemm, conv2d_reference,
                                 im2col)
from sim_models.isa_sim import FunctionalNPU

from .stimulus import stimulus_seed

SEED = stimulus_seed(99)
REPO = Path(__file__).resolve().parent.parent
CONFIGS = [NPUConfig(rows=4, cols=4, dataflow="ws", sp_lines=512, acc_lines=64),
           NPUConfig(rows=3, cols=5, dataflow="ws", sp_lines=256, acc_lines=32),
           NPUConfig(rows=4, cols=4, dataflow="os", sp_lines=512, acc_lines=64),
           NPUConfig(rows=2, cols=6, dataflow="os", sp_lines=64, acc_lines=16)]
IDS = [f"{c.dataflow}-{c.rows}x{c.cols}-sp{c.sp_lines}" for c in CONFIGS]


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
@pytest.mark.parametrize("shape", [(1, 1, 1), (37, 53, 29), (5, 70, 3), (64, 8, 17)])
def test_gemm_programs_compute_the_golden_result(cfg, shape):
    rng = np.random.default_rng(SEED + sum(shape))
    M, K, N = shape
    a, b = rng.integers(-128, 128, (M, K)), rng.integers(-128, 128, (K, N))
    for requant in (None, Requant(scale=rng.uniform(1e-4, 1e-2, N), zero_point=4,
                                  activation="relu", bias=rng.integers(-999, 999, N))):
        layer = compile_gemm(cfg, a, b, requant)
        result, out = layer.run_functional()
        assert result.done and result.error == ErrorCode.NONE
        assert np.array_equal(out, layer.expected)
    layer = compile_gemm(cfg, a, b, acc_bias=rng.integers(-(1 << 31), 1 << 31, N))
    result, out = layer.run_functional()
    assert np.array_equal(out, layer.expected)


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
@pytest.mark.parametrize("kernel,stride,padding,depthwise", [
    (3, 1, 1, False), (3, 2, 1, False), (1, 1, 0, False), (3, 1, 1, True), (5, 2, 2, True),
    (2, 1, 0, False)])
def test_conv_programs_compute_the_golden_result(cfg, kernel, stride, padding, depthwise):
    rng = np.random.default_rng(SEED + kernel * 7 + stride)
    x = rng.integers(-128, 128, (7, 8, 6))
    w = rng.integers(-128, 128, (kernel, kernel, 6) if depthwise else (kernel, kernel, 6, 5))
    layer = compile_conv2d(cfg, x, w, stride, padding, depthwise,
                           requant=Requant(scale=0.003, zero_point=-9, activation="relu6"))
    result, out = layer.run_functional()
    assert result.done and np.array_equal(out, layer.expected)


def test_im2col_gemm_equals_direct_convolution():
    rng = np.random.default_rng(SEED)
    x, w = rng.integers(-128, 128, (6, 5, 3)), rng.integers(-128, 128, (3, 3, 3, 4))
    cols, (ho, wo) = im2col(x, 3, 3, 2, 1)
    assert np.array_equal((cols @ w.reshape(-1, 4)).reshape(ho, wo, 4),
                          conv2d_reference(x, w, 2, 1))


@pytest.mark.parametrize("call,match", [
    (lambda c: compile_gemm(c, np.zeros((2, 3), int), np.zeros((4, 2), int)), "inner dim"),
    (lambda c: compile_gemm(c, np.zeros((2, 3)), np.zeros((3, 2), int)), "integers"),
    (lambda c: compile_gemm(c, np.full((2, 3), 200), np.zeros((3, 2), int)), "outside int8"),
    (lambda c: compile_gemm(c, np.zeros((0, 3), int), np.zeros((3, 2), int)), "empty"),
    (lambda c: compile_gemm(c, np.zeros((2, 3), int), np.zeros((3, 2), int),
                            Requant(scale=0.1, bias=np.zeros(3, int))), "bias has shape"),
    (lambda c: compile_gemm(c, np.zeros((2, 3), int), np.zeros((3, 2), int),
                            Requant(scale=[0.1, 0.2], activation="relu6")), "relu6"),
    (lambda c: compile_gemm(c, np.zeros((2, 3), int), np.zeros((3, 2), int),
                            Requant(scale=0.0)), "positive"),
    (lambda c: compile_gemm(c, np.zeros((2, 3), int), np.zeros((3, 2), int),
                            Requant(bias=np.zeros(2, int))), "needs a scale"),
    (lambda c: compile_gemm(c, np.zeros((2, 3), int), np.zeros((3, 2), int),
                            Requant(scale=0.1, rounding="onnxruntime")), "np.float32"),
    (lambda c: compile_gemm(c, np.zeros((2, 3), int), np.zeros((3, 2), int),
                            Requant(scale=np.float32(2.0 ** -120), rounding="onnxruntime")),
     "out of range"),
    (lambda c: compile_gemm(c, np.zeros((2, 3), int), np.zeros((3, 2), int),
                            Requant(scale=0.1, rounding="banker")), "rounding"),
    (lambda c: compile_gemm(c, np.zeros((2, 3), int), np.zeros((3, 2), int),
                            Requant(scale=0.1, clamp=(5, -5))), "clamp"),
    (lambda c: compile_gemm(c, np.zeros((2, 3), int), np.zeros((3, 2), int),
                            Requant(scale=0.1, bias=np.zeros(2))), "integers"),
    (lambda c: compile_conv2d(c, np.zeros((4, 4, 3), int), np.zeros((3, 3, 2, 1), int)),
     "input channels"),
    (lambda c: compile_conv2d(c, np.zeros((4, 4, 3), int), np.zeros((3, 3, 3, 1), int),
                              stride=0), "stride"),
    (lambda c: compile_conv2d(c, np.zeros((2, 2, 3), int), np.zeros((5, 5, 3, 1), int)),
     "larger than the padded input"),
])
def test_bad_layers_are_refused_before_anything_runs(call, match):
    with pytest.raises(ValueError, match=match):
        call(CONFIGS[0])


def test_functional_model_faults():
    cfg = CONFIGS[0]
    dram = bytearray(4096)
    npu = FunctionalNPU(cfg, dram)
    assert npu.run([0xF]).error == ErrorCode.ILLEGAL_OPCODE
    load = isa.encode(Opcode.LOAD, sp_addr=0, nrows=1, ncols=4, dram_addr=4094, dram_stride=0)
    assert npu.run([load]).error == ErrorCode.DMA_RANGE
    assert npu.run([isa.encode(Opcode.COMPUTE, nrows=1)]).error == ErrorCode.BAD_OPERAND
    pre = isa.encode(Opcode.PRELOAD, nrows=1)
    assert npu.run([pre, pre, pre]).error == ErrorCode.BAD_OPERAND  # two banks only


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_onnxruntime_rounding_runs_on_the_core_model(cfg):
    """Per-channel float32 scales, a zero point, a fused clamp and a bias in the onnxruntime
    mode: the functional model (which decodes the CONFIG words) gives the golden formula's
    output; on exact halves the two modes round differently, as they must."""
    from sim_models import golden

    rng = np.random.default_rng(SEED)
    a, b = rng.integers(-128, 128, (40, 37)), rng.integers(-128, 128, (37, 11))
    scale = rng.uniform(1e-3, 6e-3, 11).astype(np.float32)
    bias = rng.integers(-4000, 4000, 11)
    layer = compile_gemm(cfg, a, b, Requant(scale=scale, zero_point=-7, clamp=(-7, 120),
                                            bias=bias, rounding="onnxruntime"))
    result, out = layer.run_functional()
    want = golden.requantize_ort(golden.gemm(a, b), scale, -7, (-7, 120), bias)
    assert result.done and np.array_equal(out, want) and np.array_equal(layer.expected, want)
    # Exact halves: onnxruntime rounds them to even; TFLite's SRDHM (gemmlowp) rounds up.
    halves = np.array([[1], [3], [5], [-1], [-3]])
    for rounding, scale, expected in (("onnxruntime", np.float32(0.5), [0, 2, 2, 0, -2]),
                                      ("tflite", 0.5, [1, 2, 3, 0, -1])):
        layer = compile_gemm(cfg, halves, np.ones((1, 1), int),
                             Requant(scale=scale, rounding=rounding))
        result, out = layer.run_functional()
        assert result.done and out[:, 0].tolist() == expected, rounding
