"""`tradewatch validate`: the data-quality checkpoint over the warehouse, and the gate on it.

`run_validate` reads the settings, opens the warehouse of the target (DuckDB locally, the
Databricks SQL warehouse in production), runs every suite, writes the NDJSON results and the
Data Docs, and prints one row per layer. `run_quality_checkpoint` adds the alert: one per run
that failed (quality_critical or quality_warning), not repeated while the same expectations
keep failing. `apply_quality_gate` is what every verb and flow that trains, promotes or scores
calls first: a critical failure raises `DataQualityFailed`, warnings pass; an explicit
`--skip-quality-gate` skips it and is written to the audit log.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from rich.console import Console
from rich.table import Table

from core.datahome import LANDING_TRADES, QUALITY_RESULTS, QUALITY_RESULTS_DIR, within
from core.warehouse import Warehouse
from expectations.checkpoint import CheckpointPaths, run_checkpoint
from expectations.readers import LandingSource, LocalLanding, VolumeLanding
from expectations.results import (
    DataQualityFailed,
    ExpectationOutcome,
    ValidationSummary,
    raise_on_critical,
)
from expectations.suites import QualityPolicy
from flows import engine
from flows.alerts import alert_sender, send_quality_alert
from flows.config import Settings
from flows.warehouse import warehouse_slot
from ml.audit import AuditLog

__all__ = [
    "DataQualityFailed",
    "UnsupportedValidationTarget",
    "ValidationSummary",
    "apply_quality_gate",
    "run_quality_checkpoint",
    "checkpoint_paths",
    "open_warehouse",
    "print_summary",
    "quality_policy",
    "raise_on_critical",
    "run_validate",
]


class UnsupportedValidationTarget(ValueError):
    """Validation runs against the local DuckDB warehouse or Databricks, not a Spark session."""


def quality_policy(settings: Settings) -> QualityPolicy:
    """The suites' thresholds from the `quality` settings and the configured symbols."""
    quality = settings.quality
    return QualityPolicy(
        symbols=settings.symbols,
        max_trade_age=timedelta(minutes=quality.max_trade_age_minutes),
        max_volume_zscore_outlier_share=quality.max_volume_zscore_outlier_share,
        max_quarantine_share=quality.max_quarantine_share,
        max_anomaly_label_share=quality.max_anomaly_label_share,
    )


def checkpoint_paths(
    settings: Settings, *, data_docs: bool = True, target: str | None = None
) -> CheckpointPaths:
    """NDJSON under monitoring/quality of the engine's data home (the volume on Databricks),
    GX history under monitoring/gx and docs under reports of the local data home."""
    return CheckpointPaths(
        results_dir=within(engine.data_home(settings, target), QUALITY_RESULTS_DIR),
        gx_dir=settings.paths.gx,
        data_docs_dir=settings.paths.data_docs if data_docs else None,
    )


def open_warehouse(
    settings: Settings, target: str | None = None, settled_before: float | None = None
) -> tuple[Warehouse, LandingSource]:
    """The warehouse reader and landing counter for `target` (default: settings.dbt.target).

    `settled_before`: when the build being checked started (epoch seconds); files landed
    after it and not yet in bronze are still arriving, not missing.
    """
    target = target or settings.dbt.target
    if target in ("local", "spark"):  # both read the landed files in the local data home
        return (engine.open_warehouse(settings, target),
                LocalLanding(settings.paths.landing_trades, settled_before=settled_before))
    if target == "databricks":
        warehouse = engine.open_warehouse(settings, target)
        # The engine's data home: the Unity Catalog volume (TRADEWATCH_VOLUME), whose landed
        # files the SQL warehouse counts with read_files.
        trades = engine.location(engine.data_home(settings, target), LANDING_TRADES)
        return warehouse, VolumeLanding(warehouse, trades)
    raise UnsupportedValidationTarget(
        f"cannot validate target {target!r}: use local (DuckDB), spark or databricks"
    )


def _worst(outcome: ExpectationOutcome | None) -> str:
    if outcome is None:
        return "—"
    colour = "red" if outcome.severity == "critical" else "yellow"
    return f"[{colour}]{outcome.severity}[/{colour}] {outcome.describe()}"


