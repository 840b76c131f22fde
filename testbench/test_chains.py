"""Layers chained on chip (issue 11): the workload tables' links, the analytical mode's
chains against the exact model on the compiler's chained programs, and the decision rule
shared by the compiler and the sweep."""

import numpy as np
import pytest

from hdl.config import NPUConfig
from sim_models import workloads
from sim_models.analytical import Chained, chained_bytes, chains, core_estimate
from sim_models.compiler import (Requant, chain_pays, chain_regions, compile_conv_chain,
                                 compile_gemm_chain)
from sim_models.cycle import CycleNPU
from sim_models.workloads import Layer, WorkloadError

CORE = NPUConfig(rows=8, cols=8, dataflow="ws", sp_lines=4096, acc_lines=256)
DEFAULT = NPUConfig(rows=16, cols=16, dataflow="ws")


def test_tables_link_each_layer_to_the_one_it_reads():
    """ResNet-50's conv2 -> conv3, MobileNetV2's dw -> project and the MLP's fc -> fc are
    the tables' links; the BERT block has none (host ops between its GEMMs)."""
    links = {name: [(p.name, l.name) for p, l in zip(layers, layers[1:]) if l.a_from]
             for name in ("resnet50", "mobilenet_v2", "mlp", "bert_base_block")
             for layers in [workloads.load(name)]}
    assert len(links["resnet50"]) == 16 and all(
        p.endswith("conv2") and l.endswith("conv3") for p, l in links["resnet50"])
    assert len(links["mobilenet_v2"]) == 17 and all(
        p.endswith(".dw") and l.endswith(".project") for p, l in links["mobilenet_v2"])
    assert links["mlp"] == [("fc1", "fc2"), ("fc2", "fc3")] and not links["bert_base_block"]
    mlp = workloads.load("mlp")
    assert chained_bytes(mlp) == 2 * (64 * 512 + 64 * 256)


def test_a_link_that_does_not_match_is_refused():
    a = Layer("a", "conv", h=8, w=8, c=4, kh=3, kw=3, n=6, pad=1)
    for bad in (Layer("b", "conv", h=8, w=8, c=6, kh=3, kw=3, n=5, pad=1, a_from="a"),
                Layer("b", "conv", h=8, w=8, c=5, kh=1, kw=1, n=5, a_from="a"),
                Layer("b", "gemm", M=64, K=6, N=5, a_from="x")):
        with pytest.raises(WorkloadError, match="a_from"):
            chains(DEFAULT, [a, bad])
    assert chains(DEFAULT, [a, Layer("b", "gemm", M=64, K=6, N=5, a_from="a")])[0].out_on_chip
    with pytest.raises(ValueError, match="1x1"):
        core_estimate(DEFAULT, a, chain=Chained(True, False, 64))


def test_chains_keep_what_fits_and_pays():
    """At the default core: ResNet-50's stride-2 conv2s of layer2.0 and layer3.0 would lose
    more bytes to the smaller room than the chain saves; the other 14 are kept (stage 1's
    12,544 lines too); every chained layer reads A on chip from the layer before.
    Output-stationary: none.  A chain that leaves a layer no room is not taken."""
    layers = workloads.load("resnet50")
    got = chains(DEFAULT, layers)
    kept = [l.name for l, c in zip(layers, got) if c.out_on_chip]
    assert len(kept) == 14 and "layer1.0.conv2" in kept and "layer2.1.conv2" in kept
    assert "layer2.0.conv2" not in kept and "layer3.0.conv2" not in kept
    for k, c in enumerate(got):
        assert c.a_on_chip == (k > 0 and got[k - 1].out_on_chip)
    os_ = NPUConfig(rows=16, cols=16, dataflow="os")
    assert all(c == Chained() for c in chains(os_, layers))
    assert not chain_pays(DEFAULT, [("conv", 56, 56, 128, 3, 3, 128, 2, 1, False),
                                    ("conv", 28, 28, 128, 1, 1, 512, 1, 0, False)])
    assert chain_pays(DEFAULT, [("gemm", 64, 784, 512), ("gemm", 64, 512, 256)])
    tiny = NPUConfig(rows=4, cols=4, dataflow="ws", sp_lines=64, acc_lines=16)
    pair = [Layer("a", "gemm", M=14, K=4, N=16), Layer("b", "gemm", M=14, K=16, N=4,
                                                      a_from="a")]
    assert chain_regions(tiny, 14, [16])[-1] == 56       # 7/8 of 64 lines: fits
    assert chains(tiny, pair) == [Chained(), Chained()]   # the first layer has no room


