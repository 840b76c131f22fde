"""One program from a file on the cocotb core bench, its result written back to a file.

The ``icarus`` and ``cocotb-verilator`` back ends of ``testbench.backends`` use it.  Env:
``KNPU_PROGRAM`` (a pickle: ``image`` bytes, ``program_addr``, ``program_len``,
``max_cycles``, ``slverr``/``decerr`` lists of ranges), ``KNPU_RESULT`` (JSON written: status,
ERR_PC, counters, simulation wall time) and ``KNPU_RESULT_DRAM`` (the memory afterwards).
"""

from __future__ import annotations

import json
import os
import pickle
import time

import cocotb

from .core_bench import CoreBench
from .stimulus import env_config

CFG = env_config()


@cocotb.test()
async def program_from_file(dut):
    with open(os.environ["KNPU_PROGRAM"], "rb") as f:
        job = pickle.load(f)
    image = job["image"]
    bench = CoreBench(dut, CFG, len(image))
    bench.slverr, bench.decerr = list(job["slverr"]), list(job["decerr"])
    await bench.reset()
    t0 = time.perf_counter()
    status = await bench.run(job["program_addr"], job["program_len"], image,
                             timeout_cycles=job["max_cycles"])
    wall = time.perf_counter() - t0
    with open(os.environ["KNPU_RESULT_DRAM"], "wb") as f:
        f.write(bytes(bench.read_dram(0, len(image))))
    with open(os.environ["KNPU_RESULT"], "w") as f:
        json.dump({"status": {k: status[k] for k in ("busy", "done", "error", "code")},
                   "err_pc": status["err_pc"], "counters": status["counters"],
                   "wall_s": wall}, f)
