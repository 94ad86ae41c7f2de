"""`tradewatch drift`: compare the newest window with the one before it, report, decide.

Windows are measured in trade time, not wall-clock time (the simulator replays historical
dates): the current window is the newest `current_hours` of gold trades, the reference window
the `reference_days` before it. Champion scores, where they exist, add prediction drift, and
labels add performance drift. The report is written as NDJSON for dbt's monitoring model and
as an offline HTML page; the retraining trigger then decides, against its audit log.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table

from flows.alerts import alert_sender, send_drift_alert
from flows.config import Settings
from ml.audit import AuditLog
from ml.datasets import CATEGORICAL_FEATURES, NUMERIC_FEATURES, DuckDBWarehouse
from ml.drift import DriftReport, compute_drift, write_drift_ndjson
from ml.drift_report import write_drift_html
from ml.retraining import RetrainDecision, RetrainingPolicy, RetrainingTrigger

#: Clock features are left out: a newer window always differs from an older one in the hour.
CLOCK_FEATURES = ("hour_of_day", "minute_of_hour", "day_of_week")
DRIFT_NUMERIC_FEATURES = tuple(f for f in NUMERIC_FEATURES if f not in CLOCK_FEATURES)
#: `symbol` is compared too, so that a symbol appearing or vanishing shows up as drift.
DRIFT_CATEGORICAL_FEATURES = (*CATEGORICAL_FEATURES, "symbol")


class NotEnoughHistory(RuntimeError):
    """One of the two windows holds no trades yet."""


@dataclass(frozen=True)
class DriftOutcome:
    """The report, where it was written, and the retraining decision."""

    report: DriftReport
    ndjson: Path
    html: Path
    decision: RetrainDecision


def _window_rows(settings: Settings, start_ms: int, end_ms: int) -> pd.DataFrame:
    """Gold features in [start, end), with the label and the champion's score where known."""
    warehouse = DuckDBWarehouse(settings.paths.warehouse)
    columns = ", ".join(
        f"f.{c}" for c in (*DRIFT_NUMERIC_FEATURES, *DRIFT_CATEGORICAL_FEATURES)
    )
    scores_glob = settings.paths.scores / "date=*" / "*.parquet"
    has_scores = any(settings.paths.scores.glob("date=*/*.parquet"))
    score_join = (
        f"left join read_parquet('{scores_glob}') s on s.trade_id = f.trade_id"
        if has_scores else "left join (select null::varchar as trade_id, null::double as score) s"
        " on s.trade_id = f.trade_id"
    )
    sql = f"""
        select f.trade_id, f.trade_ts_ms, {columns}, l.is_anomaly, s.score
        from {warehouse.table('gold_trade_features')} f
        left join {warehouse.table('gold_anomaly_labels')} l on l.trade_id = f.trade_id
        {score_join}
        where f.trade_ts_ms >= {int(start_ms)} and f.trade_ts_ms < {int(end_ms)}
    """
    return warehouse.fetch(sql)


def _newest_trade_ms(settings: Settings) -> int:
    warehouse = DuckDBWarehouse(settings.paths.warehouse)
    newest = warehouse.fetch(
        f"select max(trade_ts_ms) as newest from {warehouse.table('gold_trade_features')}"
    )["newest"].iloc[0]
    if pd.isna(newest):
        raise NotEnoughHistory("gold_trade_features is empty: run `tradewatch transform` first")
    return int(newest)


