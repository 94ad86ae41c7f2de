"""The market reference: the calendar seed is the library's, sessions follow each calendar."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.markets import (
    CALENDAR_DAYS_SEED,
    calendar_days_from_library,
    read_calendar_days,
    read_symbol_reference,
    regular_session_since,
    session_type,
)
from flows.config import load_settings


def test_the_calendar_seed_is_what_the_installed_library_says():
    seeded = read_calendar_days()
    years = sorted({day.year for _, day in seeded})
    library = {(d.calendar, d.session_date): d for d in
               calendar_days_from_library(years[0], years[-1])}
    assert seeded == library, (
        f"{CALENDAR_DAYS_SEED.name} is out of date with exchange_calendars: run `make calendar`"
    )
    # The holidays and half days the sessions depend on, including an ad-hoc closure.
    assert seeded[("XNYS", datetime(2024, 7, 4).date())].day_kind == "holiday"
    assert seeded[("XNYS", datetime(2025, 1, 9).date())].day_kind == "holiday"
    half_day = seeded[("XNYS", datetime(2024, 7, 3).date())]
    assert (half_day.day_kind, half_day.regular_close_minute) == ("early_close", 780)


def test_every_configured_symbol_has_a_reference_row():
    reference = read_symbol_reference()
    assert set(load_settings().symbols) <= set(reference)
    classes = {entry.asset_class for entry in reference.values()}
    assert classes == {"us_equity", "crypto", "forex"}


@pytest.mark.parametrize(("calendar", "utc", "expected"), [
    ("XNYS", "2024-07-04T15:00", "closed"),        # Independence Day
    ("XNYS", "2024-07-03T16:59", "regular"),       # half day: 12:59 EDT
    ("XNYS", "2024-07-03T17:00", "after_hours"),   # 13:00 EDT
    ("XNYS", "2024-07-03T21:00", "closed"),        # 17:00 EDT
    ("XNYS", "2024-03-08T14:30", "regular"),       # 09:30 EST
    ("XNYS", "2024-03-08T09:00", "pre_market"),
    ("24/7", "2024-07-04T15:00", "regular"),
    ("FX", "2024-03-10T20:59", "closed"),          # Sunday 16:59 EDT
    ("FX", "2024-03-10T21:00", "regular"),         # Sunday 17:00 EDT
    ("FX", "2024-03-08T22:00", "closed"),          # Friday 17:00 EST
    ("FX", "2024-07-04T15:00", "regular"),
])
def test_sessions_follow_the_calendar(calendar, utc, expected):
    instant = datetime.fromisoformat(utc).replace(tzinfo=UTC)
    assert session_type(calendar, instant) == expected


def test_a_feed_is_expected_only_once_the_regular_session_has_run_for_the_whole_window():
    open_ = datetime(2024, 3, 8, 14, 30, tzinfo=UTC)
    assert not regular_session_since("XNYS", open_.replace(minute=35), 10)
    assert regular_session_since("XNYS", open_.replace(minute=45), 10)
    assert not regular_session_since("XNYS", datetime(2024, 7, 4, 16, tzinfo=UTC), 10)
    assert regular_session_since("24/7", datetime(2024, 7, 4, 16, tzinfo=UTC), 10)
