"""The harness DRAM's seeded pause pattern, computed in Python exactly as ``harness.cpp`` does.

Channel ``ch`` (index in ``AxiRamTiming.CHANNELS``: ar, r, aw, w, b) pauses at the run's
``k``-th clock edge when the top 32 bits of ``mix64(key[ch] + k)`` are below
``threshold``, with ``key[ch] = mix64(seed ^ (0xD1B54A32D192ED03 * (ch + 1)))`` and
``mix64`` the splitmix64 finaliser (all arithmetic modulo 2**64).  ``k`` counts from the
first edge of the run (the host's register writes included); :func:`replay` hands the
values to ``AxiRamTiming.set_pauses`` aligned at the edge that ends START's cycle.
"""

from __future__ import annotations

import numpy as np

__all__ = ["CHANNELS", "threshold", "mix64", "pause_values", "replay"]

CHANNELS = ("ar", "r", "aw", "w", "b")    # the order of the C++ enum and of AxiRamTiming
_M = (1 << 64) - 1
_GOLDEN, _M1, _M2 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB
_SALT = 0xD1B54A32D192ED03


def mix64(x):
    """splitmix64's finaliser on an int or a ``uint64`` array (wrapping arithmetic)."""
    if isinstance(x, np.ndarray):
        x = x.astype(np.uint64) + np.uint64(_GOLDEN)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(_M1)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(_M2)
        return x ^ (x >> np.uint64(31))
    x = (x + _GOLDEN) & _M
    x = ((x ^ (x >> 30)) * _M1) & _M
    x = ((x ^ (x >> 27)) * _M2) & _M
    return x ^ (x >> 31)


def threshold(probability: float) -> int:
    """The C++ threshold for a pause probability in [0, 1]."""
    if not 0.0 <= probability <= 1.0:
        raise ValueError(f"pause probability {probability!r} is not in [0, 1]")
    return int(round(probability * (1 << 32)))


def pause_values(seed: int, probability: float, channel: str, n: int,
                 first: int = 0) -> list[bool]:
    """The pause values of ``channel`` at the run's edges ``first`` .. ``first + n - 1`` for
    a run with this seed and probability."""
    if channel not in CHANNELS:
        raise ValueError(f"unknown AXI channel {channel!r}: must be one of {CHANNELS}")
    if first < 0:
        raise ValueError(f"first edge {first} is negative")
    t = threshold(probability)
    if t == 0 or n <= 0:
        return [False] * max(n, 0)
    key = mix64((seed & _M) ^ ((_SALT * (CHANNELS.index(channel) + 1)) & _M))
    with np.errstate(over="ignore"):
        draws = mix64(np.uint64(key) + np.arange(first, first + n, dtype=np.uint64))
    return ((draws >> np.uint64(32)) < np.uint64(t)).tolist()


def replay(memory, seed: int, probability: float, first: int, cycles: int) -> None:
    """Give an ``AxiRamTiming`` the pauses of a harness run whose START cycle ended at edge
    ``first`` and that counted ``cycles`` cycles (values for two edges more are given)."""
    n = first + cycles + 2
    memory.set_pauses({ch: pause_values(seed, probability, ch, n) for ch in CHANNELS}, first)
