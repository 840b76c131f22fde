"""RTL checks for what the regression did not look at (issue 12, item 5).

* ``every_bad_operand_rule``: each rule of ``isa.operands_ok`` broken by the smallest amount
  (PRELOAD and COMPUTE bounds included, not only LOAD) must stop the RTL core with
  ``BAD_OPERAND``, at the ERR_PC the cycle model gives, with its counters; then a soft reset.
* ``high_dram_window``: random legal programs moved to the top of the 32-bit address
  space (window, program and every DMA address, :func:`testbench.fuzz.relocate`), then the
  same programs at their own low addresses: the DRAM equals the functional model's and every
  counter the cycle model's both times, so the address, window and DMA address arithmetic's
  upper bits are exercised both ways; PROG_ADDR, PROG_LEN, DRAM_BASE and DRAM_SIZE read back
  what was written (``make coverage`` runs this module).
* ``flood_queues_and_tokens``: hundreds of independent LOADs, COMPUTEs and STOREs, each
  pushing a token its consumer never pops: every instruction queue fills (the fetch unit
  waits on each), every token counter reaches its limit and saturates, and STORE reads the
  accumulator bank compute accumulates into.  DRAM against the functional model, counters
  and handshakes against the cycle model, whose observations are these functional bins
  (written to ``KNPU_BINS_OUT`` when set: ``make coverage`` adds them to the fuzz batch's).
* ``every_store_mode``: raw, TFLite, onnxruntime and add-mode stores under each clamp (none, ReLU,
  ReLU6, other), after a per-lane and an all-lanes CONFIG; DRAM against the functional model.
* ``load_acc_collides_with_compute``: a LOAD_ACC into the accumulator bank the compute unit
  is writing, with no token between them, so the bank's arbiter decides every cycle; the
  DRAM afterwards equals the functional model's, and the cycle count, every counter and
  every unit's handshakes in every cycle equal the cycle model's (which states which port
  has priority), so a changed priority is reported at the first cycle it matters.
* ``store_to_scratchpad``: a STORE ``to_sp`` (every other line, one column short) while a
  LOAD writes the same scratchpad bank, read back by a COMPUTE that pops its token; DRAM and
  counters against the models, the bank's write arbiter seen refusing the store.
* ``registers_both_ways``: every read-write register written all-ones and zero, read back.
* ``extreme_operands``: every count and address at the top the operand rules allow (the whole
  scratchpad, COMPUTEs of ``acc_lines`` rows (WS) or K = ``sp_lines`` (OS), STOREs and a
  LOAD_ACC of every accumulator line, strides with bits 2..31 set on one-row transfers) on
  int8 extremes, then one below each top; DRAM and counters against the models.
* ``long_program_faults_at_its_end``: 8190 SYNCs and a refused LOAD, so ERR_PC (8191) and the
  program counter carry bits 0..12 (then a one-instruction fault takes them down); ERR_PC and
  counters against the cycle model (in ``make test`` on Verilator only, 14-16 s there, to spare
  its time budget).  These three close toggle gaps ``make coverage`` listed.
"""

from __future__ import annotations

import cocotb
from cocotb.triggers import ClockCycles

from hdl import isa
from hdl.isa import ErrorCode, Opcode
from sim_models.cycle import CycleNPU
from sim_models.isa_sim import FunctionalNPU

from . import fuzz
from .cocotb_core import check_model
from .core_bench import CoreBench
from .stimulus import env_config

CFG = env_config()
MEM = 0x8000


def _image(words, data=b""):
    image = bytearray(MEM)
    image[0x1000:0x1000 + len(data)] = data
    code = isa.program_bytes(words)
    image[:len(code)] = code
    return image


async def _run_directed(dut, name, words, image, model, program_addr=0) -> dict:
    """Run ``words`` (at ``program_addr`` in ``image``) on the functional model, the RTL and
    ``model`` (a cycle model, traced): the RTL must finish without an error, its counters and
    handshakes equal the model's and its DRAM the functional model's.  Returns its status."""
    mem = bytearray(image)
    assert FunctionalNPU(CFG, mem).run(words).done
    bench = CoreBench(dut, CFG, len(image), trace=True)
    await bench.reset()
    status = await bench.run(program_addr, len(words), image)
    assert status["done"] and not status["error"], status
    check_model(name, status, model.run(words, program_addr, 0, len(image), trace=True))
    assert bytes(bench.read_dram(0, len(image))) == bytes(mem), \
        "DRAM differs from the functional model"
    return status


