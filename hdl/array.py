"""The parametric R x C systolic array, with its skew and de-skew inside.

Port contract (both dataflows; layouts in :mod:`hdl.layout`):

``a`` (in, valid/ready)
    ``rows`` operands per beat and ``last`` marking the final beat of a tile.
``b`` (in, valid/ready)
    ``cols`` operands per beat.
``c`` (out, valid only -- fixed latency, the consumer must take every beat)
    ``cols`` accumulators per beat and ``last`` on the final row of a tile.

Weight-stationary (``ws``): a tile is ``C = A @ W`` with ``W`` of shape rows x cols and
``A`` of shape M x rows, any M >= 1.  ``W`` is preloaded as ``rows`` beats on ``b``
(row 0 first) into the spare weight bank, so loading tile n+1 overlaps computing tile n.
``A`` arrives as M beats on ``a`` (the last one flagged); result row m appears on ``c``
exactly ``rows + cols - 1`` cycles after ``a`` beat m was accepted, in order.
``a`` is ready while the weights of the current tile are loaded; ``b`` while the spare
bank is free.  Back-to-back tiles run without a bubble whenever M >= rows.

Output-stationary (``os``): a tile is ``C = A @ B`` with ``A`` rows x K, ``B`` K x cols,
any K >= 1.  Beat k carries column ``A[:, k]`` on ``a`` and row ``B[k, :]`` on ``b``; the
two streams are joined (both valid, both accepted together).  ``rows + cols - 1`` cycles
after the last beat the tile drains on ``c`` as ``rows`` beats, **bottom row first**
(row rows-1, ..., row 0).  The next tile accumulates while this one drains; tiles with
K >= rows follow each other without a bubble (a shorter tile's last beat is held back
until ``rows`` cycles after the previous last beat).
"""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .config import WEIGHT_BANKS, NPUConfig
from .layout import a_payload, b_payload, c_payload
from .pe import (OutputStationaryPE, WeightStationaryPE, os_row_link, ws_activation_link,
                 ws_weight_port)
from .pipeline import DelayLine, SkewBuffer

__all__ = ["SystolicArray"]


def _link_layout(signature: wiring.Signature, **extra) -> data.StructLayout:
    """The flat layout of a link signature (plus ``extra`` fields), for carrying it
    through a skew buffer."""
    fields = {name: member.shape for name, member in signature.members.items()}
    return data.StructLayout({**fields, **extra})


