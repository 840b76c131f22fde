"""Stimulus for the systolic array: tiles -> input beats and the golden output beats.

Shared by the Amaranth-simulator unit tests and the cocotb testbenches, so both drive the
array the same way and check it against the same golden model.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field

import numpy as np

from hdl.config import NPUConfig, os_drain_row
from sim_models import golden

__all__ = ["ArrayTile", "Beats", "make_beats", "random_tiles", "special_tiles", "stimulus_seed",
           "env_config", "gemm_tiles", "assemble_gemm"]


def env_config() -> NPUConfig | None:
    """The configuration a pytest runner handed to a cocotb module (``KNPU_CONFIG``)."""
    text = os.environ.get("KNPU_CONFIG")
    return NPUConfig.from_json(text) if text else None


def stimulus_seed(default: int | None = None) -> int:
    """The seed for random stimulus: ``KNPU_SEED`` if set, else ``default`` or a fresh one.
    Tests print it, so any failure can be replayed with ``KNPU_SEED=<seed>``."""
    env = os.environ.get("KNPU_SEED")
    if env:
        return int(env)
    return default if default is not None else random.SystemRandom().randrange(1 << 31)


@dataclass
class ArrayTile:
    """One tile for the array.  WS: ``a`` is M x rows, ``b`` (weights) rows x cols.
    OS: ``a`` is rows x K, ``b`` is K x cols."""
    a: np.ndarray
    b: np.ndarray


@dataclass
class Beats:
    a: list = field(default_factory=list)   # dicts {"data": [...], "last": 0/1}
    b: list = field(default_factory=list)   # dicts {"data": [...]}
    c: list = field(default_factory=list)   # expected output beats {"data": [...], "last": 0/1}
    macs: int = 0                           # useful multiply-accumulates


def make_beats(cfg: NPUConfig, tiles: list[ArrayTile]) -> Beats:
    """Turn tiles into the beat sequences of :mod:`hdl.array`'s port contract."""
    beats = Beats()
    for tile in tiles:
        a, b = np.asarray(tile.a, np.int64), np.asarray(tile.b, np.int64)
        if cfg.dataflow == "ws":
            assert b.shape == (cfg.rows, cfg.cols) and a.shape[1] == cfg.rows
            beats.b += [{"data": row} for row in b]
            beats.a += [{"data": row, "last": int(m == len(a) - 1)} for m, row in enumerate(a)]
            expected = golden.ws_tile(a, b, cfg.acc_width)
        else:
            assert a.shape[0] == cfg.rows and b.shape[1] == cfg.cols and a.shape[1] == b.shape[0]
            K = a.shape[1]
            beats.a += [{"data": a[:, k], "last": int(k == K - 1)} for k in range(K)]
            beats.b += [{"data": b[k]} for k in range(K)]
            expected = golden.os_tile(a, b, cfg.acc_width)
        beats.c += [{"data": row, "last": int(i == len(expected) - 1)}
                    for i, row in enumerate(expected)]
        beats.macs += a.shape[0] * a.shape[1] * b.shape[1]
    return beats


def _rand(rng, shape, width):
    return rng.integers(-(1 << (width - 1)), 1 << (width - 1), size=shape, dtype=np.int64)


def random_tiles(cfg: NPUConfig, rng: np.random.Generator, count: int,
                 min_len: int = 1, max_len: int | None = None) -> list[ArrayTile]:
    """``count`` random tiles; the streamed length (WS: M, OS: K) is drawn per tile."""
    max_len = max_len or 2 * max(cfg.rows, cfg.cols) + 3
    out = []
    for _ in range(count):
        n = int(rng.integers(min_len, max_len + 1))
        if cfg.dataflow == "ws":
            out.append(ArrayTile(_rand(rng, (n, cfg.rows), cfg.input_width),
                                 _rand(rng, (cfg.rows, cfg.cols), cfg.input_width)))
        else:
            out.append(ArrayTile(_rand(rng, (cfg.rows, n), cfg.input_width),
                                 _rand(rng, (n, cfg.cols), cfg.input_width)))
    return out


