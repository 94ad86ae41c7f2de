"""Alpha Vantage collector: bars within a persistent call budget, US/Eastern times to UTC.

One request per symbol (`TIME_SERIES_INTRADAY` or `TIME_SERIES_DAILY`). Alpha Vantage answers
rate limits and bad keys with HTTP 200 and a one-key body (`Information`, `Note`,
`Error Message`), so every body is checked for those before it is parsed as bars. The call
budget (per minute and per rolling day) lives in a small JSON file so that separate runs share
it, and every attempt, retries included, spends from it.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePath
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
import requests

from core.datahome import DataHome, remove_stale_temp_files, within, write_atomic
from ingest.api_keys import (
    ApiKey,
    is_provider_host,
    key_destination,
    protect_library_loggers,
    redact_credentials,
    refuse_key_destination,
)
from ingest.landing import (
    BARS,
    REJECTS,
    PartitionedNdjsonWriter,
    reject_record,
    utc_now_iso,
    validate_interval,
    write_bars,
)
from ingest.symbols import validate_symbols

SOURCE = "alphavantage"
#: The provider's domain: the API key goes there over TLS (https://), nowhere else unless listed.
ALPHAVANTAGE_DOMAIN = "alphavantage.co"
#: Sent as `apikey` without a key (the simulator): the parameter is required, the value not.
KEYLESS = "keyless"
INTRADAY_INTERVALS = ("1min", "5min", "15min", "30min", "60min")
INTERVALS = (*INTRADAY_INTERVALS, "daily")
DEFAULT_TIME_ZONE = "US/Eastern"
_MINUTE = 60.0
_DAY = 86_400.0
_SLEEP_SLICE = 0.25

log = logging.getLogger(__name__)


class AlphaVantageError(RuntimeError):
    """Alpha Vantage could not be read."""


class RateLimited(AlphaVantageError):
    """Alpha Vantage answered with a rate-limit notice (`Information`/`Note`, or HTTP 429)."""


class InvalidApiKey(AlphaVantageError):
    """Alpha Vantage rejected the API key."""


class ApiError(AlphaVantageError):
    """An `Error Message` body, an unexpected body or an HTTP error for one request."""


class RequestFailed(AlphaVantageError):
    """No usable answer after every retry (timeouts, connection errors, HTTP 5xx)."""


class BudgetExhausted(AlphaVantageError):
    """The persistent daily call budget is spent; no request was sent."""


class BudgetUnreadable(AlphaVantageError):
    """The budget file exists but cannot be read; requests stay blocked rather than overspend."""


class Stopped(AlphaVantageError):
    """The collector was asked to stop."""


class LandingFailed(AlphaVantageError):
    """Fetched bars could not be written (a full disk, a volume that failed an upload).

    The run stops there: the symbol's bars are not counted as landed (its fetch is not noted
    in the bar schedule, so it is fetched again), and no further call is spent on bars that
    could not be landed either.
    """


class CallBudget:
    """Calls-per-minute and calls-per-day limits, shared through a JSON file across runs.

    The file holds the epoch seconds of every call in the last 24 hours. `acquire()` takes the
    file's lock, drops calls older than a day, and either records a new call, waits for the
    minute window to free a slot, or raises BudgetExhausted when the day's calls are spent.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        calls_per_minute: int,
        calls_per_day: int,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if calls_per_minute <= 0 or calls_per_day <= 0:
            raise ValueError("call budgets must be positive")
        self.path = Path(path)
        self.calls_per_minute = calls_per_minute
        self.calls_per_day = calls_per_day
        self._clock = clock
        self._sleep = sleep

    def __repr__(self) -> str:
        return (
            f"CallBudget({str(self.path)!r}, calls_per_minute={self.calls_per_minute}, "
            f"calls_per_day={self.calls_per_day})"
        )

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = self.path.with_name(f".{self.path.name}.lock")
        with lock.open("a") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def _load(self, now: float) -> list[float]:
        try:
            data = orjson.loads(self.path.read_bytes())
            calls = [float(stamp) for stamp in data["calls"]]
        except FileNotFoundError:
            return []
        except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise BudgetUnreadable(
                f"cannot read the call budget {self.path} ({type(exc).__name__}); fix or delete "
                "it once you are sure no calls were made in the last 24 hours"
            ) from None
        return sorted(stamp for stamp in calls if now - stamp < _DAY)

    def _save(self, calls: list[float]) -> None:
        payload = orjson.dumps({"calls": calls}, option=orjson.OPT_APPEND_NEWLINE)
        write_atomic(self.path, payload)

    def used(self) -> tuple[int, int]:
        """Calls made in the last minute and in the last 24 hours."""
        now = self._clock()
        with self._locked():
            calls = self._load(now)
        return sum(1 for stamp in calls if now - stamp < _MINUTE), len(calls)

    def acquire(self, should_stop: Callable[[], bool] = lambda: False) -> None:
        """Record one call, waiting for the minute window if needed.

        Raises BudgetExhausted when the rolling day is spent and Stopped if `should_stop`
        turns true while waiting.
        """
        while True:
            now = self._clock()
            with self._locked():
                calls = self._load(now)
                if len(calls) >= self.calls_per_day:
                    free_at = datetime.fromtimestamp(calls[0] + _DAY, UTC)
                    raise BudgetExhausted(
                        f"the Alpha Vantage budget of {self.calls_per_day} calls per day is "
                        f"spent; the next call is allowed after {free_at:%Y-%m-%d %H:%M:%S}Z"
                    )
                in_minute = [stamp for stamp in calls if now - stamp < _MINUTE]
                if len(in_minute) < self.calls_per_minute:
                    calls.append(now)
                    self._save(calls)
                    return
                wait = in_minute[0] + _MINUTE - now
            # Wait outside the lock so another process can read the budget meanwhile.
            _sleep_unless(self._sleep, max(wait, 0.01), should_stop)


