"""Banked on-chip memories of the core, built on ``amaranth.lib.memory``.

Each bank is a one-read, one-write array (what an SRAM compiler gives), holding a contiguous
slice of the address space: bank = address // (depth / banks).  Ports that may wait carry a
``ready``: a request (``en``) is served in a cycle where ``ready`` is high, and its data comes
one cycle later.  When two readers (or two writers) want the same bank in the same cycle, an
arbiter picks one; the compiler places operands that stream together in different banks, so
this rarely happens, and when it does it costs a cycle, never a wrong value.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["Scratchpad", "Accumulator", "write_port_signature", "read_port_signature"]


def write_port_signature(width: int, depth: int) -> wiring.Signature:
    """Address, data and enable out; the write happens in a cycle where ``ready`` is high."""
    return wiring.Signature({"addr": Out(range(depth)), "data": Out(width), "en": Out(1),
                             "ready": In(1)})


def read_port_signature(width: int, depth: int) -> wiring.Signature:
    """Address and enable out; served when ``ready`` is high; data one cycle later."""
    return wiring.Signature({"addr": Out(range(depth)), "en": Out(1), "data": In(width),
                             "ready": In(1)})


class _BankedMemory(wiring.Component):
    """``banks`` 1R1W arrays behind ports listed in priority order.  ``readers[0]`` and
    ``writers[0]`` always win their bank (they may not wait); the others alternate or wait.
    ``transparent``: readers that see a same-cycle write to the address they read."""

    def __init__(self, width: int, depth: int, banks: int, writers: tuple[str, ...],
                 readers: tuple[str, ...], transparent: tuple[str, ...] = (),
                 fair_readers: bool = False):
        assert depth % banks == 0 and banks & (banks - 1) == 0
        self.width, self.depth, self.banks = width, depth, banks
        self.writers, self.readers = writers, readers
        self.transparent, self.fair_readers = transparent, fair_readers
        members = {f"w_{n}": In(write_port_signature(width, depth)) for n in writers}
        members.update({f"r_{n}": In(read_port_signature(width, depth)) for n in readers})
        super().__init__(members)

    def _bank_of(self, addr):
        return addr // (self.depth // self.banks) if self.banks > 1 else 0

    def _arbitrate(self, m, ports, fair: bool, name: str):
        """Per bank, grant at most one of ``ports`` (priority order, or round-robin between
        two when ``fair``).  Returns the grant signal of each port."""
        grants = [Signal(name=f"{name}_grant{i}") for i in range(len(ports))]
        turn = Signal(name=f"{name}_turn")  # round-robin: which port wins a tie
        contended = Signal(name=f"{name}_tie")
        banks = [self._bank_of(p.addr) for p in ports]
        if fair and len(ports) == 2:
            tie = ports[0].en & ports[1].en & (banks[0] == banks[1])
            m.d.comb += [
                contended.eq(tie),
                grants[0].eq(~tie | ~turn),
                grants[1].eq(~tie | turn),
            ]
            with m.If(tie):
                m.d.sync += turn.eq(~turn)
        else:
            for i, port in enumerate(ports):
                blocked = 0
                for j in range(i):
                    blocked = blocked | (ports[j].en & (banks[j] == banks[i]))
                m.d.comb += grants[i].eq(~blocked)
        return grants, banks

    def elaborate(self, platform):
        m = Module()
        bank_depth = self.depth // self.banks
        wbus = [getattr(self, f"w_{n}") for n in self.writers]
        rbus = [getattr(self, f"r_{n}") for n in self.readers]
        w_grant, w_bank = self._arbitrate(m, wbus, False, "write")
        r_grant, r_bank = self._arbitrate(m, rbus, self.fair_readers, "read")
        for bus, grant in zip(wbus + rbus, w_grant + r_grant):
            m.d.comb += bus.ready.eq(grant)

        r_bank_q = [Signal(range(self.banks), name=f"read{i}_bank") for i in range(len(rbus))]
        for i, bus in enumerate(rbus):
            m.d.sync += r_bank_q[i].eq(r_bank[i])
        bank_data = []
        for b in range(self.banks):
            mem = m.submodules[f"bank{b}"] = memory.Memory(shape=self.width, depth=bank_depth,
                                                            init=[])
            wp = mem.write_port()
            transparent = any(n in self.transparent for n in self.readers)
            rp = mem.read_port(transparent_for=(wp,) if transparent else ())
            # Write port: the granted writer that targets this bank.
            w_sel = [bus.en & g & (wb == b) for bus, g, wb in zip(wbus, w_grant, w_bank)]
            addr, data = 0, 0
            for bus, sel in zip(wbus, w_sel):
                addr = Mux(sel, bus.addr % bank_depth, addr)
                data = Mux(sel, bus.data, data)
            any_write = w_sel[0]
            for sel in w_sel[1:]:
                any_write = any_write | sel
            m.d.comb += [wp.addr.eq(addr), wp.data.eq(data), wp.en.eq(any_write)]
            r_sel = [bus.en & g & (rb == b) for bus, g, rb in zip(rbus, r_grant, r_bank)]
            raddr = 0
            for bus, sel in zip(rbus, r_sel):
                raddr = Mux(sel, bus.addr % bank_depth, raddr)
            any_read = r_sel[0]
            for sel in r_sel[1:]:
                any_read = any_read | sel
            m.d.comb += [rp.addr.eq(raddr), rp.en.eq(any_read)]
            bank_data.append(rp.data)
        for i, bus in enumerate(rbus):
            data = bank_data[0]
            for b in range(1, self.banks):
                data = Mux(r_bank_q[i] == b, bank_data[b], data)
            m.d.comb += bus.data.eq(data)
        return m


class Scratchpad(_BankedMemory):
    """int8 operand lines: written by the load unit and by the store unit (a STORE with
    ``to_sp``; it waits while the load unit writes the same bank), read by the compute unit
    on two ports (activations and weights/B stream at the same time, round-robin when they
    collide)."""

    def __init__(self, cfg):
        super().__init__(8 * cfg.sp_width, cfg.sp_lines, cfg.sp_banks,
                         writers=("load", "store"), readers=("a", "b"), fair_readers=True)


class Accumulator(_BankedMemory):
    """int32 result rows.  The compute unit's read-modify-write cannot wait (results leave
    the array at a fixed latency), so it has priority; its reads see a same-cycle write.
    The load unit (biases) and the store unit wait for a free bank."""

    def __init__(self, cfg):
        super().__init__(32 * cfg.cols, cfg.acc_lines, cfg.acc_banks,
                         writers=("compute", "load"), readers=("compute", "store"),
                         transparent=("compute",))
