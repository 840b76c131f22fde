"""How each unit of the cycle model (``sim_models/cycle/``) meets its HDL component: the
random stimulus, the ports compared and the model's clock (:class:`equivalence.Pairing`).
The tests are in the ``test_<module>.py`` of each HDL module."""

from __future__ import annotations

from amaranth.lib import fifo

from hdl import isa
from hdl.array import SystolicArray
from hdl.control import DeadlockDetector, ErrorLatch, PerfCounters, ReadArbiter
from hdl.config import NPUConfig
from hdl.dma import RowReader, RowWriter
from hdl.isa import Opcode
from hdl.memories import Accumulator, Scratchpad
from hdl.pipeline import DelayLine
from hdl.streamer import LineStreamer
from hdl.units import ComputeUnit, FetchUnit, LoadUnit, StoreUnit, TokenCounter
from sim_models.cycle import array as m_array
from sim_models.cycle import base as m_base
from sim_models.cycle import control as m_control
from sim_models.cycle import dma as m_dma
from sim_models.cycle import memories as m_mem
from sim_models.cycle import streamer as m_streamer
from sim_models.cycle import units as m_units

from .equivalence import Pairing, check_equivalent, when
from .stimulus import stimulus_seed

SEED = stimulus_seed(20261127)
CYCLES = 1500
SMALL = [NPUConfig(rows=2, cols=3, dataflow="ws", bus_bits=64, sp_lines=64, acc_lines=16,
                   queue_depth=2),
         NPUConfig(rows=3, cols=2, dataflow="os", bus_bits=128, sp_lines=64, acc_lines=32,
                   sp_banks=4, acc_banks=4)]
IDS = [f"{c.dataflow}-{c.rows}x{c.cols}" for c in SMALL]


def _p(rng, p):
    return bool(rng.random() < p)


def fifo_pairing(depth):
    dut, model = fifo.SyncFIFOBuffered(width=8, depth=depth), m_base.Fifo(depth)

    def stim(rng, _):
        return {"w_en": _p(rng, 0.6), "w_data": int(rng.integers(256)), "r_en": _p(rng, 0.5)}

    def drive(ctx, s):
        for k in s:
            ctx.set(getattr(dut, k), s[k])

    return Pairing(f"Fifo({depth})", dut, stim, drive,
                   lambda ctx, s: {"w_rdy": bool(ctx.get(dut.w_rdy)), "level": ctx.get(dut.level),
                                   "r_rdy": bool(ctx.get(dut.r_rdy)),
                                   "r_data": when(ctx.get(dut.r_rdy), ctx.get(dut.r_data))},
                   lambda s: {"w_rdy": model.w_rdy, "level": model.level, "r_rdy": model.r_rdy,
                              "r_data": when(model.r_rdy, model.out)},
                   lambda s: model.clock(s["w_en"], s["w_data"], s["r_en"]))


def delay_pairing(depth):
    dut, model = DelayLine(4, depth), m_base.Delay(depth)
    return Pairing(f"Delay({depth})", dut, lambda rng, _: {"i": int(rng.integers(16))},
                   lambda ctx, s: ctx.set(dut.i, s["i"]),
                   lambda ctx, s: {"o": ctx.get(dut.o)}, lambda s: {"o": model.o(s["i"])},
                   lambda s: model.clock(s["i"]))


def token_pairing():
    dut, model = TokenCounter(limit=5), m_units.TokenCounter()
    model.LIMIT = 5     # the HDL counter under test is built with this limit

    def stim(rng, _):
        return {"push": int(rng.choice([0, 0, 1, 2])), "pop": _p(rng, 0.4)}

    def drive(ctx, s):
        ctx.set(dut.push, s["push"])
        ctx.set(dut.pop, s["pop"])

    return Pairing("TokenCounter", dut, stim, drive,
                   lambda ctx, s: {"avail": bool(ctx.get(dut.avail)), "count": ctx.get(dut.count)},
                   lambda s: {"avail": model.avail, "count": model.count},
                   lambda s: model.clock(s["push"], s["pop"]))