@cocotb.test()
async def every_bad_operand_rule(dut):
    bench = CoreBench(dut, CFG, MEM, trace=True)
    await bench.reset()
    model = CycleNPU(CFG)
    cases = fuzz.bad_operand_cases(CFG)
    for name, words in cases.items():
        words = words + [isa.encode(Opcode.HALT)]
        image = _image(words)
        functional = FunctionalNPU(CFG, bytearray(image)).run(words)
        assert functional.error == ErrorCode.BAD_OPERAND, f"{name}: functional model"
        status = await bench.run(0, len(words), image, timeout_cycles=20000)
        predicted = model.run(words, 0, 0, MEM, trace=True)
        assert status["error"] and status["code"] == ErrorCode.BAD_OPERAND, \
            f"{name}: the RTL did not refuse it: status {status}"
        assert predicted.error == ErrorCode.BAD_OPERAND and predicted.err_pc == status["err_pc"], \
            f"{name}: ERR_PC {status['err_pc']}, cycle model {predicted.err_pc}"
        check_model(name, status, predicted)
        dut._log.info("%s: BAD_OPERAND at ERR_PC %d", name, status["err_pc"])
        await bench.soft_reset()
        model.soft_reset()
    await ClockCycles(dut.clk, 2)


def _collision_program():
    """COMPUTE writing accumulator lines 0.. of bank 0 while LOAD_ACC writes lines further
    up in bank 0 (no dependency, no token); then every line is stored raw."""
    R, C = CFG.rows, CFG.cols
    n = 24                                   # rows streamed through the array
    acc_bank = CFG.acc_lines // CFG.acc_banks
    assert n + 8 <= acc_bank
    W = CFG.sp_width
    words = [isa.encode(Opcode.LOAD, sp_addr=0, nrows=n, ncols=W, dram_addr=0x1000,
                        dram_stride=W, push_next=1)]
    if CFG.dataflow == "ws":
        words += [isa.encode(Opcode.PRELOAD, sp_addr=0, nrows=R, pop_prev=1),
                  isa.encode(Opcode.COMPUTE, a_addr=0, acc_addr=0, nrows=n)]
        out_rows = n
    else:
        words += [isa.encode(Opcode.COMPUTE, a_addr=0, b_addr=0, acc_addr=0, nrows=n,
                             pop_prev=1)]
        out_rows = R
    base = out_rows + 2
    words += [isa.encode(Opcode.LOAD_ACC, acc_addr=base + k, nrows=1, ncols=C,
                         dram_addr=0x2000 + 4 * C * k, dram_stride=0) for k in range(6)]
    words += [isa.encode(Opcode.SYNC),
              isa.encode(Opcode.STORE, acc_addr=0, nrows=base + 6, ncols=C, raw=1,
                         dram_addr=0x4000, dram_stride=4 * C),
              isa.encode(Opcode.HALT)]
    return words


@cocotb.test()
async def load_acc_collides_with_compute(dut):
    import random
    rng = random.Random(12)
    data = bytes(rng.getrandbits(8) for _ in range(0x2000))
    words = _collision_program()
    model = CycleNPU(CFG)
    refused = _count_refusals(model.acc)
    status = await _run_directed(dut, "LOAD_ACC vs compute writer", words,
                                 _image(words, data), model)
    assert refused[0] > 0, "the program never made two ports meet in an accumulator bank"
    dut._log.info("collision program: %d cycles, %d accumulator port requests refused by the "
                  "bank arbiter", status["counters"]["cycles"], refused[0])


def _count_refusals(arbiter) -> list:
    """Count, on the cycle model's bank arbiter, requests it made wait (a one-item list)."""
    refused = [0]
    ready = arbiter.ready

    def counting(ports):
        grants = ready(ports)
        refused[0] += sum(1 for (en, _), ok in zip(ports, grants) if en and not ok)
        return grants

    arbiter.ready = counting
    return refused


#: The top of the 32-bit address space, 4 KiB aligned: a moved program's window ends at 2**32.
HIGH = (1 << 32) - fuzz.IMAGE_BYTES
#: Seeds of the moved programs (no fault: bus errors answer at fixed addresses).
HIGH_SEEDS = (3, 11)