def special_tiles(cfg: NPUConfig, length: int) -> dict[str, ArrayTile]:
    """Hand-picked tiles: extremes (-128*-128 everywhere, and mixed signs), zeros, identity."""
    R, C = cfg.rows, cfg.cols
    lo, hi = -(1 << (cfg.input_width - 1)), (1 << (cfg.input_width - 1)) - 1
    if cfg.dataflow == "ws":
        a_shape, b_shape = (length, R), (R, C)
    else:
        a_shape, b_shape = (R, length), (length, C)
    full = lambda shape, v: np.full(shape, v, dtype=np.int64)  # noqa: E731
    counting = (np.arange(np.prod(a_shape)).reshape(a_shape) % (hi - lo + 1)) + lo
    eye = np.eye(*b_shape, dtype=np.int64)
    return {
        "min_times_min": ArrayTile(full(a_shape, lo), full(b_shape, lo)),
        "min_times_max": ArrayTile(full(a_shape, lo), full(b_shape, hi)),
        "max_times_max": ArrayTile(full(a_shape, hi), full(b_shape, hi)),
        "zeros": ArrayTile(full(a_shape, 0), _checker(b_shape, lo, hi)),
        "identity": ArrayTile(counting, eye),
    }


def _checker(shape, lo, hi):
    i, j = np.indices(shape)
    return np.where((i + j) % 2 == 0, lo, hi).astype(np.int64)


def gemm_tiles(cfg: NPUConfig, a, b) -> list[ArrayTile]:
    """Lower ``A (M x K) @ B (K x N)`` onto array passes, zero-padding edge tiles.

    WS: one pass per (N-tile, K-tile) of B, streaming all M rows of A.
    OS: one pass per (M-tile, N-tile) of C, streaming all K.
    """
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    (M, K), N = a.shape, b.shape[1]
    R, C = cfg.rows, cfg.cols
    out = []
    if cfg.dataflow == "ws":
        for t in golden.tiles(K, N, R, C):
            a_blk = np.zeros((M, R), np.int64)
            a_blk[:, :t.k] = a[:, t.k0:t.k0 + t.k]
            w_blk = np.zeros((R, C), np.int64)
            w_blk[:t.k, :t.n] = b[t.k0:t.k0 + t.k, t.n0:t.n0 + t.n]
            out.append(ArrayTile(a_blk, w_blk))
    else:
        for m0 in range(0, M, R):
            for n0 in range(0, N, C):
                a_blk = np.zeros((R, K), np.int64)
                a_blk[:min(R, M - m0)] = a[m0:m0 + R]
                b_blk = np.zeros((K, C), np.int64)
                b_blk[:, :min(C, N - n0)] = b[:, n0:n0 + C]
                out.append(ArrayTile(a_blk, b_blk))
    return out


def assemble_gemm(cfg: NPUConfig, M: int, K: int, N: int, rows: list) -> np.ndarray:
    """The host's side of :func:`gemm_tiles`: place (WS: and accumulate, wrapping in
    ``acc_width``) the array's result rows into the M x N product."""
    R, C = cfg.rows, cfg.cols
    out = np.zeros((M, N), np.int64)
    rows = iter(rows)
    if cfg.dataflow == "ws":
        for t in golden.tiles(K, N, R, C):
            block = np.array([next(rows)["data"] for _ in range(M)], np.int64)[:, :t.n]
            out[:, t.n0:t.n0 + t.n] = golden.wrap(out[:, t.n0:t.n0 + t.n] + block, cfg.acc_width)
    else:
        for m0 in range(0, M, R):
            for n0 in range(0, N, C):
                drained = np.array([next(rows)["data"] for _ in range(R)], np.int64)
                block = drained[os_drain_row(np.arange(R), R)]   # beat order -> row order
                out[m0:m0 + R, n0:n0 + C] = block[:min(R, M - m0), :min(C, N - n0)]
    return out
