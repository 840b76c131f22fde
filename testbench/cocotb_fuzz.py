"""A batch of random legal programs (``testbench.fuzz_run``) on the cocotb core bench.

Env: ``KNPU_FUZZ_JOB`` (a pickle: ``pause_probability``, ``max_cycles`` and ``programs``, each
with ``seed``, ``image``, ``words``, ``program_addr``, ``dram_base``, ``dram_size``) and
``KNPU_FUZZ_RESULT`` (a pickle written after every program: per program the status, ERR_PC,
counters, DRAM, and the cycle model's prediction with the DRAM's pauses replayed).  The
programs run back to back on one core, with a soft reset after each fault, as on a chip;
comparing is the caller's job, so a mismatch never hides the programs after it.
"""

from __future__ import annotations

import os
import pickle
import time

import cocotb
from cocotb.triggers import ClockCycles, RisingEdge
from cocotbext.axi import AxiLiteBus

from hdl import regmap
from sim_models.cycle_model import AxiRamTiming

from . import fuzz
from .core_bench import CoreBench
from .fuzz_run import _model
from .stimulus import env_config

CFG = env_config()


@cocotb.test()
async def fuzz_batch(dut):
    """Every program of the job, results to ``KNPU_FUZZ_RESULT``."""
    with open(os.environ["KNPU_FUZZ_JOB"], "rb") as f:
        job = pickle.load(f)
    p = job["pause_probability"]
    programs = job["programs"]
    seed = programs[0]["seed"] if programs else 0
    dut._log.info("fuzz batch: %d programs, seeds %s, AXI pauses %.0f%%", len(programs),
                  [x["seed"] for x in programs], 100 * p)
    bench = CoreBench(dut, CFG, fuzz.IMAGE_BYTES, seed=seed, pause_probability=p)
    bench.slverr, bench.decerr = [fuzz.SLVERR], [fuzz.DECERR]
    await bench.reset()
    model = _model(CFG)
    starts = []
    if p:
        cocotb.start_soon(_watch_start(dut, bench, starts))
    records = []
    for prog in programs:
        t0 = time.perf_counter()
        try:
            status = await bench.run(prog["program_addr"], len(prog["words"]), prog["image"],
                                     timeout_cycles=job["max_cycles"],
                                     dram_base=prog["dram_base"], dram_size=prog["dram_size"])
        except AssertionError as e:      # a hang: the core cannot run the rest
            records.append({"exception": str(e)})
            _write(records)
            raise
        wall = time.perf_counter() - t0
        alignment = _replay(model, bench, status, starts) if p else None
        m = model.run(prog["words"], prog["program_addr"], prog["dram_base"], prog["dram_size"],
                      max_cycles=job["max_cycles"])
        records.append({"status": {k: status[k] for k in ("busy", "done", "error", "code")},
                        "err_pc": status["err_pc"], "counters": status["counters"],
                        "dram": bytes(bench.read_dram(0, fuzz.IMAGE_BYTES)), "wall_s": wall,
                        "alignment": alignment, "bins": dict(model.samples),
                        "model": {"done": m.done, "error": int(m.error), "err_pc": m.err_pc,
                                  "counters": dict(m.counters)}})
        _write(records)
        if status["error"]:
            await bench.soft_reset()
            model.soft_reset()
    await ClockCycles(dut.clk, 2)


async def _watch_start(dut, bench, starts):
    """Record, at the clock edge where the register block takes the host's write of
    CTRL.START, how many pause values each DRAM channel has been given."""
    bus = AxiLiteBus.from_prefix(dut, "s_axil_").write
    while True:
        await RisingEdge(dut.clk)
        take = (int(bus.aw.awvalid.value) and int(bus.w.wvalid.value)
                and not int(bus.b.bvalid.value))
        if take and int(bus.aw.awaddr.value) == regmap.CTRL \
                and int(bus.w.wdata.value) & regmap.CTRL_START:
            starts.append({ch: len(bench.pause_log[ch]) for ch in AxiRamTiming.CHANNELS})


#: Pause values given between the edge that takes the START write and the edge that ends
#: START's cycle (measured: for every program that finishes, the alignment from START equals
#: the one from irq that ``cocotb_core.replay_pauses`` uses).
START_OFFSET = 0


def _replay(model, bench, status, starts) -> dict:
    """Give the model's DRAM this run's pauses, aligned at START's cycle; also the
    alignment located from irq (as ``cocotb_core.replay_pauses`` does), for comparison."""
    first = {ch: starts[-1][ch] + START_OFFSET for ch in AxiRamTiming.CHANNELS}
    model.mem.set_pauses({ch: bench.pause_log[ch] for ch in AxiRamTiming.CHANNELS}, first)
    cycles = status["counters"]["cycles"]
    from_irq = {ch: status["pause_marks"][ch] - 1 - cycles for ch in AxiRamTiming.CHANNELS} \
        if "pause_marks" in status else None
    return {"from_start": first, "from_irq": from_irq}


def _write(records):
    path = os.environ["KNPU_FUZZ_RESULT"]
    with open(path + ".tmp", "wb") as f:
        pickle.dump(records, f)
    os.replace(path + ".tmp", path)