def streamer_pairing():
    dut, model = LineStreamer(16, 32), m_streamer.LineStreamer(32)

    def stim(rng, _):
        total = int(rng.integers(0, 7))
        return {"cmd": m_streamer.StreamCmd(int(rng.integers(32 - 6)), int(rng.integers(0, total + 1)),
                                            total, _p(rng, 0.5)) if _p(rng, 0.3) else None,
                "port_ready": _p(rng, 0.7), "out_ready": _p(rng, 0.7), "abort": _p(rng, 0.01)}

    def drive(ctx, s):
        ctx.set(dut.cmd.valid, s["cmd"] is not None)
        if s["cmd"] is not None:
            ctx.set(dut.cmd.payload, s["cmd"]._asdict())
        ctx.set(dut.port.ready, s["port_ready"])
        ctx.set(dut.out.ready, s["out_ready"])
        ctx.set(dut.abort, s["abort"])

    def hdl(ctx, s):
        en, valid = ctx.get(dut.port.en), ctx.get(dut.out.valid)
        return {"cmd_ready": bool(ctx.get(dut.cmd.ready)), "port_en": bool(en),
                "port_addr": when(en, ctx.get(dut.port.addr)), "out_valid": bool(valid),
                "last": when(valid, bool(ctx.get(dut.out.payload.last))),
                "done": bool(ctx.get(dut.done)), "done_push": bool(ctx.get(dut.done_push)),
                "busy": bool(ctx.get(dut.busy))}

    def mod(s):
        en = model.port_en(s["abort"])
        return {"cmd_ready": model.cmd_ready, "port_en": en,
                "port_addr": when(en, model.port_addr), "out_valid": model.out_valid,
                "last": when(model.out_valid, model.out_last),
                "done": model.done(s["out_ready"]), "done_push": model.done_push(s["out_ready"]),
                "busy": model.busy}

    return Pairing("LineStreamer", dut, stim, drive, hdl, mod,
                   lambda s: model.clock(s["cmd"], s["port_ready"], s["out_ready"], s["abort"]))


def memory_pairing(cfg, which):
    """Grants of the scratchpad's two readers (round robin) and writers (load first), or of
    the accumulator's writers and readers (compute first)."""
    if which == "scratchpad":
        dut, depth, banks = Scratchpad(cfg), cfg.sp_lines, cfg.sp_banks
        groups = {"write": (["w_load", "w_store"], m_mem.BankArbiter(depth, banks)),
                  "read": (["r_a", "r_b"], m_mem.BankArbiter(depth, banks, fair=True))}
    else:
        dut, depth, banks = Accumulator(cfg), cfg.acc_lines, cfg.acc_banks
        groups = {"write": (["w_compute", "w_load"], m_mem.BankArbiter(depth, banks)),
                  "read": (["r_compute", "r_store"], m_mem.BankArbiter(depth, banks))}
    ports = [p for names, _ in groups.values() for p in names]

    def stim(rng, _):
        return {p: (_p(rng, 0.6), int(rng.integers(depth))) for p in ports}

    def drive(ctx, s):
        for p, (en, addr) in s.items():
            ctx.set(getattr(dut, p).en, en)
            ctx.set(getattr(dut, p).addr, addr)

    def mod(s):
        out = {}
        for names, arb in groups.values():
            out.update(zip(names, arb.ready([s[n] for n in names])))
        return out

    def clock(s):
        for names, arb in groups.values():
            arb.clock([s[n] for n in names])

    return Pairing(which, dut, stim, drive,
                   lambda ctx, s: {p: bool(ctx.get(getattr(dut, p).ready)) for p in ports},
                   mod, clock)


