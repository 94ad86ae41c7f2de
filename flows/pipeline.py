"""The Prefect flows: ingest, transform (+ quality), training, drift, and the whole pipeline.

Each flow reads the settings once (`load_settings`) unless a caller hands them in, and calls
the job functions of `flows` — which wire the `ingest`, `ml` and `expectations` libraries —
inside tasks. Tasks retry where the failure is transient (a dropped connection, a locked
warehouse file, an unreachable webhook) and never where it is not (bad data, a failed check).
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from prefect import flow, get_run_logger, task

from flows.config import Settings, load_settings

#: Failures worth another try: the world was briefly unavailable, not the data wrong.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError)


def _transient_names() -> set[str]:
    return {"WarehouseBusy", "RequestFailed", "ConnectionClosed", "WebSocketException"}


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
        raise RuntimeError(f"the Finnhub collector exited with code {code}")
    return code


@task(name="collect bars", retries=3, retry_delay_seconds=[5, 30, 60],
      retry_condition_fn=retry_if_transient)
def collect_bars_task(settings: Settings, url: str | None) -> int:
    from flows.collect import run_collect_alphavantage

    return run_collect_alphavantage(settings, url=url, symbols=None, interval=None)


@task(name="dbt build", retries=2, retry_delay_seconds=[5, 20],
      retry_condition_fn=retry_if_transient)
def dbt_build_task(settings: Settings, target: str | None, full_refresh: bool) -> dict[str, int]:
    from flows.transform import run_transform

    return dict(run_transform(settings, target=target, full_refresh=full_refresh).row_counts)


@task(name="data quality", retries=2, retry_delay_seconds=[5, 20],
      retry_condition_fn=retry_if_transient)
def validate_task(settings: Settings, target: str | None, reference_time: datetime | None):
    from flows.validate import run_validate

    return run_validate(settings, target=target, reference_time=reference_time)


@task(name="quality gate")
def quality_gate_task(summary: Any, stage: str) -> None:
    """Stop the flow on a critical data-quality failure; alert on warnings."""
    from flows.validate import raise_on_critical

    raise_on_critical(summary, stage=stage)


@task(name="train, gate, promote, score", retries=1, retry_delay_seconds=[10],
      retry_condition_fn=retry_if_transient)
def train_task(settings: Settings):
    from flows.training import run_train

    return run_train(settings)


@task(name="score new trades", retries=2, retry_delay_seconds=[3, 10],
      retry_condition_fn=retry_if_transient)
def score_task(settings: Settings):
    from flows.training import run_score

    return run_score(settings)


@task(name="drift report and retraining decision", retries=2, retry_delay_seconds=[5, 20],
      retry_condition_fn=retry_if_transient)
def drift_task(settings: Settings, current_hours: float | None, reference_hours: float | None):
    from flows.drift import run_drift

    return run_drift(settings, current_hours=current_hours, reference_hours=reference_hours)


@task(name="monitoring report")
def report_task(settings: Settings):
    from flows.report import run_report

    return run_report(settings)


# --------------------------------------------------------------------------------- flows


@flow(name="ingest", log_prints=True)
def ingest_flow(
    url: str | None = None,
    duration_seconds: float = 300.0,
    max_trades: int | None = None,
    bars_url: str | None = None,
    bars: bool = True,
    settings: Settings | None = None,
) -> None:
    """Collect trades for a window (or a count), then bars within the rate budget."""
    settings = _settings(settings)
    collect_trades_task(settings, url, duration_seconds, max_trades)
    if bars:
        collect_bars_task(settings, bars_url)


@flow(name="transform", log_prints=True)
def transform_flow(
    target: str | None = None,
    full_refresh: bool = False,
    reference_time: datetime | None = None,
    settings: Settings | None = None,
):
    """dbt build, then the data-quality checkpoint; returns the quality summary."""
    settings = _settings(settings)
    dbt_build_task(settings, target, full_refresh)
    return validate_task(settings, target, reference_time)


@flow(name="training", log_prints=True)
def training_flow(
    reference_time: datetime | None = None,
    settings: Settings | None = None,
    quality: Any = None,
):
    """Check data quality, then tournament → gate → promote → score."""
    settings = _settings(settings)
    if quality is None:
        quality = validate_task(settings, None, reference_time)
    quality_gate_task(quality, "training")
    return train_task(settings)


def _start_training(settings: Settings, reference_time: datetime | None) -> str:
    """Start the training deployment on a Prefect server if there is one, else in-process."""
    logger = get_run_logger()
    if os.environ.get("PREFECT_API_URL"):
        from prefect.deployments import run_deployment

        try:
            run = run_deployment("training/nightly-retraining", timeout=0)
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
def score_flow(settings: Settings | None = None):
    """Champion scores for every gold row not yet scored."""
    return score_task(_settings(settings))


@flow(name="pipeline", log_prints=True)
def pipeline(
    reference_time: datetime | None = None,
    current_hours: float | None = None,
    reference_hours: float | None = None,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Transform and validate, train (stopped by a critical quality failure), drift, report."""
    settings = _settings(settings)
    quality = transform_flow(reference_time=reference_time, settings=settings)
    training = training_flow(reference_time=reference_time, settings=settings, quality=quality)
    drift = drift_flow(
        current_hours=current_hours,
        reference_hours=reference_hours,
        reference_time=reference_time,
        settings=settings,
    )
    report = report_task(settings)
    return {"quality": quality, "training": training, "drift": drift, "report": report}
