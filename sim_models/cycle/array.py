"""Cycle model of :class:`hdl.array.SystolicArray`: handshakes, result timing and ``idle``.

Latencies come from :class:`NPUConfig` (``rows + cols - 1``); the output-stationary drain
order is :func:`hdl.config.os_drain_row`, applied by the compute unit."""

from __future__ import annotations

from hdl.config import WEIGHT_BANKS, NPUConfig

from .base import Delay

__all__ = ["ArrayTiming"]


class ArrayTiming:
    """Ports: ``ready(a_valid, a_last, b_valid) -> (a_ready, b_ready)``, ``c_out() -> (valid,
    last)``, ``idle(a_valid, a_last, b_valid)``."""

    def __init__(self, cfg: NPUConfig):
        self.cfg = cfg
        R, C = cfg.rows, cfg.cols
        self.pending = 0                    # result beats accepted, not yet out on c
        if cfg.dataflow == "ws":
            self.full = [False] * WEIGHT_BANKS
            self.load_bank = self.comp_bank = 0
            self.load_row = 0
            self.flags = Delay(cfg.latency, (False, False))   # (valid, last) of each beat
        else:
            self.since_last = R
            self.drain_start = Delay(R - 1, False)
            self.remaining = 0
            self.flags = Delay(C - 1, (False, False))

    # -- combinational ----------------------------------------------------------------------
    def ready(self, a_valid: bool, a_last: bool, b_valid: bool) -> tuple[bool, bool]:
        if self.cfg.dataflow == "ws":
            return self.full[self.comp_bank], not self.full[self.load_bank]
        last_ok = (not a_last) or self.since_last == self.cfg.rows
        return b_valid and last_ok, a_valid and last_ok

    def fires(self, a_valid: bool, a_last: bool, b_valid: bool):
        """``(a_fire, last_fire, b_fire)`` this cycle."""
        a_ready, b_ready = self.ready(a_valid, a_last, b_valid)
        fire = a_valid and a_ready
        return fire, fire and a_last, b_valid and b_ready

    def c_out(self) -> tuple[bool, bool]:
        if self.cfg.dataflow == "ws":
            return self.flags.line[0]
        return self.flags.o((self.remaining != 0, self.remaining == 1))

    def idle(self, a_valid: bool, a_last: bool, b_valid: bool) -> bool:
        fire, last_fire, _ = self.fires(a_valid, a_last, b_valid)
        trigger = fire if self.cfg.dataflow == "ws" else last_fire
        return self.pending == 0 and not trigger

    # -- registers --------------------------------------------------------------------------
    def clock(self, a_valid: bool, a_last: bool, b_valid: bool):
        fire, last_fire, b_fire = self.fires(a_valid, a_last, b_valid)
        c_valid = self.c_out()[0]
        R = self.cfg.rows
        if self.cfg.dataflow == "ws":
            tile_loaded = b_fire and self.load_row == R - 1
            set_bank = self.load_bank if tile_loaded else None
            clear_bank = self.comp_bank if last_fire else None
            if b_fire:
                self.load_row = 0 if tile_loaded else self.load_row + 1
            if tile_loaded:
                self.load_bank ^= 1
            if last_fire:
                self.comp_bank ^= 1
            if set_bank is not None:
                self.full[set_bank] = True
            if clear_bank is not None:
                self.full[clear_bank] = False
            self.flags.clock((fire, last_fire))
            self.pending += fire - c_valid
        else:
            started = self.drain_start.o(last_fire)
            self.flags.clock((self.remaining != 0, self.remaining == 1))
            self.drain_start.clock(last_fire)
            if started:
                self.remaining = R
            elif self.remaining:
                self.remaining -= 1
            if last_fire:
                self.since_last = 1
            elif self.since_last != R:
                self.since_last += 1
            self.pending += R * last_fire - c_valid