def _new_labelled_rows(settings: Settings, log: AuditLog) -> int:
    """Labelled trades newer than the test window of the latest gate decision."""
    decisions = list(log.records("gate_decision"))
    since = decisions[-1].payload.get("test_window_end") if decisions else None
    warehouse = DuckDBWarehouse(settings.paths.warehouse)
    where = ""
    if since:
        since_ms = int(datetime.fromisoformat(str(since)).timestamp() * 1000)
        where = f"where f.trade_ts_ms > {since_ms}"
    count = warehouse.fetch(
        f"select count(*) as n from {warehouse.table('gold_anomaly_labels')} l "
        f"join {warehouse.table('gold_trade_features')} f on f.trade_id = l.trade_id {where}"
    )["n"].iloc[0]
    return int(count)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def print_drift_table(report: DriftReport, console: Console) -> None:
    """Per feature: statistic, threshold, drifted."""
    table = Table(title=f"Drift {report.run_id}")
    for title in ("feature", "kind", "statistic", "value", "threshold", "drifted"):
        table.add_column(title, justify="left" if title in ("feature", "kind") else "right")
    for feature in report.features:
        table.add_row(
            feature.feature,
            feature.kind,
            feature.statistic_name,
            f"{feature.statistic:.4f}",
            f"{feature.threshold:.3f}",
            "[red]yes[/]" if feature.drifted else "no",
        )
    console.print(table)


def run_drift(
    settings: Settings,
    *,
    current_hours: float | None = None,
    reference_hours: float | None = None,
    console: Console | None = None,
    now: datetime | None = None,
) -> DriftOutcome:
    """Drift report (table, NDJSON, HTML) and the retraining decision."""
    console = console or Console()
    config = settings.drift
    newest = datetime.fromtimestamp(_newest_trade_ms(settings) / 1000, UTC)
    current_end = newest + timedelta(milliseconds=1)
    current_start = current_end - timedelta(hours=current_hours or config.current_hours)
    reference_span = (
        timedelta(hours=reference_hours) if reference_hours
        else timedelta(days=config.reference_days)
    )
    reference_start = current_start - reference_span
    reference = _window_rows(settings, _ms(reference_start), _ms(current_start))
    current = _window_rows(settings, _ms(current_start), _ms(current_end))
    if reference.empty or current.empty:
        raise NotEnoughHistory(
            f"no trades in the {'reference' if reference.empty else 'current'} window "
            f"({reference_start:%Y-%m-%d %H:%M} → {current_end:%Y-%m-%d %H:%M} UTC): "
            "collect more history or shorten the windows"
        )
    scored = reference["score"].notna().all() and current["score"].notna().all()
    labelled = scored and reference["is_anomaly"].notna().all() \
        and current["is_anomaly"].notna().all()
    report = compute_drift(
        reference,
        current,
        numeric_features=DRIFT_NUMERIC_FEATURES,
        categorical_features=DRIFT_CATEGORICAL_FEATURES,
        reference_window=(reference_start, current_start),
        current_window=(current_start, current_end),
        psi_threshold=config.psi_threshold,
        js_threshold=config.js_threshold,
        bins=config.bins,
        reference_scores=reference["score"].to_numpy(float) if scored else None,
        current_scores=current["score"].to_numpy(float) if scored else None,
        reference_labels=reference["is_anomaly"].astype(bool).to_numpy() if labelled else None,
        current_labels=current["is_anomaly"].astype(bool).to_numpy() if labelled else None,
        performance_threshold=settings.retraining.performance_drop,
        run_ts=now,
    )
    ndjson = write_drift_ndjson(report, settings.paths.monitoring / "drift")
    html = write_drift_html(report, settings.paths.reports / "drift")
    print_drift_table(report, console)
    console.print(
        f"drift: {report.drifted_share:.0%} of input features drifted; report {html}"
    )
    sender = alert_sender(settings)
    send_drift_alert(sender, report, html_report=html)
    log = AuditLog(settings.paths.monitoring / "audit")
    retraining = settings.retraining
    trigger = RetrainingTrigger(
        log,
        RetrainingPolicy(
            performance_drop=retraining.performance_drop,
            min_new_labelled_rows=retraining.min_new_labelled_rows,
            cooldown_hours=retraining.cooldown_hours,
            max_per_day=retraining.max_per_day,
        ),
        notify=sender.send,
    )
    decision = trigger.decide(report, new_labelled_rows=_new_labelled_rows(settings, log), now=now)
    console.print(f"retraining: {'[bold]yes[/]' if decision.retrain else 'no'} — {decision.detail}")
    return DriftOutcome(report, ndjson, html, decision)
