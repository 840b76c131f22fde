"""Running random legal programs (``testbench.fuzz``) on every back end and comparing.

Back ends: ``functional`` (defines DRAM and, for the faults it models, the error), ``model``
(the cycle-exact model: counters, error, ERR_PC), ``verilator`` (the C++ Verilator harness,
with the cycle model replaying its seeded AXI pauses), ``icarus`` and ``cocotb-verilator``
(the cocotb core bench with random pauses on every AXI and AXI-Lite channel, the cycle model
run inside the bench replaying the DRAM's pauses).  Every RTL run must agree with the
functional model on DRAM, status and error code, and with the cycle model on ERR_PC and
every counter.  A failing program is shrunk (operations deleted, the rest re-legalized) and
saved under ``build/fuzz/`` with a command that replays it.
"""

from __future__ import annotations

import json
import pickle
import tempfile
import time
from pathlib import Path

from hdl import isa
from hdl.config import NPUConfig
from hdl.isa import ErrorCode, Opcode
from sim_models.cycle_model import CycleNPU
from sim_models.isa_sim import FunctionalNPU
from sim_models.results import NPUResult, from_cycle, from_functional

from . import fuzz
from .rtl import BUILD, run_cocotb

__all__ = ["BACKENDS", "RTL_BACKENDS", "expected", "compare", "run_programs", "check_seeds",
           "shrink", "save_reproducer", "load_reproducer"]

BACKENDS = ("functional", "model", "verilator", "icarus", "cocotb-verilator")
RTL_BACKENDS = ("verilator", "icarus", "cocotb-verilator")
MAX_CYCLES = 400_000
#: Faults the functional model cannot raise: it runs the program without its faulting tail.
UNMODELLED = (ErrorCode.AXI_SLVERR, ErrorCode.AXI_DECERR, ErrorCode.DEADLOCK)


def _model(cfg: NPUConfig) -> CycleNPU:
    """The cycle model with the fuzz DRAM's faults, noting the dynamic functional bins."""
    from .fuzz_bins import SamplingNPU, SamplingRam
    return SamplingNPU(cfg, SamplingRam(cfg.bus_bytes, slverr=[fuzz.SLVERR],
                                        decerr=[fuzz.DECERR]))


def expected(prog: fuzz.FuzzProgram) -> tuple[NPUResult, list]:
    """The functional model's result for ``prog`` and problems with the generator itself
    (a program meant to end in a fault the model raises must raise it, at its last
    instruction but one)."""
    words = prog.words
    if prog.fault in UNMODELLED:
        words = prog.words[:prog.prefix_len] + [isa.encode(Opcode.HALT)]
    mem = bytearray(prog.image)
    t0 = time.perf_counter()
    run = FunctionalNPU(prog.cfg, mem, prog.dram_base, prog.dram_size).run(words)
    ref = from_functional(run, mem, time.perf_counter() - t0)
    problems = []
    want = prog.fault or ErrorCode.NONE
    if prog.fault in UNMODELLED:
        if ref.error != ErrorCode.NONE:
            problems.append(f"generator: prefix of a {want.name} program stopped with "
                            f"{ref.error.name}")
        ref.error, ref.done, ref.err_pc = want, False, len(prog.words) - 2
    elif ref.error != want:
        problems.append(f"generator: functional model stopped with {ref.error.name}, "
                        f"meant {want.name}")
    return ref, problems


def _masked(prog, dram: bytes) -> bytes:
    """``dram`` without the SLVERR/DECERR regions (what a faulting access leaves there is
    the bus model's business) when the program ends in an AXI error."""
    if prog.fault not in (ErrorCode.AXI_SLVERR, ErrorCode.AXI_DECERR):
        return bytes(dram[:fuzz.IMAGE_BYTES])
    out = bytearray(dram[:fuzz.IMAGE_BYTES])
    for r in (fuzz.SLVERR, fuzz.DECERR):
        out[r.start:r.stop] = bytes(len(r))
    return bytes(out)


