"""Weight LOADs in batches (``compiler.weight_loads``, ``tile_weight_rows``): consecutive
K-tiles of an N-tile come with one LOAD, so a weight tile costs a PRELOAD and a COMPUTE of
instruction fetch, not also a LOAD; the analytical mode and the DRAM breakdown count the
same instructions, and the exact model runs the programs no slower."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from hdl import isa
from hdl.config import NPUConfig
from sim_models import compiler
from sim_models.analytical import core_estimate
from sim_models.compiler import Requant, W_LOAD_TILES, compile_gemm, weight_loads
from sim_models.cycle_model import CycleNPU
from sim_models.dram_breakdown import gemm_breakdown
from sim_models.workloads import Layer


def test_weight_loads_runs_of_consecutive_tiles():
    tiles = [(0, 16), (16, 16), (32, 16), (48, 5)]
    assert weight_loads(tiles, 8) == [53, 0, 0, 0]
    assert weight_loads(tiles, 2) == [32, 0, 21, 0]
    assert weight_loads(tiles, 1) == [16, 16, 16, 5]
    # a gap in K (an all-zero block skipped, as depthwise has) starts a new LOAD
    assert weight_loads([(0, 4), (8, 4), (12, 4)], 8) == [4, 8, 0]
    assert weight_loads([]) == []
    with pytest.raises(ValueError, match="at least 1 tile"):
        weight_loads(tiles, 0)


def _ops(layer):
    return Counter(isa.decode(w)["op"] for w in layer.program)


@pytest.mark.parametrize("shape, resident", [((128, 768, 768), False), ((64, 512, 64), True)])
def test_batched_weight_loads_cut_instructions_and_not_cycles(shape, resident):
    """BERT's q_proj shape (A resident, weights streamed) and a GEMM whose weights stay:
    weight LOADs per N-tile ceil(K-tiles / batch) (streamed: but the first N-tile, which
    loads A too); the exact model no slower than one LOAD a tile; bytes and instruction
    counts equal in the analytical mode and the breakdown."""
    cfg = NPUConfig(rows=16, cols=16, dataflow="ws")
    M, K, N = shape
    rng = np.random.default_rng(1)
    a, b = rng.integers(-128, 128, (M, K)), rng.integers(-128, 128, (K, N))
    layer = compile_gemm(cfg, a, b, Requant(scale=1e-3))
    assert layer.meta["w_resident"] is resident
    kt, nt = K // 16, N // 16
    loads = _ops(layer)[isa.Opcode.LOAD]
    if resident:
        assert loads == kt + nt * -(-kt // W_LOAD_TILES)          # A chunks + weight runs
    else:
        batch = layer.meta["w_batch"]
        assert batch == W_LOAD_TILES
        assert loads == kt + kt + (nt - 1) * -(-kt // batch)
    est = core_estimate(cfg, Layer("g", "gemm", M=M, K=K, N=N), 1)
    assert est.events.dram_bytes == gemm_breakdown(cfg, M, K, N)["total"]
    assert gemm_breakdown(cfg, M, K, N)["instructions"] == len(layer.program) * isa.INSN_BYTES
    if not resident:
        return            # (the streamed shape's exact run is in make dram-breakdown's figures)
    batched = CycleNPU(cfg).run(layer.program, layer.program_addr).cycles
    old, compiler.W_LOAD_TILES = compiler.W_LOAD_TILES, 1
    try:
        single = compile_gemm(cfg, a, b, Requant(scale=1e-3))
    finally:
        compiler.W_LOAD_TILES = old
    assert len(single.program) > len(layer.program)
    assert batched <= CycleNPU(cfg).run(single.program, single.program_addr).cycles
    assert abs(est.cycles / batched - 1) < 0.01
