"""``make sim``: the demo workload (core_layers.demo_layers) on the core, reported per layer."""

import cocotb

from .cocotb_core import run_layers
from .core_layers import demo_layers


@cocotb.test()
async def demo_workload(dut):
    await run_layers(dut, 0.0, demo_layers)
