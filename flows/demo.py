"""`tradewatch demo`: the main job on one machine, from an empty `data/`.

Starts the simulated market on 127.0.0.1, runs the real collectors against it, builds the
warehouse and prints where to look next. A second run continues the simulated market where the
first one stopped, so every later stage sees new data and runs incrementally.
"""

from __future__ import annotations

import json
import math
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prefect import flow
from rich.console import Console
from rich.table import Table

from core.datahome import write_atomic
from core.warehouse import Warehouse
from flows.analysts import analysts_database
from flows.config import Settings
from flows.engine import open_warehouse
from ingest.alphavantage import AlphaVantageCollector, CallBudget
from ingest.finnhub import CollectorStats, FinnhubCollector
from ingest.simulator import Simulator, SimulatorConfig
from ingest.simulator.sessions import day_open_ms, session_at, trading_days_from
from ml.datasets import load_ground_truth_events
from ml.rules import RULES_MODEL_NAME

if TYPE_CHECKING:
    from flows.training import TrainOutcome

#: Two whole trading days (04:00–20:00 New York each): enough for train, validation and test
#: windows with a one-hour purge gap between them. The default start's two days straddle the
#: March DST change.
DEFAULT_MINUTES = 2 * 960.0
TRADING_DAY_MINUTES = 960.0
#: The simulated Alpha Vantage serves the demo generously; the real budget stays in the config.
DEMO_AV_CALLS_PER_MINUTE = 600
DEMO_AV_CALLS_PER_DAY = 5000


class DemoFailed(RuntimeError):
    """A stage of the demo failed; the message names the stage."""


@dataclass
class DemoReport:
    """What the demo did, for the closing summary."""

    window_start: datetime
    window_end: datetime
    simulator_trades: int = 0
    anomaly_events: int = 0
    finnhub: CollectorStats | None = None
    bars_landed: int = 0
    stages: list[tuple[str, str, float]] = field(default_factory=list)
    row_counts: dict[str, int] = field(default_factory=dict)
    quality: Any = None
    training: Any = None
    drift: Any = None
    monitoring_html: Path | None = None


def _state_path(settings: Settings) -> Path:
    return settings.paths.home / "state" / "demo.json"


def _window_start(settings: Settings) -> datetime:
    """Where the simulated market starts: the configured start, or where the last run ended."""
    path = _state_path(settings)
    if path.exists():
        try:
            return datetime.fromisoformat(json.loads(path.read_text())["next_start"])
        except (ValueError, KeyError, TypeError) as exc:
            raise DemoFailed(f"demo state {path} is damaged ({exc}); delete it to start over") \
                from exc
    return settings.simulator.start


def window_end(start: datetime, trading_minutes: float) -> datetime:
    """The instant `trading_minutes` of open market (04:00–20:00 New York) after `start`."""
    moment = next_window_start(start)
    remaining = timedelta(minutes=trading_minutes)
    while True:
        moment_ms = int(moment.timestamp() * 1000)
        day = next(trading_days_from(moment_ms))
        close = datetime.fromtimestamp(day_open_ms(day) / 1000, UTC) + timedelta(
            minutes=TRADING_DAY_MINUTES
        )
        if moment + remaining <= close:
            return moment + remaining
        remaining -= close - moment
        moment = next_window_start(close)


def next_window_start(end: datetime) -> datetime:
    """Where the next run starts: `end`, or the next session's open when the market is closed."""
    end_ms = int(end.timestamp() * 1000)
    if session_at(end_ms) != "closed":
        return end
    day = next(trading_days_from(end_ms))
    return datetime.fromtimestamp(day_open_ms(day) / 1000, UTC)


def _save_window_end(settings: Settings, end: datetime) -> None:
    end = next_window_start(end)
    write_atomic(_state_path(settings), json.dumps({"next_start": end.isoformat()}))


def _collect_trades(
    settings: Settings, config: SimulatorConfig, console: Console, report: DemoReport
) -> None:
    """Serve the window and collect every trade the simulator sends."""
    with Simulator(config).start() as market:
        collector = FinnhubCollector(
            url=market.ws_url,
            symbols=settings.symbols,
            landing_dir=settings.paths.landing,
            flush_trades=settings.finnhub.flush_trades,
            flush_seconds=settings.finnhub.flush_seconds,
            reconnect_initial_seconds=settings.finnhub.reconnect_initial_seconds,
            reconnect_max_seconds=settings.finnhub.reconnect_max_seconds,
        )
        worker = threading.Thread(target=collector.run, name="finnhub-collector", daemon=True)
        worker.start()
        with console.status("collecting simulated trades") as status:
            while not market.wait_finished(timeout=0.5):
                if not worker.is_alive():
                    raise DemoFailed("the Finnhub collector stopped before the market closed")
                stats = collector.stats
                status.update(
                    f"collecting simulated trades: {stats.received:,} received, "
                    f"{stats.landed:,} landed"
                )
            sent = market.stats().trades_sent
            deadline = time.monotonic() + 60
            while collector.stats.received < sent and time.monotonic() < deadline:
                time.sleep(0.05)
        collector.stop()
        worker.join(timeout=60)
        final = market.stats()
    report.simulator_trades = final.trades_sent
    report.anomaly_events = final.events_sent
    report.finnhub = collector.stats
    if report.finnhub.landed < final.trades_sent:
        raise DemoFailed(
            f"collector landed {report.finnhub.landed:,} of {final.trades_sent:,} trades sent"
        )


