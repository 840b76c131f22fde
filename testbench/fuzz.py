"""Random legal programs for the NPU core, and their expected results.

A program is generated as a list of abstract operations (:class:`Op`: an opcode and its
fields, no dependency flags).  :func:`legalize` turns any such list into a *legal* program:
it drops operations whose operands would read scratchpad/accumulator lines nothing in the
program wrote (so a result never depends on what an earlier program left behind), keeps
the weight-stationary PRELOAD/COMPUTE pairing, puts a CONFIG before the first STORE, and adds
the dependency tokens (and, between the load and store units, which share no token queue,
SYNCs) that make the decoupled hardware compute what the functional model computes in
order.  Every read-after-write, write-after-read and write-after-write between two units on
the scratchpad, the accumulator or DRAM gets one.  Because shrinking deletes abstract
operations and re-legalizes, every reduced candidate is legal too.

A program may end in a fault (:data:`FAULTS`): after a SYNC, one instruction that stops the
core with that code.  The functional model defines the results: DRAM after the run (for the
faults it cannot model -- AXI errors and token deadlock -- after the program without its
faulting tail) and, for the faults it does model, the error code.
"""

from __future__ import annotations

import math
import random
import struct
from dataclasses import dataclass, field, replace

from hdl import isa
from hdl.config import WEIGHT_BANKS, NPUConfig
from hdl.isa import ErrorCode, Opcode
from sim_models.compiler import ORT_SCALE_RANGE

__all__ = ["Op", "FuzzProgram", "FAULTS", "generate", "legalize", "build", "relocate",
           "unused_noise",
           "IMAGE_BYTES", "DATA", "SLVERR", "DECERR", "FuzzError"]

#: DRAM image of every fuzz program; the program sits below ``DATA``, operands inside it,
#: and the two regions that answer SLVERR / DECERR above it (inside the DMA window).
IMAGE_BYTES = 0x8000
DATA = range(0x1000, 0x6000)
SLVERR = range(0x6000, 0x6800)
DECERR = range(0x6800, 0x7000)
PROGRAM_MAX = 0x800          #: the program starts below this address
FAULTS = (None,) + tuple(e for e in ErrorCode if e != ErrorCode.NONE)

UNIT = {Opcode.LOAD: "L", Opcode.LOAD_ACC: "L", Opcode.PRELOAD: "C", Opcode.COMPUTE: "C",
        Opcode.STORE: "S", Opcode.CONFIG: "S"}
#: (producer unit, consumer unit) -> (producer's push flag, consumer's pop flag)
CHANNELS = {("L", "C"): ("push_next", "pop_prev"), ("C", "L"): ("push_prev", "pop_next"),
            ("C", "S"): ("push_next", "pop_prev"), ("S", "C"): ("push_prev", "pop_next")}


class FuzzError(ValueError):
    """A bad request to the generator (the message names the problem)."""


@dataclass
class Op:
    """One abstract instruction: ``op`` with its fields; ``extra_dep`` asks for a token
    from the latest instruction of a neighbouring unit even without a hazard."""
    op: Opcode
    fields: dict
    extra_dep: bool = False


@dataclass
class FuzzProgram:
    """A legal program and everything needed to run it on any back end."""
    seed: int
    cfg: NPUConfig
    ops: list                     # the abstract operations (before legalization)
    fault: ErrorCode | None       # the fault the program ends in, or None
    fault_words: list             # the faulting tail (SYNC, the instruction, HALT)
    words: list = field(default_factory=list)     # the legal program
    prefix_len: int = 0           # instructions before the faulting tail
    image: bytes = b""
    program_addr: int = 0
    dram_base: int = 0
    dram_size: int = IMAGE_BYTES

    @property
    def slverr(self):
        return [SLVERR]

    @property
    def decerr(self):
        return [DECERR]

    def describe(self) -> str:
        """The program, one decoded instruction a line."""
        out = []
        for pc, w in enumerate(self.words):
            try:
                d = isa.decode(w)
                flags = "".join(f + " " for f in isa.FLAGS if d[f])
                rest = {k: v for k, v in d.items() if k not in ("op", *isa.FLAGS)}
                out.append(f"{pc:3d} {d['op'].name:8s} {flags}{rest}")
            except isa.IsaError:
                out.append(f"{pc:3d} {w:#034x} (illegal opcode)")
        return "\n".join(out)


# -- resources and hazards ------------------------------------------------------------------

def _rows(addr, stride, nrows, nbytes):
    return [(addr + r * stride, addr + r * stride + nbytes) for r in range(nrows)]


