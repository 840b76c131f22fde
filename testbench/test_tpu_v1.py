"""The TPU v1 check (scripts/tpu_v1.py): the roofline is the paper's, and the analytical
model configured like the chip lands where the roofline says for the weight-bound
applications, bracketing the 34 GB/s weight memory with its 22.4 and 44.8 GB/s buses."""

import pytest

from scripts import tpu_v1


def test_roofline_is_the_papers():
    assert tpu_v1.PEAK_TOPS == pytest.approx(92, rel=0.01)
    assert tpu_v1.RIDGE == pytest.approx(1350, rel=0.01)
    assert tpu_v1.roofline_tops(200) == pytest.approx(13.6)
    assert tpu_v1.roofline_tops(2888) == tpu_v1.PEAK_TOPS


def test_model_brackets_the_roofline_where_weights_bound_it():
    rows = {r["app"]: r for r in tpu_v1.evaluate()}
    for app in ("MLP0", "MLP1", "LSTM0", "LSTM1"):
        r = rows[app]
        # The model's own bus roofline: 2 x MAC/B x bus bandwidth, never beaten.
        assert r["model_tops_512b"] <= 2 * r["ops_per_weight_byte"] * 44.8e9 / 1e12
        assert r["model_tops_256b"] < r["roofline_tops"] < r["model_tops_512b"], app
        assert r["model_macs_per_weight_byte"] == pytest.approx(r["ops_per_weight_byte"], rel=0.01)
    for app in ("CNN0", "CNN1"):
        assert rows[app]["model_tops_512b"] < tpu_v1.PEAK_TOPS
    # The paper's measured TOPS never beat its roofline.
    assert all(r["measured_tops"] <= r["roofline_tops"] for r in rows.values())
