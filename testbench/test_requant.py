"""The Requantizer HDL against golden.requantize, bit for bit, in Amaranth's simulator."""

import os

import numpy as np
from amaranth.sim import Simulator

from hdl.requant import ADD_WIDTH, LATENCY, Requantizer
from sim_models import golden

from .stimulus import stimulus_seed

SEED = stimulus_seed(7)


def test_requantizer_matches_golden_on_random_and_edge_values():
    lanes = 4
    rng = np.random.default_rng(SEED)
    edge = [0, 1, -1, golden.INT32_MAX, golden.INT32_MIN, 1 << 30, -(1 << 30), 12345, -12345]
    accs = np.concatenate([rng.integers(golden.INT32_MIN, golden.INT32_MAX, 400, endpoint=True),
                           rng.integers(-100000, 100000, 400), np.repeat(edge, 8)])
    accs = accs[: len(accs) // lanes * lanes].reshape(-1, lanes)
    # Per-lane scales from tiny to > 1 (positive shift), plus the INT32_MIN corner.
    params = [golden.quantize_multiplier(s) for s in (3.1e-6, 0.0123, 0.75, 5.5)]
    mult = np.array([p[0] for p in params])
    shift = np.array([p[1] for p in params])
    bias = np.array([0, 1000, -(1 << 31), (1 << 31) - 1])  # the last two make the sum wrap
    cases = [(mult, shift, 3, (-128, 127), bias), (mult, shift, -7, (-7, 127), -bias - 1),
             (np.array([golden.INT32_MIN] * lanes), np.array([0, 0, -1, 2]), 0, (-50, 60),
              np.zeros(lanes, int))]
    got = _drive(lanes, accs, [(m_, s_, zp, clamp, b_, 0) for m_, s_, zp, clamp, b_ in cases])
    for (m_, s_, zp, clamp, b_), out in zip(cases, got):
        want = golden.requantize(accs, m_, s_, zero_point=zp, clamp=clamp, bias=b_)
        assert np.array_equal(out, want), np.argwhere(out != want)[:5]


def _drive(lanes, accs, cases, gap_seed=None):
    """Stream ``accs`` through a requantizer once per case ``(multiplier, shift, zero point,
    clamp, bias, mode[, inner multiplier, bias, shift])`` (per-lane arrays); the outputs of
    each case, in order.  With ``gap_seed``, 0-3 idle cycles (``en`` low, a random ``acc``
    that must be ignored) before each row; each row is read ``LATENCY`` cycles after it
    went in."""
    dut = Requantizer(lanes)
    rng = np.random.default_rng(gap_seed)
    gaps = (np.zeros(len(accs), int) if gap_seed is None
            else rng.integers(0, 4, len(accs)) * (rng.random(len(accs)) < 0.4))
    schedule = [row for t in range(len(accs)) for row in [None] * gaps[t] + [t]]
    got = []

    async def bench(ctx):
        for m_, s_, zp, (lo, hi), b_, mode, *inner in cases:
            for port, value in zip((dut.inner_multiplier, dut.inner_bias, dut.inner_shift),
                                   inner[0] if inner else (0, 0, 0)):
                ctx.set(port, value)
            for i in range(lanes):
                ctx.set(dut.bias[i], int(b_[i]))
                ctx.set(dut.multiplier[i], int(m_[i]))
                ctx.set(dut.shift[i], int(s_[i]))
            for port, value in ((dut.zero_point, zp), (dut.clamp_min, lo), (dut.clamp_max, hi),
                                (dut.mode, mode)):
                ctx.set(port, value)
            outs = []
            for t in range(len(schedule) + LATENCY):
                row = schedule[t] if t < len(schedule) else None
                ctx.set(dut.en, row is not None)
                for i in range(lanes):
                    ctx.set(dut.acc[i], int(accs[row, i]) if row is not None
                            else int(rng.integers(-(1 << 31), 1 << 31)))
                await ctx.tick()
                entered = t - (LATENCY - 1)
                if 0 <= entered < len(schedule) and schedule[entered] is not None:
                    outs.append([ctx.get(dut.out[i]) for i in range(lanes)])
            got.append(np.array(outs))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return got


def test_rows_with_gaps_in_every_mode():
    """Rows with idle cycles between them (as the store unit sends them when the out FIFO is
    full or the compute unit has the accumulator): each comes out ``LATENCY`` cycles after
    it went in, in every mode, equal to the golden model; what ``acc`` holds while ``en`` is
    low changes nothing (the stages and the modes' paths load only for a valid row)."""
    lanes = 4
    rng = np.random.default_rng(SEED + 13)
    accs = rng.integers(golden.INT32_MIN, golden.INT32_MAX, (120, lanes), endpoint=True)
    mult, shift = golden.quantize_multiplier(0.0123)
    bias = rng.integers(-1000, 1000, lanes)
    scales = np.array([0.0123, 0.5, 3e-6, 1.7], np.float32)
    scale_bits = golden.wrap(golden.float32_bits(scales), 32)
    inner = (int(rng.integers(0, 1 << 32)), int(rng.integers(-(1 << 31), 1 << 31)),
             int(rng.integers(0, 256)))
    add_mult, add_shift = rng.integers(0, 1 << 32, lanes), rng.integers(-128, 128, lanes)
    cases = [(np.full(lanes, mult), np.full(lanes, shift), 3, (-128, 127), bias, 0),
             (scale_bits, np.zeros(lanes, int), -5, (-100, 90), bias, 1),
             (add_mult, add_shift, 7, (-128, 127), bias, 2, inner)]
    wants = [golden.requantize(accs, mult, shift, zero_point=3, bias=bias),
             golden.requantize_ort(accs, scales, -5, (-100, 90), bias),
             golden.requantize_add(accs, add_mult, add_shift, inner, 7, (-128, 127), bias)]
    for mode, (out, want) in enumerate(zip(_drive(lanes, accs, cases, gap_seed=SEED), wants)):
        assert np.array_equal(out, want), (mode, np.argwhere(out != want)[:5])


def _run_ort_mode(lanes, accs, scales, cases):
    """The onnxruntime mode: per-lane float32 scales, given to the multipliers as bits."""
    bits = golden.wrap(golden.float32_bits(scales), 32)
    return _drive(lanes, accs, [(bits, np.zeros(lanes, int), zp, clamp, b_, 1)
                                for zp, clamp, b_ in cases])


def test_requantizer_onnxruntime_mode_matches_golden():
    """The float32 emulation in integer logic against numpy's float32: random sums of every
    magnitude (rounding of the int -> float conversion above 2**24), exact halves (ties to
    even), scales from 2**-30 to 8, clamps, and wrap-around bias."""
    lanes = 4
    rng = np.random.default_rng(SEED)
    scales = np.array([2.0 ** -30 * 1.7, 0.0123, 0.5, 7.93], np.float32)
    halves = np.array([[2 * k + 1, -(2 * k + 1), 2 * k, 4 * k + 2] for k in range(40)])
    accs = np.concatenate([
        rng.integers(golden.INT32_MIN, golden.INT32_MAX, (300, lanes), endpoint=True),
        rng.integers(-3000, 3000, (300, lanes)),
        (rng.integers(-(1 << 10), 1 << 10, (200, lanes)) << rng.integers(0, 21, (200, lanes))),
        np.repeat([[0, 1, -1, golden.INT32_MIN], [golden.INT32_MAX, (1 << 24) + 1,
                                                  -(1 << 25) - 3, 16777217]], 4, axis=0)])
    bias = np.array([0, 7, -(1 << 31), (1 << 31) - 1])
    cases = [(0, (-128, 127), np.zeros(lanes, int)), (-5, (-5, 127), bias),
             (17, (-100, 90), -bias - 1)]
    got = _run_ort_mode(lanes, accs, scales, cases)
    for (zp, clamp, b_), out in zip(cases, got):
        want = golden.requantize_ort(accs, scales, zp, clamp, b_)
        assert np.array_equal(out, want), (np.argwhere(out != want)[:5], zp)
    # Exact halves after scaling by 0.5: ties go to the even integer in both directions.
    got = _run_ort_mode(lanes, halves, np.full(lanes, 0.5, np.float32),
                        [(0, (-128, 127), np.zeros(lanes, int))])[0]
    assert np.array_equal(got, golden.requantize_ort(halves, np.float32(0.5)))
    assert got[0, 0] == 0 and got[1, 0] == 2 and got[1, 1] == -2     # 0.5 -> 0, 1.5 -> 2


def test_golden_onnxruntime_mode_equals_onnxruntime_qlinearmatmul():
    """The golden formula against onnxruntime itself: a QLinearMatMul (int8) with random
    data and scales, run by a default CPU InferenceSession."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    rng = np.random.default_rng(SEED)
    M, K, N = 256, 300, 48
    a = rng.integers(-128, 128, (M, K), dtype=np.int8)
    b = rng.integers(-128, 128, (K, N), dtype=np.int8)
    a_s, b_s, y_s = np.float32(0.0173), np.float32(0.0041), np.float32(0.18)
    y_zp = np.int8(-9)
    inits = [helper.make_tensor("a_s", TensorProto.FLOAT, [], [a_s]),
             helper.make_tensor("a_zp", TensorProto.INT8, [], [0]),
             helper.make_tensor("b", TensorProto.INT8, [K, N], b.flatten().tolist()),
             helper.make_tensor("b_s", TensorProto.FLOAT, [], [b_s]),
             helper.make_tensor("b_zp", TensorProto.INT8, [], [0]),
             helper.make_tensor("y_s", TensorProto.FLOAT, [], [y_s]),
             helper.make_tensor("y_zp", TensorProto.INT8, [], [int(y_zp)])]
    node = helper.make_node("QLinearMatMul", ["a", "a_s", "a_zp", "b", "b_s", "b_zp",
                                              "y_s", "y_zp"], ["y"])
    graph = helper.make_graph([node], "g",
                              [helper.make_tensor_value_info("a", TensorProto.INT8, [M, K])],
                              [helper.make_tensor_value_info("y", TensorProto.INT8, [M, N])],
                              inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    want = session.run(None, {"a": a})[0]
    scale = np.float32(a_s * b_s / y_s)            # onnxruntime's order, in float32
    acc = golden.gemm(a, b)
    got = golden.requantize_ort(acc, scale, int(y_zp))
    assert np.array_equal(got, want), f"{np.count_nonzero(got != want)} of {got.size} differ"
    # The data tells the modes apart: TFLite's double rounding differs on some outputs.
    tflite = golden.requantize(acc, *golden.quantize_multiplier(float(scale)), int(y_zp))
    assert np.count_nonzero(tflite != want) > 0


def test_requantizer_onnxruntime_mode_on_any_scale_bits():
    """Bits no compiler sends but a CONFIG may hold (a lane left with a TFLite multiplier
    when another CONFIG switches every lane to the onnxruntime mode): negative, infinite,
    NaN, huge and subnormal scales give the golden model's answer (sign ignored, overflow
    saturating)."""
    lanes = 4
    rng = np.random.default_rng(SEED + 1)
    accs = np.concatenate([rng.integers(golden.INT32_MIN, golden.INT32_MAX, (60, lanes),
                                        endpoint=True), rng.integers(-300, 300, (60, lanes)),
                           np.zeros((2, lanes), int)])
    for words in ([0x7F800000, 0x7FC00000, 0xFF800000, 0x80000000],
                  [0x00000001, 0x753B7A0A, 0xBF800000, 0xC2F6E979],
                  [0x7F7FFFFF, 0x00800000, 0x4F000000, 0xB8D1B717]):
        scales = np.array(words, np.uint32).view(np.float32)
        got = _run_ort_mode(lanes, accs, scales, [(3, (-128, 127), np.zeros(lanes, int))])[0]
        want = golden.requantize_ort(accs, scales, 3)
        assert np.array_equal(got, want), (np.argwhere(got != want)[:5], [hex(w) for w in words])


def _add_grids():
    """Grids for the add mode: QLinearAdds with random ResNet-like scales and zero points
    (int8 and uint8), then boundary grids: the widest shifts ``add_grid`` accepts within
    ADD_WIDTH, a zero fixed term, and ties at every rounding (power-of-two ratios)."""
    from sim_models.compiler_ops import add_grid
    rng = np.random.default_rng(SEED + 9)
    grids = []
    for unsigned in (False, True):
        sh = 128 if unsigned else 0
        while len(grids) < 2 + 2 * unsigned:
            sa, sb, sc = (np.float32(10 ** rng.uniform(-2.5, -0.5)) for _ in range(3))
            za, zb, zc = (int(rng.integers(-30, 30)) + sh for _ in range(3))
            g = add_grid(sa, za, sb, zb, sc, zc, unsigned, width=ADD_WIDTH)
            if g is not None:
                grids.append((g, unsigned))
    ties = add_grid(np.float32(0.5), 0, np.float32(0.25), 0, np.float32(1.0), 0)  # mf = 0
    assert ties is not None and ties.mf == 0
    widest = golden.AddGrid(ma=(1 << 24) - 1, sa=ADD_WIDTH - 33, mb=(1 << 24) - 1,
                            sb=ADD_WIDTH - 33, mf=-((1 << 24) - 1), sf=ADD_WIDTH - 34,
                            k=ADD_WIDTH - 10)
    halves = golden.AddGrid(ma=1 << 23, sa=0, mb=3 << 22, sb=0, mf=1 << 22, sf=0, k=24)
    return grids + [(ties, False), (widest, False), (halves, True)]


def _add_pairs(every: bool):
    """Stored (a, b) pairs: all 65536, or (the default, seconds) every pair with an extreme
    or zero operand plus 512 random ones."""
    v = np.arange(-128, 128)
    a, b = (x.ravel() for x in np.meshgrid(v, v))
    if every:
        return a, b
    edge = np.isin(a, (-128, 0, 127)) | np.isin(b, (-128, 0, 127))
    pick = np.flatnonzero(edge | np.isin(np.arange(a.size), np.random.default_rng(
        SEED + 11).choice(a.size, 512, replace=False)))
    pick = pick[: pick.size // 8 * 8]
    return a[pick], b[pick]


def test_requantizer_add_mode_matches_qlinear_add_grid():
    """The add mode (RTL) on stored (a, b) pairs packed as ``b - 256*a`` -- all 65536 with
    ``KNPU_ADD_ALL_PAIRS=1`` (``make requant-add``, minutes), else the extreme/zero rows and
    columns and random pairs -- for ResNet-like and boundary grids, int8 and uint8 (held as
    int8, zero point -128): equal to ``golden.qlinear_add_grid`` on the tensors' values and
    to ``golden.requantize_add``."""
    lanes = 8
    a, b = _add_pairs(os.environ.get("KNPU_ADD_ALL_PAIRS") == "1")
    accs = golden.pack_add(a, b).reshape(-1, lanes)
    cases, wants = [], []
    for g, unsigned in _add_grids():
        zp, (lo, hi) = (-128, (0, 255)) if unsigned else (0, (-128, 127))
        assert max(256 * ((g.ma << g.sa) + (g.mb << g.sb)) + (abs(g.mf) << g.sf),
                   1 << g.k).bit_length() <= ADD_WIDTH + 1
        mult = np.full(lanes, g.ma | g.sa << 24)
        cases.append((mult, np.full(lanes, g.k), zp, (-128, 127), np.zeros(lanes, int), 2,
                      (g.mb | g.sb << 24, g.mf, g.sf)))
        want = golden.qlinear_add_grid(a - zp, b - zp, g, lo, hi) + zp
        assert np.array_equal(want, golden.requantize_add(
            golden.pack_add(a, b), mult[0], g.k, cases[-1][-1], zp))
        wants.append(want.reshape(-1, lanes))
    for (g, _), out, want in zip(_add_grids(), _drive(lanes, accs, cases), wants):
        assert np.array_equal(out, want), (g, np.argwhere(out != want)[:5])


def test_requantizer_add_mode_on_any_register_bits():
    """Values no compiler sends (random accumulators, constants and shifts up to 63, bias,
    any zero point): every sum wraps as ``golden.requantize_add`` defines."""
    lanes = 4
    rng = np.random.default_rng(SEED + 10)
    accs = rng.integers(golden.INT32_MIN, golden.INT32_MAX, (400, lanes), endpoint=True)
    cases = []
    for _ in range(4):
        cases.append((rng.integers(0, 1 << 32, lanes), rng.integers(-128, 128, lanes),
                      int(rng.integers(-128, 128)), (-100, 90),
                      rng.integers(golden.INT32_MIN, golden.INT32_MAX, lanes), 2,
                      (int(rng.integers(0, 1 << 32)), int(rng.integers(-(1 << 31), 1 << 31)),
                       int(rng.integers(0, 256)))))
    for case, out in zip(cases, _drive(lanes, accs, cases)):
        mult, shift, zp, clamp, bias, _, inner = case
        want = golden.requantize_add(accs, mult, shift, inner, zp, clamp, bias)
        assert np.array_equal(out, want), np.argwhere(out != want)[:5]


def test_requantizer_tflite_mode_on_shifts_beyond_tflite():
    """Shifts no TFLite scale has but a lane may hold (the add mode's ``k`` left in a lane
    when a CONFIG switches to TFLite): the golden model reads them as the RTL does."""
    lanes = 4
    rng = np.random.default_rng(SEED + 12)
    accs = rng.integers(-3000, 3000, (80, lanes))
    mult = np.array([26349970, 1 << 30, 145807677, golden.INT32_MAX])
    for shift in ([50, 35, -64, -100], [46, 32, 63, -128]):
        got = _drive(lanes, accs, [(mult, np.array(shift), 5, (-128, 127),
                                    np.zeros(lanes, int), 0)])[0]
        want = golden.requantize(accs, mult, np.array(shift), zero_point=5)
        assert np.array_equal(got, want), (shift, np.argwhere(got != want)[:5])