@cocotb.test()
async def high_dram_window(dut):
    bench = CoreBench(dut, CFG, 1 << 32, trace=True)
    await bench.reset()
    model = CycleNPU(CFG)      # one chip: state outside the engines carries over, as on the RTL
    for seed in HIGH_SEEDS:
        low = fuzz.generate(seed, CFG, fault=None)
        for offset in (HIGH, 0):        # up, then down again: each bit both ways
            prog = fuzz.relocate(low, offset)
            mem = bytearray(low.image)
            functional = FunctionalNPU(CFG, mem, low.dram_base, low.dram_size).run(low.words)
            bench.ram.write(offset, prog.image)
            status = await bench.run(prog.program_addr, len(prog.words), None,
                                     dram_base=prog.dram_base, dram_size=prog.dram_size)
            name = f"seed {seed} at {offset:#x}"
            back = {r: await bench.regs.read(r) for r in ("PROG_ADDR", "PROG_LEN", "DRAM_BASE",
                                                          "DRAM_SIZE")}
            assert back == {"PROG_ADDR": prog.program_addr, "PROG_LEN": len(prog.words),
                            "DRAM_BASE": prog.dram_base, "DRAM_SIZE": prog.dram_size}, \
                f"{name}: registers read back {back}"
            assert status["done"] and not status["error"] and functional.done, \
                f"{name}: {status}, functional done={functional.done}"
            predicted = model.run(low.words, low.program_addr, low.dram_base, low.dram_size,
                                  trace=True)
            check_model(name, status, predicted)
            code = isa.program_bytes(prog.words)      # the moved program's own words
            mem[low.program_addr:low.program_addr + len(code)] = code
            got = bytes(bench.read_dram(offset, fuzz.IMAGE_BYTES))
            assert got == bytes(mem), f"{name}: DRAM differs from the functional model"
            dut._log.info("%s: %d instructions, %d cycles, window [%#x, %#x)", name,
                          len(prog.words), status["counters"]["cycles"], prog.dram_base,
                          prog.dram_base + prog.dram_size)


#: Instructions per unit in the flood program: past the token limit (255) and the queues.
FLOOD = 256
#: Where the flood program sits (data below, the stores' row at 0x5000).
FLOOD_CODE = 0x6000


def _flood_program():
    """LOADs, COMPUTEs and STOREs that never wait for each other after the first LOAD."""
    R, C, W = CFG.rows, CFG.cols, CFG.sp_width
    enc = isa.encode
    words = [enc(Opcode.LOAD, sp_addr=0, nrows=R, ncols=W, dram_addr=0x1000, dram_stride=W,
                 push_next=1)]
    words += [enc(Opcode.LOAD, sp_addr=64, nrows=1, ncols=W, dram_addr=0x1000, dram_stride=W,
                  push_next=1)] * (FLOOD - 1)
    if CFG.dataflow == "ws":      # each COMPUTE uses a preloaded weight tile
        words += [enc(Opcode.PRELOAD, sp_addr=0, nrows=R, pop_prev=1)]
        compute = [enc(Opcode.COMPUTE, a_addr=0, acc_addr=0, nrows=1, accumulate=1,
                       push_prev=1, push_next=1), enc(Opcode.PRELOAD, sp_addr=0, nrows=R)]
    else:
        words += [enc(Opcode.COMPUTE, a_addr=0, b_addr=0, acc_addr=0, nrows=1, pop_prev=1)]
        compute = [enc(Opcode.COMPUTE, a_addr=0, b_addr=0, acc_addr=0, nrows=1, accumulate=1,
                       push_prev=1, push_next=1)]
    words += (compute * FLOOD)[:len(compute) * FLOOD - len(compute) + 1]
    # the accumulator bank compute accumulates into, other lines
    words += [enc(Opcode.STORE, acc_addr=CFG.acc_lines // CFG.acc_banks // 2, nrows=1,
                  ncols=C, raw=1, dram_addr=0x5000, dram_stride=0, push_prev=1)] * FLOOD
    return words + [enc(Opcode.HALT)]


