"""The New York trading calendar: sessions in exchange-local time, DST-correct, weekdays only.

A trading day runs from 04:00 to 20:00 America/New_York: pre_market 04:00–09:30, regular
09:30–16:00, after_hours 16:00–20:00; nothing trades outside, nor on Saturdays and Sundays.
Exchange holidays are not modelled. Time inside a day is counted in minutes from 04:00, which
is well defined because DST changes happen at 02:00 on Sundays.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, time, timedelta

import numpy as np

from ingest.simulator.config import NEW_YORK

DAY_OPEN = time(4, 0)
MINUTES_PER_DAY = 16 * 60  # 04:00–20:00
REGULAR_OPEN_MINUTE = 5 * 60 + 30  # 09:30
REGULAR_CLOSE_MINUTE = 12 * 60  # 16:00
DAY_MS = MINUTES_PER_DAY * 60_000

PRE_MARKET, REGULAR, AFTER_HOURS = 0, 1, 2
SESSION_NAMES = ("pre_market", "regular", "after_hours")

# Business days are counted from this Monday: it keys the per-day random streams.
_EPOCH = np.datetime64("2000-01-03", "D")


def is_trading_day(day: date) -> bool:
    return day.weekday() < 5


def day_open_ms(day: date) -> int:
    """Epoch milliseconds of 04:00 New York time on `day`."""
    return int(datetime.combine(day, DAY_OPEN, NEW_YORK).timestamp() * 1000)


def business_day_index(day: date) -> int:
    """Trading days since 2000-01-03; the key of that day's random stream."""
    return int(np.busday_count(_EPOCH, np.datetime64(day, "D")))


def minute_sessions() -> np.ndarray:
    """Session code of each minute of the trading day (0 pre_market, 1 regular, 2 after_hours)."""
    minutes = np.arange(MINUTES_PER_DAY)
    sessions = np.full(MINUTES_PER_DAY, AFTER_HOURS, dtype=np.int8)
    sessions[minutes < REGULAR_CLOSE_MINUTE] = REGULAR
    sessions[minutes < REGULAR_OPEN_MINUTE] = PRE_MARKET
    return sessions


def session_at(ts_ms: int) -> str:
    """The session name of an epoch-millisecond instant ("closed" outside trading hours)."""
    local = datetime.fromtimestamp(ts_ms / 1000, NEW_YORK)
    if not is_trading_day(local.date()):
        return "closed"
    minute = (local.hour - 4) * 60 + local.minute
    if minute < 0 or minute >= MINUTES_PER_DAY:
        return "closed"
    if minute < REGULAR_OPEN_MINUTE:
        return "pre_market"
    return "regular" if minute < REGULAR_CLOSE_MINUTE else "after_hours"


def trading_days_from(ts_ms: int) -> Iterator[date]:
    """Trading days in order, starting with the one whose session holds or follows `ts_ms`."""
    local = datetime.fromtimestamp(ts_ms / 1000, NEW_YORK)
    day = local.date()
    if day_open_ms(day) + DAY_MS <= ts_ms:
        day += timedelta(days=1)
    while True:
        if is_trading_day(day):
            yield day
        day += timedelta(days=1)
