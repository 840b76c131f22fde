"""The core's control components (:mod:`hdl.control`) against their cycle models and specs."""

from .pairings import (check, counters_pairing, deadlock_pairing, error_latch_pairing,
                       read_arbiter_pairing)


def test_read_arbiter_model_equals_rtl():
    check(read_arbiter_pairing(), ["pick_load", "load_ready", "fetch_ready", "fetch_rsp",
                                    "load_rsp"])


def test_error_latch_model_equals_rtl():
    check(error_latch_pairing(), ["error", "err_pc"])


def test_deadlock_detector_model_equals_rtl():
    check(deadlock_pairing(), ["deadlock"])


def test_perf_counters_count_events_while_busy():
    check(counters_pairing(), ["a", "b"])
