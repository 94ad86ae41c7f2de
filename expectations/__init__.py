"""Tradewatch data quality: Great Expectations suites over every warehouse layer.

A library: it takes plain arguments (a warehouse reader, the landing location, output
directories, a QualityPolicy) and knows nothing of Prefect or project_config.yml.

    from expectations import (
        CheckpointPaths, LocalLanding, QualityPolicy, raise_on_critical, run_checkpoint,
    )

    # any core.warehouse reader; flows.engine.open_warehouse builds the configured one
    with open_warehouse(settings) as warehouse:
        summary = run_checkpoint(
            warehouse, LocalLanding("data/landing/trades"), QualityPolicy(symbols=("AAPL",)),
            CheckpointPaths(results_dir=Path("data/monitoring/quality"),
                            gx_dir=Path("data/monitoring/gx"),
                            data_docs_dir=Path("data/reports/data_docs")),
        )
    raise_on_critical(summary, stage="training")   # DataQualityFailed on a critical failure

Modules: `suites` (the suites in code, severities, QualityPolicy), `readers` (landing
counters; the warehouse is read through core.warehouse), `aggregates` (the SQL the aggregates
suites check), `checkpoint` (the runner), `results` (the typed outcome, NDJSON, the gate),
`data_docs` (offline Data Docs).
"""

from importlib import import_module
from typing import Any

# Importing Great Expectations takes seconds: the names below load their module on first use,
# so `from expectations.results import ...` stays cheap.
_HOMES = {
    "CheckpointPaths": "checkpoint", "run_checkpoint": "checkpoint",
    "LocalLanding": "readers", "VolumeLanding": "readers",
    "DataQualityFailed": "results", "ExpectationOutcome": "results", "LayerOutcome": "results",
    "ValidationSummary": "results", "raise_on_critical": "results",
    "write_results_ndjson": "results",
    "QualityPolicy": "suites", "build_suites": "suites",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'expectations' has no attribute {name!r}")
    return getattr(import_module(f"expectations.{_HOMES[name]}"), name)


__all__ = [
    "CheckpointPaths",
    "DataQualityFailed",
    "ExpectationOutcome",
    "LayerOutcome",
    "LocalLanding",
    "QualityPolicy",
    "ValidationSummary",
    "VolumeLanding",
    "build_suites",
    "raise_on_critical",
    "run_checkpoint",
    "write_results_ndjson",
]