def _collect_bars(settings: Settings, config: SimulatorConfig, report: DemoReport) -> None:
    """Fetch intraday and daily bars from the simulated Alpha Vantage."""
    with Simulator(config).start() as market:
        budget = CallBudget(
            settings.paths.home / "state" / "demo_alphavantage_budget.json",
            calls_per_minute=DEMO_AV_CALLS_PER_MINUTE,
            calls_per_day=DEMO_AV_CALLS_PER_DAY,
        )
        for interval in (settings.alphavantage.interval, "daily"):
            result = AlphaVantageCollector(
                base_url=market.av_url,
                api_key=None,  # the simulator needs no key, and a loopback URL gets none
                symbols=settings.symbols,
                interval=interval,
                landing_dir=settings.paths.landing,
                budget=budget,
            ).collect()
            if result.error is not None or result.failed:
                problem = result.error or result.failed[0].error
                raise DemoFailed(f"Alpha Vantage {interval} bars: {problem}")
            report.bars_landed += result.bars


def _stage(report: DemoReport, console: Console, name: str, work) -> None:
    started = time.monotonic()
    console.rule(f"[bold]{name}")
    try:
        work()
    except Exception as exc:
        report.stages.append((name, "failed", time.monotonic() - started))
        raise DemoFailed(f"{name}: {type(exc).__name__}: {exc}") from exc
    report.stages.append((name, "ok", time.monotonic() - started))


def _top_anomalies(settings: Settings, limit: int = 5) -> list[tuple]:
    """The champion's highest scores (gold_anomaly_scores), with the simulator's ground truth
    (read here, not by the warehouse: the query must run on every engine)."""
    warehouse = open_warehouse(settings)
    frame = warehouse.query(
        "select s.trade_id, s.symbol, s.trade_ts, s.score, s.risk_level "
        f"from {warehouse.table('gold_anomaly_scores')} s "
        f"order by s.score desc, s.trade_id limit {int(limit)}"
    )
    kinds: dict[str, str] = {}
    if (settings.paths.ground_truth / "trades.ndjson").exists():
        truth = load_ground_truth_events(settings.paths.ground_truth)
        kinds = dict(zip(truth["trade_id"], truth["kind"], strict=True))
    return [(row.symbol, row.trade_ts, row.score, row.risk_level, kinds.get(str(row.trade_id)))
            for row in frame.itertuples(index=False)]


