"""`tradewatch validate`: the data-quality checkpoint over the warehouse, and the gate on it.

`run_validate` reads the settings, opens the warehouse of the target (DuckDB locally, the
Databricks SQL warehouse in production), runs every suite, writes the NDJSON results and the
Data Docs, and prints one row per layer. The flows call `raise_on_critical(summary, stage=...)`
before training, promotion and scoring: a critical failure raises `DataQualityFailed`, warnings
pass (and are the caller's to alert on).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from rich.console import Console
from rich.table import Table

from expectations.checkpoint import CheckpointPaths, run_checkpoint
from expectations.readers import (
    DatabricksSettings,
    DatabricksWarehouse,
    DuckDBWarehouse,
    LandingSource,
    LocalLanding,
    VolumeLanding,
    WarehouseReader,
)
from expectations.results import (
    DataQualityFailed,
    ExpectationOutcome,
    ValidationSummary,
    raise_on_critical,
)
from expectations.suites import QualityPolicy
from flows.config import Settings

__all__ = [
    "DataQualityFailed",
    "UnsupportedValidationTarget",
    "ValidationSummary",
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


def checkpoint_paths(settings: Settings, *, data_docs: bool = True) -> CheckpointPaths:
    """NDJSON under monitoring/quality, GX history under monitoring/gx, docs under reports."""
    return CheckpointPaths(
        results_dir=settings.paths.monitoring / "quality",
        gx_dir=settings.paths.monitoring / "gx",
        data_docs_dir=settings.paths.reports / "data_docs" if data_docs else None,
    )


def open_warehouse(settings: Settings, target: str | None = None) -> tuple[
        WarehouseReader, LandingSource]:
    """The warehouse reader and landing counter for `target` (default: settings.dbt.target)."""
    target = target or settings.dbt.target
    if target == "local":
        return (DuckDBWarehouse(settings.paths.warehouse),
                LocalLanding(settings.paths.landing / "trades"))
    if target == "databricks":
        warehouse = DatabricksWarehouse(DatabricksSettings.from_env())
        # On Databricks the data home is a Unity Catalog volume (TRADEWATCH_HOME=/Volumes/...).
        return warehouse, VolumeLanding(warehouse, (settings.paths.landing / "trades").as_posix())
    raise UnsupportedValidationTarget(
        f"cannot validate target {target!r}: use local (DuckDB) or databricks"
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
) -> ValidationSummary:
    """Validate every layer of the warehouse, write results and Data Docs, print the summary.

    Returns the summary whatever the outcome; call `raise_on_critical` on it to stop a flow.
    `reference_time` is the "now" freshness is judged against (default: the run's clock).
    """
    warehouse, landing = open_warehouse(settings, target)
    try:
        summary = run_checkpoint(
            warehouse,
            landing,
            quality_policy(settings),
            checkpoint_paths(settings, data_docs=data_docs),
            reference_time=reference_time,
        )
    finally:
        warehouse.close()
    print_summary(summary, console)
    return summary
