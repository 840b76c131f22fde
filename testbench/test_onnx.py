"""The ONNX front end on real quantized networks, against onnxruntime (functional model).

* the digits CNN quantized by onnxruntime (QOperator uint8 per-channel, QDQ int8): the
  whole test split, every output identical and the accuracy equal;
* ResNet-18 and MobileNetV2 topologies at reduced width and input size: every intermediate
  quantized tensor compared with onnxruntime's (QOperator: all identical; QDQ: identical
  except where onnxruntime's optimizer leaves the node in float, where the difference is
  bounded by one step and counted);
* whole-graph programs with layers chained on chip (MobileNetV2's depthwise -> project
  pairs, an MLP's matrix products) and without, identical to onnxruntime's either way;
* the ``onnx`` package's own node test cases for QLinearConv, QLinearMatMul, ConvInteger and
  MatMulInteger;
* errors before anything runs.
"""

import copy

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from hdl.config import NPUConfig  # noqa: E402
from sim_models.onnx_frontend import OnnxImportError, execute, import_model, zoo  # noqa: E402
from sim_models.onnx_frontend import executor  # noqa: E402
from sim_models.onnx_frontend.lower import (add_host_reason, avgpool_npu_exact, lower_add, lower_conv,  # noqa: E402
                                            lower_matmul)

CFG = NPUConfig(rows=8, cols=8, dataflow="ws")


@pytest.fixture(scope="module")
def digits_float():
    return onnx.load(str(zoo.DIGITS_ONNX))


@pytest.mark.parametrize("fmt,act,per_channel", [("qoperator", "uint8", True),
                                                 ("qdq", "int8", False)])
def test_digits_whole_test_split_identical_to_onnxruntime(digits_float, fmt, act, per_channel):
    (xtr, _), (xte, yte) = zoo.digits()
    qm = zoo.quantize(digits_float, xtr[:128], fmt, act, per_channel)
    graph = import_model(qm)
    ours = execute(graph, {"input": xte}, CFG).outputs["output"]
    ref = zoo.ort_run(qm, {"input": xte})["output"]
    # The float logits are DequantizeLinear of the int8 logits: equal floats, equal ints.
    assert ours.dtype == ref.dtype and ours.shape == ref.shape == (len(xte), 10)
    assert np.array_equal(ours, ref), f"{int((ours != ref).sum())} logits differ"
    acc_ours = float((ours.argmax(1) == yte).mean())
    acc_ref = float((ref.argmax(1) == yte).mean())
    assert acc_ours == acc_ref and acc_ours > 0.9


def _with_outputs(model, names):
    m = copy.deepcopy(model)
    have = {o.name for o in m.graph.output}
    for n in names:
        if n not in have:
            m.graph.output.append(onnx.helper.make_empty_tensor_value_info(n))
    return m


def _every_tensor(graph, feeds, teacher=None, npu_adds=None):
    """Every tensor of the graph, int8 inside, op by op on the functional model (adds too,
    where the requantizer's add mode has an exact grid: their names appended to
    ``npu_adds``); with ``teacher`` (onnxruntime's tensors by name) each op reads
    onnxruntime's inputs, so a difference is the op's own, not one carried from an earlier
    float island."""
    vals = {n: np.asarray(v) for n, v in graph.consts.items()}
    for name, dtype, _ in graph.inputs:
        vals[name] = executor.from_model_dtype(feeds[name], dtype)
    for op in graph.ops:
        ins = [vals[i] if i else None for i in op.inputs]
        if teacher is not None:
            ins = [_inside(teacher[i]) if i in teacher and i in graph.qparams else v
                   for i, v in zip(op.inputs, ins)]
        if op.kind in ("conv", "matmul"):
            low = (lower_conv if op.kind == "conv" else lower_matmul)(
                CFG, op, ins[0], ins[1], ins[2] if op.attrs["has_bias"] else None)
            outs = []
            for layer in low.layers:
                result, out = layer.run_functional()
                assert result.done and np.array_equal(out, layer.expected)
                outs.append(out)
            vals[op.outputs[0]] = low.assemble(outs)
        elif op.kind == "add" and add_host_reason(CFG, op, ins) is None:
            low = lower_add(CFG, op, ins)
            result, out = low.layers[0].run_functional()
            assert result.done and np.array_equal(out, low.layers[0].expected)
            vals[op.outputs[0]] = low.assemble([out])
            if npu_adds is not None:
                npu_adds.append(op.name)
        else:
            vals[op.outputs[0]] = executor._host_op(op, ins, graph)[0]
    return vals


def _inside(t):
    return t.astype(np.int64) - (128 if t.dtype == np.uint8 else 0)


def _ort_float_nodes(model):
    from scripts.run import ort_float_nodes
    return set(ort_float_nodes(model))


