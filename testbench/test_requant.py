"""The Requantizer HDL against golden.requantize, bit for bit, in Amaranth's simulator."""

import numpy as np
from amaranth.sim import Simulator

from hdl.requant import LATENCY, Requantizer
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
    dut = Requantizer(lanes)
    got = []

    async def bench(ctx):
        ctx.set(dut.en, 1)
        for m_, s_, zp, (lo, hi), b_ in cases:
            for i in range(lanes):
                ctx.set(dut.bias[i], int(b_[i]))
                ctx.set(dut.multiplier[i], int(m_[i]))
                ctx.set(dut.shift[i], int(s_[i]))
            ctx.set(dut.zero_point, zp)
            ctx.set(dut.clamp_min, lo)
            ctx.set(dut.clamp_max, hi)
            outs = []
            for t in range(len(accs) + LATENCY):
                if t < len(accs):
                    for i in range(lanes):
                        ctx.set(dut.acc[i], int(accs[t, i]))
                await ctx.tick()
                if t >= LATENCY - 1 and len(outs) < len(accs):
                    outs.append([ctx.get(dut.out[i]) for i in range(lanes)])
            got.append(np.array(outs))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    for (m_, s_, zp, clamp, b_), out in zip(cases, got):
        want = golden.requantize(accs, m_, s_, zero_point=zp, clamp=clamp, bias=b_)
        assert np.array_equal(out, want), np.argwhere(out != want)[:5]
