"""The knpu instruction set, defined once.

Pure Python: the HDL decoder slices instruction words with :func:`field`, the compiler and
the models build and read them with :func:`encode` / :func:`decode`, and ``docs/isa.md`` is
generated from the tables here (``python -m hdl.isa > docs/isa.md``; a test keeps it in step).

Every instruction is one 128-bit little-endian word.  Bits [3:0] are the opcode and bits
[7:4] the dependency flags of the decoupled access-execute scheme (as in VTA): a unit
*pops* a token from a neighbour before it starts the instruction and *pushes* one when the
instruction's effect is complete.  ``prev``/``next`` are the neighbours in the order
load -> compute -> store.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .config import WEIGHT_BANKS

__all__ = ["Opcode", "Queue", "ErrorCode", "Field", "FIELDS", "QUEUE_OF", "INSN_BITS",
           "INSN_BYTES", "FLAGS", "encode", "decode", "field", "IsaError", "markdown",
           "CONFIG_ALL_LANES", "Fields", "operands_ok", "program_bytes"]

INSN_BITS = 128
INSN_BYTES = INSN_BITS // 8
OPCODE_BITS = 4          #: bits [3:0]
FLAG_LSB = OPCODE_BITS   #: the flags follow the opcode, in the order of FLAGS
FLAGS = ("pop_prev", "pop_next", "push_prev", "push_next")


def opcode_bits(word):
    """The opcode bits of a word (an int or an Amaranth value), legal or not."""
    return word & ((1 << OPCODE_BITS) - 1) if isinstance(word, int) else word[:OPCODE_BITS]


def flag_bit(word, name: str):
    """Dependency flag ``name`` of a word (an int or an Amaranth value)."""
    i = FLAG_LSB + FLAGS.index(name)
    return (word >> i) & 1 if isinstance(word, int) else word[i]


class IsaError(ValueError):
    """A bad program: unknown opcode, unknown field, or a value that does not fit."""


class Opcode(enum.IntEnum):
    HALT = 0x0      #: finish: wait until every queue has drained, then raise ``done``
    LOAD = 0x1      #: DRAM -> scratchpad, 2-D strided, int8 rows zero-padded to a full line
    LOAD_ACC = 0x2  #: DRAM -> accumulator, 2-D strided int32 rows (bias, partial sums)
    PRELOAD = 0x3   #: scratchpad -> array weights (WS): ``nrows`` lines, the rest zero
    COMPUTE = 0x4   #: scratchpad rows through the array into accumulator rows
    STORE = 0x5     #: accumulator -> post-processing -> DRAM, int8 or raw int32, strided
    CONFIG = 0x6    #: post-processing parameters (requantization, zero point, clamp)
    SYNC = 0x7      #: fence: wait until every queue has drained


class Queue(enum.IntEnum):
    CONTROL = 0  #: handled by the fetch unit itself
    LOAD = 1
    COMPUTE = 2
    STORE = 3


QUEUE_OF = {
    Opcode.HALT: Queue.CONTROL, Opcode.SYNC: Queue.CONTROL,
    Opcode.LOAD: Queue.LOAD, Opcode.LOAD_ACC: Queue.LOAD,
    Opcode.PRELOAD: Queue.COMPUTE, Opcode.COMPUTE: Queue.COMPUTE,
    Opcode.STORE: Queue.STORE, Opcode.CONFIG: Queue.STORE,
}


class ErrorCode(enum.IntEnum):
    """Value of the status register's error field; the core stops on the first error."""
    NONE = 0
    ILLEGAL_OPCODE = 1   #: opcode not in :class:`Opcode`
    BAD_OPERAND = 2      #: scratchpad/accumulator range, row width, dataflow mismatch
    DMA_RANGE = 3        #: a DMA access outside the DRAM window (DRAM_BASE, DRAM_SIZE)
    AXI_SLVERR = 4       #: the bus answered SLVERR
    AXI_DECERR = 5       #: the bus answered DECERR
    DEADLOCK = 6         #: every unit waits for a token no instruction will push


