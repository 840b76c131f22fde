"""The ONNX front end on the RTL: a few digits images (QOperator uint8 per-channel) and the
``onnx`` package's integer node cases, every NPU layer on the Verilator harness and on the
cocotb core bench under Icarus, outputs identical to onnxruntime's."""

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from hdl.config import NPUConfig  # noqa: E402
from scripts.run import make_runner  # noqa: E402
from sim_models.onnx_frontend import execute, import_model, zoo  # noqa: E402

from .test_onnx import _node_cases, run_node_case  # noqa: E402

# test_harness's configuration: its Verilator build is shared.
CFG = NPUConfig(rows=4, cols=4, dataflow="ws", bus_bits=128, sp_lines=1024, acc_lines=128)


@pytest.mark.rtl
@pytest.mark.parametrize("sim,images", [("verilator", 8), ("icarus", 2)])
def test_digits_on_rtl_identical_to_onnxruntime(sim, images):
    """The whole digits CNN (conv, max pool, conv, max pool, flatten, gemm) as ONE program
    per inference on the RTL: output identical to onnxruntime's, every layer's output (read
    back from where the next layer read it) equal to the golden model's, and the cycle
    model's counters equal to the RTL's, every one of them."""
    (xtr, _), (xte, yte) = zoo.digits()
    qm = zoo.quantize(onnx.load(str(zoo.DIGITS_ONNX)), xtr[:128], "qoperator", "uint8", True)
    graph = import_model(qm)
    runs = {}
    for backend in (sim, "model"):
        run_layer, close = make_runner(backend)
        try:
            runs[backend] = execute(graph, {"input": xte[:images]}, CFG, run_layer)
        finally:
            close()
    ex = runs[sim]
    ref = zoo.ort_run(qm, {"input": xte[:images]})["output"]
    assert np.array_equal(ex.outputs["output"], ref)
    assert [layer["segment"] for layer in ex.layers] == \
        [["conv1_quant", "pool1", "conv2_quant", "pool2", "fc_quant"]]
    assert all(layer["golden_equal"] and layer["cycles_source"] == "measured"
               for layer in ex.layers)
    assert ex.layers[0]["counters"] == runs["model"].layers[0]["counters"]


@pytest.mark.rtl
@pytest.mark.parametrize("sim", ["verilator", "icarus"])
def test_onnx_node_cases_on_rtl(sim):
    cases = _node_cases()
    run_layer, close = make_runner(sim)
    names = ["test_qlinearconv", "test_convinteger_with_padding", "test_matmulinteger",
             "test_qlinearmatmul_3D_int8_float32"]
    try:
        for name in names:
            ours, expected = run_node_case(cases[name], CFG, run_layer)
            assert ours.dtype == expected.dtype and np.array_equal(ours, expected), name
    finally:
        close()


def _avgpool_net():
    """A convolution and a padded 3x3 average pool (count_include_pad=1, ceil_mode)."""
    b = zoo._Builder(0)
    y = b.conv("input", 3, 8, 3)
    b.nodes.append(onnx.helper.make_node("AveragePool", [y], ["output"], name="avg",
                                         kernel_shape=[3, 3], strides=[2, 2], pads=[1] * 4,
                                         count_include_pad=1, ceil_mode=1))
    return zoo._model(b.nodes, b.inits, ["N", 3, 9, 9], ["N", 8, 5, 5], "avgnet"), (3, 9, 9)


_NETS = {"mobilenet_v2": lambda: (zoo.mobilenet_v2(width=0.25, resolution=32, classes=10),
                                  (3, 32, 32)),
         "resnet18": lambda: (zoo.resnet18(width=0.125, resolution=32, classes=10),
                              (3, 32, 32)),
         "mixed": lambda: (zoo.mixed(), (4, 12, 12)),
         "avgpool": _avgpool_net,
         "mlp": lambda: (zoo.mlp(), (64,))}
_WHOLE = [("verilator", "mobilenet_v2"), ("verilator", "resnet18"), ("icarus", "mixed"),
          ("verilator", "avgpool"), ("verilator", "mlp")]