def compare(prog, ref: NPUResult, got: NPUResult, model: NPUResult | None) -> list:
    """Problems of one back end's result ``got`` against the functional ``ref`` (DRAM,
    status, error) and the cycle model's ``model`` (error, ERR_PC, every counter)."""
    problems = []
    name = got.backend
    if (got.done, got.error) != (ref.done, ref.error):
        problems.append(f"{name}: done={got.done} error={got.error.name}, functional model "
                        f"done={ref.done} error={ref.error.name}")
    if got.dram is not None:
        a, b = _masked(prog, got.dram), _masked(prog, ref.dram)
        if a != b:
            diff = [i for i in range(len(a)) if a[i] != b[i]]
            problems.append(f"{name}: DRAM differs from the functional model at {len(diff)} "
                            f"bytes, first {diff[0]:#x} ({a[diff[0]]:#04x} != "
                            f"{b[diff[0]]:#04x})")
    align = got.meta.get("alignment")
    if align and align["from_irq"] is not None and got.done \
            and align["from_irq"] != align["from_start"]:
        problems.append(f"{name}: irq rose {_offset(align)} edges from where the cycles "
                        f"counter puts the end of the run")
    if model is not None and model is not got:
        if (model.error, model.done) != (got.error, got.done):
            problems.append(f"{name}: error {got.error.name}, cycle model {model.error.name}")
        if got.error != ErrorCode.NONE and model.err_pc != got.err_pc:
            problems.append(f"{name}: ERR_PC {got.err_pc}, cycle model {model.err_pc}")
        diff = {k: (model.counters[k], got.counters.get(k)) for k in model.counters
                if model.counters[k] != got.counters.get(k)}
        if diff:
            problems.append(f"{name}: counters differ from the cycle model (model, rtl): {diff}")
    return problems


def _offset(align) -> int:
    return align["from_irq"]["ar"] - align["from_start"]["ar"]


def _run_model(model: CycleNPU, prog) -> NPUResult:
    t0 = time.perf_counter()
    c = model.run(prog.words, prog.program_addr, prog.dram_base, prog.dram_size,
                  max_cycles=MAX_CYCLES)
    return from_cycle(c, None, time.perf_counter() - t0)


def _run_harness(cfg, progs, pause_probability, fresh: bool) -> list:
    """``[(rtl, model)]`` per program on the Verilator harness (one simulated chip for the
    batch unless ``fresh``), the cycle model replaying each run's seeded pauses."""
    from .harness import Harness
    from .harness import pauses as harness_pauses

    out, h, model = [], None, None
    try:
        for prog in progs:
            if h is None or fresh:
                if h is not None:
                    h.close()
                h, model = Harness(cfg), _model(cfg)
            rtl = h.run(prog.image, prog.program_addr, len(prog.words), dram_base=prog.dram_base,
                        dram_size=prog.dram_size, max_cycles=MAX_CYCLES,
                        pause_seed=prog.seed, pause_probability=pause_probability,
                        slverr=[fuzz.SLVERR], decerr=[fuzz.DECERR], raise_on_timeout=False)
            if pause_probability:
                harness_pauses.replay(model.mem, prog.seed, pause_probability,
                                      rtl.meta["start_edge"], rtl.counters["cycles"])
            predicted = _run_model(model, prog)
            if rtl.meta.get("timed_out"):
                rtl.error, rtl.done = ErrorCode.NONE, False
                out.append((rtl, predicted))
                h.close()
                h = None
                continue
            out.append((rtl, predicted))
            if rtl.error != ErrorCode.NONE:
                h.soft_reset()
                model.soft_reset()
    finally:
        if h is not None:
            h.close()
    return out


