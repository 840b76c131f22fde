"""Functional model of the NPU core: runs a program on a DRAM image, instruction by
instruction, with the golden model's arithmetic.

It is the reference the RTL's memory contents are compared with, and the place where the
meaning of each instruction is written down in Python.  Dependency tokens only order the
hardware's overlapped execution; a correct program means the same thing executed in order,
which is what this model does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hdl import isa
from hdl.config import NPUConfig
from hdl.isa import ErrorCode, Opcode

from . import golden

__all__ = ["FunctionalNPU", "RunResult"]


@dataclass
class RunResult:
    done: bool
    error: ErrorCode
    pc: int                      # instructions executed (the faulting one not counted)
    counts: dict = field(default_factory=dict)


class _Fault(Exception):
    def __init__(self, code: ErrorCode):
        self.code = code


class FunctionalNPU:
    """``dram`` is the whole memory as a bytearray; ``base``/``size`` the DMA window."""

    def __init__(self, cfg: NPUConfig, dram: bytearray, base: int = 0, size: int | None = None):
        self.cfg = cfg
        self.dram = dram
        self.base, self.size = base, len(dram) - base if size is None else size
        self.sp = np.zeros((cfg.sp_lines, cfg.sp_width), np.int64)
        self.acc = np.zeros((cfg.acc_lines, cfg.cols), np.int64)
        self.preloaded: list[np.ndarray] = []   # WS weight tiles loaded, not yet used
        self.mult = np.full(cfg.cols, 1 << 30, np.int64)
        self.shift = np.ones(cfg.cols, np.int64)
        self.bias = np.zeros(cfg.cols, np.int64)
        self.zero_point, self.clamp = 0, (-128, 127)
        self.rounding = 0                        # 0 TFLite, 1 onnxruntime, 2 add (CONFIG)
        self.add_inner = (0, 0, 0)               # the add mode's shared (mb|sb<<24, mf, sf)

    # -- memory helpers ------------------------------------------------------------------
    def _check_dram(self, addr: int, nbytes: int):
        if not (nbytes > 0 and addr >= self.base and addr + nbytes <= self.base + self.size
                and addr + nbytes <= len(self.dram)):
            raise _Fault(ErrorCode.DMA_RANGE)

    def _read(self, addr, nbytes, dtype):
        self._check_dram(addr, nbytes)
        return np.frombuffer(bytes(self.dram[addr:addr + nbytes]), dtype=dtype).astype(np.int64)

    def _write(self, addr, values, dtype):
        raw = np.asarray(values).astype(dtype).tobytes()
        self._check_dram(addr, len(raw))
        self.dram[addr:addr + len(raw)] = raw

    @staticmethod
    def _need(cond: bool):
        if not cond:
            raise _Fault(ErrorCode.BAD_OPERAND)

    # -- execution -------------------------------------------------------------------------
    def run(self, program: list[int], max_insns: int = 10_000_000) -> RunResult:
        counts = {"macs": 0, "insns": 0}
        for pc, word in enumerate(program[:max_insns]):
            try:
                insn = isa.decode(word)
            except isa.IsaError:
                return RunResult(False, ErrorCode.ILLEGAL_OPCODE, pc, counts)
            if insn["op"] == Opcode.HALT:
                return RunResult(True, ErrorCode.NONE, pc, counts)
            try:
                self._execute(insn, counts)
            except _Fault as fault:
                return RunResult(False, fault.code, pc, counts)
            counts["insns"] += 1
        return RunResult(True, ErrorCode.NONE, len(program), counts)

    def _execute(self, i: dict, counts: dict):
        cfg, R, C = self.cfg, self.cfg.rows, self.cfg.cols
        op = i["op"]
        self._need(isa.operands_ok(cfg, op, i, preloads=len(self.preloaded)))
        if op == Opcode.LOAD:
            for r in range(i["nrows"]):
                row = self._read(i["dram_addr"] + r * i["dram_stride"], i["ncols"], np.int8)
                self.sp[i["sp_addr"] + r] = 0
                self.sp[i["sp_addr"] + r, :i["ncols"]] = row
        elif op == Opcode.LOAD_ACC:
            for r in range(i["nrows"]):
                row = self._read(i["dram_addr"] + r * i["dram_stride"], 4 * i["ncols"], "<i4")
                self.acc[i["acc_addr"] + r] = 0
                self.acc[i["acc_addr"] + r, :i["ncols"]] = row
        elif op == Opcode.PRELOAD:
            weights = np.zeros((R, C), np.int64)
            weights[:i["nrows"]] = self.sp[i["sp_addr"]:i["sp_addr"] + i["nrows"], :C]
            self.preloaded.append(weights)
        elif op == Opcode.COMPUTE:
            n, a0, acc0 = i["nrows"], i["a_addr"], i["acc_addr"]
            if cfg.dataflow == "ws":
                result = golden.ws_tile(self.sp[a0:a0 + n, :R], self.preloaded.pop(0))
                rows = slice(acc0, acc0 + n)
            else:
                b0 = i["b_addr"]
                result = golden.gemm(self.sp[a0:a0 + n, :R].T, self.sp[b0:b0 + n, :C])
                rows = slice(acc0, acc0 + R)
            counts["macs"] += n * R * C
            if i["accumulate"] and i["acc_max"]:
                self.acc[rows] = golden.max_accumulate(self.acc[rows], result)
            else:
                base = self.acc[rows] if i["accumulate"] else 0
                self.acc[rows] = golden.wrap(base + result, 32)
        elif op == Opcode.CONFIG and i["add_inner"]:
            self.add_inner = (golden.wrap(i["multiplier"], 32), i["bias"], i["shift"])
        elif op == Opcode.CONFIG:
            lane = i["lane"]
            lanes = slice(None) if lane == isa.CONFIG_ALL_LANES else slice(lane, lane + 1)
            self.mult[lanes] = golden.wrap(i["multiplier"], 32)
            self.shift[lanes] = i["shift"]
            self.bias[lanes] = i["bias"]
            self.zero_point, self.clamp = i["zero_point"], (i["clamp_min"], i["clamp_max"])
            self.rounding = i["rounding"]
        elif op == Opcode.STORE:
            n, nc = i["nrows"], i["ncols"]
            block = self.acc[i["acc_addr"]:i["acc_addr"] + n, :nc]
            for r in range(n):
                addr = i["dram_addr"] + r * i["dram_stride"]
                if i["to_sp"]:          # int8 rows to scratchpad lines (not raw: checked)
                    lo, hi = self.clamp
                    self.sp[addr] = 0
                    self.sp[addr, :nc] = self._requantize(block[r:r + 1], nc, lo, hi)[0]
                elif i["raw"]:
                    self._write(addr, block[r], "<i4")
                else:
                    lo, hi = self.clamp
                    out = self._requantize(block[r:r + 1], nc, lo, hi)
                    self._write(addr, out[0], np.int8)
        elif op == Opcode.SYNC:
            pass

    def _requantize(self, block, nc, lo, hi):
        # Clamp bounds come from the instruction and may be any int8 pair; the hardware
        # clamps with max(min(x, hi), lo) order: lower bound checked first.
        if self.rounding == 2:   # QLinearAdd of a packed pair (hdl.requant)
            return golden.requantize_add(block, self.mult[:nc], self.shift[:nc], self.add_inner,
                                         self.zero_point, (lo, hi), self.bias[:nc])
        acc = golden.wrap(block + self.bias[:nc], 32)
        if self.rounding:        # the multipliers hold float32 scales' bits
            scale = golden.wrap(self.mult[:nc], 32).astype("<i4").view(np.float32)
            scaled = golden.scale_ort(acc, scale)
        else:
            scaled = golden.multiply_by_quantized_multiplier(acc, self.mult[:nc],
                                                             self.shift[:nc])
        shifted = scaled + self.zero_point
        return np.where(shifted < lo, lo, np.where(shifted > hi, hi, shifted))