class BarSchedule:
    """When each symbol's bars are due again, so that a frequent schedule fits the daily budget.

    A scheduled run every five minutes cannot fetch every symbol every time: 10 symbols against
    25 calls a day spent the budget on the third run. The day's calls are spread instead: each
    symbol is refreshed every `refresh_seconds` = 24 h x symbols / (calls per day - reserve),
    the reserve (a fifth of the budget, at least one call) covering retries. A run fetches the
    symbols whose last fetch is older than that, stalest first, and no more than the calls the
    rolling day has left beyond the reserve. The last successful fetch of each symbol is kept
    in a small JSON file beside the call budget.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        calls_per_day: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if calls_per_day <= 0:
            raise ValueError("calls_per_day must be positive")
        self.path = Path(path)
        self.calls_per_day = calls_per_day
        self.reserve = max(1, calls_per_day // 5)
        self._clock = clock

    def refresh_seconds(self, symbols: int) -> float:
        """How often each of `symbols` symbols can be refreshed within the budget."""
        usable = max(1, self.calls_per_day - self.reserve)
        return _DAY * max(1, symbols) / usable

    def _load(self) -> dict[str, float]:
        try:
            data = orjson.loads(self.path.read_bytes())
            return {str(symbol): float(stamp) for symbol, stamp in data["last_fetched"].items()}
        except FileNotFoundError:
            return {}
        except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
            return {}  # unreadable: every symbol is due; the call budget still caps the calls

    def due(
        self, symbols: tuple[str, ...] | list[str], calls_left: int
    ) -> tuple[list[str], float | None]:
        """(the symbols to fetch now, stalest first; when the next one falls due if none is)."""
        now = self._clock()
        last = self._load()
        every = self.refresh_seconds(len(symbols))
        stale = sorted(  # stalest first; ties in the configured order
            (last.get(symbol, float("-inf")), index, symbol)
            for index, symbol in enumerate(symbols)
            if now - last.get(symbol, float("-inf")) >= every
        )
        room = max(0, calls_left - self.reserve)
        chosen = [symbol for _, _, symbol in stale[:room]]
        if chosen:
            return chosen, None
        upcoming = [last[symbol] + every for symbol in symbols if symbol in last]
        return [], (min(upcoming) if upcoming and not stale else None)

    def record(self, symbols: list[str]) -> None:
        """Note a successful fetch of `symbols` now."""
        if not symbols:
            return
        now = self._clock()
        lock = self.path.with_name(f".{self.path.name}.lock")
        lock.parent.mkdir(parents=True, exist_ok=True)
        with lock.open("a") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                last = self._load()
                last.update({symbol: now for symbol in symbols})
                write_atomic(
                    self.path,
                    [orjson.dumps({"last_fetched": last}, option=orjson.OPT_APPEND_NEWLINE)],
                )
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def schedule_path(home: Path | str) -> Path:
    """Where the bar schedule of a data home lives."""
    return Path(home) / "state" / "alphavantage_schedule.json"


def _sleep_unless(sleep: Callable[[float], None], seconds: float, should_stop: Callable[[], bool]):
    remaining = seconds
    while remaining > 0:
        if should_stop():
            raise Stopped("stopped while waiting")
        step = min(remaining, _SLEEP_SLICE)
        sleep(step)
        remaining -= step
    if should_stop():
        raise Stopped("stopped while waiting")


@dataclass
class SymbolResult:
    """What one symbol's fetch produced."""

    symbol: str
    bars: int = 0
    rejected: int = 0
    files: list[PurePath] = field(default_factory=list)
    error: str | None = None  #: typed error name and message, already redacted