@pytest.mark.parametrize("net", ["resnet18", "mobilenet_v2", "mixed"])
@pytest.mark.parametrize("fmt,act,per_channel", [("qoperator", "uint8", True),
                                                 ("qoperator", "int8", False),
                                                 ("qdq", "int8", True)])
def test_topology_every_tensor_against_onnxruntime(net, fmt, act, per_channel):
    """``mixed``: grouped and dilated convolutions, asymmetric pads, stride 2, padded
    MaxPool, Concat, Transpose + Reshape into a batched MatMul, batch 3."""
    if net == "mixed":
        fm, shape, batch = zoo.mixed(), (4, 12, 12), 3
    else:
        builder, width = {"resnet18": (zoo.resnet18, 0.125),
                          "mobilenet_v2": (zoo.mobilenet_v2, 0.25)}[net]
        fm, shape, batch = builder(width=width, resolution=32, classes=10), (3, 32, 32), 2
    qm = zoo.quantize(fm, zoo.calibration(shape, 4), fmt, act, per_channel)
    graph = import_model(qm)
    x = zoo.calibration(shape, batch, seed=7)
    names = [op.outputs[0] for op in graph.ops if op.outputs[0] in graph.qparams]
    ref = zoo.ort_run(_with_outputs(qm, names), {"input": x})
    islands = _ort_float_nodes(qm) if fmt == "qdq" else set()
    npu_adds = []
    vals = _every_tensor(graph, {"input": x}, ref if islands else None, npu_adds)
    adds = [op for op in graph.ops if op.kind == "add"]
    if fmt == "qoperator":      # every residual add has a grid (QDQ: some are float islands)
        assert len(npu_adds) == len(adds) >= {"resnet18": 8, "mobilenet_v2": 10,
                                              "mixed": 0}[net]
    checked = differing = total = 0
    for op in graph.ops:
        o = op.outputs[0]
        if o not in ref or o not in graph.qparams:
            continue
        r = _inside(ref[o])
        diff = np.abs(r - vals[o])
        checked += 1
        if fmt == "qdq":   # (islands: by output tensor)
            # A QDQ tensor made a graph output may be computed by a float path that
            # onnxruntime keeps for that output alone, so even fused nodes are only bounded
            # here; their exactness is the QOperator cases' (same integer kernels).
            assert diff.max(initial=0) <= 1, f"{op.name}: differs by {diff.max()}"
            differing += int((diff > 0).sum())
            total += diff.size
        else:
            assert not diff.any(), f"{op.name} ({op.onnx_op}): {int((diff > 0).sum())} differ"
    assert checked >= {"resnet18": 30, "mobilenet_v2": 60, "mixed": 8}[net]
    assert differing <= 1e-3 * max(total, 1), f"{differing} of {total} values differ"
    final = executor.to_model_dtype(vals[graph.outputs[0][0]], graph.outputs[0][1])
    assert np.array_equal(final.argmax(-1), ref["output"].argmax(-1))


def _node_cases():
    import warnings
    from onnx.backend.test.case.node import collect_testcases
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = collect_testcases()
    keys = ("qlinearconv", "qlinearmatmul", "matmulinteger", "convinteger")
    return {c.name: c for c in cases if any(k in c.name for k in keys)}


NODE_CASES = ["test_qlinearconv", "test_convinteger_without_padding",
              "test_convinteger_with_padding", "test_matmulinteger",
              "test_qlinearmatmul_2D_uint8_float32", "test_qlinearmatmul_3D_uint8_float32",
              "test_qlinearmatmul_2D_int8_float32", "test_qlinearmatmul_3D_int8_float32"]


@pytest.fixture(scope="module")
def node_cases():
    return _node_cases()


def run_node_case(case, cfg=CFG, run_layer=None):
    """One ``onnx`` node test case: every input but the first bound as a constant."""
    inputs, outputs = case.data_sets[0]
    names = [i.name for i in case.model.graph.input]
    graph = import_model(case.model, bind=dict(zip(names[1:], inputs[1:])))
    res = execute(graph, {names[0]: inputs[0]}, cfg, run_layer)
    return res.outputs[case.model.graph.output[0].name], outputs[0]


@pytest.mark.parametrize("name", NODE_CASES)
def test_onnx_node_cases(node_cases, name):
    ours, expected = run_node_case(node_cases[name])
    assert ours.dtype == expected.dtype and ours.shape == expected.shape
    assert np.array_equal(ours, expected)


def test_onnx_node_cases_float16_scales_refused(node_cases):
    case = node_cases["test_qlinearmatmul_2D_uint8_float16"]
    names = [i.name for i in case.model.graph.input]
    with pytest.raises(OnnxImportError, match="not float32"):
        import_model(case.model, bind=dict(zip(names[1:], case.data_sets[0][0][1:])))


def _tiny(node, inits, x_type=onnx.TensorProto.FLOAT):
    h = onnx.helper
    g = h.make_graph([node], "t", [h.make_tensor_value_info("x", x_type, [1, 2, 4, 4])],
                     [h.make_tensor_value_info("y", onnx.TensorProto.UNDEFINED, None)],
                     [onnx.numpy_helper.from_array(v, k) for k, v in inits.items()])
    return h.make_model(g, opset_imports=[h.make_opsetid("", 13)])


