"""Max pooling on the NPU (``sim_models.compiler_ops``): the COMPUTE ``acc_max`` datapath in
the functional model against the golden model, the RTL (Verilator harness) against the
functional model's memory and the cycle model's counters, and the refusals."""

from __future__ import annotations

import numpy as np
import pytest

from hdl import isa
from hdl.config import NPUConfig
from hdl.isa import Opcode
from sim_models import golden
from sim_models.compiler import LayerError
from sim_models.compiler_ops import add_grid, compile_add, compile_maxpool

WS = NPUConfig(rows=4, cols=4, dataflow="ws", bus_bits=128, sp_lines=1024, acc_lines=128)
CASES = [  # (H, W, C), kernel, stride, dilation
    ((8, 8, 6), (2, 2), 2, (1, 1)),
    ((9, 7, 11), (3, 3), 2, (1, 1)),
    ((10, 10, 5), (2, 3), 1, (2, 1)),
    ((40, 36, 9), (3, 3), 2, (1, 1)),       # several M-blocks (acc_lines 128)
]


def test_max_accumulate_keeps_the_larger_signed_value():
    acc = np.array([-5, 7, -2**31, 2**31 - 1])
    res = np.array([-6, 8, 0, -1])
    assert golden.max_accumulate(acc, res).tolist() == [-5, 8, 0, 2**31 - 1]


def test_golden_max_pool_against_direct_windows():
    rng = np.random.default_rng(3)
    x = rng.integers(-128, 128, (7, 9, 3))
    y = golden.max_pool_nhwc(x, (2, 3), (2, 1), (2, 1))
    for oy in range(y.shape[0]):
        for ox in range(y.shape[1]):
            win = x[oy * 2:oy * 2 + 3:2, ox:ox + 3]
            assert np.array_equal(y[oy, ox], win.reshape(-1, 3).max(axis=0))


@pytest.mark.parametrize("cfg", [WS, NPUConfig(rows=8, cols=4, sp_lines=1024, acc_lines=128),
                                 NPUConfig(rows=3, cols=5, sp_lines=256, acc_lines=32)],
                         ids=["4x4", "8x4", "3x5-small-memories"])
@pytest.mark.parametrize("shape,kernel,stride,dilation", CASES)
def test_maxpool_functional_equals_golden(cfg, shape, kernel, stride, dilation):
    rng = np.random.default_rng(sum(shape))
    x = rng.integers(-128, 128, shape)
    x[0, :, 0] = -128                     # the int8 minimum: ties with the padding value
    layer = compile_maxpool(cfg, x, kernel, stride, dilation)
    result, out = layer.run_functional()
    assert result.done and result.error == 0
    assert np.array_equal(out, golden.max_pool_nhwc(x, kernel, (stride, stride), dilation))
    assert np.array_equal(out, layer.expected)
    computes = [isa.decode(w) for w in layer.program if isa.decode(w)["op"] == Opcode.COMPUTE]
    assert any(c["acc_max"] for c in computes)
    assert all(c["acc_max"] == c["accumulate"] for c in computes)


def test_acc_max_changes_the_result():
    """The same program with its ``acc_max`` bits cleared sums the taps instead."""
    x = np.random.default_rng(5).integers(-20, 20, (4, 4, 4))
    layer = compile_maxpool(WS, x, (2, 2), 2)
    summed = []
    for w in layer.program:
        d = isa.decode(w)
        if d["op"] == Opcode.COMPUTE:
            d["acc_max"] = 0
        summed.append(isa.encode(d.pop("op"), **d))
    layer.program = summed
    _, out = layer.run_functional()
    assert not np.array_equal(out, layer.expected)
    sums = sum(x[ky::2, kx::2] for ky in range(2) for kx in range(2))
    assert np.array_equal(out, np.clip(sums, -128, 127))


def test_maxpool_refusals():
    x = np.zeros((4, 4, 2), np.int64)
    with pytest.raises(LayerError, match="pool7: max pooling runs on weight-stationary"):
        compile_maxpool(WS.replace(dataflow="os"), x, (2, 2), 2, name="pool7")
    with pytest.raises(LayerError, match="larger than the padded input"):
        compile_maxpool(WS, x, (5, 2), 1)
    with pytest.raises(LayerError, match="must be >= 1"):
        compile_maxpool(WS, x, (2, 2), 0)
    with pytest.raises(LayerError, match="uint8"):
        compile_maxpool(WS, x.astype(np.uint8), (2, 2), 2)


@pytest.mark.rtl
def test_maxpool_on_verilator_equals_models():
    """The RTL's acc_max write path: memory equal to the functional model's, every counter
    equal to the cycle model's (the shared 4x4 WS harness build)."""
    from testbench import run
    x = np.random.default_rng(1).integers(-128, 128, (9, 9, 6))
    layer = compile_maxpool(WS, x, (3, 3), 2)
    rtl = run(WS, layer.dram, layer.program_addr, program=layer.program, backend="verilator")
    model = run(WS, layer.dram, layer.program_addr, program=layer.program, backend="model")
    assert rtl.done and np.array_equal(layer.output(rtl.dram), layer.expected)
    assert rtl.dram == model.dram
    assert rtl.counters == model.counters