@dataclass(frozen=True)
class Field:
    name: str
    lsb: int
    width: int
    signed: bool = False
    doc: str = ""

    @property
    def msb(self) -> int:
        return self.lsb + self.width - 1


def _layout(*fields) -> dict[str, Field]:
    """Pack fields upward from bit 8 (after opcode and flags), in the order given."""
    out, lsb = {}, 8
    for name, width, *rest in fields:
        signed = bool(rest and rest[0] == "signed")
        doc = rest[-1] if rest and rest[-1] != "signed" else ""
        out[name] = Field(name, lsb, width, signed, doc)
        lsb += width
    if lsb > INSN_BITS:
        raise AssertionError(f"instruction layout overflows {INSN_BITS} bits")
    return out


_DRAM = [("dram_addr", 32, "byte address of row 0"),
         ("dram_stride", 32, "bytes from one row to the next")]

FIELDS: dict[Opcode, dict[str, Field]] = {
    Opcode.HALT: _layout(),
    Opcode.SYNC: _layout(),
    Opcode.LOAD: _layout(("sp_addr", 16, "first scratchpad line"),
                         ("nrows", 16, "rows (lines) to load"),
                         ("ncols", 12, "bytes per row, at most the line width"), *_DRAM),
    Opcode.LOAD_ACC: _layout(("acc_addr", 16, "first accumulator line"),
                             ("nrows", 16, "rows to load"),
                             ("ncols", 12, "int32 elements per row, at most cols"), *_DRAM),
    Opcode.PRELOAD: _layout(("sp_addr", 16, "first weight line (row k of the tile)"),
                            ("nrows", 16, "lines to read, at most rows; the rest are zero")),
    Opcode.COMPUTE: _layout(("a_addr", 16, "first scratchpad line of A (OS: of A transposed)"),
                            ("b_addr", 16, "OS only: first scratchpad line of B"),
                            ("acc_addr", 16, "first accumulator line written"),
                            ("nrows", 16, "WS: rows of A (M); OS: K"),
                            ("accumulate", 1, "add to the accumulator instead of overwriting"),
                            ("acc_max", 1, "with accumulate: keep the larger of the accumulator "
                                           "and the result instead of their sum (max pooling)")),
    Opcode.STORE: _layout(("acc_addr", 16, "first accumulator line"),
                          ("nrows", 16, "rows to store"),
                          ("ncols", 12, "elements per row, at most cols"),
                          ("raw", 1, "1: raw int32; 0: requantized int8"),
                          ("dram_addr", 32, "byte address of row 0; with to_sp: the "
                                            "scratchpad line of row 0"),
                          ("dram_stride", 32, "bytes from one row to the next; with to_sp: "
                                              "lines"),
                          ("to_sp", 1, "1: the int8 rows go to scratchpad lines (on chip, for "
                                       "the next layer) instead of DRAM; not with raw")),
    Opcode.CONFIG: _layout(("lane", 8, "output channel (column) set; 255: all lanes"),
                           ("multiplier", 32, "TFLite: Q31 multiplier; onnxruntime: the "
                                              "float32 scale's bits"),
                           ("shift", 8, "signed", "power-of-two exponent (>0: left)"),
                           ("zero_point", 8, "signed", "output zero point (all lanes)"),
                           ("clamp_min", 8, "signed", "lower int8 bound (all lanes)"),
                           ("clamp_max", 8, "signed", "upper int8 bound (all lanes)"),
                           ("bias", 32, "signed", "int32 added to the accumulator first"),
                           ("rounding", 2, "requantization mode (all lanes): 0 TFLite "
                                           "(SRDHM + rounding shift), 1 onnxruntime (float32 "
                                           "product, round half to even), 2 add (QLinearAdd of "
                                           "two int8 tensors packed as acc = b - 256*a: "
                                           "multiplier = ma + (sa << 24), shift = k, zero_point "
                                           "= the stored values' offset; see hdl/requant.py); "
                                           "3 is refused"),
                           ("add_inner", 1, "1: only set the add mode's shared inner-sum "
                                            "constants (multiplier = mb + (sb << 24), bias = mf, "
                                            "shift = sf); lanes, zero point, clamp and mode "
                                            "keep their values")),
}