def _summary(settings: Settings, report: DemoReport, console: Console) -> None:
    table = Table(title="Tradewatch demo", show_lines=False)
    table.add_column("stage")
    table.add_column("result")
    table.add_column("seconds", justify="right")
    for name, outcome, seconds in report.stages:
        table.add_row(name, outcome, f"{seconds:.1f}")
    console.print(table)
    stats = report.finnhub
    console.print(
        f"market window {report.window_start:%Y-%m-%d %H:%M} → {report.window_end:%H:%M %Z}: "
        f"{report.simulator_trades:,} trades sent, {report.anomaly_events:,} anomaly events"
    )
    if stats is not None:
        console.print(f"finnhub collector: {stats.summary()}")
    console.print(f"alphavantage collector: {report.bars_landed:,} bars landed")
    layers = ("bronze_trades", "silver_trades", "silver_trades_quarantine",
              "gold_trade_features", "gold_anomaly_labels")
    # In this process: dbt's database instance (and its file lock) is still open here.
    warehouse = open_warehouse(settings)
    counts = warehouse.query(" union all ".join(
        f"select '{name}' as name, count(*) as n from {warehouse.table(name)}" for name in layers
    ))
    console.print("rows per layer: " + ", ".join(
        f"{name} {int(n):,}" for name, n in zip(counts["name"], counts["n"], strict=True)))
    console.print(scores_summary(warehouse))
    quality = report.quality
    if quality is not None:
        console.print(
            f"data quality: {len(quality.outcomes)} expectations, "
            f"{len(quality.critical_failures)} critical and "
            f"{len(quality.warning_failures)} warning failures"
        )
    training = report.training
    if training is not None:
        winner = training.leaderboard.winner
        decision = training.decision
        event_ap = winner.event_average_precision
        console.print(
            f"tournament winner: {winner.model_name} (test event AP "
            f"{'–' if event_ap is None else f'{event_ap:.3f}'}, trade PR-AUC "
            f"{winner.pr_auc:.3f}); gate on version {decision.challenger_version}: "
            f"{decision.summary()}",
            highlight=False,
        )
        versus = rules_beside_champion(training)
        if versus:
            console.print(versus, highlight=False)
    top = _top_anomalies(settings)
    if top:
        anomalies = Table(title="Top anomalies (champion scores)")
        for title in ("symbol", "trade time (UTC)", "score", "risk", "injected as"):
            anomalies.add_column(title)
        for symbol, ts, score, risk, truth in top:
            anomalies.add_row(symbol, f"{ts:%Y-%m-%d %H:%M:%S}", f"{score:.3f}", risk,
                              truth if isinstance(truth, str) else "–")
        console.print(anomalies)
    drift = report.drift
    if drift is not None:
        console.print(
            f"drift: {drift.report.drifted_share:.0%} of features drifted; retraining "
            f"{'triggered' if drift.decision.retrain else 'not needed'} — {drift.decision.detail}"
        )
    home = settings.paths.home
    console.print("\n[bold]Where to look next[/]")
    console.print("  tradewatch ui      Prefect UI :4200, MLflow UI :5000, dbt docs :8080")
    docs = quality.data_docs_index if quality is not None else None
    if docs:
        console.print(f"  Data Docs         {docs}")
    if drift is not None:
        console.print(f"  drift report      {drift.html}")
    if report.monitoring_html is not None:
        console.print(f"  monitoring report {report.monitoring_html}")
    analysts = analysts_database(settings)
    if analysts.exists():
        console.print('  SQL shell         tradewatch sql   (read-only, never blocks the pipeline;'
                      ' e.g. tradewatch sql -c "select count(*) from gold_flagged_trades")')
        console.print(f"  analysts' DB      {analysts}")
        console.print("  metrics           tradewatch mf query --saved-query daily_surveillance")
    else:
        console.print(f"  warehouse         {home / 'warehouse.duckdb'} (the analysts' copy "
                      "was not published: see the log above)")


def rules_beside_champion(training: TrainOutcome) -> str | None:
    """One line: the rule deck's event recall and trade precision beside the champion's, both
    on the tournament's test window (None when the rules were not judged)."""
    rules = training.leaderboard.baseline(RULES_MODEL_NAME)
    if rules is None:
        return None
    decision = training.decision
    version: str | None = decision.champion_version
    champion = decision.champion_metrics or {}
    if decision.promote:
        champion, version = decision.challenger_metrics, decision.challenger_version

    def figure(value: float | None) -> str:
        return "–" if value is None else f"{value:.3f}"

    line = (
        f"rules (gold_rule_flags) on the same test window: event recall "
        f"{figure(rules.evaluation.event_recall)}, trade precision "
        f"{figure(rules.evaluation.trade_precision)}"
    )
    if version is None:
        return line + "; no champion to compare with"
    return (
        line + f" — champion version {version}: event recall "
        f"{figure(champion.get('event_recall'))}, trade precision "
        f"{figure(champion.get('trade_precision'))}"
    )


def scores_summary(warehouse: Warehouse) -> str:
    """One line: does every gold trade have exactly one current champion score?"""
    row = warehouse.query(
        "select"
        f" (select count(*) from {warehouse.table('gold_trade_features')}) as trades,"
        f" (select count(*) from {warehouse.table('gold_anomaly_scores')}) as scores,"
        f" (select count(distinct trade_id) from {warehouse.table('gold_anomaly_scores')})"
        " as scored_trades,"
        f" (select count(*) from {warehouse.table('gold_trade_features')} f"
        f" where not exists (select 1 from {warehouse.table('gold_anomaly_scores')} s"
        " where s.trade_id = f.trade_id)) as unscored,"
        f" (select string_agg(distinct model_version, ', ') from"
        f" {warehouse.table('gold_anomaly_scores')}) as versions"
    ).iloc[0]
    trades, scores, unscored = int(row.trades), int(row.scores), int(row.unscored)
    versions = row.versions or "none"
    if trades and not unscored and scores == trades == int(row.scored_trades):
        return (f"gold_anomaly_scores: {scores:,} current champion scores, one for each of the "
                f"{trades:,} gold trades (model version {versions})")
    return (f"gold_anomaly_scores: {scores:,} scores for {trades:,} gold trades; {unscored:,} "
            f"trades have no current champion score (model version {versions})")