@cocotb.test()
async def flood_queues_and_tokens(dut):
    import random

    from .fuzz_bins import SamplingNPU
    rng = random.Random(5)
    words = _flood_program()
    code = isa.program_bytes(words)
    image = bytearray(FLOOD_CODE + len(code))
    image[0x1000:0x5000] = bytes(rng.getrandbits(8) for _ in range(0x4000))
    image[FLOOD_CODE:] = code
    model = SamplingNPU(CFG)
    status = await _run_directed(dut, "flood", words, image, model, FLOOD_CODE)
    hit = sorted(k for k, v in model.samples.items() if v)
    dut._log.info("flood: %d cycles; bins %s", status["counters"]["cycles"], hit)
    for want in ("queue_full load", "queue_full compute", "queue_full store",
                 "token l2c limit", "token c2l limit", "token c2s limit", "token s2c limit"):
        assert want in hit, f"the flood program did not reach {want}"
    _write_bins(model.samples)


def _write_bins(counts):
    """Append one program's functional bins to ``KNPU_BINS_OUT`` (JSON, one line a program)."""
    import json
    import os
    if os.environ.get("KNPU_BINS_OUT"):
        with open(os.environ["KNPU_BINS_OUT"], "a") as f:
            f.write(json.dumps({k: int(v) for k, v in counts.items()}) + "\n")


#: Requantization parameters per store mode (the onnxruntime multiplier: float32 0.01's bits;
#: the add mode's: a 24-bit significand 0x800000 with shift 10 packed as m | s << 24, k = 30).
STORE_PARAMS = {"tflite": dict(rounding=0, multiplier=1 << 30, shift=-4),
                "onnxruntime": dict(rounding=1, multiplier=0x3C23D70A, shift=0),
                "add": dict(rounding=2, multiplier=0x800000 | 10 << 24, shift=30)}
CLAMP_OF = {"none": (-128, 127), "relu": (0, 127), "relu6": (0, 6), "other": (-5, 9)}


def _store_modes_program():
    """One result tile, then every store mode x clamp x lanes: a CONFIG and a STORE each."""
    from .fuzz_bins import LANES, STORE_MODES
    R, C, W = CFG.rows, CFG.cols, CFG.sp_width
    enc = isa.encode
    words = [enc(Opcode.LOAD, sp_addr=0, nrows=R, ncols=W, dram_addr=0x1000, dram_stride=W),
             enc(Opcode.SYNC)]
    if CFG.dataflow == "ws":
        words += [enc(Opcode.PRELOAD, sp_addr=0, nrows=R),
                  enc(Opcode.COMPUTE, a_addr=0, acc_addr=0, nrows=R)]
    else:
        words += [enc(Opcode.COMPUTE, a_addr=0, b_addr=0, acc_addr=0, nrows=R)]
    words += [enc(Opcode.SYNC)]
    out = 0x3000
    for mode in STORE_MODES:
        for clamp, (lo, hi) in CLAMP_OF.items():
            for lanes in LANES:
                params = STORE_PARAMS["tflite" if mode == "raw" else mode]
                lane = isa.CONFIG_ALL_LANES if lanes == "all-lanes" else 1
                words.append(enc(Opcode.CONFIG, lane=lane, zero_point=3, clamp_min=lo,
                                 clamp_max=hi, bias=100, **params))
                raw = mode == "raw"
                words.append(enc(Opcode.STORE, acc_addr=0, nrows=R, ncols=C, raw=int(raw),
                                 dram_addr=out, dram_stride=4 * C))
                out += R * 4 * C
    return words + [enc(Opcode.HALT)]


@cocotb.test()
async def every_store_mode(dut):
    """Raw, TFLite, onnxruntime and add-mode stores under each clamp, after a per-lane and an
    all-lanes CONFIG: DRAM against the functional model, counters against the cycle model."""
    import random

    from .fuzz_bins import program_bins
    rng = random.Random(7)
    words = _store_modes_program()
    image = _image(words, bytes(rng.getrandbits(8) for _ in range(0x1000)))
    await _run_directed(dut, "store modes", words, image, CycleNPU(CFG))
    bins = program_bins(type("P", (), {"words": words})())
    _write_bins(bins)


