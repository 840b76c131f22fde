"""Cycle model of the banked memories' arbitration (:mod:`hdl.memories`).

Only who is served when is modelled: the scratchpad's two readers alternate on a tie, the
accumulator's compute ports always win their bank.  Sizes come from :class:`NPUConfig`.
"""

from __future__ import annotations

__all__ = ["BankArbiter"]


class BankArbiter:
    """Grants per bank among ports given in priority order, as
    :meth:`hdl.memories._BankedMemory._arbitrate` does: a port is granted unless an earlier
    port asks for the same bank (``fair``: two ports, round robin on a tie)."""

    def __init__(self, depth: int, banks: int, fair: bool = False):
        self.slice = depth // banks
        self.banks = banks
        self.fair = fair
        self.turn = False

    def bank(self, addr: int) -> int:
        return addr // self.slice if self.banks > 1 else 0

    def _tie(self, ports) -> bool:
        (en0, a0), (en1, a1) = ports
        return en0 and en1 and self.bank(a0) == self.bank(a1)

    def ready(self, ports) -> list[bool]:
        """``ports``: ``(en, addr)`` per port, in priority order; returns each ``ready``."""
        if self.fair:
            tie = self._tie(ports)
            return [(not tie) or not self.turn, (not tie) or self.turn]
        if len(ports) == 2:       # the core's case: the second waits for the first's bank
            (en0, a0), (_, a1) = ports
            return [True, not (en0 and self.bank(a0) == self.bank(a1))]
        grants = []
        for i, (_, addr) in enumerate(ports):
            grants.append(not any(en and self.bank(a) == self.bank(addr)
                                  for en, a in ports[:i]))
        return grants

    def clock(self, ports):
        if self.fair and self._tie(ports):
            self.turn = not self.turn
