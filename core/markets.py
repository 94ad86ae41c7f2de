"""Markets: which asset class and calendar each symbol has, and when its market is open.

The reference data are dbt seeds, read here too so that Python and SQL share one definition:

- `symbol_reference.csv`: symbol → asset class (us_equity, crypto, forex) and calendar;
- `asset_classes.csv`: the size classes of each asset class (shares, units or notional);
- `market_calendar_days.csv`: the days a calendar departs from its weekly rule — US exchange
  holidays and half days, generated from the `exchange_calendars` library (`make calendar`).

Calendars: `XNYS` (US equities: pre_market 04:00–09:30, regular 09:30–16:00, after_hours
16:00–20:00 New York time, closed on weekends and holidays; on a half day the regular session
ends 13:00 and after-hours 17:00), `24/7` (crypto: always regular) and `FX` (forex: regular
from Sunday 17:00 to Friday 17:00 New York time, closed otherwise). `session_type` here is the
reference the SQL macro of the same name is tested against.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

SEEDS_DIR = Path(__file__).resolve().parent.parent / "dbt_project" / "seeds"
SYMBOL_REFERENCE_SEED = SEEDS_DIR / "symbol_reference.csv"
ASSET_CLASSES_SEED = SEEDS_DIR / "asset_classes.csv"
CALENDAR_DAYS_SEED = SEEDS_DIR / "market_calendar_days.csv"

NEW_YORK = ZoneInfo("America/New_York")
ASSET_CLASSES = ("us_equity", "crypto", "forex")
CALENDARS = ("XNYS", "24/7", "FX")
#: Minutes after New York midnight: the XNYS sessions' edges on a full day.
PRE_MARKET_OPEN, REGULAR_OPEN, REGULAR_CLOSE, AFTER_HOURS_CLOSE = 240, 570, 960, 1200
#: Forex opens Sunday 17:00 and closes Friday 17:00 New York time.
FX_ROLLOVER = 1020


class MarketReferenceError(ValueError):
    """A seed of the market reference is missing, malformed or names an unknown value."""


@dataclass(frozen=True)
class SymbolReference:
    """One row of symbol_reference.csv."""

    symbol: str
    asset_class: str
    calendar: str
    description: str = ""


@dataclass(frozen=True)
class CalendarDay:
    """A day on which a calendar departs from its weekly rule (a holiday or a half day)."""

    calendar: str
    session_date: date
    day_kind: str  # holiday | early_close
    regular_close_minute: int | None = None
    after_hours_close_minute: int | None = None


def _rows(path: Path) -> list[dict[str, str]]:
    try:
        with path.open(newline="") as handle:
            return list(csv.DictReader(handle))
    except OSError as exc:
        raise MarketReferenceError(f"cannot read {path}: {exc}") from exc


def read_symbol_reference(path: Path = SYMBOL_REFERENCE_SEED) -> dict[str, SymbolReference]:
    """symbol → its reference row; MarketReferenceError on an unknown asset class or calendar."""
    reference: dict[str, SymbolReference] = {}
    for number, row in enumerate(_rows(path), start=2):
        entry = SymbolReference(
            row["symbol"].strip(), row["asset_class"].strip(), row["calendar"].strip(),
            (row.get("description") or "").strip(),
        )
        if entry.asset_class not in ASSET_CLASSES:
            raise MarketReferenceError(
                f"{path.name} line {number}: asset_class {entry.asset_class!r} is not one of "
                f"{', '.join(ASSET_CLASSES)}"
            )
        if entry.calendar not in CALENDARS:
            raise MarketReferenceError(
                f"{path.name} line {number}: calendar {entry.calendar!r} is not one of "
                f"{', '.join(CALENDARS)}"
            )
        if entry.symbol in reference:
            raise MarketReferenceError(f"{path.name} line {number}: {entry.symbol} twice")
        reference[entry.symbol] = entry
    return reference


def read_calendar_days(path: Path = CALENDAR_DAYS_SEED) -> dict[tuple[str, date], CalendarDay]:
    """(calendar, New York date) → the day's departure from the weekly rule."""
    days = {}
    for row in _rows(path):
        day = CalendarDay(
            row["calendar"], date.fromisoformat(row["session_date"]), row["day_kind"],
            int(row["regular_close_minute"]) if row["regular_close_minute"] else None,
            int(row["after_hours_close_minute"]) if row["after_hours_close_minute"] else None,
        )
        days[(day.calendar, day.session_date)] = day
    return days


