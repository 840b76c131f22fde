"""Run an imported graph: NPU layers through a caller-given runner, the rest on the host.

:func:`execute` walks the ops in order.  Convolutions and matrix products become compiler
layers (:mod:`.lower`) and go to ``run_layer`` (default: the functional model; the
``scripts/run.py`` command passes any back end of ``testbench.backends``).  Everything else
is a host op (:mod:`.host_ops`), each counted in the report with its operations, so the
share of the work that is not on the NPU is stated, not hidden.  On weight-stationary cores
the NPU ops between two host ops are gathered into one program (:class:`_Group`,
:func:`.wholegraph.link_graph`): a ResNet or a MobileNet runs as one program per inference.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import numpy as np

from hdl.config import NPUConfig

from ..isa_sim import FunctionalNPU
from . import host_ops
from .graph import Graph, OnnxImportError
from ..compiler_ops import INT8_MIN
from .lower import (NPU_REQUANT, add_host_reason, avgpool_host_reason, concat_host_reason,
                    flat_matmul_linkable, gap_host_reason, lower_add, lower_avgpool,
                    lower_concat, lower_conv, lower_conv_pair, lower_dense_matmul,
                    lower_flat_matmul, lower_gap, lower_gemm_chain, lower_matmul,
                    lower_maxpool, maxpool_host_reason)
from .wholegraph import link_graph, read_placed

__all__ = ["execute", "Execution", "functional_runner", "to_model_dtype", "from_model_dtype"]


@dataclass
class Execution:
    """Outputs (in the model's dtypes) and what ran where."""
    outputs: dict
    layers: list = field(default_factory=list)      # one dict per NPU layer
    host: list = field(default_factory=list)        # one dict per host op
    wall_s: float = 0.0


def functional_runner(cfg: NPUConfig, layer):
    """Run a compiled layer on the functional model: (output, info dict)."""
    t0 = time.perf_counter()
    dram = bytearray(layer.dram)
    result = FunctionalNPU(cfg, dram).run(layer.program)
    if not result.done:
        raise RuntimeError(f"layer {layer.name}: the functional model stopped with "
                           f"{result.error.name}")
    return layer.output(dram), {"backend": "functional", "wall_s": time.perf_counter() - t0,
                                "dram": dram}


def from_model_dtype(x, dtype: str):
    """A model-level array -> the int8-inside value (uint8 shifted by -128)."""
    x = np.asarray(x)
    if dtype == "uint8":
        return x.astype(np.int64) - 128
    if dtype in ("int8", "int32"):
        return x.astype(np.int64)
    return x.astype(np.float32)


def to_model_dtype(x, dtype: str):
    """The int8-inside value -> the array onnxruntime would return."""
    if dtype == "uint8":
        return (np.asarray(x, np.int64) + 128).astype(np.uint8)
    return np.asarray(x).astype({"int8": np.int8, "int32": np.int32}.get(dtype, np.float32))


def _q(params, x_ndim, axis):
    """Scale/zp of a QParams broadcast along ``axis`` of an ``x_ndim``-D tensor."""
    s, z = params.scale, params.zp
    if s.size == 1:
        return s.reshape(()), z.reshape(())
    shape = [1] * x_ndim
    shape[axis] = -1
    return s.reshape(shape), z.reshape(shape)


def _layout(op, x):
    """Reshape / Flatten / Transpose / Squeeze / Unsqueeze / Identity, as ONNX defines them."""
    t, at = op.onnx_op, op.attrs.get("attrs", {})
    if t == "Identity":
        return x
    if t == "Flatten":
        ax = at.get("axis", 1) % max(x.ndim, 1) if at.get("axis", 1) else 0
        return x.reshape(int(np.prod(x.shape[:ax])), -1)
    if t == "Transpose":
        return x.transpose(at.get("perm", list(range(x.ndim))[::-1]))
    if t == "Reshape":
        shape = [x.shape[i] if s == 0 and not at.get("allowzero", 0) else s
                 for i, s in enumerate(op.attrs["arg"])]
        return x.reshape(shape)
    axes = op.attrs.get("arg", at.get("axes"))
    if t == "Squeeze":
        return np.squeeze(x, axis=tuple(axes) if axes is not None else None)
    out = x
    for a in sorted(a % (x.ndim + len(axes)) for a in axes):
        out = np.expand_dims(out, a)
    return out


def _float_op(op, ins):
    """A float island (QDQ): the op in float32 numpy (not bit-exact with onnxruntime's
    float kernels; the difference is measured by the caller)."""
    t, at = op.onnx_op, op.attrs.get("attrs", {})
    x = ins[0]
    if t == "Relu":
        return np.maximum(x, 0).astype(np.float32)
    if t == "Clip":
        lo = ins[1] if len(ins) > 1 and ins[1] is not None else -np.inf
        hi = ins[2] if len(ins) > 2 and ins[2] is not None else np.inf
        return np.clip(x, lo, hi).astype(np.float32)
    if t == "Add":
        return (ins[0] + ins[1]).astype(np.float32)
    if t == "GlobalAveragePool":
        return x.mean(axis=tuple(range(2, x.ndim)), keepdims=True, dtype=np.float32)
    if t == "MaxPool":
        k = list(at["kernel_shape"])
        return host_ops.max_pool(x, k, list(at.get("strides", [1] * len(k))),
                                 list(at.get("pads", [0] * 2 * len(k))),
                                 list(at.get("dilations", [1] * len(k))),
                                 bool(at.get("ceil_mode", 0)), fill=-np.inf).astype(np.float32)
    if t == "Concat":
        return np.concatenate(ins, axis=at["axis"]).astype(np.float32)
    if t == "Softmax":
        e = np.exp(x - x.max(axis=at.get("axis", -1), keepdims=True))
        return (e / e.sum(axis=at.get("axis", -1), keepdims=True)).astype(np.float32)
    if t in ("MatMul", "Gemm"):
        A, B = ins[0], ins[1]
        if t == "Gemm":
            A = A.T if at.get("transA", 0) else A
            B = B.T if at.get("transB", 0) else B
            y = at.get("alpha", 1.0) * (A @ B)
            return (y + at.get("beta", 1.0) * ins[2] if len(ins) > 2 else y).astype(np.float32)
        return (A @ B).astype(np.float32)
    if t == "Conv":
        return _float_conv(op, ins)
    raise OnnxImportError(f"node {op.name!r}: float op {t} has no host implementation")


def _float_conv(op, ins):
    at = op.attrs.get("attrs", {})
    x, w = ins[0].astype(np.float64), ins[1].astype(np.float64)
    g = at.get("group", 1)
    t, l, b, r = at.get("pads", [0, 0, 0, 0])
    s = at.get("strides", [1, 1])
    dil = at.get("dilations", [1, 1])
    xp = np.pad(x, ((0, 0), (0, 0), (t, b), (l, r)))
    N, C, H, W = xp.shape
    M, Cg, kh, kw = w.shape
    Ho = (H - (kh - 1) * dil[0] - 1) // s[0] + 1
    Wo = (W - (kw - 1) * dil[1] - 1) // s[1] + 1
    y = np.zeros((N, M, Ho, Wo))
    Mg = M // g
    for gi in range(g):
        xs = xp[:, gi * Cg:(gi + 1) * Cg]
        for ky in range(kh):
            for kx in range(kw):
                patch = xs[:, :, ky * dil[0]:ky * dil[0] + s[0] * Ho:s[0],
                           kx * dil[1]:kx * dil[1] + s[1] * Wo:s[1]]
                y[:, gi * Mg:(gi + 1) * Mg] += np.einsum(
                    "nchw,mc->nmhw", patch, w[gi * Mg:(gi + 1) * Mg, :, ky, kx])
    if len(ins) > 2 and ins[2] is not None:
        y += ins[2].reshape(1, -1, 1, 1)
    return y.astype(np.float32)


def _host_op(op, ins, graph):
    """A host op on int8-inside values: (output, operation count)."""
    a = op.attrs
    x = ins[0]
    if op.kind == "quantize":
        return host_ops.quantize_linear(x, a["q"].scale_scalar(), int(a["q"].zp.reshape(-1)[0])), x.size
    if op.kind == "dequantize":
        s, z = _q(a["q"], x.ndim, a["q"].axis)
        return host_ops.dequantize_linear(x, s, z), x.size
    if op.kind == "maxpool":
        y = host_ops.max_pool(x, a["kernel"], a["strides"], a["pads"], a["dilations"],
                              a["ceil_mode"])
        return y, y.size * int(np.prod(a["kernel"]))
    if op.kind == "add" and a.get("float_path"):
        aq, bq, cq = a["aq"], a["bq"], a["cq"]
        va = host_ops.dequantize_linear(ins[0], aq.scale_scalar(), aq.zp_scalar("A", op.name))
        vb = host_ops.dequantize_linear(ins[1], bq.scale_scalar(), bq.zp_scalar("B", op.name))
        y = host_ops.quantize_linear(va + vb, cq.scale_scalar(), cq.zp_scalar("C", op.name),
                                     *a.get("clamp", (-128, 127)))
        return y, y.size
    if op.kind == "add":
        aq, bq, cq = a["aq"], a["bq"], a["cq"]
        y = host_ops.qlinear_add(ins[0], aq.scale_scalar(), aq.zp_scalar("A", op.name),
                                 ins[1], bq.scale_scalar(), bq.zp_scalar("B", op.name),
                                 cq.scale_scalar(), cq.zp_scalar("C", op.name),
                                 unsigned=cq.unsigned)
        lo, hi = a.get("clamp", (-128, 127))
        return np.clip(y, lo, hi), y.size
    if op.kind == "gap":
        y = host_ops.qlinear_global_average_pool(
            x, a["xq"].scale_scalar(), a["xq"].zp_scalar("X", op.name), a["yq"].scale_scalar(),
            a["yq"].zp_scalar("Y", op.name), a["channels_last"])
        lo, hi = a.get("clamp", (-128, 127))
        return np.clip(y, lo, hi), x.size
    if op.kind == "avgpool":
        y = host_ops.qlinear_average_pool(
            x, a["xq"].scale_scalar(), a["xq"].zp_scalar("X", op.name), a["yq"].scale_scalar(),
            a["yq"].zp_scalar("Y", op.name), a["kernel"], a["strides"], a["pads"],
            a["count_include_pad"], a["ceil_mode"],
            a["yq"].unsigned or a.get("kernel_uint8", False), a.get("clamp", (-128, 127)))
        return y, y.size * int(np.prod(a["kernel"]))
    if op.kind == "concat":
        y = host_ops.qlinear_concat(ins, [(p.scale_scalar(), p.zp_scalar("X", op.name))
                                          for p in a["params"]], a["yq"].scale_scalar(),
                                    a["yq"].zp_scalar("Y", op.name), a["axis"])
        lo, hi = a.get("clamp", (-128, 127))
        return np.clip(y, lo, hi), y.size
    if op.kind == "layout":
        return _layout(op, x), 0
    if op.kind == "float":
        y = _float_op(op, ins)
        return y, y.size
    raise OnnxImportError(f"node {op.name!r}: no host implementation of {op.kind}")


def _layer_info(cfg, op, layer, out_info):
    """The report line of one NPU layer (cycles from the back end when it has them)."""
    from ..analytical import core_estimate
    from ..energy import EnergyModel, events_from_program
    from ..workloads import Layer as WLayer
    meta = layer.meta
    cycles = out_info.get("cycles")
    source = "measured"
    if cycles is None:
        shape = meta.get("workload")
        wl = WLayer(layer.name, "gemm", M=meta["M"], K=meta["K"], N=meta["N"]) \
            if shape is None else shape
        cycles = core_estimate(cfg, wl, 1 if layer.out_dtype == "int8" else 4).cycles
        source = "analytical"
    ev = events_from_program(cfg, layer.program, cycles)
    band = EnergyModel(cfg).estimate(ev)
    dram = out_info.get("dram_bytes", ev.dram_bytes)
    return {"layer": layer.name, "op": op.onnx_op, "shape": [meta["M"], meta["K"], meta["N"]],
            "macs": layer.macs, "cycles": int(cycles), "cycles_source": source,
            "utilization": layer.macs / (cycles * cfg.rows * cfg.cols),
            "dram_bytes": int(dram), "energy_pj": [band.low_pj, band.high_pj],
            "backend": out_info.get("backend"), "wall_s": out_info.get("wall_s", 0.0),
            "golden_equal": out_info.get("golden_equal"),
            "onnxruntime_float_island": bool(op.attrs.get("ort_float", False)),
            "onnxruntime_float_kernel": bool(layer.meta.get("ort_float", False)),
            "counters": out_info.get("counters")}


def _data_inputs(op) -> list:
    """The tensor inputs of an NPU op that its lowering places in DRAM, in the order of
    :attr:`Lowered.places`."""
    return list(op.inputs) if op.kind == "concat" else \
        list(op.inputs[:2]) if op.kind == "add" else [op.inputs[0]]


#: The pool/join ops and why each would stay on the host (None: the NPU runs it), from
#: ``(cfg, op, xs)`` (inputs: values, or stand-ins of the right shape).
_HOST_REASON = {
    "maxpool": lambda cfg, op, xs: maxpool_host_reason(cfg, op) or
    ("not a 4-D tensor" if np.ndim(xs[0]) != 4 else None),
    "gap": lambda cfg, op, xs: gap_host_reason(op, np.ndim(xs[0])),
    "avgpool": lambda cfg, op, xs: avgpool_host_reason(cfg, op, np.shape(xs[0])),
    "add": add_host_reason,
    "concat": concat_host_reason,
}


#: The pool/join ops' lowerings (add and concat take the list of inputs, the pools one).
_LOWER = {"maxpool": lower_maxpool, "gap": lower_gap, "avgpool": lower_avgpool,
          "add": lower_add, "concat": lower_concat}


def _npu_kind(graph, cfg, op, xs) -> bool:
    """Whether ``op`` (inputs ``xs``: values, or stand-ins of the right shape) runs as one
    NPU layer that a whole-graph program can hold (matmuls: :meth:`_Group.admit`)."""
    if op.kind == "conv":
        return op.attrs["scale"] is not None
    return op.kind in _HOST_REASON and _HOST_REASON[op.kind](cfg, op, xs) is None


def _lower_node(cfg, op, xs, vals):
    """Lower one NPU op of a whole-graph program on inputs ``xs`` (for a matmul: the 4-D
    tensor before its Flatten)."""
    if op.kind == "conv":
        return lower_conv(cfg, op, xs[0], vals[op.inputs[1]],
                          vals[op.inputs[2]] if op.attrs["has_bias"] else None)
    if op.kind == "matmul":
        lower = lower_dense_matmul if np.ndim(xs[0]) == 2 else lower_flat_matmul
        return lower(cfg, op, xs[0], vals[op.inputs[1]],
                     vals[op.inputs[2]] if op.attrs["has_bias"] else None)
    return _LOWER[op.kind](cfg, op, xs if op.kind in ("add", "concat") else xs[0])


def _placeholder(op, shape):
    """A stand-in input for compiling a whole-graph member: what its padding holds (the
    interior is written by the layer before it on the NPU)."""
    fill = op.attrs["xq"].zp_scalar("input", op.name) if op.kind in ("conv", "avgpool") else \
        INT8_MIN if op.kind == "maxpool" else 0
    return np.full(shape, fill, np.int64)


@dataclass
class _Member:
    op: object
    low: object = None              # Lowered (None for a Flatten read in place)
    srcs: list = field(default_factory=list)   # per data input: producing member or None
    xs: list = field(default_factory=list)     # the inputs it was lowered on (placeholders
    #                                            where a member produces them)


class _Group:
    """NPU ops gathered, in graph order, into one program (:func:`link_graph`): an op
    joins when it can run on the NPU in such a program and each input is either a value
    the host already has (written into the op's image) or the output of a member whose
    stores can be routed into the op's input buffer.  A Flatten(axis=1) of a member's
    4-D output joins when every use of it is a matmul that reads it in place; a matmul
    joins behind such a Flatten or on a 2-D A (a host value or a member matmul's output)
    when :func:`~.lower.flat_matmul_linkable` (int8 out, constant B without the K split).
    With ``chain``, :func:`_run_linked` compiles the chains of :func:`_chains` as one
    layer each."""

    def __init__(self, graph, cfg, users, chain=True):
        self.graph, self.cfg, self.users, self.chain = graph, cfg, users, chain
        self.members = []
        self.made = {}              # tensor -> index of the member producing it
        self.shape = {}             # tensor -> shape of a member's output

    def _flatten_ok(self, op) -> bool:
        a = op.attrs.get("attrs", {})
        if op.onnx_op != "Flatten" or a.get("axis", 1) != 1 or op.inputs[0] not in self.made \
                or len(self.shape[op.inputs[0]]) != 4:
            return False
        src = self.members[self.made[op.inputs[0]]]
        uses = [self.graph.ops[u] for u in self.users.get(op.outputs[0], [])]
        return src.low is not None and src.low.out_geom is not None and bool(uses) and all(
            u.kind == "matmul" and u.inputs[0] == op.outputs[0] and
            flat_matmul_linkable(u, self.graph) for u in uses)

    def admit(self, op, vals) -> bool:
        """Lower ``op`` into the group when it can join (see the class doc)."""
        if op.kind == "layout":
            if not self._flatten_ok(op):
                return False
            self.made[op.outputs[0]] = self.made[op.inputs[0]]
            self.shape[op.outputs[0]] = self.shape[op.inputs[0]]
            self.members.append(_Member(op))
            return True
        names = _data_inputs(op)
        if op.kind == "matmul":
            flat = next((m.op for m in self.members if m.low is None and
                         m.op.outputs[0] == names[0]), None)
            if flat is None and not flat_matmul_linkable(op, self.graph):
                return False
            names = [flat.inputs[0]] if flat is not None else names
        if any(n not in self.made and n not in vals for n in names):
            return False
        xs = [np.zeros(self.shape[n], np.int64) if n in self.made else vals[n] for n in names]
        if op.kind == "matmul" and flat is None and np.ndim(xs[0]) != 2:
            return False
        if op.kind != "matmul" and not _npu_kind(self.graph, self.cfg, op, xs):
            return False
        srcs = [self.made.get(n) for n in names]
        if any(k is not None and self.members[k].low.out_geom is None for k in srcs):
            return False
        xs = [_placeholder(op, x.shape) if k is not None else x for x, k in zip(xs, srcs)]
        low = _lower_node(self.cfg, op, xs, vals)
        if len(low.layers) != 1 or len(low.places or ()) != len(names):
            return False
        self.made[op.outputs[0]] = len(self.members)
        self.shape[op.outputs[0]] = low.assemble([low.layers[0].expected]).shape
        self.members.append(_Member(op, low, srcs, xs))
        return True

    def needs(self, op) -> bool:
        """Whether ``op`` reads a tensor the group has yet to compute."""
        return any(i in self.made for i in op.inputs)

    def flush(self, vals, run_layer, ex):
        """Run the gathered ops (one program, or the lone op its own way) and set their
        outputs in ``vals``; empty the group."""
        members, self.members, self.made, self.shape = self.members, [], {}, {}
        real = [m for m in members if m.low is not None]
        if len(real) == 1:
            _run_op(self.cfg, self.graph, real[0].op, vals, run_layer, ex)
        elif real:
            _run_linked(self.cfg, self.graph, members, self.users, vals, run_layer, ex,
                        self.chain)
        for m in members:
            if m.low is None:
                vals[m.op.outputs[0]] = _layout(m.op, vals[m.op.inputs[0]])
                ex.host.append({"node": m.op.name, "op": "Flatten", "ops": 0,
                                "why": "none: the matmul reads the NPU's NHWC output in place "
                                       "(its weight rows reordered); layout only"})


def _kept(graph, members, users) -> list:
    """For each member with a layer: whether its output must also stay in its own buffer
    (a graph output, or read by an op outside the program, through a Flatten or not)."""
    inside = {id(m.op) for m in members}
    outs = {name for name, _, _ in graph.outputs}

    def outside(t):
        return t in outs or any(id(graph.ops[u]) not in inside for u in users.get(t, []))
    flat = {m.op.inputs[0]: m.op.outputs[0] for m in members if m.low is None}
    return [outside(m.op.outputs[0]) or (m.op.outputs[0] in flat and
                                         outside(flat[m.op.outputs[0]]))
            for m in members if m.low is not None]


def _bias(op, vals):
    return vals[op.inputs[2]] if op.attrs["has_bias"] else None


def _chain_end(real, members, routes, keep, k, kind) -> int:
    """The last member of the longest run from ``real[k]`` in which each member's output
    goes to the next member alone (no other member, no host op, not a graph output) and
    each next member, of ``kind``, reads nothing else."""
    e = k
    while e + 1 < len(real) and not keep[e] and [j for j, _ in routes[e]] == [e + 1] and \
            real[e].op.kind == kind == real[e + 1].op.kind and \
            real[e + 1].srcs == [members.index(real[e])]:
        e += 1
    return e


def _chains(cfg, members, real, routes, keep, vals) -> dict:
    """The consecutive members that run as one chained layer, their intermediates on chip:
    ``{k: (n, Lowered)}`` for ``real[k:k + n]``.  A convolution and the 1x1 convolution
    that alone reads its output (:func:`lower_conv_pair`); a run of matrix products each
    reading the one before's 2-D output alone (:func:`lower_gemm_chain`, the longest run
    from ``k`` that pays).  A member is in one chain at most."""
    chains, k = {}, 0
    while k < len(real):
        m = real[k]
        kind = m.op.kind if m.op.kind in ("conv", "matmul") else None
        e = min(_chain_end(real, members, routes, keep, k, kind), k + 1) if kind == "conv" \
            else _chain_end(real, members, routes, keep, k, kind) if kind else k
        low = None
        while e > k and low is None:
            run = real[k:e + 1]
            if kind == "conv":
                low = lower_conv_pair(cfg, m.op, m.xs[0], vals[m.op.inputs[1]],
                                      _bias(m.op, vals), run[1].op, vals[run[1].op.inputs[1]],
                                      _bias(run[1].op, vals))
            else:
                low = lower_gemm_chain(cfg, [r.op for r in run], m.xs[0],
                                       [vals[r.op.inputs[1]] for r in run],
                                       [_bias(r.op, vals) for r in run])
            e -= low is None
        if low is not None:
            chains[k] = (e - k + 1, low)
        k = e + 1
    return chains


def _units(real, chains, routes, keep):
    """The layers :func:`link_graph` links: one per member, a chain as one.  Returns
    ``(unit of each member, Lowered, routes, keep)`` per unit."""
    unit, lows, u_routes, u_keep = [], [], [], []
    last = -1                                # the last member of the current chain
    for k, m in enumerate(real):
        if k <= last:                        # inside a chain: its first member's unit
            unit.append(unit[-1])
            u_routes[-1], u_keep[-1] = routes[k], keep[k]
            continue
        n, low = chains.get(k, (1, m.low))
        last = k + n - 1
        unit.append(len(lows))
        lows.append(low)
        u_routes.append(routes[k])
        u_keep.append(keep[k])
    u_routes = [[(unit[j], place) for j, place in r] for r in u_routes]
    return unit, lows, u_routes, u_keep


def _member_inputs(members, m, vals) -> list:
    """The values a member reads (a matmul behind a Flatten: the 4-D tensor before it)."""
    names = _data_inputs(m.op)
    if m.op.kind == "matmul":
        names = [next((f.op.inputs[0] for f in members if f.low is None and
                       f.op.outputs[0] == names[0]), names[0])]
    return [vals[n] for n in names]


def _run_linked(cfg, graph, members, users, vals, run_layer, ex, chain=True):
    """Link the members into one program (:func:`link_graph`; with ``chain``, the chains
    of :func:`_chains` as one layer each, their intermediates on chip), run it once, set
    every member's output (read back from where a consumer read it, or from its own
    buffer; a chain's intermediates, which never leave the chip, from their references:
    the chain's output checks them) and check each against its layer compiled on the real
    inputs."""
    real = [m for m in members if m.low is not None]
    pos = {members.index(m): k for k, m in enumerate(real)}     # member -> layer index
    routes = [[] for _ in real]
    for j, m in enumerate(real):
        for d, src in enumerate(m.srcs):
            if src is not None:
                routes[pos[src]].append((j, m.low.places[d]))
    keep = _kept(graph, members, users)
    chains = _chains(cfg, members, real, routes, keep, vals) if chain else {}
    on_chip = {k + i for k, (n, _) in chains.items() for i in range(n - 1)}
    unit, lows, u_routes, u_keep = _units(real, chains, routes, keep)
    prog = link_graph(cfg, [low.layers[0] for low in lows], u_routes,
                      [low.out_geom for low in lows], u_keep,
                      name="+".join(m.op.name for m in real))
    _, info = run_layer(cfg, prog)
    dram = info.pop("dram")
    offs = prog.meta["offsets"]
    golden = True
    for k, m in enumerate(real):
        ref = _lower_node(cfg, m.op, _member_inputs(members, m, vals), vals)
        expect = ref.assemble([ref.layers[0].expected])
        u = unit[k]
        layer = lows[u].layers[0]
        if k in on_chip:
            y = expect
        elif keep[k]:
            raw = dataclasses.replace(layer, out_addr=offs[u] + layer.out_addr).output(dram)
            y = lows[u].assemble([raw])
        else:
            (j, place), (ho, wo, ch, _) = routes[k][0], m.low.out_geom
            y = read_placed(dram, offs[unit[j]], place, (place.batch, ch, ho, wo))
            if expect.ndim == 2:           # a matmul's rows, placed as one image row
                y = y[0, :, 0, :].T
        golden &= bool(np.array_equal(y, expect))
        vals[m.op.outputs[0]] = y
        for f in members:          # a Flatten's output, for the matmul's reference
            if f.low is None and f.op.inputs[0] == m.op.outputs[0]:
                vals[f.op.outputs[0]] = _layout(f.op, y)
    info["golden_equal"] = golden
    entry = _layer_info(cfg, real[-1].op, prog, info)
    rows = [_layer_info(cfg, m.op, m.low.layers[0], {}) for m in real]
    if entry["cycles_source"] == "analytical":
        entry["cycles"] = sum(r["cycles"] for r in rows)
        entry["utilization"] = prog.macs / (entry["cycles"] * cfg.rows * cfg.cols)
    entry["op"] = f"{len(real)} NPU ops (one program)"
    entry["segment"] = [m.op.name for m in real]
    entry["members"] = [{**{k: r[k] for k in ("layer", "op", "shape", "macs",
                                              "onnxruntime_float_island",
                                              "onnxruntime_float_kernel")},
                         "output_on_chip": i in on_chip} for i, r in enumerate(rows)]
    entry["chains"] = ["+".join(m.op.name for m in real[k:k + n])
                       for k, (n, _) in sorted(chains.items())]
    ex.layers.append(entry)


def _run_concat(cfg, op, xs, run_layer, ex):
    """A channel concat: one NPU program writing every input into its slice."""
    low = lower_concat(cfg, op, xs)
    out, info = run_layer(cfg, low.layers[0])
    info.pop("dram", None)
    info["golden_equal"] = bool(np.array_equal(out, low.layers[0].expected))
    entry = _layer_info(cfg, op, low.layers[0], info)
    entry["op"] = f"{op.onnx_op} ({len(xs)} slices, one program)"
    ex.layers.append(entry)
    return low.assemble([out])


def _run_single(cfg, op, x, run_layer, ex):
    """A MaxPool, global average pool (outside a chain) or add (``x``: both inputs): its own
    NPU program."""
    low = _LOWER[op.kind](cfg, op, x)
    out, info = run_layer(cfg, low.layers[0])
    info.pop("dram", None)
    info["golden_equal"] = bool(np.array_equal(out, low.layers[0].expected))
    ex.layers.append(_layer_info(cfg, op, low.layers[0], info))
    return low.assemble([out])


def _run_op(cfg, graph, op, vals, run_layer, ex):
    """One op outside a whole-graph program: its own NPU program(s), or the host."""
    ins = [vals[i] if i else None for i in op.inputs]
    if op.kind in ("conv", "matmul"):
        bias = ins[2] if op.attrs["has_bias"] else None
        low = (lower_conv if op.kind == "conv" else lower_matmul)(cfg, op, ins[0], ins[1], bias)
        outs = []
        for layer in low.layers:
            out, info = run_layer(cfg, layer)
            info.pop("dram", None)
            info["golden_equal"] = bool(np.array_equal(out, layer.expected))
            outs.append(out)
            ex.layers.append(_layer_info(cfg, op, layer, info))
        vals[op.outputs[0]] = low.assemble(outs)
        if low.host_requant:
            ex.host.append({"node": op.name, "op": "requantize (host)",
                            "ops": int(vals[op.outputs[0]].size),
                            "why": "raw int32 output" if op.attrs["scale"] is None else
                            "the core has no onnxruntime rounding mode yet"})
        return
    if op.kind in ("maxpool", "gap", "avgpool", "add") and _npu_kind(graph, cfg, op, ins):
        vals[op.outputs[0]] = _run_single(cfg, op, ins if op.kind == "add" else ins[0],
                                          run_layer, ex)
        return
    if op.kind == "concat" and _npu_kind(graph, cfg, op, ins):
        vals[op.outputs[0]] = _run_concat(cfg, op, ins, run_layer, ex)
        return
    y, count = _host_op(op, ins, graph)
    vals[op.outputs[0]] = y
    ex.host.append({"node": op.name, "op": op.onnx_op if op.kind != "float"
                    else f"{op.onnx_op} (float island)", "ops": int(count),
                    "why": "layout (data movement only)" if op.kind == "layout" else
                    _HOST_REASON[op.kind](cfg, op, ins) if op.kind in _HOST_REASON
                    else "graph edge" if op.kind in ("quantize", "dequantize")
                    else "float op (QDQ island)"})


def execute(graph: Graph, feeds: dict, cfg: NPUConfig, run_layer=None,
            whole_graph: bool = True, approx_avgpool: bool = False,
            chain: bool = True) -> Execution:
    """Run ``graph`` on ``feeds`` (model-level arrays by input name).

    Parameters
    ----------
    graph : Graph
        From :func:`~.graph.import_model`.
    feeds : dict
        One array per graph input, in the model's dtype and shape.
    cfg : NPUConfig
        The core the NPU layers are compiled for.
    run_layer : callable, optional
        ``run_layer(cfg, layer) -> (int output array, info dict)``; the info carries ``dram``
        (the memory after the run) and may carry ``cycles``, ``dram_bytes``, ``backend``,
        ``wall_s``.  Default: the functional model.
    whole_graph : bool
        Gather the NPU ops into as few programs as the host ops between them allow
        (:class:`_Group`, weight-stationary cores with the onnxruntime rounding); else
        every op runs as its own program.
    approx_avgpool : bool
        Run on the NPU also the AveragePools it cannot provably match onnxruntime's float
        kernel on (:func:`~.lower.avgpool_npu_exact`): one step off at most, near half
        steps, and flagged in the report.  Default: those run on the host, exact.
    chain : bool
        In a whole-graph program, keep a convolution's output in the scratchpad for the
        1x1 convolution that alone reads it, and a matrix product's for the next one,
        where that fits and pays (``compiler.chain_pays``; :func:`_chains`).  False:
        every output goes through DRAM.

    Returns
    -------
    Execution
    """
    run_layer = run_layer or functional_runner
    if approx_avgpool:
        graph = dataclasses.replace(graph, ops=[
            dataclasses.replace(op, attrs={**op.attrs, "approx_ok": True})
            if op.kind == "avgpool" else op for op in graph.ops])
    t0 = time.perf_counter()
    vals = {name: np.asarray(v) for name, v in graph.consts.items()}
    for name, dtype, _ in graph.inputs:
        if name not in feeds:
            raise OnnxImportError(f"graph input {name!r} has no value")
        vals[name] = from_model_dtype(feeds[name], dtype)
    users = {}
    for index, op in enumerate(graph.ops):
        for name in op.inputs:
            users.setdefault(name, []).append(index)
    linking = whole_graph and cfg.dataflow == "ws" and NPU_REQUANT
    group = _Group(graph, cfg, users, chain)
    ex = Execution({})
    for op in graph.ops:
        if linking and group.admit(op, vals):
            continue
        if group.needs(op):
            group.flush(vals, run_layer, ex)
        _run_op(cfg, graph, op, vals, run_layer, ex)
    group.flush(vals, run_layer, ex)
    for name, dtype, _ in graph.outputs:
        ex.outputs[name] = to_model_dtype(vals[name], dtype)
    ex.wall_s = time.perf_counter() - t0
    return ex
