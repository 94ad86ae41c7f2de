"""`tradewatch collect finnhub|alphavantage`: wire settings, keys and signals to the collectors.

Each entry point returns an exit code: 0 when everything asked for was collected, 1 when a
run failed or stopped early (a refused key, a rate limit, a spent budget), 2 for bad input
(a missing key, a bad symbol or URL, a key that would go in clear text or to a foreign host).
Failures are one line on stderr, `tradewatch: <Type>: <what to do>`; the summary line goes to
stdout whatever happened.

API keys go only over TLS to the provider (finnhub.io, alphavantage.co), or to a URL listed in
the provider's `key_urls` setting, which each run reports on stderr. Any other URL (the
simulator on 127.0.0.1) gets no key, even when the variable is set.

The collectors' alerts (a silent feed, landed files that cannot be written) go through
flows.alerts.AlertSender: the webhook and the audit log.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.live import Live
from rich.text import Text

from core.datahome import LANDING, LANDING_BARS, LANDING_TRADES, LocalDataHome, within
from core.volume import MissingVolumeSetting
from flows.alerts import alert_sender
from flows.config import Settings
from flows.engine import data_home, location
from ingest.alphavantage import (
    ALPHAVANTAGE_DOMAIN,
    AlphaVantageCollector,
    BarSchedule,
    CallBudget,
    SymbolResult,
    budget_path,
    schedule_path,
)
from ingest.api_keys import (
    ApiKey,
    KeyNotAllowed,
    MissingApiKey,
    is_provider_host,
    key_destination,
    redact_credentials,
    refuse_key_destination,
)
from ingest.finnhub import FINNHUB_DOMAIN, CollectorStats, FinnhubCollector
from ingest.landing import LandingError
from ingest.symbols import InvalidSymbol, validate_symbols

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def resolve_api_key(
    env_name: str,
    url: str,
    provider_domain: str,
    key_urls: tuple[str, ...] = (),
    *,
    say: Callable[[str], None] = lambda text: print(text, file=sys.stderr),
) -> ApiKey | None:
    """The key from `env_name` when `url` may receive it; None when it gets no key.

    Raises MissingApiKey when the URL is the real provider's and the variable is unset, and
    KeyNotAllowed for the provider's host in clear text. A key sent to a listed URL, or held
    back from an unlisted one, is reported through `say` (stderr).
    """
    value = os.environ.get(env_name, "")
    provider = is_provider_host(url, provider_domain)
    allowed = key_destination(url, provider_domain, key_urls)
    if provider and allowed is None:
        raise refuse_key_destination(url, provider_domain, env_name)
    if not value:
        if provider:
            raise MissingApiKey(f"set {env_name} or pass --url to use the simulator")
        return None
    shown = redact_credentials(url)
    if allowed is None:
        say(f"tradewatch: {env_name} is set but not sent to {shown} (keys go only over TLS to "
            f"{provider_domain}, or to a URL listed in key_urls)")
        return None
    if not provider:
        say(f"tradewatch: sending {env_name} to {shown}: {allowed}")
    return ApiKey(value)


def _fail(exc: BaseException) -> None:
    print(f"tradewatch: {type(exc).__name__}: {exc}", file=sys.stderr)


@contextlib.contextmanager
def stop_on_signals(stop: Callable[[], None]) -> Iterator[None]:
    """Call `stop` on SIGINT/SIGTERM while the block runs (main thread only), then restore."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}

    def handler(signum: int, frame: object) -> None:
        stop()

    for signum in (signal.SIGINT, signal.SIGTERM):
        previous[signum] = signal.signal(signum, handler)
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


