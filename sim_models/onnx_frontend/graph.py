"""Read a quantized ONNX model into knpu's graph: a list of integer operations.

The model is read with the ``onnx`` package and its shape inference; nothing here parses
protobuf.  Two encodings of the same integer graph are accepted, as onnxruntime's
``quantize_static`` writes them:

* **QOperator**: QLinearConv, QLinearMatMul, QGemm, MatMulInteger, ConvInteger, QLinearAdd,
  QLinearGlobalAveragePool, QLinearAveragePool, QLinearConcat, MaxPool on quantized tensors,
  QuantizeLinear / DequantizeLinear at the edges, Reshape / Flatten / Transpose / Squeeze /
  Unsqueeze as layout.
* **QDQ**: ``DequantizeLinear -> op -> QuantizeLinear`` around Conv, MatMul, Gemm, Add,
  MaxPool, GlobalAveragePool, AveragePool, Concat and layout ops (with Relu/Clip between the op and its
  QuantizeLinear folded into the output clamp) become the same integer operations.
  What matches no pattern stays a *float island*, computed in float32 between a
  DequantizeLinear and a QuantizeLinear (its difference to onnxruntime is reported).

Every quantized tensor is held as **int8 inside**: a uint8 tensor's values and zero point are
shifted by -128 (exact: ``clamp(rne(x*s) + zp, 0, 255) - 128 ==
clamp(rne(x*s) + zp - 128, -128, 127)``); graph inputs and outputs are converted at the
edges only.  Anything unsupported raises :class:`OnnxImportError` (a
:class:`~sim_models.compiler.LayerError`) naming the node, its op and what is unsupported,
before anything runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..compiler import LayerError

__all__ = ["OnnxImportError", "QParams", "Op", "Graph", "import_model"]

F32 = np.float32
_LAYOUT = {"Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Identity"}
_DTYPES = {2: "uint8", 3: "int8", 6: "int32", 1: "float32"}


class OnnxImportError(LayerError):
    """The model uses an op, attribute or type knpu's front end does not support."""


@dataclass
class QParams:
    """Quantization of a tensor, int8 inside: ``zp`` is shifted by -128 for uint8."""
    scale: np.ndarray          # float32, scalar (per-tensor) or (C,) per axis
    zp: np.ndarray             # int64 of the same shape, in the int8 domain
    unsigned: bool             # the tensor is uint8 in the model
    axis: int = 1

    @property
    def per_tensor(self) -> bool:
        return self.scale.ndim == 0 or self.scale.size == 1

    def zp_scalar(self, what: str, node: str) -> int:
        if self.zp.size != 1:
            raise OnnxImportError(f"node {node!r}: {what} zero point must be one value")
        return int(self.zp.reshape(-1)[0])

    def scale_scalar(self) -> np.float32:
        return F32(self.scale.reshape(-1)[0])


@dataclass
class Op:
    """One integer (or float-island) operation of the graph."""
    kind: str                  # conv | matmul | gemm | quantize | dequantize | maxpool | add
    name: str                  # | gap | avgpool | concat | layout | float
    onnx_op: str
    inputs: list
    outputs: list
    attrs: dict = field(default_factory=dict)


@dataclass
class Graph:
    """The imported graph: ops in order, constants, quantization of every int tensor."""
    ops: list
    consts: dict               # name -> np.ndarray (int tensors already int8 inside)
    qparams: dict              # name -> QParams
    inputs: list               # [(name, onnx dtype name, shape)]
    outputs: list              # [(name, onnx dtype name, shape)]
    shapes: dict               # name -> shape from shape inference (None if unknown)
    int32: set = field(default_factory=set)   # int32 tensors (raw accumulators)
    fmt: str = "qoperator"     # qoperator | qdq


def _attrs(node):
    import onnx
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _to_int8(x, unsigned: bool) -> np.ndarray:
    x = np.asarray(x).astype(np.int64)
    return x - 128 if unsigned else x


