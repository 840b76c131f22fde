"""Analytical cycle models for fast sweeps.

``scalesim_*``: SCALE-Sim 3.0.0's compute-cycle model, reproduced exactly (its "Total Cycles"
column), so our numbers can be put side by side with the tool architects already use:

* the layer becomes operand matrices; by dataflow, the spatial rows/columns and the temporal
  extent are  ws: (S_r, S_c, T) = (window, filters, ofmap pixels),
  os: (ofmap pixels, filters, window),  is: (window, ofmap pixels, filters);
* folds = ceil(S_r / R) * ceil(S_c / C); a fold costs 2R + C + T - 2 cycles (ws, is) or
  T + R + C - 2 (os); the reported total is folds * fold - 1;
* a depthwise layer is split into one single-channel layer per channel.
"""

from __future__ import annotations

import math

from .workloads import Layer

__all__ = ["SCALESIM_DATAFLOWS", "scalesim_spatiotemporal", "scalesim_layer_cycles",
           "scalesim_cycles"]

SCALESIM_DATAFLOWS = ("ws", "os", "is")


def _scalesim_units(layer: Layer):
    """The (ofmap pixels, window, filters, repeats) SCALE-Sim sees for a layer."""
    if layer.kind == "gemm":       # SCALE-Sim's GEMM mode: ifmap M x K, filter K x N
        return layer.M, layer.K, layer.N, 1
    ho, wo = layer.out_hw
    if layer.depthwise:
        return ho * wo, layer.kh * layer.kw, 1, layer.c
    return ho * wo, layer.kh * layer.kw * layer.c, layer.n, 1


def scalesim_spatiotemporal(layer: Layer, dataflow: str) -> tuple[int, int, int]:
    """SCALE-Sim's (S_r, S_c, T) for one (per-channel, if depthwise) layer."""
    ofmap, window, filters, _ = _scalesim_units(layer)
    if dataflow == "ws":
        return window, filters, ofmap
    if dataflow == "os":
        return ofmap, filters, window
    if dataflow == "is":
        return window, ofmap, filters
    raise ValueError(f"dataflow {dataflow!r} is not one of {SCALESIM_DATAFLOWS}")


def scalesim_layer_cycles(layer: Layer, rows: int, cols: int, dataflow: str) -> list[int]:
    """SCALE-Sim's compute cycles for the layer (one entry per split layer)."""
    if rows < 1 or cols < 1:
        raise ValueError(f"array must be at least 1x1, got {rows}x{cols}")
    s_r, s_c, t = scalesim_spatiotemporal(layer, dataflow)
    folds = math.ceil(s_r / rows) * math.ceil(s_c / cols)
    fold = (t + rows + cols - 2) if dataflow == "os" else (2 * rows + cols + t - 2)
    repeats = _scalesim_units(layer)[3]
    return [folds * fold - 1] * repeats


def scalesim_cycles(layers: list[Layer], rows: int, cols: int, dataflow: str) -> int:
    return sum(sum(scalesim_layer_cycles(l, rows, cols, dataflow)) for l in layers)