def array_pairing(cfg):
    dut, model = SystolicArray(cfg), m_array.ArrayTiming(cfg)

    def stim(rng, _):
        return {"a_valid": _p(rng, 0.7), "a_last": _p(rng, 0.25), "b_valid": _p(rng, 0.7)}

    def drive(ctx, s):
        ctx.set(dut.a.valid, s["a_valid"])
        ctx.set(dut.a.payload.last, s["a_last"])
        ctx.set(dut.b.valid, s["b_valid"])

    def hdl(ctx, s):
        valid = ctx.get(dut.c.valid)
        return {"a_ready": bool(ctx.get(dut.a.ready)), "b_ready": bool(ctx.get(dut.b.ready)),
                "c_valid": bool(valid), "c_last": when(valid, bool(ctx.get(dut.c.payload.last))),
                "idle": bool(ctx.get(dut.idle))}

    def mod(s):
        a_ready, b_ready = model.ready(s["a_valid"], s["a_last"], s["b_valid"])
        valid, last = model.c_out()
        return {"a_ready": a_ready, "b_ready": b_ready, "c_valid": valid,
                "c_last": when(valid, last),
                "idle": model.idle(s["a_valid"], s["a_last"], s["b_valid"])}

    return Pairing(f"SystolicArray {cfg.dataflow}", dut, stim, drive, hdl, mod,
                   lambda s: model.clock(s["a_valid"], s["a_last"], s["b_valid"]))


WINDOW = (0x100, 0x3000)    # DRAM window: commands fall inside, outside and across 4 KiB


def _row(rng, max_bytes):
    addr = int(rng.choice([rng.integers(0, 0x3400), 4096 - rng.integers(1, 40),
                           8192 - rng.integers(1, 40)]))
    return addr, int(rng.integers(0, max_bytes + 1))


