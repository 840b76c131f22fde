"""Command-line argument types shared by the scripts."""

from __future__ import annotations

import argparse

__all__ = ["parse_size"]


def parse_size(text: str) -> tuple[int, int]:
    """``"16x8"`` -> ``(16, 8)``: an array size as ROWSxCOLS (for ``argparse`` ``type=``)."""
    try:
        rows, cols = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {text!r} is not ROWSxCOLS (e.g. 16x16)")
    return rows, cols
