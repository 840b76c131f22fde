"""Workload tables, SCALE-Sim topology import/export, and the SCALE-Sim-compatible model."""

import pytest

from sim_models import analytical, workloads
from sim_models.workloads import Layer, WorkloadError


@pytest.mark.parametrize("name", list(workloads.WORKLOADS))
def test_stored_tables_match_their_architecture_descriptions(name):
    assert workloads.load(name) == workloads.build(name), \
        "stale table: run `python -m sim_models.workloads`"


def test_mac_counts_are_the_published_ones():
    gmac = {n: sum(l.macs for l in workloads.build(n)) / 1e9 for n in workloads.WORKLOADS}
    # Published: ResNet-18 1.8, ResNet-50 4.1, MobileNetV2 0.30 GMAC at 224x224.
    assert 1.80 < gmac["resnet18"] < 1.83
    assert 4.08 < gmac["resnet50"] < 4.12
    assert 0.29 < gmac["mobilenet_v2"] < 0.31
    # BERT-base block, 128 tokens: 4 x 128x768x768 + 128x768x3072 x 2 + attention 2 x 128^2 x 768
    assert sum(l.macs for l in workloads.build("bert_base_block")) == \
        4 * 128 * 768 * 768 + 2 * 128 * 768 * 3072 + 2 * 128 * 128 * 768


def test_scalesim_csv_round_trip_keeps_shapes_and_macs():
    layers = [l for l in workloads.build("mobilenet_v2") if l.kind == "conv"]
    text = workloads.to_scalesim_csv(layers)
    assert text.splitlines()[0].endswith("Strides,") and text.splitlines()[1].endswith(",")
    back = workloads.from_scalesim_csv(text)
    assert [(l.out_hw, l.macs, l.depthwise) for l in back] == \
        [(l.out_hw, l.macs, l.depthwise) for l in layers]
    gemm = [l for l in workloads.build("bert_base_block")]
    assert workloads.from_scalesim_csv(workloads.to_scalesim_csv(gemm)) == gemm


@pytest.mark.parametrize("bad,match", [
    (lambda: Layer("x", "pool"), "kind must be"),
    (lambda: Layer("x", "gemm", M=0, K=1, N=1), "M, K, N"),
    (lambda: Layer("x", "conv", h=2, w=2, c=1, kh=5, kw=5, n=1), "larger than the padded"),
    (lambda: Layer("x", "conv", h=4, w=4, c=3, kh=3, kw=3, n=4, depthwise=True), "n == c"),
    (lambda: workloads.build("vgg"), "unknown workload"),
    (lambda: workloads.from_scalesim_csv("Layer, M, N, K,\nfc, 1, two, 3,\n"), "line 2"),
    (lambda: workloads.to_scalesim_csv(workloads.build("resnet18")), "not both"),
])
def test_bad_layers_and_topologies_are_named(bad, match):
    with pytest.raises(WorkloadError, match=match):
        bad()


# Values printed by SCALE-Sim 3.0.0 itself (COMPUTE_REPORT "Total Cycles", CALC mode) for
# these layers on an 8x8 array; scripts/scalesim_compare.py reruns the tool.
SCALESIM_8x8 = [
    (Layer("g1", "gemm", M=256, K=256, N=256), "ws", [284671]),
    (Layer("g2", "gemm", M=37, K=53, N=29), "ws", [1651]),
    (Layer("c1", "conv", h=18, w=18, c=8, kh=3, kw=3, n=16), "ws", [5003]),
    (Layer("c2", "conv", h=19, w=19, c=4, kh=3, kw=3, n=4, stride=2, depthwise=True), "ws",
     [205] * 4),
    (Layer("conv_stem", "conv", h=224, w=224, c=3, kh=3, kw=3, n=32, stride=2, pad=1), "ws",
     [201055]),
]


@pytest.mark.parametrize("layer,dataflow,expected", SCALESIM_8x8, ids=lambda x: getattr(x, "name", None))
def test_compatible_mode_reproduces_recorded_scalesim_cycles(layer, dataflow, expected):
    assert analytical.scalesim_layer_cycles(layer, 8, 8, dataflow) == expected


def test_compatible_mode_formulas_by_dataflow():
    layer = Layer("g", "gemm", M=100, K=30, N=20)
    assert analytical.scalesim_spatiotemporal(layer, "ws") == (30, 20, 100)
    assert analytical.scalesim_spatiotemporal(layer, "os") == (100, 20, 30)
    assert analytical.scalesim_spatiotemporal(layer, "is") == (30, 100, 20)
    # os fold: T + R + C - 2 = 30 + 8 + 4 - 2; folds = ceil(100/8) * ceil(20/4)
    assert analytical.scalesim_layer_cycles(layer, 8, 4, "os") == [13 * 5 * 40 - 1]
    with pytest.raises(ValueError, match="dataflow"):
        analytical.scalesim_spatiotemporal(layer, "rs")


@pytest.mark.scalesim
@pytest.mark.parametrize("dataflow", ["ws", "os"])
def test_compatible_mode_equals_scalesim_itself(dataflow, tmp_path):
    """Runs SCALE-Sim 3.0.0 (its own venv, created on first use) on small layers of every
    kind -- GEMM, strided and padded conv, depthwise -- and requires exact agreement."""
    from scripts.scalesim_compare import compare

    layers = [Layer("g1", "gemm", M=37, K=53, N=29), Layer("g2", "gemm", M=5, K=70, N=3),
              Layer("c1", "conv", h=9, w=7, c=5, kh=3, kw=3, n=6, stride=2, pad=1),
              Layer("c2", "conv", h=8, w=8, c=6, kh=1, kw=1, n=9),
              Layer("dw", "conv", h=10, w=10, c=3, kh=3, kw=3, n=3, stride=2, pad=1,
                    depthwise=True)]
    result = compare(layers, 4, 4, dataflow, tmp_path)
    assert [r["layer"] for r in result["records"]] == ["c1", "c2", "dw", "g1", "g2"]
    for r in result["records"]:
        assert r["ours"] == r["scalesim"], r
