"""One program from a file on the cocotb core bench, its result written back to a file.

The ``icarus`` and ``cocotb-verilator`` back ends of ``testbench.backends`` use it.  Env:
``KNPU_PROGRAM`` (a pickle: ``image`` bytes, ``program_addr``, ``program_len``,
``max_cycles``, ``slverr``/``decerr`` lists of ranges, ``pauses``: None or the seeded pause
pattern of the C++ harness), ``KNPU_RESULT`` (JSON written: status, ERR_PC, counters,
simulation wall and CPU time) and ``KNPU_RESULT_DRAM`` (the memory afterwards).
"""

from __future__ import annotations

import json
import os
import pickle
import time

import cocotb

from .core_bench import CoreBench
from .harness.pauses import CHANNELS, pause_values
from .stimulus import env_config

CFG = env_config()
#: Clock edges from the call of ``CoreBench.run`` to the edge that ends START's cycle: the
#: host's five register writes (PROG_ADDR, PROG_LEN, DRAM_BASE, DRAM_SIZE, CTRL) through
#: cocotbext-axi's AxiLiteMaster, whose timing does not depend on the program or the DRAM.
#: Every run checks it from where irq rose (:meth:`SeededPauses.check`).
HOST_EDGES_TO_START = 14


class SeededPauses:
    """The C++ harness's seeded DRAM pauses (``testbench.harness.pauses``) on the cocotb
    bench's AxiRam, aligned on the edge that ends START's cycle.

    Each of the five DRAM channels gets a pause generator; cocotbext-axi takes one value
    per clock edge and logs it (``bench.pause_log``, as the bench's own random pauses do).
    Until :meth:`arm` the values are False (the DRAM is idle before START); from then the
    value at the bench's edge that ends START's cycle is the harness's value at its edge
    ``start_edge``, and so on edge by edge.

    Parameters
    ----------
    bench : CoreBench
        The bench (built without its own random pauses).
    seed, probability : int, float
        The pattern, as ``Harness.run(pause_seed=, pause_probability=)`` takes it.
    start_edge : int
        The harness's edge that ends START's cycle (``testbench.backends.START_EDGE``).
    """

    CHUNK = 1 << 14

    def __init__(self, bench: CoreBench, seed: int, probability: float, start_edge: int):
        if bench.pause_log:
            raise ValueError("the bench already pauses its channels: build it without "
                             "pause_probability to give it seeded pauses")
        self.bench, self.seed, self.probability = bench, seed, probability
        self.start_edge = start_edge
        self.start_index: int | None = None      # log index of START's edge, once armed
        self._values = {ch: [] for ch in CHANNELS}
        channels = {"ar": bench.ram.read_if.ar_channel, "r": bench.ram.read_if.r_channel,
                    "aw": bench.ram.write_if.aw_channel, "w": bench.ram.write_if.w_channel,
                    "b": bench.ram.write_if.b_channel}
        for ch, channel in channels.items():
            log = bench.pause_log.setdefault(ch, [])
            channel.set_pause_generator(self._generator(ch, log))

    def _value(self, ch: str, edge: int) -> bool:
        """The harness's pause value of ``ch`` at its run edge ``edge`` (False before 0)."""
        if edge < 0:
            return False
        values = self._values[ch]
        while edge >= len(values):
            values += pause_values(self.seed, self.probability, ch, self.CHUNK, len(values))
        return values[edge]

    def _generator(self, ch: str, log: list):
        while True:
            value = (self.start_index is not None
                     and self._value(ch, len(log) - self.start_index + self.start_edge))
            log.append(value)
            yield value

    def arm(self) -> None:
        """Call as ``CoreBench.run`` is called: START's edge is ``HOST_EDGES_TO_START``
        edges ahead."""
        lengths = {len(log) for log in self.bench.pause_log.values()}
        if len(lengths) != 1:
            raise AssertionError(f"the DRAM channels' pause generators are out of step: "
                                 f"{lengths}")
        self.start_index = lengths.pop() + HOST_EDGES_TO_START

    def check(self, status: dict) -> None:
        """Require that START's edge, located from where irq rose (the cycles counted
        before it), is the one the pattern was aligned on."""
        if "pause_marks" not in status:
            raise AssertionError("irq rose before the bench watched it: seeded pauses "
                                 "cannot be checked")
        cycles = status["counters"]["cycles"]
        found = {ch: status["pause_marks"][ch] - 1 - cycles for ch in CHANNELS}
        if set(found.values()) != {self.start_index}:
            raise AssertionError(f"seeded pauses misaligned: START's edge is at pause-log "
                                 f"index {found}, the pattern assumed {self.start_index} "
                                 f"(HOST_EDGES_TO_START is wrong for this bench)")


@cocotb.test()
async def program_from_file(dut):
    with open(os.environ["KNPU_PROGRAM"], "rb") as f:
        job = pickle.load(f)
    image = job["image"]
    bench = CoreBench(dut, CFG, len(image))
    bench.slverr, bench.decerr = list(job["slverr"]), list(job["decerr"])
    pauses = SeededPauses(bench, **job["pauses"]) if job.get("pauses") else None
    await bench.reset()
    t0, c0 = time.perf_counter(), time.process_time()
    if pauses:
        pauses.arm()
    status = await bench.run(job["program_addr"], job["program_len"], image,
                             timeout_cycles=job["max_cycles"])
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    if pauses:
        pauses.check(status)
    with open(os.environ["KNPU_RESULT_DRAM"], "wb") as f:
        f.write(bytes(bench.read_dram(0, len(image))))
    with open(os.environ["KNPU_RESULT"], "w") as f:
        json.dump({"status": {k: status[k] for k in ("busy", "done", "error", "code")},
                   "err_pc": status["err_pc"], "counters": status["counters"],
                   "wall_s": wall, "cpu_s": cpu,
                   "pause_start_index": pauses.start_index if pauses else None}, f)