@dataclass
class CollectionResult:
    """The outcome of one `collect()` run."""

    interval: str
    results: list[SymbolResult] = field(default_factory=list)
    calls: int = 0  #: HTTP requests sent, retries included
    error: AlphaVantageError | None = None  #: what ended the run early, if anything

    @property
    def bars(self) -> int:
        return sum(result.bars for result in self.results)

    @property
    def files(self) -> int:
        return sum(len(result.files) for result in self.results)

    @property
    def failed(self) -> list[SymbolResult]:
        return [result for result in self.results if result.error]

    def summary(self) -> str:
        """One line: symbols fetched, bars landed, files, calls, failures."""
        fetched = sum(1 for result in self.results if not result.error)
        return (
            f"fetched {fetched} of {len(self.results)} symbols, landed {self.bars:,} "
            f"{self.interval} bars in {self.files} files, rejected "
            f"{sum(r.rejected for r in self.results)}, failed {len(self.failed)}, "
            f"calls {self.calls}"
        )


def check_body(body: object, api_key: ApiKey | None = None) -> dict:
    """Raise the typed error an Alpha Vantage notice body stands for; return the body otherwise."""
    if not isinstance(body, dict):
        raise ApiError(f"unexpected response: a JSON {type(body).__name__}, expected an object")

    def text(key: str) -> str:
        return redact_credentials(str(body[key]), api_key)[:300]

    if "Error Message" in body:
        message = text("Error Message")
        if "apikey" in message.lower().replace(" ", "") or "api key" in message.lower():
            raise InvalidApiKey(
                f"Alpha Vantage rejected the API key: {message} (set ALPHAVANTAGE_API_KEY, or "
                "pass --url to use the simulator)"
            )
        raise ApiError(f"Alpha Vantage error: {message}")
    for key in ("Information", "Note"):
        if key in body:
            raise RateLimited(f"Alpha Vantage rate limit ({key}): {text(key)}")
    return body