class _FinnhubProgress:
    """Live one-line progress on a terminal: trades/s, landed, rejected, reconnects."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._live: Live | None = None
        self._last: tuple[float, int] | None = None

    def __enter__(self) -> _FinnhubProgress:
        if self._console.is_terminal:
            self._live = Live(console=self._console, auto_refresh=False, transient=True)
            self._live.__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)

    def __call__(self, stats: CollectorStats) -> None:
        if self._live is None:
            return
        now = time.monotonic()
        rate = 0.0
        if self._last is not None and now > self._last[0]:
            rate = (stats.received - self._last[1]) / (now - self._last[0])
        self._last = (now, stats.received)
        line = (
            f"[bold]finnhub[/] {rate:>10,.0f} trades/s  received {stats.received:,}  "
            f"landed {stats.landed:,}  rejected {stats.rejected:,}  "
            f"reconnects {stats.reconnects:,}"
        )
        if stats.last_problem:
            line += f"  [dim]({stats.last_problem[:80]})[/]"
        self._live.update(Text.from_markup(line), refresh=True)


def run_collect_finnhub(
    settings: Settings,
    *,
    url: str | None,
    symbols: tuple[str, ...] | None,
    duration: float | None,
    max_trades: int | None,
) -> int:
    """Run the Finnhub collector until stopped, the duration ends or max_trades arrive."""
    config = settings.finnhub
    endpoint = url or config.url
    console = Console(stderr=True)
    try:
        chosen = validate_symbols(list(symbols or settings.symbols))
        api_key = resolve_api_key(config.api_key_env, endpoint, FINNHUB_DOMAIN, config.key_urls)
        progress = _FinnhubProgress(console)
        home = data_home(settings)  # on Databricks: the Unity Catalog volume (Files API)
        collector = FinnhubCollector(
            url=endpoint,
            symbols=chosen,
            landing_dir=(settings.paths.landing if isinstance(home, LocalDataHome)
                         else within(home, LANDING)),
            api_key=api_key,
            key_urls=config.key_urls,
            flush_trades=config.flush_trades,
            flush_seconds=config.flush_seconds,
            reconnect_initial_seconds=config.reconnect_initial_seconds,
            reconnect_max_seconds=config.reconnect_max_seconds,
            ping_interval_seconds=config.ping_interval_seconds,
            read_idle_timeout_seconds=config.read_idle_timeout_seconds,
            landing_retry_max_seconds=config.landing_retry_max_seconds,
            landing_grace_seconds=config.landing_grace_seconds,
            duration_seconds=duration,
            max_trades=max_trades,
            on_progress=progress,
            notify=alert_sender(settings).send,
        )
    except (InvalidSymbol, MissingApiKey, KeyNotAllowed, LandingError, ValueError,
            MissingVolumeSetting) as exc:
        _fail(exc)
        return EXIT_BAD_INPUT

    code = EXIT_OK
    with stop_on_signals(collector.stop), progress:
        try:
            collector.run()
        except Exception as exc:  # typed errors become one line; the summary still prints
            _fail(exc)
            code = EXIT_FAILED
    stats = collector.stats
    rate = stats.landed / stats.elapsed_seconds if stats.elapsed_seconds > 0 else 0.0
    reasons = ", ".join(f"{code} {n:,}" for code, n in sorted(stats.reject_reasons.items()))
    print(
        f"finnhub: {stats.summary()}{f' ({reasons})' if reasons else ''} in "
        f"{stats.elapsed_seconds:.1f} s ({rate:,.0f} trades/s) -> "
        f"{location(home, LANDING_TRADES)}",
        flush=True,
    )
    return code


def run_collect_alphavantage(
    settings: Settings,
    *,
    url: str | None,
    symbols: tuple[str, ...] | None,
    interval: str | None,
    scheduled: bool = False,
    clock: Callable[[], float] = time.time,
) -> int:
    """Fetch bars for every symbol within the persistent call budget and land them.

    `scheduled` (the ingest deployment) fetches only the symbols whose bars are due
    (ingest.alphavantage.BarSchedule), so a run every five minutes spreads the daily budget
    over the day instead of spending it in the first runs; with none due it lands nothing and
    succeeds. Every successful fetch, scheduled or not, is noted in the schedule.

    Bars land in the configured data home (on Databricks the Unity Catalog volume, through the
    Files API). The call budget and the bar schedule stay local files under the local data
    home: they are this worker's throttle on its own API key, not data dbt reads.
    """
    config = settings.alphavantage
    endpoint = url or config.url
    console = Console(stderr=True)
    try:
        # Alpha Vantage's intraday series are US equities': crypto and forex come from Finnhub.
        chosen = validate_symbols(list(symbols or settings.asset_class_symbols("us_equity")))
        api_key = resolve_api_key(
            config.api_key_env, endpoint, ALPHAVANTAGE_DOMAIN, config.key_urls
        )
        home = data_home(settings)  # on Databricks: the Unity Catalog volume (Files API)
        # Local operator state, whatever the data home: per-worker throttles of the API key.
        budget = CallBudget(
            budget_path(settings.paths.home),
            calls_per_minute=config.calls_per_minute,
            calls_per_day=config.calls_per_day,
            clock=clock,
        )
        schedule = BarSchedule(
            schedule_path(settings.paths.home), calls_per_day=config.calls_per_day, clock=clock
        )
        if scheduled:
            _, used = budget.used()
            due, next_at = schedule.due(chosen, config.calls_per_day - used)
            if not due:
                when = (
                    f"next due at {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(next_at))}Z"
                    if next_at is not None else
                    f"the budget is spent ({used} of {config.calls_per_day} calls in 24 h)"
                )
                print(f"alphavantage: no bars due ({when})", flush=True)
                return EXIT_OK
            chosen = tuple(due)

        def report(outcome: SymbolResult) -> None:
            if console.is_terminal:
                if outcome.error:
                    console.print(f"  {outcome.symbol}: [red]{outcome.error}[/]")
                else:
                    console.print(
                        f"  {outcome.symbol}: {outcome.bars:,} bars, {len(outcome.files)} files"
                    )

        collector = AlphaVantageCollector(
            base_url=endpoint,
            api_key=api_key,
            key_urls=config.key_urls,
            symbols=chosen,
            interval=interval or config.interval,
            landing_dir=(settings.paths.landing if isinstance(home, LocalDataHome)
                         else within(home, LANDING)),
            budget=budget,
            timeout_seconds=config.timeout_seconds,
            retries=config.retries,
            on_symbol=report,
        )
    except (InvalidSymbol, MissingApiKey, KeyNotAllowed, LandingError, ValueError,
            MissingVolumeSetting) as exc:
        _fail(exc)
        return EXIT_BAD_INPUT

    code = EXIT_OK
    with stop_on_signals(collector.stop):
        try:
            result = collector.collect()
        except Exception as exc:
            _fail(exc)
            return EXIT_FAILED
    schedule.record([outcome.symbol for outcome in result.results if not outcome.error])
    print(
        f"alphavantage: {result.summary()} -> {location(home, LANDING_BARS)}", flush=True
    )
    for failed in result.failed:
        if result.error is None or failed is not result.results[-1]:
            print(f"alphavantage: {failed.symbol}: {failed.error}", file=sys.stderr)
    if result.error is not None:
        _fail(result.error)
        code = EXIT_FAILED
    elif result.failed:
        code = EXIT_FAILED
    return code
