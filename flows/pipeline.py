"""The Prefect flows: ingest, transform (+ quality), training, scoring, the scoring cycle, drift.

Each flow reads the settings once (`load_settings`) unless a caller hands them in, and calls
the job functions of `flows` — which wire the `ingest`, `ml` and `expectations` libraries —
inside tasks. Tasks retry where the failure is transient (a dropped connection, a locked
warehouse file, an unreachable webhook) and never where it is not (bad data, a failed check).
Every step that opens the warehouse holds the `tradewatch-warehouse` concurrency slot
(flows/warehouse.py), so flows of different deployments queue for it instead of colliding.

Quality on every path: a flow that trains, promotes or scores runs the checkpoint (which
alerts) and stops on a critical failure, unless `skip_quality_gate` says otherwise (audited).
A dbt build that fails after its retries raises a `dbt_build_failed` alert.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from prefect import flow, get_run_logger, task

from flows.config import Settings, load_settings

if TYPE_CHECKING:
    from prefect.client.schemas.objects import FlowRun

    from flows.drift import DriftOutcome


class CollectionFailed(RuntimeError):
    """A collector run ended without everything it was asked for (see its stderr line)."""


#: Failures worth another try: the world was briefly unavailable, not the data wrong.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError)


def _transient_names() -> set[str]:
    return {
        "WarehouseBusy", "WarehouseLocked", "RequestFailed", "ConnectionClosed",
        "WebSocketException", "PublishBusy",
    }


def is_transient(exc: BaseException) -> bool:
    """True for errors a retry can fix: connections, timeouts, a locked warehouse."""
    if isinstance(exc, TRANSIENT_ERRORS):
        return True
    if any(cls.__name__ in _transient_names() for cls in type(exc).__mro__):
        return True
    return isinstance(exc, OSError) and "lock" in str(exc).lower()


def retry_if_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect retry_condition_fn: retry only transient failures."""
    try:
        state.result()
    except Exception as exc:  # the task's own exception, re-raised by result()
        return is_transient(exc)
    return False


def _settings(settings: Settings | None) -> Settings:
    return settings if settings is not None else load_settings()


def _warehouse_retries(task_: Any, settings: Settings) -> Any:
    """`task_` retrying a busy warehouse with the delays of settings.cycle."""
    delays = list(settings.cycle.warehouse_retry_delays)
    return task_.with_options(retries=len(delays), retry_delay_seconds=delays or 0)


# --------------------------------------------------------------------------------- tasks


@task(name="collect trades", retries=3, retry_delay_seconds=[1, 5, 15],
      retry_condition_fn=retry_if_transient)
def collect_trades_task(
    settings: Settings, url: str | None, duration: float | None, max_trades: int | None
) -> int:
    from flows.collect import run_collect_finnhub

    code = run_collect_finnhub(
        settings, url=url, symbols=None, duration=duration, max_trades=max_trades
    )
    if code != 0:
        raise CollectionFailed(f"the Finnhub collector exited with code {code}")
    return code


@task(name="collect bars", retries=1, retry_delay_seconds=[60],
      retry_condition_fn=retry_if_transient)
def collect_bars_task(settings: Settings, url: str | None) -> int:
    """The bars that are due, within the daily call budget; a failed run fails the task."""
    from flows.collect import run_collect_alphavantage

    code = run_collect_alphavantage(
        settings, url=url, symbols=None, interval=None, scheduled=True
    )
    if code != 0:
        raise CollectionFailed(f"the Alpha Vantage collector exited with code {code}")
    return code


@task(name="feed check")
def feed_check_task(settings: Settings, market_time: datetime | None):
    """Alert symbols that landed nothing while their market was open."""
    from flows.feed import check_feeds

    return check_feeds(settings, market_time=market_time)


@task(name="dbt build", retries=6, retry_delay_seconds=[2, 5, 10, 20, 40, 60],
      retry_condition_fn=retry_if_transient)
def dbt_build_task(
    settings: Settings, target: str | None, full_refresh: bool, select: str | None = None,
) -> dict[str, int]:
    from flows.transform import run_transform

    result = run_transform(settings, target=target, full_refresh=full_refresh, select=select)
    return dict(result.row_counts)


