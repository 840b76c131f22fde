"""One result type for every back end that runs a program on the core.

The functional model, the cycle-exact model, the C++ Verilator harness and the cocotb
benches all answer with :class:`NPUResult`, so callers pick a back end by name
(``testbench.backends``) and compare results field by field.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hdl.isa import ErrorCode

__all__ = ["NPUResult", "from_functional", "from_cycle"]


@dataclass
class NPUResult:
    """What a run of one program gives back.

    Attributes
    ----------
    done : bool
        The program finished without an error.
    error : ErrorCode
        ``ErrorCode.NONE`` or the fault the core stopped with.
    err_pc : int
        Instructions dispatched when the error was raised (the RTL's ERR_PC).
    counters : dict
        The core's performance counters by name (``hdl.regmap.COUNTERS``); empty for the
        functional model, which has no timing.
    dram : bytes or None
        The memory after the run (None when the back end does not compute data).
    events : dict
        Activity counts (cycle model: line reads/writes, array beats; functional: MACs).
    backend : str
        The back end's name.
    wall_s : float
        Seconds the run took (simulation only).
    meta : dict
        Back-end specifics (the harness: pause alignment, clock edges, timeout flag).
    """

    done: bool
    error: ErrorCode
    err_pc: int
    counters: dict = field(default_factory=dict)
    dram: bytes | None = None
    events: dict = field(default_factory=dict)
    backend: str = ""
    wall_s: float = 0.0
    meta: dict = field(default_factory=dict)

    @property
    def cycles(self) -> int:
        """The ``cycles`` counter (KeyError for the functional model)."""
        return self.counters["cycles"]


def from_functional(run, dram, wall_s: float = 0.0) -> NPUResult:
    """Adapt ``isa_sim.RunResult`` (``done, error, pc, counts``) and its DRAM."""
    error = ErrorCode(run.error)
    return NPUResult(done=bool(run.done) and error == ErrorCode.NONE, error=error,
                     err_pc=run.pc if error != ErrorCode.NONE else 0, counters={},
                     dram=None if dram is None else bytes(dram), events=dict(run.counts),
                     backend="functional", wall_s=wall_s)


def from_cycle(cycle, dram=None, wall_s: float = 0.0) -> NPUResult:
    """Adapt ``cycle_model.CycleResult`` (timing only); ``dram`` from the functional model."""
    return NPUResult(done=bool(cycle.done), error=ErrorCode(cycle.error), err_pc=cycle.err_pc,
                     counters=dict(cycle.counters), dram=None if dram is None else bytes(dram),
                     events=dict(cycle.events), backend="model", wall_s=wall_s)