def _effects(cfg: NPUConfig, o: Op):
    """``(reads, writes)``: lists of ``(space, lo, hi)`` intervals ``o`` touches."""
    f, R = o.fields, cfg.rows
    if o.op == Opcode.LOAD:
        return ([("dram", a, b) for a, b in _rows(f["dram_addr"], f["dram_stride"], f["nrows"],
                                                   f["ncols"])],
                [("sp", f["sp_addr"], f["sp_addr"] + f["nrows"])])
    if o.op == Opcode.LOAD_ACC:
        return ([("dram", a, b) for a, b in _rows(f["dram_addr"], f["dram_stride"], f["nrows"],
                                                   4 * f["ncols"])],
                [("acc", f["acc_addr"], f["acc_addr"] + f["nrows"])])
    if o.op == Opcode.PRELOAD:
        return [("sp", f["sp_addr"], f["sp_addr"] + f["nrows"])], []
    if o.op == Opcode.COMPUTE:
        n = f["nrows"]
        reads = [("sp", f["a_addr"], f["a_addr"] + n)]
        if cfg.dataflow == "os":
            reads.append(("sp", f["b_addr"], f["b_addr"] + n))
        out = ("acc", f["acc_addr"], f["acc_addr"] + (n if cfg.dataflow == "ws" else R))
        return reads + ([out] if f["accumulate"] else []), [out]
    if o.op == Opcode.STORE:
        nbytes = f["ncols"] * (4 if f["raw"] else 1)
        reads = [("acc", f["acc_addr"], f["acc_addr"] + f["nrows"])]
        if f.get("to_sp"):          # one scratchpad line per row
            return reads, [("sp", a, b) for a, b in _rows(f["dram_addr"], f["dram_stride"],
                                                         f["nrows"], 1)]
        return reads, [("dram", a, b) for a, b in _rows(f["dram_addr"], f["dram_stride"],
                                                        f["nrows"], nbytes)]
    return [], []


def _overlap(xs, ys) -> set:
    """The spaces (``sp``, ``acc``, ``dram``) where two interval lists meet."""
    return {s for s, a, b in xs for t, c, d in ys if s == t and a < d and c < b}


def _conflict(e1, e2) -> set:
    """Spaces of a read-after-write, write-after-read or write-after-write between two
    operations' effects (empty: they commute)."""
    (r1, w1), (r2, w2) = e1, e2
    return _overlap(w1, r2) | _overlap(w1, w2) | _overlap(r1, w2)


def _can_push(op: Opcode, producer: str, consumer: str) -> bool:
    """Whether the hardware pushes the token of ``op`` towards ``consumer``, and when.

    Measured from ``hdl/units.py``: CONFIG neither pops nor pushes; a PRELOAD pushes only to
    the load unit (when its weight lines are read); a COMPUTE pushes to the load unit when
    its scratchpad reads are done and to the store unit when its last result is written."""
    if op == Opcode.CONFIG:
        return False
    if op == Opcode.PRELOAD:
        return consumer == "L"
    return True


# -- legalization ---------------------------------------------------------------------------