def _time_zone(meta: dict) -> tuple[str, ZoneInfo]:
    name = next(
        (str(value) for key, value in meta.items() if str(key).endswith("Time Zone")),
        DEFAULT_TIME_ZONE,
    )
    try:
        return name, ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ApiError(f"unknown time zone {name[:60]!r} in the response") from None


def _number(values: dict, key: str, *, positive: bool) -> float:
    value = float(values[key])
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        raise ValueError(f"{key} {values[key]!r} is out of range")
    return value


def parse_bars(
    body: dict, *, symbol: str, interval: str, fetched_at: str
) -> tuple[list[dict], list[tuple[str, dict]]]:
    """Turn a checked body into landing bars; return (bars, [(reason, raw item)]) .

    Wall-clock times are localised in the response's time zone (US/Eastern) with zoneinfo, so
    bars on either side of a DST change get the right UTC instant.
    """
    meta = body.get("Meta Data")
    series_key = "Time Series (Daily)" if interval == "daily" else f"Time Series ({interval})"
    series = body.get(series_key)
    if not isinstance(meta, dict) or not isinstance(series, dict):
        keys = ", ".join(sorted(str(key) for key in body)[:5])
        raise ApiError(f"unexpected response for {symbol}: no {series_key!r} (keys: {keys})")
    answered = next((str(v) for k, v in meta.items() if str(k).endswith("Symbol")), symbol)
    if answered.upper() != symbol.upper():
        raise ApiError(f"asked for {symbol} but the response is for {answered[:20]!r}")
    zone_name, zone = _time_zone(meta)
    layout = "%Y-%m-%d" if interval == "daily" else "%Y-%m-%d %H:%M:%S"
    bars: list[dict] = []
    rejected: list[tuple[str, dict]] = []
    for local, values in series.items():
        try:
            wall_clock = datetime.strptime(local, layout)
            if not isinstance(values, dict):
                raise TypeError(f"values are a {type(values).__name__}")
            bar = {
                "symbol": symbol,
                "interval": interval,
                "bar_ts_utc": wall_clock.replace(tzinfo=zone)
                .astimezone(UTC)
                .strftime("%Y-%m-%dT%H:%M:%SZ"),
                "bar_local": local,
                "time_zone": zone_name,
                "open": _number(values, "1. open", positive=True),
                "high": _number(values, "2. high", positive=True),
                "low": _number(values, "3. low", positive=True),
                "close": _number(values, "4. close", positive=True),
                "volume": _number(values, "5. volume", positive=False),
                "source": SOURCE,
                "fetched_at": fetched_at,
            }
        except (ValueError, TypeError, KeyError) as exc:
            detail = f"{type(exc).__name__}: {exc}"[:200]
            rejected.append((f"invalid_bar: {symbol} {str(local)[:30]}: {detail}", {local: values}))
            continue
        bars.append(bar)
    return bars, rejected