@pytest.mark.rtl
@pytest.mark.parametrize("sim,net", _WHOLE)
def test_whole_graph_on_rtl(sim, net):
    """A branching graph as ONE program per inference, each op reading what the RTL wrote
    for the ops before it: MobileNetV2 at 1/4 width (its 52 convolutions, its residual adds
    in the requantizer's add mode -- each skip branch stored into two buffers --, the
    global average pool and the classifier) and ResNet-18 at 1/8 width on Verilator, a
    convolution and an average pool on Verilator, the mixed graph on Icarus (convolutions,
    a max pool and a channel concat in one program; its batched MatMul, behind a host
    Transpose + Reshape, in a second); every op's output, read back from DRAM, equal to the
    golden model, the outputs identical to onnxruntime's, and on Verilator the cycle
    model's counters equal to the RTL's (MobileNetV2's depthwise -> project pairs chained:
    the depthwise output kept in the scratchpad, STORE ``to_sp``; an MLP's three matrix
    products one chain).  The average pool is
    quantized as QDQ, whose pools keep their input's scale: a 3x3 window is then provably
    exact against onnxruntime's float kernel
    (:func:`~sim_models.onnx_frontend.lower.avgpool_npu_exact`) and runs on the NPU by
    default."""
    fm, shape = _NETS[net]()
    fmt = "qdq" if net == "avgpool" else "qoperator"
    qm = zoo.quantize(fm, zoo.calibration(shape, 4), fmt, "int8", True)
    x = zoo.calibration(shape, 1, seed=9)
    graph = import_model(qm)
    runs = {}
    for backend in ([sim, "model"] if sim == "verilator" else [sim]):
        run_layer, close = make_runner(backend)
        try:
            runs[backend] = execute(graph, {"input": x}, CFG, run_layer)
        finally:
            close()
    ex = runs[sim]
    assert all(layer["golden_equal"] for layer in ex.layers)
    ref = zoo.ort_run(qm, {"input": x})["output"]
    members = [m["op"] for m in ex.layers[0]["members"]]
    if net == "avgpool":
        assert members == ["Conv", "AveragePool"]
    assert np.array_equal(ex.outputs["output"], ref)
    if net == "mixed":
        assert len(ex.layers) == 2 and {"QLinearConcat", "MaxPool"} <= set(members)
    if net in ("mobilenet_v2", "resnet18"):
        assert len(ex.layers) == 1 and \
            members.count("QLinearConv") == sum(op.kind == "conv" for op in graph.ops) >= 20
        assert members[-2:] == ["QLinearGlobalAveragePool", "QGemm"]
        adds = sum(op.kind == "add" for op in graph.ops)
        assert adds >= 8 and members.count("QLinearAdd") == adds
        assert [h["op"] for h in ex.host] == ["QuantizeLinear", "Flatten", "DequantizeLinear"]
    if net == "mobilenet_v2":   # depthwise -> project pairs, the intermediate on chip
        assert len(ex.layers[0]["chains"]) >= 10
    if net == "mlp":            # three matrix products, two intermediates on chip
        assert len(ex.layers) == 1 and ex.layers[0]["chains"] == ["fc1_quant+fc2_quant+fc3_quant"]
    if sim == "verilator":
        assert [l["counters"] for l in ex.layers] == [l["counters"] for l in runs["model"].layers]


@pytest.mark.rtl
def test_mixed_graph_on_output_stationary_rtl():
    """The mixed graph on an output-stationary core (test_harness's OS build, shared): its
    channel concat as one NPU program (the slices linked as on weight-stationary cores), its
    max pool on the host with the reason; outputs identical to onnxruntime's, every NPU
    program's output equal to the golden model and the cycle model's counters equal to the
    RTL's on every program."""
    cfg = NPUConfig(rows=4, cols=4, dataflow="os", bus_bits=64, sp_lines=1024, acc_lines=128)
    fm, shape = _NETS["mixed"]()
    qm = zoo.quantize(fm, zoo.calibration(shape, 4), "qoperator", "int8", True)
    x = zoo.calibration(shape, 1, seed=9)
    graph = import_model(qm)
    runs = {}
    for backend in ("verilator", "model"):
        run_layer, close = make_runner(backend)
        try:
            runs[backend] = execute(graph, {"input": x}, cfg, run_layer)
        finally:
            close()
    ex = runs["verilator"]
    assert np.array_equal(ex.outputs["output"], zoo.ort_run(qm, {"input": x})["output"])
    assert all(layer["golden_equal"] for layer in ex.layers)
    assert "QLinearConcat (2 slices, one program)" in [layer["op"] for layer in ex.layers]
    assert [h["op"] for h in ex.host if h["op"] == "MaxPool"] == ["MaxPool"]
    assert [l["counters"] for l in ex.layers] == [l["counters"] for l in runs["model"].layers]
