"""The one configuration object of a knpu core.

Pure Python on purpose: the HDL, the golden and cycle models, the compiler and the
testbenches all import :class:`NPUConfig` from here, so that a size or a width is
stated in exactly one place.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

__all__ = ["NPUConfig", "ConfigError", "DATAFLOWS", "MAX_ARRAY_DIM", "BUS_WIDTHS", "WEIGHT_BANKS",
           "os_drain_row"]

#: Dataflows the array implements.  ``ws``: weight-stationary (TPU-style, weights held in
#: the PEs, activations flow right, partial sums flow down).  ``os``: output-stationary
#: (each PE owns one output and accumulates it in place, results drained afterwards).
DATAFLOWS = ("ws", "os")

#: AXI data widths the DMA supports.
BUS_WIDTHS = (64, 128, 256, 512)

#: Weight tiles a weight-stationary array holds: the one computing and the one loading.
WEIGHT_BANKS = 2


def os_drain_row(beat, rows: int):
    """The row of an output-stationary tile that drain beat ``beat`` carries: the array
    drains **bottom row first** (beat 0 is row ``rows - 1``).  ``beat`` may be an int,
    an array or an Amaranth value; the array, the compute unit, the golden and cycle
    models and the testbench all take the order from here."""
    return (rows - 1) - beat


#: Largest row or column count we accept.  64x64 is exercised by elaboration tests;
#: beyond 256 the skew buffers and fan-out stop being a sensible single array.
MAX_ARRAY_DIM = 256


class ConfigError(ValueError):
    """A configuration field is out of range; the message names the field."""


@dataclass(frozen=True)
class NPUConfig:
    """Validated, immutable description of one knpu core.

    ``input_width``: signed operand width (int8 by default).
    ``acc_width``: accumulator width; sums wrap modulo ``2**acc_width`` (two's complement),
    exactly as the hardware adders do.
    """

    rows: int = 8
    cols: int = 8
    dataflow: str = "ws"
    input_width: int = 8
    acc_width: int = 32
    # --- the NPU core around the array ---
    bus_bits: int = 128        #: AXI4 master data width
    sp_lines: int = 16384      #: scratchpad depth, in lines of ``sp_width`` bytes
    acc_lines: int = 1024      #: accumulator depth, in lines of ``cols`` int32
    sp_banks: int = 2          #: scratchpad banks (1R1W each, contiguous address slices)
    acc_banks: int = 2         #: accumulator banks
    queue_depth: int = 16      #: entries in each of the load/compute/store queues

    def __post_init__(self):
        for name in ("rows", "cols"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ConfigError(f"{name} must be an integer, not {value!r}")
            if not 1 <= value <= MAX_ARRAY_DIM:
                raise ConfigError(f"{name}={value} is out of range: must be 1..{MAX_ARRAY_DIM}")
        if self.dataflow not in DATAFLOWS:
            raise ConfigError(f"dataflow={self.dataflow!r} is unknown: must be one of {DATAFLOWS}")
        if not isinstance(self.input_width, int) or not 2 <= self.input_width <= 16:
            raise ConfigError(f"input_width={self.input_width!r} is out of range: must be 2..16")
        if not isinstance(self.acc_width, int) or self.acc_width > 64:
            raise ConfigError(f"acc_width={self.acc_width!r} is out of range: must be at most 64")
        if self.bus_bits not in BUS_WIDTHS:
            raise ConfigError(f"bus_bits={self.bus_bits!r} is unsupported: must be one of {BUS_WIDTHS}")
        for name, lo, hi in (("sp_lines", 16, 1 << 16), ("acc_lines", 16, 1 << 16),
                             ("queue_depth", 2, 256)):
            value = getattr(self, name)
            if not isinstance(value, int) or not lo <= value <= hi:
                raise ConfigError(f"{name}={value!r} is out of range: must be {lo}..{hi}")
        for name in ("sp_lines", "acc_lines"):
            value = getattr(self, name)
            if value & (value - 1):
                raise ConfigError(f"{name}={value} must be a power of two")
        for name, lines in (("sp_banks", self.sp_lines), ("acc_banks", self.acc_lines)):
            value = getattr(self, name)
            if value not in (1, 2, 4, 8) or lines // value < 8:
                raise ConfigError(f"{name}={value!r} must be 1, 2, 4 or 8, with at least 8 "
                                  f"lines per bank")
        if self.acc_lines < 2 * self.rows:
            raise ConfigError(f"acc_lines={self.acc_lines} must hold at least two tiles "
                              f"(2 x rows = {2 * self.rows})")
        if self.acc_width < self.product_width:
            raise ConfigError(
                f"acc_width={self.acc_width} is narrower than the product "
                f"({self.input_width}x{self.input_width} bits -> {self.product_width} bits)")

    @property
    def product_width(self) -> int:
        """Width of one signed product: int8 x int8 fits in 16 bits (-128*-128 = 2**14)."""
        return 2 * self.input_width

    @property
    def sp_width(self) -> int:
        """Bytes per scratchpad line: one operand row for either side of the array."""
        return max(self.rows, self.cols)

    @property
    def bus_bytes(self) -> int:
        return self.bus_bits // 8

    @property
    def core_name(self) -> str:
        """Verilog module name of the whole core."""
        banks = "" if (self.sp_banks, self.acc_banks) == (2, 2) else \
            f"_bk{self.sp_banks}x{self.acc_banks}"
        return (f"knpu_core_{self.dataflow}_{self.rows}x{self.cols}_b{self.bus_bits}"
                f"_sp{self.sp_lines}_acc{self.acc_lines}{banks}")

    @property
    def name(self) -> str:
        """Verilog module name; says everything that changes the generated hardware."""
        name = f"knpu_array_{self.dataflow}_{self.rows}x{self.cols}"
        if self.input_width != 8 or self.acc_width != 32:
            name += f"_i{self.input_width}a{self.acc_width}"
        return name

    @property
    def latency(self) -> int:
        """Cycles from the array accepting the last input beat of a tile to its first output
        row (WS: every row has this latency; OS: the drain of R rows starts here)."""
        return self.rows + self.cols - 1

    def replace(self, **changes) -> "NPUConfig":
        return dataclasses.replace(self, **changes)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "NPUConfig":
        fields = json.loads(text)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(fields) - known
        if unknown:
            raise ConfigError(f"unknown configuration field(s): {', '.join(sorted(unknown))}")
        return cls(**fields)