class _State:
    """What a prefix of the program has defined: initialized lines, pending weight tiles."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.sp, self.acc = set(), set()
        self.preloads = 0
        self.configured = False
        self.mode = 0           # the last CONFIG's rounding (it sets every lane's mode)
        self.inner = False      # the add mode's shared inner-sum constants set here

    def store_ready(self) -> bool:
        """Whether a STORE reads only parameters this program set: every lane's, and the
        add mode's inner-sum constants when that mode is on (a core running programs back
        to back keeps both from the program before)."""
        return self.configured and (self.mode != 2 or self.inner)

    def valid(self, o: Op) -> bool:
        cfg, f = self.cfg, o.fields
        if not isa.operands_ok(cfg, o.op, f, preloads=self.preloads):
            return False
        reads, _ = _effects(cfg, o)
        for space, lo, hi in reads:
            lines = self.sp if space == "sp" else self.acc if space == "acc" else None
            if lines is not None and not set(range(lo, hi)) <= lines:
                return False
        return not (o.op == Opcode.STORE and not self.store_ready())

    def apply(self, o: Op):
        _, writes = _effects(self.cfg, o)
        for space, lo, hi in writes:
            if space in ("sp", "acc"):
                getattr(self, space).update(range(lo, hi))
        if o.op == Opcode.PRELOAD:
            self.preloads += 1
        elif o.op == Opcode.COMPUTE and self.cfg.dataflow == "ws":
            self.preloads -= 1
        elif o.op == Opcode.CONFIG and o.fields.get("add_inner"):
            self.inner = True
        elif o.op == Opcode.CONFIG:
            self.mode = o.fields.get("rounding", 0)
            if o.fields["lane"] == isa.CONFIG_ALL_LANES:
                self.configured = True      # every lane's parameters are this program's


def legalize(cfg: NPUConfig, ops: list) -> tuple[list, list]:
    """Drop the operations that are not legal where they stand, and add tokens and SYNCs.

    Parameters
    ----------
    cfg : NPUConfig
        The core.
    ops : list of Op
        Abstract operations, in program order.

    Returns
    -------
    (kept, words) : (list of Op, list of int)
        The operations kept and the encoded program (without HALT): every pending weight
        tile is used, every cross-unit hazard ordered by a token or a SYNC.
    """
    st = _State(cfg)
    kept = []
    for o in ops:
        if st.valid(o):
            st.apply(o)
            kept.append(o)
    while st.preloads:      # a weight tile nobody uses would stay for the next program
        last = max(i for i, o in enumerate(kept) if o.op == Opcode.PRELOAD)
        del kept[last]
        st = _State(cfg)
        kept = [o for o in kept if st.valid(o) and (st.apply(o) or True)]
    return kept, _tokenize(cfg, kept)


def _tokenize(cfg: NPUConfig, ops: list) -> list:
    """Encode ``ops`` with the tokens and SYNCs their hazards need.

    Each unit runs its instructions in order, so a hazard of instruction ``j`` (unit U) on an
    earlier instruction ``i`` (unit V) is covered once some V instruction at or after ``i``
    has pushed a token that an instruction of U at or before ``j`` popped.  Pushes are paired
    with the very next pop of their channel, so counts never exceed one and the k-th pop
    always takes the k-th push.  The compute unit's token to the load unit says its
    scratchpad reads are done, not its accumulator writes: an accumulator hazard from
    compute to load, like any between load and store, gets a SYNC."""
    insns = []           # [op, flags dict] or "SYNC"
    history = {u: [] for u in "LCS"}        # since the last SYNC: (insn index, op, effects)
    covered = {ch: -1 for ch in CHANNELS}   # insn index of the latest matched push
    for o in ops:
        unit, eff = UNIT[o.op], _effects(cfg, o)
        need, sync = {}, False
        for v in "LCS":
            if v == unit or not history[v]:
                continue
            hits = []
            for k, _, e in history[v]:
                spaces = _conflict(e, eff)
                if spaces:
                    hits.append(k)
                    sync |= (v, unit) not in CHANNELS or (v, unit) == ("C", "L") and \
                        spaces != {"sp"}
            # A hazard no later instruction of v can push a token for (a PRELOAD's lines a
            # STORE to_sp overwrites, with no COMPUTE after it yet) takes a SYNC.
            sync |= bool(hits) and not any(k >= max(hits) and _can_push(op, v, unit)
                                           for k, op, _ in history[v])
            if o.extra_dep and o.op != Opcode.CONFIG and (v, unit) in CHANNELS:
                hits += [k for k, op, _ in history[v][-1:] if _can_push(op, v, unit)]
            if hits:
                need[v] = max(hits)
        if sync:
            insns.append("SYNC")
            history = {u: [] for u in "LCS"}
            need = {}
        flags = {}
        for v, i in need.items():
            if covered[(v, unit)] >= i:
                continue
            carrier = max(k for k, op, _ in history[v] if _can_push(op, v, unit))
            if carrier < i:
                raise AssertionError(f"fuzz: no {v} instruction after {i} can push to {unit}")
            push, pop = CHANNELS[(v, unit)]
            insns[carrier][1][push] = 1
            flags[pop] = 1
            covered[(v, unit)] = carrier
        insns.append([o, flags])
        history[unit].append((len(insns) - 1, o.op, eff))
    return [isa.encode(Opcode.SYNC) if x == "SYNC" else isa.encode(x[0].op, **x[1], **x[0].fields)
            for x in insns]


# -- generation -----------------------------------------------------------------------------

def _addr(rng, lines: int, banks: int, n: int) -> int:
    """A first line for ``n`` lines: often right at or across a bank boundary."""
    per = lines // banks
    if rng.random() < 0.4 and banks > 1:
        edge = per * rng.randrange(1, banks)
        return max(0, min(lines - n, edge - rng.randrange(0, n + 1)))
    return rng.randrange(0, lines - n + 1)


def _dram_rows(rng, nrows: int, nbytes: int) -> tuple[int, int]:
    """``(dram_addr, dram_stride)`` for rows inside :data:`DATA`, often across 4 KiB."""
    for _ in range(100):
        stride = rng.choice([0, nbytes, nbytes, rng.randrange(0, 300), 4096 - rng.randrange(8),
                             rng.randrange(0, 64)])
        span = stride * (nrows - 1) + nbytes
        if span > len(DATA):
            continue
        if rng.random() < 0.4:      # start just before a 4 KiB boundary
            edge = 0x1000 * rng.randrange(2, DATA.stop // 0x1000)
            addr = edge - rng.randrange(1, max(2, nbytes))
        else:
            addr = rng.randrange(DATA.start, DATA.stop - span + 1)
        if DATA.start <= addr and addr + span <= DATA.stop:
            return addr, stride
    return DATA.start, nbytes


def _sp_line(a: int, cfg: NPUConfig, span: int) -> int:
    """A first scratchpad line for ``span`` lines derived from a drawn DRAM address ``a``:
    half the time ending just across a bank boundary."""
    per = cfg.sp_lines // cfg.sp_banks
    if cfg.sp_banks > 1 and a % 2:
        return max(0, min(cfg.sp_lines - span, per - span // 2 - 1))
    return a % (cfg.sp_lines - span + 1)


def _init_range(rng, lines: set, n_max: int):
    """A run of initialized lines ``(first, n)``, or None."""
    if not lines:
        return None
    first = rng.choice(sorted(lines))
    n = 1
    while n < n_max and first + n in lines and rng.random() < 0.85:
        n += 1
    return first, n


def _random_op(rng, cfg: NPUConfig, st: _State):
    """One operation that is legal after the prefix ``st`` describes (or None)."""
    R, C, W = cfg.rows, cfg.cols, cfg.sp_width
    kinds = ["LOAD", "LOAD", "LOAD_ACC", "COMPUTE", "COMPUTE", "STORE", "STORE", "CONFIG"]
    kinds += ["PRELOAD", "PRELOAD"] if cfg.dataflow == "ws" else []
    kind = rng.choice(kinds)
    if kind == "LOAD":
        n, nc = rng.randint(1, 12), rng.randint(1, W)
        a, s = _dram_rows(rng, n, nc)
        return Op(Opcode.LOAD, dict(sp_addr=_addr(rng, cfg.sp_lines, cfg.sp_banks, n), nrows=n,
                                    ncols=nc, dram_addr=a, dram_stride=s))
    if kind == "LOAD_ACC":
        n, nc = rng.randint(1, 10), rng.randint(1, C)
        a, s = _dram_rows(rng, n, 4 * nc)
        return Op(Opcode.LOAD_ACC, dict(acc_addr=_addr(rng, cfg.acc_lines, cfg.acc_banks, n),
                                        nrows=n, ncols=nc, dram_addr=a, dram_stride=s))
    if kind == "PRELOAD":
        r = _init_range(rng, st.sp, R)
        first, n = r if r and rng.random() < 0.9 else (rng.randrange(cfg.sp_lines), 0)
        return Op(Opcode.PRELOAD, dict(sp_addr=first, nrows=n))
    if kind == "COMPUTE":
        a = _init_range(rng, st.sp, 16)
        if a is None:
            return None
        n = a[1]
        rows_out = n if cfg.dataflow == "ws" else R
        b = _init_range(rng, st.sp, n) if cfg.dataflow == "os" else (0, n)
        if b is None or b[1] < n:
            return None
        acc = _addr(rng, cfg.acc_lines, cfg.acc_banks, rows_out)
        accumulate = int(rng.random() < 0.5 and set(range(acc, acc + rows_out)) <= st.acc)
        # Max pooling's write path on half the accumulating COMPUTEs, chosen by the row
        # count rather than a draw, so that every seed's program is otherwise unchanged.
        acc_max = int(accumulate and n % 2 == 1)
        return Op(Opcode.COMPUTE, dict(a_addr=a[0], b_addr=b[0] if cfg.dataflow == "os" else 0,
                                       acc_addr=acc, nrows=n, accumulate=accumulate,
                                       acc_max=acc_max))
    if kind == "STORE":
        r = _init_range(rng, st.acc, 10)
        if r is None:
            return None
        raw, nc = rng.randint(0, 1), rng.randint(1, C)
        a, s = _dram_rows(rng, r[1], nc * (4 if raw else 1))
        if not raw and a % 3 == 0:
            # STORE to_sp on a third of the int8 stores, its lines and stride in lines taken
            # from the same draws (every seed's program otherwise unchanged): often across a
            # bank boundary, the stride 0 (one line), 1 or 2.
            stride = s % 3
            span = stride * (r[1] - 1) + 1
            line = _sp_line(a, cfg, span)
            return Op(Opcode.STORE, dict(acc_addr=r[0], nrows=r[1], ncols=nc, raw=0, to_sp=1,
                                         dram_addr=line, dram_stride=stride))
        return Op(Opcode.STORE, dict(acc_addr=r[0], nrows=r[1], ncols=nc, raw=raw,
                                     dram_addr=a, dram_stride=s))
    return _random_config(rng, cfg, all_lanes=rng.random() < 0.4)


def _add_constants(rng) -> tuple[int, int]:
    """The add mode's ``m | s << 24`` (a 24-bit significand, a shift; or any 32 bits) and
    ``k``-like shift (any 6 bits, or a typical 20..46)."""
    packed = rng.choice([rng.randrange(1 << 23, 1 << 24) | rng.randint(0, 24) << 24,
                         rng.randrange(0, 1 << 32)])
    return packed, rng.choice([rng.randint(20, 46), rng.randint(-64, 63)])


def _inner_config(rng) -> Op:
    """CONFIG setting the add mode's shared inner-sum constants (``add_inner``)."""
    packed, sf = _add_constants(rng)
    mf = rng.choice([0, rng.randint(-(1 << 24), 1 << 24), rng.randint(-(1 << 31), (1 << 31) - 1)])
    return Op(Opcode.CONFIG, dict(lane=isa.CONFIG_ALL_LANES, add_inner=1, multiplier=packed,
                                  shift=sf, bias=mf))


