"""The typed result, its NDJSON file, and the gate that stops training on a critical failure."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from expectations.results import (
    DataQualityFailed,
    ExpectationOutcome,
    LayerOutcome,
    ValidationSummary,
    raise_on_critical,
    write_results_ndjson,
)

CONTRACT_FIELDS = {
    "run_id", "run_ts", "suite", "expectation", "column", "severity", "success",
    "observed_value", "details",
}


def _outcome(severity: str, success: bool, column: str | None = "price") -> ExpectationOutcome:
    return ExpectationOutcome(
        layer="silver",
        suite="silver.silver_trades.rows",
        expectation="expect_column_values_to_be_between",
        column=column,
        severity=severity,  # type: ignore[arg-type]
        success=success,
        observed_value="3 of 100 rows unexpected (3%)",
        details="critical — a trade price is positive",
    )


def _summary(*outcomes: ExpectationOutcome) -> ValidationSummary:
    return ValidationSummary(
        run_id="20240308T150000000000Z-abc123",
        run_ts=datetime(2024, 3, 8, 15, 0, tzinfo=UTC),
        layers=(LayerOutcome("silver", outcomes),),
    )


def test_a_critical_failure_stops_training_with_a_message_naming_the_check():
    summary = _summary(_outcome("critical", False), _outcome("warning", False, "source"))

    with pytest.raises(DataQualityFailed) as failure:
        raise_on_critical(summary, stage="training")

    message = str(failure.value)
    assert "1 critical data-quality failure before training" in message
    assert "silver.silver_trades.rows.price" in message
    assert failure.value.summary is summary


def test_warning_failures_alone_do_not_stop_the_flow():
    summary = _summary(_outcome("critical", True), _outcome("warning", False, "source"))

    raise_on_critical(summary, stage="promotion")

    assert summary.success
    assert [o.column for o in summary.warning_failures] == ["source"]


def test_worst_failure_is_the_critical_one_even_when_a_warning_comes_first():
    warning, critical = _outcome("warning", False, "source"), _outcome("critical", False)
    layer = LayerOutcome("silver", (warning, critical, _outcome("critical", True)))

    assert layer.worst_failure is critical
    assert (layer.evaluated, layer.passed, layer.failed) == (3, 1, 2)


def test_results_file_has_one_contract_record_per_expectation(tmp_path):
    summary = _summary(_outcome("critical", False), _outcome("warning", True, None))

    path = write_results_ndjson(summary, tmp_path / "monitoring" / "quality")

    assert path.name == f"quality-{summary.run_id}.ndjson"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(records) == 2
    assert all(set(record) == CONTRACT_FIELDS for record in records)
    assert records[0]["run_ts"] == "2024-03-08T15:00:00.000Z"
    assert records[0]["success"] is False and records[0]["severity"] == "critical"
    assert records[1]["column"] is None
    # Written under a dot-name and renamed: no temporary file is left for dbt to read.
    assert [p.name for p in path.parent.iterdir()] == [path.name]
