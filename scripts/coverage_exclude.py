"""Toggle points left out of ``make coverage``'s figures, each by a rule with its reason.

One table, :data:`RULES`; every point a rule removes is listed in ``summary.json``'s
``"excluded"`` (grouped by configuration, module, signal and rule, with the bits, the
number of points and the reason).  Two kinds of rule:

* :class:`ConstantBits`: bits of the generated Verilog's nets that cannot change: tied to a
  literal (``assign x[31:3] = 29'h0``, ``{ 31'h0, last, 32'h0 }``), a mux of two literals
  that agree on them, or above the highest value the net's operands allow (``$5 = $4 - 1``
  with ``$4`` at most 40 bits wide in value...): :mod:`scripts.coverage_bits`, from the
  Verilog the models were built from.  A bit it calls constant that the run did toggle
  stops the report (the analysis is wrong).
* :class:`SignalBits`: named signals (and the adders that count them), from a bit up, or in
  one configuration only, with the reason written in the table: the error code's bits above
  the largest :class:`~hdl.isa.ErrorCode`; the upper bits of the 64-bit performance
  counters, which a regression of programs of a few thousand cycles cannot reach; the
  weight-stall counter of an output-stationary core, which has no weights to wait for.

Everything else that did not toggle is a gap for a test to close, not an exclusion.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from hdl import regmap
from hdl.isa import ErrorCode

from .coverage_bits import module_constants

__all__ = ["RULES", "ConstantBits", "SignalBits", "Excluder", "verilator_name"]


def verilator_name(name: str) -> str:
    """A Verilog identifier as Verilator's coverage names it (``$17`` -> ``__02417``,
    ``count__cycles`` -> ``count___05Fcycles``, ``a.b[0]`` -> ``a__02eb__05b0__05d``)."""
    out, prev = [], ""
    for c in name:
        if c.isalnum():
            out.append(c)
        elif c == "_":
            out.append("__05F" if prev == "_" else "_")
        else:
            out.append(f"__0{ord(c):02x}")      # lower-case hex (``.`` -> ``__02e``)
        prev = c
    return "".join(out)


def _plain(ident: str) -> str:
    return ident[1:] if ident.startswith("\\") else ident


#: Verilator 5.048's toggle points of nets wider than this repeat bits 32.. at bits 64..
#: (seen on a 90-bit requantizer net whose constant top bit "toggled" with bit 57): no bit
#: of such a net is excluded; their points count as Verilator reports them.
WIDE = 64


def constant_bits(verilog: Path) -> dict:
    """``{(module, signal): {bits}}``: the bits that cannot change (:mod:`.coverage_bits`),
    by the module's name as Verilog has it and the signal's name as Verilator covers it."""
    out = {}
    for (module, net), mask in module_constants(verilog, WIDE).items():
        out[(module, verilator_name(net))] = {b for b in range(mask.bit_length()) if mask >> b & 1}
    return out


@dataclass(frozen=True)
class ConstantBits:
    """Bits tied to a constant by the generated Verilog (see :func:`constant_bits`)."""
    name: str = "constant"
    reason: str = ("tied to a constant in the generated Verilog (a literal assigned to the "
                   "bits or a literal part of a concatenation): cannot toggle")


@dataclass(frozen=True)
class SignalBits:
    """Bits ``from_bit`` and up of the named signals (and of ``count + 1`` adders of
    them), optionally only in cores of one dataflow."""
    name: str
    signals: tuple
    reason: str
    from_bit: int = 0
    dataflow: str | None = None
    #: instead of ``from_bit`` up: the bits below the bus's byte offset (byte counts of
    #: whole beats)
    below_beat: bool = False

    def takes(self, hier: str, bit: int) -> bool:
        if self.dataflow and f"_{self.dataflow}_" not in hier:
            return False
        if self.below_beat:
            bus_bits = int(re.search(r"_b(\d+)_", hier).group(1))
            return bit < (bus_bits // 8).bit_length() - 1
        return bit >= self.from_bit


#: Performance counters above this bit: bit k toggles both ways after 2**(k+1) events, the
#: regression's longest programs run about 2**13 cycles; a program long enough to reach
#: bit 16 both ways (131072 cycles) costs minutes of cocotb per configuration, and the
#: upper bits sit on the same 64-bit adder as the lower ones, which do toggle.
COUNTER_BIT = 16

#: The error latch's 8-bit code holds an :class:`hdl.isa.ErrorCode`: the bits from the
#: largest code's width up are never set.
CODE_BITS = max(ErrorCode).bit_length()

RULES = (
    ConstantBits(),
    SignalBits("error_code_high_bits", ("error",),
               f"the error latch's 8-bit code is loaded only with an ErrorCode (at most "
               f"{int(max(ErrorCode))}, {CODE_BITS} bits): bits {CODE_BITS} and up stay 0",
               from_bit=CODE_BITS),
    SignalBits("counter_high_bits", tuple(regmap.COUNTERS),
               f"64-bit performance counter bits {COUNTER_BIT} and up: 2**{COUNTER_BIT + 1} "
               "counted events are needed for both edges; the regression's programs run "
               "about 2**13 cycles each (the counters clear on START)", from_bit=COUNTER_BIT),
    SignalBits("os_no_weights", ("stall_weights",),
               "an output-stationary core has no PRELOAD: the weight-stall event is tied "
               "low, so its counter never moves", dataflow="os"),
    SignalBits("dma_bytes_below_beat", ("dma_bytes_read", "dma_bytes_written",
                                        "bytes_read", "bytes_written"),
               "the DMA byte counters count whole bus beats: the bits below the beat's byte "
               "offset stay 0", below_beat=True),
)


class Excluder:
    """Applies :data:`RULES` to merged coverage points; collects what each rule took."""

    def __init__(self, rules=RULES, sims: int = 1, verilog_dir: Path | None = None):
        self.rules = rules
        self.sims = sims          # simulations merged (a constant 1 rises once in each)
        self.verilog_dir = verilog_dir   # copies of the Verilog the models were built from
        self._consts: dict = {}
        self._adders: dict = {}
        self.taken = defaultdict(lambda: {"bits": set(), "points": 0})
        self.points: set = set()        # keys of the points left out

    def _constants(self, verilog: str) -> dict:
        if verilog not in self._consts:
            path = Path(verilog)
            if self.verilog_dir is not None and (self.verilog_dir / path.name).exists():
                path = self.verilog_dir / path.name
            self._consts[verilog] = constant_bits(path)
            self._adders[verilog] = _adder_names(path)
        return self._consts[verilog]

    def rule_for(self, fields: dict, signal: str, bit: int):
        """The rule that excludes this toggle point, or None."""
        verilog, hier = fields.get("f", ""), fields.get("h", "")
        module = fields["page"].split("/", 1)[-1]
        for rule in self.rules:
            if isinstance(rule, ConstantBits):
                if bit in self._constants(verilog).get((module, signal), ()):
                    return rule
                continue
            self._constants(verilog)
            base = self._adders[verilog].get((module, signal), signal)
            if rule.takes(hier, bit) and any(_is_signal(base, s) for s in rule.signals):
                return rule
        return None

    def note(self, rule, config: str, module: str, signal: str, bit: int):
        entry = self.taken[(rule.name, config, module, signal)]
        entry["bits"].add(bit)
        entry["points"] += 1

    def listing(self) -> list:
        """``summary.json``'s ``excluded``: one entry per rule, configuration, module and
        signal, with its bits, points and reason."""
        reasons = {r.name: r.reason for r in self.rules}
        out = []
        for (rule, config, module, signal), e in sorted(self.taken.items()):
            out.append({"rule": rule, "config": config, "module": module, "signal": signal,
                        "bits": _ranges(e["bits"]), "points": e["points"],
                        "reason": reasons[rule]})
        return out


def _is_signal(covered: str, name: str) -> bool:
    """``covered`` (Verilator's name) is the signal ``name``, its ``count__`` register or a
    renamed copy of it (``name$326``)."""
    v = verilator_name(name)
    return re.fullmatch(rf"(count___05F)?{v}(__024\d+)?", covered) is not None


_ADDER = re.compile(r"^\s*assign\s+(\\\S+)\s*=\s*(\\\S+|[A-Za-z_][\w$]*)\s*\+\s*1'h1;\s*$")
_ALIAS = re.compile(r"^\s*(\\\S+)\s*(?:<=|=)\s*(\\\S+|[A-Za-z_][\w$]*)\s*\[?[\d:]*\]?\s*;\s*$")


def _adder_names(verilog: Path) -> dict:
    """``{(module, anonymous net): signal}`` for ``$n = signal + 1'h1`` adders and the
    anonymous registers that copy them, so that a counter's adder goes with it."""
    out = {}
    module = None
    for line in verilog.read_text().splitlines():
        if line.startswith("module "):
            module = _plain(line.split()[1].split("(")[0])
            continue
        a = _ADDER.match(line) or _ALIAS.match(line)
        if a and module:
            src = verilator_name(_plain(a.group(2)))
            key = (module, verilator_name(_plain(a.group(1))))
            src = out.get((module, src), src)
            # a net that copies two different signals is no one's copy
            out[key] = src if out.get(key, src) == src else None
    return {k: v for k, v in out.items() if v is not None}


def _ranges(bits) -> str:
    """``{0, 1, 2, 5}`` -> ``"0..2,5"``."""
    bits, out, start = sorted(bits), [], None
    for i, b in enumerate(bits):
        if start is None:
            start = b
        if i + 1 == len(bits) or bits[i + 1] != b + 1:
            out.append(f"{start}" if start == b else f"{start}..{b}")
            start = None
    return ",".join(out)
