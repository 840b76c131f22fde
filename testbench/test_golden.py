"""The golden model against independent references: float math and hand-worked cases."""

import numpy as np
import pytest

from sim_models import golden
from testbench.stimulus import stimulus_seed

SEED = stimulus_seed(1234)


def test_wrap_is_twos_complement():
    assert golden.wrap([2**31, -2**31 - 1, 5, -5], 32).tolist() == [-2**31, 2**31 - 1, 5, -5]
    assert golden.wrap([1 << 17, (1 << 17) - 1], 18).tolist() == [-(1 << 17), (1 << 17) - 1]


def test_gemm_matches_python_integers_and_wraps():
    rng = np.random.default_rng(SEED)
    a = rng.integers(-128, 128, (7, 13))
    b = rng.integers(-128, 128, (13, 5))
    want = [[sum(int(a[i, k]) * int(b[k, j]) for k in range(13)) for j in range(5)]
            for i in range(7)]
    assert golden.gemm(a, b).tolist() == want
    # -128 * -128 * 131072 = 2**31: the first sum that does not fit int32 wraps to INT32_MIN.
    k = 131072
    out = golden.gemm(np.full((1, k), -128), np.full((k, 1), -128))
    assert out[0, 0] == -2**31


@pytest.mark.parametrize("rows,cols", [(1, 1), (4, 4), (3, 7), (8, 2)])
def test_tiled_gemm_equals_plain_gemm(rows, cols):
    rng = np.random.default_rng(SEED + rows * 10 + cols)
    a = rng.integers(-128, 128, (37, 53))
    b = rng.integers(-128, 128, (53, 29))
    assert np.array_equal(golden.gemm_tiled(a, b, rows, cols), golden.gemm(a, b))
    # With a narrow accumulator the tile-wise wrap still agrees (modular arithmetic).
    assert np.array_equal(golden.gemm_tiled(a, b, rows, cols, acc_bits=18),
                          golden.gemm(a, b, acc_bits=18))


def test_tiles_cover_the_matrix_exactly_once():
    covered = np.zeros((53, 29), int)
    for t in golden.tiles(53, 29, 8, 8):
        covered[t.k0:t.k0 + t.k, t.n0:t.n0 + t.n] += 1
    assert (covered == 1).all()


@pytest.mark.parametrize("bad,match", [
    (np.zeros((2, 3), float), "integers"), (np.full((2, 3), 128), "outside int8"),
    (np.zeros(3, int), "2-D"),
])
def test_gemm_rejects_bad_operands(bad, match):
    with pytest.raises(ValueError, match=match):
        golden.gemm(bad, np.zeros((3, 2), int))
    with pytest.raises(ValueError, match="inner dimensions"):
        golden.gemm(np.zeros((2, 3), int), np.zeros((4, 2), int))


def test_srdhm_hand_worked():
    # 2 * 2**30 * 2**30 / 2**31 = 2**29 exactly.
    assert golden.saturating_rounding_doubling_high_mul(1 << 30, 1 << 30) == 1 << 29
    # Only INT32_MIN * INT32_MIN saturates.
    assert golden.saturating_rounding_doubling_high_mul(-2**31, -2**31) == 2**31 - 1
    # x * 0.5: gemmlowp's nudge (2**30, or 1 - 2**30 for negative products) rounds positive
    # ties up and negative ties toward zero: 1.5 -> 2, -1.5 -> -1, 2.5 -> 3, -2.5 -> -2.
    half = 1 << 30
    assert golden.saturating_rounding_doubling_high_mul([3, -3, 5, -5], half).tolist() == \
        [2, -1, 3, -2]


def test_rounding_divide_by_pot_hand_worked():
    x = [5, -5, 6, -6, 7, -7, 4, -4]
    # /4: 1.25->1, -1.25->-1, 1.5->2, -1.5->-2, 1.75->2, -1.75->-2, 1, -1
    assert golden.rounding_divide_by_pot(x, 2).tolist() == [1, -1, 2, -2, 2, -2, 1, -1]
    assert golden.rounding_divide_by_pot(x, 0).tolist() == x


def test_quantize_multiplier_round_trips_the_scale():
    for real in [0.5, 0.25, 0.0123, 1.0, 3.7, 1e-5]:
        q, shift = golden.quantize_multiplier(real)
        assert (1 << 30) <= q < (1 << 31)
        assert abs(q * 2.0 ** (shift - 31) - real) <= real * 2 ** -30
    with pytest.raises(ValueError, match="positive"):
        golden.quantize_multiplier(0.0)


def test_requantize_matches_float_within_one_lsb():
    rng = np.random.default_rng(SEED)
    acc = rng.integers(-200000, 200000, (64, 16))
    for real in [0.0007, 0.0123, 0.2, 0.9, 2.5]:
        q, shift = golden.quantize_multiplier(real)
        out = golden.requantize(acc, q, shift, zero_point=-3)
        ref = np.clip(np.round(acc * real) - 3, -128, 127)
        assert np.abs(out.astype(int) - ref).max() <= 1


def test_requantize_per_channel_bias_and_activations():
    acc = np.array([[100, -100, 1000, -1000]])
    bias = np.array([10, 10, -10, -10])
    scales = [0.5, 0.25, 0.01, 0.1]
    mult, shift = zip(*(golden.quantize_multiplier(s) for s in scales))
    # (110*0.5, -90*0.25, 990*0.01, -1010*0.1) = (55, -22.5, 9.9, -101) -> 55, -23, 10, -101
    out = golden.requantize(acc, np.array(mult), np.array(shift), bias=bias)
    assert out.tolist() == [[55, -23, 10, -101]]
    relu = golden.requantize(acc, np.array(mult), np.array(shift), bias=bias,
                             clamp=golden.activation_range("relu", 0))
    assert relu.tolist() == [[55, 0, 10, 0]]
    lo, hi = golden.activation_range("relu6", zero_point=5, scale=0.5)
    assert (lo, hi) == (5, 17)
    relu6 = golden.requantize(acc, np.array(mult), np.array(shift), zero_point=5,
                              bias=bias, clamp=(lo, hi))
    assert relu6.tolist() == [[17, 5, 15, 5]]
    with pytest.raises(ValueError, match="activation 'gelu'"):
        golden.activation_range("gelu", 0)


def test_fma32_rounds_once_exactly():
    """``golden.fma32``: one rounding of the exact ``x*r + c``.  Against float64 where the
    exact value fits a double; and on a case where any 64-bit intermediate would round
    twice: 97 * (172961 * 2**-24) = 1 + 2**-24 is a float32 tie, and c = 2**-80 breaks it
    upwards (an 80-bit long double drops c and rounds the tie to even, 1.0)."""
    rng = np.random.default_rng(7)
    for _ in range(3000):
        x = int(rng.integers(-255, 256))
        r = np.float32(rng.uniform(0.001, 4))
        c = np.float32(rng.uniform(-300, 300) * 2.0 ** -int(rng.integers(0, 12)))
        m, e = golden.fma32(x, r, c)
        assert m * 2.0 ** e == np.float32(x * np.float64(r) + np.float64(c))
    m, e = golden.fma32(97, np.float32(172961 * 2.0 ** -24), np.float32(2.0 ** -80))
    assert m * 2.0 ** e == 1 + 2.0 ** -23


def test_qlinear_add_ties_to_even():
    y = golden.qlinear_add(np.array([1, 3, 5, -1, -3, 400]), np.float32(0.5), 0,
                           np.zeros(6, int), np.float32(0.5), 0, np.float32(1.0), 0)
    assert y.tolist() == [0, 2, 2, 0, -2, 127]