def test_unsupported_op_named_before_anything_runs():
    m = _tiny(onnx.helper.make_node("LpNormalization", ["x"], ["y"], name="norm7"), {})
    with pytest.raises(OnnxImportError, match="norm7.*LpNormalization"):
        import_model(m)


def test_unsupported_attribute_named():
    u8 = lambda v: np.array(v, np.uint8)  # noqa: E731
    f = lambda v: np.array(v, np.float32)  # noqa: E731
    inits = {"xs": f(0.1), "xz": u8(3), "w": np.ones((2, 2, 3, 3), np.uint8), "ws": f(0.1),
             "wz": u8(0), "ys": f(0.2), "yz": u8(1)}
    node = onnx.helper.make_node("QLinearConv", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz"],
                                 ["y"], name="convA", strides=[1, 2])
    with pytest.raises(OnnxImportError, match="convA.*strides"):
        import_model(_tiny(node, inits, onnx.TensorProto.UINT8))
    node = onnx.helper.make_node("QLinearConv", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz"],
                                 ["y"], name="convB", auto_pad="SAME_UPPER")
    with pytest.raises(OnnxImportError, match="convB.*auto_pad"):
        import_model(_tiny(node, inits, onnx.TensorProto.UINT8))


# -- bad input to the compiler: a clear LayerError, never a change of meaning ---------------

def test_compiler_refuses_uint8_int16_and_unscaled_bias():
    from sim_models.compiler import LayerError, Requant, compile_conv2d, compile_gemm
    a = np.arange(12).reshape(3, 4)
    b = np.ones((4, 2), np.int64)
    with pytest.raises(LayerError, match="uint8.*zero point"):
        compile_gemm(CFG, a.astype(np.uint8), b)
    with pytest.raises(LayerError, match="int16, not int8"):
        compile_gemm(CFG, a.astype(np.int16), b)
    with pytest.raises(LayerError, match="uint8"):
        compile_conv2d(CFG, np.zeros((4, 4, 2), np.uint8), np.zeros((3, 3, 2, 2), np.int8))
    with pytest.raises(LayerError, match="needs a scale"):
        compile_gemm(CFG, a, b, Requant(scale=None, bias=np.array([1, 2])))
    with pytest.raises(LayerError, match="scale out of range"):
        compile_gemm(CFG, a, b, Requant(scale=np.float32(2.0 ** 40), rounding="onnxruntime"))
    with pytest.raises(LayerError, match="float32"):
        compile_gemm(CFG, a, b, Requant(scale=0.5, rounding="onnxruntime"))
    with pytest.raises(LayerError, match="acc_bias must be integers"):
        compile_gemm(CFG, a, b, acc_bias=np.array([0.5, 1.0]))
    # int8 and numpy's default integers with int8 values are operands as before.
    assert compile_gemm(CFG, a.astype(np.int8), b).expected.shape == (3, 2)


def test_make_run_command_writes_output_and_report(tmp_path):
    """scripts/run.py (what make run calls) on the shipped float digits CNN: quantized by
    onnxruntime, one inference, output.npy as onnxruntime returns it, report.json."""
    import json
    from scripts.run import main
    x = zoo.digits()[1][0][:3]
    np.save(tmp_path / "x.npy", x)
    assert main(["--model", str(zoo.DIGITS_ONNX), "--input", str(tmp_path / "x.npy"),
                 "--sim", "model", "--rows", "4", "--cols", "4", "--out", str(tmp_path)]) == 0
    rep = json.loads((tmp_path / "report.json").read_text())
    out = np.load(tmp_path / "output.npy")
    assert out.dtype == np.float32 and out.shape == (3, 10)
    assert rep["onnxruntime"]["output"]["equal"] and rep["onnxruntime"]["output"]["differing"] == 0
    assert rep["programs"] == 1 and [l["segment"] for l in rep["layers"]] == \
        [["conv1_quant", "pool1", "conv2_quant", "pool2", "fc_quant"]]
    assert [m["op"] for m in rep["layers"][0]["members"]] == \
        ["QLinearConv", "MaxPool", "QLinearConv", "MaxPool", "QGemm"]
    assert all(l["cycles_source"] == "measured" and l["cycles"] > 0 for l in rep["layers"])
    assert {h["op"] for h in rep["host_ops"]} == {"QuantizeLinear", "Flatten",
                                                  "DequantizeLinear"}
    assert 0 < rep["totals"]["host_share"] < 0.1


