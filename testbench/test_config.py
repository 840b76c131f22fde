"""The configuration object rejects every bad field with a message naming it."""

import pytest

from hdl.config import MAX_ARRAY_DIM, ConfigError, NPUConfig


def test_defaults_are_8x8_ws_int8_int32():
    cfg = NPUConfig()
    assert (cfg.rows, cfg.cols, cfg.dataflow, cfg.input_width, cfg.acc_width) == \
        (8, 8, "ws", 8, 32)
    assert cfg.name == "knpu_array_ws_8x8"


@pytest.mark.parametrize("field,value,words", [
    ("rows", 0, "rows=0"), ("cols", -3, "cols=-3"), ("rows", MAX_ARRAY_DIM + 1, "rows="),
    ("cols", 2.5, "cols must be an integer"), ("rows", True, "rows must be an integer"),
    ("dataflow", "is", "dataflow='is'"), ("acc_width", 15, "narrower than the product"),
    ("acc_width", 65, "acc_width=65"), ("input_width", 1, "input_width=1"),
])
def test_bad_fields_raise_naming_the_field(field, value, words):
    with pytest.raises(ConfigError, match=words.replace("(", r"\(")):
        NPUConfig(**{field: value})


def test_frozen_and_json_round_trip():
    cfg = NPUConfig(rows=4, cols=8, dataflow="os", acc_width=20)
    with pytest.raises(Exception):
        cfg.rows = 3
    assert NPUConfig.from_json(cfg.to_json()) == cfg
    assert cfg.name == "knpu_array_os_4x8_i8a20"
    with pytest.raises(ConfigError, match="unknown configuration field"):
        NPUConfig.from_json('{"rows": 2, "colz": 3}')
