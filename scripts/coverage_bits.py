"""Which bits of the generated Verilog's nets cannot change: a small static analysis.

Yosys writes one operator per ``assign`` (``assign \\$5 = \\$4 - 1'h1;``), so each net's value
can be bounded from its operands': every net gets a :class:`Value`, the bits known to be 0
or 1 (``zeros``/``ones`` masks) and an interval ``[lo, hi]`` of its unsigned value.  Inputs,
registers and anything not understood are unknown (every bit free, full range).  Rules:
literals are known; slices, concatenations, ``?:`` (the bits both sides agree on), ``&``,
``|``, ``^``, ``~`` act bit by bit; ``+``, ``-``, ``*``, ``<<``, ``>>`` act on the intervals (a
product also keeps its factors' low zero bits: ``bank * 4'h8``) and give
up (full range) on any wrap or on a signed operand that may be negative; comparisons and
reductions are one bit.  A bit is constant when it is known, or lies above the interval's
highest value.  The result is checked against the simulation (a bit called constant that
toggled stops the report), so a mistake here cannot pass silently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Value", "module_constants"]

_TOKEN = re.compile(r"\\\S+|\$signed|\$unsigned|\d+'[sS]?[hdbo][0-9a-fA-F_xzXZ]+|\d+|"
                    r"[A-Za-z_][\w$]*|<<<|>>>|<<|>>|==|!=|<=|>=|&&|\|\||[-+*/%&|^~!?:<>{}()\[\],]")
_LIT = re.compile(r"(\d+)'([sS]?)([hdbo])([0-9a-fA-F_xzXZ]+)$")
_DECL = re.compile(r"^\s*(input|output|inout|wire|reg)\s+(?:reg\s+)?(signed\s+)?(?:\[(\d+):(\d+)\]\s+)?"
                   r"(\\\S+|[A-Za-z_][\w$]*)\s*[;=]")
_ASSIGN = re.compile(r"^\s*assign\s+(\\\S+|[A-Za-z_][\w$]*)\s*(?:\[(\d+)(?::(\d+))?\])?\s*=\s*"
                     r"(.*);\s*$")


@dataclass(frozen=True)
class Value:
    """``width`` bits; ``zeros``/``ones``: masks of the bits known 0/1; ``lo..hi``: the
    unsigned value's range."""
    width: int
    zeros: int
    ones: int
    lo: int
    hi: int

    @staticmethod
    def unknown(width: int) -> "Value":
        return Value(width, 0, 0, 0, (1 << width) - 1)

    @staticmethod
    def const(width: int, v: int) -> "Value":
        m = (1 << width) - 1
        v &= m
        return Value(width, m & ~v, v, v, v)

    @staticmethod
    def from_bits(width: int, zeros: int, ones: int) -> "Value":
        m = (1 << width) - 1
        return Value(width, zeros & m, ones & m, ones & m, m & ~zeros)

    @staticmethod
    def from_range(width: int, lo: int, hi: int) -> "Value":
        if lo < 0 or hi >= 1 << width:
            return Value.unknown(width)
        zeros = ((1 << width) - 1) & ~((1 << hi.bit_length()) - 1)
        return Value(width, zeros, lo if lo == hi else 0, lo, hi)

    def resized(self, width: int) -> "Value":
        """Zero-extended or truncated to ``width``."""
        if width >= self.width:
            extra = ((1 << width) - 1) & ~((1 << self.width) - 1)
            return Value(width, self.zeros | extra, self.ones, self.lo, self.hi)
        if self.hi < 1 << width:
            m = (1 << width) - 1
            return Value(width, self.zeros & m, self.ones & m, self.lo, self.hi)
        m = (1 << width) - 1
        return Value.from_bits(width, self.zeros & m, self.ones & m)

    def merged(self) -> "Value":
        """Known bits and range made consistent with each other."""
        r = Value.from_range(self.width, self.lo, self.hi)
        zeros, ones = self.zeros | r.zeros, self.ones | r.ones
        b = Value.from_bits(self.width, zeros, ones)
        return Value(self.width, zeros, ones, max(self.lo, b.lo), min(self.hi, b.hi))

    @property
    def constant(self) -> int:
        """Mask of the bits that cannot change."""
        return self.merged().zeros | self.merged().ones


