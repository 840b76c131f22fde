"""Unit tests of :mod:`hdl.array` in Amaranth's simulator, and the cycle model's array timing
against it cycle by cycle."""

import numpy as np
import pytest
from amaranth.hdl import Fragment

from hdl.array import SystolicArray
from hdl.config import NPUConfig

from .amaranth_sim import run_array
from .pairings import SMALL, IDS, array_pairing, check
from .stimulus import make_beats, random_tiles, special_tiles, stimulus_seed

SEED = stimulus_seed(20261124)


ARRAYS = [(r, c, df) for (r, c) in [(1, 1), (1, 4), (4, 1), (2, 3), (3, 3)] for df in ("ws", "os")]


@pytest.mark.parametrize("rows,cols,dataflow", ARRAYS)
def test_array_random_tiles_with_pauses(rows, cols, dataflow):
    cfg = NPUConfig(rows=rows, cols=cols, dataflow=dataflow)
    rng = np.random.default_rng(SEED + rows * 100 + cols)
    beats = make_beats(cfg, random_tiles(cfg, rng, 6))
    result = run_array(cfg, beats, rng=rng, gap_probability=0.25)
    want = [{"data": [int(x) for x in b["data"]], "last": b["last"]} for b in beats.c]
    assert result["c"] == want
    assert result["idle_at_end"]


@pytest.mark.parametrize("dataflow", ["ws", "os"])
def test_array_back_to_back_and_extremes(dataflow):
    cfg = NPUConfig(rows=3, cols=4, dataflow=dataflow, acc_width=18)
    rng = np.random.default_rng(SEED)
    tiles = random_tiles(cfg, rng, 5, min_len=3, max_len=6)
    tiles += list(special_tiles(cfg, 40).values())
    beats = make_beats(cfg, tiles)
    result = run_array(cfg, beats)
    assert [b["data"] for b in result["c"]] == [[int(x) for x in b["data"]] for b in beats.c]
    # Only the first WS tile waits for its weights; nothing else stalls the a stream.
    assert result["a_stalls"] == (cfg.rows if dataflow == "ws" else 0)


@pytest.mark.parametrize("dataflow", ["ws", "os"])
def test_64x64_array_is_a_full_grid_of_pes_behind_a_skew_wavefront(dataflow):
    """The largest array the regression elaborates (the RTL regression simulates up to
    32 x 32): all 64 x 64 PEs of the configured dataflow are there, the input skew delays
    lane k by k cycles, and the de-skew lines the columns back up."""
    from hdl.pe import OutputStationaryPE, WeightStationaryPE

    cfg = NPUConfig(rows=64, cols=64, dataflow=dataflow)
    array = SystolicArray(cfg)
    m = array.elaborate(None)
    array._MustUse__used = True         # elaborated by hand, to look at its submodules
    kind = WeightStationaryPE if dataflow == "ws" else OutputStationaryPE
    pes = [m.submodules[f"pe_{r}_{c}"] for r in range(64) for c in range(64)]
    assert all(type(pe) is kind for pe in pes) and len({id(pe) for pe in pes}) == 64 * 64
    assert m.submodules.act_skew.delays == tuple(range(64))
    assert m.submodules.deskew.delays == tuple(reversed(range(64)))
    Fragment.get(m, None)    # and the whole grid elaborates


@pytest.mark.parametrize("cfg", SMALL, ids=IDS)
def test_array_timing_model_equals_systolic_array(cfg):
    check(array_pairing(cfg), ["c_valid", "c_last", "a_ready", "b_ready", "idle"])