def test_make_run_refuses_unsupported_before_running(tmp_path, capsys):
    from scripts.run import main
    m = _tiny(onnx.helper.make_node("LpNormalization", ["x"], ["y"], name="norm7"), {})
    m.graph.node.insert(0, onnx.helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]))
    m.graph.initializer.extend([onnx.numpy_helper.from_array(np.float32(0.1), "s"),
                                onnx.numpy_helper.from_array(np.int8(0), "z")])
    onnx.save(m, tmp_path / "m.onnx")
    assert main(["--model", str(tmp_path / "m.onnx"), "--out", str(tmp_path)]) == 2
    assert "norm7" in capsys.readouterr().err and not (tmp_path / "report.json").exists()


@pytest.mark.parametrize("group,wz", [(1, 3), (2, 0), (4, 250)])
def test_uint8_weights_split_over_doubled_k(group, wz):
    """uint8 weights whose ``w - zw`` leaves int8 (the K-doubling split), grouped and
    depthwise, against onnxruntime's QLinearConv; and a QLinearMatMul the same way."""
    rng = np.random.default_rng(group)
    h = onnx.helper
    u8, f = (lambda v: np.array(v, np.uint8)), (lambda v: np.array(v, np.float32))
    C = 4
    w = rng.integers(0, 256, (4, C // group, 3, 3)).astype(np.uint8)
    inits = {"xs": f(0.02), "xz": u8(100), "w": w, "ws": f(0.003), "wz": u8(wz),
             "ys": f(0.9), "yz": u8(120), "bias": rng.integers(-500, 500, 4).astype(np.int32)}
    node = h.make_node("QLinearConv", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz", "bias"],
                       ["y"], group=group, pads=[1, 0, 2, 1], strides=[2, 2])
    g = h.make_graph([node], "t", [h.make_tensor_value_info("x", onnx.TensorProto.UINT8,
                                                            [2, C, 9, 8])],
                     [h.make_tensor_value_info("y", onnx.TensorProto.UINT8, None)],
                     [onnx.numpy_helper.from_array(v, k) for k, v in inits.items()])
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 13)])
    x = rng.integers(0, 256, (2, C, 9, 8)).astype(np.uint8)
    ours = execute(import_model(m), {"x": x}, CFG).outputs["y"]
    ref = zoo.ort_run(m, {"x": x})["y"]
    assert ours.dtype == np.uint8 and np.array_equal(ours, ref)
    b = rng.integers(0, 256, (16, 5)).astype(np.uint8)
    inits = {"as": f(0.02), "az": u8(7), "b": b, "bs": f(0.01), "bz": u8(wz), "ys": f(0.7),
             "yz": u8(9)}
    node = h.make_node("QLinearMatMul", ["a", "as", "az", "b", "bs", "bz", "ys", "yz"], ["y"])
    g = h.make_graph([node], "t", [h.make_tensor_value_info("a", onnx.TensorProto.UINT8,
                                                            [3, 16])],
                     [h.make_tensor_value_info("y", onnx.TensorProto.UINT8, None)],
                     [onnx.numpy_helper.from_array(v, k) for k, v in inits.items()])
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 13)])
    a = rng.integers(0, 256, (3, 16)).astype(np.uint8)
    assert np.array_equal(execute(import_model(m), {"a": a}, CFG).outputs["y"],
                          zoo.ort_run(m, {"a": a})["y"])


def test_digits_one_program_split_per_layer():
    """The digits CNN links into one program; the cycle model's split of it per layer
    (``make sim``'s table) adds up to the run's cycles and DMA bytes, and the sim script's
    per-layer rows carry every layer."""
    from scripts.run import make_runner
    from scripts.sim import _digits_rows
    from sim_models.onnx_frontend.wholegraph import split_by_layer
    cfg = NPUConfig(rows=4, cols=4, dataflow="ws", bus_bits=128, sp_lines=1024, acc_lines=128)
    (xtr, _), (xte, _) = zoo.digits()
    qm = zoo.quantize(onnx.load(str(zoo.DIGITS_ONNX)), xtr[:128], "qoperator", "uint8", True)
    run_layer, close = make_runner("model")
    programs = []
    ex = execute(import_model(qm), {"input": xte[:2]}, cfg,
                 lambda c, layer: (programs.append(layer), run_layer(c, layer))[1])
    close()
    assert len(programs) == 1 and programs[0].meta["layers"] == ex.layers[0]["segment"]
    parts = split_by_layer(cfg, programs[0])
    counters = ex.layers[0]["counters"]
    assert parts[0]["run"] == counters
    assert sum(p["cycles"] for p in parts) == counters["cycles"]
    assert sum(p["dram_bytes"] for p in parts) == \
        counters["dma_bytes_read"] + counters["dma_bytes_written"]
    assert all(p["cycles"] > 0 and p["dram_bytes"] > 0 for p in parts)
    rows, mismatch = _digits_rows(cfg, ex, programs)
    assert not mismatch and [r[0].strip() for r in rows[:5]] == ex.layers[0]["segment"]