def _random_config(rng, cfg: NPUConfig, all_lanes: bool) -> Op:
    """CONFIG with random requantization parameters (any Q31 multiplier, shift -63..31), or
    (1 in 8) the add mode's shared inner-sum constants (``add_inner``)."""
    if rng.random() < 0.125:
        return _inner_config(rng)
    lo, hi = sorted(rng.randint(-128, 127) for _ in range(2))
    if rng.random() < 0.3:
        lo, hi = rng.choice([(-128, 127), (0, 127), (0, 6), (hi, lo)])
    # 1 onnxruntime: the multiplier is a float32 scale; 2 add: ma | sa << 24, shift = k
    rounding = rng.choices([0, 1, 2], [0.55, 0.3, 0.15])[0]
    multiplier = rng.choice([rng.randrange(1 << 30, 1 << 31), rng.randrange(0, 1 << 32),
                             0, (1 << 31) - 1, 1 << 31])
    shift = rng.choice([rng.randint(-12, 4), rng.randint(-63, 31), -63, 31, 0])
    if rounding == 2:
        multiplier, shift = _add_constants(rng)
    if rounding == 1:
        lo_s, hi_s = ORT_SCALE_RANGE
        scale = 2.0 ** rng.uniform(math.log2(lo_s), math.log2(hi_s) - 1e-6)
        multiplier = struct.unpack("<I", struct.pack("<f", scale))[0]
    return Op(Opcode.CONFIG, dict(
        lane=isa.CONFIG_ALL_LANES if all_lanes else rng.randrange(cfg.cols),
        rounding=rounding, multiplier=multiplier, shift=shift,
        zero_point=rng.randint(-128, 127), clamp_min=lo, clamp_max=hi,
        bias=rng.choice([0, rng.randint(-(1 << 31), (1 << 31) - 1), rng.randint(-1000, 1000)])))


