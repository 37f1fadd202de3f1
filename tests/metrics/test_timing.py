from __future__ import annotations

import time

import pytest

from benchmark.timing import summarize, synchronize, timed


def test_timed_returns_result_and_seconds():
    result, seconds = timed(lambda x, y=0: (time.sleep(0.02), x + y)[1], 2, y=3, device="cpu")
    assert result == 5
    assert 0.015 < seconds < 1.0
    synchronize(None)


def test_summarize_discards_warm_up():
    s = summarize([10.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    assert s["n"] == 5 and s["median"] == 3.0 and s["q1"] == 2.0 and s["q3"] == 4.0
    assert s["max"] == 5.0  # the slow first call is gone
    assert summarize([10.0, 1.0], discard_first=False)["n"] == 2
    assert summarize([7.0])["median"] == 7.0  # a single value is kept
    with pytest.raises(ValueError, match="no timings"):
        summarize([])