@pytest.mark.parametrize("net,act", [("resnet18", "int8"), ("mobilenet_v2", "uint8")])
def test_branching_graph_runs_as_one_program(net, act):
    """ResNet-18 (1/8 width) and MobileNetV2 (1/4 width) at 32x32, batch 2, QOperator: every
    convolution, residual add (its skip branch stored into two buffers), max pool, global
    average pool and the classifier in ONE program on the functional model; the host only
    quantizes the input, flattens in place and dequantizes the logits; every op's output,
    read back from where its first consumer read it, equal to the golden model, and the
    logits identical to onnxruntime's."""
    builder, width = {"resnet18": (zoo.resnet18, 0.125),
                      "mobilenet_v2": (zoo.mobilenet_v2, 0.25)}[net]
    fm, shape = builder(width=width, resolution=32, classes=10), (3, 32, 32)
    qm = zoo.quantize(fm, zoo.calibration(shape, 4), "qoperator", act, True)
    graph = import_model(qm)
    x = zoo.calibration(shape, 2, seed=7)
    programs = []
    ex = execute(graph, {"input": x}, CFG,
                 lambda c, layer: (programs.append(layer), executor.functional_runner(c, layer))[1])
    assert len(programs) == len(ex.layers) == 1 and ex.layers[0]["golden_equal"]
    npu = [op.name for op in graph.ops if op.kind not in ("quantize", "dequantize", "layout")]
    assert ex.layers[0]["segment"] == npu
    assert sum(op.kind == "add" for op in graph.ops) >= {"resnet18": 8, "mobilenet_v2": 10}[net]
    assert [h["op"] for h in ex.host] == ["QuantizeLinear", "Flatten", "DequantizeLinear"]
    assert np.array_equal(ex.outputs["output"], zoo.ort_run(qm, {"input": x})["output"])
    # MobileNetV2's depthwise -> project pairs keep the depthwise output on chip where it
    # pays; ResNet-18 has no convolution whose output only a 1x1 convolution reads
    chains = ex.layers[0]["chains"]
    assert len(chains) >= 5 if net == "mobilenet_v2" else chains == []
    on_chip = [m["layer"] for m in ex.layers[0]["members"] if m["output_on_chip"]]
    assert on_chip == [c.split("+")[0] for c in chains]


def _to_sp_stores(program) -> int:
    from hdl import isa
    return sum(i["op"] == isa.Opcode.STORE and i["to_sp"] for i in map(isa.decode, program))


@pytest.mark.parametrize("cfg,batch", [(CFG, 16), (NPUConfig(rows=4, cols=4, dataflow="ws",
                                                             sp_lines=1024, acc_lines=128), 4)])
def test_mlp_whole_graph_chained_on_chip(cfg, batch):
    """An MLP (three QGemms, Relu fused) as one whole-graph program: with chaining, one
    chained layer (fc1 and fc2 STORE to_sp, fc2 and fc3 read the scratchpad), without it
    every output routed through DRAM; the logits identical to onnxruntime's either way and
    the chained program moving fewer DRAM bytes."""
    qm = zoo.quantize(zoo.mlp(), zoo.calibration((64,), 8), "qoperator", "int8", True)
    graph = import_model(qm)
    x = zoo.calibration((64,), batch, seed=3)
    ref = zoo.ort_run(qm, {"input": x})["output"]
    runs = {}
    for chain in (False, True):
        programs = []
        ex = execute(graph, {"input": x}, cfg, chain=chain, run_layer=lambda c, layer: (
            programs.append(layer), executor.functional_runner(c, layer))[1])
        assert len(programs) == len(ex.layers) == 1 and ex.layers[0]["golden_equal"]
        assert np.array_equal(ex.outputs["output"], ref)
        runs[chain] = (ex.layers[0], _to_sp_stores(programs[0].program))
    (plain, plain_sp), (chained, chained_sp) = runs[False], runs[True]
    assert plain["chains"] == [] and plain_sp == 0
    assert chained["chains"] == ["fc1_quant+fc2_quant+fc3_quant"] and chained_sp > 0
    assert [m["output_on_chip"] for m in chained["members"]] == [True, True, False]
    assert chained["dram_bytes"] < plain["dram_bytes"]


