"""The Alpha Vantage REST protocol over the simulated market (stdlib ThreadingHTTPServer).

GET /query?function=TIME_SERIES_INTRADAY&symbol=AAPL&interval=5min&apikey=...
    [&outputsize=compact|full] [&extended_hours=true|false] [&month=YYYY-MM]
GET /query?function=TIME_SERIES_DAILY&symbol=AAPL&apikey=... [&outputsize=compact|full]

Bars aggregate the very trades the WebSocket feed serves (the market is seekable by day), up
to a fixed "now" (`SimulatorConfig.alphavantage_as_of_ms`), so that the same request always
gets the same answer. Intraday keys are bar-start wall-clock times in US/Eastern, extended
hours included unless `extended_hours=false`; only completed bars are listed, newest first.
Daily bars cover the regular session (09:30–16:00). compact = the latest 100 bars; full =
the trailing 30 days (intraday), the whole month (with `month`), or the latest 260 trading
days (daily). Rate limits answer HTTP 200 with a `Note` (per minute) or `Information` (per
day) body, a bad key an `Error Message`, as the real service does.
"""

from __future__ import annotations

import hmac
import re
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import orjson

from ingest.simulator.config import NEW_YORK, SimulatorConfig
from ingest.simulator.market import Market
from ingest.simulator.sessions import (
    DAY_MS,
    REGULAR_CLOSE_MINUTE,
    REGULAR_OPEN_MINUTE,
    day_open_ms,
    is_trading_day,
)
from ingest.simulator.stats import Counters
from ingest.symbols import InvalidSymbol, validate_symbol

INTERVALS = {"1min": 1, "5min": 5, "15min": 15, "30min": 30, "60min": 60}
COMPACT_BARS = 100
FULL_INTRADAY_DAYS = 30  # calendar days
FULL_DAILY_DAYS = 260  # trading days
_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")

NOTE_PER_MINUTE = (
    "Thank you for using Alpha Vantage! Our standard API call frequency is {per_minute} calls "
    "per minute and {per_day} calls per day. Please visit https://www.alphavantage.co/premium/ "
    "if you would like to target a higher API call frequency."
)
INFORMATION_PER_DAY = (
    "Thank you for using Alpha Vantage! Our standard API rate limit is {per_day} requests per "
    "day. Please subscribe to any of the premium plans at https://www.alphavantage.co/premium/ "
    "to instantly remove all daily rate limits."
)
BAD_KEY = (
    "the parameter apikey is invalid or missing. Please claim your free API key on "
    "(https://www.alphavantage.co/support/#api-key). It should take less than 20 seconds."
)
INVALID_CALL = (
    "Invalid API call. Please retry or visit the documentation "
    "(https://www.alphavantage.co/documentation/) for {function}."
)


class _MinuteBars:
    """One symbol-day as one-minute OHLCV bars (minute = minutes after 04:00)."""

    __slots__ = ("minute", "open", "high", "low", "close", "volume")

    def __init__(self, market: Market, symbol: str, day: date):
        trades = market.symbol_day(symbol, day)
        minute = (trades.ts_ms - day_open_ms(day)) // 60_000
        self.minute, first = np.unique(minute, return_index=True)
        last = np.append(first[1:], len(minute)) - 1
        cents = trades.cents
        self.open = cents[first]
        self.close = cents[last]
        self.high = np.maximum.reduceat(cents, first) if len(first) else cents[:0]
        self.low = np.minimum.reduceat(cents, first) if len(first) else cents[:0]
        self.volume = np.add.reduceat(trades.volume, first) if len(first) else trades.volume[:0]


def _aggregate(
    bars: _MinuteBars, keep: np.ndarray, width: int
) -> tuple[np.ndarray, ...]:
    """Bars of `width` minutes (starts, open, high, low, close, volume) from the kept minutes."""
    minute = bars.minute[keep]
    if len(minute) == 0:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty, empty, empty, empty, empty
    bucket = minute // width
    starts, first = np.unique(bucket, return_index=True)
    last = np.append(first[1:], len(bucket)) - 1
    return (
        starts * width,
        bars.open[keep][first],
        np.maximum.reduceat(bars.high[keep], first),
        np.minimum.reduceat(bars.low[keep], first),
        bars.close[keep][last],
        np.add.reduceat(bars.volume[keep], first),
    )


def _bar_values(o: int, h: int, lo: int, c: int, v: int) -> dict[str, str]:
    return {
        "1. open": f"{o / 100:.4f}",
        "2. high": f"{h / 100:.4f}",
        "3. low": f"{lo / 100:.4f}",
        "4. close": f"{c / 100:.4f}",
        "5. volume": str(int(v)),
    }


