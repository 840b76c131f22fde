"""The host kernels (``sim_models.onnx_frontend.host_ops``) against onnxruntime's own
kernels: QLinearAdd on every pair of int8 and of uint8 values, QLinearGlobalAveragePool,
QLinearConcat and QuantizeLinear, for several scale/zero-point choices."""

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from sim_models.onnx_frontend import host_ops, zoo  # noqa: E402

T = {np.int8: TensorProto.INT8, np.uint8: TensorProto.UINT8}


def _model(node, inputs, out_type, inits):
    g = helper.make_graph([node], "h", [helper.make_tensor_value_info(n, t, s)
                                        for n, t, s in inputs],
                          [helper.make_tensor_value_info("y", out_type, None)],
                          [numpy_helper.from_array(v, k) for k, v in inits.items()])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13),
                                               helper.make_opsetid("com.microsoft", 1)])


def _inside(x):
    return x.astype(np.int64) - (128 if x.dtype == np.uint8 else 0)


@pytest.mark.parametrize("dt", [np.int8, np.uint8])
@pytest.mark.parametrize("scales", [(0.02, 0.03, 0.05), (0.1, 0.001, 0.07), (0.5, 0.5, 0.25)])
def test_qlinear_add_every_pair(dt, scales):
    info = np.iinfo(dt)
    v = np.arange(info.min, info.max + 1, dtype=dt)
    a, b = np.meshgrid(v, v)
    a, b = a.reshape(1, -1), b.reshape(1, -1)
    za, zb, zc = (dt(3), dt(info.min + 7), dt(-5 if dt == np.int8 else 130))
    sa, sb, sc = (np.float32(s) for s in scales)
    inits = {"sa": sa, "za": np.array(za), "sb": sb, "zb": np.array(zb), "sc": sc,
             "zc": np.array(zc)}
    node = helper.make_node("QLinearAdd", ["a", "sa", "za", "b", "sb", "zb", "sc", "zc"], ["y"],
                            domain="com.microsoft")
    m = _model(node, [("a", T[dt], a.shape), ("b", T[dt], b.shape)], T[dt], inits)
    ref = zoo.ort_run(m, {"a": a, "b": b})["y"]
    sh = 128 if dt == np.uint8 else 0
    ours = host_ops.qlinear_add(_inside(a), sa, int(za) - sh, _inside(b), sb, int(zb) - sh,
                                sc, int(zc) - sh, unsigned=dt == np.uint8)
    assert np.array_equal(ours, _inside(ref)), f"{int((ours != _inside(ref)).sum())} differ"


@pytest.mark.parametrize("dt", [np.int8, np.uint8])
@pytest.mark.parametrize("hw", [(7, 7), (1, 1), (5, 3)])
def test_qlinear_global_average_pool(dt, hw):
    rng = np.random.default_rng(3)
    info = np.iinfo(dt)
    x = rng.integers(info.min, info.max + 1, (2, 19) + hw).astype(dt)
    inits = {"xs": np.float32(0.031), "xz": np.array(dt(info.min + 20)),
             "ys": np.float32(0.017), "yz": np.array(dt(info.min + 100))}
    node = helper.make_node("QLinearGlobalAveragePool", ["x", "xs", "xz", "ys", "yz"], ["y"],
                            domain="com.microsoft", channels_last=0)
    ref = zoo.ort_run(_model(node, [("x", T[dt], x.shape)], T[dt], inits), {"x": x})["y"]
    sh = 128 if dt == np.uint8 else 0
    ours = host_ops.qlinear_global_average_pool(_inside(x), inits["xs"], int(inits["xz"]) - sh,
                                                inits["ys"], int(inits["yz"]) - sh)
    assert np.array_equal(ours, _inside(ref))


@pytest.mark.parametrize("dt", [np.int8, np.uint8])
def test_qlinear_concat_and_quantize_linear(dt):
    rng = np.random.default_rng(4)
    info = np.iinfo(dt)
    x1 = rng.integers(info.min, info.max + 1, (1, 256)).astype(dt)
    x1[0, :256] = np.arange(info.min, info.max + 1)
    x2 = rng.integers(info.min, info.max + 1, (1, 40)).astype(dt)
    inits = {"ys": np.float32(0.05), "yz": np.array(dt(info.min + 60)),
             "s1": np.float32(0.013), "z1": np.array(dt(info.min + 9)),
             "s2": np.float32(0.05), "z2": np.array(dt(info.min + 60))}
    node = helper.make_node("QLinearConcat", ["ys", "yz", "x1", "s1", "z1", "x2", "s2", "z2"],
                            ["y"], domain="com.microsoft", axis=1)
    m = _model(node, [("x1", T[dt], x1.shape), ("x2", T[dt], x2.shape)], T[dt], inits)
    ref = zoo.ort_run(m, {"x1": x1, "x2": x2})["y"]
    sh = 128 if dt == np.uint8 else 0
    ours = host_ops.qlinear_concat(
        [_inside(x1), _inside(x2)], [(inits["s1"], int(inits["z1"]) - sh),
                                     (inits["s2"], int(inits["z2"]) - sh)],
        inits["ys"], int(inits["yz"]) - sh, axis=1)
    assert np.array_equal(ours, _inside(ref))
    xf = np.concatenate([np.linspace(-9, 9, 2001), [0.5, -0.5, 1.5, 2.5]]).astype(np.float32)
    node = helper.make_node("QuantizeLinear", ["x", "s", "z"], ["y"])
    m = _model(node, [("x", TensorProto.FLOAT, xf.shape)], T[dt],
               {"s": np.float32(0.0371), "z": np.array(dt(info.min + 77))})
    ref = zoo.ort_run(m, {"x": xf})["y"]
    ours = host_ops.quantize_linear(xf, np.float32(0.0371), info.min + 77 - sh)
    assert np.array_equal(ours, _inside(ref))
