"""Workloads: layer tables of common networks, and SCALE-Sim topology CSV import/export.

The tables are built from compact architecture descriptions below and stored as data in
``sim_models/workloads/<name>.csv`` (``python -m sim_models.workloads`` rewrites them; a test
keeps them in step).  Batch size 1, ImageNet 224x224 inputs; BERT-base with 128 tokens.

SCALE-Sim's topology format (its ``topology_utils``): conv rows are
``name, IFMAP H, IFMAP W, Filter H, Filter W, Channels, Num Filter, Strides,`` with the input
already padded (we export the padded rows the windows actually read) and a trailing comma; a name containing ``DP`` marks a depthwise layer, which
SCALE-Sim splits into one single-channel layer per channel.  GEMM rows are ``name, M, N, K,``.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Layer", "WORKLOADS", "build", "load", "save", "to_scalesim_csv",
           "from_scalesim_csv", "WorkloadError"]

DATA = Path(__file__).resolve().parent / "workloads"


class WorkloadError(ValueError):
    """A malformed layer or topology file."""


@dataclass(frozen=True)
class Layer:
    """One layer.  ``conv``: NHWC input h x w x c (unpadded), kh x kw kernel, n filters (c for
    depthwise), stride, symmetric padding.  ``gemm``: (M x K) @ (K x N).  ``a_from``: the
    layer just before it, when its int8 output is this layer's A as it stands (a GEMM's
    rows, a 1x1 convolution's pixels), nothing runs on the host between them and nothing
    else reads it -- a compiler may keep it on chip (``analytical.chains``); empty
    otherwise."""
    name: str
    kind: str
    h: int = 0
    w: int = 0
    c: int = 0
    kh: int = 0
    kw: int = 0
    n: int = 0
    stride: int = 1
    pad: int = 0
    depthwise: bool = False
    M: int = 0
    K: int = 0
    N: int = 0
    a_from: str = ""

    def __post_init__(self):
        if self.kind not in ("conv", "gemm"):
            raise WorkloadError(f"layer {self.name!r}: kind must be conv or gemm, not {self.kind!r}")
        if self.kind == "gemm":
            if min(self.M, self.K, self.N) < 1:
                raise WorkloadError(f"layer {self.name!r}: M, K, N must be >= 1")
        else:
            if min(self.h, self.w, self.c, self.kh, self.kw, self.n, self.stride) < 1 or self.pad < 0:
                raise WorkloadError(f"layer {self.name!r}: conv sizes must be >= 1, pad >= 0")
            if self.kh > self.h + 2 * self.pad or self.kw > self.w + 2 * self.pad:
                raise WorkloadError(f"layer {self.name!r}: kernel larger than the padded input")
            if self.depthwise and self.n != self.c:
                raise WorkloadError(f"layer {self.name!r}: depthwise needs n == c")

    @property
    def out_hw(self) -> tuple[int, int]:
        return ((self.h + 2 * self.pad - self.kh) // self.stride + 1,
                (self.w + 2 * self.pad - self.kw) // self.stride + 1)

    def gemms(self) -> list[tuple[int, int, int, int]]:
        """The layer as GEMMs ``(count, M, K, N)``: a convolution over im2col rows; a
        depthwise one as ``c`` independent single-channel GEMMs."""
        if self.kind == "gemm":
            return [(1, self.M, self.K, self.N)]
        ho, wo = self.out_hw
        if self.depthwise:
            return [(self.c, ho * wo, self.kh * self.kw, 1)]
        return [(1, ho * wo, self.kh * self.kw * self.c, self.n)]

    @property
    def macs(self) -> int:
        return sum(count * M * K * N for count, M, K, N in self.gemms())

    def compulsory_bytes(self, out_bytes: int = 1) -> tuple[int, int, int]:
        """(input, weight, output) bytes the layer must move at least once when it runs on
        its own: every input and weight byte read once, every output written once."""
        if self.kind == "gemm":
            return self.M * self.K, self.K * self.N, self.M * self.N * out_bytes
        ho, wo = self.out_hw
        weights = self.kh * self.kw * self.c * (1 if self.depthwise else self.n)
        return self.h * self.w * self.c, weights, ho * wo * self.n * out_bytes


def _conv(name, h, c, n, k, stride=1, pad=None, depthwise=False, w=None, a_from=""):
    return Layer(name, "conv", h=h, w=w or h, c=c, kh=k, kw=k, n=n, stride=stride,
                 pad=(k // 2) if pad is None else pad, depthwise=depthwise, a_from=a_from)


def _resnet18():
    layers = [_conv("conv1", 224, 3, 64, 7, 2, 3)]
    h, c = 56, 64  # after the 3x3/2 max pool
    for stage, width in enumerate((64, 128, 256, 512), start=1):
        for block in range(2):
            stride = 2 if (block == 0 and stage > 1) else 1
            pre = f"layer{stage}.{block}"
            layers.append(_conv(f"{pre}.conv1", h, c, width, 3, stride))
            if stride == 2 or c != width:
                layers.append(_conv(f"{pre}.downsample", h, c, width, 1, stride, 0))
            h = (h + 2 - 3) // stride + 1
            layers.append(_conv(f"{pre}.conv2", h, width, width, 3, 1))
            c = width
    layers.append(Layer("fc", "gemm", M=1, K=512, N=1000))
    return layers


def _resnet50():
    layers = [_conv("conv1", 224, 3, 64, 7, 2, 3)]
    h, c = 56, 64
    for stage, (width, blocks) in enumerate(((64, 3), (128, 4), (256, 6), (512, 3)), start=1):
        out = 4 * width
        for block in range(blocks):
            stride = 2 if (block == 0 and stage > 1) else 1
            pre = f"layer{stage}.{block}"
            layers.append(_conv(f"{pre}.conv1", h, c, width, 1, 1, 0))
            layers.append(_conv(f"{pre}.conv2", h, width, width, 3, stride))
            h2 = (h + 2 - 3) // stride + 1
            layers.append(_conv(f"{pre}.conv3", h2, width, out, 1, 1, 0,
                                a_from=f"{pre}.conv2"))
            if block == 0:
                layers.append(_conv(f"{pre}.downsample", h, c, out, 1, stride, 0))
            h, c = h2, out
    layers.append(Layer("fc", "gemm", M=1, K=2048, N=1000))
    return layers


def _mobilenet_v2():
    layers = [_conv("conv_stem", 224, 3, 32, 3, 2)]
    h, c = 112, 32
    settings = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                (6, 160, 3, 2), (6, 320, 1, 1)]
    index = 0
    for t, out, repeats, first_stride in settings:
        for r in range(repeats):
            stride = first_stride if r == 0 else 1
            pre = f"block{index}"
            hidden = c * t
            if t != 1:
                layers.append(_conv(f"{pre}.expand", h, c, hidden, 1, 1, 0))
            layers.append(_conv(f"{pre}.dw", h, hidden, hidden, 3, stride, depthwise=True))
            h = (h + 2 - 3) // stride + 1
            layers.append(_conv(f"{pre}.project", h, hidden, out, 1, 1, 0,
                                a_from=f"{pre}.dw"))
            c = out
            index += 1
    layers.append(_conv("conv_head", h, c, 1280, 1, 1, 0))
    layers.append(Layer("classifier", "gemm", M=1, K=1280, N=1000))
    return layers


def _bert_base_block(tokens=128, hidden=768, heads=12, ff=3072):
    d = hidden // heads
    layers = [Layer(f"{p}_proj", "gemm", M=tokens, K=hidden, N=hidden) for p in "qkv"]
    for head in range(heads):
        layers.append(Layer(f"scores_h{head}", "gemm", M=tokens, K=d, N=tokens))
        layers.append(Layer(f"context_h{head}", "gemm", M=tokens, K=tokens, N=d))
    layers += [Layer("out_proj", "gemm", M=tokens, K=hidden, N=hidden),
               Layer("ffn1", "gemm", M=tokens, K=hidden, N=ff),
               Layer("ffn2", "gemm", M=tokens, K=ff, N=hidden)]
    return layers


def _mlp(batch=64):
    return [Layer("fc1", "gemm", M=batch, K=784, N=512),
            Layer("fc2", "gemm", M=batch, K=512, N=256, a_from="fc1"),
            Layer("fc3", "gemm", M=batch, K=256, N=10, a_from="fc2")]


WORKLOADS = {"resnet18": _resnet18, "resnet50": _resnet50, "mobilenet_v2": _mobilenet_v2,
             "bert_base_block": _bert_base_block, "mlp": _mlp}

_FIELDS = [f.name for f in dataclasses.fields(Layer)]


def build(name: str) -> list[Layer]:
    """A workload from its architecture description."""
    if name not in WORKLOADS:
        raise WorkloadError(f"unknown workload {name!r}: one of {', '.join(WORKLOADS)}")
    return WORKLOADS[name]()


def save(layers: list[Layer]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, _FIELDS, lineterminator="\n")
    writer.writeheader()
    for layer in layers:
        writer.writerow({k: (int(v) if isinstance(v, bool) else v)
                         for k, v in dataclasses.asdict(layer).items()})
    return out.getvalue()


def load(name_or_path) -> list[Layer]:
    """A stored table: a workload name (``resnet50``) or a path to a CSV in this format."""
    path = Path(name_or_path)
    if not path.suffix:
        path = DATA / f"{name_or_path}.csv"
    if not path.exists():
        raise WorkloadError(f"no workload table {path}")
    layers = []
    for row in csv.DictReader(path.read_text().splitlines()):
        try:
            values = {k: (v if k in ("name", "kind", "a_from") else int(v))
                      for k, v in row.items()}
        except (TypeError, ValueError) as err:
            raise WorkloadError(f"{path}: bad row {row}: {err}") from None
        values["depthwise"] = bool(values["depthwise"])
        layers.append(Layer(**values))
    return layers


def to_scalesim_csv(layers: list[Layer]) -> str:
    """SCALE-Sim topology text.  All conv, or all GEMM (SCALE-Sim reads one kind per file)."""
    kinds = {layer.kind for layer in layers}
    if len(kinds) != 1:
        raise WorkloadError("SCALE-Sim topologies hold conv layers or GEMM layers, not both: "
                            "split the table (e.g. [l for l in layers if l.kind == 'conv'])")
    if kinds == {"gemm"}:
        lines = ["Layer, M, N, K,"]
        lines += [f"{l.name}, {l.M}, {l.N}, {l.K}," for l in layers]
    else:
        lines = ["Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, "
                 "Num Filter, Strides,"]
        for l in layers:
            # SCALE-Sim rounds the output size up (ceil((H - F + S) / S)); export the input
            # rows the windows really touch, so both sides agree on the output and the MACs.
            ho, wo = l.out_hw
            name = f"{l.name} DP" if l.depthwise else l.name
            if l.depthwise is False and "DP" in l.name:
                raise WorkloadError(f"layer {l.name!r}: SCALE-Sim treats names with 'DP' as "
                                    "depthwise")
            lines.append(f"{name}, {(ho - 1) * l.stride + l.kh}, {(wo - 1) * l.stride + l.kw}, "
                         f"{l.kh}, {l.kw}, {l.c}, {1 if l.depthwise else l.n}, {l.stride},")
    return "\n".join(lines) + "\n"


def from_scalesim_csv(text: str) -> list[Layer]:
    """SCALE-Sim topology text -> layers (inputs are taken as already padded: pad 0)."""
    rows = [r.strip() for r in text.strip().splitlines()]
    if not rows:
        raise WorkloadError("empty topology")
    header = [h.strip().lower() for h in rows[0].split(",")]
    layers = []
    for lineno, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        cells = [c.strip() for c in row.split(",")]
        if cells[-1] == "":
            cells = cells[:-1]
        try:
            if len(header) >= 4 and header[1] == "m":
                name, m, n, k = cells[0], *map(int, cells[1:4])
                layers.append(Layer(name, "gemm", M=m, K=k, N=n))
            else:
                name = cells[0]
                h, w, kh, kw, c, n, s = map(int, cells[1:8])
                dw = "DP" in name
                layers.append(Layer(name.replace(" DP", "") if dw else name, "conv", h=h, w=w,
                                    c=c, kh=kh, kw=kw, n=c if dw else n, stride=s,
                                    depthwise=dw))
        except (ValueError, IndexError) as err:
            raise WorkloadError(f"topology line {lineno}: {row!r}: {err}") from None
    return layers


def main() -> int:
    DATA.mkdir(exist_ok=True)
    for name in WORKLOADS:
        layers = build(name)
        (DATA / f"{name}.csv").write_text(save(layers))
        macs = sum(l.macs for l in layers)
        print(f"{name}: {len(layers)} layers, {macs / 1e9:.3f} GMAC -> {DATA / name}.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