@pytest.mark.parametrize("shape,sx,zx,sy,zy,clamp", [
    ((1, 5, 7, 7), 0.05, -3, 0.02, 4, (-128, 127)),
    ((3, 9, 4, 5), 0.11, 100, 0.013, -128, (-128, 127)),     # uint8 zero points, saturating
    ((2, 4, 1, 1), 0.5, 0, 0.25, 0, (0, 127)),               # one pixel, a fused Relu
])
def test_global_average_pool_on_npu_equals_onnxruntime_kernel(shape, sx, zx, sy, zy, clamp):
    """QLinearGlobalAveragePool lowered to ``ones @ X`` with the onnxruntime requant mode
    (functional model) equals the host kernel (itself checked against onnxruntime in
    test_onnx_host_ops), on random and extreme inputs."""
    from sim_models.onnx_frontend.graph import Op, QParams
    from sim_models.onnx_frontend.host_ops import qlinear_global_average_pool
    from sim_models.onnx_frontend.lower import lower_gap
    q = lambda s, z: QParams(np.float32(s), np.array(z), False)  # noqa: E731
    op = Op("gap", "gap9", "QLinearGlobalAveragePool", ["x"], ["y"],
            {"xq": q(sx, zx), "yq": q(sy, zy), "channels_last": False, "clamp": clamp})
    rng = np.random.default_rng(sum(shape))
    for x in (rng.integers(-128, 128, shape), np.full(shape, 127), np.full(shape, -128)):
        low = lower_gap(CFG, op, x)
        result, out = low.layers[0].run_functional()
        assert result.done
        ref = np.clip(qlinear_global_average_pool(x, np.float32(sx), zx, np.float32(sy), zy),
                      *clamp)
        assert np.array_equal(low.assemble([out]), ref)


def test_concat_rescale_reproduces_the_table_exactly():
    """Over 300 random scale/zero-point pairs a float32 scale is found whose single-rounding
    requantization equals QLinearConcat's table on all 256 inputs (a scale 1 % off does
    not, in nearly every case)."""
    from sim_models import golden
    from sim_models.onnx_frontend.host_ops import dequantize_linear, quantize_linear
    from sim_models.onnx_frontend.lower import concat_rescale
    rng = np.random.default_rng(11)
    v, moved = np.arange(-128, 128), 0
    for _ in range(300):
        s, sy = (np.float32(10 ** rng.uniform(-3, -0.5)) for _ in range(2))
        z, zy = (int(rng.integers(-128, 128)) for _ in range(2))
        scale = concat_rescale(s, z, sy, zy)
        assert scale is not None
        table = quantize_linear(dequantize_linear(v, s, z), sy, zy)
        assert np.array_equal(golden.requantize_ort(v - z, scale, zy), table)
        off = np.float32(scale * np.float32(1.01))       # the exhaustive check bites
        moved += not np.array_equal(golden.requantize_ort(v - z, off, zy), table)
    assert moved > 250


@pytest.mark.parametrize("dataflow", ["ws", "os"])
def test_concat_on_npu_equals_onnxruntime_kernel(dataflow):
    """A channel concat of three inputs (one with the output's quantization, two rescaled,
    a fused Relu range) as one NPU program equals the host kernel, on either dataflow."""
    from sim_models.onnx_frontend.graph import Op, QParams
    from sim_models.onnx_frontend.host_ops import qlinear_concat
    from sim_models.onnx_frontend.lower import lower_concat
    q = lambda s, z: QParams(np.float32(s), np.array(z), False)  # noqa: E731
    params = [q(0.02, 3), q(0.051, -7), q(0.0137, 100)]
    op = Op("concat", "cat3", "QLinearConcat", ["a", "b", "c"], ["y"],
            {"params": params, "yq": q(0.02, 3), "axis": 1, "clamp": (3, 127)})
    rng = np.random.default_rng(2)
    xs = [rng.integers(-128, 128, (2, c, 3, 5)) for c in (3, 6, 5)]
    low = lower_concat(NPUConfig(rows=8, cols=8, dataflow=dataflow), op, xs)
    result, out = low.layers[0].run_functional()
    assert result.done and low.layers[0].meta["layers"] == ["cat3[0]", "cat3[1]", "cat3[2]"]
    ref = np.clip(qlinear_concat(xs, [(p.scale_scalar(), p.zp_scalar("X", "")) for p in params],
                                 np.float32(0.02), 3, 1), 3, 127)
    assert np.array_equal(low.assemble([out]), ref)


def test_output_stationary_core_keeps_max_pool_on_the_host():
    """On an OS core the digits CNN's max pools stay on the host, the reason stated, and the
    output is still onnxruntime's."""
    cfg = NPUConfig(rows=8, cols=8, dataflow="os")
    (xtr, _), (xte, _) = zoo.digits()
    qm = zoo.quantize(onnx.load(str(zoo.DIGITS_ONNX)), xtr[:128], "qoperator", "uint8", True)
    ex = execute(import_model(qm), {"input": xte[:3]}, cfg)
    assert np.array_equal(ex.outputs["output"], zoo.ort_run(qm, {"input": xte[:3]})["output"])
    pools = [h for h in ex.host if h["op"] == "MaxPool"]
    assert len(pools) == 2 and all("output-stationary" in h["why"] for h in pools)
    assert [layer["op"] for layer in ex.layers] == ["QLinearConv", "QLinearConv", "QGemm"]


# -- AveragePool: onnxruntime's QLinearAveragePool (QOperator; QDQ fuses into it) ----------