CONFIG_ALL_LANES = 255


def field(op: Opcode, name: str) -> Field:
    try:
        return FIELDS[Opcode(op)][name]
    except (KeyError, ValueError):
        raise IsaError(f"{Opcode(op).name if op in Opcode._value2member_map_ else op} "
                       f"has no field {name!r}") from None


def encode(op: Opcode, pop_prev=0, pop_next=0, push_prev=0, push_next=0, **values) -> int:
    """One instruction word; every field must fit (signed fields in two's complement)."""
    op = Opcode(op)
    word = int(op)
    for i, (flag, v) in enumerate(zip(FLAGS, (pop_prev, pop_next, push_prev, push_next))):
        if v not in (0, 1, True, False):
            raise IsaError(f"{op.name}: flag {flag} must be 0 or 1, not {v!r}")
        word |= int(v) << (FLAG_LSB + i)
    fields = FIELDS[op]
    for name, value in values.items():
        if name not in fields:
            raise IsaError(f"{op.name} has no field {name!r}")
        f = fields[name]
        lo, hi = (-(1 << (f.width - 1)), (1 << (f.width - 1)) - 1) if f.signed else \
            (0, (1 << f.width) - 1)
        if not isinstance(value, (int,)) and not hasattr(value, "__index__"):
            raise IsaError(f"{op.name}.{name} must be an integer, not {value!r}")
        value = int(value)
        if not lo <= value <= hi:
            raise IsaError(f"{op.name}.{name}={value} does not fit {f.width} "
                           f"{'signed ' if f.signed else ''}bits [{lo}, {hi}]")
        word |= (value & ((1 << f.width) - 1)) << f.lsb
    return word


def decode(word: int) -> dict:
    """Instruction word -> ``{"op": Opcode, flags..., fields...}``."""
    code = opcode_bits(word)
    if code not in Opcode._value2member_map_:
        raise IsaError(f"illegal opcode {code:#x}")
    op = Opcode(code)
    out = {"op": op}
    for i, flag in enumerate(FLAGS):
        out[flag] = flag_bit(word, flag)
    for name, f in FIELDS[op].items():
        v = (word >> f.lsb) & ((1 << f.width) - 1)
        if f.signed and v >> (f.width - 1):
            v -= 1 << f.width
        out[name] = v
    return out


class Fields:
    """The fields of ``op`` sliced out of one instruction word, by name: ``Fields(word, op)["nrows"]``.

    ``word`` may be a Python int (the models) or an Amaranth value (the HDL decoders); the
    bits are the ones the hardware slices whatever the opcode is, signed fields as signed."""

    def __init__(self, word, op: Opcode):
        self.word, self.op = word, Opcode(op)

    def __getitem__(self, name: str):
        f = field(self.op, name)
        if isinstance(self.word, int):
            v = (self.word >> f.lsb) & ((1 << f.width) - 1)
            return v - (1 << f.width) if f.signed and v >> (f.width - 1) else v
        bits = self.word[f.lsb:f.lsb + f.width]
        return bits.as_signed() if f.signed else bits

    def get(self, name: str, default=None):
        """Like ``dict.get``: every field of ``op`` is present in a word."""
        return self[name]