def _market_config(settings: Settings, start: datetime, duration: timedelta, seed: int | None):
    return SimulatorConfig(
        seed=settings.simulator.seed if seed is None else seed,
        symbols=settings.symbols,
        start=start,
        speed=0.0,
        trades_per_second=settings.simulator.trades_per_second,
        anomaly_rate=settings.simulator.anomaly_rate,
        duration_seconds=duration.total_seconds(),
        av_calls_per_minute=DEMO_AV_CALLS_PER_MINUTE,
        av_calls_per_day=DEMO_AV_CALLS_PER_DAY,
        ground_truth_dir=settings.paths.ground_truth,
    )


@flow(name="demo", log_prints=True)
def demo_flow(settings: Settings, seed: int | None = None, minutes: float | None = None):
    """Simulated market → collectors → dbt → quality → tournament/gate/score → drift."""
    from flows.pipeline import drift_flow, score_flow, training_flow, transform_flow
    from flows.training import registry

    console = Console()
    start = next_window_start(_window_start(settings))
    trading_minutes = minutes or DEFAULT_MINUTES
    end = window_end(start, trading_minutes)
    duration = end - start
    report = DemoReport(window_start=start, window_end=end)
    market = _market_config(settings, start, duration, seed)
    # Train on this run's window: a second run continues the market and stays as quick.
    history_days = max(1.0, math.ceil(duration.total_seconds() / 86400))
    settings = settings.model_copy(update={"training": settings.training.model_copy(
        update={"history_days": history_days})})
    console.print(
        f"Tradewatch demo: {len(settings.symbols)} symbols, simulated market from "
        f"{start.astimezone(UTC):%Y-%m-%d %H:%M} UTC for {trading_minutes:,.0f} trading minutes, "
        f"state in {settings.paths.home}"
    )
    _stage(report, console, "collect trades (Finnhub protocol)",
           lambda: _collect_trades(settings, market, console, report))
    _stage(report, console, "collect bars (Alpha Vantage protocol)",
           lambda: _collect_bars(settings, market, report))
    _save_window_end(settings, report.window_end)
    # Freshness is judged against the simulated clock: the market replays a past date.
    now = report.window_end
    quality = None

    def transform() -> None:
        nonlocal quality
        quality = transform_flow(reference_time=now, settings=settings)
        report.quality = quality

    def train() -> None:
        report.training = training_flow(reference_time=now, settings=settings, quality=quality)

    def drift() -> None:
        from flows.drift import NotEnoughHistory

        # The newest trading day against the one before it.
        try:
            report.drift = drift_flow(
                current_hours=16, reference_hours=72, reference_time=now, settings=settings
            )
        except NotEnoughHistory as exc:  # a market shorter than two trading days
            console.print(f"drift: not judged yet ({exc})", highlight=False)

    _stage(report, console, "build and validate the warehouse (dbt build, Great Expectations)",
           transform)
    def score() -> None:
        score_flow(settings=settings, quality=quality, publish=False)

    if registry(settings).version_for_alias("champion") is None:
        _stage(report, console, "train, gate, promote, score (MLflow)", train)
        _stage(report, console, "drift report and retraining decision", drift)
    else:
        # A champion exists: check the new data first; the trigger retrains when it must
        # (and that training scores too), otherwise the champion scores the new trades.
        _stage(report, console, "drift report and retraining decision", drift)
        if report.drift is None or not report.drift.decision.retrain:
            _stage(report, console, "score new trades with the champion", score)

    def publish() -> None:
        from flows.pipeline import PUBLISH_SELECTOR, build_warehouse

        build_warehouse(settings, select=PUBLISH_SELECTOR)

    published = registry(settings).version_for_alias("champion") is not None
    if published:
        from flows.pipeline import PUBLISH_SELECTOR

        _stage(report, console,
               f"publish the scores and monitoring (dbt build {PUBLISH_SELECTOR})", publish)

    def monitoring_report() -> None:
        from flows.report import run_report

        # Without a champion nothing was published: the report rebuilds the monitoring tables.
        report.monitoring_html = run_report(settings, console=console, refresh=not published)

    _stage(report, console, "monitoring report", monitoring_report)
    _summary(settings, report, console)
    return report


def run_demo(settings: Settings, *, seed: int | None = None, minutes: float | None = None) -> int:
    """Run the main job on DuckDB with the simulated market; return the exit code."""
    demo_flow(settings=settings, seed=seed, minutes=minutes)
    return 0