def generate_ops(rng, cfg: NPUConfig, n_ops: int) -> list:
    """``n_ops`` random operations, each legal after the ones before it."""
    st = _State(cfg)
    ops = []
    first = _random_op(random.Random(rng.random()), cfg, st)
    while first is None or first.op != Opcode.LOAD:      # something to compute on
        first = _random_op(rng, cfg, st)
    for o in [first]:
        st.apply(o)
        ops.append(o)
    tries = 0
    while len(ops) < n_ops and tries < 20 * n_ops:
        tries += 1
        o = _random_op(rng, cfg, st)
        if o is None:
            continue
        if o.op == Opcode.STORE and not st.configured:
            ops.append(_config_op(rng, cfg))
            st.apply(ops[-1])
        if o.op == Opcode.STORE and not st.store_ready():
            ops.append(_inner_config(rng))
            st.apply(ops[-1])
        if not st.valid(o):
            continue
        o.extra_dep = rng.random() < 0.15
        st.apply(o)
        ops.append(o)
    return ops


def _config_op(rng, cfg):
    return _random_config(rng, cfg, all_lanes=True)


# -- faulting tails -------------------------------------------------------------------------

def _bad_operand(rng, cfg: NPUConfig, st: _State) -> list:
    """Instructions whose last breaks one rule of ``isa.operands_ok`` (chosen at random)."""
    cases = bad_operand_cases(cfg, rng)
    return cases[rng.choice(sorted(cases))]


