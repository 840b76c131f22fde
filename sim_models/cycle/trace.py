"""Per-cycle handshake traces of the units, and where two traces first part.

A trace is a list of ``(cycle, unit, events)``: in that cycle, ``unit`` completed the named
handshakes (only cycles with at least one are listed).  The model records one with
``CycleNPU.run(..., trace=True)``; the RTL testbench records the same handshakes from the
design's own signals (:data:`RTL_SIGNALS`), so a disagreement is named by unit and cycle.
"""

from __future__ import annotations

__all__ = ["unit_events", "first_divergence", "UNITS"]

UNITS = ("fetch", "load", "compute", "store", "reader", "writer")


def unit_events(model, c: dict) -> list:
    """The handshakes of this cycle, from the model's combinational values ``c``."""
    mem, abort = model.mem, c["abort"]
    compute, reader, writer, store = model.compute, model.reader, model.writer, model.store
    fire, _, b_fire = compute.fires()
    q = {"fetch": [("rd_cmd", c["r_take"] and not c["pick_load"]),
                   ("dispatch", model.fetch.ibuf_r_en(abort, c["q_ready"], c["units_idle"]))],
         "load": [("insn", c["l_start"]), ("rd_cmd", c["r_take"] and c["pick_load"]),
                  ("rd_rsp", c["l_rsp_valid"] and c["l_rsp_ready"])],
         "compute": [("insn", c["c_go"]), ("a", fire), ("b", b_fire),
                     ("c", compute.array.c_out()[0])],
         "store": [("insn", c["s_go"]), ("acc_read", store.acc_en(abort) and c["st_acc_ready"]),
                   ("wr_cmd", c["wr_cmd"] is not None and c["wr_ready"])],
         "reader": [("ar", reader.arvalid and mem.arready), ("r", mem.rvalid and c["rready"])],
         "writer": [("aw", writer.awvalid and mem.awready), ("w", writer.wvalid and mem.wready),
                    ("b", mem.bvalid)]}
    out = []
    for unit, events in q.items():
        names = tuple(name for name, happened in events if happened)
        if names:
            out.append((model.now, unit, names))
    return out


def first_divergence(expected: list, got: list):
    """The first ``(cycle, unit, expected events, got events)`` where two traces differ
    (cycles relative to each trace's first entry), or ``None`` when they are equal."""
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
