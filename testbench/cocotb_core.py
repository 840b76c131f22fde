"""cocotb tests of the whole NPU core: compiled layers end to end, AXI pauses, faults.

Each layer's DRAM output is compared byte for byte with the golden model, and the
functional model's output with both.
"""

from __future__ import annotations

import json
import os

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles

from hdl import isa
from hdl.isa import ErrorCode, Opcode

from sim_models.cycle import AxiRamTiming, CycleNPU, first_divergence

from .core_bench import CoreBench
from .core_layers import regression_layers
from .stimulus import env_config, stimulus_seed

CFG = env_config()
MEM_SIZE = 1 << 20


def replay_pauses(model, bench, status):
    """Give the model's DRAM the pauses the AxiRam had during this run.  When the host's
    START landed is outside the core (host bus timing), so it is located from the end: irq
    rises at the edge after the last of ``cycles`` busy cycles, which follow START's cycle."""
    assert "pause_marks" in status, "irq rose before the bench watched it: no pause alignment"
    cycles = status["counters"]["cycles"]
    first = {ch: status["pause_marks"][ch] - 1 - cycles for ch in AxiRamTiming.CHANNELS}
    model.mem.set_pauses({ch: bench.pause_log[ch] for ch in AxiRamTiming.CHANNELS}, first)


def check_model(name: str, status: dict, predicted):
    """The cycle model's counters (a ``CycleResult``) against the RTL's (``status`` from
    ``CoreBench.run``): every one equal, and, when both sides traced, every unit's
    handshakes in every cycle; a difference is reported with the first cycle and unit whose
    handshakes differ."""
    rtl, got = status["counters"], predicted.counters
    diff = {k: (got[k], rtl[k]) for k in got if got[k] != rtl[k]}
    first = None
    if predicted.trace is not None and "trace" in status:
        first = first_divergence(predicted.trace, status["trace"])
    if not diff and not first:
        return
    where = ""
    if first:
        cycle, unit, model_events, rtl_events = first
        where = (f"; first divergence at cycle {cycle} in the {unit} unit: model "
                 f"{model_events or 'nothing'}, RTL {rtl_events or 'nothing'}")
    raise AssertionError(f"{name}: cycle model != RTL (model, rtl): {diff}{where}")


async def run_layers(dut, pause_probability: float, layers=regression_layers):
    seed = stimulus_seed()
    dut._log.info("config %s seed %d (replay with KNPU_SEED=%d), AXI pauses %.0f%%",
                  CFG.to_json(), seed, seed, 100 * pause_probability)
    bench = CoreBench(dut, CFG, MEM_SIZE, seed=seed, pause_probability=pause_probability,
                      trace=True)
    await bench.reset()
    model = CycleNPU(CFG)     # lives as long as the RTL core: state carries between layers
    records = []
    for layer in layers(CFG, seed):
        assert len(layer.dram) <= MEM_SIZE
        status = await bench.run(layer.program_addr, len(layer.program), layer.dram)
        assert status["done"] and not status["error"], f"{layer.name}: {status}"
        if pause_probability:
            replay_pauses(model, bench, status)
        predicted = model.run(layer.program, layer.program_addr, 0, MEM_SIZE, trace=True)
        assert predicted.done
        check_model(layer.name, status, predicted)
        out = layer.output(bench.read_dram(0, len(layer.dram)))
        _, functional = layer.run_functional()
        assert np.array_equal(functional, layer.expected), f"{layer.name}: functional model"
        bad = np.argwhere(out != layer.expected)
        assert len(bad) == 0, (f"{layer.name}: {len(bad)} of {out.size} outputs differ, first "
                               f"at {tuple(bad[0])}: {out[tuple(bad[0])]} != "
                               f"{layer.expected[tuple(bad[0])]}; status {status}")
        c = status["counters"]
        dut._log.info("%s: match; %d cycles, %d MACs, array busy %d, bytes in/out %d/%d",
                      layer.name, c["cycles"], layer.macs, c["array_busy"],
                      c["dma_bytes_read"], c["dma_bytes_written"])
        records.append({"layer": layer.name, **c, "macs": layer.macs, "matches_golden": True,
                        "model_cycles": predicted.cycles,
                        "utilization": layer.macs / (CFG.rows * CFG.cols * c["cycles"])})
        if os.environ.get("KNPU_REPORT"):   # rewritten per layer: a failure keeps the rest
            with open(os.environ["KNPU_REPORT"], "w") as f:
                json.dump(records, f, indent=1)