def _store_to_sp_program():
    """A result tile requantized into scratchpad lines (STORE ``to_sp``: every other line,
    one column short) while a LOAD without tokens writes other lines of the same bank;
    then a COMPUTE that pops the STORE's token reads those lines (and the ones between,
    loaded before) and its result is stored raw to DRAM."""
    R, C, W = CFG.rows, CFG.cols, CFG.sp_width
    enc = isa.encode
    x, y = 8, 8 + 2 * R + 4                   # the stored lines, the colliding LOAD's
    assert y + 48 <= CFG.sp_lines // CFG.sp_banks
    half = CFG.acc_lines // 2
    words = [enc(Opcode.LOAD, sp_addr=x + 2 * R + 40, nrows=3 * R, ncols=W, dram_addr=0x1000,
                 dram_stride=W),
             enc(Opcode.LOAD, sp_addr=x, nrows=2 * R, ncols=W, dram_addr=0x1400,
                 dram_stride=W),
             enc(Opcode.SYNC)]
    a, b = x + 2 * R + 40, x + 3 * R + 40      # A (or A^T) and the weights (or B)
    if CFG.dataflow == "ws":
        words += [enc(Opcode.PRELOAD, sp_addr=b, nrows=R),
                  enc(Opcode.COMPUTE, a_addr=a, acc_addr=0, nrows=R, push_next=1)]
    else:
        words += [enc(Opcode.COMPUTE, a_addr=a, b_addr=b, acc_addr=0, nrows=R, push_next=1)]
    words += [enc(Opcode.LOAD, sp_addr=y, nrows=32, ncols=W, dram_addr=0x1800, dram_stride=W),
              enc(Opcode.CONFIG, lane=isa.CONFIG_ALL_LANES, multiplier=1 << 30, shift=-6,
                  zero_point=-3, clamp_min=-100, clamp_max=120, bias=7, rounding=0),
              enc(Opcode.STORE, acc_addr=0, nrows=R, ncols=max(1, C - 1), to_sp=1,
                  dram_addr=x, dram_stride=2, pop_prev=1, push_prev=1)]
    if CFG.dataflow == "ws":
        words += [enc(Opcode.PRELOAD, sp_addr=b, nrows=R),
                  enc(Opcode.COMPUTE, a_addr=x, acc_addr=half, nrows=2 * R, pop_next=1,
                      push_next=1)]
        out_rows = 2 * R
    else:
        words += [enc(Opcode.COMPUTE, a_addr=x, b_addr=b, acc_addr=half, nrows=2 * R,
                      pop_next=1, push_next=1)]
        out_rows = R
    words += [enc(Opcode.STORE, acc_addr=half, nrows=out_rows, ncols=C, raw=1,
                  dram_addr=0x3000, dram_stride=4 * C, pop_prev=1),
              enc(Opcode.HALT)]
    return words


@cocotb.test()
async def store_to_scratchpad(dut):
    """STORE to_sp (the on-chip path for the next layer): the stored lines read back by a
    COMPUTE that waits for its token, while a LOAD writes the same scratchpad bank (the
    store waits for it: the bank's write arbiter decides); DRAM against the functional
    model, counters and handshakes against the cycle model, which must see the two
    writers meet."""
    import random
    rng = random.Random(5)
    words = _store_to_sp_program()
    model = CycleNPU(CFG)
    refused = _count_refusals(model.sp_w)
    status = await _run_directed(dut, "store to scratchpad", words,
                                 _image(words, bytes(rng.getrandbits(8) for _ in range(0x1000))),
                                 model)
    assert status["counters"]["dma_bytes_written"] == 4 * CFG.cols * (
        2 * CFG.rows if CFG.dataflow == "ws" else CFG.rows), "a to_sp STORE counted DRAM bytes"
    assert refused[0] > 0, "the STORE never met the LOAD in a scratchpad bank"
    dut._log.info("store to scratchpad: %d cycles, %d store writes waited for the load",
                  status["counters"]["cycles"], refused[0])


#: Requantizations per mode in :func:`every_mode_across_its_parameters`.
PARAMETER_STORES = 60
#: Where that program sits in the image (its 12 KB would cover the data at 0x1000).
PARAMETER_CODE = 0x4000


