"""The DRAM byte breakdown of GEMM layers (issue 11 item 2): its parts sum to the
analytical mode's bytes, each part matches the compiled program's own instructions, the
total matches the exact model's bus counters, and the I/O lower bound sits below every
schedule's data bytes."""

import numpy as np
import pytest

from hdl import isa
from hdl.config import NPUConfig
from sim_models.analytical import core_estimate, network_estimates
from sim_models.compiler import LayerError, Requant, compile_gemm, k_pass_ranges, k_passes
from sim_models.cycle import CycleNPU
from sim_models.energy import events_from_program
from sim_models.dram_breakdown import (PARTS, gemm_breakdown, gemm_io_bound, fast_elements,
                                       layer_breakdown, network_breakdown,
                                       resident_block_bytes)
from sim_models.workloads import Layer, load

DEFAULT = NPUConfig(rows=16, cols=16, dataflow="ws")
SHAPES = [(128, 768, 768), (128, 3072, 768), (512, 512, 512), (100, 37, 29), (1, 512, 1000)]


@pytest.mark.parametrize("dataflow", ["ws", "os"])
@pytest.mark.parametrize("rows,cols,sp,acc", [(16, 16, 16384, 1024), (8, 4, 1024, 128),
                                              (4, 8, 256, 64)])
def test_parts_sum_to_the_analytical_bytes(dataflow, rows, cols, sp, acc):
    cfg = NPUConfig(rows=rows, cols=cols, dataflow=dataflow, sp_lines=sp, acc_lines=acc)
    for M, K, N in SHAPES:
        for out_bytes in (1, 4):
            parts = gemm_breakdown(cfg, M, K, N, out_bytes)
            est = core_estimate(cfg, Layer("g", "gemm", M=M, K=K, N=N), out_bytes)
            assert parts["total"] == sum(parts[k] for k in PARTS) == est.events.dram_bytes
            assert min(parts.values()) >= 0


@pytest.mark.parametrize("workload", ["bert_base_block", "mlp"])
def test_network_breakdown_follows_the_chains(workload):
    layers = load(workload)
    rows = network_breakdown(DEFAULT, layers)
    assert rows[-1][1]["total"] == sum(e.events.dram_bytes
                                       for e in network_estimates(DEFAULT, layers))
    if workload == "mlp":          # fc1 -> fc2 -> fc3 kept on chip: no inner reads/writes
        assert rows[1][1]["inputs"] == rows[0][1]["outputs"] == 0


def _program_parts(program, a_range, b_range) -> dict:
    """The bytes a compiled program's instructions move, by what they move."""
    parts = {"instructions": isa.INSN_BYTES * len(program), "a": 0, "b": 0, "out": 0}
    for ins in map(isa.decode, program):
        if ins["op"] == isa.Opcode.LOAD:
            key = "a" if a_range[0] <= ins["dram_addr"] < a_range[1] else "b"
            assert key == "a" or b_range[0] <= ins["dram_addr"] < b_range[1]
            parts[key] += ins["nrows"] * ins["ncols"]
        elif ins["op"] == isa.Opcode.STORE:
            parts["out"] += ins["nrows"] * ins["ncols"] * (4 if ins["raw"] else 1)
    return parts


@pytest.mark.parametrize("sp,shape,requant", [(16384, (96, 64, 48), True),
                                              (256, (128, 128, 96), True),
                                              (128, (200, 96, 64), False)])
def test_each_part_matches_the_compiled_program(sp, shape, requant):
    """At 16x16 on a 128-bit bus every row is one aligned beat, so the exact model's bus
    counters are the payload bytes: the breakdown equals them, part by part (a small
    scratchpad forces weight and input re-reads)."""
    cfg = NPUConfig(rows=16, cols=16, dataflow="ws", sp_lines=sp, acc_lines=128)
    M, K, N = shape
    rng = np.random.default_rng(sp)
    a, b = rng.integers(-128, 128, (M, K)), rng.integers(-128, 128, (K, N))
    layer = compile_gemm(cfg, a, b, Requant(scale=0.01) if requant else None)
    parts = gemm_breakdown(cfg, M, K, N, 1 if requant else 4)
    code = _program_parts(layer.program, (0, M * K), (M * K, M * K + K * N))
    assert parts["instructions"] == code["instructions"]
    assert parts["inputs"] + parts["input_rereads"] == code["a"]
    assert parts["weights"] + parts["weight_rereads"] == code["b"]
    assert parts["outputs"] == code["out"]
    counters = CycleNPU(cfg).run(layer.program, layer.program_addr).counters
    assert parts["total"] == counters["dma_bytes_read"] + counters["dma_bytes_written"]
    if sp < 16384:
        assert parts["weight_rereads"] + parts["input_rereads"] > 0


