"""Networks for the front end's tests and ``make run``: the digits CNN (trained on
scikit-learn's bundled digits, shipped as a float ONNX file), ResNet-18 and MobileNetV2
topologies built with ``onnx.helper`` (seeded random weights, any width and input size),
and onnxruntime's ``quantize_static`` around them (calibrated on seeded data).

Nothing here downloads anything.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

__all__ = ["DIGITS_ONNX", "digits", "digits_model", "quantize", "ort_run", "resnet18",
           "mobilenet_v2", "mixed", "mlp", "calibration"]

DIGITS_ONNX = Path(__file__).resolve().parent.parent / "models" / "digits_cnn.onnx"
OPSET = 13


def digits():
    """scikit-learn's 8x8 digits as float32 NCHW in [0, 1]: ((x_train, y_train),
    (x_test, y_test)), a fixed 75/25 split (seed 0, stratified)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]
    xtr, xte, ytr, yte = train_test_split(x, d.target, test_size=0.25, random_state=0,
                                          stratify=d.target)
    return (xtr, ytr), (xte, yte)


def _model(nodes, inits, x_shape, y_shape, name):
    from onnx import TensorProto, helper, numpy_helper
    graph = helper.make_graph(
        nodes, name, [helper.make_tensor_value_info("input", TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, y_shape)],
        [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    import onnx
    onnx.checker.check_model(model)
    return model


def digits_model(p: dict):
    """The digits CNN (see ``scripts/train_digits.py``) as a float ONNX model."""
    from onnx import helper
    n = helper.make_node
    nodes = [
        n("Conv", ["input", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
        n("Relu", ["c1"], ["r1"], name="relu1"),
        n("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2], name="pool1"),
        n("Conv", ["p1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], name="conv2"),
        n("Relu", ["c2"], ["r2"], name="relu2"),
        n("MaxPool", ["r2"], ["p2"], kernel_shape=[2, 2], strides=[2, 2], name="pool2"),
        n("Flatten", ["p2"], ["f"], axis=1, name="flatten"),
        n("Gemm", ["f", "w3", "b3"], ["output"], transB=1, name="fc")]
    return _model(nodes, p, ["N", 1, 8, 8], ["N", 10], "digits_cnn")


class _Builder:
    """Seeded float layers for the topologies (He-initialised weights, small biases)."""

    def __init__(self, seed):
        from onnx import helper
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits, self.n = [], {}, 0
        self.helper = helper

    def name(self, kind):
        self.n += 1
        return f"{kind}{self.n}"

    def conv(self, x, cin, cout, k, stride=1, group=1, act="relu"):
        nm = self.name("conv")
        fan = cin // group * k * k
        self.inits[nm + "_w"] = self.rng.normal(0, np.sqrt(2 / fan), (cout, cin // group, k, k))
        self.inits[nm + "_b"] = self.rng.normal(0, 0.05, cout)
        p = k // 2
        self.nodes.append(self.helper.make_node(
            "Conv", [x, nm + "_w", nm + "_b"], [nm], name=nm, pads=[p, p, p, p],
            strides=[stride, stride], group=group, kernel_shape=[k, k]))
        if act == "relu":
            self.nodes.append(self.helper.make_node("Relu", [nm], [nm + "_r"], name=nm + "_relu"))
            return nm + "_r"
        if act == "relu6":
            lo, hi = nm + "_lo", nm + "_hi"
            self.inits[lo], self.inits[hi] = np.float32(0), np.float32(6)
            self.nodes.append(self.helper.make_node("Clip", [nm, lo, hi], [nm + "_r"],
                                                    name=nm + "_relu6"))
            return nm + "_r"
        return nm

    def add(self, a, b, relu=True):
        nm = self.name("add")
        self.nodes.append(self.helper.make_node("Add", [a, b], [nm], name=nm))
        if relu:
            self.nodes.append(self.helper.make_node("Relu", [nm], [nm + "_r"], name=nm + "_relu"))
            return nm + "_r"
        return nm

    def head(self, x, c, classes):
        self.nodes.append(self.helper.make_node("GlobalAveragePool", [x], ["gap"], name="gap"))
        self.nodes.append(self.helper.make_node("Flatten", ["gap"], ["flat"], axis=1,
                                                name="flatten"))
        self.inits["fc_w"] = self.rng.normal(0, np.sqrt(1 / c), (classes, c))
        self.inits["fc_b"] = self.rng.normal(0, 0.05, classes)
        self.nodes.append(self.helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["output"],
                                                transB=1, name="fc"))


def resnet18(width: float = 1.0, resolution: int = 224, classes: int = 1000, seed: int = 0):
    """ResNet-18's topology (stem 7x7/2 + max pool, 4 stages of 2 basic blocks, global
    average pool, fully connected), batch norm folded away, seeded random weights;
    ``width`` scales every channel count (64, 128, 256, 512)."""
    b = _Builder(seed)
    ch = [max(4, int(round(c * width))) for c in (64, 128, 256, 512)]
    x = b.conv("input", 3, ch[0], 7, stride=2)
    b.nodes.append(b.helper.make_node("MaxPool", [x], ["pool"], kernel_shape=[3, 3],
                                      strides=[2, 2], pads=[1, 1, 1, 1], name="maxpool"))
    x, cin = "pool", ch[0]
    for stage, c in enumerate(ch):
        for block in range(2):
            stride = 2 if stage > 0 and block == 0 else 1
            y = b.conv(x, cin, c, 3, stride)
            y = b.conv(y, c, c, 3, 1, act=None)
            skip = b.conv(x, cin, c, 1, stride, act=None) if (stride != 1 or cin != c) else x
            x, cin = b.add(y, skip), c
    b.head(x, cin, classes)
    return _model(b.nodes, b.inits, ["N", 3, resolution, resolution], ["N", classes],
                  "resnet18")


def mobilenet_v2(width: float = 1.0, resolution: int = 224, classes: int = 1000,
                 seed: int = 0):
    """MobileNetV2's topology (stem 3x3/2, 17 inverted residual blocks with depthwise 3x3
    and ReLU6, 1x1 to 1280, global average pool, fully connected), seeded random weights."""
    b = _Builder(seed)
    r8 = lambda c: max(8, int(c * width + 4) // 8 * 8)  # noqa: E731
    cin = r8(32)
    x = b.conv("input", 3, cin, 3, stride=2, act="relu6")
    for t, c, n, s in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                       (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]:
        c = r8(c)
        for i in range(n):
            stride = s if i == 0 else 1
            hidden = cin * t
            y = b.conv(x, cin, hidden, 1, act="relu6") if t != 1 else x
            y = b.conv(y, hidden, hidden, 3, stride, group=hidden, act="relu6")
            y = b.conv(y, hidden, c, 1, act=None)
            x = b.add(y, x, relu=False) if stride == 1 and cin == c else y
            cin = c
    last = max(1280, r8(1280)) if width > 1 else r8(1280)
    x = b.conv(x, cin, last, 1, act="relu6")
    b.head(x, last, classes)
    return _model(b.nodes, b.inits, ["N", 3, resolution, resolution], ["N", classes],
                  "mobilenet_v2")


def mlp(widths=(64, 256, 128, 10), seed: int = 0):
    """A multilayer perceptron: ``Gemm`` + ``Relu`` between each two of ``widths`` (the
    last Gemm without), input ``(N, widths[0])``, seeded random weights."""
    b = _Builder(seed)
    x = "input"
    for k, (cin, cout) in enumerate(zip(widths, widths[1:])):
        nm = f"fc{k + 1}"
        b.inits[nm + "_w"] = b.rng.normal(0, np.sqrt(2 / cin), (cout, cin))
        b.inits[nm + "_b"] = b.rng.normal(0, 0.05, cout)
        last = k == len(widths) - 2
        out = "output" if last else nm
        b.nodes.append(b.helper.make_node("Gemm", [x, nm + "_w", nm + "_b"], [out], transB=1,
                                          name=nm))
        if not last:
            b.nodes.append(b.helper.make_node("Relu", [nm], [nm + "_r"], name=nm + "_relu"))
            x = nm + "_r"
    return _model(b.nodes, b.inits, ["N", widths[0]], ["N", widths[-1]], "mlp")


def mixed(seed: int = 0, resolution: int = 12):
    """A small graph with what the topologies lack: a grouped (not depthwise) convolution,
    a dilated one, asymmetric pads, stride 2, Concat, MaxPool with padding, Transpose and
    Reshape before a MatMul (NCHW input 4 x ``resolution`` x ``resolution``)."""
    from onnx import helper
    b = _Builder(seed)
    n = helper.make_node
    r = resolution
    x = b.conv("input", 4, 8, 3, act="relu")
    b.inits["g_w"] = b.rng.normal(0, 0.4, (8, 4, 3, 3))
    b.inits["g_b"] = b.rng.normal(0, 0.05, 8)
    b.nodes.append(n("Conv", [x, "g_w", "g_b"], ["g"], name="grouped", group=2,
                     pads=[0, 1, 2, 1], kernel_shape=[3, 3]))
    b.inits["d_w"] = b.rng.normal(0, 0.2, (6, 8, 3, 3))
    b.inits["d_b"] = b.rng.normal(0, 0.05, 6)
    b.nodes.append(n("Conv", [x, "d_w", "d_b"], ["d"], name="dilated", dilations=[2, 2],
                     pads=[2, 2, 2, 2], kernel_shape=[3, 3]))
    # grouped: (r + 1) x r; crop it to r x r with a stride-1 pool-free conv is not needed:
    # both branches are brought to the same size by a strided conv each.
    b.inits["s_w"] = b.rng.normal(0, 0.2, (8, 8, 2, 2))
    b.inits["s_b"] = b.rng.normal(0, 0.05, 8)
    b.nodes.append(n("Conv", ["g", "s_w", "s_b"], ["gs"], name="strided", strides=[2, 2],
                     pads=[0, 0, 0, 1], kernel_shape=[2, 2]))
    b.nodes.append(n("MaxPool", ["d"], ["dp"], name="pool", kernel_shape=[3, 3],
                     strides=[2, 2], pads=[1, 1, 1, 1]))
    b.nodes.append(n("Concat", ["gs", "dp"], ["cat"], name="concat", axis=1))
    b.nodes.append(n("Relu", ["cat"], ["catr"], name="cat_relu"))
    b.nodes.append(n("Transpose", ["catr"], ["t"], name="nhwc", perm=[0, 2, 3, 1]))
    h = r // 2
    b.inits["shape"] = np.array([-1, h * h, 14], np.int64)
    b.nodes.append(n("Reshape", ["t", "shape"], ["rs"], name="reshape"))
    b.inits["m_w"] = b.rng.normal(0, 0.3, (14, 5))
    b.nodes.append(n("MatMul", ["rs", "m_w"], ["output"], name="matmul"))
    inits = {k: (v if v.dtype == np.int64 else np.asarray(v, np.float32))
             for k, v in b.inits.items()}
    from onnx import TensorProto, numpy_helper
    graph = helper.make_graph(
        b.nodes, "mixed", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                         ["N", 4, r, r])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", h * h, 5])],
        [numpy_helper.from_array(v, k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    import onnx
    onnx.checker.check_model(model)
    return model


def calibration(shape, count: int = 8, seed: int = 1) -> np.ndarray:
    """Seeded calibration images (float32, N(0, 1))."""
    return np.random.default_rng(seed).normal(0, 1, (count,) + tuple(shape)).astype(np.float32)


def quantize(model, calib: np.ndarray, fmt: str = "qoperator", activation: str = "int8",
             per_channel: bool = False, batch: int = 1):
    """onnxruntime's ``quantize_static`` (MinMax calibration on ``calib``, ``batch`` images
    at a time): ``fmt`` qoperator | qdq, ``activation`` int8 | uint8; int8 weights."""
    import onnx
    from onnxruntime import quantization as q

    model = model if isinstance(model, onnx.ModelProto) else onnx.load(str(model))
    consts = {t.name for t in model.graph.initializer}
    inputs = [i.name for i in model.graph.input if i.name not in consts]
    if len(inputs) != 1:
        raise ValueError(f"calibration feeds one input; the model has {len(inputs)}: "
                         f"{', '.join(inputs)}")

    class Reader(q.CalibrationDataReader):
        def __init__(self):
            self.it = iter([{inputs[0]: calib[i:i + batch]}
                            for i in range(0, len(calib) - batch + 1, batch)])

        def get_next(self):
            return next(self.it, None)

    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "float.onnx", Path(tmp) / "int8.onnx"
        onnx.save(model, src)
        q.quantize_static(
            str(src), str(dst), Reader(),
            quant_format=q.QuantFormat.QOperator if fmt == "qoperator" else q.QuantFormat.QDQ,
            activation_type=q.QuantType.QInt8 if activation == "int8" else q.QuantType.QUInt8,
            weight_type=q.QuantType.QInt8, per_channel=per_channel)
        return onnx.load(str(dst))


def ort_run(model, feeds: dict) -> dict:
    """onnxruntime's CPU outputs for ``feeds`` (by output name), one thread."""
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), so,
                                providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, feeds)))