def operands_ok(cfg, op: Opcode, f, preloads=0):
    """Whether the operands of ``op`` fit the core ``cfg``; otherwise the core stops with
    ``BAD_OPERAND``.  The one statement of these rules, for the HDL and every model.

    ``f[name]`` gives each field's value, as Python ints (the models: the result is a bool)
    or Amaranth values (the HDL: a 1-bit value), so only ``&``, ``|`` and comparisons are
    used.  ``preloads``: weight tiles preloaded and not yet used by a COMPUTE (WS only); the
    array holds :data:`~hdl.config.WEIGHT_BANKS`, so a COMPUTE without one, or one PRELOAD
    more, would wait forever and is refused instead."""
    op = Opcode(op)
    R, C = cfg.rows, cfg.cols
    if op == Opcode.LOAD:
        return (f["nrows"] != 0) & (f["ncols"] != 0) & (f["ncols"] <= cfg.sp_width) & \
            (f["sp_addr"] + f["nrows"] <= cfg.sp_lines)
    if op == Opcode.LOAD_ACC:
        return (f["nrows"] != 0) & (f["ncols"] != 0) & (f["ncols"] <= C) & \
            (f["acc_addr"] + f["nrows"] <= cfg.acc_lines)
    if op == Opcode.PRELOAD:
        if cfg.dataflow != "ws":
            return False
        return (f["nrows"] <= R) & (f["sp_addr"] + f["nrows"] <= cfg.sp_lines) & \
            (preloads != WEIGHT_BANKS)
    if op == Opcode.COMPUTE:
        n = f["nrows"]
        if cfg.dataflow == "ws":
            return (n != 0) & (f["a_addr"] + n <= cfg.sp_lines) & \
                (f["acc_addr"] + n <= cfg.acc_lines) & (preloads != 0)
        return (n != 0) & (f["a_addr"] + n <= cfg.sp_lines) & (f["b_addr"] + n <= cfg.sp_lines) \
            & (f["acc_addr"] + R <= cfg.acc_lines)
    if op == Opcode.STORE:
        ok = (f["nrows"] != 0) & (f["ncols"] != 0) & (f["ncols"] <= C) & \
            (f["acc_addr"] + f["nrows"] <= cfg.acc_lines)
        # to_sp: int8 only, and the last row's line, addr + (nrows - 1) * stride, inside the
        # scratchpad (written without a subtraction, for the HDL's unsigned values).
        line, stride = f.get("dram_addr", 0), f.get("dram_stride", 0)
        sp_ok = (f.get("raw", 0) == 0) & \
            (line + f["nrows"] * stride < cfg.sp_lines + stride)
        return ok & ((f.get("to_sp", 0) == 0) | sp_ok)
    if op == Opcode.CONFIG:
        # A field missing from a dict of values is 0, as isa.encode writes it.
        return ((f["lane"] == CONFIG_ALL_LANES) | (f["lane"] < C)) & (f.get("rounding", 0) != 3)
    return True


def program_bytes(words) -> bytes:
    """A program as the core fetches it: each word :data:`INSN_BYTES` bytes, little-endian."""
    return b"".join(int(w).to_bytes(INSN_BYTES, "little") for w in words)


def markdown() -> str:
    """The ISA reference, ``docs/isa.md``."""
    lines = ["# knpu instruction set", "",
             "Generated from `hdl/isa.py` by `python -m hdl.isa`; do not edit by hand.", "",
             f"Every instruction is one {INSN_BITS}-bit little-endian word "
             f"({INSN_BYTES} bytes). Common bits:", "",
             "| bits | field | meaning |", "| --- | --- | --- |",
             "| [3:0] | opcode | see below |",
             "| [4] | pop_prev | wait for and take a token from the previous unit |",
             "| [5] | pop_next | wait for and take a token from the next unit |",
             "| [6] | push_prev | give the previous unit a token when done |",
             "| [7] | push_next | give the next unit a token when done |", "",
             "Units in order: load -> compute -> store. HALT and SYNC are handled by fetch.", "",
             "Which flags each unit acts on, and when a push happens:", "",
             "| unit | instruction | pops | pushes, and when |", "| --- | --- | --- | --- |",
             "| load | LOAD, LOAD_ACC | pop_next (from compute) | push_next: every line "
             "written |",
             "| compute | PRELOAD | pop_prev, pop_next | push_prev: its scratchpad lines "
             "read (push_next is ignored) |",
             "| compute | COMPUTE | pop_prev, pop_next | push_prev: its scratchpad lines read "
             "(not its results written); push_next: its last result row written to the "
             "accumulator |",
             "| store | STORE | pop_prev (from compute) | push_prev: every write "
             "acknowledged (to_sp: every scratchpad line written) |",
             "| store | CONFIG | none: with pop_prev it waits for a compute token but "
             "leaves it | none |",
             "| fetch | HALT, SYNC | none | none |", ""]
    for op in Opcode:
        lines += [f"## {op.name} = {int(op):#x} ({QUEUE_OF[op].name.lower()} queue)", "",
                  _OPDOC[op], ""]
        if FIELDS[op]:
            lines += ["| bits | field | signed | meaning |", "| --- | --- | --- | --- |"]
            for f in FIELDS[op].values():
                lines.append(f"| [{f.msb}:{f.lsb}] | {f.name} | {'yes' if f.signed else ''} "
                             f"| {f.doc} |")
            lines.append("")
    lines += ["## Error codes", "", "| code | name | meaning |", "| --- | --- | --- |"]
    for e in ErrorCode:
        lines.append(f"| {int(e)} | {e.name} | {_ERRDOC[e]} |")
    return "\n".join(lines) + "\n"