@task(name="publish the analysts' database", retries=6,
      retry_delay_seconds=[2, 5, 10, 20, 40, 60], retry_condition_fn=retry_if_transient)
def publish_analysts_task(settings: Settings):
    """Copy the public models into the analysts' database (holding the warehouse slot)."""
    from flows.analysts import publish_analysts_database
    from flows.warehouse import warehouse_slot

    with warehouse_slot("publish the analysts' database"):
        return publish_analysts_database(settings)


def publish_analysts(settings: Settings, target: str | None = None) -> Any:
    """Publish the analysts' database after a local build, retried while the warehouse is busy.

    A final failure alerts `analysts_publish_failed` and does not stop the run: the build
    stands, and analysts keep the previous copy. On Databricks and Spark there is nothing to
    publish: analysts read the gold and monitoring schemas directly.
    """
    from prefect.logging import get_logger

    from flows.analysts import publish_or_alert
    from flows.engine import publishes_analysts_copy

    if not publishes_analysts_copy(settings, target):
        return None
    return publish_or_alert(
        settings,
        lambda line: get_logger("tradewatch.analysts").error("%s", line),
        _warehouse_retries(publish_analysts_task, settings),
    )


@task(name="data quality", retries=6, retry_delay_seconds=[2, 5, 10, 20, 40, 60],
      retry_condition_fn=retry_if_transient)
def validate_task(
    settings: Settings, target: str | None, reference_time: datetime | None,
    stage: str | None = None, settled_before: float | None = None,
):
    """The checkpoint, and one alert if it failed (not repeated while it fails the same way).

    `settled_before`: when the checked build started; trades landing since are the next
    build's (the collector never stops), not missing from bronze.
    """
    from flows.validate import run_quality_checkpoint

    return run_quality_checkpoint(
        settings, target=target, reference_time=reference_time, stage=stage,
        settled_before=settled_before,
    )


@task(name="quality gate")
def quality_gate_task(summary: Any, stage: str) -> None:
    """Stop the flow on a critical data-quality failure (its alert went out with the run)."""
    from flows.validate import raise_on_critical

    raise_on_critical(summary, stage=stage)


@task(name="quality gate skipped")
def quality_gate_skipped_task(settings: Settings, stage: str) -> None:
    """An explicit override: nothing is checked, and the audit log says so."""
    from flows.validate import apply_quality_gate

    apply_quality_gate(settings, stage=stage, skip=True)


@task(name="train, gate, promote, score", retries=1, retry_delay_seconds=[10],
      retry_condition_fn=retry_if_transient)
def train_task(settings: Settings):
    from flows.training import run_train

    return run_train(settings)


@task(name="score new trades", retries=6, retry_delay_seconds=[2, 5, 10, 20, 40, 60],
      retry_condition_fn=retry_if_transient)
def score_task(settings: Settings):
    from flows.training import run_score

    return run_score(settings)


@task(name="drift report and retraining decision", retries=2, retry_delay_seconds=[5, 20],
      retry_condition_fn=retry_if_transient)
def drift_task(
    settings: Settings, current_hours: float | None, reference_hours: float | None
) -> DriftOutcome:
    from flows.drift import run_drift
    from flows.warehouse import warehouse_slot

    with warehouse_slot("drift windows"):
        return run_drift(settings, current_hours=current_hours, reference_hours=reference_hours)


@task(name="monitoring report", retries=6, retry_delay_seconds=[2, 5, 10, 20, 40, 60],
      retry_condition_fn=retry_if_transient)
def report_task(settings: Settings):
    from flows.report import run_report
    from flows.warehouse import warehouse_slot

    with warehouse_slot("monitoring report"):
        # Its caller has just published the monitoring tables (PUBLISH_SELECTOR).
        return run_report(settings, refresh=False)


#: What the scoring cycle publishes after scoring: the scores and every model reading them, and
#: the monitoring tables read from the files the run just wrote (gate decisions, audit events,
#: drift reports, quality results), so that SQL sees what the run decided.
PUBLISH_SELECTOR = "gold_anomaly_scores+ tag:monitoring"


