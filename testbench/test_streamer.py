"""The cycle model's line streamer against :class:`hdl.streamer.LineStreamer`, cycle by cycle."""

from .pairings import check, streamer_pairing


def test_line_streamer_model_equals_rtl():
    check(streamer_pairing(), ["port_addr", "last", "done", "done_push"])