def _run_cocotb(sim, cfg, progs, pause_probability, seed, build_opts=None) -> list:
    """``[(rtl, model)]`` per program on the cocotb core bench (one simulation per batch);
    ``build_opts``: more keywords for :func:`testbench.rtl.run_cocotb` (``make coverage``
    gives its coverage build's ``tag``, ``extra_args`` and ``plusargs``)."""
    (BUILD / "fuzz").mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="batch-", dir=BUILD / "fuzz"))
    job = {"pause_probability": pause_probability, "max_cycles": MAX_CYCLES,
           "programs": [dict(seed=p.seed, image=p.image, words=p.words,
                             program_addr=p.program_addr, dram_base=p.dram_base,
                             dram_size=p.dram_size) for p in progs]}
    (work / "job.pkl").write_bytes(pickle.dumps(job))
    env = {"KNPU_FUZZ_JOB": str(work / "job.pkl"), "KNPU_FUZZ_RESULT": str(work / "result.pkl")}
    tests, failed = run_cocotb(sim, cfg, "testbench.cocotb_fuzz", core=True, seed=seed,
                               extra_env=env, **(build_opts or {}))
    records = pickle.loads((work / "result.pkl").read_bytes()) \
        if (work / "result.pkl").exists() else []
    backend = "icarus" if sim == "icarus" else "cocotb-verilator"
    out = []
    for r in records:
        if "exception" in r:
            rtl = NPUResult(False, ErrorCode.NONE, 0, {}, None, backend=backend,
                            meta={"exception": r["exception"]})
            out.append((rtl, None))
            break
        st = r["status"]
        rtl = NPUResult(done=st["done"] and not st["error"], error=ErrorCode(st["code"]),
                        err_pc=r["err_pc"], counters=r["counters"], dram=r["dram"],
                        backend=backend, wall_s=r["wall_s"],
                        meta={"alignment": r["alignment"], "model_bins": r.get("bins")})
        m = r["model"]
        out.append((rtl, NPUResult(m["done"], ErrorCode(m["error"]), m["err_pc"],
                                   m["counters"], backend="model")))
    if failed and len(out) == len(progs) and all("exception" not in r for r in records):
        raise RuntimeError(f"{sim}: cocotb fuzz bench failed ({failed} of {tests}) though every "
                           f"program ran; see {work}")
    return out + [(NPUResult(False, ErrorCode.NONE, 0, backend=backend,
                             meta={"exception": "not run: the batch stopped earlier"}), None)
                  for _ in progs[len(out):]]


