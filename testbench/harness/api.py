"""Python side of the C++ Verilator harness: load the library with ctypes, run programs.

>>> h = Harness(cfg)                       # builds or reuses build/harness/<core>/fast_t1
>>> result = h.run(layer.dram, layer.program_addr, len(layer.program))
>>> result.counters["cycles"], result.error, bytes(result.dram) == expected_image
"""

from __future__ import annotations

import ctypes
import time
from pathlib import Path

from hdl import regmap
from hdl.config import NPUConfig
from hdl.isa import ErrorCode
from sim_models.results import NPUResult

from .build import build_harness
from .pauses import threshold

__all__ = ["Harness", "HarnessError", "HarnessTimeout", "ConfigMismatch", "load_library",
           "config_of_library"]

_COUNTER_NAMES = tuple(regmap.COUNTERS)


class HarnessError(RuntimeError):
    """Bad input to the harness (the message names the problem)."""


class ConfigMismatch(HarnessError):
    """The library was built for another configuration than the one asked for."""


class HarnessTimeout(HarnessError):
    """No irq within the cycle limit; ``result`` holds the status and counters so far."""

    def __init__(self, message: str, result: NPUResult):
        super().__init__(message)
        self.result = result


class _Result(ctypes.Structure):
    _fields_ = [("status", ctypes.c_uint32), ("err_pc", ctypes.c_uint32),
                ("counters", ctypes.c_uint64 * len(_COUNTER_NAMES)),
                ("pause_first", ctypes.c_int64), ("start_edge", ctypes.c_int64),
                ("edges", ctypes.c_uint64),
                ("timed_out", ctypes.c_int32), ("irq_seen", ctypes.c_int32)]


_LIBS: dict[Path, ctypes.CDLL] = {}


def load_library(path: Path) -> ctypes.CDLL:
    """The harness library at ``path`` with its function signatures declared (loaded once)."""
    path = Path(path).resolve()
    if path in _LIBS:
        return _LIBS[path]
    lib = ctypes.CDLL(str(path))
    p, u32, u64, i64 = ctypes.c_void_p, ctypes.c_uint32, ctypes.c_uint64, ctypes.c_int64
    lib.knpu_config.restype = ctypes.c_char_p
    lib.knpu_traced.restype = ctypes.c_int
    lib.knpu_ncounters.restype = ctypes.c_int
    lib.knpu_open.argtypes, lib.knpu_open.restype = [ctypes.c_int], p
    lib.knpu_close.argtypes = [p]
    lib.knpu_reset.argtypes = [p]
    lib.knpu_soft_reset.argtypes = [p]
    lib.knpu_read_reg.argtypes, lib.knpu_read_reg.restype = [p, u32], u32
    lib.knpu_trace_open.argtypes = [p, ctypes.c_char_p, i64, i64]
    lib.knpu_trace_open.restype = ctypes.c_int
    ranges = ctypes.POINTER(u64)
    lib.knpu_run.argtypes = [p, ctypes.c_void_p, u64, u32, u32, u32, u32, u64, u64, u64,
                             ranges, ctypes.c_int, ranges, ctypes.c_int, ctypes.POINTER(_Result)]
    lib.knpu_run.restype = ctypes.c_int
    if lib.knpu_ncounters() != len(_COUNTER_NAMES):
        raise ConfigMismatch(f"{path} reads {lib.knpu_ncounters()} counters, the register map "
                             f"has {len(_COUNTER_NAMES)}: rebuild it")
    _LIBS[path] = lib
    return lib


def _ranges(rs) -> tuple:
    flat = []
    for r in rs:
        r = range(r[0], r[1]) if isinstance(r, tuple) else r
        if not isinstance(r, range) or r.step != 1:
            raise HarnessError(f"fault range {r!r} must be a range(lo, hi) or (lo, hi)")
        flat += [r.start, r.stop]
    return (ctypes.c_uint64 * max(len(flat), 1))(*flat), len(flat) // 2