def _exact_cycles(layer) -> int:
    return CycleNPU(CORE).run(layer.program, layer.program_addr).counters["cycles"]


def test_analytical_chain_follows_the_exact_model():
    """The analytical mode's estimate of a chain's layers (A read on chip, outputs stored
    on chip, the regions' lines taken from the layers) against the exact model running the
    compiler's chained program: a GEMM chain and three convolution -> 1x1 chains (on-chip
    im2col, strided depthwise, depthwise), within 2 % (measured: 0.0-0.8 %)."""
    rng = np.random.default_rng(3)
    i8 = lambda *s: rng.integers(-128, 128, s)  # noqa: E731
    rq = Requant(scale=0.001)
    dims = [(96, 120, 64), (96, 64, 40), (96, 40, 24)]
    gemm = compile_gemm_chain(CORE, i8(96, 120), [i8(k, n) for _, k, n in dims], [rq] * 3,
                              on_chip=True)
    layers = [Layer(f"l{k}", "gemm", M=m, K=kk, N=n, a_from=f"l{k - 1}" if k else "")
              for k, (m, kk, n) in enumerate(dims)]
    cases = [(gemm, layers, chains(CORE, layers))]
    for h, c, n, stride, dw, nxt in [(12, 16, 16, 1, False, 32), (14, 16, 16, 2, True, 24),
                                     (12, 24, 24, 1, True, 16)]:
        program = compile_conv_chain(CORE, i8(h, h, c), i8(3, 3, c) if dw else i8(3, 3, c, n),
                                     i8(n, nxt), stride, 1, dw, (rq, rq), on_chip=True)
        ho = (h - 1) // stride + 1
        lo = chain_regions(CORE, ho * ho, [n])[-1]
        pair = [Layer("a", "conv", h=h, w=h, c=c, kh=3, kw=3, n=n, stride=stride, pad=1,
                      depthwise=dw),
                Layer("b", "conv", h=ho, w=ho, c=n, kh=1, kw=1, n=nxt, a_from="a")]
        cases.append((program, pair, [Chained(False, True, lo), Chained(True, False, lo)]))
    for program, layers, links in cases:
        assert program.meta["on_chip"] and all(c != Chained() for c in links)
        estimate = sum(core_estimate(CORE, l, chain=c).cycles for l, c in zip(layers, links))
        exact = _exact_cycles(program)
        assert abs(estimate - exact) <= 0.02 * exact, (layers[0], estimate, exact)


def test_linking_through_dram_refuses_on_chip_stores():
    """``link_slices`` moves every STORE to a column slice of one DRAM buffer: a chained
    program's STORE ``to_sp`` (whose address is a scratchpad line) is refused, not moved
    (``link_graph`` leaves such STOREs where they are: test_onnx's chained graphs)."""
    from sim_models.compiler import compile_gemm
    from sim_models.onnx_frontend.wholegraph import link_slices
    rng = np.random.default_rng(1)
    a, b = rng.integers(-128, 128, (8, 8)), rng.integers(-128, 128, (8, 8))
    chained = compile_gemm_chain(CORE, a, [b, b], [Requant(scale=0.01)] * 2, on_chip=True)
    with pytest.raises(ValueError, match="to_sp"):
        link_slices(CORE, [chained, compile_gemm(CORE, a, b, Requant(scale=0.01))], [8, 8])


def test_linking_moves_only_output_stores_of_a_k_split_gemm():
    """A GEMM compiled in passes over K STOREs raw partial sums to its own scratch buffer
    and LOAD_ACCs them back: the linkers relocate those STOREs with the layer's image and
    move only its output STOREs to their slice (routing the partial sums as output gave
    wrong slices)."""
    from sim_models.compiler import compile_gemm
    from sim_models.onnx_frontend.wholegraph import link_slices
    cfg = NPUConfig(rows=4, cols=4, dataflow="ws", sp_lines=1024, acc_lines=128)
    rng = np.random.default_rng(7)
    a = rng.integers(-128, 128, (40, 300))
    layers = [compile_gemm(cfg, a, rng.integers(-128, 128, (300, 6)), Requant(scale=0.0005),
                           name=f"g{k}") for k in range(2)]
    assert all(layer.meta["passes"] > 1 for layer in layers)
    linked = link_slices(cfg, layers, [6, 6])
    _, out = linked.run_functional()
    assert np.array_equal(out, np.concatenate([l.expected for l in layers], axis=1))
