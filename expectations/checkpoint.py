"""The checkpoint runner: every suite against its batch, results kept, written and rendered.

`run_checkpoint` validates the warehouse a reader gives it (DuckDB or Databricks), layer by
layer, with Great Expectations' pandas datasource: each suite's batch is a pandas frame (the
table's declared schema, its rows, or the layer's aggregates computed in SQL). GX keeps every
validation result in a file-backed project (`gx_dir`), so Data Docs show the history of runs.
The run's outcome comes back typed, is written as NDJSON for dbt's monitoring model, and, when
a Data Docs directory is given, rendered into a site that works offline.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from core.datahome import DataHome
from core.warehouse import Warehouse
from expectations.aggregates import layer_aggregates
from expectations.readers import LandingSource, frame_for_validation
from expectations.results import (
    RUN_ID_PATTERN,
    ExpectationOutcome,
    LayerOutcome,
    ValidationSummary,
    new_run_id,
    write_results_ndjson,
)
from expectations.suites import CONTRACTS, LAYERS, QualityPolicy, SuiteDefinition, build_suites

DATASOURCE = "tradewatch_warehouse"
_BATCH_DEFINITION = "whole_frame"
# BASIC keeps counts and a sample of unexpected values; SUMMARY's value counts cost ~30% more.
_RESULT_FORMAT = {"result_format": "BASIC", "partial_unexpected_count": 5}
_TEXT_LIMIT = 500


@dataclass(frozen=True)
class CheckpointPaths:
    """Where a run writes: NDJSON results, the GX project (result history), Data Docs."""

    results_dir: DataHome | Path
    gx_dir: Path
    data_docs_dir: Path | None = None
    # Runs whose GX results (and Data Docs pages) are kept; older ones are deleted.
    history_runs: int = 50


def open_context(gx_dir: Path, data_docs_dir: Path | None) -> Any:
    """The file-backed GX project under `gx_dir`, progress bars off, our Data Docs site set."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    # GX logs every metric batch at INFO; our own summary says what matters.
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    from expectations.data_docs import configure_site

    Path(gx_dir).mkdir(parents=True, exist_ok=True)
    context = gx.get_context(mode="file", project_root_dir=str(gx_dir))
    context.variables.progress_bars = ProgressBarsConfig(globally=False,
                                                         metric_calculations=False)
    if data_docs_dir is not None:
        configure_site(context, Path(data_docs_dir))
    context.variables.save()
    return context


def _validation_definition(context: Any, suite: SuiteDefinition) -> Any:
    """Register (or refresh) the suite from code and return its validation definition."""
    import great_expectations as gx

    stored = context.suites.add_or_update(suite.to_gx())
    try:
        datasource = context.data_sources.get(DATASOURCE)
    except KeyError:
        datasource = context.data_sources.add_pandas(DATASOURCE)
    try:
        asset = datasource.get_asset(suite.name)
    except LookupError:
        asset = datasource.add_dataframe_asset(suite.name)
    try:
        batch = asset.get_batch_definition(_BATCH_DEFINITION)
    except KeyError:
        batch = asset.add_batch_definition_whole_dataframe(_BATCH_DEFINITION)
    return context.validation_definitions.add_or_update(
        gx.ValidationDefinition(name=suite.name, data=batch, suite=stored)
    )


def _clip(text: str) -> str:
    return text if len(text) <= _TEXT_LIMIT else text[: _TEXT_LIMIT - 1] + "…"