def _parameters_program(rng):
    """Fresh int32 accumulators (``LOAD_ACC`` of random words) before each store, then a
    random CONFIG (``fuzz``'s: any multiplier, shift, zero point, clamp and bias; the add
    mode's inner constants anew before each add-mode store) and an int8 STORE, for
    :data:`PARAMETER_STORES` stores in each rounding mode.  The requantizer's lanes only
    switch for their own mode's rows, so each mode needs its own spread of parameters."""
    R, C = CFG.rows, CFG.cols
    enc, ops = isa.encode, []
    modes = [m for m in range(3) for _ in range(PARAMETER_STORES)]
    rng.shuffle(modes)
    out = 0x3000
    for i, mode in enumerate(modes):
        ops.append(enc(Opcode.LOAD_ACC, acc_addr=0, nrows=R, ncols=C,
                       dram_addr=0x1000 + (i * 4 * C) % (0x1000 - 4 * R * C),
                       dram_stride=4 * C))
        ops.append(enc(Opcode.SYNC))
        config = fuzz._random_config(rng, CFG, all_lanes=True)
        while config.op == Opcode.CONFIG and config.fields.get("rounding", mode) != mode \
                or config.fields.get("add_inner"):
            config = fuzz._random_config(rng, CFG, all_lanes=True)
        if mode == 2:
            ops.append(enc(Opcode.CONFIG, **fuzz._inner_config(rng).fields))
        ops.append(enc(Opcode.CONFIG, **config.fields))
        ops.append(enc(Opcode.STORE, acc_addr=0, nrows=R, ncols=C, raw=0, dram_addr=out,
                       dram_stride=C))
        out += R * C
    return ops + [enc(Opcode.HALT)]


@cocotb.test()
async def every_mode_across_its_parameters(dut):
    """Each rounding mode's path over many random requantizations of random int32
    accumulators: DRAM against the functional model, counters against the cycle model."""
    import random
    rng = random.Random(11)
    words = _parameters_program(rng)
    image = _image([], bytes(rng.getrandbits(8) for _ in range(0x1000)))
    code = isa.program_bytes(words)         # 12 KB: above the stores' output
    image[PARAMETER_CODE:PARAMETER_CODE + len(code)] = code
    await _run_directed(dut, "mode parameters", words, image, CycleNPU(CFG),
                        program_addr=PARAMETER_CODE)


#: int8 extremes the operands are drawn from (all-ones, both signed limits, 0, 1).
EXTREMES = (0xFF, 0x80, 0x7F, 0x00, 0x01)


def _extreme_operands_program():
    """Every count and address at its top: the whole scratchpad loaded (both banks, lines up
    to ``sp_lines - 1``), COMPUTEs of the most rows the operand rules allow (WS: ``acc_lines``
    rows into the whole accumulator; OS: K = ``sp_lines``, results at the accumulator's top),
    STOREs and a LOAD_ACC of all ``acc_lines`` rows, and strides with every high bit set on
    one-row transfers; each top followed by one below it (count - 1 from address 1), so the
    bits fall again."""
    R, C, W = CFG.rows, CFG.cols, CFG.sp_width
    SP, ACC = CFG.sp_lines, CFG.acc_lines
    enc = isa.encode
    far = (1 << 32) - W                  # a stride with bits 2..31 set: a row's unused step
    # every lane's requantization set here: the core keeps the last program's CONFIG
    words = [enc(Opcode.CONFIG, lane=isa.CONFIG_ALL_LANES, zero_point=-1, clamp_min=-128,
                 clamp_max=127, bias=-1, **STORE_PARAMS["tflite"]),
             enc(Opcode.LOAD, sp_addr=0, nrows=SP, ncols=W, dram_addr=0x1000, dram_stride=W),
             enc(Opcode.LOAD, sp_addr=1, nrows=SP - 1, ncols=W, dram_addr=0x1000 + W,
                 dram_stride=W),
             enc(Opcode.LOAD, sp_addr=SP - 1, nrows=1, ncols=W, dram_addr=0x1000,
                 dram_stride=far),
             # every accumulator line written before the STOREs read them all (an OS
             # COMPUTE writes R lines; the core keeps the last program's accumulator)
             enc(Opcode.LOAD_ACC, acc_addr=0, nrows=ACC, ncols=C, dram_addr=0x1000,
                 dram_stride=4 * C),
             enc(Opcode.SYNC)]
    if CFG.dataflow == "ws":
        words += [enc(Opcode.PRELOAD, sp_addr=SP - R, nrows=R),
                  enc(Opcode.COMPUTE, a_addr=SP - ACC, acc_addr=0, nrows=ACC),
                  enc(Opcode.PRELOAD, sp_addr=1, nrows=R),
                  enc(Opcode.COMPUTE, a_addr=1, acc_addr=1, nrows=ACC - 1, accumulate=1)]
    else:
        words += [enc(Opcode.COMPUTE, a_addr=0, b_addr=0, acc_addr=ACC - R, nrows=SP),
                  enc(Opcode.COMPUTE, a_addr=1, b_addr=1, acc_addr=0, nrows=SP - 1,
                      accumulate=1)]
    words += [enc(Opcode.SYNC),
              enc(Opcode.STORE, acc_addr=0, nrows=ACC, ncols=C, raw=1, dram_addr=0x4000,
                  dram_stride=4 * C),
              enc(Opcode.STORE, acc_addr=1, nrows=ACC - 1, ncols=C, raw=0, dram_addr=0x5000,
                  dram_stride=C),
              enc(Opcode.STORE, acc_addr=ACC - 1, nrows=1, ncols=C, raw=1, dram_addr=0x5400,
                  dram_stride=far),
              enc(Opcode.SYNC),
              enc(Opcode.LOAD_ACC, acc_addr=0, nrows=ACC, ncols=C, dram_addr=0x4000,
                  dram_stride=4 * C),
              enc(Opcode.SYNC),
              enc(Opcode.STORE, acc_addr=0, nrows=ACC, ncols=C, raw=1, dram_addr=0x6000,
                  dram_stride=4 * C)]
    return words + [enc(Opcode.HALT)]