def run_programs(cfg, progs, backend: str, pause_probability: float = 0.3, seed: int = 0,
                 fresh: bool = False, build_opts: dict | None = None) -> list:
    """``[(result, cycle model result or None)]`` of each program on ``backend``
    (``build_opts``: for the cocotb back ends, see :func:`_run_cocotb`)."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown back end {backend!r}: must be one of {BACKENDS}")
    if backend == "functional":
        return [(expected(p)[0], None) for p in progs]
    if backend == "model":
        out, model = [], _model(cfg)
        for p in progs:
            if fresh:
                model = _model(cfg)
            r = _run_model(model, p)
            out.append((r, r))
            if r.error != ErrorCode.NONE:
                model.soft_reset()
        return out
    if backend == "verilator":
        return _run_harness(cfg, progs, pause_probability, fresh)
    sim = "icarus" if backend == "icarus" else "verilator"
    return _run_cocotb(sim, cfg, progs, pause_probability, seed, build_opts)


def check_programs(cfg, progs, backends, pause_probability=0.3, seed=0, fresh=False,
                   build_opts=None) -> dict:
    """Run ``progs`` on each of ``backends``; ``{seed: {"problems": [...], "wall": {...}}}``.
    The cycle model is checked against the functional model's error on its own, and each RTL
    back end against both models."""
    from .fuzz_bins import program_bins, run_bins
    refs = {p.seed: expected(p) for p in progs}
    report = {p.seed: {"problems": list(refs[p.seed][1]), "wall": {},
                       "bins": dict(program_bins(p))} for p in progs}
    for backend in backends:
        if backend == "functional":
            continue
        t0 = time.perf_counter()
        results = run_programs(cfg, progs, backend, pause_probability, seed, fresh, build_opts)
        wall = time.perf_counter() - t0
        for p, (got, model) in zip(progs, results):
            rec = report[p.seed]
            rec["wall"][backend] = wall / len(progs)
            if "exception" in got.meta:
                rec["problems"].append(f"{backend}: {got.meta['exception']}")
                continue
            if got.meta.get("timed_out"):
                rec["problems"].append(f"{backend}: no irq within {MAX_CYCLES} cycles")
                continue
            ref = refs[p.seed][0]
            if backend in RTL_BACKENDS:
                for k, v in run_bins(got).items():
                    rec["bins"][k] = rec["bins"].get(k, 0) + v
            if backend == "model":
                got = NPUResult(got.done, got.error, got.err_pc, got.counters, None,
                                backend="model")
            rec["problems"] += compare(p, ref, got, model)
    return report


def check_seeds(cfg, seeds, backends, pause_probability=0.3, n_ops=None, fault="random"):
    """Generate the programs of ``seeds`` and :func:`check_programs` them."""
    progs = [fuzz.generate(s, cfg, n_ops=n_ops, fault=fault) for s in seeds]
    return progs, check_programs(cfg, progs, backends, pause_probability,
                                 seed=min(seeds) if seeds else 0)


def shrink(prog, backend: str, pause_probability=0.3, budget: int = 200, log=print):
    """A smaller program that still fails on ``backend`` (operations deleted, re-legalized,
    the faulting tail and the layout kept); each candidate runs on a fresh simulated chip."""
    layout = (prog.program_addr, prog.dram_base, prog.dram_base + prog.dram_size)

    def fails(ops):
        cand = fuzz.build(prog.seed, prog.cfg, ops, prog.fault, prog.fault_words,
                          layout=layout)
        report = check_programs(prog.cfg, [cand], [backend], pause_probability, prog.seed,
                                fresh=True)
        return cand if report[cand.seed]["problems"] else None

    best, ops, n, tries = prog, list(prog.ops), 2, 0
    while len(ops) >= 1 and tries < budget:
        chunk = max(1, -(-len(ops) // n))
        for i in range(0, len(ops), chunk):
            tries += 1
            cand = fails(ops[:i] + ops[i + chunk:])
            if cand is not None:
                best, ops = cand, list(cand.ops)
                n = max(n - 1, 2)
                log(f"shrink: {len(ops)} operations still fail on {backend}")
                break
        else:
            if chunk == 1:
                break
            n = min(2 * n, len(ops))
    return best


def save_reproducer(prog, backend: str, problems: list, directory: Path | None = None) -> Path:
    """Write ``prog`` (JSON: layout, words, the image's seed-derived bytes as hex) and its
    listing under ``build/fuzz/``; returns the JSON's path."""
    directory = Path(directory or BUILD / "fuzz")
    directory.mkdir(parents=True, exist_ok=True)
    stem = directory / f"{prog.cfg.core_name}-seed{prog.seed}-{backend}"
    data = {"seed": prog.seed, "config": json.loads(prog.cfg.to_json()), "backend": backend,
            "fault": prog.fault.name if prog.fault else None, "problems": problems,
            "program_addr": prog.program_addr, "dram_base": prog.dram_base,
            "dram_size": prog.dram_size, "prefix_len": prog.prefix_len,
            "fault_words": [hex(w) for w in prog.fault_words],
            "words": [hex(w) for w in prog.words], "image": prog.image.hex(),
            "replay": f".venv/bin/python scripts/fuzz.py --replay {stem}.json"}
    Path(f"{stem}.json").write_text(json.dumps(data, indent=1))
    Path(f"{stem}.txt").write_text("\n".join(problems) + "\n\n" + prog.describe() + "\n")
    return Path(f"{stem}.json")


def load_reproducer(path: Path) -> tuple:
    """``(program, backend)`` from a file :func:`save_reproducer` wrote."""
    data = json.loads(Path(path).read_text())
    cfg = NPUConfig.from_json(json.dumps(data["config"]))
    words = [int(w, 16) for w in data["words"]]
    prog = fuzz.FuzzProgram(seed=data["seed"], cfg=cfg, ops=[],
                            fault=ErrorCode[data["fault"]] if data["fault"] else None,
                            fault_words=[int(w, 16) for w in data["fault_words"]],
                            words=words, prefix_len=data["prefix_len"],
                            image=bytes.fromhex(data["image"]),
                            program_addr=data["program_addr"], dram_base=data["dram_base"],
                            dram_size=data["dram_size"])
    return prog, data["backend"]
