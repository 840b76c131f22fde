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


@pytest.mark.rtl
@pytest.mark.parametrize("sim", ["verilator", "icarus"])
def test_whole_graph_segments_on_rtl(sim):
    """Chains of convolutions as one program each (each layer reading what the RTL wrote
    for the layer before): MobileNetV2 at 1/4 width on Verilator (52 of its 52 convolutions
    in 12 programs, the last one closed by the global average pool and the classifier; its
    residual adds in the requantizer's add mode), the mixed graph on Icarus; every layer's
    output, read back from DRAM, equal to the golden model, the outputs identical to
    onnxruntime's, and on Verilator the cycle model's counters equal to the RTL's for every
    program."""
    if sim == "verilator":
        fm, shape = zoo.mobilenet_v2(width=0.25, resolution=32, classes=10), (3, 32, 32)
    else:
        fm, shape = zoo.mixed(), (4, 12, 12)
    qm = zoo.quantize(fm, zoo.calibration(shape, 4), "qoperator", "int8", True)
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
    segs = [layer for layer in ex.layers if "segment" in layer]
    assert segs and all(layer["golden_equal"] for layer in ex.layers)
    assert np.array_equal(ex.outputs["output"], zoo.ort_run(qm, {"input": x})["output"])
    if sim == "icarus":          # its channel concat and its max pool ran on the RTL too
        assert {"QLinearConcat (2 slices, one program)", "MaxPool"} <= \
            {layer["op"] for layer in ex.layers}
    if sim == "verilator":
        convs = [m for s in segs for m in s["members"] if m["op"] == "QLinearConv"]
        assert len(convs) == 52
        assert [m["op"] for m in segs[-1]["members"]][-2:] == ["QLinearGlobalAveragePool",
                                                               "QGemm"]
        # its residual QLinearAdds ran on the RTL too (the requantizer's add mode)
        adds = sum(op.kind == "add" for op in graph.ops)
        assert adds >= 10 and sum(layer["op"] == "QLinearAdd" for layer in ex.layers) == adds
        assert not any(h["op"] == "QLinearAdd" for h in ex.host)
        assert [l["dram_bytes"] for l in ex.layers] == \
            [l["dram_bytes"] for l in runs["model"].layers]
        model = {l["layer"]: l["cycles"] for l in runs["model"].layers}
        differ = {l["layer"]: (l["cycles"], model[l["layer"]]) for l in ex.layers
                  if l["cycles"] != model[l["layer"]]}
        assert not differ, differ
