"""Run a program on the core with any back end, by name, and get one result type back.

=====================  =================================================================
``functional``         ``sim_models.isa_sim.FunctionalNPU``: results only, no timing
``model``              ``sim_models.cycle_model.CycleNPU`` (counters, error, ERR_PC) with
                       the functional model's DRAM
``verilator``          the C++ Verilator harness (``testbench.harness``): the RTL, fast
``icarus``             the cocotb core bench on Icarus Verilog
``cocotb-verilator``   the cocotb core bench on Verilator
=====================  =================================================================

Every back end answers with :class:`sim_models.results.NPUResult`.
"""

from __future__ import annotations

import json
import pickle
import tempfile
import time
from pathlib import Path

from hdl import isa
from hdl.config import NPUConfig
from sim_models.cycle_model import AxiRamTiming, CycleNPU
from sim_models.isa_sim import FunctionalNPU
from sim_models.results import NPUResult, from_cycle, from_functional

from .harness import Harness
from .harness import pauses as harness_pauses
from .rtl import BUILD, run_cocotb

__all__ = ["BACKENDS", "BackendError", "run", "program_words", "START_EDGE"]

BACKENDS = ("functional", "model", "verilator", "icarus", "cocotb-verilator")
#: The harness's host writes PROG_ADDR, PROG_LEN, DRAM_BASE, DRAM_SIZE and CTRL (2 cycles
#: each, with the B handshake); START's cycle ends at the run's edge 9 (a test checks it).
START_EDGE = 9


class BackendError(ValueError):
    """Bad input for a back end (the message names the problem)."""


def program_words(image, program_addr: int, program_len: int) -> list[int]:
    """The ``program_len`` instructions stored at ``program_addr`` in ``image``."""
    end = program_addr + program_len * isa.INSN_BYTES
    if program_addr < 0 or program_len < 0 or end > len(image):
        raise BackendError(f"program at {program_addr:#x} ({program_len} instructions) is "
                           f"outside the {len(image)}-byte image")
    return [int.from_bytes(image[a:a + isa.INSN_BYTES], "little")
            for a in range(program_addr, end, isa.INSN_BYTES)]


def _functional(cfg, mem, words, base, size):
    t0 = time.perf_counter()
    run_result = FunctionalNPU(cfg, mem, base, size).run(words)
    return from_functional(run_result, mem, time.perf_counter() - t0)


def _model(cfg, mem, words, program_addr, base, size, max_cycles, pauses, slverr, decerr):
    """The cycle model, replaying the harness's pauses (rerun with a longer pause pattern
    until it covers the whole run), and the functional model's DRAM."""
    n = 4096
    while True:
        memory = AxiRamTiming(cfg.bus_bytes, slverr=slverr, decerr=decerr)
        if pauses[1]:
            harness_pauses.replay(memory, pauses[0], pauses[1], START_EDGE, n)
        t0 = time.perf_counter()
        cycle = CycleNPU(cfg, memory).run(words, program_addr, base, size, max_cycles=max_cycles)
        wall = time.perf_counter() - t0
        if not pauses[1] or cycle.counters["cycles"] + 2 <= n:
            break
        n = 2 * cycle.counters["cycles"] + 16
    functional = _functional(cfg, bytearray(mem), words, base, size)
    same = (functional.error, functional.done) == (cycle.error, cycle.done)
    return from_cycle(cycle, functional.dram if same else None, wall)


def _cocotb(sim, cfg, mem, program_addr, program_len, base, size, max_cycles, slverr, decerr,
            pauses):
    if (base, size) != (0, len(mem)):
        raise BackendError(f"the cocotb bench's DMA window is the whole image (0, {len(mem)}), "
                           f"not ({base}, {size})")
    work = Path(tempfile.mkdtemp(prefix="program-", dir=BUILD / "backends"))
    job = {"image": bytes(mem), "program_addr": program_addr, "program_len": program_len,
           "max_cycles": max_cycles, "slverr": list(slverr), "decerr": list(decerr),
           "pauses": None if not pauses[1] else
           {"seed": pauses[0], "probability": pauses[1], "start_edge": START_EDGE}}
    (work / "job.pkl").write_bytes(pickle.dumps(job))
    env = {"KNPU_PROGRAM": str(work / "job.pkl"), "KNPU_RESULT": str(work / "result.json"),
           "KNPU_RESULT_DRAM": str(work / "dram.bin")}
    tests, failed = run_cocotb(sim, cfg, "testbench.cocotb_program", core=True, seed=0,
                               extra_env=env, test_dir=work / "sim")   # runs may overlap
    if failed or not (work / "result.json").exists():
        raise BackendError(f"{sim} cocotb bench failed ({failed} of {tests} tests); see {work}")
    r = json.loads((work / "result.json").read_text())
    status = r["status"]
    return NPUResult(done=status["done"] and not status["error"],
                     error=isa.ErrorCode(status["code"]), err_pc=r["err_pc"],
                     counters=r["counters"], dram=(work / "dram.bin").read_bytes(),
                     backend="icarus" if sim == "icarus" else "cocotb-verilator",
                     wall_s=r["wall_s"], meta={"cpu_s": r["cpu_s"],
                                               "pause_start_index": r["pause_start_index"]})