def _plain(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _observed(kwargs: dict[str, Any], result: dict[str, Any], frame: pd.DataFrame,
              kind: str) -> str:
    mismatched = (result.get("details") or {}).get("mismatched") or {}
    if mismatched.get("missing"):
        return _clip(f"missing columns: {', '.join(map(str, mismatched['missing']))}")
    if "observed_value" in result and result["observed_value"] is not None:
        return _clip(_plain(result["observed_value"]))
    if kind in ("schema", "aggregates") and len(frame) == 1:
        # One-row frames: the values themselves say more than "1 of 1 rows unexpected".
        names = [kwargs[k] for k in ("column", "column_A", "column_B") if kwargs.get(k)]
        return _clip(", ".join(
            f"{name}={_plain(frame.iloc[0][name]) if name in frame else 'missing'}"
            for name in names
        ))
    if "unexpected_count" in result:
        count, total = result.get("unexpected_count") or 0, result.get("element_count") or 0
        share = f" ({100 * count / total:.3g}%)" if total else ""
        return f"{count} of {total} rows unexpected{share}"
    return ""


def _details(description: str | None, result: dict[str, Any],
             exception: dict[str, Any] | None) -> str:
    parts = []
    if description:
        parts.append(description)
    if exception and exception.get("raised_exception"):
        parts.append(f"error: {exception.get('exception_message')}")
    sample = result.get("partial_unexpected_list")
    if sample:
        parts.append(f"unexpected sample: {[_plain(v) for v in sample]}")
    return _clip("; ".join(parts))


def _outcomes(suite: SuiteDefinition, validation: Any, frame: pd.DataFrame) -> list[
        ExpectationOutcome]:
    outcomes = []
    for item in validation.results:
        config = item.expectation_config
        kwargs = dict(config.kwargs)
        meta = config.meta or {}
        severity = meta.get("severity") or getattr(config.severity, "value", "critical")
        result = dict(item.result or {})
        exception = dict(item.exception_info or {})
        outcomes.append(ExpectationOutcome(
            layer=suite.layer,
            suite=suite.name,
            expectation=config.type,
            column=kwargs.get("column"),
            severity="warning" if severity == "warning" else "critical",
            success=bool(item.success),
            observed_value=_observed(kwargs, result, frame, suite.kind),
            details=_details(config.description, result, exception),
        ))
    # Table-level verdicts (missing columns, row counts) first: they explain the column ones.
    return sorted(outcomes, key=lambda outcome: outcome.column is not None)


def _schema_frame(columns: dict[str, str] | None) -> pd.DataFrame:
    # One row: each column holds its declared logical type; no columns when the table is missing.
    return pd.DataFrame([columns]) if columns else pd.DataFrame(index=[0])


def run_checkpoint(
    warehouse: Warehouse,
    landing: LandingSource,
    policy: QualityPolicy,
    paths: CheckpointPaths,
    *,
    reference_time: datetime | None = None,
    layers: Sequence[str] = LAYERS,
    tables: Collection[str] | None = None,
    now: datetime | None = None,
) -> ValidationSummary:
    """Validate `layers` of the warehouse; write NDJSON results (and Data Docs); return the outcome.

    `reference_time` is the "now" freshness is judged against (default: the run's clock).
    `tables`, when given, limits the schema and rows suites to those tables (the layers'
    aggregates still run).
    """
    unknown = [layer for layer in layers if layer not in LAYERS]
    if unknown:
        raise ValueError(f"unknown layer(s) {unknown}; choose from {', '.join(LAYERS)}")
    run_ts = (now or datetime.now(UTC)).astimezone(UTC)
    reference = (reference_time or run_ts).astimezone(UTC)
    run_id = new_run_id(run_ts)

    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    context = open_context(paths.gx_dir, paths.data_docs_dir)
    gx_run = RunIdentifier(run_name=run_id, run_time=run_ts)
    suites = [
        suite
        for suite in build_suites(policy)
        if suite.layer in layers
        and (tables is None or suite.table is None or suite.table in tables)
    ]
    # Aggregates reach into other layers (silver counts bronze), so look at every table.
    declared = {contract.table: warehouse.table_columns(contract.table) for contract in CONTRACTS}
    present = {table for table, columns in declared.items() if columns is not None}

    resources: list[object] = []
    by_layer: dict[str, list[ExpectationOutcome]] = {layer: [] for layer in layers}
    skipped: dict[str, list[str]] = {layer: [] for layer in layers}
    for suite in suites:
        if suite.table and suite.table not in present and not suite.required:
            skipped[suite.layer].append(f"{suite.name}: {suite.table} does not exist yet")
            continue
        if suite.kind == "schema":
            assert suite.table is not None, "a schema suite names its table"
            frame = _schema_frame(declared[suite.table])
        elif suite.kind == "rows":
            assert suite.table is not None, "a rows suite names its table"
            columns = declared[suite.table]
            if columns is None:
                skipped[suite.layer].append(f"{suite.name}: {suite.table} is missing")
                continue
            frame = frame_for_validation(
                warehouse.read_table(suite.table, [c for c in suite.columns if c in columns])
            )
        else:
            frame = layer_aggregates(suite.layer, warehouse, present, policy, landing=landing,
                                     reference_time=reference)
        validation = _validation_definition(context, suite).run(
            batch_parameters={"dataframe": frame}, result_format=_RESULT_FORMAT, run_id=gx_run
        )
        suite_id = ExpectationSuiteIdentifier(name=suite.name)
        resources += [suite_id, ValidationResultIdentifier(
            expectation_suite_identifier=suite_id, run_id=gx_run,
            batch_identifier=validation.batch_id,
        )]
        by_layer[suite.layer].extend(_outcomes(suite, validation, frame))

    summary = ValidationSummary(
        run_id=run_id,
        run_ts=run_ts,
        layers=tuple(
            LayerOutcome(layer, tuple(by_layer[layer]), tuple(skipped[layer])) for layer in layers
        ),
    )
    results_path = write_results_ndjson(summary, paths.results_dir)
    prune_history(Path(context.root_directory), paths.data_docs_dir, paths.history_runs)
    index = None
    if paths.data_docs_dir is not None:
        from expectations.data_docs import build_data_docs

        index = build_data_docs(context, Path(paths.data_docs_dir), resources)
    return replace(summary, results_path=results_path, data_docs_index=index)


def prune_history(gx_root: Path, data_docs_dir: Path | None, keep_runs: int) -> list[str]:
    """Delete stored results and rendered pages of all but the newest `keep_runs` runs.

    Results live under `<gx>/uncommitted/validations/<suite path>/<run id>/`, pages under
    `<site>/validations/<suite path>/<run id>/`; run ids sort by time. Returns the runs removed.
    """
    roots = [gx_root / "uncommitted" / "validations"]
    if data_docs_dir is not None:
        roots.append(Path(data_docs_dir) / "validations")
    runs: dict[str, list[Path]] = {}
    for root in roots:
        if root.exists():
            for folder in root.rglob("*"):
                if folder.is_dir() and RUN_ID_PATTERN.fullmatch(folder.name):
                    runs.setdefault(folder.name, []).append(folder)
    removed = sorted(runs)[: max(0, len(runs) - keep_runs)]
    for run in removed:
        for folder in runs[run]:
            shutil.rmtree(folder, ignore_errors=True)
    return removed
