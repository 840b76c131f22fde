"""Whole networks through any back end: the workload tables compiled layer by layer.

Each layer of a table (``sim_models.workloads``) is compiled with random int8 tensors
(``compiler.compile_random``) and run on its own image; the harness's DRAM must equal the
functional model's byte for byte and, when asked, its counters the cycle model's.
"""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np

from hdl.config import NPUConfig
from sim_models import workloads
from sim_models.compiler import compile_random
from sim_models.cycle_model import CycleNPU
from sim_models.isa_sim import FunctionalNPU

from .api import Harness

__all__ = ["scaled", "run_network"]


def scaled(layers, resolution: float = 1.0, channels: float = 1.0) -> list:
    """The layers with spatial sizes times ``resolution`` and channel counts times
    ``channels`` (each at least 1; a kernel never exceeds its padded input)."""
    out = []
    for layer in layers:
        if layer.kind == "gemm":
            out.append(dataclasses.replace(layer, K=max(1, math.ceil(layer.K * channels)),
                                           N=max(1, math.ceil(layer.N * channels))))
            continue
        h = max(1, math.ceil(layer.h * resolution), layer.kh - 2 * layer.pad)
        w = max(1, math.ceil(layer.w * resolution), layer.kw - 2 * layer.pad)
        c = max(1, math.ceil(layer.c * channels))
        n = c if layer.depthwise else max(1, math.ceil(layer.n * channels))
        out.append(dataclasses.replace(layer, h=h, w=w, c=c, n=n))
    return out


def run_network(cfg: NPUConfig, layers, seed: int = 0, model: bool = False,
                harness: Harness | None = None, log=None) -> list[dict]:
    """Run every layer on the harness; check DRAM against the functional model and
    (``model=True``) every counter against the cycle model.

    Parameters
    ----------
    cfg : NPUConfig
        The core.
    layers : list of workloads.Layer, or str
        The layers, or a workload table's name.
    seed : int
        Seed of the random tensors.
    model : bool
        Also run the cycle-exact model (slow: about 50 k cycles/s).
    harness : Harness, optional
        The simulated core to use (one is made otherwise); its state carries over between
        layers, and so does the cycle model's.
    log : callable, optional
        Called with each layer's record as it finishes.

    Returns
    -------
    list of dict
        Per layer: name, MACs, cycles, harness wall seconds, ``dram_equal`` (harness vs
        functional), ``golden_equal`` (output vs the compiler's golden), and with
        ``model`` ``model_equal``, ``model_diff`` (each differing counter: ``[rtl, model]``)
        and the model's seconds.
    """
    if isinstance(layers, str):
        layers = workloads.build(layers)
    rng = np.random.default_rng(seed)
    h = harness or Harness(cfg)
    cycle_model = CycleNPU(cfg) if model else None
    records = []
    for wl in layers:
        layer = compile_random(cfg, wl, rng)
        result = h.run(layer.dram, layer.program_addr, len(layer.program))
        t0 = time.perf_counter()
        functional_dram = bytearray(layer.dram)
        functional_dram.extend(bytes(len(result.dram) - len(functional_dram)))
        run_result = FunctionalNPU(cfg, functional_dram).run(layer.program)
        functional_s = time.perf_counter() - t0
        rec = {"layer": wl.name, "macs": layer.macs, "done": result.done,
               "error": result.error.name, "cycles": result.counters["cycles"],
               "wall_s": result.wall_s, "cpu_s": result.meta["cpu_s"],
               "functional_s": functional_s,
               "dram_equal": result.dram == bytes(functional_dram) and run_result.done,
               "golden_equal": bool(np.array_equal(layer.output(result.dram), layer.expected))}
        if cycle_model is not None:
            t0 = time.perf_counter()
            predicted = cycle_model.run(layer.program, layer.program_addr, 0, len(result.dram))
            rec["model_s"] = time.perf_counter() - t0
            rec["model_equal"] = (predicted.counters == result.counters
                                  and predicted.error == result.error)
            rec["model_diff"] = {name: [rtl, predicted.counters.get(name)]
                                 for name, rtl in result.counters.items()
                                 if predicted.counters.get(name) != rtl}
            if predicted.error != result.error:
                rec["model_diff"]["error"] = [result.error.name, predicted.error.name]
        records.append(rec)
        if log:
            log(rec)
    return records