class _Module:
    """The nets of one Verilog module, evaluated on demand."""

    def __init__(self):
        self.widths, self.signed, self.full, self.parts = {}, set(), {}, {}
        self.regs = set()
        self._memo, self._busy = {}, set()

    def value(self, name: str) -> Value:
        if name in self._memo:
            return self._memo[name]
        if name not in self.widths:
            raise _GiveUp          # not declared as this reads declarations: width unknown
        width = self.widths[name]
        if name in self._busy or name in self.regs:
            return Value.unknown(width)
        self._busy.add(name)
        try:
            if name in self.full:
                v = _Expr(self, self.full[name], width).parse().resized(width).merged()
            elif name in self.parts:
                v = self._partial(name, width)
            else:
                v = Value.unknown(width)
        except _GiveUp:
            v = Value.unknown(width)
        finally:
            self._busy.discard(name)
        self._memo[name] = v
        return v

    def _partial(self, name, width) -> Value:
        zeros = ones = 0
        for hi, lo, expr in self.parts[name]:
            try:
                v = _Expr(self, expr, hi - lo + 1).parse().resized(hi - lo + 1).merged()
            except _GiveUp:
                continue
            zeros |= v.zeros << lo
            ones |= v.ones << lo
        return Value.from_bits(width, zeros, ones)


class _GiveUp(Exception):
    pass


class _Expr:
    """One right-hand side: ``cond ? a : b``, ``a op b``, ``op a`` or a primary, evaluated
    at Verilog's context width (the assigned net's, or wider operands')."""

    def __init__(self, module: _Module, text: str, width: int):
        self.m, self.toks, self.i, self.ctx = module, _TOKEN.findall(text), 0, width

    def peek(self):
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, want=None):
        t = self.peek()
        if t is None or (want is not None and t != want):
            raise _GiveUp
        self.i += 1
        return t

    def parse(self) -> Value:
        v = self.ternary(self.ctx)
        if self.peek() is not None:
            raise _GiveUp
        return v

    def ternary(self, ctx: int) -> Value:
        cond = self.binary(ctx)
        if self.peek() != "?":
            return cond
        self.take("?")
        a = self.ternary(ctx)
        self.take(":")
        b = self.ternary(ctx)
        w = max(a.width, b.width, ctx)
        a, b = a.resized(w).merged(), b.resized(w).merged()
        same = (a.zeros & b.zeros, a.ones & b.ones)
        return Value(w, same[0], same[1], min(a.lo, b.lo), max(a.hi, b.hi))

    def binary(self, ctx: int) -> Value:
        a, a_signed = self.unary(ctx)
        op = self.peek()
        if op in (None, "?", ":", ")", "}", ",", "]"):
            return a
        self.take()
        b, b_signed = self.unary(ctx)
        if self.peek() not in (None, "?", ":", ")", "}", ",", "]"):
            raise _GiveUp          # two operators: Yosys does not write those; not understood
        if op in ("==", "!=", "<", "<=", ">", ">=", "&&", "||"):
            return Value.unknown(1)
        if (a_signed or b_signed) and op in ("+", "-", "*", "/", "%", ">>>", "<", ">"):
            for v, s in ((a, a_signed), (b, b_signed)):
                if s and not (v.merged().zeros >> (v.width - 1)) & 1:
                    raise _GiveUp  # a signed operand that may be negative
        return _binop(op, a, b, ctx)

    def unary(self, ctx: int):
        t = self.peek()
        if t in ("~", "!", "-", "&", "|", "^"):
            self.take()
            v, s = self.unary(ctx if t in ("~", "-") else 0)
            if t == "~":
                v = v.resized(max(v.width, ctx)).merged()
                return Value(v.width, v.ones, v.zeros, (1 << v.width) - 1 - v.hi,
                             (1 << v.width) - 1 - v.lo), s
            if t == "-":
                raise _GiveUp
            return Value.unknown(1), False
        return self.primary(ctx)

    def primary(self, ctx: int):
        t = self.take()
        if t in ("$signed", "$unsigned"):
            self.take("(")
            v = self.ternary(0)
            self.take(")")
            return v, t == "$signed"
        if t == "(":
            v = self.ternary(ctx)
            self.take(")")
            return v, False
        if t == "{":
            return self.concat(), False
        lit = _LIT.match(t)
        if lit:
            width, signed, base, digits = lit.groups()
            if re.search("[xzXZ]", digits):
                raise _GiveUp
            return Value.const(int(width), int(digits.replace("_", ""),
                                                 {"h": 16, "d": 10, "b": 2, "o": 8}[base])), \
                bool(signed)
        if t.isdigit():
            return Value.const(32, int(t)), False
        name = t[1:] if t.startswith("\\") else t
        v = self.m.value(name)
        if self.peek() == "[":
            v = self.slice(v)
            return v, False
        return v, name in self.m.signed

    def slice(self, v: Value) -> Value:
        self.take("[")
        hi = _int(self.take())
        lo = hi
        if self.peek() == ":":
            self.take(":")
            lo = _int(self.take())
        self.take("]")
        w = hi - lo + 1
        m = (1 << w) - 1
        v = v.merged()
        out = Value.from_bits(w, (v.zeros >> lo) & m, (v.ones >> lo) & m)
        if v.hi < 1 << (hi + 1):
            out = Value(w, out.zeros, out.ones, max(out.lo, v.lo >> lo), min(out.hi, v.hi >> lo))
        return out

    def concat(self) -> Value:
        parts = [self.ternary(0)]          # concatenation parts are self-determined
        while self.peek() == ",":
            self.take(",")
            parts.append(self.ternary(0))
        self.take("}")
        zeros = ones = lo = hi = pos = 0
        for p in reversed(parts):          # the last part is the least significant
            p = p.merged()
            zeros |= p.zeros << pos
            ones |= p.ones << pos
            lo += p.lo << pos
            hi += p.hi << pos
            pos += p.width
        return Value(pos, zeros, ones, lo, hi)


