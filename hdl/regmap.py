"""The core's AXI4-Lite register map, described once as data.

Pure Python.  :data:`REGISTERS` lists every register (name, address, width, access, fields
with their bit ranges, reset value, documentation); from it are generated

* the decoder, :class:`hdl.regs.RegisterBlock` (its ports come from :func:`ports`),
* ``docs/regmap.md`` (``python -m hdl.regmap > docs/regmap.md``; a test keeps it in step),
* the host's named access, :class:`RegisterAccess` (the cocotb bench and the unit tests
  use it), and
* the module-level names other code imports (``CTRL``, ``STATUS_DONE``, ``COUNTERS``...).

The HWINFO registers are constants that describe the configuration the core was built
with: each of their fields names the :class:`~hdl.config.NPUConfig` attribute it encodes,
so :func:`hwinfo_words` (the HDL's constants) and :func:`decode_hwinfo` /
:func:`check_hwinfo` (the testbench) are one description read both ways.

Conventions on the bus: 32-bit words at word-aligned addresses; a 64-bit register is two
words, the low one at its address and the high one at address + 4 (read the low word
first; the halves are not latched, so read counters while the core is stopped).  An
address that is not in the map reads 0 and ignores writes; every response is OKAY.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import NPUConfig

__all__ = ["ADDR_WIDTH", "DATA_WIDTH", "ACCESS", "Field", "Register", "REGISTERS", "BY_NAME",
           "RegmapError", "HwinfoMismatch", "Port", "ports", "check_registers",
           "RegisterAccess", "hwinfo", "hwinfo_words", "decode_hwinfo", "check_hwinfo",
           "config_from_hwinfo", "decode_status", "markdown", "HWINFO_REGISTERS", "flag",
           "CTRL", "STATUS", "PROG_ADDR", "PROG_LEN", "DRAM_BASE", "DRAM_SIZE", "ERR_PC",
           "HWINFO", "HWINFO1", "HWINFO2", "COUNTERS", "CTRL_START", "CTRL_SOFT_RESET",
           "STATUS_BUSY", "STATUS_DONE", "STATUS_ERROR", "STATUS_CODE_SHIFT"]

ADDR_WIDTH = 8      #: address bits of the AXI4-Lite port (byte addresses 0x00..0xFF)
DATA_WIDTH = 32     #: data bits of the AXI4-Lite port
ACCESS = ("R", "W", "RW")
CODINGS = ("value", "flag", "log2")   #: or a tuple of choices, encoded by their index


class RegmapError(ValueError):
    """A bad register description or a bad register access; the message names it."""


class HwinfoMismatch(AssertionError):
    """The HWINFO read from a design does not describe the configuration expected."""


@dataclass(frozen=True)
class Field:
    """Bits ``[lsb + width - 1 : lsb]`` of a register.

    ``coding``: ``"value"`` (unsigned integer), ``"flag"`` (one bit, decoded to ``bool``),
    ``"log2"`` (the field holds log2 of a power of two) or a tuple of choices (the field
    holds the index of the value).  ``port``: the :class:`~hdl.regs.RegisterBlock` port the
    field comes from (read-only registers) or pulses (write-only registers); the field's name
    when not given.  ``nonzero``: the field is 1 when its port is non-zero.  ``config``: the
    :class:`~hdl.config.NPUConfig` attribute a constant (HWINFO) field describes.
    """
    name: str
    lsb: int
    width: int
    doc: str
    coding: str | tuple = "value"
    port: str | None = None
    nonzero: bool = False
    config: str | None = None

    @property
    def msb(self) -> int:
        return self.lsb + self.width - 1

    @property
    def mask(self) -> int:
        return ((1 << self.width) - 1) << self.lsb

    @property
    def port_name(self) -> str:
        return self.port or self.name

    @property
    def bits(self) -> str:
        return f"[{self.msb}]" if self.width == 1 else f"[{self.msb}:{self.lsb}]"

    def encode(self, value) -> int:
        """The field's raw bits (not yet shifted) for ``value``; raises if it does not fit."""
        coding = self.coding
        if isinstance(coding, tuple):
            if value not in coding:
                raise RegmapError(f"field {self.name}: {value!r} is not one of {coding}")
            raw = coding.index(value)
        elif coding == "flag":
            if value not in (0, 1):     # True and False included
                raise RegmapError(f"field {self.name}: flag value must be 0 or 1, not {value!r}")
            raw = int(value)
        else:
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise RegmapError(f"field {self.name}: {value!r} is not a non-negative integer")
            raw = value
            if coding == "log2":
                if value < 1 or value & (value - 1):
                    raise RegmapError(f"field {self.name}: {value} is not a power of two")
                raw = value.bit_length() - 1
        if not 0 <= raw < 1 << self.width:
            raise RegmapError(f"field {self.name}: {value!r} does not fit in {self.width} bits")
        return raw

    def decode(self, raw: int):
        """The value the field's raw (unshifted) bits stand for."""
        if isinstance(self.coding, tuple):
            if raw >= len(self.coding):
                raise RegmapError(f"field {self.name}: raw value {raw} is not a valid index "
                                  f"into {self.coding}")
            return self.coding[raw]
        if self.coding == "flag":
            return bool(raw)
        return 1 << raw if self.coding == "log2" else raw


