"""The windows a drift check compares: timezone-aware, in order, written as UTC with a Z."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from ml.drift_windows import DriftInputError, TimeWindow, iso_utc

END = datetime(2024, 3, 8, 21, 0, tzinfo=UTC)


def test_a_window_without_timezone_is_refused():
    with pytest.raises(DriftInputError, match="window start needs a timezone"):
        TimeWindow(datetime(2024, 3, 1), END)


def test_a_window_that_ends_before_it_starts_is_refused_naming_both_ends():
    with pytest.raises(DriftInputError, match=(
        r"window ends \(2024-03-07T21:00:00.000Z\) before it starts \(2024-03-08T21:00:00.000Z\)"
    )):
        TimeWindow(END, END - timedelta(days=1))


def test_a_pair_of_moments_is_a_window():
    window = TimeWindow.of((END - timedelta(days=1), END))

    assert window == TimeWindow(END - timedelta(days=1), END)
    assert TimeWindow.of(window) is window


def test_moments_are_written_in_utc_with_milliseconds_and_a_z():
    new_york = timezone(timedelta(hours=-5))

    assert iso_utc(datetime(2024, 3, 8, 16, 0, 0, 123456, tzinfo=new_york)) == (
        "2024-03-08T21:00:00.123Z"
    )
