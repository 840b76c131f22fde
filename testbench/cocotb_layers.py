"""Compiled layers from a file (``KNPU_LAYERS``, a pickle of ``compiler.Layer``) on the core,
each checked against the golden model and the cycle model; used by scripts that put the RTL
beside other tools (``scripts/scalesim_compare.py --rtl-max-macs``)."""

import os
import pickle

import cocotb

from .cocotb_core import run_layers


@cocotb.test()
async def layers_from_file(dut):
    with open(os.environ["KNPU_LAYERS"], "rb") as f:
        layers = pickle.load(f)
    await run_layers(dut, 0.0, lambda cfg, seed: layers)
