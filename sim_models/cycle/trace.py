"""Per-cycle handshake traces of the units, and where two traces first part.

A trace is a list of ``(cycle, unit, events)``: in that cycle, ``unit`` completed the named
handshakes on its ports (only cycles with at least one are listed).  The model records one
with ``CycleNPU.run(..., trace=True)``; the RTL testbench records the same handshakes from
the design's own ports (:data:`RTL_EVENTS`: instance, valid and ready signal names), so a
disagreement between the two is named by unit and cycle.
"""

from __future__ import annotations

__all__ = ["unit_events", "first_divergence", "UNITS", "RTL_EVENTS"]

#: unit -> ((event, valid signal, ready signal or None), ...), signal paths below the core.
RTL_EVENTS = {
    "fetch": (("rd_cmd", "fetch.rd_cmd__valid", "fetch.rd_cmd__ready"),
              ("load_q", "fetch.load_q__valid", "fetch.load_q__ready"),
              ("compute_q", "fetch.compute_q__valid", "fetch.compute_q__ready"),
              ("store_q", "fetch.store_q__valid", "fetch.store_q__ready")),
    "load": (("insn", "load.insn__valid", "load.insn__ready"),
             ("rd_cmd", "load.rd_cmd__valid", "load.rd_cmd__ready"),
             ("rd_rsp", "load.rd_rsp__valid", "load.rd_rsp__ready"),
             ("l2c_push", "load.l2c_push", None)),
    "compute": (("insn", "compute.insn__valid", "compute.insn__ready"),
                ("a", "compute.array_busy", None),
                ("acc_w", "compute.acc_w__en", None),
                ("c2l_push", "compute.c2l_push", None), ("c2s_push", "compute.c2s_push", None)),
    "store": (("insn", "store.insn__valid", "store.insn__ready"),
              ("acc", "store.acc__en", "store.acc__ready"),
              ("wr_cmd", "store.wr_cmd__valid", "store.wr_cmd__ready"),
              ("sp", "store.sp__en", "store.sp__ready"),
              ("s2c_push", "store.s2c_push", None)),
    "reader": (("ar", "m_axi__arvalid", "m_axi__arready"),
               ("r", "m_axi__rvalid", "m_axi__rready")),
    "writer": (("aw", "m_axi__awvalid", "m_axi__awready"),
               ("w", "m_axi__wvalid", "m_axi__wready"),
               ("b", "m_axi__bvalid", "m_axi__bready")),
}
UNITS = tuple(RTL_EVENTS)


def unit_events(model, c: dict) -> list:
    """The handshakes of this cycle (:data:`RTL_EVENTS`), from the model's combinational
    values ``c``."""
    mem, abort = model.mem, c["abort"]
    fetch, compute, reader, writer, store = (model.fetch, model.compute, model.reader,
                                             model.writer, model.store)
    q = {qn: fetch.queue_valid(q, abort) and c["q_ready"][q]
         for q, qn in zip(c["q_ready"], ("load_q", "compute_q", "store_q"))}
    happened = {
        "fetch": {"rd_cmd": c["r_take"] and not c["pick_load"], **q},
        "load": {"insn": c["l_start"], "rd_cmd": c["r_take"] and c["pick_load"],
                 "rd_rsp": c["l_rsp_valid"] and c["l_rsp_ready"],
                 "l2c_push": model.load.l2c_push(c["l_rsp_valid"], c["l_mem_ready"])},
        "compute": {"insn": c["c_go"], "a": compute.array_busy, "acc_w": compute.s_valid,
                    "c2l_push": compute.c2l_push() > 0, "c2s_push": compute.c2s_push},
        "store": {"insn": c["s_go"], "acc": store.acc_en(abort) and c["st_acc_ready"],
                  "wr_cmd": c["wr_cmd"] is not None and c["wr_ready"],
                  "sp": store.sp_en and c["st_sp_ready"],
                  "s2c_push": store.s2c_push(c["writer_idle"])},
        "reader": {"ar": reader.arvalid and mem.arready, "r": mem.rvalid and c["rready"]},
        "writer": {"aw": writer.awvalid and mem.awready, "w": writer.wvalid and mem.wready,
                   "b": mem.bvalid},
    }
    out = []
    for unit, events in RTL_EVENTS.items():
        names = tuple(name for name, _, _ in events if happened[unit][name])
        if names:
            out.append((model.now, unit, names))
    return out


def first_divergence(expected: list, got: list):
    """The first ``(cycle, unit, expected events, got events)`` where two traces differ
    (cycles counted from each trace's first entry), or ``None`` when they are equal."""
    def by_cycle(trace):
        if not trace:
            return {}
        t0 = trace[0][0]
        table = {}
        for cycle, unit, names in trace:
            table.setdefault(cycle - t0, {})[unit] = tuple(names)
        return table

    a, b = by_cycle(expected), by_cycle(got)
    for cycle in sorted(set(a) | set(b)):
        ea, eb = a.get(cycle, {}), b.get(cycle, {})
        for unit in UNITS:
            if ea.get(unit, ()) != eb.get(unit, ()):
                return cycle, unit, ea.get(unit, ()), eb.get(unit, ())
    return None
