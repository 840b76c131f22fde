"""The end-to-end workloads of the core regression, compiled for a configuration."""

from __future__ import annotations

import numpy as np

from hdl.config import NPUConfig
from sim_models.compiler import (Requant, compile_conv2d, compile_conv_chain, compile_gemm,
                                 compile_gemm_chain)

__all__ = ["regression_layers", "demo_layers"]


def regression_layers(cfg: NPUConfig, seed: int) -> list:
    """Awkward GEMMs, convolutions, per-channel requantization, activations and
    accumulate-into-bias, all with random int8 data from ``seed``."""
    rng = np.random.default_rng(seed)
    i8 = lambda *shape: rng.integers(-128, 128, shape)  # noqa: E731
    layers = [
        compile_gemm(cfg, i8(1, 1), i8(1, 1), name="gemm_1x1x1_int32"),
        compile_gemm(cfg, i8(37, 53), i8(53, 29), name="gemm_37x53x29_perchannel_relu",
                     requant=Requant(scale=rng.uniform(2e-4, 2e-3, 29), zero_point=-3,
                                     activation="relu", bias=rng.integers(-5000, 5000, 29))),
        compile_gemm(cfg, i8(19, 23), i8(23, 11), name="gemm_19x23x11_acc_into_bias_int32",
                     acc_bias=rng.integers(-(1 << 31), (1 << 31) - 1, 11)),
        compile_gemm(cfg, i8(21, 30), i8(30, 13), name="gemm_21x30x13_onnxruntime_perchannel",
                     requant=Requant(scale=rng.uniform(1e-3, 8e-3, 13).astype(np.float32),
                                     zero_point=5, clamp=(5, 127), rounding="onnxruntime",
                                     bias=rng.integers(-3000, 3000, 13))),
    ]
    x = i8(9, 9, 5)
    layers += [
        compile_conv2d(cfg, x, i8(3, 3, 5, 6), 1, 1, name="conv3x3_s1_p1_relu6",
                       requant=Requant(scale=0.0015, zero_point=-20, activation="relu6")),
        compile_conv2d(cfg, x, i8(3, 3, 5, 6), 2, 1, name="conv3x3_s2_p1",
                       requant=Requant(scale=0.001, bias=rng.integers(-3000, 3000, 6))),
        compile_conv2d(cfg, x, i8(1, 1, 5, 7), 1, 0, name="conv1x1_int32"),
        compile_conv2d(cfg, x, i8(3, 3, 5), 1, 1, depthwise=True, name="depthwise3x3_relu",
                       requant=Requant(scale=rng.uniform(0.005, 0.02, 5), activation="relu")),
        # Two input channels: a window row's 3 taps x 2 channels packed into K-tiles.
        compile_conv2d(cfg, i8(7, 7, 2), i8(3, 3, 2, 5), 1, 1, name="conv3x3_cin2_packed_taps",
                       requant=Requant(scale=0.003, activation="relu")),
        # Eight input channels, stride 1: im2col rows built on chip from input bands (WS).
        compile_conv2d(cfg, i8(6, 6, 8), i8(3, 3, 8, 5), 1, 1, name="conv3x3_on_chip_im2col",
                       requant=Requant(scale=rng.uniform(2e-4, 1e-3, 5))),
        # A network's stem: the host writes the input as aligned im2col rows (WS).  (Weights
        # streamed through three slots and bands rotating over regions: demo_layers'
        # gemm_64x64x64 and conv3x3_16x16x8_to_16, on the RTL in the notebook's spot check.)
        compile_conv2d(cfg, i8(8, 8, 3), i8(7, 7, 3, 4), 2, 3, name="conv7x7_s2_im2col_input",
                       requant=Requant(scale=0.001, activation="relu"), im2col_input=True),
    ]
    if cfg.dataflow == "ws":
        # Three GEMMs whose int8 intermediates stay in the scratchpad (STORE to_sp): the
        # first per-channel, the last raw int32.
        layers.append(compile_gemm_chain(
            cfg, i8(45, 19), [i8(19, 22), i8(22, 9), i8(9, 7)],
            [Requant(scale=rng.uniform(1e-3, 4e-3, 22), zero_point=3, activation="relu"),
             Requant(scale=0.004, zero_point=-2), None], name="gemm_chain_on_chip",
            on_chip=True))
        # A bottleneck's 3x3 (on-chip im2col) and a depthwise stride-2 conv, each storing
        # into the scratchpad for the 1x1 conv after it.
        layers.append(compile_conv_chain(
            cfg, i8(7, 7, 8), i8(3, 3, 8, 6), i8(6, 9), 1, 1, name="conv3x3_to_1x1_on_chip",
            requants=(Requant(scale=rng.uniform(1e-3, 3e-3, 6), activation="relu"),
                      Requant(scale=0.01, zero_point=4)), on_chip=True))
        layers.append(compile_conv_chain(
            cfg, i8(9, 9, 5), i8(3, 3, 5), i8(5, 7), 2, 1, depthwise=True,
            name="depthwise_s2_to_1x1_on_chip",
            requants=(Requant(scale=0.01, zero_point=-3, activation="relu6"), None),
            on_chip=True))
        # A GEMM in passes over K where that pays (two at 4x4 with 1024 lines: int32
        # partial sums stored raw and LOAD_ACC'd back), and accumulate-into-bias over
        # three M-blocks with A and weights resident (a tile's first step loads nothing:
        # its COMPUTE waits for the LOAD_ACC's token).
        layers.append(compile_gemm(cfg, i8(16, 272), i8(272, 6), name="gemm_16x272x6_k_passes",
                                   requant=Requant(scale=rng.uniform(2e-4, 1e-3, 6))))
        layers.append(compile_gemm(cfg, i8(140, 8), i8(8, 8), name="gemm_140x8x8_bias_resident",
                                   acc_bias=rng.integers(-(1 << 20), 1 << 20, 8)))
        # Weights streamed in batches (A resident: every N-tile after the first LOADs up to
        # W_LOAD_TILES consecutive K-tiles into one slot; at 4x4 with 1024 lines, 5 a tile).
        layers.append(compile_gemm(cfg, i8(8, 160), i8(160, 48), name="gemm_8x160x48_w_batches",
                                   requant=Requant(scale=rng.uniform(2e-4, 1e-3, 48))))
    return layers


def demo_layers(cfg: NPUConfig, seed: int) -> list:
    """``make sim``'s workload: a small network's worth of layers."""
    rng = np.random.default_rng(seed)
    i8 = lambda *shape: rng.integers(-128, 128, shape)  # noqa: E731
    x = i8(16, 16, 8)
    return [
        compile_gemm(cfg, i8(64, 64), i8(64, 64), name="gemm_64x64x64",
                     requant=Requant(scale=1 / 1024, activation="relu")),
        compile_conv2d(cfg, x, i8(3, 3, 8, 16), 1, 1, name="conv3x3_16x16x8_to_16",
                       requant=Requant(scale=rng.uniform(1e-4, 1e-3, 16), activation="relu",
                                       bias=rng.integers(-999, 999, 16))),
        compile_conv2d(cfg, x, i8(3, 3, 8), 2, 1, depthwise=True, name="depthwise3x3_s2",
                       requant=Requant(scale=0.01, zero_point=-10, activation="relu6")),
        compile_conv2d(cfg, x, i8(1, 1, 8, 32), 1, 0, name="pointwise_8_to_32",
                       requant=Requant(scale=0.002)),
    ]
