"""Whole-graph execution: the NPU ops of a graph (convolutions, pools, adds, concats, a
classifier behind a Flatten) as one program and one DRAM image, each op reading what the
ops before it wrote.

Every op is compiled as usual (each input that another op of the program produces is a
placeholder holding what its buffer's border keeps: the input zero point for a convolution,
the int8 minimum for a max pool), and the ops, in a topological order, are then linked
(:func:`link_graph`):

* the ops' images are laid end to end in one image and their programs' DRAM addresses
  relocated;
* the STOREs of an op whose output other ops of the program read are split at image-row
  boundaries and sent into the *interior* of each consumer's input buffer (a convolution's
  padded NHWC input -- twice, at both channel offsets, when it repeats its input for a
  weight zero-point split --, an add's or concat's dense NHWC operand, a pool's padded
  input, a classifier's flattened rows); rows of a stacked batch that straddle two images
  are not stored; an output the host also needs (a graph output, or the input of a host
  op) is still stored where the op put it;
* a SYNC separates two ops (the next op's loads wait for every store), and the dependency
  tokens one op leaves unconsumed (its last free-slot tokens) are taken by the next op's
  first instructions, so each op starts in the steady state it was scheduled for;
* a layer may be a chain of ops compiled as one (``compiler.compile_conv_chain`` /
  ``compile_gemm_chain``, chosen by the executor): its STOREs ``to_sp`` address scratchpad
  lines and stay as they are (the SYNC before the layer keeps every earlier LOAD away from
  those lines), only its last op's DRAM STOREs are moved and routed.

The host writes the graph's inputs into the ops that read them once and reads the kept
outputs (and, for the report, every other output from where a consumer read it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hdl import isa
from hdl.isa import Opcode

from ..compiler import ALIGN, Layer
from ..compiler import leftover_tokens as _leftover
from ..compiler import take_tokens as _take_tokens

__all__ = ["Placement", "link_graph", "read_placed", "split_by_layer", "link_slices"]


@dataclass
class Placement:
    """Where a conv layer's padded, batch-stacked NHWC input lives in its own image."""
    addr: int           # byte address of the buffer (0 in the layer's own image)
    hs: int             # stacked rows per image (padded height rounded up to the stride)
    hp: int             # padded rows per image
    wp: int             # padded width
    top: int            # pad above
    left: int           # pad on the left
    channels: int       # bytes per pixel (2 x the tensor's channels when repeated)
    repeat: bool        # the tensor is stored twice per pixel (weight zero-point split)
    batch: int

    def pixel(self, n, y, x):
        """Byte offset of image ``n``'s pixel (y, x) of the unpadded tensor."""
        return self.addr + ((n * self.hs + self.top + y) * self.wp + self.left + x) * \
            self.channels


def _words(program):
    """A layer's instructions, decoded."""
    return [isa.decode(w) for w in program]


def _to_dram(i) -> bool:
    """Whether decoded instruction ``i`` addresses DRAM (a STORE ``to_sp`` addresses
    scratchpad lines: a chained pair's intermediate, which these linkers leave where it
    is)."""
    return "dram_addr" in i and not (i["op"] == Opcode.STORE and i["to_sp"])


def _out_store(i, layer) -> bool:
    """Whether decoded instruction ``i`` is one of ``layer``'s output STOREs: a DRAM STORE
    into its output buffer.  Other DRAM STOREs (a K-split GEMM's raw partial sums, which
    a later pass of the same layer LOAD_ACCs back) are the layer's own scratch and are only
    relocated, like its LOADs."""
    if i["op"] != Opcode.STORE or not _to_dram(i):
        return False
    size = int(np.prod(layer.out_shape)) * (1 if layer.out_dtype == "int8" else 4)
    return layer.out_addr <= i["dram_addr"] < layer.out_addr + size


def _encode(d):
    return isa.encode(d["op"], **{k: v for k, v in d.items() if k != "op"})


def _control(op) -> dict:
    """A SYNC or HALT without tokens."""
    return {"op": op, "pop_prev": 0, "pop_next": 0, "push_prev": 0, "push_next": 0}