def print_summary(summary: ValidationSummary, console: Console | None = None) -> None:
    """One row per layer: evaluated, passed, failed, worst failure; then where results went."""
    console = console or Console()
    warnings = len(summary.warning_failures)
    if not summary.success:
        verdict = f"[red]{len(summary.critical_failures)} critical failure(s)[/red]"
    elif warnings:
        verdict = f"[yellow]passed with {warnings} warning(s)[/yellow]"
    else:
        verdict = "[green]passed[/green]"
    table = Table(title=f"data quality {summary.run_id}: {verdict}", title_justify="left")
    for name in ("layer", "evaluated", "passed", "failed"):
        table.add_column(name, justify="left" if name == "layer" else "right")
    table.add_column("worst failure", overflow="fold")
    for layer in summary.layers:
        table.add_row(layer.layer, str(layer.evaluated), str(layer.passed), str(layer.failed),
                      _worst(layer.worst_failure))
    console.print(table)
    for layer in summary.layers:
        for note in layer.skipped:
            console.print(f"not checked: {note}")
    if summary.results_path:
        console.print(f"results: {summary.results_path}")
    if summary.data_docs_index:
        console.print(f"data docs: {summary.data_docs_index.resolve().as_uri()}")


def run_validate(
    settings: Settings,
    *,
    target: str | None = None,
    reference_time: datetime | None = None,
    data_docs: bool = True,
    console: Console | None = None,
    settled_before: float | None = None,
) -> ValidationSummary:
    """Validate every layer of the warehouse, write results and Data Docs, print the summary.

    Returns the summary whatever the outcome; call `raise_on_critical` on it to stop a flow.
    `reference_time` is the "now" freshness is judged against (default: the run's clock);
    `settled_before` when the checked build started (see `open_warehouse`).
    """
    with warehouse_slot("data-quality checkpoint"):
        warehouse, landing = open_warehouse(settings, target, settled_before)
        with warehouse:  # one connection for the whole checkpoint
            summary = run_checkpoint(
                warehouse,
                landing,
                quality_policy(settings),
                checkpoint_paths(settings, data_docs=data_docs, target=target),
                reference_time=reference_time,
            )
    print_summary(summary, console)
    return summary


def previous_failures(
    settings: Settings, run_id: str
) -> frozenset[tuple[str, str, str, str]] | None:
    """What failed in the quality run before `run_id` (None when there was none)."""
    directory = within(engine.data_home(settings), QUALITY_RESULTS_DIR)
    try:
        names = directory.list("", QUALITY_RESULTS.pattern)
        earlier = [name for name in names if name < f"quality-{run_id}.ndjson"]
        if not earlier:
            return None
        failed: set[tuple[str, str, str, str]] = set()
        for line in directory.read(earlier[-1]).decode("utf-8").splitlines():
            if line.strip():
                record = json.loads(line)
                if not record.get("success"):
                    failed.add((record["suite"], record["expectation"],
                                record.get("column") or "", record["severity"]))
    except (OSError, ValueError, KeyError):
        return None  # unreadable: alert rather than stay silent
    return frozenset(failed)


def run_quality_checkpoint(
    settings: Settings,
    *,
    target: str | None = None,
    reference_time: datetime | None = None,
    stage: str | None = None,
    data_docs: bool = True,
    console: Console | None = None,
    settled_before: float | None = None,
) -> ValidationSummary:
    """`run_validate`, then one alert if the run failed (and did not fail the same way before)."""
    summary = run_validate(
        settings, target=target, reference_time=reference_time, data_docs=data_docs,
        console=console, settled_before=settled_before,
    )
    send_quality_alert(
        alert_sender(settings), summary, stage=stage,
        previous_failures=previous_failures(settings, summary.run_id),
    )
    return summary


def apply_quality_gate(
    settings: Settings,
    *,
    stage: str,
    summary: ValidationSummary | None = None,
    skip: bool = False,
    target: str | None = None,
    reference_time: datetime | None = None,
    console: Console | None = None,
) -> ValidationSummary | None:
    """The quality gate before `stage` (training, scoring, ...): stop on a critical failure.

    Runs the checkpoint (and its alert) unless a `summary` of this run is handed in. With
    `skip`, nothing is checked: the override is written to the audit log and printed.
    """
    if skip:
        AuditLog(settings.paths.audit).append(
            "quality_gate_skipped",
            {"stage": stage, "reason": "--skip-quality-gate given explicitly"},
        )
        (console or Console(stderr=True)).print(
            f"[yellow]quality gate skipped before {stage} (--skip-quality-gate); "
            "written to the audit log[/]"
        )
        return None
    if summary is None:
        summary = run_quality_checkpoint(
            settings, target=target, reference_time=reference_time, stage=stage,
            console=console,
        )
    raise_on_critical(summary, stage=stage)
    return summary