def bad_operand_cases(cfg: NPUConfig, rng=None) -> dict:
    """Every rule of ``isa.operands_ok`` broken once: rule name -> instructions whose last
    one the core must refuse with ``BAD_OPERAND``.  Field values are drawn from ``rng``;
    without one each rule is broken by the smallest amount (one line past a bound, one
    column too wide), which a bound loosened by one would accept."""
    rng = rng or _Smallest()
    R, C, W, SP, ACC = cfg.rows, cfg.cols, cfg.sp_width, cfg.sp_lines, cfg.acc_lines
    d = dict(dram_addr=DATA.start, dram_stride=0)
    rules = {
        "load_nrows0": (Opcode.LOAD, dict(sp_addr=0, nrows=0, ncols=1, **d)),
        "load_ncols0": (Opcode.LOAD, dict(sp_addr=0, nrows=1, ncols=0, **d)),
        "load_wide": (Opcode.LOAD, dict(sp_addr=0, nrows=1, ncols=rng.randint(W + 1, 4095), **d)),
        "load_range": (Opcode.LOAD, dict(sp_addr=SP - 4 + rng.randint(1, 4), nrows=4, ncols=1,
                                         **d)),
        "load_acc_range": (Opcode.LOAD_ACC, dict(acc_addr=rng.randint(ACC - 2, 0xFFFF), nrows=3,
                                                 ncols=1, **d)),
        "load_acc_wide": (Opcode.LOAD_ACC, dict(acc_addr=0, nrows=1,
                                                ncols=rng.randint(C + 1, 4095), **d)),
        "store_wide": (Opcode.STORE, dict(acc_addr=0, nrows=1, ncols=rng.randint(C + 1, 4095),
                                          raw=1, **d)),
        "store_range": (Opcode.STORE, dict(acc_addr=ACC - 1, nrows=rng.randint(2, 0xFFFF),
                                           ncols=1, raw=0, **d)),
        "store_nrows0": (Opcode.STORE, dict(acc_addr=0, nrows=0, ncols=1, raw=0, **d)),
        "store_sp_raw": (Opcode.STORE, dict(acc_addr=0, nrows=1, ncols=1, raw=1, to_sp=1,
                                            dram_addr=0, dram_stride=0)),
        "store_sp_range": (Opcode.STORE, dict(acc_addr=0, nrows=3, ncols=1, raw=0, to_sp=1,
                                              dram_addr=SP - 5 + rng.randint(1, 4),
                                              dram_stride=2)),
        "config_lane": (Opcode.CONFIG, dict(lane=rng.randint(C, 254), multiplier=1, shift=0,
                                            zero_point=0, clamp_min=-128, clamp_max=127,
                                            bias=0, rounding=0)),
        "config_mode3": (Opcode.CONFIG, dict(lane=isa.CONFIG_ALL_LANES, multiplier=1, shift=0,
                                             zero_point=0, clamp_min=-128, clamp_max=127,
                                             bias=0, rounding=3)),
    }
    if cfg.dataflow == "ws":
        rules.update({
            "preload_rows": (Opcode.PRELOAD, dict(sp_addr=0, nrows=rng.randint(R + 1, 0xFFFF))),
            "preload_range": (Opcode.PRELOAD, dict(sp_addr=SP - R + rng.randint(1, R), nrows=R)),
            "compute_no_preload": (Opcode.COMPUTE, dict(a_addr=0, acc_addr=0, nrows=1)),
            "compute_a_range": (Opcode.COMPUTE, dict(a_addr=SP - 1, acc_addr=0, nrows=2)),
            "compute_acc_range": (Opcode.COMPUTE, dict(a_addr=0, acc_addr=ACC - 1, nrows=2)),
            "compute_nrows0": (Opcode.COMPUTE, dict(a_addr=0, acc_addr=0, nrows=0)),
            "preload_third": (Opcode.PRELOAD, dict(sp_addr=0, nrows=0)),
        })
    else:
        rules.update({
            "preload_os": (Opcode.PRELOAD, dict(sp_addr=0, nrows=1)),
            "compute_a_range": (Opcode.COMPUTE, dict(a_addr=SP - 1, b_addr=0, acc_addr=0,
                                                     nrows=2)),
            "compute_b_range": (Opcode.COMPUTE, dict(a_addr=0, b_addr=SP - 1, acc_addr=0,
                                                     nrows=2)),
            "compute_acc_range": (Opcode.COMPUTE, dict(a_addr=0, b_addr=0,
                                                       acc_addr=ACC - R + 1, nrows=1)),
            "compute_nrows0": (Opcode.COMPUTE, dict(a_addr=0, b_addr=0, acc_addr=0, nrows=0)),
        })
    out = {}
    for name, (op, f) in rules.items():
        words, preloads = [], 0
        if name in ("compute_a_range", "compute_acc_range", "compute_nrows0") \
                and cfg.dataflow == "ws":
            words, preloads = [isa.encode(Opcode.PRELOAD, sp_addr=0, nrows=0)], 1
        elif name == "preload_third":
            words = [isa.encode(Opcode.PRELOAD, sp_addr=0, nrows=0)] * WEIGHT_BANKS
            preloads = WEIGHT_BANKS
        if isa.operands_ok(cfg, op, f, preloads=preloads):
            raise AssertionError(f"fuzz: bad-operand rule {name} gave a legal {op.name} {f}")
        out[name] = words + [isa.encode(op, **f)]
    return out


class _Smallest:
    """A stand-in for ``random.Random`` whose draws are the smallest allowed."""

    @staticmethod
    def randint(lo, hi):
        return lo