def test_convolutions_are_refused():
    with pytest.raises(ValueError, match="GEMM layers"):
        layer_breakdown(DEFAULT, Layer("c", "conv", h=8, w=8, c=4, kh=3, kw=3, n=8, pad=1))


def test_io_bound_is_below_every_schedule():
    """The pebble bound (Smith et al.'s 2MNK/sqrt(S) - 2S, or the compulsory bytes) is at
    most the data bytes the compiler's schedules move and the best resident-block schedule,
    and above the compulsory bytes where S is small against the GEMM."""
    assert fast_elements(DEFAULT) == 16384 * 16 + 1024 * 16
    n = 1024
    assert gemm_io_bound(DEFAULT, n, n, n) == \
        int(np.ceil(2 * n ** 3 / np.sqrt(278528) - 2 * 278528)) > 3 * n * n
    assert gemm_io_bound(DEFAULT, 256, 256, 256) == 3 * 256 * 256
    for cfg in (DEFAULT, NPUConfig(rows=8, cols=8, dataflow="ws", sp_lines=512, acc_lines=64),
                NPUConfig(rows=8, cols=8, dataflow="os", sp_lines=512, acc_lines=64)):
        for M, K, N in SHAPES + [(1024, 1024, 1024), (2048, 2048, 2048)]:
            parts = gemm_breakdown(cfg, M, K, N)
            bound = gemm_io_bound(cfg, M, K, N)
            assert bound <= parts["total"] - parts["instructions"]
            assert bound <= resident_block_bytes(cfg, M, K, N)


def test_k_passes_pay_where_weights_are_reread():
    """BERT's ffn2 at the default core (A 384 KiB, the scratchpad 256 KiB): two passes over
    K, each A half resident in one M-block, instead of the weights read twice; the
    partial sums cost 8 M N bytes.  GEMMs re-reading nothing stay in one pass, and 1024^3
    too (its partial sums would cost more than the re-reads they save)."""
    assert k_passes(DEFAULT, 128, 3072, 768) == 2
    one = gemm_breakdown(DEFAULT, 128, 3072, 768, passes=1)
    two = gemm_breakdown(DEFAULT, 128, 3072, 768)
    assert one["weight_rereads"] == 3072 * 768 and two["weight_rereads"] == 0
    assert two["partial_sums"] == 8 * 128 * 768 and two["total"] < one["total"]
    for shape in [(128, 768, 768), (128, 768, 3072), (256, 256, 256), (1024, 1024, 1024)]:
        assert k_passes(DEFAULT, *shape) == 1
    assert k_passes(NPUConfig(rows=16, cols=16, dataflow="os"), 128, 3072, 768) == 1
    assert k_pass_ranges(16, 100, 3) == [(0, 32), (32, 32), (64, 36)]
    with pytest.raises(LayerError):
        k_pass_ranges(16, 100, 8)


@pytest.mark.parametrize("cfg,shape,requant", [
    (NPUConfig(rows=4, cols=4, dataflow="ws", sp_lines=1024, acc_lines=128), (40, 300, 6), True),
    (NPUConfig(rows=4, cols=4, dataflow="ws", sp_lines=1024, acc_lines=128), (48, 512, 8), False),
    (NPUConfig(rows=16, cols=16, dataflow="ws", sp_lines=2048, acc_lines=256), (64, 1024, 64),
     True)])
def test_k_passes_bit_exact_and_modelled(cfg, shape, requant):
    """A GEMM compiled in passes over K: bit-exact on the functional model against the
    golden model; the analytical mode's bytes equal the program's and the exact model's
    bus bytes, its cycles within 2 % of the exact model's (measured -0.69 to -0.21 %)."""
    M, K, N = shape
    rng = np.random.default_rng(M)
    layer = compile_gemm(cfg, rng.integers(-128, 128, (M, K)), rng.integers(-128, 128, (K, N)),
                         Requant(scale=0.0005) if requant else None)
    assert layer.meta["passes"] == k_passes(cfg, M, K, N, 1 if requant else 4) > 1
    _, out = layer.run_functional()
    assert np.array_equal(out, layer.expected)
    est = core_estimate(cfg, Layer("g", "gemm", M=M, K=K, N=N), 1 if requant else 4)
    parts = gemm_breakdown(cfg, M, K, N, 1 if requant else 4)
    assert parts["partial_sums"] > 0
    assert est.events.dram_bytes == parts["total"] == \
        events_from_program(cfg, layer.program).dram_bytes
    counters = CycleNPU(cfg).run(layer.program, layer.program_addr).counters
    if cfg.rows == 16:        # one aligned beat a row: bus bytes are payload bytes
        assert parts["total"] == counters["dma_bytes_read"] + counters["dma_bytes_written"]
    assert abs(est.cycles - counters["cycles"]) <= 0.02 * counters["cycles"]
    assert sum(est.breakdown.values()) == pytest.approx(est.cycles)
