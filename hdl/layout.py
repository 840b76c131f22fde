"""Stream payload layouts of the systolic array, defined once.

The HDL builds its ports from these layouts and the testbenches pack and unpack bus values
with the very same objects (``pack``/``unpack``), so bit positions never drift apart.
"""

from __future__ import annotations

from amaranth import signed
from amaranth.lib import data

from .config import NPUConfig

__all__ = ["a_payload", "b_payload", "c_payload", "pack", "unpack"]


def a_payload(cfg: NPUConfig) -> data.StructLayout:
    """One beat on the ``a`` stream: ``rows`` operands plus the end-of-tile flag.

    WS: a row of the activation matrix, ``A[m, 0:rows]``.  OS: a column of A, ``A[0:rows, k]``.
    """
    return data.StructLayout({
        "data": data.ArrayLayout(signed(cfg.input_width), cfg.rows),
        "last": 1,
    })


def b_payload(cfg: NPUConfig) -> data.StructLayout:
    """One beat on the ``b`` stream: ``cols`` operands.

    WS: one weight row ``W[k, 0:cols]``; ``rows`` beats preload one tile.
    OS: one row ``B[k, 0:cols]``, consumed in lock-step with the matching ``a`` beat.
    """
    return data.StructLayout({"data": data.ArrayLayout(signed(cfg.input_width), cfg.cols)})


def c_payload(cfg: NPUConfig) -> data.StructLayout:
    """One result row: ``cols`` accumulators plus the end-of-tile flag."""
    return data.StructLayout({
        "data": data.ArrayLayout(signed(cfg.acc_width), cfg.cols),
        "last": 1,
    })


def pack(layout: data.StructLayout, **fields) -> int:
    """Python values -> the integer seen on the bus (``data`` may be any int sequence)."""
    values = {k: (list(map(int, v)) if k == "data" else int(v)) for k, v in fields.items()}
    return layout.const(values).as_value().value


def unpack(layout: data.StructLayout, bits: int) -> dict:
    """The integer seen on the bus -> ``{"data": [ints], "last": int, ...}``."""
    view = layout.from_bits(bits)
    out = {}
    for name, field in layout:
        value = view[name]
        if isinstance(field.shape, data.ArrayLayout):
            out[name] = [value[i] for i in range(field.shape.length)]
        else:
            out[name] = int(value)
    return out