def _fault_tail(rng, cfg: NPUConfig, st: _State, fault: ErrorCode, window) -> list:
    """The instructions after the final SYNC of a program that ends in ``fault``."""
    base, end = window
    if fault == ErrorCode.ILLEGAL_OPCODE:
        return [rng.randrange(8, 16) | (rng.getrandbits(isa.INSN_BITS - 4) << 4)]
    if fault == ErrorCode.BAD_OPERAND:
        return _bad_operand(rng, cfg, st)
    if fault == ErrorCode.DEADLOCK:
        load = dict(sp_addr=0, nrows=1, ncols=1, dram_addr=DATA.start, dram_stride=0)
        choices = [isa.encode(Opcode.LOAD, pop_next=1, **load),
                   isa.encode(Opcode.STORE, pop_prev=1, acc_addr=0, nrows=1, ncols=1, raw=1,
                              dram_addr=DATA.start, dram_stride=0)]
        if cfg.dataflow == "ws":
            choices.append(isa.encode(Opcode.PRELOAD, rng.randint(0, 1), 1, sp_addr=0, nrows=0))
        else:
            choices.append(isa.encode(Opcode.COMPUTE, pop_prev=1, a_addr=0, b_addr=0,
                                      acc_addr=0, nrows=1))
        return [rng.choice(choices)]
    if fault == ErrorCode.DMA_RANGE:
        n, nc = rng.randint(1, 4), rng.randint(1, cfg.sp_width)
        if base > 0 and rng.random() < 0.3:
            addr, stride = rng.randrange(0, max(1, base - nc)), 0
        else:
            addr = rng.randrange(max(DATA.start, end - nc * n - 64), IMAGE_BYTES - nc)
            stride = nc if addr + nc <= end else 0
            if addr + stride * (n - 1) + nc <= end:
                addr = end - nc + 1
        return [isa.encode(Opcode.LOAD, sp_addr=0, nrows=n, ncols=nc, dram_addr=addr,
                           dram_stride=stride)]
    region = SLVERR if fault == ErrorCode.AXI_SLVERR else DECERR
    n = rng.randint(1, 3)
    addr = rng.randrange(region.start, region.stop - 64 * n)
    acc = _init_range(rng, st.acc, n)
    if acc and rng.random() < 0.5:
        return [isa.encode(Opcode.STORE, acc_addr=acc[0], nrows=acc[1], ncols=cfg.cols, raw=1,
                           dram_addr=addr, dram_stride=64)]
    if rng.random() < 0.5:
        return [isa.encode(Opcode.LOAD_ACC, acc_addr=0, nrows=n, ncols=rng.randint(1, cfg.cols),
                           dram_addr=addr, dram_stride=64)]
    return [isa.encode(Opcode.LOAD, sp_addr=0, nrows=n, ncols=rng.randint(1, cfg.sp_width),
                       dram_addr=addr, dram_stride=64)]


# -- whole programs -------------------------------------------------------------------------

def unused_noise(rng, words: list) -> list:
    """``words`` with random values in every bit no field of their opcode uses (above the
    opcode and the flags): the hardware must ignore them, and the instruction queues'
    storage sees every bit toggle.  Words with an illegal opcode are kept as they are."""
    out = []
    for w in words:
        try:
            op = isa.decode(w)["op"]
        except isa.IsaError:
            out.append(w)
            continue
        mask = ((1 << isa.INSN_BITS) - 1) & ~((1 << (isa.FLAG_LSB + len(isa.FLAGS))) - 1)
        for f in isa.FIELDS[op].values():
            mask &= ~(((1 << f.width) - 1) << f.lsb)
        out.append(w | (rng.getrandbits(isa.INSN_BITS) & mask))
    return out