class AlphaVantageApi:
    """Answers Alpha Vantage queries: budget, faults, validation, then bars."""

    def __init__(self, config: SimulatorConfig, market: Market, counters: Counters):
        self.config = config
        self.market = market
        self.counters = counters
        self._lock = threading.Lock()
        self._requests = 0
        self._calls_last_minute: deque[float] = deque()
        self._calls_today = 0
        self._budget_day = datetime.now(UTC).date()
        self._minute_bars: OrderedDict[tuple[str, date], _MinuteBars] = OrderedDict()
        self._daily: dict[tuple[str, date], tuple[int, int, int, int, int] | None] = {}

    # ---- the request pipeline ----

    def answer(self, params: dict[str, str]) -> tuple[int, bytes, str]:
        """(HTTP status, body, content type) for the query parameters of one request."""
        with self._lock:
            self._requests += 1
            number = self._requests
        self.counters.add(av_requests=1)
        faults = self.config.faults
        if faults.slow_response_seconds > 0:
            time.sleep(faults.slow_response_seconds)
        if faults.http_5xx_every_n is not None and number % faults.http_5xx_every_n == 0:
            self.counters.add(av_5xx=1)
            return 503, b"Service Unavailable", "text/plain"
        key = params.get("apikey", "")
        if not key or (
            self.config.av_api_key is not None
            and not hmac.compare_digest(key.encode(), self.config.av_api_key.encode())
        ):
            return self._error(BAD_KEY)
        limited = self._spend_budget()
        if limited is not None:
            self.counters.add(av_rate_limited=1)
            return 200, orjson.dumps(limited), "application/json"
        function = params.get("function", "")
        if function == "TIME_SERIES_INTRADAY":
            body = self._intraday(params)
        elif function == "TIME_SERIES_DAILY":
            body = self._daily_series(params)
        else:
            return self._error(f"This API function ({function[:40]}) does not exist.")
        if body is None:
            return self._error(INVALID_CALL.format(function=function))
        self.counters.add(av_served=1)
        return 200, orjson.dumps(body), "application/json"

    def _error(self, message: str) -> tuple[int, bytes, str]:
        self.counters.add(av_errors=1)
        return 200, orjson.dumps({"Error Message": message}), "application/json"

    def _spend_budget(self) -> dict[str, str] | None:
        """Count one call against the budget, or say which limit it hit (and do not count it)."""
        config = self.config
        limits = {"per_minute": config.av_calls_per_minute, "per_day": config.av_calls_per_day}
        now = time.monotonic()
        with self._lock:
            today = datetime.now(UTC).date()
            if today != self._budget_day:  # the daily budget renews at midnight UTC
                self._budget_day, self._calls_today = today, 0
            while self._calls_last_minute and now - self._calls_last_minute[0] >= 60.0:
                self._calls_last_minute.popleft()
            if self._calls_today >= config.av_calls_per_day:
                return {"Information": INFORMATION_PER_DAY.format(**limits)}
            if len(self._calls_last_minute) >= config.av_calls_per_minute:
                return {"Note": NOTE_PER_MINUTE.format(**limits)}
            self._calls_today += 1
            self._calls_last_minute.append(now)
        return None

    def _symbol(self, params: dict[str, str]) -> str | None:
        try:
            symbol = validate_symbol(params.get("symbol"))
        except InvalidSymbol:
            return None
        return symbol if symbol in self.market.symbols else None

    # ---- bars ----

    def _bars_of(self, symbol: str, day: date) -> _MinuteBars:
        key = (symbol, day)
        with self._lock:
            bars = self._minute_bars.get(key)
            if bars is not None:
                self._minute_bars.move_to_end(key)
                return bars
        bars = _MinuteBars(self.market, symbol, day)
        with self._lock:
            self._minute_bars[key] = bars
            while len(self._minute_bars) > 512:
                self._minute_bars.popitem(last=False)
        return bars

    def _intraday(self, params: dict[str, str]) -> dict[str, Any] | None:
        symbol = self._symbol(params)
        width = INTERVALS.get(params.get("interval", ""))
        size = params.get("outputsize", "compact")
        extended = params.get("extended_hours", "true")
        if symbol is None or width is None or size not in ("compact", "full"):
            return None
        if extended not in ("true", "false") or params.get("datatype", "json") != "json":
            return None
        as_of = self.config.alphavantage_as_of_ms
        month = params.get("month")
        days: Any  # newest first
        if month is not None:
            match = _MONTH.match(month)
            if match is None:
                return None
            year, number = int(match.group(1)), int(match.group(2))
            first = date(year, number, 1)
            following = date(year + number // 12, number % 12 + 1, 1)
            as_of = min(as_of, int(datetime(following.year, following.month, 1,
                                            tzinfo=NEW_YORK).timestamp() * 1000))
            in_month = (following - timedelta(n) for n in range(1, (following - first).days + 1))
            days = [d for d in in_month if is_trading_day(d) and day_open_ms(d) < as_of]
        elif size == "full":
            oldest = datetime.fromtimestamp(as_of / 1000, NEW_YORK).date() - timedelta(
                days=FULL_INTRADAY_DAYS)
            days = [d for d in self._days_back(as_of, FULL_INTRADAY_DAYS + 1) if d > oldest]
        else:
            days = self._days_back(as_of)
        series: list[tuple[str, dict[str, str]]] = []
        for day in days:
            series.extend(self._day_intraday(symbol, day, width, extended == "true", as_of))
            if size == "compact" and len(series) >= COMPACT_BARS:
                break
        if size == "compact":
            series = series[:COMPACT_BARS]
        if not series:
            return None
        interval = f"{width}min"
        return {
            "Meta Data": {
                "1. Information": f"Intraday ({interval}) open, high, low, close prices and volume",
                "2. Symbol": symbol,
                "3. Last Refreshed": series[0][0],
                "4. Interval": interval,
                "5. Output Size": "Compact" if size == "compact" else "Full size",
                "6. Time Zone": "US/Eastern",
            },
            f"Time Series ({interval})": dict(series),
        }

    @staticmethod
    def _days_back(as_of: int, calendar_days: int = 3660) -> Iterator[date]:
        """Trading days that had opened by `as_of`, newest first."""
        day = datetime.fromtimestamp(as_of / 1000, NEW_YORK).date()
        for _ in range(calendar_days):
            if is_trading_day(day) and day_open_ms(day) < as_of:
                yield day
            day -= timedelta(days=1)

    def _day_intraday(
        self, symbol: str, day: date, width: int, extended: bool, as_of: int
    ) -> list[tuple[str, dict[str, str]]]:
        """One day's completed bars, newest first."""
        bars = self._bars_of(symbol, day)
        keep = np.ones(len(bars.minute), dtype=bool)
        if not extended:
            keep &= (bars.minute >= REGULAR_OPEN_MINUTE) & (bars.minute < REGULAR_CLOSE_MINUTE)
        starts, o, h, lo, c, v = _aggregate(bars, keep, width)
        open_ms = day_open_ms(day)
        done = open_ms + (starts + width) * 60_000 <= as_of
        rows = []
        for start, bar in zip(starts[done].tolist(), zip(o[done].tolist(), h[done].tolist(),
                              lo[done].tolist(), c[done].tolist(), v[done].tolist(),
                              strict=True), strict=True):
            minutes = 4 * 60 + start  # wall clock: no DST change inside a trading day
            key = f"{day:%Y-%m-%d} {minutes // 60:02d}:{minutes % 60:02d}:00"
            rows.append((key, _bar_values(*bar)))
        return rows[::-1]

    def _daily_bar(self, symbol: str, day: date, as_of: int) -> tuple[int, ...] | None:
        """Regular-session OHLCV of one day, from the trades before `as_of`."""
        complete = day_open_ms(day) + DAY_MS <= as_of
        key = (symbol, day)
        if complete and key in self._daily:
            return self._daily[key]
        bars = self._bars_of(symbol, day)
        regular = (bars.minute >= REGULAR_OPEN_MINUTE) & (bars.minute < REGULAR_CLOSE_MINUTE)
        regular &= day_open_ms(day) + (bars.minute + 1) * 60_000 <= as_of
        starts, o, h, lo, c, v = _aggregate(bars, regular, 24 * 60)
        bar = None if len(starts) == 0 else (int(o[0]), int(h[0]), int(lo[0]), int(c[0]), int(v[0]))
        if complete:
            self._daily[key] = bar
        return bar

    def _daily_series(self, params: dict[str, str]) -> dict[str, Any] | None:
        symbol = self._symbol(params)
        size = params.get("outputsize", "compact")
        if symbol is None or size not in ("compact", "full"):
            return None
        if params.get("datatype", "json") != "json":
            return None
        as_of = self.config.alphavantage_as_of_ms
        wanted = COMPACT_BARS if size == "compact" else FULL_DAILY_DAYS
        series: list[tuple[str, dict[str, str]]] = []
        for day in self._days_back(as_of):
            bar = self._daily_bar(symbol, day, as_of)
            if bar is not None:
                series.append((f"{day:%Y-%m-%d}", _bar_values(*bar)))
            if len(series) >= wanted:
                break
        if not series:
            return None
        return {
            "Meta Data": {
                "1. Information": "Daily Prices (open, high, low, close) and Volumes",
                "2. Symbol": symbol,
                "3. Last Refreshed": series[0][0],
                "4. Output Size": "Compact" if size == "compact" else "Full size",
                "5. Time Zone": "US/Eastern",
            },
            "Time Series (Daily)": dict(series),
        }


def make_http_server(api: AlphaVantageApi, host: str, port: int) -> ThreadingHTTPServer:
    """An HTTP server answering GET /query with `api`; request lines are never logged (keys)."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "AlphaVantageSimulator/1.0"
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            url = urlsplit(self.path)
            if url.path != "/query":
                self._reply(404, b'{"error": "not found: use /query"}', "application/json")
                return
            params = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
            status, body, content_type = api.answer(params)
            self._reply(status, body, content_type)

        def _reply(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            """Silent: the request line carries the API key."""

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server