class AlphaVantageCollector:
    """Fetches bars for each symbol within the call budget and lands one file per month.

    `landing_dir` is the landing folder, or a data home whose root is the landing folder
    (core.datahome: e.g. a Unity Catalog volume through the Files API, core.volume), where
    each month's file is one whole upload. The call budget stays a local file either way.
    """

    def __init__(
        self,
        *,
        base_url: str,
        api_key: ApiKey | str | None,
        symbols: tuple[str, ...] | list[str],
        interval: str,
        landing_dir: Path | str | DataHome,
        budget: CallBudget,
        timeout_seconds: float = 10.0,
        retries: int = 3,
        backoff_initial_seconds: float = 0.5,
        backoff_max_seconds: float = 8.0,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        on_symbol: Callable[[SymbolResult], None] | None = None,
        key_urls: Sequence[str] = (),
    ) -> None:
        self._symbols = validate_symbols(list(symbols))
        if interval not in INTERVALS:
            raise ValueError(f"unknown interval {interval!r}: one of {', '.join(INTERVALS)}")
        validate_interval(interval)
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"the Alpha Vantage URL must start with http(s)://, got {base_url!r}")
        if isinstance(api_key, str):
            api_key = ApiKey(api_key)
        if api_key is not None:
            allowed = key_destination(base_url, ALPHAVANTAGE_DOMAIN, key_urls)
            if allowed is None:
                raise refuse_key_destination(base_url, ALPHAVANTAGE_DOMAIN,
                                             "the Alpha Vantage API key")
            if not is_provider_host(base_url, ALPHAVANTAGE_DOMAIN):
                log.warning("sending the Alpha Vantage API key to %s: %s",
                            redact_credentials(base_url), allowed)
        self._api_key = api_key
        self.base_url = base_url.rstrip("/")
        self.interval = interval
        # A folder, or a data home whose root is the landing folder.
        self.landing_dir: Path | None
        self._landing: Path | DataHome
        if isinstance(landing_dir, DataHome):
            self.landing_dir = None
            self._landing = landing_dir
            self._rejects_home: Path | DataHome = within(landing_dir, REJECTS)
        else:
            self.landing_dir = self._landing = Path(landing_dir)
            self._rejects_home = self.landing_dir / REJECTS
        self.budget = budget
        self.timeout_seconds = timeout_seconds
        self.retries = retries
        self.backoff_initial_seconds = backoff_initial_seconds
        self.backoff_max_seconds = backoff_max_seconds
        self._session = session or requests.Session()
        self._sleep = sleep
        self._on_symbol = on_symbol
        self._stopping = False
        self._calls = 0
        protect_library_loggers()

    def __repr__(self) -> str:
        return (
            f"AlphaVantageCollector(base_url={redact_credentials(self.base_url)!r}, "
            f"symbols={self._symbols!r}, interval={self.interval!r}, api_key=***)"
        )

    @property
    def symbols(self) -> tuple[str, ...]:
        return self._symbols

    def stop(self) -> None:
        """Stop after the current request; safe from signal handlers and other threads."""
        self._stopping = True

    def _should_stop(self) -> bool:
        return self._stopping

    def _params(self, symbol: str) -> dict[str, str]:
        if self.interval == "daily":
            params = {"function": "TIME_SERIES_DAILY", "symbol": symbol}
        else:
            params = {"function": "TIME_SERIES_INTRADAY", "symbol": symbol,
                      "interval": self.interval}
        params["apikey"] = self._api_key.reveal() if self._api_key is not None else KEYLESS
        return params

    def fetch(self, symbol: str) -> dict:
        """One symbol's checked response body, retrying timeouts and 5xx with backoff.

        Raises RateLimited, InvalidApiKey, ApiError, RequestFailed, BudgetExhausted or Stopped.
        """
        url = f"{self.base_url}/query"
        last_problem = "no attempt"
        for attempt in range(self.retries + 1):
            if attempt:
                delay = min(
                    self.backoff_max_seconds, self.backoff_initial_seconds * 2 ** (attempt - 1)
                )
                _sleep_unless(self._sleep, delay, self._should_stop)
            self.budget.acquire(self._should_stop)
            self._calls += 1
            try:
                response = self._session.get(
                    url, params=self._params(symbol), timeout=self.timeout_seconds
                )
            except (requests.Timeout, requests.ConnectionError) as exc:
                # The exception text holds the full URL, key included: keep only its type.
                last_problem = type(exc).__name__
                continue
            except requests.RequestException as exc:
                raise ApiError(f"{symbol}: request failed ({type(exc).__name__})") from None
            status = response.status_code
            if status >= 500:
                last_problem = f"HTTP {status}"
                continue
            if status == 429:
                raise RateLimited(f"Alpha Vantage rate limit (HTTP 429) while fetching {symbol}")
            if status in (401, 403):
                raise InvalidApiKey(
                    f"Alpha Vantage refused the request (HTTP {status}); check "
                    "ALPHAVANTAGE_API_KEY"
                )
            if status >= 400:
                raise ApiError(f"{symbol}: HTTP {status}")
            try:
                body = orjson.loads(response.content)
            except orjson.JSONDecodeError:
                raise ApiError(f"{symbol}: the response is not JSON") from None
            return check_body(body, self._api_key)
        raise RequestFailed(
            f"{symbol}: no answer from Alpha Vantage after {self.retries + 1} attempts "
            f"(last: {last_problem})"
        )

    def collect(self) -> CollectionResult:
        """Fetch and land every symbol; a run-ending error is returned in `result.error`.

        Per-symbol problems (an `Error Message` for one symbol, bad bars) are recorded and the
        run goes on; rate limits, a bad key, a spent budget or a stop end it, keeping what was
        already landed. Bars that cannot be written (an OSError: a full disk, a failed upload
        to a volume) end the run as LandingFailed; that symbol counts as failed, not landed.
        """
        result = CollectionResult(interval=self.interval)
        if self.landing_dir is not None:  # a data home's files are whole uploads: no temporaries
            remove_stale_temp_files(self.landing_dir / BARS)
            remove_stale_temp_files(self.landing_dir / REJECTS)
        rejects = PartitionedNdjsonWriter(self._rejects_home, "rejects")
        try:
            for symbol in self._symbols:
                if self._should_stop():
                    result.error = Stopped("stopped before every symbol was fetched")
                    break
                outcome = SymbolResult(symbol)
                result.results.append(outcome)
                try:
                    outcome.files, outcome.bars, outcome.rejected = self._collect_symbol(
                        symbol, rejects
                    )
                except (ApiError, RequestFailed) as exc:
                    outcome.error = f"{type(exc).__name__}: {exc}"
                except AlphaVantageError as exc:
                    outcome.error = f"{type(exc).__name__}: {exc}"
                    result.error = exc
                    break
                except OSError as exc:  # bars fetched but not landed: the budget was spent
                    # A volume's error names the file it could not write; a local one may not.
                    where = f" under {self.landing_dir}" if self.landing_dir is not None else ""
                    landing = LandingFailed(
                        f"cannot land the {self.interval} bars of {symbol}{where}: "
                        f"{type(exc).__name__}: {exc.strerror or exc}"
                    )
                    outcome.error = f"{type(landing).__name__}: {landing}"
                    result.error = landing
                    break
                finally:
                    if self._on_symbol is not None:
                        self._on_symbol(outcome)
        finally:
            rejects.flush()
            result.calls = self._calls
        return result

    def _collect_symbol(
        self, symbol: str, rejects: PartitionedNdjsonWriter
    ) -> tuple[list[PurePath], int, int]:
        body = self.fetch(symbol)
        fetched_at = utc_now_iso()
        bars, rejected = parse_bars(
            body, symbol=symbol, interval=self.interval, fetched_at=fetched_at
        )
        for reason, item in rejected:
            raw = orjson.dumps(item)
            rejects.add(
                fetched_at[:10],
                reject_record(
                    received_at=fetched_at, source=SOURCE, reason=reason, raw=raw,
                    raw_bytes=len(raw),
                ),
            )
        files = write_bars(self._landing, symbol=symbol, interval=self.interval, bars=bars)
        return files, len(bars), len(rejected)


def budget_path(home: Path | str) -> Path:
    """Where the persistent Alpha Vantage budget of a data home lives."""
    return Path(home) / "state" / "alphavantage_budget.json"


__all__ = [
    "AlphaVantageCollector",
    "BarSchedule",
    "AlphaVantageError",
    "ApiError",
    "BudgetExhausted",
    "BudgetUnreadable",
    "CallBudget",
    "CollectionResult",
    "InvalidApiKey",
    "LandingFailed",
    "RateLimited",
    "RequestFailed",
    "Stopped",
    "SymbolResult",
    "budget_path",
    "check_body",
    "schedule_path",
    "parse_bars",
]