class _Reader:
    """Turns one ONNX graph into :class:`Graph` (see the module doc)."""

    def __init__(self, model, bind):
        import onnx
        from onnx import numpy_helper, shape_inference
        try:
            model = shape_inference.infer_shapes(model)
        except Exception as err:   # the onnx package's own message names the node
            raise OnnxImportError(f"shape inference failed: {err}") from None
        g = model.graph
        self.g = g
        self.raw = {t.name: numpy_helper.to_array(t) for t in g.initializer}
        for node in g.node:
            if node.op_type == "Constant":
                self.raw[node.output[0]] = numpy_helper.to_array(_attrs(node)["value"])
        for name, value in (bind or {}).items():
            self.raw[name] = np.asarray(value)
        self.types, self.shapes = {}, {}
        for vi in list(g.input) + list(g.output) + list(g.value_info):
            tt = vi.type.tensor_type
            self.types[vi.name] = tt.elem_type
            self.shapes[vi.name] = tuple(d.dim_value if d.HasField("dim_value") else None
                                         for d in tt.shape.dim)
        for name, arr in self.raw.items():
            self.types.setdefault(name, onnx.helper.np_dtype_to_tensor_dtype(arr.dtype))
            self.shapes.setdefault(name, arr.shape)
        self.consumers = {}
        for node in g.node:
            for i in node.input:
                self.consumers.setdefault(i, []).append(node)
        self.ops, self.qparams, self.consts, self.int32 = [], {}, {}, set()
        self.model = model

    # -- helpers --------------------------------------------------------------------------
    def const(self, node, name, what):
        if name not in self.raw:
            raise OnnxImportError(f"node {node.name!r} ({node.op_type}): {what} {name!r} must "
                                  f"be a constant (an initializer, or bound at import)")
        return self.raw[name]

    def unsigned(self, name):
        t = self.types.get(name)
        if t == 2:
            return True
        if t == 3:
            return False
        raise OnnxImportError(f"tensor {name!r} is {_DTYPES.get(t, t)}: only int8 and uint8 "
                              f"quantized tensors are supported")

    def qp(self, node, scale, zp, tensor, axis=1):
        s = np.asarray(self.const(node, scale, "scale"))
        if s.dtype != np.float32:
            raise OnnxImportError(f"node {node.name!r} ({node.op_type}): scale {scale!r} is "
                                  f"{s.dtype}, not float32")
        if zp:      # the zero point's type is the tensor's (contrib ops have no inference)
            zraw = np.asarray(self.const(node, zp, "zero point"))
            if zraw.dtype == np.int32 and tensor in self.raw and not np.any(zraw):
                return QParams(s.astype(F32), zraw.astype(np.int64), False, axis)  # a bias
            if zraw.dtype not in (np.uint8, np.int8):
                raise OnnxImportError(f"node {node.name!r} ({node.op_type}): zero point {zp!r} "
                                      f"is {zraw.dtype}: only int8 and uint8 are supported")
            unsigned = zraw.dtype == np.uint8
            self.types[tensor] = 2 if unsigned else 3
            z = _to_int8(zraw, unsigned)
        else:
            unsigned = self.unsigned(tensor)
            z = _to_int8(np.zeros(s.shape, np.int64), unsigned)
        if not np.all(np.isfinite(s)) or np.any(s <= 0):
            raise OnnxImportError(f"node {node.name!r} ({node.op_type}): scale {scale!r} must "
                                  f"be positive and finite")
        return QParams(s.astype(F32), np.asarray(z, np.int64), unsigned, axis)

    def put_const(self, name):
        """An initializer used as a tensor operand (weights, bias): int8 inside."""
        if name in self.raw and name not in self.consts:
            arr = self.raw[name]
            if arr.dtype in (np.uint8, np.int8):
                self.consts[name] = _to_int8(arr, arr.dtype == np.uint8)
            else:
                self.consts[name] = np.asarray(arr)
        return name

    def emit(self, kind, node, inputs, outputs, **attrs):
        if kind in ("conv", "matmul") and node.output[0] in getattr(self, "islands", ()):
            attrs["ort_float"] = True       # onnxruntime runs this node in float
        self.ops.append(Op(kind, node.name or f"{node.op_type}_{len(self.ops)}",
                           node.op_type, list(inputs), list(outputs), attrs))

    def unsupported_attrs(self, node, allowed):
        extra = set(_attrs(node)) - set(allowed)
        if extra:
            raise OnnxImportError(f"node {node.name!r} ({node.op_type}): attribute(s) "
                                  f"{sorted(extra)} not supported")

    # -- convolution and matrix products ---------------------------------------------------
    def conv_attrs(self, node, wshape):
        self.unsupported_attrs(node, ("auto_pad", "dilations", "group", "kernel_shape", "pads",
                                      "strides"))
        a = _attrs(node)
        nd = len(wshape) - 2
        if nd != 2:
            raise OnnxImportError(f"node {node.name!r} ({node.op_type}): {nd}-D convolution "
                                  f"not supported (2-D only)")
        auto = a.get("auto_pad", b"NOTSET")
        auto = auto.decode() if isinstance(auto, bytes) else auto
        if auto not in ("NOTSET", "VALID"):
            raise OnnxImportError(f"node {node.name!r} ({node.op_type}): auto_pad={auto} not "
                                  f"supported (give explicit pads)")
        ks = list(a.get("kernel_shape", wshape[2:]))
        if ks != list(wshape[2:]):
            raise OnnxImportError(f"node {node.name!r}: kernel_shape {ks} differs from the "
                                  f"weights {list(wshape[2:])}")
        strides = list(a.get("strides", [1, 1]))
        if strides[0] != strides[1]:
            raise OnnxImportError(f"node {node.name!r} ({node.op_type}): strides {strides} not "
                                  f"supported (the core takes one stride for both axes)")
        return dict(pads=list(a.get("pads", [0, 0, 0, 0])), stride=int(strides[0]),
                    dilations=list(a.get("dilations", [1, 1])), group=int(a.get("group", 1)))

    def qlinearconv(self, node):
        x, xs, xz, w, ws, wz, ys, yz = node.input[:8]
        bias = node.input[8] if len(node.input) > 8 and node.input[8] else None
        wq = self.qp(node, ws, wz, w, axis=0)
        xq, yq = self.qp(node, xs, xz, x), self.qp(node, ys, yz, node.output[0])
        attrs = self.conv_attrs(node, self.shapes[w])
        # onnxruntime: output_scales[i] = x_scale * w_scale[i] / y_scale, in float32.
        scale = (xq.scale_scalar() * wq.scale.reshape(-1)) / yq.scale_scalar()
        self.qparams[node.output[0]] = yq
        self.emit("conv", node, [x, self.put_const(w)] + ([self.put_const(bias)] if bias else []),
                  node.output, **attrs, xq=xq, wq=wq, yq=yq, scale=scale.astype(F32),
                  clamp=(-128, 127), has_bias=bias is not None)

    def convinteger(self, node):
        x, w = node.input[:2]
        xz = node.input[2] if len(node.input) > 2 else ""
        wz = node.input[3] if len(node.input) > 3 else ""
        one = np.ones((), F32)
        xq = QParams(one, _to_int8(self.raw[xz] if xz else 0, self.unsigned(x)),
                     self.unsigned(x))
        wzv = _to_int8(self.raw[wz] if wz else 0, self.unsigned(w))
        wq = QParams(np.ones(np.shape(wzv), F32), np.asarray(wzv), self.unsigned(w), 0)
        self.int32.add(node.output[0])
        self.emit("conv", node, [x, self.put_const(w)], node.output,
                  **self.conv_attrs(node, self.shapes[w]), xq=xq, wq=wq, yq=None, scale=None,
                  clamp=None, has_bias=False)

    def qlinearmatmul(self, node):
        a, as_, az, b, bs, bz, ys, yz = node.input[:8]
        aq, bq = self.qp(node, as_, az, a), self.qp(node, bs, bz, b, axis=-1)
        yq = self.qp(node, ys, yz, node.output[0])
        scale = (aq.scale_scalar() * bq.scale.reshape(-1)) / yq.scale_scalar()
        self.qparams[node.output[0]] = yq
        self.emit("matmul", node, [a, self.put_const(b)], node.output, aq=aq, bq=bq, yq=yq,
                  scale=scale.astype(F32), clamp=(-128, 127), has_bias=False, alpha=None,
                  trans_a=0, trans_b=0)

    def matmulinteger(self, node):
        a, b = node.input[:2]
        az = node.input[2] if len(node.input) > 2 else ""
        bz = node.input[3] if len(node.input) > 3 else ""
        azv = _to_int8(self.raw[az] if az else 0, self.unsigned(a))
        bzv = _to_int8(self.raw[bz] if bz else 0, self.unsigned(b))
        if np.size(azv) != 1:
            raise OnnxImportError(f"node {node.name!r} (MatMulInteger): per-row A zero points "
                                  f"not supported")
        aq = QParams(np.ones((), F32), np.asarray(azv), self.unsigned(a))
        bq = QParams(np.ones(np.shape(bzv), F32), np.asarray(bzv), self.unsigned(b), -1)
        self.int32.add(node.output[0])
        self.emit("matmul", node, [a, self.put_const(b)], node.output, aq=aq, bq=bq, yq=None,
                  scale=None, clamp=None, has_bias=False, alpha=None, trans_a=0, trans_b=0)

    def qgemm(self, node):
        self.unsupported_attrs(node, ("alpha", "transA", "transB"))
        a, as_, az, b, bs, bz = node.input[:6]
        c = node.input[6] if len(node.input) > 6 and node.input[6] else None
        if len(node.input) < 8 or not node.input[7]:
            raise OnnxImportError(f"node {node.name!r} (QGemm): float output (no y_scale) not "
                                  f"supported")
        ys, yz = node.input[7], node.input[8] if len(node.input) > 8 else ""
        at = _attrs(node)
        alpha = F32(at.get("alpha", 1.0))
        aq = self.qp(node, as_, az, a)
        bq = self.qp(node, bs, bz, b, axis=0 if at.get("transB", 0) else -1)
        yq = self.qp(node, ys, yz, node.output[0])
        # onnxruntime's QGemm: alpha * a_scale * b_scale[i] / y_scale, in float32.
        scale = ((alpha * aq.scale_scalar()) * bq.scale.reshape(-1)) / yq.scale_scalar()
        self.qparams[node.output[0]] = yq
        self.emit("matmul", node, [a, self.put_const(b)] + ([self.put_const(c)] if c else []),
                  node.output, aq=aq, bq=bq, yq=yq, scale=scale.astype(F32), clamp=(-128, 127),
                  has_bias=c is not None, alpha=alpha, trans_a=int(at.get("transA", 0)),
                  trans_b=int(at.get("transB", 0)))

    # -- host ops and layout ----------------------------------------------------------------
    def quantizelinear(self, node):
        self.unsupported_attrs(node, ("axis", "saturate"))
        x, s, z = (list(node.input) + [""])[:3]
        out = node.output[0]
        if z == "":
            raise OnnxImportError(f"node {node.name!r} (QuantizeLinear): no zero point: the "
                                  f"output type is not given")
        q = self.qp(node, s, z, out)
        if not q.per_tensor:
            raise OnnxImportError(f"node {node.name!r} (QuantizeLinear): per-axis quantization "
                                  f"of an activation not supported")
        self.qparams[out] = q
        self.emit("quantize", node, [x], [out], q=q)

    def dequantizelinear(self, node):
        self.unsupported_attrs(node, ("axis",))
        x, s, z = (list(node.input) + [""])[:3]
        q = self.qp(node, s, z, x, axis=_attrs(node).get("axis", 1))
        self.emit("dequantize", node, [self.put_const(x) if x in self.raw else x], node.output,
                  q=q)

    def maxpool(self, node):
        self.unsupported_attrs(node, ("auto_pad", "ceil_mode", "dilations", "kernel_shape",
                                      "pads", "storage_order", "strides"))
        a = _attrs(node)
        if len(node.output) > 1 and node.output[1]:
            raise OnnxImportError(f"node {node.name!r} (MaxPool): the Indices output is not "
                                  f"supported")
        auto = a.get("auto_pad", b"NOTSET")
        if (auto.decode() if isinstance(auto, bytes) else auto) not in ("NOTSET", "VALID"):
            raise OnnxImportError(f"node {node.name!r} (MaxPool): auto_pad={auto} not supported")
        k = list(a["kernel_shape"])
        x = node.input[0]
        if x in self.qparams:
            self.qparams[node.output[0]] = self.qparams[x]
        self.emit("maxpool", node, [x], node.output, kernel=k,
                  strides=list(a.get("strides", [1] * len(k))),
                  pads=list(a.get("pads", [0] * 2 * len(k))),
                  dilations=list(a.get("dilations", [1] * len(k))),
                  ceil_mode=bool(a.get("ceil_mode", 0)))

    def qlinearadd(self, node):
        a, as_, az, b, bs, bz, cs, cz = node.input[:8]
        aq, bq = self.qp(node, as_, az, a), self.qp(node, bs, bz, b)
        cq = self.qp(node, cs, cz, node.output[0])
        self.qparams[node.output[0]] = cq
        self.emit("add", node, [self.put_const(a) if a in self.raw else a,
                                self.put_const(b) if b in self.raw else b],
                  node.output, aq=aq, bq=bq, cq=cq)

    def qlinearglobalaveragepool(self, node):
        self.unsupported_attrs(node, ("channels_last",))
        x, xs, xz, ys, yz = node.input[:5]
        xq, yq = self.qp(node, xs, xz, x), self.qp(node, ys, yz, node.output[0])
        self.qparams[node.output[0]] = yq
        self.emit("gap", node, [x], node.output, xq=xq, yq=yq,
                  channels_last=bool(_attrs(node).get("channels_last", 0)))

    def avgpool_attrs(self, node) -> dict:
        """AveragePool's attributes as onnxruntime's QLinearAveragePool takes them (2-D)."""
        self.unsupported_attrs(node, ("auto_pad", "ceil_mode", "channels_last",
                                      "count_include_pad", "kernel_shape", "pads", "strides"))
        a = _attrs(node)
        auto = a.get("auto_pad", b"NOTSET")
        auto = auto.decode() if isinstance(auto, bytes) else auto
        if auto not in ("NOTSET", "VALID"):
            raise OnnxImportError(f"node {node.name!r} ({node.op_type}): attribute auto_pad="
                                  f"{auto} not supported")
        if a.get("channels_last", 0):
            raise OnnxImportError(f"node {node.name!r} ({node.op_type}): attribute "
                                  f"channels_last=1 not supported")
        k = list(a["kernel_shape"])
        if len(k) != 2:
            raise OnnxImportError(f"node {node.name!r} ({node.op_type}): attribute "
                                  f"kernel_shape={k}: only 2-D pooling is supported")
        return {"kernel": k, "strides": list(a.get("strides", [1, 1])),
                "pads": list(a.get("pads", [0, 0, 0, 0])),
                "ceil_mode": bool(a.get("ceil_mode", 0)),
                "count_include_pad": bool(a.get("count_include_pad", 0))}

    def qlinearaveragepool(self, node):
        attrs = self.avgpool_attrs(node)
        x, xs, xz, ys, yz = node.input[:5]
        xq, yq = self.qp(node, xs, xz, x), self.qp(node, ys, yz, node.output[0])
        self.qparams[node.output[0]] = yq
        self.emit("avgpool", node, [x], node.output, xq=xq, yq=yq, **attrs)

    def qlinearconcat(self, node):
        self.unsupported_attrs(node, ("axis",))
        ys, yz = node.input[:2]
        yq = self.qp(node, ys, yz, node.output[0])
        xs, params = [], []
        for i in range(2, len(node.input), 3):
            x, s, z = node.input[i:i + 3]
            xs.append(self.put_const(x) if x in self.raw else x)
            params.append(self.qp(node, s, z, x))
        self.qparams[node.output[0]] = yq
        self.emit("concat", node, xs, node.output, params=params, yq=yq,
                  axis=int(_attrs(node)["axis"]))

    def layout(self, node):
        x = node.input[0]
        if x in self.qparams:
            self.qparams[node.output[0]] = self.qparams[x]
        elif x in self.raw and x not in self.consts:
            raise OnnxImportError(f"node {node.name!r} ({node.op_type}) on a constant: fold "
                                  f"it before import")
        args = {}
        if node.op_type in ("Reshape", "Squeeze", "Unsqueeze") and len(node.input) > 1:
            args["arg"] = np.asarray(self.const(node, node.input[1], "shape/axes")).tolist()
        self.emit("layout", node, [x], node.output, attrs=_attrs(node), **args)

    # -- QDQ --------------------------------------------------------------------------------
    def qdq_scan(self):
        """Find DequantizeLinear on constants (folded) and on activations, and the
        QuantizeLinear of every tensor."""
        self.dq_const, self.dq_act, self.q_of = {}, {}, {}
        for node in self.g.node:
            if node.op_type == "DequantizeLinear":
                x, s, z = (list(node.input) + [""])[:3]
                q = self.qp(node, s, z, x, axis=_attrs(node).get("axis", 1))
                if x in self.raw:
                    self.dq_const[node.output[0]] = (x, q)
                else:
                    self.dq_act[node.output[0]] = (x, q)
            elif node.op_type == "QuantizeLinear":
                self.q_of[node.input[0]] = node

    def qdq_output(self, node):
        """The QuantizeLinear that alone consumes ``node``'s output (through one Relu or
        Clip, whose range becomes a clamp), as (q node, clamp) or None."""
        out = node.output[0]
        cons = self.consumers.get(out, [])
        graph_outs = {o.name for o in self.g.output}
        if len(cons) != 1 or out in graph_outs:
            return None
        act = None
        if cons[0].op_type in ("Relu", "Clip"):
            act = cons[0]
            out = act.output[0]
            cons = self.consumers.get(out, [])
            if len(cons) != 1 or out in graph_outs:
                return None
        if cons[0].op_type != "QuantizeLinear":
            return None
        q = cons[0]
        yq = self.qp(q, q.input[1], q.input[2] if len(q.input) > 2 else "", q.output[0])
        zp = int(yq.zp.reshape(-1)[0])
        lo, hi = -128, 127
        if act is not None and act.op_type == "Relu":
            lo = max(lo, zp)
        elif act is not None:
            ins = list(act.input) + ["", ""]
            from .host_ops import quantize_linear
            if ins[1]:
                lo = int(quantize_linear(self.const(act, ins[1], "min"), yq.scale_scalar(), zp))
            if ins[2]:
                hi = int(quantize_linear(self.const(act, ins[2], "max"), yq.scale_scalar(), zp))
        return q, yq, (lo, hi), act

    def qdq_fuse(self, node):
        """Rewrite ``DQ -> node -> [Relu|Clip] -> Q`` as an integer op; False if no match."""
        t = node.op_type
        if t not in ("Conv", "MatMul", "Gemm", "Add", "MaxPool", "GlobalAveragePool",
                     "AveragePool", "Concat") \
                and t not in _LAYOUT:
            return False
        acts = [i for i in node.input if i and i not in self.dq_const and i not in self.raw]
        if not acts or any(i not in self.dq_act for i in acts):
            return False
        if t in _LAYOUT or t == "MaxPool":
            # onnxruntime drops DQ/Q around these when both sides share scale and zero point.
            found = self.qdq_output(node)
            x, xq = self.dq_act[node.input[0]]
            if found is None or found[3] is not None:
                return False
            q, yq, _, _ = found
            if not (np.array_equal(xq.scale, yq.scale) and np.array_equal(xq.zp, yq.zp)):
                return False
            self.qparams.setdefault(x, xq)
            self.fused_q.add(q.name or id(q))
            shadow = _Shadow(node, [x] + list(node.input[1:]), [q.output[0]])
            (self.maxpool if t == "MaxPool" else self.layout)(shadow)
            return True
        found = self.qdq_output(node)
        if found is None:
            return False
        q, yq, clamp, act = found
        self.fused_q.add(q.name or id(q))
        y = q.output[0]
        self.qparams[y] = yq
        if t == "Conv":
            x, xq = self.dq_act[node.input[0]]
            w, wq = self.dq_const_or_fail(node, node.input[1])
            wq.axis = 0
            bias = None
            if len(node.input) > 2 and node.input[2]:
                bias, _ = self.dq_const_or_fail(node, node.input[2])
            attrs = self.conv_attrs(node, self.shapes[w] if w in self.shapes else
                                    self.raw[w].shape)
            scale = (xq.scale_scalar() * wq.scale.reshape(-1)) / yq.scale_scalar()
            self.emit("conv", node, [x, self.put_const(w)] + ([self.put_const(bias)] if bias
                                                              else []),
                      [y], **attrs, xq=xq, wq=wq, yq=yq, scale=scale.astype(F32), clamp=clamp,
                      has_bias=bias is not None)
        elif t in ("MatMul", "Gemm"):
            at = _attrs(node) if t == "Gemm" else {}
            if t == "Gemm":
                self.unsupported_attrs(node, ("alpha", "beta", "transA", "transB"))
                if at.get("beta", 1.0) != 1.0:
                    raise OnnxImportError(f"node {node.name!r} (Gemm): beta != 1 not supported")
            x, xq = self.dq_act[node.input[0]]
            b, bq = (self.dq_act[node.input[1]] if node.input[1] in self.dq_act
                     else self.dq_const_or_fail(node, node.input[1]))
            bias = None
            if t == "Gemm" and len(node.input) > 2 and node.input[2]:
                bias, _ = self.dq_const_or_fail(node, node.input[2])
            alpha = F32(at.get("alpha", 1.0))
            scale = ((alpha * xq.scale_scalar()) if t == "Gemm" else xq.scale_scalar()) * \
                bq.scale.reshape(-1) / yq.scale_scalar()
            self.emit("matmul", node, [x, self.put_const(b) if b in self.raw else b] +
                      ([self.put_const(bias)] if bias else []), [y], aq=xq, bq=bq, yq=yq,
                      scale=scale.astype(F32), clamp=clamp, has_bias=bias is not None,
                      alpha=alpha if t == "Gemm" else None, trans_a=int(at.get("transA", 0)),
                      trans_b=int(at.get("transB", 0)))
        elif t == "Add":
            (a, aq), (b, bq) = [self.dq_act.get(i) or self.dq_const_or_fail(node, i)
                                for i in node.input]
            self.emit("add", node, [self.put_const(a) if a in self.raw else a,
                                    self.put_const(b) if b in self.raw else b], [y], aq=aq,
                      bq=bq, cq=yq, clamp=clamp, float_path=node.output[0] in self.islands)
        elif t == "GlobalAveragePool":
            x, xq = self.dq_act[node.input[0]]
            self.emit("gap", node, [x], [y], xq=xq, yq=yq, channels_last=False, clamp=clamp)
        elif t == "AveragePool":
            # onnxruntime's x86 QDQ transformer (QDQS8ToU8) runs an int8 pool on uint8:
            # its float kernel then adds the zero point + 128 (which moves some ties).
            x, xq = self.dq_act[node.input[0]]
            self.emit("avgpool", node, [x], [y], xq=xq, yq=yq, clamp=clamp,
                      kernel_uint8=True, **self.avgpool_attrs(node))
        elif t == "Concat":
            xs, params = zip(*[self.dq_act.get(i) or self.dq_const_or_fail(node, i)
                               for i in node.input])
            self.emit("concat", node, [self.put_const(x) if x in self.raw else x for x in xs],
                      [y], params=list(params), yq=yq, axis=int(_attrs(node)["axis"]),
                      clamp=clamp)
        for x in node.input:
            if x in self.dq_act:
                self.qparams.setdefault(self.dq_act[x][0], self.dq_act[x][1])
        return True

    def dq_const_or_fail(self, node, name):
        if name not in self.dq_const:
            raise OnnxImportError(f"node {node.name!r} ({node.op_type}): operand {name!r} is not "
                                  f"a DequantizeLinear of a constant")
        return self.dq_const[name]


