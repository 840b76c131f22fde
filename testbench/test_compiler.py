"""The compiler and the functional model (pure Python, no simulator)."""

from pathlib import Path

import numpy as np
import pytest

from hdl import isa
from hdl.config import NPUConfig
from hdl.isa import ErrorCode, Opcode
from sim_models.compiler import (W_LOAD_TILES, Requant, compile_conv2d, compile_gemm,
                                 conv2d_reference, im2col, weight_loads)
from sim_models.isa_sim import FunctionalNPU

from .stimulus import stimulus_seed

SEED = stimulus_seed(99)
REPO = Path(__file__).resolve().parent.parent
CONFIGS = [NPUConfig(rows=4, cols=4, dataflow="ws", sp_lines=512, acc_lines=64),
           NPUConfig(rows=3, cols=5, dataflow="ws", sp_lines=256, acc_lines=32),
           NPUConfig(rows=4, cols=4, dataflow="os", sp_lines=512, acc_lines=64),
           NPUConfig(rows=2, cols=6, dataflow="os", sp_lines=64, acc_lines=16)]
IDS = [f"{c.dataflow}-{c.rows}x{c.cols}-sp{c.sp_lines}" for c in CONFIGS]


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
@pytest.mark.parametrize("shape", [(1, 1, 1), (37, 53, 29), (5, 70, 3), (64, 8, 17)])
def test_gemm_programs_compute_the_golden_result(cfg, shape):
    rng = np.random.default_rng(SEED + sum(shape))
    M, K, N = shape
    a, b = rng.integers(-128, 128, (M, K)), rng.integers(-128, 128, (K, N))
    for requant in (None, Requant(scale=rng.uniform(1e-4, 1e-2, N), zero_point=4,
                                  activation="relu", bias=rng.integers(-999, 999, N))):
        layer = compile_gemm(cfg, a, b, requant)
        result, out = layer.run_functional()
        assert result.done and result.error == ErrorCode.NONE
        assert np.array_equal(out, layer.expected)
    layer = compile_gemm(cfg, a, b, acc_bias=rng.integers(-(1 << 31), 1 << 31, N))
    result, out = layer.run_functional()
    assert np.array_equal(out, layer.expected)


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
@pytest.mark.parametrize("kernel,stride,padding,depthwise", [
    (3, 1, 1, False), (3, 2, 1, False), (1, 1, 0, False), (3, 1, 1, True), (5, 2, 2, True),
    (2, 1, 0, False)])
def test_conv_programs_compute_the_golden_result(cfg, kernel, stride, padding, depthwise):
    rng = np.random.default_rng(SEED + kernel * 7 + stride)
    x = rng.integers(-128, 128, (7, 8, 6))
    w = rng.integers(-128, 128, (kernel, kernel, 6) if depthwise else (kernel, kernel, 6, 5))
    layer = compile_conv2d(cfg, x, w, stride, padding, depthwise,
                           requant=Requant(scale=0.003, zero_point=-9, activation="relu6"))
    result, out = layer.run_functional()
    assert result.done and np.array_equal(out, layer.expected)


def test_im2col_gemm_equals_direct_convolution():
    rng = np.random.default_rng(SEED)
    x, w = rng.integers(-128, 128, (6, 5, 3)), rng.integers(-128, 128, (3, 3, 3, 4))
    cols, (ho, wo) = im2col(x, 3, 3, 2, 1)
    assert np.array_equal((cols @ w.reshape(-1, 4)).reshape(ho, wo, 4),
                          conv2d_reference(x, w, 2, 1))