def build_warehouse(
    settings: Settings, target: str | None = None, full_refresh: bool = False,
    select: str | None = None, publish: bool = True,
) -> dict[str, int]:
    """`dbt build` as a retried task; alert `dbt_build_failed` once it has finally failed.

    With `publish` (the default), a successful build then publishes the analysts' database
    (`publish_analysts`).
    """
    from flows.alerts import alert_sender, send_dbt_failure_alert
    from flows.transform import TransformFailed

    try:
        counts = _warehouse_retries(dbt_build_task, settings)(
            settings, target, full_refresh, select
        )
    except TransformFailed as exc:
        send_dbt_failure_alert(alert_sender(settings), exc)
        raise
    if publish:
        publish_analysts(settings, target)
    return counts


def _quality_gate(
    settings: Settings, stage: str, reference_time: datetime | None, quality: Any,
    skip: bool, settled_before: float | None = None,
) -> Any:
    if skip:
        quality_gate_skipped_task(settings, stage)
        return quality
    if quality is None:
        quality = _warehouse_retries(validate_task, settings)(
            settings, None, reference_time, stage, settled_before
        )
    quality_gate_task(quality, stage)
    return quality


# --------------------------------------------------------------------------------- flows


@flow(name="ingest", log_prints=True)
def ingest_flow(
    url: str | None = None,
    duration_seconds: float | None = 300.0,
    max_trades: int | None = None,
    bars_url: str | None = None,
    bars: bool = True,
    settings: Settings | None = None,
) -> None:
    """Collect trades for a window (or a count; None: until stopped), then bars."""
    settings = _settings(settings)
    collect_trades_task(settings, url, duration_seconds, max_trades)
    if bars:
        collect_bars_task(settings, bars_url)


@flow(name="bars", log_prints=True)
def bars_flow(url: str | None = None, settings: Settings | None = None) -> int:
    """Alpha Vantage bars of the configured US equities, within the call budget."""
    return collect_bars_task(_settings(settings), url)


@flow(name="transform", log_prints=True)
def transform_flow(
    target: str | None = None,
    full_refresh: bool = False,
    reference_time: datetime | None = None,
    settings: Settings | None = None,
):
    """dbt build, then the data-quality checkpoint (alerting failures); returns its summary."""
    settings = _settings(settings)
    build_started = time.time()
    build_warehouse(settings, target, full_refresh)
    return _warehouse_retries(validate_task, settings)(
        settings, target, reference_time, None, build_started
    )


@flow(name="training", log_prints=True)
def training_flow(
    reference_time: datetime | None = None,
    settings: Settings | None = None,
    quality: Any = None,
    skip_quality_gate: bool = False,
):
    """Quality gate, then tournament → gate → promote → score."""
    settings = _settings(settings)
    _quality_gate(settings, "training", reference_time, quality, skip_quality_gate)
    return train_task(settings)


def _start_training(settings: Settings, reference_time: datetime | None) -> str:
    """Start the training deployment on a Prefect server if there is one, else in-process."""
    logger = get_run_logger()
    if os.environ.get("PREFECT_API_URL"):
        from prefect.deployments import run_deployment

        try:
            # sync_compatible: called from synchronous code it returns the FlowRun itself
            run = cast("FlowRun", run_deployment("training/nightly-retraining", timeout=0))
            logger.info("retraining started as deployment run %s", run.id)
            return f"deployment run {run.id}"
        except Exception as exc:  # no such deployment on this server: train here
            logger.warning("could not start the training deployment (%s); training in-process",
                           type(exc).__name__)
    training_flow(reference_time=reference_time, settings=settings)
    return "in-process"


@flow(name="drift", log_prints=True)
def drift_flow(
    current_hours: float | None = None,
    reference_hours: float | None = None,
    reference_time: datetime | None = None,
    settings: Settings | None = None,
):
    """Drift report → retraining trigger → training (when the trigger says so)."""
    settings = _settings(settings)
    outcome = drift_task(settings, current_hours, reference_hours)
    if outcome.decision.retrain:
        _start_training(settings, reference_time)
    return outcome