def flag(name: str, bit: int, doc: str, **kw) -> Field:
    return Field(name, bit, 1, doc, coding="flag", **kw)


@dataclass(frozen=True)
class Register:
    """One register.  ``access``: ``R`` (the host reads; written by the core or constant),
    ``W`` (write-only: each field pulses its port for one cycle; reads 0) or ``RW`` (held in
    the register block, drives its port).  ``reset``: value after reset (``RW`` only).
    ``group``: what the register is for; the ``"counters"`` group is the performance
    counters (:data:`COUNTERS`, :meth:`RegisterAccess.counters`)."""
    name: str
    address: int
    access: str
    doc: str
    fields: tuple = ()
    width: int = 32
    reset: int = 0
    group: str = "control"

    @property
    def port(self) -> str:
        """Port of a register without fields (``RW``: output; ``R``: input)."""
        return self.name.lower()

    @property
    def constant(self) -> bool:
        """Every field describes the configuration: the register is a constant."""
        return bool(self.fields) and all(f.config for f in self.fields)

    @property
    def words(self) -> tuple:
        """Addresses of its 32-bit words, low word first."""
        return tuple(self.address + 4 * i for i in range(self.width // DATA_WIDTH))

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise RegmapError(f"register {self.name} has no field {name!r} "
                          f"(fields: {', '.join(f.name for f in self.fields) or 'none'})")

    def encode(self, **values) -> int:
        """The register value with the named fields set (the others 0)."""
        out = 0
        for name, value in values.items():
            f = self.field(name)
            out |= f.encode(value) << f.lsb
        return out

    def decode(self, value: int):
        """A dict of every field's decoded value, or ``value`` itself when there are none."""
        if not self.fields:
            return value
        return {f.name: f.decode((value >> f.lsb) & ((1 << f.width) - 1)) for f in self.fields}


_COUNTER = "64-bit performance counter, cleared by START; counts while busy: "

#: Every register of the core, in address order.
REGISTERS = (
    Register("CTRL", 0x00, "W", "Control. Each bit written 1 pulses for one cycle; reads 0.",
             fields=(flag("start", 0, "start the program at PROG_ADDR (clears the counters)"),
                     flag("soft_reset", 1, "restart the engines once no AXI transaction is "
                          "outstanding; a stopped core is then ready for the next program"))),
    Register("STATUS", 0x04, "R", "Status of the core.", group="status",
             fields=(flag("busy", 0, "a program is running, or a stopped core still has "
                          "transactions on the bus"),
                     flag("done", 1, "the program reached HALT"),
                     flag("error", 2, "the core stopped on a fault (code is not 0)",
                          port="error", nonzero=True),
                     Field("code", 8, 8, "error code, `ErrorCode` in docs/isa.md (0: none)",
                           port="error"))),
    Register("PROG_ADDR", 0x08, "RW", "Byte address of the program."),
    Register("PROG_LEN", 0x0C, "RW", "Program length in instructions."),
    Register("DRAM_BASE", 0x10, "RW", "Start of the window the DMA may touch (bytes)."),
    Register("DRAM_SIZE", 0x14, "RW", "Size of that window in bytes; 0xFFFFFFFF is the whole "
             "4 GiB space.", reset=0xFFFF_FFFF),
    Register("ERR_PC", 0x18, "R", "Instructions dispatched when the error was raised.",
             group="status"),
    Register("HWINFO", 0x1C, "R", "The array: size, dataflow, bus width.", group="hwinfo",
             fields=(Field("rows", 0, 9, "array rows", config="rows"),
                     Field("cols", 9, 9, "array columns", config="cols"),
                     Field("dataflow", 18, 1, "weight-stationary (ws) or output-stationary (os)",
                           coding=("ws", "os"), config="dataflow"),
                     Field("bus_bits", 19, 3, "AXI4 data width in bits",
                           coding=(64, 128, 256, 512), config="bus_bits"))),
    Register("CYCLES", 0x20, "R", _COUNTER + "cycles from START to done or error.",
             width=64, group="counters"),
    Register("ARRAY_BUSY", 0x28, "R", _COUNTER + "cycles an activation row entered the array "
             "(useful MACs).", width=64, group="counters"),
    Register("STALL_WEIGHTS", 0x30, "R", _COUNTER + "activations ready but the array still "
             "loading weights.", width=64, group="counters"),
    Register("STALL_COMPUTE_TOKEN", 0x38, "R", _COUNTER + "compute waiting for a load or "
             "store token.", width=64, group="counters"),
    Register("STALL_LOAD_TOKEN", 0x40, "R", _COUNTER + "load waiting for compute to free a "
             "buffer.", width=64, group="counters"),
    Register("STALL_STORE_TOKEN", 0x48, "R", _COUNTER + "store waiting for compute results.",
             width=64, group="counters"),
    Register("STALL_QUEUE_FULL", 0x50, "R", _COUNTER + "fetch holding an instruction for a "
             "full queue.", width=64, group="counters"),
    Register("DMA_BYTES_READ", 0x58, "R", "64-bit counter, cleared by START: bytes the DMA "
             "read (32 bits wide: the high word reads 0).", width=64, group="counters"),
    Register("DMA_BYTES_WRITTEN", 0x60, "R", "64-bit counter, cleared by START: bytes the "
             "DMA wrote (32 bits wide: the high word reads 0).", width=64, group="counters"),
    Register("HWINFO1", 0x68, "R", "The memories and queues.", group="hwinfo",
             fields=(Field("sp_lines", 0, 5, "scratchpad lines", coding="log2",
                           config="sp_lines"),
                     Field("acc_lines", 5, 5, "accumulator lines", coding="log2",
                           config="acc_lines"),
                     Field("sp_banks", 10, 2, "scratchpad banks", coding="log2",
                           config="sp_banks"),
                     Field("acc_banks", 12, 2, "accumulator banks", coding="log2",
                           config="acc_banks"),
                     Field("queue_depth", 14, 9, "entries in each instruction queue",
                           config="queue_depth"))),
    Register("HWINFO2", 0x6C, "R", "The arithmetic.", group="hwinfo",
             fields=(Field("input_width", 0, 8, "operand width in bits (signed)",
                           config="input_width"),
                     Field("acc_width", 8, 8, "accumulator width in bits (wraps)",
                           config="acc_width"))),
)


@dataclass(frozen=True)
class Port:
    """A port of the register block: ``direction`` ``"in"`` (driven by the core) or
    ``"out"`` (driven by the block); ``kind``: ``"storage"`` (an RW register), ``"pulse"``
    (a W field), ``"input"`` (read by R registers)."""
    name: str
    direction: str
    width: int
    kind: str
    reset: int
    registers: tuple   # names of the registers that use it
    doc: str


def _check_field(reg: Register, f: Field, taken: int) -> int:
    where = f"register {reg.name} field {f.name}"
    if not f.name.isidentifier() or f.name != f.name.lower():
        raise RegmapError(f"{where}: a field name must be a lower-case identifier")
    if f.width < 1 or f.lsb < 0 or f.msb >= reg.width:
        raise RegmapError(f"{where}: bits {f.bits} are outside the register's {reg.width} bits")
    if taken & f.mask:
        raise RegmapError(f"{where}: bits {f.bits} overlap another field")
    if not (isinstance(f.coding, tuple) and f.coding) and f.coding not in CODINGS:
        raise RegmapError(f"{where}: coding {f.coding!r} is unknown: one of {CODINGS} "
                          "or a tuple of choices")
    if isinstance(f.coding, tuple) and len(f.coding) > 1 << f.width:
        raise RegmapError(f"{where}: {len(f.coding)} choices do not fit in {f.width} bits")
    if f.coding == "flag" and f.width != 1:
        raise RegmapError(f"{where}: a flag is one bit wide")
    if f.nonzero and (f.width != 1 or reg.access != "R"):
        raise RegmapError(f"{where}: a nonzero field is one bit of a read-only register")
    if f.config is not None and f.config not in NPUConfig.__dataclass_fields__:
        raise RegmapError(f"{where}: config={f.config!r} is not an NPUConfig field")
    if reg.access == "RW" and (f.port or f.nonzero or f.config):
        raise RegmapError(f"{where}: fields of an RW register only document its bits "
                          "(no port, nonzero or config)")
    return taken | f.mask


def _check_register(reg: Register):
    where = f"register {reg.name}"
    if not reg.name.isidentifier() or reg.name != reg.name.upper():
        raise RegmapError(f"{where}: a register name must be an upper-case identifier")
    if reg.access not in ACCESS:
        raise RegmapError(f"{where}: access {reg.access!r} is not one of {ACCESS}")
    if reg.width not in (32, 64):
        raise RegmapError(f"{where}: width {reg.width} is not 32 or 64")
    if reg.width == 64 and reg.access != "R":
        raise RegmapError(f"{where}: a 64-bit register must be read-only (R)")
    size = reg.width // 8
    if reg.address % size or not 0 <= reg.address <= (1 << ADDR_WIDTH) - size:
        raise RegmapError(f"{where}: address {reg.address:#x} is not {size}-byte "
                          f"aligned inside the {1 << ADDR_WIDTH}-byte space")
    if not 0 <= reg.reset < 1 << reg.width or (reg.reset and reg.access != "RW"):
        raise RegmapError(f"{where}: reset {reg.reset:#x} must fit its width, and only an "
                          "RW register has one")
    taken = 0
    names = [f.name for f in reg.fields]
    if len(set(names)) != len(names):
        raise RegmapError(f"{where}: field names repeat: {names}")
    for f in reg.fields:
        taken = _check_field(reg, f, taken)
    configs = [f.config is not None for f in reg.fields]
    if any(configs) and not (all(configs) and reg.access == "R"):
        raise RegmapError(f"{where}: a constant (config) register is read-only and every "
                          "field names its config")


def check_registers(registers) -> None:
    """Raise :class:`RegmapError` naming the first problem of a description: names, access,
    widths, alignment, overlapping words or fields, codings, ports that clash."""
    names, words = set(), {}
    for reg in registers:
        _check_register(reg)
        if reg.name in names:
            raise RegmapError(f"register {reg.name} is described twice")
        names.add(reg.name)
        for addr in reg.words:
            if addr in words:
                raise RegmapError(f"register {reg.name} at {addr:#x} overlaps {words[addr]}")
            words[addr] = reg.name
    ports(registers)


def _register_ports(reg: Register):
    """(name, direction, width, kind, reset, doc) of the ports one register uses."""
    if reg.access == "RW":
        return [(reg.port, "out", reg.width, "storage", reg.reset, reg.doc)]
    if reg.constant:
        return []
    fields = reg.fields or (Field(reg.port, 0, reg.width, reg.doc),)
    if reg.access == "W":
        return [(f.port_name, "out", f.width, "pulse", 0, f.doc) for f in fields]
    return [(f.port_name, "in", 0 if f.nonzero else f.width, "input", 0, f.doc)
            for f in fields]


def ports(registers=REGISTERS) -> dict:
    """Name -> :class:`Port` of every port the register block needs besides its bus, in
    register order.  Fields of read-only registers may share a port (STATUS's ``error``
    flag and ``code`` both come from ``error``): the port is as wide as the widest field
    that takes its value, and a nonzero field alone cannot size one."""
    out: dict = {}
    for reg in registers:
        for name, direction, width, kind, reset, doc in _register_ports(reg):
            if name in out:
                old = out[name]
                if (old.direction, old.kind) != (direction, kind) or kind != "input":
                    raise RegmapError(f"port {name} of register {reg.name} is already "
                                      f"used by {', '.join(old.registers)}")
                users = old.registers + (() if reg.name in old.registers else (reg.name,))
                out[name] = Port(name, direction, max(old.width, width), kind, 0, users,
                                 old.doc if width == 0 else doc)
            else:
                out[name] = Port(name, direction, width, kind, reset, (reg.name,), doc)
    for port in out.values():
        if port.width == 0:
            raise RegmapError(f"port {port.name} ({', '.join(port.registers)}) is only "
                              "read through nonzero fields: nothing gives its width")
    return out


check_registers(REGISTERS)

#: Register name -> :class:`Register`.
BY_NAME = {reg.name: reg for reg in REGISTERS}

CTRL = BY_NAME["CTRL"].address
STATUS = BY_NAME["STATUS"].address
PROG_ADDR = BY_NAME["PROG_ADDR"].address
PROG_LEN = BY_NAME["PROG_LEN"].address
DRAM_BASE = BY_NAME["DRAM_BASE"].address
DRAM_SIZE = BY_NAME["DRAM_SIZE"].address
ERR_PC = BY_NAME["ERR_PC"].address
HWINFO = BY_NAME["HWINFO"].address
HWINFO1 = BY_NAME["HWINFO1"].address
HWINFO2 = BY_NAME["HWINFO2"].address

CTRL_START = BY_NAME["CTRL"].field("start").mask
CTRL_SOFT_RESET = BY_NAME["CTRL"].field("soft_reset").mask
STATUS_BUSY = BY_NAME["STATUS"].field("busy").mask
STATUS_DONE = BY_NAME["STATUS"].field("done").mask
STATUS_ERROR = BY_NAME["STATUS"].field("error").mask
STATUS_CODE_SHIFT = BY_NAME["STATUS"].field("code").lsb

#: 64-bit performance counters, port name -> address (low word; high word at +4).
COUNTERS = {reg.port: reg.address for reg in REGISTERS if reg.group == "counters"}

#: The constant registers that describe the configuration.
HWINFO_REGISTERS = tuple(reg for reg in REGISTERS if reg.constant)


def hwinfo_words(cfg: NPUConfig, registers=HWINFO_REGISTERS) -> dict:
    """Register name -> value of every HWINFO register for ``cfg`` (what the RTL returns)."""
    return {reg.name: reg.encode(**{f.name: getattr(cfg, f.config) for f in reg.fields})
            for reg in registers}


def hwinfo(cfg: NPUConfig) -> int:
    """The value of HWINFO (array size, dataflow, bus width) for ``cfg``."""
    return hwinfo_words(cfg, (BY_NAME["HWINFO"],))["HWINFO"]


def decode_hwinfo(words: dict, registers=HWINFO_REGISTERS) -> dict:
    """NPUConfig attribute -> value, from register name -> word as read from a design."""
    missing = [reg.name for reg in registers if reg.name not in words]
    if missing:
        raise RegmapError(f"HWINFO words missing: {', '.join(missing)}")
    out = {}
    for reg in registers:
        for f in reg.fields:
            out[f.config] = reg.decode(words[reg.name])[f.name]
    return out


def config_from_hwinfo(words: dict) -> NPUConfig:
    """The configuration a design describes (every NPUConfig field is in HWINFO)."""
    return NPUConfig(**decode_hwinfo(words))


def check_hwinfo(cfg: NPUConfig, words: dict) -> dict:
    """Check the HWINFO words read from a design against ``cfg``; raise
    :class:`HwinfoMismatch` naming every field that differs.  Returns the decoded fields."""
    bad = []
    for reg in HWINFO_REGISTERS:
        if reg.name not in words:
            raise RegmapError(f"HWINFO words missing: {reg.name}")
        raw = words[reg.name]
        for f in reg.fields:
            want = getattr(cfg, f.config)
            bits = (raw >> f.lsb) & ((1 << f.width) - 1)
            try:
                got = f.decode(bits)
            except RegmapError:
                got = f"undecodable raw value {bits}"
            if got != want:
                bad.append(f"{f.config}: design has {got!r}, expected {want!r} "
                           f"({reg.name}{f.bits} = {bits:#x})")
    if bad:
        raise HwinfoMismatch("HWINFO does not match the configuration: " + "; ".join(bad))
    return decode_hwinfo(words)


def decode_status(value: int) -> dict:
    """STATUS as ``{"busy": bool, "done": bool, "error": bool, "code": int}``."""
    return BY_NAME["STATUS"].decode(value)


class RegisterAccess:
    """The host's named access to the map over any 32-bit word port.

    ``read_word(addr)`` and ``write_word(addr, value)`` are coroutine functions (a cocotb
    AXI4-Lite master, or a bus driver in Amaranth's simulator).  Registers are named as in
    :data:`REGISTERS`; a 64-bit register is read low word first, then high word.
    """

    def __init__(self, read_word, write_word, registers=REGISTERS):
        self._read_word, self._write_word = read_word, write_word
        self.by_name = {reg.name: reg for reg in registers}

    def register(self, name: str) -> Register:
        try:
            return self.by_name[name]
        except KeyError:
            raise RegmapError(f"no register {name!r} (registers: "
                              f"{', '.join(self.by_name)})") from None

    async def read_raw(self, name: str) -> int:
        """The register's value as an integer (both words of a 64-bit register)."""
        reg = self.register(name)
        if reg.access == "W":
            raise RegmapError(f"register {name} is write-only (it reads 0)")
        value = 0
        for i, addr in enumerate(reg.words):
            value |= await self._read_word(addr) << (DATA_WIDTH * i)
        return value

    async def read(self, name: str):
        """The register decoded: a dict of its fields, or an integer when it has none."""
        return self.register(name).decode(await self.read_raw(name))

    async def write(self, name: str, value: int | None = None, **fields):
        """Write ``value``, or the named fields (the others 0): ``write("CTRL", start=1)``."""
        reg = self.register(name)
        if reg.access == "R":
            raise RegmapError(f"register {name} is read-only")
        if (value is None) == (not fields):
            raise RegmapError(f"write to {name}: give a value or fields, not both or neither")
        if value is None:
            value = reg.encode(**fields)
        elif not isinstance(value, int) or not 0 <= value < 1 << reg.width:
            raise RegmapError(f"write to {name}: {value!r} does not fit in {reg.width} bits")
        await self._write_word(reg.address, value)

    async def counters(self) -> dict:
        """Every performance counter, port name -> value (see :data:`COUNTERS`)."""
        out = {}
        for reg in self.by_name.values():
            if reg.group == "counters":
                out[reg.port] = await self.read_raw(reg.name)
        return out

    async def hwinfo_words(self) -> dict:
        """Register name -> word of every HWINFO register, as the design returns them."""
        return {reg.name: await self.read_raw(reg.name)
                for reg in self.by_name.values() if reg.constant}

    async def check_hwinfo(self, cfg: NPUConfig) -> dict:
        """Read HWINFO and check it describes ``cfg`` (:func:`check_hwinfo`)."""
        return check_hwinfo(cfg, await self.hwinfo_words())


def _reset_text(reg: Register) -> str:
    if reg.access == "RW":
        return f"{reg.reset:#x}"
    if reg.access == "W":
        return "reads 0"
    return "config" if reg.constant else "core"


def markdown() -> str:
    """The register reference, ``docs/regmap.md``."""
    lines = ["# knpu register map", "",
             "Generated from `hdl/regmap.py` by `python -m hdl.regmap`; do not edit by hand.", "",
             f"The host reaches the core through an AXI4-Lite port ({ADDR_WIDTH}-bit byte "
             f"addresses, {DATA_WIDTH}-bit data). One write and one read are taken at a "
             "time. An address not listed here reads 0 and ignores writes; every response "
             "is OKAY. A 64-bit register is two words: the low word at its address, the high "
             "word at address + 4 (the halves are not latched: read counters while the core "
             "is stopped).", "",
             "Reset: `core` means the value is driven by the core (0 after reset), `config` "
             "that it is a constant describing the configuration the core was built with.", "",
             "| address | name | access | width | reset | description |",
             "| --- | --- | --- | --- | --- | --- |"]
    for reg in sorted(REGISTERS, key=lambda r: r.address):
        lines.append(f"| {reg.address:#04x} | {reg.name} | {reg.access} | {reg.width} "
                     f"| {_reset_text(reg)} | {reg.doc} |")
    lines.append("")
    for reg in REGISTERS:
        if not reg.fields:
            continue
        lines += [f"## {reg.name} ({reg.address:#04x}, {reg.access})", "", reg.doc, "",
                  "| bits | field | coding | meaning |", "| --- | --- | --- | --- |"]
        for f in reg.fields:
            coding = (", ".join(f"{i} = {c}" for i, c in enumerate(f.coding))
                      if isinstance(f.coding, tuple) else f.coding)
            config = f" (`NPUConfig.{f.config}`)" if f.config else ""
            lines.append(f"| {f.bits} | {f.name} | {coding} | {f.doc}{config} |")
        lines.append("")
    lines += ["Unused bits read 0. `log2`: the field holds log2 of the value; `flag`: one bit.",
              "The testbench reads every HWINFO register after reset and checks it against "
              "the configuration it built (`regmap.check_hwinfo`)."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