@pytest.mark.parametrize("call,match", [
    (lambda c: compile_gemm(c, np.zeros((2, 3), int), np.zeros((4, 2), int)), "inner dim"),
    (lambda c: compile_gemm(c, np.zeros((2, 3)), np.zeros((3, 2), int)), "integers"),
    (lambda c: compile_gemm(c, np.full((2, 3), 200), np.zeros((3, 2), int)), "outside int8"),
    (lambda c: compile_gemm(c, np.zeros((0, 3), int), np.zeros((3, 2), int)), "empty"),
    (lambda c: compile_gemm(c, np.zeros((2, 3), int), np.zeros((3, 2), int),
                            Requant(scale=0.1, bias=np.zeros(3, int))), "bias has shape"),
    (lambda c: compile_gemm(c, np.zeros((2, 3), int), np.zeros((3, 2), int),
                            Requant(scale=[0.1, 0.2], activation="relu6")), "relu6"),
    (lambda c: compile_gemm(c, np.zeros((2, 3), int), np.zeros((3, 2), int),
                            Requant(scale=0.0)), "positive"),
    (lambda c: compile_gemm(c, np.zeros((2, 3), int), np.zeros((3, 2), int),
                            Requant(bias=np.zeros(2, int))), "needs a scale"),
    (lambda c: compile_gemm(c, np.zeros((2, 3), int), np.zeros((3, 2), int),
                            Requant(scale=0.1, rounding="onnxruntime")), "np.float32"),
    (lambda c: compile_gemm(c, np.zeros((2, 3), int), np.zeros((3, 2), int),
                            Requant(scale=np.float32(2.0 ** -120), rounding="onnxruntime")),
     "out of range"),
    (lambda c: compile_gemm(c, np.zeros((2, 3), int), np.zeros((3, 2), int),
                            Requant(scale=0.1, rounding="banker")), "rounding"),
    (lambda c: compile_gemm(c, np.zeros((2, 3), int), np.zeros((3, 2), int),
                            Requant(scale=0.1, clamp=(5, -5))), "clamp"),
    (lambda c: compile_gemm(c, np.zeros((2, 3), int), np.zeros((3, 2), int),
                            Requant(scale=0.1, bias=np.zeros(2))), "integers"),
    (lambda c: compile_conv2d(c, np.zeros((4, 4, 3), int), np.zeros((3, 3, 2, 1), int)),
     "input channels"),
    (lambda c: compile_conv2d(c, np.zeros((4, 4, 3), int), np.zeros((3, 3, 3, 1), int),
                              stride=0), "stride"),
    (lambda c: compile_conv2d(c, np.zeros((2, 2, 3), int), np.zeros((5, 5, 3, 1), int)),
     "larger than the padded input"),
])
def test_bad_layers_are_refused_before_anything_runs(call, match):
    with pytest.raises(ValueError, match=match):
        call(CONFIGS[0])


def test_functional_model_faults():
    cfg = CONFIGS[0]
    dram = bytearray(4096)
    npu = FunctionalNPU(cfg, dram)
    assert npu.run([0xF]).error == ErrorCode.ILLEGAL_OPCODE
    load = isa.encode(Opcode.LOAD, sp_addr=0, nrows=1, ncols=4, dram_addr=4094, dram_stride=0)
    assert npu.run([load]).error == ErrorCode.DMA_RANGE
    assert npu.run([isa.encode(Opcode.COMPUTE, nrows=1)]).error == ErrorCode.BAD_OPERAND
    pre = isa.encode(Opcode.PRELOAD, nrows=1)
    assert npu.run([pre, pre, pre]).error == ErrorCode.BAD_OPERAND  # two banks only


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_onnxruntime_rounding_runs_on_the_core_model(cfg):
    """Per-channel float32 scales, a zero point, a fused clamp and a bias in the onnxruntime
    mode: the functional model (which decodes the CONFIG words) gives the golden formula's
    output; on exact halves the two modes round differently, as they must."""
    from sim_models import golden

    rng = np.random.default_rng(SEED)
    a, b = rng.integers(-128, 128, (40, 37)), rng.integers(-128, 128, (37, 11))
    scale = rng.uniform(1e-3, 6e-3, 11).astype(np.float32)
    bias = rng.integers(-4000, 4000, 11)
    layer = compile_gemm(cfg, a, b, Requant(scale=scale, zero_point=-7, clamp=(-7, 120),
                                            bias=bias, rounding="onnxruntime"))
    result, out = layer.run_functional()
    want = golden.requantize_ort(golden.gemm(a, b), scale, -7, (-7, 120), bias)
    assert result.done and np.array_equal(out, want) and np.array_equal(layer.expected, want)
    # Exact halves: onnxruntime rounds them to even; TFLite's SRDHM (gemmlowp) rounds up.
    halves = np.array([[1], [3], [5], [-1], [-3]])
    for rounding, scale, expected in (("onnxruntime", np.float32(0.5), [0, 2, 2, 0, -2]),
                                      ("tflite", 0.5, [1, 2, 3, 0, -1])):
        layer = compile_gemm(cfg, halves, np.ones((1, 1), int),
                             Requant(scale=scale, rounding=rounding))
        result, out = layer.run_functional()
        assert result.done and out[:, 0].tolist() == expected, rounding