def reader_pairing(bus_bits):
    max_bytes = 48
    dut, model = RowReader(bus_bits, max_bytes), m_dma.RowReader(bus_bits // 8)

    def stim(rng, _):
        addr, nbytes = _row(rng, max_bytes)
        return {"cmd": m_dma.ReadCmd(addr, nbytes, int(rng.integers(4))) if _p(rng, 0.4) else None,
                "rsp_ready": _p(rng, 0.7), "arready": _p(rng, 0.6), "rvalid": _p(rng, 0.6),
                "rresp": int(rng.choice([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 3]))}

    def drive(ctx, s):
        ctx.set(dut.cmd.valid, s["cmd"] is not None)
        if s["cmd"] is not None:
            ctx.set(dut.cmd.payload, {"addr": s["cmd"].addr, "nbytes": s["cmd"].nbytes,
                                      "tag": s["cmd"].tag})
        for k in ("arready", "rvalid", "rresp"):
            ctx.set(getattr(dut.axi, k), s[k])
        ctx.set(dut.rsp.ready, s["rsp_ready"])
        ctx.set(dut.base, WINDOW[0])
        ctx.set(dut.size, WINDOW[1])

    def hdl(ctx, s):
        arvalid, valid = ctx.get(dut.axi.arvalid), ctx.get(dut.rsp.valid)
        return {"cmd_ready": bool(ctx.get(dut.cmd.ready)), "arvalid": bool(arvalid),
                "ar": when(arvalid, (ctx.get(dut.axi.araddr), ctx.get(dut.axi.arlen))),
                "rready": bool(ctx.get(dut.axi.rready)), "rsp_valid": bool(valid),
                "rsp_tag": when(valid, ctx.get(dut.rsp.payload.tag)),
                "error": ctx.get(dut.error), "bytes_read": ctx.get(dut.bytes_read),
                "idle": bool(ctx.get(dut.idle))}

    def mod(s):
        return {"cmd_ready": model.cmd_ready(s["arready"]), "arvalid": model.arvalid,
                "ar": when(model.arvalid, model.ar), "rready": model.rready(s["rsp_ready"]),
                "rsp_valid": model.rsp_valid, "rsp_tag": when(model.rsp_valid, model.out_tag),
                "error": int(model.error), "bytes_read": model.bytes_read,
                "idle": model.idle(s["cmd"] is not None)}

    return Pairing(f"RowReader({bus_bits})", dut, stim, drive, hdl, mod,
                   lambda s: model.clock(s["cmd"], s["rsp_ready"], s["arready"], s["rvalid"],
                                         s["rresp"], *WINDOW))


def writer_pairing(bus_bits):
    max_bytes = 40
    dut, model = RowWriter(bus_bits, max_bytes), m_dma.RowWriter(bus_bits // 8)
    model.MAX_OUTSTANDING = dut.MAX_OUTSTANDING

    def stim(rng, _):
        return {"cmd": _row(rng, max_bytes) if _p(rng, 0.4) else None,
                "awready": _p(rng, 0.6), "wready": _p(rng, 0.6),
                "bvalid": model.outstanding > 0 and _p(rng, 0.3),   # a B only for an AW
                "bresp": int(rng.choice([0] * 14 + [2, 3]))}

    def drive(ctx, s):
        ctx.set(dut.cmd.valid, s["cmd"] is not None)
        if s["cmd"] is not None:
            ctx.set(dut.cmd.payload, {"addr": s["cmd"][0], "nbytes": s["cmd"][1], "data": 0})
        for k in ("awready", "wready", "bvalid", "bresp"):
            ctx.set(getattr(dut.axi, k), s[k])
        ctx.set(dut.base, WINDOW[0])
        ctx.set(dut.size, WINDOW[1])

    def hdl(ctx, s):
        awvalid = ctx.get(dut.axi.awvalid)
        return {"cmd_ready": bool(ctx.get(dut.cmd.ready)), "awvalid": bool(awvalid),
                "awlen": when(awvalid, ctx.get(dut.axi.awlen)), "wvalid": bool(ctx.get(dut.axi.wvalid)),
                "error": ctx.get(dut.error), "bytes_written": ctx.get(dut.bytes_written),
                "idle": bool(ctx.get(dut.idle))}

    def mod(s):
        return {"cmd_ready": model.cmd_ready(s["awready"], s["wready"]),
                "awvalid": model.awvalid, "awlen": when(model.awvalid, model.aw_len),
                "wvalid": model.wvalid, "error": int(model.error),
                "bytes_written": model.bytes_written, "idle": model.idle(s["cmd"] is not None)}

    return Pairing(f"RowWriter({bus_bits})", dut, stim, drive, hdl, mod,
                   lambda s: model.clock(s["cmd"], s["awready"], s["wready"], s["bvalid"],
                                         s["bresp"], *WINDOW))


def _flags(rng):
    return {f: int(rng.random() < 0.3) for f in isa.FLAGS}


def random_word(cfg, rng, ops):
    """A random instruction of one of ``ops`` with small fields: mostly legal, some not."""
    op = ops[int(rng.integers(len(ops)))]
    lines = {"sp_addr": cfg.sp_lines, "a_addr": cfg.sp_lines, "b_addr": cfg.sp_lines,
             "acc_addr": cfg.acc_lines}
    values = {}
    for name, f in isa.FIELDS[op].items():
        if name in lines:
            values[name] = int(rng.integers(lines[name]))
        elif name == "nrows":
            values[name] = int(rng.integers(0, 6))
        elif name == "ncols":
            values[name] = int(rng.integers(0, max(cfg.sp_width, cfg.cols) + 2))
        elif name == "lane":
            values[name] = int(rng.choice([isa.CONFIG_ALL_LANES, 0, cfg.cols - 1, cfg.cols, 77]))
        elif name == "dram_addr":
            values[name] = _row(rng, 0)[0]
        elif name == "dram_stride":
            values[name] = int(rng.integers(0, 64))
        elif name == "accumulate" or name == "raw":
            values[name] = int(rng.integers(2))
        elif name == "to_sp":
            values[name] = int(rng.integers(2))
        elif not f.signed:
            values[name] = int(rng.integers(1 << min(f.width, 16)))
    if values.get("to_sp"):     # a scratchpad line and a stride in lines, mostly in range
        values["dram_addr"] = int(rng.integers(cfg.sp_lines + 2))
        values["dram_stride"] = int(rng.integers(0, 4))
        values["raw"] = int(_p(rng, 0.2))
    return isa.encode(op, **_flags(rng), **values)


def _insn(ctx, dut, word):
    ctx.set(dut.insn.valid, word is not None)
    if word is not None:
        ctx.set(dut.insn.payload, word)


def fetch_pairing(cfg):
    dut, model = FetchUnit(cfg), m_units.FetchUnit()
    queues = {isa.Queue.LOAD: "load_q", isa.Queue.COMPUTE: "compute_q", isa.Queue.STORE: "store_q"}
    ops = list(Opcode) + [0xE]

    def stim(rng, cycle):
        word = int(rng.choice(ops))
        if word in (Opcode.HALT, 0xE) and _p(rng, 0.8):
            word = int(Opcode.LOAD)        # keep programs running most of the time
        return {"start": cycle == 2 or _p(rng, 0.01), "abort": _p(rng, 0.005),
                "prog_len": 40, "rd_cmd_ready": _p(rng, 0.6),
                # a response only for a command in flight, as the reader guarantees
                "rsp_valid": model.inflight > 0 and _p(rng, 0.5), "rsp_word": word,
                "q_ready": {q: _p(rng, 0.6) for q in queues}, "units_idle": _p(rng, 0.5)}

    def drive(ctx, s):
        for k in ("start", "abort", "prog_len", "units_idle"):
            ctx.set(getattr(dut, k), s[k])
        ctx.set(dut.prog_addr, 0x40)
        ctx.set(dut.rd_cmd.ready, s["rd_cmd_ready"])
        ctx.set(dut.rd_rsp.valid, s["rsp_valid"])
        ctx.set(dut.rd_rsp.payload.data, s["rsp_word"])
        for q, name in queues.items():
            ctx.set(getattr(dut, name).ready, s["q_ready"][q])

    def hdl(ctx, s):
        valid = ctx.get(dut.rd_cmd.valid)
        out = {"rd_cmd_valid": bool(valid), "addr": when(valid, ctx.get(dut.rd_cmd.payload.addr))}
        out.update({name: bool(ctx.get(getattr(dut, name).valid)) for name in queues.values()})
        out.update({k: bool(ctx.get(getattr(dut, k))) for k in
                    ("running", "done", "stall_queue_full", "stuck")})
        out.update(error=ctx.get(dut.error), pc=ctx.get(dut.pc))
        return out

    def mod(s):
        a, n = s["abort"], s["prog_len"]
        valid = model.rd_cmd_valid(a, n)
        out = {"rd_cmd_valid": valid, "addr": when(valid, model.rd_cmd(0x40, []).addr)}
        out.update({name: model.queue_valid(q, a) for q, name in queues.items()})
        out.update(running=model.running, done=model.done,
                   stall_queue_full=model.stall_queue_full(a, s["q_ready"]),
                   stuck=model.stuck(a, n, s["q_ready"], s["units_idle"]),
                   error=int(model.error), pc=model.pc)
        return out

    return Pairing("FetchUnit", dut, stim, drive, hdl, mod,
                   lambda s: model.clock(s["start"], s["abort"], s["prog_len"],
                                         s["rd_cmd_ready"], s["rsp_valid"], s["rsp_word"],
                                         s["q_ready"], s["units_idle"]))


def load_pairing(cfg):
    dut, model = LoadUnit(cfg), m_units.LoadUnit(cfg)

    def stim(rng, _):
        return {"word": random_word(cfg, rng, [Opcode.LOAD, Opcode.LOAD_ACC])
                if _p(rng, 0.5) else None, "c2l": _p(rng, 0.7), "abort": _p(rng, 0.005),
                "rd_cmd_ready": _p(rng, 0.6), "rsp_valid": _p(rng, 0.5),
                "sp_ready": _p(rng, 0.8), "acc_ready": _p(rng, 0.6)}

    def drive(ctx, s):
        _insn(ctx, dut, s["word"])
        ctx.set(dut.c2l.avail, s["c2l"])
        ctx.set(dut.abort, s["abort"])
        ctx.set(dut.rd_cmd.ready, s["rd_cmd_ready"])
        ctx.set(dut.rd_rsp.valid, s["rsp_valid"])
        ctx.set(dut.sp.ready, s["sp_ready"])
        ctx.set(dut.acc.ready, s["acc_ready"])

    def hdl(ctx, s):
        valid = ctx.get(dut.rd_cmd.valid)
        sp_en, acc_en = ctx.get(dut.sp.en), ctx.get(dut.acc.en)
        return {"insn_ready": bool(ctx.get(dut.insn.ready)), "rd_cmd_valid": bool(valid),
                "rd_cmd": when(valid, (ctx.get(dut.rd_cmd.payload.addr),
                                       ctx.get(dut.rd_cmd.payload.nbytes))),
                "rsp_ready": bool(ctx.get(dut.rd_rsp.ready)),
                "sp": when(sp_en, ctx.get(dut.sp.addr)), "acc": when(acc_en, ctx.get(dut.acc.addr)),
                "c2l_pop": bool(ctx.get(dut.c2l.pop)), "l2c_push": bool(ctx.get(dut.l2c_push)),
                "idle": bool(ctx.get(dut.idle)), "error": ctx.get(dut.error),
                "wait_token": bool(ctx.get(dut.wait_token))}

    def mem_ready(s):
        return s["acc_ready"] if model.acc else s["sp_ready"]

    def mod(s):
        a, w = s["abort"], s["word"]
        valid = model.rd_cmd_valid(a)
        en = model.mem_en(s["rsp_valid"])
        return {"insn_ready": model.start(w, s["c2l"], a), "rd_cmd_valid": valid,
                "rd_cmd": when(valid, model.rd_cmd()[:2]), "rsp_ready": model.rsp_ready(mem_ready(s)),
                "sp": when(en and not model.acc, model.mem_addr),
                "acc": when(en and model.acc, model.mem_addr),
                "c2l_pop": model.c2l_pop(w, s["c2l"], a),
                "l2c_push": model.l2c_push(s["rsp_valid"], mem_ready(s)),
                "idle": model.idle, "error": int(model.error),
                "wait_token": model.wait_token(w, s["c2l"])}

    return Pairing("LoadUnit", dut, stim, drive, hdl, mod,
                   lambda s: model.clock(s["word"], s["c2l"], s["abort"], s["rd_cmd_ready"],
                                         s["rsp_valid"], mem_ready(s)))


def compute_pairing(cfg):
    dut, model = ComputeUnit(cfg), m_units.ComputeUnit(cfg)
    ops = [Opcode.PRELOAD, Opcode.COMPUTE] if cfg.dataflow == "ws" else \
        [Opcode.COMPUTE] * 9 + [Opcode.PRELOAD]

    def stim(rng, _):
        return {"word": random_word(cfg, rng, ops) if _p(rng, 0.5) else None,
                "l2c": _p(rng, 0.8), "s2c": _p(rng, 0.8), "abort": _p(rng, 0.002),
                "sp_ready": (_p(rng, 0.8), _p(rng, 0.8))}

    def drive(ctx, s):
        _insn(ctx, dut, s["word"])
        ctx.set(dut.l2c.avail, s["l2c"])
        ctx.set(dut.s2c.avail, s["s2c"])
        ctx.set(dut.abort, s["abort"])
        ctx.set(dut.sp_a.ready, s["sp_ready"][0])
        ctx.set(dut.sp_b.ready, s["sp_ready"][1])
        ctx.set(dut.acc_r.ready, 1)
        ctx.set(dut.acc_w.ready, 1)

    def hdl(ctx, s):
        out = {p: when(ctx.get(getattr(dut, p).en), ctx.get(getattr(dut, p).addr))
               for p in ("sp_a", "sp_b", "acc_r", "acc_w")}
        out.update({k: bool(ctx.get(getattr(dut, k))) for k in
                    ("c2s_push", "idle", "array_busy", "stall_weights", "wait_token")})
        out.update(insn_ready=bool(ctx.get(dut.insn.ready)), c2l_push=ctx.get(dut.c2l_push),
                   pops=(bool(ctx.get(dut.l2c.pop)), bool(ctx.get(dut.s2c.pop))),
                   error=ctx.get(dut.error))
        return out

    def mod(s):
        w, a = s["word"], s["abort"]
        acc_r_en, target = model.acc_r()
        out = {"sp_a": when(model.a.port_en(a), model.a.port_addr),
               "sp_b": when(model.b.port_en(a), model.b.port_addr),
               "acc_r": when(acc_r_en, target), "acc_w": when(*model.acc_w())}
        out.update(c2s_push=model.c2s_push, idle=model.idle, array_busy=model.array_busy,
                   stall_weights=model.stall_weights,
                   wait_token=model.wait_token(w, s["l2c"], s["s2c"]),
                   insn_ready=model.go(w, s["l2c"], s["s2c"], a), c2l_push=model.c2l_push(),
                   pops=model.pops(w, s["l2c"], s["s2c"], a), error=int(model.error))
        return out

    return Pairing(f"ComputeUnit {cfg.dataflow}", dut, stim, drive, hdl, mod,
                   lambda s: model.clock(s["word"], s["l2c"], s["s2c"], s["abort"],
                                         s["sp_ready"]))


def store_pairing(cfg):
    dut, model = StoreUnit(cfg), m_units.StoreUnit(cfg)

    def stim(rng, _):
        return {"word": random_word(cfg, rng, [Opcode.STORE, Opcode.STORE, Opcode.CONFIG])
                if _p(rng, 0.4) else None, "c2s": _p(rng, 0.7), "abort": _p(rng, 0.003),
                "acc_ready": _p(rng, 0.7), "wr_ready": _p(rng, 0.6), "writer_idle": _p(rng, 0.5),
                "sp_ready": _p(rng, 0.7)}

    def drive(ctx, s):
        _insn(ctx, dut, s["word"])
        for k, port in (("c2s", dut.c2s.avail), ("abort", dut.abort), ("acc_ready", dut.acc.ready),
                        ("wr_ready", dut.wr_cmd.ready), ("writer_idle", dut.writer_idle),
                        ("sp_ready", dut.sp.ready)):
            ctx.set(port, s[k])

    def hdl(ctx, s):
        valid = ctx.get(dut.wr_cmd.valid)
        return {"insn_ready": bool(ctx.get(dut.insn.ready)),
                "acc": when(ctx.get(dut.acc.en), ctx.get(dut.acc.addr)),
                "wr_cmd": when(valid, (ctx.get(dut.wr_cmd.payload.addr),
                                       ctx.get(dut.wr_cmd.payload.nbytes))),
                "sp": when(ctx.get(dut.sp.en), ctx.get(dut.sp.addr)),
                "c2s_pop": bool(ctx.get(dut.c2s.pop)), "s2c_push": bool(ctx.get(dut.s2c_push)),
                "idle": bool(ctx.get(dut.idle)), "error": ctx.get(dut.error),
                "wait_token": bool(ctx.get(dut.wait_token))}

    def mod(s):
        w, a = s["word"], s["abort"]
        return {"insn_ready": model.go(w, s["c2s"], a),
                "acc": when(model.acc_en(a), model.acc_addr),
                "wr_cmd": when(model.wr_cmd_valid, model.wr_cmd()),
                "sp": when(model.sp_en, model.sp_addr),
                "c2s_pop": model.c2s_pop(w, s["c2s"], a),
                "s2c_push": model.s2c_push(s["writer_idle"]), "idle": model.idle,
                "error": int(model.error), "wait_token": model.wait_token(w, s["c2s"])}

    return Pairing("StoreUnit", dut, stim, drive, hdl, mod,
                   lambda s: model.clock(s["word"], s["c2s"], s["abort"], s["acc_ready"],
                                         s["wr_ready"], s["writer_idle"], s["sp_ready"]))


def read_arbiter_pairing():
    dut, model = ReadArbiter(16), m_control.ReadArbiter()

    def stim(rng, _):
        return {"fetch": _p(rng, 0.6), "load": _p(rng, 0.6), "ready": _p(rng, 0.7),
                "tag": int(rng.integers(2)), "rsp_valid": _p(rng, 0.5),
                "load_rsp_ready": _p(rng, 0.6)}

    def drive(ctx, s):
        ctx.set(dut.fetch_cmd.valid, s["fetch"])
        ctx.set(dut.fetch_cmd.payload.tag, 0)
        ctx.set(dut.load_cmd.valid, s["load"])
        ctx.set(dut.load_cmd.payload.tag, 1)
        ctx.set(dut.cmd.ready, s["ready"])
        ctx.set(dut.rsp.valid, s["rsp_valid"])
        ctx.set(dut.rsp.payload.tag, s["tag"])
        ctx.set(dut.load_rsp.ready, s["load_rsp_ready"])

    def hdl(ctx, s):
        valid = ctx.get(dut.cmd.valid)
        return {"valid": bool(valid), "pick_load": when(valid, ctx.get(dut.cmd.payload.tag) == 1),
                "load_ready": bool(ctx.get(dut.load_cmd.ready)),
                "fetch_ready": bool(ctx.get(dut.fetch_cmd.ready)),
                "rsp_ready": bool(ctx.get(dut.rsp.ready)),
                "fetch_rsp": bool(ctx.get(dut.fetch_rsp.valid)),
                "load_rsp": bool(ctx.get(dut.load_rsp.valid))}

    def mod(s):
        valid = s["fetch"] or s["load"]
        pick = model.pick_load(s["fetch"], s["load"])
        to_fetch = s["tag"] == m_units.TAG_FETCH
        return {"valid": valid, "pick_load": when(valid, pick),
                "load_ready": s["ready"] and pick, "fetch_ready": s["ready"] and not pick,
                "rsp_ready": to_fetch or s["load_rsp_ready"],
                "fetch_rsp": s["rsp_valid"] and to_fetch,
                "load_rsp": s["rsp_valid"] and not to_fetch}

    return Pairing("ReadArbiter", dut, stim, drive, hdl, mod,
                   lambda s: model.clock(s["fetch"], s["load"], s["ready"]))


def error_latch_pairing():
    dut, model = ErrorLatch(3), m_control.ErrorLatch()

    def stim(rng, _):
        return {"sources": [int(rng.choice([0] * 12 + [1, 2, 6])) for _ in range(3)],
                "pc": int(rng.integers(1 << 16)), "clear": _p(rng, 0.05)}

    def drive(ctx, s):
        for port, v in zip(dut.sources, s["sources"]):
            ctx.set(port, v)
        ctx.set(dut.pc, s["pc"])
        ctx.set(dut.clear, s["clear"])

    return Pairing("ErrorLatch", dut, stim, drive,
                   lambda ctx, s: {"error": ctx.get(dut.error), "err_pc": ctx.get(dut.err_pc)},
                   lambda s: {"error": model.error, "err_pc": model.err_pc},
                   lambda s: model.clock(s["sources"], s["pc"], s["clear"]))


def deadlock_pairing():
    dut, model = DeadlockDetector(7), m_control.DeadlockDetector(7)
    return Pairing("DeadlockDetector", dut, lambda rng, _: {"candidate": _p(rng, 0.85)},
                   lambda ctx, s: ctx.set(dut.candidate, s["candidate"]),
                   lambda ctx, s: {"deadlock": bool(ctx.get(dut.deadlock))},
                   lambda s: {"deadlock": model.deadlock},
                   lambda s: model.clock(s["candidate"]))


def counters_pairing():
    """Against the plain statement: each counter counts its event while busy, from 0 at
    START."""
    names = ("a", "b")
    dut, counts = PerfCounters(names), {n: 0 for n in names}

    def stim(rng, cycle):
        return {"start": cycle == 0 or _p(rng, 0.02), "busy": _p(rng, 0.8),
                "events": {n: _p(rng, 0.5) for n in names}}

    def drive(ctx, s):
        ctx.set(dut.start, s["start"])
        ctx.set(dut.busy, s["busy"])
        for n in names:
            ctx.set(getattr(dut.events, n), s["events"][n])

    def clock(s):
        for n in names:
            counts[n] = 0 if s["start"] else counts[n] + (s["events"][n] and s["busy"])

    return Pairing("PerfCounters", dut, stim, drive,
                   lambda ctx, s: {n: ctx.get(getattr(dut.count, n)) for n in names},
                   lambda s: dict(counts), clock)


def check(pairing, must_see=(), cycles=CYCLES):
    """Run ``pairing`` for ``cycles`` random cycles and require that its stimulus reached
    every output named in ``must_see`` (nonzero at least once)."""
    seen = check_equivalent(pairing, cycles, SEED)
    missing = [k for k in must_see if not seen.get(k)]
    assert not missing, f"{pairing.name}: the stimulus never exercised {missing}: {seen}"