@flow(name="score", log_prints=True)
def score_flow(
    settings: Settings | None = None,
    quality: Any = None,
    skip_quality_gate: bool = False,
    reference_time: datetime | None = None,
    publish: bool = True,
):
    """Quality gate, then the champion's scores for every trade it has not scored; publish."""
    settings = _settings(settings)
    _quality_gate(settings, "scoring", reference_time, quality, skip_quality_gate)
    outcome = _warehouse_retries(score_task, settings)(settings)
    if publish:
        build_warehouse(settings, select=PUBLISH_SELECTOR)
    return outcome


@dataclass
class CycleResult:
    """What one scoring cycle did, and how long each step took (seconds)."""

    steps: dict[str, float] = field(default_factory=dict)
    feed: Any = None
    quality: Any = None
    scoring: Any = None
    report: Any = None
    skipped_scoring: str | None = None


@flow(name="cycle", log_prints=True)
def cycle_flow(
    collect_seconds: float | None = None,
    url: str | None = None,
    reference_time: datetime | None = None,
    skip_quality_gate: bool = False,
    report: bool = True,
    settings: Settings | None = None,
) -> CycleResult:
    """One scoring cycle: collect → dbt build → quality → score → publish → report.

    `collect_seconds` (default settings.cycle.collect_seconds) > 0 collects in the cycle
    first; 0 takes what the continuous-ingestion deployment landed. `reference_time` is the
    market's clock (a replay's; default now) for freshness and the feed check. A critical
    quality failure stops the cycle before scoring (and alerts); without a champion the
    cycle builds and checks but has nothing to score with. The analysts' database is
    published once, at the end of a cycle that passed the quality gate: with the new scores,
    or, without a champion, with the new trades.
    """
    from flows.training import registry

    settings = _settings(settings)
    logger = get_run_logger()
    result = CycleResult()
    collect = settings.cycle.collect_seconds if collect_seconds is None else collect_seconds

    def step(name: str, work: Any) -> Any:
        started = time.monotonic()
        try:
            return work()
        finally:
            result.steps[name] = time.monotonic() - started

    if collect > 0:
        step("collect", lambda: collect_trades_task(settings, url, collect, None))
    result.feed = step("feed check", lambda: feed_check_task(settings, reference_time))
    build_started = time.time()
    step("dbt build", lambda: build_warehouse(settings, publish=False))
    result.quality = step("quality", lambda: _quality_gate(
        settings, "scoring", reference_time, None, skip_quality_gate, build_started))
    if registry(settings).version_for_alias("champion") is None:
        result.skipped_scoring = "no champion yet: run `tradewatch train`"
        logger.warning("cycle: %s", result.skipped_scoring)
        step("publish the analysts' database", lambda: publish_analysts(settings))
    else:
        result.scoring = step("score", lambda: _warehouse_retries(score_task, settings)(settings))
        step("publish scores", lambda: build_warehouse(settings, select=PUBLISH_SELECTOR))
    if report:
        result.report = step("report", lambda: report_task(settings))
    logger.info("cycle steps: %s", ", ".join(f"{k} {v:.1f} s" for k, v in result.steps.items()))
    return result


@flow(name="pipeline", log_prints=True)
def pipeline(
    reference_time: datetime | None = None,
    current_hours: float | None = None,
    reference_hours: float | None = None,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Transform and validate, train (stopped by a critical quality failure), drift, publish
    the scores and the monitoring tables, report."""
    settings = _settings(settings)
    quality = transform_flow(reference_time=reference_time, settings=settings)
    training = training_flow(reference_time=reference_time, settings=settings, quality=quality)
    drift = drift_flow(
        current_hours=current_hours,
        reference_hours=reference_hours,
        reference_time=reference_time,
        settings=settings,
    )
    build_warehouse(settings, select=PUBLISH_SELECTOR)
    report = report_task(settings)
    return {"quality": quality, "training": training, "drift": drift, "report": report}