def test_round_significant_is_float32_rounding():
    rng = np.random.default_rng(8)
    s = np.concatenate([rng.integers(-(1 << 52), 1 << 52, 4000),
                        rng.integers(-(1 << 26), 1 << 26, 4000), [0, 1, -1, (1 << 24) + 1,
                                                                   (1 << 25) + 2, (1 << 25) + 6]])
    ours = golden.round_significant(s)
    assert np.array_equal(ours.astype(np.float64), s.astype(np.float64).astype(np.float32))


@pytest.mark.parametrize("unsigned", [False, True])
def test_add_grid_reproduces_qlinear_add_on_every_pair(unsigned):
    """QLinearAdd's two float32 FMAs as fixed-point integer logic (the datapath an NPU add
    mode would implement): for random scales and zero points a grid within 48 bits exists
    and equals the host kernel (itself checked against onnxruntime) on all 65536 pairs."""
    from sim_models.onnx_frontend.host_ops import qlinear_add
    rng = np.random.default_rng(9 + unsigned)
    v = np.arange(-128, 128)
    a, b = (x.ravel() for x in np.meshgrid(v, v))
    sh = 128 if unsigned else 0
    for _ in range(4):
        sa, sb, sc = (np.float32(10 ** rng.uniform(-3, 0)) for _ in range(3))
        za, zb, zc = (int(rng.integers(-128, 128)) for _ in range(3))
        g = add_grid(sa, za + sh, sb, zb + sh, sc, zc + sh, unsigned, width=48)
        assert g is not None
        lo, hi = (0, 255) if unsigned else (-128, 127)
        ours = golden.qlinear_add_grid(a + sh, b + sh, g, lo, hi) - sh
        assert np.array_equal(ours, qlinear_add(a, sa, za, b, sb, zb, sc, zc, unsigned))
    with_grid = add_grid(np.float32(0.02), 3, np.float32(0.03), -5, np.float32(0.05), 1)
    assert with_grid is not None and add_grid(np.float32(0.02), 3, np.float32(0.03), -5,
                                              np.float32(0.05), 1, width=20) is None


def _random_add(rng, unsigned, shape):
    """A QLinearAdd with random scales and zero points (int8-held values), its grid and
    random stored inputs; zero points given in the int8-held domain, as host_ops takes them."""
    from hdl.requant import ADD_WIDTH
    sh = 128 if unsigned else 0
    while True:
        scales = tuple(np.float32(10 ** rng.uniform(-2.5, -0.5)) for _ in range(3))
        zps = tuple(int(rng.integers(-40, 40)) for _ in range(3))
        (sa, sb, sc), (za, zb, zc) = scales, zps
        g = add_grid(sa, za + sh, sb, zb + sh, sc, zc + sh, unsigned, width=ADD_WIDTH)
        if g is not None:
            break
    a, b = (rng.integers(-128, 128, shape) for _ in range(2))
    return a, b, g, (sa, za, sb, zb, sc, zc)


@pytest.mark.parametrize("unsigned", [False, True])
@pytest.mark.parametrize("shape", [(5, 7, 6), (9, 9, 9), (3, 1)])        # (9, 9, 9): 2 blocks
def test_compiled_add_functional_equals_host_qlinear_add(unsigned, shape):
    """compile_add on the functional model against host_ops.qlinear_add (onnxruntime's
    kernel), int8 and uint8 (held as int8): several pixel blocks and channel tiles."""
    from sim_models.onnx_frontend.host_ops import qlinear_add
    rng = np.random.default_rng(20 + unsigned + len(shape))
    a, b, g, (sa, za, sb, zb, sc, zc) = _random_add(rng, unsigned, shape)
    layer = compile_add(WS, a.astype(np.int8), b.astype(np.int8), g, unsigned)
    result, out = layer.run_functional()
    want = qlinear_add(a, sa, za, b, sb, zb, sc, zc, unsigned)
    assert result.done and np.array_equal(out, want) and np.array_equal(layer.expected, want)


def test_add_refusals():
    a = np.zeros((4, 4), np.int8)
    g = add_grid(np.float32(0.02), 3, np.float32(0.03), -5, np.float32(0.05), 1)
    with pytest.raises(LayerError, match="res_add: the add runs on weight-stationary"):
        compile_add(NPUConfig(rows=4, cols=4, dataflow="os"), a, a, g, name="res_add")
    with pytest.raises(LayerError, match="shapes"):
        compile_add(WS, a, a[:2], g)
    with pytest.raises(LayerError, match="does not fit"):
        compile_add(WS, a, a, golden.AddGrid(1 << 24, 0, 1, 0, 0, 0, 0))
    with pytest.raises(LayerError, match="uint8"):
        compile_add(WS, a.astype(np.uint8), a, g)


@pytest.mark.rtl
def test_add_on_verilator_equals_models():
    """The RTL's add mode in the core (CONFIG add_inner, mode 2): memory equal to the
    functional model's, every counter equal to the cycle model's (shared 4x4 WS build)."""
    from testbench import run
    rng = np.random.default_rng(31)
    for unsigned in (False, True):
        a, b, g, _ = _random_add(rng, unsigned, (6, 5, 7))
        layer = compile_add(WS, a.astype(np.int8), b.astype(np.int8), g, unsigned)
        rtl = run(WS, layer.dram, layer.program_addr, program=layer.program,
                  backend="verilator")
        model = run(WS, layer.dram, layer.program_addr, program=layer.program, backend="model")
        assert rtl.done and np.array_equal(layer.output(rtl.dram), layer.expected)
        assert rtl.dram == model.dram
        assert rtl.counters == model.counters
