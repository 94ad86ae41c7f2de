"""Is every feed delivering? The market-aware silence check of the scoring cycle.

A symbol whose regular session has been open for the whole of its asset class's
`feed_silent_minutes` (settings.markets) but that landed no trade in that time is silent: one
`feed_silent` alert names it when it goes silent, and it is not alerted again until it has
delivered and fallen silent once more (the state lives in <home>/state/feed_silence.json).
What landed is read from the landing files written in the window, so the check does not need
the warehouse and runs even when a build fails. In a local data home a file's landing time is
its modification time; in a Unity Catalog volume (TRADEWATCH_ENV=prd, core.volume) it is the
UTC second the collector's writer puts at the front of every trades file's name
(ingest.landing.PartitionedNdjsonWriter), and only the date partitions around the market's clock
are listed, newest files read first until every expected symbol is seen.
"""

from __future__ import annotations

import calendar
import json
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

import orjson

from core.datahome import LANDING_TRADES, DataHome, LocalDataHome, within, write_atomic
from core.markets import read_symbol_reference, regular_session_since
from flows.alerts import alert_sender, send_feed_silent_alert
from flows.config import AssetClass, Settings
from flows.engine import data_home
from ingest.landing import iter_landed_files

#: "trades-20240312T150000Z-<pid>-<run>-<seq>.ndjson": the UTC second the file was landed.
_LANDED_AT = re.compile(r"^trades-(\d{8}T\d{6})Z-")


@dataclass(frozen=True)
class FeedCheck:
    """Symbols silent now, and those of them alerted by this check (newly silent)."""

    silent: dict[str, str]
    alerted: dict[str, str]
    expected: tuple[str, ...]


def _state_path(settings: Settings) -> Path:
    return settings.paths.home / "state" / "feed_silence.json"


def _recent_files(landing_trades: Path, since_epoch: float) -> list[Path]:
    """Landed files renamed into place since `since_epoch`.

    Only the partition folders changed since then are listed (a rename updates its folder's
    modification time), so the check stays cheap however much history has landed.
    """
    if not landing_trades.is_dir():
        return []
    files = []
    for partition in landing_trades.iterdir():
        try:
            if not partition.is_dir() or partition.stat().st_mtime < since_epoch:
                continue
            files += [p for p in iter_landed_files(partition) if p.stat().st_mtime >= since_epoch]
        except OSError:
            continue  # moved away meanwhile
    return files


def symbols_landed_since(landing_trades: Path, since_epoch: float) -> set[str]:
    """Symbols of the trades in files landed (renamed into place) at or after `since_epoch`."""
    symbols: set[str] = set()
    for path in _recent_files(landing_trades, since_epoch):
        try:
            with path.open("rb") as handle:
                for line in handle:
                    if line.strip():
                        symbol = orjson.loads(line).get("symbol")
                        if isinstance(symbol, str):
                            symbols.add(symbol)
        except (OSError, orjson.JSONDecodeError):
            continue  # a file moved away or torn: judged by the others
    return symbols


def landed_at(name: str) -> float | None:
    """The landing time (epoch seconds, whole) in a trades file's name; None for another name."""
    match = _LANDED_AT.match(name.rsplit("/", 1)[-1])
    if match is None:
        return None
    return float(calendar.timegm(time.strptime(match.group(1), "%Y%m%dT%H%M%S")))


def latest_landings(
    trades: DataHome, since_epoch: float, dates: Iterable[str], wanted: Iterable[str] = (),
) -> dict[str, float]:
    """Each symbol's latest landing time at or after `since_epoch`, read through a data home
    whose root is the trades landing folder, from its partitions `dates` (YYYY-MM-DD).

    Files are read newest first, and reading stops once every `wanted` symbol has been seen
    (its first file is its latest). A file that cannot be read or parsed is skipped, as the
    local check skips one moved away or torn; a listing that fails raises (core.volume's
    one-line VolumeError).
    """
    since = float(int(since_epoch))  # names carry whole seconds
    recent: list[tuple[float, str]] = []
    for date in sorted(set(dates)):
        for name in trades.list(f"date={date}", "trades-*.ndjson"):
            landed = landed_at(name)
            if landed is not None and landed >= since:
                recent.append((landed, name))
    missing = set(wanted)
    latest: dict[str, float] = {}
    for landed, name in sorted(recent, reverse=True):
        try:
            lines = trades.read(name).splitlines()
            for line in lines:
                if line.strip():
                    symbol = orjson.loads(line).get("symbol")
                    if isinstance(symbol, str) and symbol not in latest:
                        latest[symbol] = landed
                        missing.discard(symbol)
        except (OSError, orjson.JSONDecodeError):
            continue
        if wanted and not missing:
            break
    return latest


def _partition_dates(market_time: datetime, minutes: float) -> list[str]:
    """The trade-date partitions a trade landed in the last `minutes` can be in: the market
    clock's dates over that window, a day either side for clock skew and late trades."""
    first = (market_time - timedelta(minutes=minutes, days=1)).date()
    last = (market_time + timedelta(days=1)).date()
    return [str(first + timedelta(days=n)) for n in range((last - first).days + 1)]


def check_feeds(
    settings: Settings,
    *,
    market_time: datetime | None = None,
    now: float | None = None,
) -> FeedCheck:
    """Alert the configured symbols that landed nothing while their market was open.

    `market_time` is the market's clock (the replayed one under the simulator; default: now);
    silence is measured on the wall clock `now` (epoch seconds) against landing times.
    """
    now = time.time() if now is None else now
    market_time = market_time or datetime.fromtimestamp(now, UTC)
    reference = read_symbol_reference()
    windows = {}
    for symbol in settings.symbols:
        entry = reference[symbol]
        # the symbol reference admits the configured asset classes only
        minutes = settings.markets[cast(AssetClass, entry.asset_class)].feed_silent_minutes
        if regular_session_since(entry.calendar, market_time, minutes):
            windows[symbol] = minutes
    home = data_home(settings)  # on Databricks: the Unity Catalog volume (Files API)
    landed_within: dict[float, set[str]]
    if isinstance(home, LocalDataHome):
        landed_within = {
            minutes: symbols_landed_since(settings.paths.landing_trades, now - 60 * minutes)
            for minutes in set(windows.values())
        }
    else:
        longest = max(windows.values(), default=0)
        latest = latest_landings(
            within(home, LANDING_TRADES), now - 60 * longest,
            _partition_dates(market_time, longest), wanted=windows,
        ) if windows else {}
        landed_within = {
            minutes: {s for s, at in latest.items() if at >= int(now - 60 * minutes)}
            for minutes in set(windows.values())
        }
    silent = {
        s: reference[s].asset_class for s, minutes in windows.items()
        if s not in landed_within[minutes]
    }
    state_path = _state_path(settings)
    try:
        known = set(json.loads(state_path.read_text()))
    except (OSError, ValueError):
        known = set()
    new = {s: c for s, c in silent.items() if s not in known}
    if new:
        send_feed_silent_alert(alert_sender(settings), new, {s: windows[s] for s in new})
    write_atomic(state_path, json.dumps(sorted(silent)))
    return FeedCheck(silent, new, tuple(windows))