def _loaded_bytes(layer, lo, hi):
    """Bytes the layer's LOADs read from DRAM addresses in [lo, hi)."""
    total = 0
    for word in layer.program:
        i = isa.decode(word)
        if i["op"] == Opcode.LOAD and lo <= i["dram_addr"] < hi:
            total += i["nrows"] * i["ncols"]
    return total


def test_conv_k_tiles_pack_taps_of_a_window_row():
    from sim_models.compiler import conv_k_tiles
    tiles = conv_k_tiles(16, 7, 7, 3)            # ResNet-50's first conv on 16 rows
    assert [kt for _, kt in tiles] == [16, 5] * 7
    covered = [k for k0, kt in tiles for k in range(k0, k0 + kt)]
    assert covered == list(range(7 * 7 * 3))    # every K index once, in order
    for k0, kt in tiles:                         # no tile spans two window rows
        assert k0 // 21 == (k0 + kt - 1) // 21
    assert len(conv_k_tiles(4, 3, 3, 5)) == 3 * 4   # 15 values a row: 4 + 4 + 4 + 3


@pytest.mark.parametrize("rows", [4, 8, 16])
@pytest.mark.parametrize("cin,kernel,stride,padding,depthwise", [
    (3, 7, 2, 3, False), (2, 3, 1, 1, False), (1, 5, 1, 2, False), (5, 3, 2, 1, False),
    (3, 3, 1, 1, True), (6, 3, 2, 1, True)])