def _qlinear_avgpool_model(shape, sx, zx, sy, zy, dtype, **attrs):
    """One QLinearAveragePool node (com.microsoft) on an int8/uint8 graph input."""
    h, T = onnx.helper, onnx.TensorProto
    t = T.INT8 if dtype == np.int8 else T.UINT8
    node = h.make_node("QLinearAveragePool", ["x", "sx", "zx", "sy", "zy"], ["y"],
                       name="pool7", domain="com.microsoft", **attrs)
    inits = {"sx": np.array(sx, np.float32), "zx": np.array(zx, dtype),
             "sy": np.array(sy, np.float32), "zy": np.array(zy, dtype)}
    g = h.make_graph([node], "p", [h.make_tensor_value_info("x", t, list(shape))],
                     [h.make_tensor_value_info("y", t, None)],
                     [onnx.numpy_helper.from_array(v, k) for k, v in inits.items()])
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 17), h.make_opsetid("com.microsoft", 1)])
    m.ir_version = 8
    return m


_AVGPOOLS = [  # kernel, strides, pads, count_include_pad, ceil_mode
    ([2, 2], [2, 2], [0, 0, 0, 0], 1, 0),
    ([3, 3], [1, 1], [1, 1, 1, 1], 1, 0),
    ([3, 3], [2, 2], [1, 1, 1, 1], 1, 1),       # ceil_mode: a last window over the end
    ([3, 2], [2, 2], [0, 0, 0, 0], 0, 0),       # every window inside: one divisor
    ([3, 3], [2, 2], [1, 0, 2, 1], 0, 1),       # a divisor per position: the host
    ([13, 13], [1, 1], [0, 0, 0, 0], 0, 0),     # the whole input: the global kernel
]


@pytest.mark.parametrize("dtype", [np.int8, np.uint8])
@pytest.mark.parametrize("same", [True, False], ids=["same-scale", "rescaled"])
@pytest.mark.parametrize("kernel,strides,pads,cip,ceil", _AVGPOOLS)
def test_average_pool_against_onnxruntime_kernel(dtype, same, kernel, strides, pads, cip, ceil):
    """QLinearAveragePool: the host kernel equals onnxruntime's bit for bit (float32 sums,
    its division and rounding); on the NPU (a depthwise layer of unit weights, requantized
    by the onnxruntime mode with ``sx / (sy * k)``) the output equals onnxruntime's except
    by one step where the exact mean lies within 1e-5 of a half step (onnxruntime rounds
    its float32 sum there), and exactly in the global case; a divisor per output position
    (count_include_pad=0 with windows over the padding) stays on the host."""
    from sim_models.onnx_frontend.host_ops import qlinear_average_pool
    rng = np.random.default_rng(abs(hash((kernel[0], kernel[1], cip, ceil, same))) % 2**32)
    lo, hi = np.iinfo(dtype).min, np.iinfo(dtype).max
    x = rng.integers(lo, hi + 1, (2, 8, 13, 13)).astype(dtype)
    sx, zx = np.float32(0.0213), int(rng.integers(lo, hi))
    sy, zy = (sx, zx) if same else (np.float32(0.0171), int(rng.integers(lo, hi)))
    m = _qlinear_avgpool_model(x.shape, sx, zx, sy, zy, dtype, kernel_shape=kernel,
                               strides=strides, pads=pads, count_include_pad=cip,
                               ceil_mode=ceil)
    ref = zoo.ort_run(m, {"x": x})["y"].astype(np.int64)
    sh = 128 if dtype == np.uint8 else 0
    host = qlinear_average_pool(x.astype(np.int64) - sh, sx, zx - sh, sy, zy - sh, kernel,
                                strides, pads, bool(cip), bool(ceil), dtype == np.uint8) + sh
    assert np.array_equal(host, ref)
    graph = import_model(m)
    # By default the NPU takes only the pools it provably matches (the global kernel, or
    # equal scales and an odd window); the rest run on the host; both are exact.
    ex = execute(graph, {"x": x}, CFG)
    assert np.array_equal(ex.outputs["y"].astype(np.int64), ref)
    per_position = cip == 0 and any(pads)
    provable = kernel == [13, 13] or (same and kernel[0] * kernel[1] % 2 == 1)
    on_host = [h["op"] for h in ex.host] == ["QLinearAveragePool"]
    assert on_host == (per_position or not provable)
    assert avgpool_npu_exact(graph.ops[0]) == (same and kernel[0] * kernel[1] % 2 == 1)
    if per_position or kernel == [13, 13]:
        return
    # approx_avgpool=True: every such pool on the NPU, one step off at most, near half steps
    ex = execute(graph, {"x": x}, CFG, approx_avgpool=True)
    ours = ex.outputs["y"].astype(np.int64)
    assert not ex.host
    assert all(layer["golden_equal"] and layer["onnxruntime_float_kernel"] == (not provable)
               for layer in ex.layers)
    # where they differ: one step, at a mean within 1e-5 of a half step
    xp = np.pad(x.astype(np.int64) - zx, [(0, 0), (0, 0), (pads[0], pads[2] + kernel[0]),
                                          (pads[1], pads[3] + kernel[1])])
    n, c, i, j = np.nonzero(ours != ref)
    assert np.all(np.abs(ours - ref) <= 1)
    for n_, c_, i_, j_ in zip(n, c, i, j):
        win = xp[n_, c_, i_ * strides[0]:i_ * strides[0] + kernel[0],
                 j_ * strides[1]:j_ * strides[1] + kernel[1]]
        mean = float(sx) * win.sum() / (float(sy) * kernel[0] * kernel[1])
        assert abs(abs(mean - np.floor(mean)) - 0.5) < 1e-5, (mean, ours[n_, c_, i_, j_])