def _place_images(image: bytearray, layers) -> list:
    """Append each layer's data (its image below the program) to ``image``, aligned;
    returns each layer's offset."""
    offsets = []
    for layer in layers:
        off = -(-len(image) // ALIGN) * ALIGN
        image.extend(bytes(off - len(image)))
        offsets.append(off)
        image.extend(layer.dram[:layer.program_addr])
    return offsets


def _join(program: list, ins: list, k: int, prev_left):
    """Append layer ``k``'s instructions ``ins`` to ``program``; after the first layer a
    SYNC separates them and the tokens the previous layer left are taken up
    (:func:`_take_tokens`).  Returns the tokens this layer leaves."""
    left = _leftover(ins)
    if k:
        program.append(_control(Opcode.SYNC))
        carry = _take_tokens(ins, *prev_left)
        left = (left[0] + carry[0], left[1] + carry[1])
    program.extend(ins)
    return left


def _seal(image: bytearray, program: list):
    """Close ``program`` with a HALT and append it to ``image``, aligned, followed by one
    spare aligned block; returns the encoded words and the program's address."""
    program.append(_control(Opcode.HALT))
    words = [_encode(i) for i in program]
    paddr = -(-len(image) // ALIGN) * ALIGN
    image.extend(bytes(paddr - len(image)))
    image.extend(isa.program_bytes(words))
    image.extend(bytes(ALIGN))
    return words, paddr


def _runs(i, layer, out_geom, dst: Placement):
    """A STORE ``i`` of ``layer`` cut into runs of one image row that land in ``dst``:
    ``(first row, rows, byte offset in dst's image)``; rows a stacked batch discards (they
    straddle two images) are left out."""
    ho, wo, per_image, hs_s = out_geom        # output rows/cols per image, stacked pitch
    m0 = (i["dram_addr"] - layer.out_addr) // layer.meta["N"]
    runs, m = [], m0
    while m < m0 + i["nrows"]:
        yy, xx = divmod(m, wo)
        n, y = divmod(yy, hs_s)
        run = min(wo - xx, m0 + i["nrows"] - m)
        if y < ho and n < dst.batch:
            runs.append((m - m0, run, dst.pixel(n, y, xx)))
        m += run
    return runs


def _redirect_stores(ins, layer, out_geom, dsts, keep_base=None):
    """Send this layer's STOREs (addresses relative to its own image) to every buffer of
    ``dsts`` (``[(Placement, base of its image)]``), split at image rows (see module doc);
    with ``keep_base`` they also still land in the layer's own output, moved by it.  The
    tokens of each STORE go to the first (pop) and last (push) of its pieces."""
    N = layer.meta["N"]
    out = []
    for i in ins:
        if not _out_store(i, layer):
            out.append(i)
            continue
        n0 = (i["dram_addr"] - layer.out_addr) % N
        stores = [] if keep_base is None else \
            [(0, i["nrows"], i["dram_addr"] + keep_base, i["dram_stride"])]
        for dst, base in dsts:
            copies = [0, N] if dst.repeat else [0]
            stores += [(r0, run, base + addr + c + n0, dst.channels)
                       for r0, run, addr in _runs(i, layer, out_geom, dst) for c in copies]
        if not stores:          # a block of straddling rows only: still pass the tokens
            stores = [(0, 1, 0, dsts[0][0].channels)]     # into the image's scratch bytes
        for k, (r0, run, addr, stride) in enumerate(stores):
            out.append(dict(i, acc_addr=i["acc_addr"] + r0, nrows=run,
                            dram_addr=addr, dram_stride=stride,
                            pop_prev=i["pop_prev"] if k == 0 else 0,
                            push_prev=i["push_prev"] if k == len(stores) - 1 else 0))
    return out


def link_graph(cfg, layers, routes, out_geoms, keep, name="graph") -> Layer:
    """One program and image for ``layers`` (compiled NPU ops of a weight-stationary core,
    in a topological order): each op's output is stored into every buffer its consumers
    in the program read (and into its own output buffer when the host needs it).

    Parameters
    ----------
    layers : list of Layer
    routes : list of list of (int, Placement)
        For each layer, ``(j, place)`` per consumer input: layer ``j`` (after it) reads
        this output from ``place`` in ``j``'s own image.
    out_geoms : list of (ho, wo, per_image, stacked_rows_per_image) or None
        Each layer's output geometry (rows of a stacked batch); None when it has no route.
    keep : list of bool
        The layer's output also stays where it stores it in its own image (graph outputs,
        tensors the host reads).

    Returns
    -------
    Layer
        Whose ``meta["offsets"]`` are the layers' image offsets, ``meta["starts"]`` the
        program index of each layer's first instruction and ``out_addr`` the last layer's
        output (kept).
    """
    if cfg.dataflow != "ws":
        raise ValueError("whole-graph programs are for weight-stationary cores")
    for k, r in enumerate(routes):
        if any(j <= k for j, _ in r) or not (r or keep[k]):
            raise ValueError(f"{layers[k].name}: its output goes to no later layer and is "
                             f"not kept")
    # scratch bytes at address 0 for the stores of blocks made only of straddling rows
    image = bytearray(-(-(max(l.meta["N"] for l in layers) + cfg.cols) // ALIGN) * ALIGN)
    offsets = _place_images(image, layers)
    program, starts = [], []
    prev_left = (0, 0)
    for k, layer in enumerate(layers):
        ins = [i for i in _words(layer.program) if i["op"] != Opcode.HALT]
        for i in ins:
            if _to_dram(i) and not _out_store(i, layer):
                i["dram_addr"] += offsets[k]
        if routes[k]:
            ins = _redirect_stores(ins, layer, out_geoms[k],
                                   [(p, offsets[j]) for j, p in routes[k]],
                                   offsets[k] if keep[k] else None)
        else:
            for i in ins:
                if _out_store(i, layer):
                    i["dram_addr"] += offsets[k]
        starts.append(len(program) + (1 if k else 0))
        prev_left = _join(program, ins, k, prev_left)
    words, paddr = _seal(image, program)
    last = layers[-1]
    return Layer(cfg, name, words, image, paddr, offsets[-1] + last.out_addr, last.out_shape,
                 last.out_dtype, last.expected, sum(l.macs for l in layers),
                 {"offsets": offsets, "M": last.meta["M"], "K": last.meta["K"],
                  "N": last.meta["N"], "layers": [l.name for l in layers], "starts": starts})


def link_slices(cfg, layers, widths, name="concat") -> Layer:
    """One program for ``layers`` (GEMMs of either dataflow -- both store row-major output
    blocks --, each with a dense int8 output of ``widths[k]`` columns) whose outputs land
    side by side, as column slices of one buffer of
    ``sum(widths)`` columns: each layer's STOREs are moved to its slice (stride the total
    width); a SYNC and the token carry of :func:`link_graph` separate the layers."""
    total = sum(widths)
    rows = layers[0].out_shape[0]
    image, program, prev_left = bytearray(), [], (0, 0)
    offsets = _place_images(image, layers)
    out_addr = -(-len(image) // ALIGN) * ALIGN
    image.extend(bytes(out_addr + rows * total - len(image)))
    col = 0
    for k, (layer, width) in enumerate(zip(layers, widths)):
        if layer.out_shape != (rows, width) or layer.out_dtype != "int8":
            raise ValueError(f"{layer.name}: output {layer.out_shape} {layer.out_dtype} is "
                             f"not ({rows}, {width}) int8")
        ins = [i for i in _words(layer.program) if i["op"] != Opcode.HALT]
        for i in ins:
            if i["op"] == Opcode.STORE and not _to_dram(i):
                raise ValueError(f"{layer.name}: a slice storing to the scratchpad (STORE "
                                 f"to_sp) cannot be moved to its slice")
            if _out_store(i, layer):
                m0, n0 = divmod(i["dram_addr"] - layer.out_addr, width)
                i["dram_addr"], i["dram_stride"] = out_addr + m0 * total + col + n0, total
            elif "dram_addr" in i:
                i["dram_addr"] += offsets[k]
        prev_left = _join(program, ins, k, prev_left)
        col += width
    words, paddr = _seal(image, program)
    expected = np.concatenate([layer.expected for layer in layers], axis=1)
    return Layer(cfg, name, words, image, paddr, out_addr, (rows, total), "int8", expected,
                 sum(l.macs for l in layers),
                 {"offsets": offsets, "M": rows, "K": max(l.meta["K"] for l in layers),
                  "N": total, "layers": [l.name for l in layers]})


def split_by_layer(cfg, seg: Layer) -> list[dict]:
    """Each layer's share of a linked program's run, from the cycle model (which equals the
    RTL on every counter) with its handshake trace: the run is cut where the fetch unit
    dispatches each layer's first instruction (the SYNC before it holds that until the
    previous layer is done); a layer's DRAM bytes are the bus beats read and written in its
    share of the cycles.

    Returns
    -------
    list of dict
        ``{"layer", "cycles", "dram_bytes"}`` per layer; the first entry also carries the
        whole run's counters under ``"run"``.
    """
    from ..cycle_model import AxiRamTiming, CycleNPU
    run = CycleNPU(cfg, AxiRamTiming(cfg.bus_bytes)).run(seg.program, seg.program_addr,
                                                         trace=True)
    dispatch = [cycle for cycle, unit, names in run.trace if unit == "fetch"
                for name in names if name.endswith("_q")]
    beats = [cycle for cycle, unit, names in run.trace if unit in ("reader", "writer")
             for name in names if name in ("r", "w")]
    control = (Opcode.SYNC, Opcode.HALT)
    starts = seg.meta["starts"]
    cuts = [0] + [dispatch[sum(isa.decode(w)["op"] not in control for w in seg.program[:b])]
                  for b in starts[1:]] + [run.counters["cycles"] + 1]
    out = []
    for k, name in enumerate(seg.meta["layers"]):
        t0, t1 = cuts[k], cuts[k + 1]
        out.append({"layer": name, "cycles": min(t1, run.counters["cycles"]) - t0,
                    "dram_bytes": cfg.bus_bytes * sum(t0 <= c < t1 for c in beats)})
    out[0]["run"] = run.counters
    return out


def read_placed(dram, base: int, place: Placement, shape_nchw) -> np.ndarray:
    """An int8 NCHW tensor read back from a placed (padded, stacked NHWC) buffer."""
    N, C, H, W = shape_nchw
    buf = np.frombuffer(bytes(dram), np.int8)
    out = np.empty((N, H, W, C), np.int64)
    for n in range(N):
        for y in range(H):
            a = base + place.pixel(n, y, 0)
            row = buf[a:a + W * place.channels].reshape(W, place.channels)
            out[n, y] = row[:, :C]
    return out.transpose(0, 3, 1, 2)
