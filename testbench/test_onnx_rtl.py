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
    (xtr, _), (xte, yte) = zoo.digits()
    qm = zoo.quantize(onnx.load(str(zoo.DIGITS_ONNX)), xtr[:128], "qoperator", "uint8", True)
    run_layer, close = make_runner(sim)
    try:
        ex = execute(import_model(qm), {"input": xte[:images]}, CFG, run_layer)
    finally:
        close()
    ref = zoo.ort_run(qm, {"input": xte[:images]})["output"]
    assert np.array_equal(ex.outputs["output"], ref)
    assert all(layer["golden_equal"] and layer["cycles_source"] == "measured"
               for layer in ex.layers)


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