@cocotb.test()
async def registers_both_ways(dut):
    """Every read-write register written all-ones, read back, then zero, read back."""
    from hdl import regmap
    bench = CoreBench(dut, CFG, MEM)
    await bench.reset()
    writable = [r.name for r in regmap.REGISTERS if r.access == "RW"]
    for value in ((1 << regmap.DATA_WIDTH) - 1, 0):
        for name in writable:
            await bench.regs.write(name, value)
        back = {name: await bench.regs.read(name) for name in writable}
        assert back == dict.fromkeys(writable, value), f"wrote {value:#x}, read {back}"


@cocotb.test()
async def extreme_operands(dut):
    """:func:`_extreme_operands_program` on int8 extremes: DRAM against the functional
    model, every counter and handshake against the cycle model."""
    import random
    rng = random.Random(13)
    words = _extreme_operands_program()
    data = bytes(rng.choice(EXTREMES) for _ in range(CFG.sp_lines * CFG.sp_width))
    status = await _run_directed(dut, "extreme operands", words, _image(words, data),
                                 CycleNPU(CFG))
    dut._log.info("extreme operands: %d instructions, %d cycles", len(words),
                  status["counters"]["cycles"])


#: The long program's length: ERR_PC (instructions dispatched, the refused one included) is
#: ``LONG_PROGRAM``, bits 0..12 set, and the fetch unit's program counter passes every value.
LONG_PROGRAM = (1 << 13) - 1


@cocotb.test()
async def long_program_faults_at_its_end(dut):
    """``LONG_PROGRAM - 1`` SYNCs, then a LOAD the operand rules refuse: the RTL stops with
    BAD_OPERAND at ERR_PC ``LONG_PROGRAM`` (every bit below 13 set), as the functional and
    cycle models do; then a one-instruction fault (ERR_PC 1) takes the bits down again."""
    bad = isa.encode(Opcode.LOAD, sp_addr=CFG.sp_lines, nrows=1, ncols=1, dram_addr=0,
                     dram_stride=0)
    bench = CoreBench(dut, CFG, isa.INSN_BYTES * (LONG_PROGRAM + 1), trace=True)
    await bench.reset()
    model = CycleNPU(CFG)
    for words in ([isa.encode(Opcode.SYNC)] * (LONG_PROGRAM - 1) + [bad], [bad]):
        image = isa.program_bytes(words)
        functional = FunctionalNPU(CFG, bytearray(image)).run(words)
        status = await bench.run(0, len(words), image, timeout_cycles=20 * LONG_PROGRAM)
        predicted = model.run(words, 0, 0, len(image), trace=True)
        assert functional.error == predicted.error == status["code"] == ErrorCode.BAD_OPERAND, \
            (functional.error, predicted.error, status)
        assert status["err_pc"] == predicted.err_pc == len(words), \
            f"ERR_PC {status['err_pc']}, cycle model {predicted.err_pc}, {len(words)} words"
        dut._log.info("%d-instruction program: BAD_OPERAND at ERR_PC %d", len(words),
                      status["err_pc"])
        check_model(f"{len(words)}-instruction program", status, predicted)
        await bench.soft_reset()
        model.soft_reset()
