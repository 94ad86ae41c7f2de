"""The typed outcome of a data-quality run, its NDJSON record, and the gate on it.

One `ExpectationOutcome` per expectation evaluated, grouped per layer in `LayerOutcome`, all of
a run in `ValidationSummary`. `write_results_ndjson` writes the contract file
`monitoring/quality/quality-<run_id>.ndjson` that dbt's monitoring model reads;
`raise_on_critical` is the gate the flows call before training, promotion and scoring.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePath
from typing import Literal

from core.datahome import QUALITY_RESULTS, DataHome, as_data_home

Severity = Literal["critical", "warning"]
SEVERITIES: tuple[Severity, ...] = ("critical", "warning")


@dataclass(frozen=True)
class ExpectationOutcome:
    """One expectation's verdict on one batch of one layer."""

    layer: str
    suite: str
    expectation: str
    column: str | None
    severity: Severity
    success: bool
    observed_value: str
    details: str

    def describe(self) -> str:
        """One line naming the check and what was seen, for tables and error messages."""
        target = f"{self.suite}.{self.column}" if self.column else self.suite
        return f"{target}: {self.expectation} (observed {self.observed_value})"


@dataclass(frozen=True)
class LayerOutcome:
    """Every expectation evaluated for one layer (bronze, silver or gold)."""

    layer: str
    outcomes: tuple[ExpectationOutcome, ...]
    skipped: tuple[str, ...] = ()

    @property
    def evaluated(self) -> int:
        return len(self.outcomes)

    @property
    def passed(self) -> int:
        return sum(outcome.success for outcome in self.outcomes)

    @property
    def failed(self) -> int:
        return self.evaluated - self.passed

    @property
    def failures(self) -> tuple[ExpectationOutcome, ...]:
        return tuple(outcome for outcome in self.outcomes if not outcome.success)

    @property
    def worst_failure(self) -> ExpectationOutcome | None:
        """The first critical failure, else the first warning, else None."""
        for severity in SEVERITIES:
            for outcome in self.failures:
                if outcome.severity == severity:
                    return outcome
        return None


@dataclass(frozen=True)
class ValidationSummary:
    """The outcome of one data-quality run over every layer."""

    run_id: str
    run_ts: datetime
    layers: tuple[LayerOutcome, ...]
    results_path: PurePath | None = None
    data_docs_index: Path | None = None

    @property
    def outcomes(self) -> tuple[ExpectationOutcome, ...]:
        return tuple(outcome for layer in self.layers for outcome in layer.outcomes)

    @property
    def critical_failures(self) -> tuple[ExpectationOutcome, ...]:
        return tuple(o for o in self.outcomes if not o.success and o.severity == "critical")

    @property
    def warning_failures(self) -> tuple[ExpectationOutcome, ...]:
        return tuple(o for o in self.outcomes if not o.success and o.severity == "warning")

    @property
    def success(self) -> bool:
        """True when no critical expectation failed (warnings are reported, not blocking)."""
        return not self.critical_failures

    def layer(self, name: str) -> LayerOutcome:
        """The outcome of one layer; KeyError naming the layers there are."""
        for layer in self.layers:
            if layer.layer == name:
                return layer
        raise KeyError(f"no layer {name!r} in this run (have {[x.layer for x in self.layers]})")


class DataQualityFailed(RuntimeError):
    """A critical expectation failed: training, promotion and scoring must not go on."""

    def __init__(self, summary: ValidationSummary, stage: str | None = None) -> None:
        self.summary = summary
        self.stage = stage
        failures = summary.critical_failures
        first = failures[0].describe() if failures else "no detail"
        more = f" and {len(failures) - 1} more" if len(failures) > 1 else ""
        before = f" before {stage}" if stage else ""
        where = f"; see {summary.data_docs_index}" if summary.data_docs_index else ""
        super().__init__(
            f"{len(failures)} critical data-quality failure{'s' if len(failures) != 1 else ''}"
            f"{before} (run {summary.run_id}): {first}{more}; fix the data and re-run "
            f"`tradewatch validate`{where}"
        )


def raise_on_critical(summary: ValidationSummary, *, stage: str | None = None) -> None:
    """Raise DataQualityFailed when any critical expectation failed; warnings pass through.

    `stage` names what is being stopped (training, promotion, scoring) for the message.
    """
    if not summary.success:
        raise DataQualityFailed(summary, stage)


def quality_records(summary: ValidationSummary) -> Iterable[dict[str, object]]:
    """The NDJSON records of a run, one per expectation (core.datahome.QUALITY_RESULTS)."""
    run_ts = summary.run_ts.astimezone(UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z"
    )
    for outcome in summary.outcomes:
        yield QUALITY_RESULTS.record({
            "run_id": summary.run_id,
            "run_ts": run_ts,
            "suite": outcome.suite,
            "expectation": outcome.expectation,
            "column": outcome.column,
            "severity": outcome.severity,
            "success": outcome.success,
            "observed_value": outcome.observed_value,
            "details": outcome.details,
        })


def write_results_ndjson(summary: ValidationSummary, directory: DataHome | Path | str) -> PurePath:
    """Write `quality-<run_id>.ndjson` atomically into `directory` and return its path.

    `directory` is a folder or a DataHome (core.datahome); dbt never reads half a run.
    """
    payload = "".join(
        json.dumps(record, sort_keys=True, default=str) + "\n"
        for record in quality_records(summary)
    )
    return as_data_home(directory).write_atomic(f"quality-{summary.run_id}.ndjson", payload)


RUN_ID_PATTERN = re.compile(r"\d{8}T\d{12}Z-[0-9a-f]{6}")


def new_run_id(now: datetime) -> str:
    """A sortable run id: UTC time to the microsecond plus 6 random hex digits."""
    return f"{now.astimezone(UTC):%Y%m%dT%H%M%S%fZ}-{os.urandom(3).hex()}"