def test_average_pool_qdq_runs_in_the_program_and_bad_attributes_are_named():
    """A QDQ AveragePool (DQ -> AveragePool -> Q, fused by onnxruntime into its
    QLinearAveragePool) becomes the same op, in the conv's program (or, with a divisor per
    position, on the host, identical to onnxruntime); auto_pad,
    channels_last and a 1-D kernel are refused naming the node, the op and the
    attribute."""
    b = zoo._Builder(0)
    y = b.conv("input", 3, 8, 3)
    b.nodes.append(onnx.helper.make_node("AveragePool", [y], ["output"], name="avg",
                                         kernel_shape=[3, 3], strides=[1, 1], pads=[1] * 4,
                                         count_include_pad=1))
    fm = zoo._model(b.nodes, b.inits, ["N", 3, 10, 10], ["N", 8, 10, 10], "avgnet")
    qm = zoo.quantize(fm, zoo.calibration((3, 10, 10), 4), "qdq", "int8", True)
    graph = import_model(qm)
    assert [op.kind for op in graph.ops if op.kind not in ("quantize", "dequantize")] == \
        ["conv", "avgpool"]
    x = zoo.calibration((3, 10, 10), 2, seed=3)
    ex = execute(graph, {"input": x}, CFG)
    assert len(ex.layers) == 1 and [m["op"] for m in ex.layers[0]["members"]] == \
        ["Conv", "AveragePool"]
    ref = zoo.ort_run(qm, {"input": x})["output"]
    assert np.array_equal(ex.outputs["output"], ref)     # same scale, 9 taps: provable
    # count_include_pad=0 over the padding: on the host, exact, onnxruntime's x86 QDQ
    # transformer running the int8 pool on uint8 (its float kernel adds the zero point + 128)
    b.nodes[-1] = onnx.helper.make_node("AveragePool", [y], ["output"], name="avg",
                                        kernel_shape=[3, 3], strides=[2, 2], pads=[1] * 4)
    fm = zoo._model(b.nodes, b.inits, ["N", 3, 10, 10], ["N", 8, 5, 5], "avgnet")
    qm = zoo.quantize(fm, zoo.calibration((3, 10, 10), 4), "qdq", "int8", True)
    ex = execute(import_model(qm), {"input": x}, CFG)
    assert [h["op"] for h in ex.host] == ["QuantizeLinear", "AveragePool", "DequantizeLinear"]
    assert np.array_equal(ex.outputs["output"], zoo.ort_run(qm, {"input": x})["output"])
    for attrs, what in [({"auto_pad": "SAME_UPPER"}, "auto_pad"),
                        ({"channels_last": 1}, "channels_last"),
                        ({"kernel_shape": [3]}, "kernel_shape")]:
        m = _qlinear_avgpool_model((1, 2, 6, 6), 0.1, 0, 0.1, 0, np.int8,
                                   **{"kernel_shape": [2, 2], **attrs})
        with pytest.raises(OnnxImportError, match=f"pool7.*QLinearAveragePool.*{what}"):
            import_model(m)


def test_float_model_with_any_input_name_is_calibrated_and_two_inputs_are_refused():
    """zoo.quantize feeds the calibration data to the model's own input (a user's model
    need not call it ``input``); a model with two inputs is refused naming them."""
    h, T = onnx.helper, onnx.TensorProto
    w = onnx.numpy_helper.from_array(np.ones((4, 2, 1, 1), np.float32), "w")
    node = h.make_node("Conv", ["pixels", "w"], ["y"])
    g = h.make_graph([node], "n", [h.make_tensor_value_info("pixels", T.FLOAT, [1, 2, 3, 3])],
                     [h.make_tensor_value_info("y", T.FLOAT, None)], [w])
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 13)])
    m.ir_version = 8
    calib = np.random.default_rng(0).random((4, 2, 3, 3), dtype=np.float32)
    q = zoo.quantize(m, calib, "qdq")
    assert any(n.op_type == "QuantizeLinear" for n in q.graph.node)
    m.graph.input.append(h.make_tensor_value_info("other", T.FLOAT, [1, 2, 3, 3]))
    with pytest.raises(ValueError, match="2: pixels, other"):
        zoo.quantize(m, calib, "qdq")