class _Shadow:
    """A node seen with other inputs/outputs (a QDQ pattern's quantized ends)."""

    def __init__(self, node, inputs, outputs):
        self.name, self.op_type, self.attribute = node.name, node.op_type, node.attribute
        self.input, self.output = inputs, outputs


_QOP = {"QLinearConv": "qlinearconv", "ConvInteger": "convinteger",
        "QLinearMatMul": "qlinearmatmul", "MatMulInteger": "matmulinteger", "QGemm": "qgemm",
        "QuantizeLinear": "quantizelinear", "DequantizeLinear": "dequantizelinear",
        "MaxPool": "maxpool", "QLinearAdd": "qlinearadd",
        "QLinearGlobalAveragePool": "qlinearglobalaveragepool",
        "QLinearConcat": "qlinearconcat", "QLinearAveragePool": "qlinearaveragepool"}
_FLOAT_OK = {"Conv", "MatMul", "Gemm", "Add", "Relu", "Clip", "MaxPool", "GlobalAveragePool",
             "AveragePool", "Concat", "Softmax"} | _LAYOUT


def import_model(model, bind: dict | None = None, float_islands=()) -> Graph:
    """Read a quantized ONNX model (a path or a ``ModelProto``) into a :class:`Graph`.

    Parameters
    ----------
    model : str, pathlib.Path or onnx.ModelProto
    bind : dict, optional
        Values for graph inputs that the ops need as constants (scales, zero points), e.g.
        for the ``onnx`` package's node tests, whose every operand is a graph input.
    float_islands : iterable of str, optional
        QDQ nodes, by their (float) output tensor, that the reference runtime computes in
        float (e.g. onnxruntime's optimizer leaves them unfused).  An ``Add`` among them is computed as that float path
        (DequantizeLinear, float32 add, QuantizeLinear: exact, elementwise); a Conv, MatMul or
        Gemm stays an integer NPU layer, marked so the report can bound its difference.

    Raises
    ------
    OnnxImportError
        Naming the node, its op and what is unsupported, before anything runs.
    """
    import onnx
    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(str(model))
    r = _Reader(model, bind)
    r.islands = set(float_islands)
    r.qdq_scan()
    r.fused_q = set()
    qdq = any(n.op_type in _FLOAT_OK and n.op_type not in _LAYOUT and n.op_type != "MaxPool"
              for n in r.g.node)
    skip = set()
    for node in r.g.node:
        t = node.op_type
        if t == "Constant":
            continue
        if t == "DequantizeLinear" and node.output[0] in r.dq_const:
            continue
        if t == "QuantizeLinear" and (node.name or id(node)) in r.fused_q:
            continue
        if id(node) in skip:
            continue
        if node.domain not in ("", "ai.onnx", "com.microsoft"):
            raise OnnxImportError(f"node {node.name!r} ({t}): domain {node.domain!r} not "
                                  f"supported")
        if qdq and (t not in _QOP or t == "MaxPool") and r.qdq_fuse(node):
            found = r.qdq_output(node)
            if found and found[3] is not None:
                skip.add(id(found[3]))
            continue
        if t == "MaxPool" and node.input[0] not in r.qparams:
            r.emit("float", node, node.input, node.output, attrs=_attrs(node))
            continue
        if t in _QOP:
            getattr(r, _QOP[t])(node)
        elif t in _LAYOUT:
            r.layout(node)
        elif t in _FLOAT_OK:
            r.emit("float", node, node.input, node.output, attrs=_attrs(node))
        else:
            raise OnnxImportError(f"node {node.name!r}: op {t} is not supported by knpu's "
                                  f"front end")
    # DequantizeLinear of activations whose every consumer was fused is dead: drop it.
    used = {i for op in r.ops for i in op.inputs} | {o.name for o in r.g.output}
    r.ops = [op for op in r.ops if op.kind != "dequantize" or op.outputs[0] in used]
    ins = [(i.name, _DTYPES.get(r.types.get(i.name), str(r.types.get(i.name))),
            r.shapes.get(i.name)) for i in r.g.input if i.name not in r.raw]
    outs = [(o.name, _DTYPES.get(r.types.get(o.name), str(r.types.get(o.name))),
             r.shapes.get(o.name)) for o in r.g.output]
    return Graph(r.ops, r.consts, r.qparams, ins, outs, r.shapes, r.int32,
                 "qdq" if qdq else "qoperator")