def build(seed: int, cfg: NPUConfig, ops: list, fault, fault_words: list,
          rng: random.Random | None = None, layout: tuple | None = None) -> FuzzProgram:
    """Legalize ``ops``, append the faulting tail and HALT, and lay out the DRAM image.

    ``layout`` (program address, DMA window base, window end) keeps a reproducer's layout."""
    rng = rng or random.Random(seed ^ 0x5EED)
    kept, words = legalize(cfg, ops)
    prefix_len = len(words)
    if fault is not None:
        words = words + [isa.encode(Opcode.SYNC)] + list(fault_words)
    words = unused_noise(random.Random(seed ^ 0xB175), words + [isa.encode(Opcode.HALT)])
    nbytes = len(words) * isa.INSN_BYTES
    if nbytes > PROGRAM_MAX:
        raise FuzzError(f"program of {len(words)} instructions does not fit below "
                        f"{PROGRAM_MAX:#x}: ask for fewer operations")
    if layout is None:
        paddr = isa.INSN_BYTES * rng.randrange(0, (PROGRAM_MAX - nbytes) // isa.INSN_BYTES + 1)
        base = rng.choice([0, 0, rng.randrange(0, paddr + 1)])
        end = rng.randrange(0x7000, 0x7F00)
    else:
        paddr, base, end = layout
    data = rng.getrandbits(8 * IMAGE_BYTES).to_bytes(IMAGE_BYTES, "little")
    image = bytearray(data)
    image[paddr:paddr + nbytes] = isa.program_bytes(words)
    return FuzzProgram(seed=seed, cfg=cfg, ops=kept, fault=fault, fault_words=list(fault_words),
                       words=words, prefix_len=prefix_len, image=bytes(image),
                       program_addr=paddr, dram_base=base, dram_size=end - base)


def generate(seed: int, cfg: NPUConfig, n_ops: int | None = None,
             fault="random") -> FuzzProgram:
    """A random legal program for ``cfg``, reproducible from ``seed``.

    Parameters
    ----------
    seed : int
        Everything (operations, fault, layout, data) follows from it.
    cfg : NPUConfig
        The core.
    n_ops : int, optional
        Abstract operations before legalization (default: 4..28 at random, 40..70 in
        15 % of the programs).
    fault : ErrorCode, None or "random"
        The fault the program ends in (``None``: none; ``"random"``: none in half of the
        programs, each fault code equally often in the rest).

    Returns
    -------
    FuzzProgram
    """
    if not isinstance(cfg, NPUConfig):
        raise FuzzError(f"cfg must be an NPUConfig, not {type(cfg).__name__}")
    if cfg.sp_lines < 64 or cfg.acc_lines < 32:
        raise FuzzError(f"fuzzing needs sp_lines >= 64 and acc_lines >= 32, not "
                        f"{cfg.sp_lines}/{cfg.acc_lines}")
    rng = random.Random(seed)
    if n_ops is None:      # some long programs, so that queues fill up
        n_ops = rng.randint(4, 28) if rng.random() < 0.85 else rng.randint(40, 70)
    if fault == "random":
        fault = None if rng.random() < 0.5 else rng.choice(FAULTS[1:])
    elif fault is not None:
        fault = ErrorCode(fault)
    ops = generate_ops(rng, cfg, n_ops)
    kept, words = legalize(cfg, ops)
    st = _State(cfg)
    for o in kept:
        st.apply(o)
    room = PROGRAM_MAX // isa.INSN_BYTES - (len(words) + 6)    # the tail has at most 4 words
    if room < 0:
        raise FuzzError(f"{len(words)} instructions do not fit below {PROGRAM_MAX:#x}: ask "
                        f"for fewer operations than {n_ops}")
    paddr = isa.INSN_BYTES * rng.randint(0, room)
    base = rng.choice([0, 0, rng.randrange(0, paddr + 1)])
    end = rng.randrange(0x7000, 0x7F00)
    tail = _fault_tail(rng, cfg, st, fault, (base, end)) if fault is not None else []
    return build(seed, cfg, kept, fault, tail, rng=random.Random(seed ^ 0x5EED),
                 layout=(paddr, base, end))


def relocate(prog: FuzzProgram, offset: int) -> FuzzProgram:
    """``prog`` moved up by ``offset`` bytes in DRAM: its program address, DMA window and
    every DMA instruction's ``dram_addr`` (the image then belongs at ``offset``; a STORE
    ``to_sp``'s is a scratchpad line and stays).  Results
    are those of ``prog`` shifted by ``offset``; with ``offset`` a multiple of 4 KiB the
    bursts split where ``prog`` 's do, so the cycle counts are ``prog`` 's too.

    Raises
    ------
    FuzzError
        ``offset`` not a multiple of 4 KiB, the window leaving the 32-bit address space,
        or a program ending in a bus-error fault (those are tied to fixed addresses).
    """
    top = prog.dram_base + prog.dram_size + offset
    if offset % 4096 or offset < 0 or top > 1 << 32 or prog.program_addr + offset >= 1 << 32:
        raise FuzzError(f"cannot move a program with window [{prog.dram_base:#x}, "
                        f"{prog.dram_base + prog.dram_size:#x}) up by {offset:#x}: the "
                        "offset must be a multiple of 4 KiB and the window stay below 2**32")
    if prog.fault in (ErrorCode.AXI_SLVERR, ErrorCode.AXI_DECERR):
        raise FuzzError(f"a program ending in {prog.fault.name} answers at fixed addresses: "
                        "it cannot be moved")
    words = []
    for w in prog.words:
        try:
            d = isa.decode(w)
        except isa.IsaError:
            words.append(w)
            continue
        if "dram_addr" in d and not d.get("to_sp"):
            fields = {k: v for k, v in d.items() if k != "op"}
            fields["dram_addr"] += offset
            w = isa.encode(d["op"], **fields)
        words.append(w)
    image = bytearray(prog.image)
    code = isa.program_bytes(words)
    image[prog.program_addr:prog.program_addr + len(code)] = code
    return replace(prog, words=words, image=bytes(image),
                   program_addr=prog.program_addr + offset, dram_base=prog.dram_base + offset)