_OPDOC = {
    Opcode.HALT: "Wait until all queues are empty and every unit is idle, then set `done`.",
    Opcode.LOAD: "Load `nrows` rows of `ncols` bytes from DRAM into consecutive scratchpad "
                 "lines; bytes past `ncols` are zero.",
    Opcode.LOAD_ACC: "Load `nrows` rows of `ncols` int32 from DRAM into consecutive accumulator "
                     "lines (bias or partial sums); a stride of 0 repeats one row.",
    Opcode.PRELOAD: "Weight-stationary only: stream `nrows` scratchpad lines (row k of the "
                    "weight tile) into the array's spare weight bank; rows past `nrows` are zero.",
    Opcode.COMPUTE: "WS: stream `nrows` lines of A through the preloaded weights into "
                    "accumulator lines `acc_addr...`. OS: stream K=`nrows` lines of A^T and B, "
                    "results of the rows x cols tile into `acc_addr...acc_addr+rows-1`. "
                    "With `accumulate` the result is added to the accumulator lines, or with "
                    "`acc_max` as well the larger of the two is kept (signed int32).",
    Opcode.STORE: "Read `nrows` accumulator lines, requantize to int8 (or keep int32 when "
                  "`raw`), write `ncols` elements per row to DRAM. With `to_sp`, row i goes "
                  "to scratchpad line `dram_addr + i * dram_stride` instead (its low `ncols` "
                  "bytes; the rest of the line zero), where a later COMPUTE or PRELOAD reads "
                  "it as a LOAD's line: no DRAM traffic, and the DMA byte counters do not "
                  "move. Refused (BAD_OPERAND) with `raw`, or when the last row's line is "
                  "past the scratchpad. The store unit writes the scratchpad after the load "
                  "unit: it waits while the load unit writes the same bank. Ordering is the "
                  "tokens': the STORE's push_prev (s2c) comes once every line is written, so a "
                  "COMPUTE/PRELOAD that pops it (pop_next) reads them; lines an earlier "
                  "COMPUTE/PRELOAD still reads may only be overwritten by a STORE that popped "
                  "(pop_prev, c2s) a token pushed after that read. No token joins the load "
                  "and store units: a LOAD and a STORE to_sp touching the same lines need a "
                  "SYNC between them.",
    Opcode.CONFIG: "Set the bias, requantization multiplier (or float32 scale) and shift of "
                   "one lane (output channel) or all, and the zero point, clamp range and "
                   "rounding mode of all lanes.",
    Opcode.SYNC: "Wait until all queues are empty and every unit is idle.",
}

_ERRDOC = {
    ErrorCode.NONE: "no error",
    ErrorCode.ILLEGAL_OPCODE: "the fetched word's opcode is not defined",
    ErrorCode.BAD_OPERAND: "a scratchpad/accumulator range, row width or dataflow-specific "
                           "instruction does not fit this core (also a STORE to_sp that is "
                           "raw or ends past the scratchpad)",
    ErrorCode.DMA_RANGE: "a DMA access falls outside [DRAM_BASE, DRAM_BASE + DRAM_SIZE)",
    ErrorCode.AXI_SLVERR: "an AXI read or write response was SLVERR",
    ErrorCode.AXI_DECERR: "an AXI read or write response was DECERR",
    ErrorCode.DEADLOCK: "the program's dependency tokens do not match: units wait for tokens "
                        "that nothing still to run will push, and the fetch unit cannot help",
}


if __name__ == "__main__":
    print(markdown(), end="")