class Harness:
    """The whole core under Verilator, clocked by C++; one instance is one simulated chip.

    Parameters
    ----------
    cfg : NPUConfig
        The configuration; the library is built for it (or reused) unless ``library`` is given.
    library : Path, optional
        A prebuilt harness library; refused (:class:`ConfigMismatch`) when it was built for
        another configuration.
    trace : bool
        Use the FST-writing variant (see :meth:`trace`).
    threads : int, optional
        Verilator threads of the model (the build's default when omitted).
    """

    def __init__(self, cfg: NPUConfig, library: Path | None = None, trace: bool = False,
                 threads: int | None = None):
        if not isinstance(cfg, NPUConfig):
            raise HarnessError(f"cfg must be an NPUConfig, not {type(cfg).__name__}")
        self.cfg = cfg
        self.build_s = 0.0
        if library is None:
            library, self.build_s = build_harness(cfg, trace=trace, threads=threads)
        self.library = Path(library)
        self.lib = load_library(self.library)
        built = NPUConfig.from_json(self.lib.knpu_config().decode())
        if built != cfg:
            raise ConfigMismatch(f"harness library {self.library} was built for "
                                 f"{built.core_name}, not {cfg.core_name}")
        if trace and not self.lib.knpu_traced():
            raise HarnessError(f"{self.library} has no FST writer (build it with trace=True)")
        self._sim = self.lib.knpu_open(0)
        hwinfo = self.lib.knpu_read_reg(self._sim, regmap.HWINFO)
        if hwinfo != regmap.hwinfo(cfg):
            raise ConfigMismatch(f"harness library {self.library}: HWINFO {hwinfo:#x} is not "
                                 f"{cfg.core_name}'s ({regmap.hwinfo(cfg):#x})")
        self._needs_reset = False

    def close(self) -> None:
        """Free the simulated core (and flush an open waveform)."""
        if self._sim:
            self.lib.knpu_close(self._sim)
            self._sim = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:   # interpreter shutdown
            pass

    def reset(self) -> None:
        """Pulse the core's reset (and clear the DRAM's queues)."""
        self.lib.knpu_reset(self._sim)
        self._needs_reset = False

    def soft_reset(self) -> None:
        """CTRL.SOFT_RESET, as after a fault (engines, queues and tokens restart)."""
        self.lib.knpu_soft_reset(self._sim)

    def trace(self, path: Path, first: int = 0, last: int = 1 << 62) -> Path:
        """Write the cycles ``first``..``last`` (cycle 0 = START's, as the counters count) of
        the following runs to the FST file ``path``; closed by :meth:`close`."""
        if not self.lib.knpu_traced():
            raise HarnessError("this harness was built without waveforms: Harness(cfg, trace=True)")
        if first < 0 or last < first:
            raise HarnessError(f"bad waveform window {first}..{last}")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if self.lib.knpu_trace_open(self._sim, str(path).encode(), first, last):
            raise HarnessError(f"cannot open waveform file {path}")
        return path

    def run(self, image, program_addr: int, program_len: int, *, dram_base: int = 0,
            dram_size: int | None = None, max_cycles: int = 50_000_000, pause_seed: int = 0,
            pause_probability: float = 0.0, slverr=(), decerr=(),
            raise_on_timeout: bool = True) -> NPUResult:
        """Run one program and return its :class:`~sim_models.results.NPUResult`.

        Parameters
        ----------
        image : bytes-like
            The DRAM contents from address 0 (program included); it is copied, padded to
            a multiple of the bus width, and the result's ``dram`` is the memory afterwards.
        program_addr, program_len : int
            Byte address and length in instructions of the program.
        dram_base, dram_size : int
            The window the DMA may touch (default: the whole image).  Accesses the core
            makes beyond the image wrap around it, as the cocotb bench's AxiRam does.
        max_cycles : int
            Cycle limit from START; beyond it :class:`HarnessTimeout` is raised (its
            ``result`` holds the status and counters read then).
        pause_seed, pause_probability : int, float
            Seeded pauses on every DRAM channel (``pauses.pause_values`` reproduces them).
        slverr, decerr : iterable of range
            Address ranges the DRAM answers with SLVERR / DECERR.
        raise_on_timeout : bool
            False: return the result at the cycle limit (``meta["timed_out"]`` set).
        """
        if self._sim is None:
            raise HarnessError("the harness is closed")
        mem = bytearray(image)
        B = self.cfg.bus_bytes
        if len(mem) == 0:
            raise HarnessError("empty DRAM image")
        mem.extend(bytes(-len(mem) % B))
        dram_size = len(mem) - dram_base if dram_size is None else dram_size
        for name, value in (("program_addr", program_addr), ("program_len", program_len),
                            ("dram_base", dram_base), ("dram_size", dram_size)):
            if not isinstance(value, int) or not 0 <= value < 1 << 32:
                raise HarnessError(f"{name}={value!r} is not a 32-bit unsigned integer")
        if max_cycles <= 0:
            raise HarnessError(f"max_cycles={max_cycles} must be positive")
        if self._needs_reset:
            self.reset()
        s_ranges, n_s = _ranges(slverr)
        d_ranges, n_d = _ranges(decerr)
        buf = (ctypes.c_uint8 * len(mem)).from_buffer(mem)
        out = _Result()
        # CPU time of the whole process: with --threads > 1 the model also runs on
        # Verilator's worker threads (the calling thread waits inside knpu_run).
        t0, c0 = time.perf_counter(), time.process_time()
        rc = self.lib.knpu_run(self._sim, buf, len(mem), program_addr, program_len, dram_base,
                               dram_size, max_cycles, pause_seed & ((1 << 64) - 1),
                               threshold(pause_probability), s_ranges, n_s, d_ranges, n_d,
                               ctypes.byref(out))
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        del buf
        status = regmap.decode_status(out.status)
        result = NPUResult(done=status["done"] and not status["error"],
                           error=ErrorCode(status["code"]), err_pc=out.err_pc,
                           counters=dict(zip(_COUNTER_NAMES, out.counters)), dram=bytes(mem),
                           backend="verilator", wall_s=wall,
                           meta={"cpu_s": cpu, "pause_first": out.pause_first,
                                 "start_edge": out.start_edge,
                                 "edges": out.edges,
                                 "status": out.status})
        if rc:
            self._needs_reset = True     # the core is still busy: reset before the next run
            result.meta["timed_out"] = True
            if not raise_on_timeout:
                return result
            raise HarnessTimeout(f"{self.cfg.core_name}: no irq within {max_cycles} cycles "
                                 f"(status {status}, counters so far {result.counters})",
                                 result)
        return result


def config_of_library(path: Path) -> NPUConfig:
    """The configuration a harness library was built for (its embedded string)."""
    return NPUConfig.from_json(load_library(path).knpu_config().decode())