def calendar_days_from_library(start_year: int, end_year: int) -> list[CalendarDay]:
    """XNYS holidays (weekdays without a session) and half days, from exchange_calendars."""
    import exchange_calendars
    import pandas as pd

    xnys = exchange_calendars.get_calendar(
        "XNYS", start=f"{start_year}-01-01", end=f"{end_year}-12-31"
    )
    weekdays = pd.bdate_range(f"{start_year}-01-01", f"{end_year}-12-31")
    days = [
        CalendarDay("XNYS", moment.date(), "holiday")
        for moment in weekdays.difference(xnys.sessions)
    ]
    schedule = xnys.schedule
    for session in xnys.early_closes:
        close = schedule.loc[session, "close"].tz_convert(NEW_YORK)
        regular_close = close.hour * 60 + close.minute
        # After-hours trading ends four hours after an early close (17:00 after 13:00).
        days.append(CalendarDay("XNYS", session.date(), "early_close", regular_close,
                                regular_close + 240))
    return sorted(days, key=lambda day: (day.calendar, day.session_date))


def write_calendar_seed(
    path: Path = CALENDAR_DAYS_SEED, *, start_year: int = 2015, end_year: int = 2030
) -> int:
    """Regenerate market_calendar_days.csv from the library; returns the rows written."""
    days = calendar_days_from_library(start_year, end_year)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["calendar", "session_date", "day_kind", "regular_close_minute",
                         "after_hours_close_minute"])
        for day in days:
            writer.writerow([day.calendar, day.session_date.isoformat(), day.day_kind,
                             "" if day.regular_close_minute is None else day.regular_close_minute,
                             "" if day.after_hours_close_minute is None
                             else day.after_hours_close_minute])
    return len(days)


@cache
def _default_calendar_days() -> Mapping[tuple[str, date], CalendarDay]:
    return read_calendar_days()


def session_type(
    calendar: str,
    instant: datetime,
    days: Mapping[tuple[str, date], CalendarDay] | None = None,
) -> str:
    """The session of `instant` (aware) on `calendar`: pre_market, regular, after_hours, closed."""
    if instant.tzinfo is None:
        raise ValueError("session_type needs an aware datetime")
    local = instant.astimezone(NEW_YORK)
    minute = local.hour * 60 + local.minute
    weekday = local.isoweekday()
    if calendar == "24/7":
        return "regular"
    if calendar == "FX":
        open_ = (
            (weekday == 7 and minute >= FX_ROLLOVER)
            or 1 <= weekday <= 4
            or (weekday == 5 and minute < FX_ROLLOVER)
        )
        return "regular" if open_ else "closed"
    if calendar != "XNYS":
        raise MarketReferenceError(f"unknown calendar {calendar!r}")
    day = (days if days is not None else _default_calendar_days()).get(("XNYS", local.date()))
    if weekday >= 6 or (day is not None and day.day_kind == "holiday"):
        return "closed"
    regular_close = (day.regular_close_minute if day else None) or REGULAR_CLOSE
    after_hours_close = (day.after_hours_close_minute if day else None) or AFTER_HOURS_CLOSE
    if minute < PRE_MARKET_OPEN:
        return "closed"
    if minute < REGULAR_OPEN:
        return "pre_market"
    if minute < regular_close:
        return "regular"
    if minute < after_hours_close:
        return "after_hours"
    return "closed"


def regular_session_since(
    calendar: str,
    instant: datetime,
    minutes: float,
    days: Mapping[tuple[str, date], CalendarDay] | None = None,
) -> bool:
    """True when the regular session has been open for the whole of the last `minutes`.

    A feed is expected to deliver only then: not just after the open, not in the thin
    extended hours of equities.
    """
    step = timedelta(minutes=1)
    moment = instant - timedelta(minutes=minutes)
    while moment <= instant:
        if session_type(calendar, moment, days) != "regular":
            return False
        moment += step
    return True


def symbols_missing_from(reference: Mapping[str, SymbolReference], symbols: Iterable[str]
                         ) -> list[str]:
    """The symbols that have no row in the reference."""
    return [symbol for symbol in symbols if symbol not in reference]