class SystolicArray(wiring.Component):
    """R x C systolic array of int MACs in the dataflow the configuration names."""

    def __init__(self, cfg: NPUConfig):
        self.cfg = cfg
        super().__init__({
            "a": In(stream.Signature(a_payload(cfg))),
            "b": In(stream.Signature(b_payload(cfg))),
            # Valid-only: results leave at a fixed latency and cannot be stalled.
            "c": Out(wiring.Signature({"valid": Out(1), "payload": Out(c_payload(cfg))})),
            "idle": Out(1),
        })

    def elaborate(self, platform):
        if self.cfg.dataflow == "ws":
            return self._elaborate_ws()
        return self._elaborate_os()

    def _deskew_bottom(self, m, bottom_values, valid, last):
        """De-skew the bottom edge into ``c``; ``valid``/``last`` are column 0's timing."""
        cfg = self.cfg
        deskew = m.submodules.deskew = SkewBuffer(signed(cfg.acc_width),
                                                  reversed(range(cfg.cols)))
        for col, value in enumerate(bottom_values):
            m.d.comb += deskew.i[col].eq(value)
        flags = m.submodules.out_flags = DelayLine(2, cfg.cols - 1)
        m.d.comb += [
            flags.i.eq(Cat(valid, last)),
            self.c.valid.eq(flags.o[0]),
            self.c.payload.last.eq(flags.o[1]),
            self.c.payload.data.eq(deskew.o),
        ]

    def _elaborate_ws(self):
        cfg, R, C = self.cfg, self.cfg.rows, self.cfg.cols
        m = Module()

        # Weight-bank bookkeeping: ``full[b]`` says bank b holds a complete tile.
        full = Signal(WEIGHT_BANKS)
        load_bank, comp_bank = Signal(), Signal()
        load_row = Signal(range(R))
        b_fire = self.b.valid & self.b.ready
        a_fire = self.a.valid & self.a.ready
        m.d.comb += [
            self.b.ready.eq(~full.bit_select(load_bank, 1)),
            self.a.ready.eq(full.bit_select(comp_bank, 1)),
        ]
        tile_loaded = b_fire & (load_row == R - 1)
        tile_done = a_fire & self.a.payload.last
        with m.If(b_fire):
            m.d.sync += load_row.eq(Mux(tile_loaded, 0, load_row + 1))
        with m.If(tile_loaded):
            m.d.sync += load_bank.eq(~load_bank)
        with m.If(tile_done):
            m.d.sync += comp_bank.eq(~comp_bank)
        # Combinational logic stays in plain expressions (``assign``): Icarus does not run
        # ``always @*`` blocks at time zero, so a comb process could hold X until its inputs move.
        set_full = Mux(tile_loaded, Mux(load_bank, 0b10, 0b01), 0)
        clear_full = Mux(tile_done, Mux(comp_bank, 0b10, 0b01), 0)
        m.d.sync += full.eq((full | set_full) & ~clear_full)

        # Weight rows travel right with the same skew as activations, so a PE's spare bank
        # is only overwritten after the previous tile's last activation has passed it.
        w_lane = _link_layout(ws_weight_port(cfg), row=range(R))
        w_skew = m.submodules.weight_skew = SkewBuffer(w_lane, range(C))
        for col in range(C):
            m.d.comb += [
                w_skew.i[col].data.eq(self.b.payload.data[col]),
                w_skew.i[col].we.eq(b_fire),
                w_skew.i[col].bank.eq(load_bank),
                w_skew.i[col].row.eq(load_row),
            ]

        a_skew = m.submodules.act_skew = SkewBuffer(_link_layout(ws_activation_link(cfg)),
                                                     range(R))
        for row in range(R):
            m.d.comb += [
                a_skew.i[row].data.eq(self.a.payload.data[row]),
                a_skew.i[row].valid.eq(a_fire),
                a_skew.i[row].bank.eq(comp_bank),
            ]

        pes = [[WeightStationaryPE(cfg) for _ in range(C)] for _ in range(R)]
        for row in range(R):
            for col in range(C):
                pe = m.submodules[f"pe_{row}_{col}"] = pes[row][col]
                lane = w_skew.o[col]
                m.d.comb += [
                    pe.weight.data.eq(lane.data),
                    pe.weight.bank.eq(lane.bank),
                    pe.weight.we.eq(lane.we & (lane.row == row)),
                ]
                if col == 0:
                    m.d.comb += [pe.west.data.eq(a_skew.o[row].data),
                                 pe.west.valid.eq(a_skew.o[row].valid),
                                 pe.west.bank.eq(a_skew.o[row].bank)]
                else:
                    wiring.connect(m, pes[row][col - 1].east, pe.west)
                if row > 0:
                    wiring.connect(m, pes[row - 1][col].south, pe.north)

        # Column 0's bottom result is valid R cycles after the beat was accepted.
        flags = m.submodules.in_flags = DelayLine(2, R)
        m.d.comb += flags.i.eq(Cat(a_fire, a_fire & self.a.payload.last))
        self._deskew_bottom(m, [pes[R - 1][col].south.psum for col in range(C)],
                            flags.o[0], flags.o[1])
        m.d.comb += self.idle.eq(self._no_pending_output(m, a_fire, 1))
        return m

    def _elaborate_os(self):
        cfg, R, C = self.cfg, self.cfg.rows, self.cfg.cols
        m = Module()

        # Join a and b; hold a tile's last beat until R cycles after the previous one, so the
        # previous tile's drain has cleared every result register it still needs.
        since_last = Signal(range(R + 1), init=R)
        last_ok = ~self.a.payload.last | (since_last == R)
        m.d.comb += [
            self.a.ready.eq(self.b.valid & last_ok),
            self.b.ready.eq(self.a.valid & last_ok),
        ]
        fire = self.a.valid & self.b.valid & last_ok
        last_fire = fire & self.a.payload.last
        with m.If(last_fire):
            m.d.sync += since_last.eq(1)
        with m.Elif(since_last != R):
            m.d.sync += since_last.eq(since_last + 1)

        row_lane = _link_layout(os_row_link(cfg))
        a_skew = m.submodules.act_skew = SkewBuffer(row_lane, range(R))
        for row in range(R):
            m.d.comb += [
                a_skew.i[row].data.eq(self.a.payload.data[row]),
                a_skew.i[row].valid.eq(fire),
                a_skew.i[row].last.eq(last_fire),
            ]
        b_skew = m.submodules.b_skew = SkewBuffer(signed(cfg.input_width), range(C))
        m.d.comb += b_skew.i.eq(self.b.payload.data)

        # Drain control for column 0: R-1 cycles after a tile's last beat (when the bottom
        # PE of column 0 has finished) drain row i for cycles s < i of the drain, so that
        # row i is free again before the next tile finishes there.  Later columns see the
        # same flags one cycle later per column, carried east by the PEs.
        started = m.submodules.drain_start = DelayLine(1, R - 1)
        m.d.comb += started.i.eq(last_fire)
        mask = Signal(R)
        remaining = Signal(range(R + 1))
        with m.If(started.o):
            m.d.sync += [mask.eq(((1 << R) - 1) & ~1), remaining.eq(R)]
        with m.Else():
            m.d.sync += mask.eq(mask << 1)
            with m.If(remaining != 0):
                m.d.sync += remaining.eq(remaining - 1)

        pes = [[OutputStationaryPE(cfg) for _ in range(C)] for _ in range(R)]
        for row in range(R):
            for col in range(C):
                pe = m.submodules[f"pe_{row}_{col}"] = pes[row][col]
                if col == 0:
                    lane = a_skew.o[row]
                    m.d.comb += [pe.west.data.eq(lane.data), pe.west.valid.eq(lane.valid),
                                 pe.west.last.eq(lane.last), pe.west.drain.eq(mask[row])]
                else:
                    wiring.connect(m, pes[row][col - 1].east, pe.west)
                if row == 0:
                    m.d.comb += pe.north.b.eq(b_skew.o[col])
                else:
                    wiring.connect(m, pes[row - 1][col].south, pe.north)

        self._deskew_bottom(m, [pes[R - 1][col].south.result for col in range(C)],
                            remaining != 0, remaining == 1)
        m.d.comb += self.idle.eq(self._no_pending_output(m, last_fire, R))
        return m

    def _no_pending_output(self, m, fire, beats_per_fire):
        """``idle``: every beat already accepted has come out on ``c``."""
        R, C = self.cfg.rows, self.cfg.cols
        pending = Signal(range(R * (R + C + 2) + 1))
        m.d.sync += pending.eq(pending + fire * beats_per_fire - self.c.valid)
        return (pending == 0) & ~fire