def _int(token: str) -> int:
    """A constant bit index (a variable index or ``+:`` is not understood)."""
    if not token.isdigit():
        raise _GiveUp
    return int(token)


def _low_zeros(v: Value) -> int:
    """How many of ``v``'s lowest bits are known 0 (a multiple of ``2**n``)."""
    n = 0
    while n < v.width and v.zeros >> n & 1:
        n += 1
    return n


def _binop(op, a: Value, b: Value, ctx: int) -> Value:
    w = max(a.width, b.width, ctx)
    a, b = a.resized(w).merged(), b.resized(w).merged()
    if op == "&":
        return Value(w, a.zeros | b.zeros, a.ones & b.ones, 0, min(a.hi, b.hi)).merged()
    if op == "|":
        return Value.from_bits(w, a.zeros & b.zeros, a.ones | b.ones)
    if op == "^":
        known = (a.zeros | a.ones) & (b.zeros | b.ones)
        x = a.ones ^ b.ones
        return Value.from_bits(w, known & ~x, known & x)
    # arithmetic happens at w bits: a result outside 0..2**w-1 wraps (unknown at w bits)
    if op == "+":
        return Value.from_range(w, a.lo + b.lo, a.hi + b.hi)
    if op == "-":
        return Value.from_range(w, a.lo - b.hi, a.hi - b.lo)
    if op == "*":              # and a product has the low zero bits of both factors
        r = Value.from_range(w, a.lo * b.lo, a.hi * b.hi)
        low = (1 << min(w, _low_zeros(a) + _low_zeros(b))) - 1
        return Value(w, r.zeros | low, r.ones & ~low, r.lo, r.hi).merged()
    if op == "<<":
        if b.hi > 256:
            raise _GiveUp
        return Value.from_range(w, a.lo << b.lo, a.hi << b.hi)
    if op == ">>":
        return Value.from_range(w, a.lo >> min(b.hi, 4096), a.hi >> b.lo)
    if op in ("/", "%") and b.lo == 0:
        raise _GiveUp              # a divisor that may be 0 gives x
    if op == "/":                  # bank of an address: addr / lines_per_bank
        return Value.from_range(w, a.lo // b.hi, a.hi // b.lo)
    if op == "%":                  # line within the bank: below the divisor
        if a.hi < b.lo:
            return Value.from_range(w, a.lo, a.hi)
        return Value.from_range(w, 0, min(a.hi, b.hi - 1))
    raise _GiveUp


_INIT = re.compile(r"=\s*(\d+'[hdbo][0-9a-fA-F_]+|\d+)\s*;\s*$")


def _inert(mod: _Module, name: str, init: str, lines: list) -> None:
    """A register given an initial value and never assigned (Yosys's ``reg
    \\$auto$verilog_backend...dump_module$N = 0``, read only by ``if (...) begin end`` to
    wake the ``always @*`` blocks at time 0) keeps that value: a constant."""
    ident = re.escape(name) + (r"(?=\s)" if name.startswith("\\") else r"\b")
    uses = [ln for ln in lines if re.search(ident, ln)]
    idle = re.compile(rf"^\s*if \(\s*{ident}\s*\) begin end\s*$")
    if len(uses) > 1 and all(idle.match(ln) for ln in uses[1:]):
        width = mod.widths[_plain(name)]
        lit = _LIT.match(init)
        value = int(lit.group(4).replace("_", ""), {"h": 16, "d": 10, "b": 2, "o": 8}[
            lit.group(3)]) if lit else int(init)
        mod.regs.discard(_plain(name))
        mod.full[_plain(name)] = f"{width}'h{value:x}"


def _plain(ident: str) -> str:
    return ident[1:] if ident.startswith("\\") else ident


def _modules(verilog: Path):
    """``(name, _Module)`` for each module of the file."""
    name, mod, lines, inits = None, None, [], []
    for line in verilog.read_text().splitlines() + ["module (end)"]:
        if line.startswith("module "):
            if mod is not None:
                for reg, init in inits:
                    _inert(mod, reg, init, lines)
                yield name, mod
            if line == "module (end)":
                return
            name, mod, lines, inits = line.split()[1].split("(")[0], _Module(), [], []
            name = name[1:] if name.startswith("\\") else name
            continue
        if mod is None:
            continue
        lines.append(line)
        d = _DECL.match(line)
        if d:
            n = d.group(5)[1:] if d.group(5).startswith("\\") else d.group(5)
            mod.widths[n] = int(d.group(3)) - int(d.group(4)) + 1 if d.group(3) else 1
            if d.group(2):
                mod.signed.add(n)
            if d.group(1) == "reg":
                mod.regs.add(n)
                init = _INIT.search(line)
                if init:
                    inits.append((d.group(5), init.group(1)))
            continue
        a = _ASSIGN.match(line)
        if a:
            n = a.group(1)[1:] if a.group(1).startswith("\\") else a.group(1)
            if a.group(2) is None:
                mod.full[n] = a.group(4)
            else:
                hi = int(a.group(2))
                lo = int(a.group(3)) if a.group(3) is not None else hi
                mod.parts.setdefault(n, []).append((hi, lo, a.group(4)))


def module_constants(verilog: Path, max_width: int):
    """``{(module, net): mask}``: the bits of each net (at most ``max_width`` wide) that
    cannot change, by the module's Verilog name and the net's plain name."""
    out = {}
    for name, mod in _modules(verilog):
        for net, width in mod.widths.items():
            if width > max_width:
                continue
            mask = mod.value(net).constant & ((1 << width) - 1)
            if mask:
                out[(name, net)] = mask
    return out