def run(cfg: NPUConfig, image, program_addr: int, program_len: int | None = None, *,
        program: list[int] | None = None, backend: str = "verilator", dram_base: int = 0,
        dram_size: int | None = None, max_cycles: int = 50_000_000, pause_seed: int = 0,
        pause_probability: float = 0.0, slverr=(), decerr=(), harness: Harness | None = None,
        waves: tuple | None = None) -> NPUResult:
    """Run the program at ``program_addr`` of ``image`` on ``backend``.

    Parameters
    ----------
    cfg : NPUConfig
        The core.
    image : bytes-like
        DRAM from address 0, program included (padded to a multiple of the bus width).
    program_addr : int
        Byte address of the program in ``image``.
    program_len : int, optional
        Its length in instructions (or give ``program``, which must equal the image's words).
    backend : str
        One of :data:`BACKENDS`.
    dram_base, dram_size : int
        The DMA window (default: the whole padded image).
    max_cycles : int
        Cycle limit (the timing back ends raise when it is reached).
    pause_seed, pause_probability :
        Seeded pauses on the DRAM's AXI channels (``testbench.harness.pauses``), the same
        pattern on every timing back end: ``verilator``, ``model`` (replayed), ``icarus``
        and ``cocotb-verilator`` (aligned on the edge that ends START's cycle).
    slverr, decerr : iterable of range
        DRAM ranges answered with SLVERR / DECERR (not for ``functional``).
    harness : Harness, optional
        A ``verilator`` instance to reuse (its state carries over, as a chip's does).
    waves : (path, first, last), optional
        ``verilator`` only: FST of the cycles ``first``..``last`` (cycle 0 = START's).

    Returns
    -------
    NPUResult
    """
    if backend not in BACKENDS:
        raise BackendError(f"unknown back end {backend!r}: must be one of {BACKENDS}")
    mem = bytearray(image)
    mem.extend(bytes(-len(mem) % cfg.bus_bytes))
    if program_len is None:
        if program is None:
            raise BackendError("give program_len or program")
        program_len = len(program)
    words = program_words(mem, program_addr, program_len)
    if program is not None and list(program) != words:
        raise BackendError(f"program differs from the {program_len} instructions at "
                           f"{program_addr:#x} in the image")
    size = len(mem) - dram_base if dram_size is None else dram_size
    if pause_probability and backend == "functional":
        raise BackendError("the functional model has no timing: no seeded pauses")
    if (slverr or decerr) and backend == "functional":
        raise BackendError("the functional model has no AXI responses: no slverr/decerr")
    if waves is not None and backend != "verilator":
        raise BackendError(f"waves are written by the verilator back end, not {backend}")
    if backend == "functional":
        return _functional(cfg, mem, words, dram_base, size)
    if backend == "model":
        return _model(cfg, mem, words, program_addr, dram_base, size, max_cycles,
                      (pause_seed, pause_probability), slverr, decerr)
    if backend == "verilator":
        own = harness is None
        h = Harness(cfg, trace=waves is not None) if own else harness
        try:
            if waves is not None:
                h.trace(*waves)
            return h.run(mem, program_addr, program_len, dram_base=dram_base, dram_size=size,
                         max_cycles=max_cycles, pause_seed=pause_seed,
                         pause_probability=pause_probability, slverr=slverr, decerr=decerr)
        finally:
            if own:
                h.close()
    (BUILD / "backends").mkdir(parents=True, exist_ok=True)
    sim = "icarus" if backend == "icarus" else "verilator"
    return _cocotb(sim, cfg, mem, program_addr, program_len, dram_base, size, max_cycles,
                   slverr, decerr, (pause_seed, pause_probability))