def test_packed_taps_conv_is_bit_exact(rows, cin, kernel, stride, padding, depthwise):
    from sim_models.compiler import conv_k_tiles
    cfg = NPUConfig(rows=rows, cols=4, dataflow="ws", sp_lines=1024, acc_lines=64)
    rng = np.random.default_rng(SEED + rows + cin * kernel)
    x = rng.integers(-128, 128, (11, 10, cin))
    w = rng.integers(-128, 128, (kernel, kernel, cin) if depthwise else
                     (kernel, kernel, cin, 5))
    layer = compile_conv2d(cfg, x, w, stride, padding, depthwise,
                           requant=Requant(scale=0.002, activation="relu"))
    result, out = layer.run_functional()
    assert result.done and result.error == ErrorCode.NONE
    assert np.array_equal(out, layer.expected)
    preloads = sum(isa.decode(wd)["op"] == Opcode.PRELOAD for wd in layer.program)
    if not depthwise:   # every N-tile of every M-block walks the packed tiles once
        blocks = -(-layer.meta["M"] // layer.meta["Mb"]) * -(-5 // cfg.cols)
        assert preloads == blocks * len(conv_k_tiles(rows, kernel, kernel, cin))


def test_weights_are_loaded_once_per_layer_when_they_fit():
    """Several M-blocks: resident weights are read from DRAM once (not once per block) and
    resident A chunks once per block; the result stays bit-exact.  Without room for the
    weights, they are re-read per block."""
    rng = np.random.default_rng(SEED)
    M, K, N = 300, 40, 12
    a, b = rng.integers(-128, 128, (M, K)), rng.integers(-128, 128, (K, N))
    for sp_lines, resident in ((1024, True), (128, False)):
        cfg = NPUConfig(rows=4, cols=4, dataflow="ws", sp_lines=sp_lines, acc_lines=64)
        layer = compile_gemm(cfg, a, b, Requant(scale=0.001))
        result, out = layer.run_functional()
        assert result.done and np.array_equal(out, layer.expected)
        assert layer.meta["w_resident"] is resident
        blocks = -(-M // layer.meta["Mb"])
        assert blocks > 1
        a_addr = 0                               # the image holds A, then B
        b_addr = (M * K + 63) // 64 * 64
        assert _loaded_bytes(layer, b_addr, b_addr + K * N) == K * N * (1 if resident else blocks)
        assert _loaded_bytes(layer, a_addr, a_addr + M * K) == M * K * \
            (1 if layer.meta["a_resident"] else -(-N // cfg.cols))


def test_resident_weight_tiles_come_in_few_large_loads():
    """Issue 11: resident weights of an N-tile are LOADed W_LOAD_TILES consecutive K-tiles at
    a time (one LOAD, not one per tile), once per layer, so a tile costs fewer than three
    instructions (LOAD, PRELOAD, COMPUTE); the result stays bit-exact."""
    rng = np.random.default_rng(SEED)
    M, K, N = 40, 96, 8                          # 4x4: 24 K-tiles, 2 N-tiles
    a, b = rng.integers(-128, 128, (M, K)), rng.integers(-128, 128, (K, N))
    cfg = NPUConfig(rows=4, cols=4, dataflow="ws", sp_lines=1024, acc_lines=32)
    layer = compile_gemm(cfg, a, b, Requant(scale=0.001))
    _exact(layer)
    assert layer.meta["w_resident"] and -(-M // layer.meta["Mb"]) > 1
    b_addr = (M * K + 63) // 64 * 64
    w_loads = [i for i in _decoded(layer)
               if i["op"] == Opcode.LOAD and b_addr <= i["dram_addr"] < b_addr + K * N]
    k_tiles, n_tiles = K // cfg.rows, N // cfg.cols
    assert len(w_loads) == n_tiles * -(-k_tiles // W_LOAD_TILES)
    assert sum(i["nrows"] * i["ncols"] for i in w_loads) == K * N
    one_block = compile_gemm(cfg, a[:12], b, Requant(scale=0.001))
    _exact(one_block)
    assert one_block.meta["w_resident"] and one_block.meta["Mb"] == 12
    assert len(one_block.program) < 3 * k_tiles * n_tiles


def test_weight_loads_join_only_consecutive_rows():
    """A run ends at the batch or where the next tile's rows do not follow (a skipped
    all-zero block); a batch below one tile is refused."""
    tiles = [(0, 4), (4, 4), (8, 4), (16, 4), (20, 2)]
    assert weight_loads(tiles, 2) == [8, 0, 4, 6, 0]
    assert weight_loads(tiles, 1) == [4, 4, 4, 4, 2]
    assert weight_loads(tiles, 8) == [12, 0, 0, 6, 0]
    with pytest.raises(ValueError, match="at least 1 tile"):
        weight_loads(tiles, 0)


@pytest.mark.parametrize("cin,kernel,stride,padding,depthwise,acc_lines,sp_lines", [
    (8, 3, 1, 1, False, 64, 1024), (8, 3, 1, 1, False, 256, 1024),
    (4, 5, 1, 2, False, 64, 1024), (12, 3, 1, 0, False, 64, 256),
    (8, 3, 1, 1, True, 64, 1024), (6, 1, 1, 0, False, 64, 1024),
    (8, 3, 2, 1, False, 64, 1024), (8, 3, 2, 1, True, 64, 1024)])
def test_on_chip_im2col_conv_is_bit_exact(cin, kernel, stride, padding, depthwise, acc_lines,
                                          sp_lines):
    """Stride-1 convolutions with whole channel chunks build their im2col rows on chip:
    each input band is loaded once per block (a block's input rows plus KH - 1 halo rows),
    the result is bit-exact, per-channel requantization and raw int32 both.  Strided and
    1x1 kernels keep the strided im2col loads."""
    cfg = NPUConfig(rows=4, cols=4, dataflow="ws", sp_lines=sp_lines, acc_lines=acc_lines)
    rng = np.random.default_rng(SEED + cin * kernel + acc_lines + stride)
    H, W, N = 13, 11, (cin if depthwise else 6)
    x = rng.integers(-128, 128, (H, W, cin))
    w = rng.integers(-128, 128, (kernel, kernel, cin) if depthwise else
                     (kernel, kernel, cin, N))
    for requant in (None, Requant(scale=rng.uniform(1e-4, 1e-3, N), activation="relu")):
        layer = compile_conv2d(cfg, x, w, stride, padding, depthwise, requant=requant)
        result, out = layer.run_functional()
        assert result.done and result.error == ErrorCode.NONE
        assert np.array_equal(out, layer.expected)
    if kernel == 1 or stride > 1:
        assert "band_rows" not in layer.meta
        return
    ob = layer.meta["band_rows"]
    Hp, Wp = H + 2 * padding, W + 2 * padding
    Ho = Hp - kernel + 1
    x_bytes = _loaded_bytes(layer, 0, Hp * Wp * cin)
    blocks = -(-Ho // ob)
    assert x_bytes == (Ho + blocks * (kernel - 1)) * Wp * cin   # halo rows twice, no more
    assert x_bytes < Ho * (Wp - kernel + 1) * kernel * kernel * cin   # < the im2col rows


# --- schedules that keep the array busy (issue 11: ResNet-50 at 64x64) -------------------

def _decoded(layer):
    return [isa.decode(w) for w in layer.program]


def _exact(layer):
    result, out = layer.run_functional()
    assert result.error == ErrorCode.NONE and np.array_equal(out, layer.expected)


def test_resident_a_blocks_alternate_two_regions_instead_of_a_sync():
    """Resident A chunks of two M-blocks fit the scratchpad: the blocks alternate between
    two regions and no SYNC separates them; where only one fits, the SYNC stays."""
    rng = np.random.default_rng(SEED)
    a, b = rng.integers(-128, 128, (96, 24)), rng.integers(-128, 128, (24, 8))
    roomy = compile_gemm(NPUConfig(rows=4, cols=4, dataflow="ws", sp_lines=512, acc_lines=64),
                         a, b, Requant(scale=1e-3))
    tight = compile_gemm(NPUConfig(rows=4, cols=4, dataflow="ws", sp_lines=256, acc_lines=64),
                         a, b, Requant(scale=1e-3))
    for layer, regions in ((roomy, 2), (tight, 1)):
        _exact(layer)
        assert layer.meta["a_resident"] and layer.meta["Mb"] < 96
        assert layer.meta["a_regions"] == regions
        syncs = sum(i["op"] == Opcode.SYNC for i in _decoded(layer))
        assert syncs == (0 if regions == 2 else -(-96 // layer.meta["Mb"]) - 1)
    a_lines = {i["sp_addr"] for i in _decoded(roomy) if i["op"] == Opcode.LOAD and i["ncols"] == 4
               and i["nrows"] == roomy.meta["Mb"]}
    assert max(a_lines) >= 6 * roomy.meta["Mb"]       # the second block's region


def test_a_only_steps_pop_the_load_token_on_their_compute():
    """A step that loads its A chunk but not its (resident) weights: the PRELOAD does not
    wait for the LOAD's token, the COMPUTE does -- the weights preload under the A LOAD."""
    rng = np.random.default_rng(SEED)
    layer = compile_gemm(NPUConfig(rows=4, cols=4, dataflow="ws", sp_lines=512, acc_lines=64),
                         rng.integers(-128, 128, (96, 24)), rng.integers(-128, 128, (24, 8)))
    _exact(layer)
    ins = _decoded(layer)
    assert layer.meta["w_resident"]
    seen = 0
    for k, i in enumerate(ins):
        if i["op"] != Opcode.PRELOAD:
            continue
        before, compute = ins[k - 1], ins[k + 1]
        a_only = before["op"] == Opcode.LOAD and before["sp_addr"] != i["sp_addr"]
        if a_only:
            seen += 1
        assert (i["pop_prev"], compute["pop_prev"]) == ((0, 1) if a_only else (i["pop_prev"], 0))
    assert seen > 0


def test_streamed_weights_rotate_over_three_slots():
    """Weights that do not fit stay streamed, through three slots: a load step pops the
    token of the COMPUTE three load steps back (the first three pop nothing)."""
    rng = np.random.default_rng(SEED)
    cfg = NPUConfig(rows=4, cols=4, dataflow="ws", sp_lines=256, acc_lines=64)
    layer = compile_gemm(cfg, rng.integers(-128, 128, (8, 300)), rng.integers(-128, 128, (300, 16)),
                         Requant(scale=1e-3), passes=1)      # (k_passes would take three)
    _exact(layer)
    assert not layer.meta["w_resident"] and layer.meta["slots"] == 3
    w_loads = [i for i in _decoded(layer) if i["op"] == Opcode.LOAD and i["nrows"] <= 4
               and i["dram_stride"] == 16]
    assert {i["sp_addr"] for i in w_loads} == {cfg.sp_lines - 4 * s for s in (1, 2, 3)}
    ins = _decoded(layer)
    load_steps = sum(i["push_prev"] for i in ins if i["op"] == Opcode.COMPUTE)
    assert sum(i["pop_next"] for i in ins if i["op"] == Opcode.LOAD) == load_steps - 3


@pytest.mark.parametrize("cin,n,regions", [(2, 3, 3), (8, 5, 2)])
def test_on_chip_bands_rotate_over_regions_instead_of_a_sync(cin, n, regions):
    """Bands of an on-chip im2col rotate over scratchpad regions (three when a band has one
    load step, two when it has more), with no SYNC between them."""
    rng = np.random.default_rng(SEED)
    cfg = NPUConfig(rows=2 if cin == 2 else 4, cols=4, dataflow="ws", sp_lines=1024,
                    acc_lines=64)
    layer = compile_conv2d(cfg, rng.integers(-128, 128, (12, 10, cin)),
                           rng.integers(-128, 128, (3, 3, cin, n)), 1, 1,
                           requant=Requant(scale=1e-3))
    _exact(layer)
    assert layer.meta.get("on_chip_im2col") and layer.meta["band_rows"] < 12
    assert layer.meta["band_regions"] == regions
    assert not any(i["op"] == Opcode.SYNC for i in _decoded(layer))


def test_bands_with_streamed_weights_use_three_slots_and_two_regions():
    """Weights that do not fit beside the bands stream through three slots; every step is
    then a load step, so two band regions suffice (verified once on Verilator, 4x4 and 8x4
    WS, with and without AXI pauses: equal to the golden model and the cycle model; not in
    the regression for its 25 k cycles)."""
    rng = np.random.default_rng(SEED)
    cfg = NPUConfig(rows=4, cols=4, dataflow="ws", sp_lines=1024, acc_lines=128)
    layer = compile_conv2d(cfg, rng.integers(-128, 128, (8, 8, 16)),
                           rng.integers(-128, 128, (3, 3, 16, 32)), 1, 1,
                           requant=Requant(scale=3e-4))
    _exact(layer)
    m = layer.meta
    assert m["on_chip_im2col"] and not m["w_resident"] and m["band_rows"] < 8
    assert (m["slots"], m["band_regions"]) == (3, 2)
    assert not any(i["op"] == Opcode.SYNC for i in _decoded(layer))


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
@pytest.mark.parametrize("depthwise", [False, True])
def test_im2col_input_conv_is_bit_exact_with_aligned_rows(cfg, depthwise):
    """``im2col_input``: the host's im2col rows, ``im2col_row_bytes(K)`` apart (whole
    ALIGN words), loaded as a dense A; the same result as the NHWC input."""
    from sim_models.compiler import ALIGN, im2col_row_bytes

    rng = np.random.default_rng(SEED)
    x = rng.integers(-128, 128, (11, 9, 3))
    w = rng.integers(-128, 128, (7, 7, 3) if depthwise else (7, 7, 3, 5))
    layer = compile_conv2d(cfg, x, w, 2, 3, depthwise, Requant(scale=2e-3), im2col_input=True)
    _exact(layer)
    if cfg.dataflow == "ws":
        assert layer.meta["im2col_input"]
        strides = {i["dram_stride"] for i in _decoded(layer) if i["op"] == Opcode.LOAD
                   and i["dram_stride"] != (3 if depthwise else 5)}
        assert strides == {im2col_row_bytes(147)} and im2col_row_bytes(147) % ALIGN == 0


def test_im2col_input_pays_where_few_channels_leave_rows_idle():
    from sim_models.compiler import im2col_input_pays

    assert im2col_input_pays(64, 7, 7, 3)          # 3 dense tiles instead of 7
    assert im2col_input_pays(16, 3, 3, 3)          # 2 instead of 3
    assert not im2col_input_pays(16, 3, 3, 64)     # whole tiles either way
    assert not im2col_input_pays(64, 1, 1, 256)


CHAIN_CORES = [NPUConfig(rows=4, cols=4, dataflow="ws", sp_lines=512, acc_lines=32),
               NPUConfig(rows=6, cols=4, dataflow="ws", sp_lines=512, acc_lines=16)]


@pytest.mark.parametrize("cfg", CHAIN_CORES, ids=lambda c: f"{c.rows}x{c.cols}")
def test_gemm_chain_keeps_intermediates_on_chip(cfg):
    """Three GEMMs as one program: on chip (STORE to_sp, the next layer's A read where it
    lies, several M-blocks) and through DRAM give the golden result on the functional model,
    finish on the cycle model, and on chip neither writes nor re-reads the intermediates."""
    from sim_models.compiler import compile_gemm_chain
    from sim_models.cycle import CycleNPU
    rng = np.random.default_rng(SEED + 7)
    i8 = lambda *s: rng.integers(-128, 128, s)  # noqa: E731
    a, bs = i8(40, 9), [i8(9, 10), i8(10, 7), i8(7, 5)]
    rq = [Requant(scale=rng.uniform(2e-3, 8e-3, 10), zero_point=-4, activation="relu"),
          Requant(scale=0.01, zero_point=2), None]
    runs = {}
    for on_chip in (True, False):
        layer = compile_gemm_chain(cfg, a, bs, rq, on_chip=on_chip)
        assert layer.meta["on_chip"] == on_chip
        assert all(m["Mb"] < 40 for m in layer.meta["layers"])    # several M-blocks
        result, out = layer.run_functional()
        assert result.done and np.array_equal(out, layer.expected)
        stores = [isa.decode(w) for w in layer.program if w & 0xF == Opcode.STORE]
        assert any(s["to_sp"] for s in stores) == on_chip
        runs[on_chip] = CycleNPU(cfg).run(layer.program, layer.program_addr).counters
    # the intermediates are 40 x 10 and 40 x 7 bytes, each written once and read once
    saved = 2 * (40 * 10 + 40 * 7)
    assert runs[False]["dma_bytes_read"] - runs[True]["dma_bytes_read"] >= 40 * (10 + 7)
    assert runs[False]["dma_bytes_written"] - runs[True]["dma_bytes_written"] >= saved // 2


def test_gemm_chain_refuses_what_it_cannot_map():
    from sim_models.compiler import LayerError, compile_gemm_chain
    ws, os_ = CHAIN_CORES[0], NPUConfig(rows=4, cols=4, dataflow="os", sp_lines=512,
                                        acc_lines=32)
    a, b = np.ones((8, 4), np.int64), np.ones((4, 4), np.int64)
    with pytest.raises(LayerError, match="weight-stationary"):
        compile_gemm_chain(os_, a, [b, b], [Requant(scale=0.01), None])
    with pytest.raises(LayerError, match="int8 requant"):
        compile_gemm_chain(ws, a, [b, b], [None, None])
    with pytest.raises(LayerError, match="B1"):
        compile_gemm_chain(ws, a, [b, np.ones((5, 4), np.int64)], [Requant(scale=0.01), None])
    wide = NPUConfig(rows=4, cols=8, dataflow="ws", sp_lines=512, acc_lines=32)
    with pytest.raises(LayerError, match="do not fit on chip"):
        compile_gemm_chain(wide, a, [b, b], [Requant(scale=0.01), None], on_chip=True)
    layer = compile_gemm_chain(wide, a, [b, b], [Requant(scale=0.01), None])
    assert not layer.meta["on_chip"]      # cols > rows: an N-tile is not a K-tile


@pytest.mark.parametrize("cfg", CHAIN_CORES, ids=lambda c: f"{c.rows}x{c.cols}")
@pytest.mark.parametrize("kind", ["band", "depthwise_s2", "packed_taps"])
def test_conv_chain_keeps_the_first_output_on_chip(cfg, kind):
    """A convolution (on-chip im2col, strided depthwise, packed taps) and the 1x1 conv after
    it: on chip and through DRAM equal the golden model; on chip the intermediate is
    neither written nor read back."""
    from sim_models.compiler import compile_conv_chain
    from sim_models.cycle import CycleNPU
    rng = np.random.default_rng(SEED + 11)
    i8 = lambda *s: rng.integers(-128, 128, s)  # noqa: E731
    args = {"band": (i8(8, 8, 8), i8(3, 3, 8, 6), i8(6, 9), 1, 1, False),
            "depthwise_s2": (i8(9, 9, 5), i8(3, 3, 5), i8(5, 7), 2, 1, True),
            "packed_taps": (i8(6, 6, 3), i8(3, 3, 3, 5), i8(5, 4), 1, 1, False)}[kind]
    x, w, w2, stride, pad, dw = args
    rq = (Requant(scale=0.004, zero_point=-5, activation="relu"), Requant(scale=0.01))
    runs = {}
    for on_chip in (True, False):
        layer = compile_conv_chain(cfg, x, w, w2, stride, pad, dw, rq, on_chip=on_chip)
        result, out = layer.run_functional()
        assert result.done and np.array_equal(out, layer.expected)
        runs[on_chip] = CycleNPU(cfg).run(layer.program, layer.program_addr).counters
    mid = layer.meta["M"] * w2.shape[0]          # the intermediate's bytes
    assert runs[False]["dma_bytes_read"] - runs[True]["dma_bytes_read"] >= mid
    assert runs[False]["dma_bytes_written"] - runs[True]["dma_bytes_written"] >= mid


def test_streamed_weight_blocks_are_even_and_leave_room_for_weight_batches():
    """Issue 11: with streamed weights, 61 rows in blocks of 15 would leave a block of one
    row; the plan keeps the five blocks but makes them 13 rows each, whose spare lines
    hold weight batches (fewer, larger weight LOADs); bit-exact, fewer bytes read."""
    rng = np.random.default_rng(SEED)
    M, K, N = 61, 64, 32
    a, b = rng.integers(-128, 128, (M, K)), rng.integers(-128, 128, (K, N))
    cfg = NPUConfig(rows=4, cols=4, dataflow="ws", sp_lines=256, acc_lines=256)
    layer = compile_gemm(cfg, a, b, Requant(scale=0.001))
    _exact(layer)
    assert not layer.meta["w_resident"] and layer.meta["a_resident"]
    assert layer.meta["Mb"] == 13                   # ceil(61 / ceil(61 / 15))
    b_addr = (M * K + 63) // 64 * 64
    w_loads = [i for i in _decoded(layer)
               if i["op"] == Opcode.LOAD and b_addr <= i["dram_addr"] < b_addr + K * N]
    assert max(i["nrows"] for i in w_loads) > cfg.rows
    assert len(w_loads) < 5 * (K // cfg.rows) * (N // cfg.cols)