@cocotb.test()
async def layers_match_golden(dut):
    """GEMMs and convolutions (see core_layers.py) bit-exact against the golden model."""
    await run_layers(dut, 0.0)


@cocotb.test()
async def layers_match_golden_with_axi_pauses(dut):
    """The same layers with random pauses (30%) on every AXI and AXI-Lite channel."""
    await run_layers(dut, 0.3)


def _program_image(words, data_at=0x400, payload=b""):
    image = bytearray(0x1000)
    code = isa.program_bytes(words)
    image[:len(code)] = code
    image[data_at:data_at + len(payload)] = payload
    return image


@cocotb.test()
async def faults_stop_cleanly_and_recover(dut):
    """Illegal opcode, bad operand, DMA outside the window, SLVERR, DECERR and a token
    deadlock each stop the core with their own code and raise irq (no hang); after a soft
    reset a good program runs."""
    bench = CoreBench(dut, CFG, MEM_SIZE, trace=True)
    await bench.reset()
    line = CFG.sp_width
    load = lambda addr: isa.encode(Opcode.LOAD, sp_addr=0, nrows=2, ncols=line,  # noqa: E731
                                   dram_addr=addr, dram_stride=line)
    store_raw = lambda addr: isa.encode(Opcode.STORE, acc_addr=0, nrows=1,  # noqa: E731
                                        ncols=CFG.cols, raw=1, dram_addr=addr, dram_stride=0)
    bench.slverr = [range(0x8000, 0x8100)]
    bench.decerr = [range(0x9000, 0x9100)]
    cases = [
        ("illegal opcode", [isa.encode(Opcode.SYNC), 0xF], ErrorCode.ILLEGAL_OPCODE),
        ("DMA outside the window", [load(MEM_SIZE - line)], ErrorCode.DMA_RANGE),
        ("read SLVERR", [load(0x8000), isa.encode(Opcode.HALT)], ErrorCode.AXI_SLVERR),
        ("write DECERR", [store_raw(0x9000), isa.encode(Opcode.HALT)], ErrorCode.AXI_DECERR),
        ("read DECERR", [load(0x9040), isa.encode(Opcode.HALT)], ErrorCode.AXI_DECERR),
        ("bad operand", [isa.encode(Opcode.LOAD, sp_addr=CFG.sp_lines - 1, nrows=2, ncols=1,
                                    dram_addr=0, dram_stride=0)], ErrorCode.BAD_OPERAND),
        ("token deadlock", [isa.encode(Opcode.LOAD, sp_addr=0, nrows=1, ncols=1, dram_addr=0,
                                       dram_stride=0, pop_next=1), isa.encode(Opcode.HALT)],
         ErrorCode.DEADLOCK),
    ]
    good = regression_layers(CFG, stimulus_seed())[1]
    model = CycleNPU(CFG, AxiRamTiming(CFG.bus_bytes, slverr=bench.slverr, decerr=bench.decerr))
    for label, words, code in cases:
        status = await bench.run(0, len(words), _program_image(words), timeout_cycles=20000)
        assert status["error"] and status["code"] == code and not status["busy"], \
            f"{label}: expected {code.name}, status {status}"
        predicted = model.run(words, 0, 0, MEM_SIZE, trace=True)
        assert (predicted.error, predicted.err_pc) == (code, status["err_pc"]), \
            f"{label}: cycle model stopped with {predicted.error.name} at {predicted.err_pc}"
        check_model(label, status, predicted)
        dut._log.info("%s: stopped with %s after %d instructions", label, code.name,
                      status["err_pc"])
        await bench.soft_reset()
        model.soft_reset()
        status = await bench.run(good.program_addr, len(good.program), good.dram)
        assert status["done"] and not status["error"], f"after {label}: {status}"
        check_model(f"after {label}", status,
                    model.run(good.program, good.program_addr, 0, MEM_SIZE, trace=True))
        out = good.output(bench.read_dram(0, len(good.dram)))
        assert np.array_equal(out, good.expected), f"after {label}: wrong results"
    await ClockCycles(dut.clk, 2)
