"""Is every feed delivering? The market-aware silence check of the scoring cycle.

A symbol whose regular session has been open for the whole of its asset class's
`feed_silent_minutes` (settings.markets) but that landed no trade in that time is silent: one
`feed_silent` alert names it when it goes silent, and it is not alerted again until it has
delivered and fallen silent once more (the state lives in <home>/state/feed_silence.json).
What landed is read from the landing files written in the window (by modification time), so
the check does not need the warehouse and runs even when a build fails.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import orjson

from core.datahome import write_atomic
from core.markets import read_symbol_reference, regular_session_since
from flows.alerts import alert_sender, send_feed_silent_alert
from flows.config import AssetClass, Settings
from ingest.landing import iter_landed_files


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
    landed_within: dict[float, set[str]] = {
        minutes: symbols_landed_since(settings.paths.landing_trades, now - 60 * minutes)
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
