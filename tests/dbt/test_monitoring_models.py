"""Monitoring models and champion scores: typed and empty without files, filled from them.

One home goes through three builds: no ML files at all (a fresh clone), then the audit log,
drift and quality reports and a scores file written the way the ML layer writes them, then a
scores file with an out-of-range score, which must fail the build with one clear line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from ml.audit import AuditLog
from tests.dbt.warehouse_data import NEEDS_LABELS, BuildOutcome, column_types, query, run_build

pytestmark = pytest.mark.slow

MONITORING = "tag:monitoring gold_anomaly_scores"
#: The shadow comparison and the marts read gold_anomaly_labels (the features): tested with
#: the cycle.
SHADOW = NEEDS_LABELS
TABLES = (
    "monitoring_audit_events",
    "monitoring_gate_decisions",
    "monitoring_drift_reports",
    "monitoring_quality_results",
    "gold_anomaly_scores",
)
EXPECTED_TYPES = {
    "monitoring_gate_decisions": {
        "event_id": "VARCHAR", "decided_at": "TIMESTAMP", "decision": "VARCHAR",
        "challenger_pr_auc": "DOUBLE", "test_window_start": "TIMESTAMP",
        "reason_code": "VARCHAR", "primary_difference_low": "DOUBLE", "events_in_window": "BIGINT",
    },
    "monitoring_drift_reports": {
        "run_id": "VARCHAR", "statistic": "DOUBLE", "drifted": "BOOLEAN",
        "reference_rows": "BIGINT", "current_end": "TIMESTAMP",
    },
    "monitoring_quality_results": {"success": "BOOLEAN", "column_name": "VARCHAR"},
    "gold_anomaly_scores": {
        "trade_id": "VARCHAR", "trade_ts": "TIMESTAMP", "score": "DOUBLE", "flag": "BOOLEAN",
        "scored_at": "TIMESTAMP",
    },
}


SCORES_SQL = (
    "select trade_id, score, model_version, strftime(trade_ts, '%Y-%m-%d %H:%M:%S.%g'), "
    "strftime(scored_at, '%H:%M') from gold_anomaly_scores order by trade_id"
)


@dataclass
class MonitoringStory:
    home: Path
    builds: dict[str, BuildOutcome]
    snapshots: dict[str, dict[str, Any]]


def _snapshot(home: Path) -> dict[str, Any]:
    return {
        "counts": {table: query(home, f"select count(*) from {table}")[0][0] for table in TABLES},
        "types": {table: column_types(home, table) for table in TABLES},
    }


def _write_ndjson(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(record) + "\n" for record in records))


def _write_scores(home: Path, run_id: str, rows: list[dict]) -> None:
    frame = pd.DataFrame(rows)
    for column in ("trade_ts", "scored_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    path = home / "scores" / "date=2024-03-08" / f"scores-{run_id}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False, coerce_timestamps="us", allow_truncated_timestamps=True)


def _score(trade_id: str, score: float, scored_at: str, version: str) -> dict:
    return {
        "trade_id": trade_id, "symbol": "AAPL", "trade_ts": "2024-03-08T14:30:00.250Z",
        "score": score, "flag": score >= 0.5, "risk_level": "high" if score >= 0.5 else "low",
        "model_name": "tradewatch_anomaly", "model_version": version, "scored_at": scored_at,
    }


def _land_ml_files(home: Path) -> None:
    audit = AuditLog(home / "monitoring" / "audit")
    now = datetime(2024, 3, 8, 15, 0, tzinfo=UTC)
    audit.append(
        "gate_decision",
        {
            "decision": "promote", "reason": "no champion yet", "champion_version": None,
            "challenger_version": "1", "champion_metrics": {},
            "challenger_metrics": {"pr_auc": 0.72, "roc_auc": 0.93, "recall": 0.6},
            "test_window_start": "2024-03-08T14:00:00+00:00",
            "test_window_end": "2024-03-08T15:00:00+00:00",
        },
        now=now,
    )
    audit.append("promotion", {"version": "1", "alias": "champion"}, now=now)
    audit.append(
        "gate_decision",
        {
            "decision": "reject", "reason_code": "not_better",
            "reason": "event_average_precision changed by +0.0020: the lower bound does not "
                      "clear +0.01",
            "champion_version": "1", "challenger_version": "2",
            "primary_metric": "event_average_precision", "events": 41, "min_events": 30,
            "min_improvement_threshold": 0.01,
            "comparison": {
                "metric": "event_average_precision", "champion": 0.8, "challenger": 0.802,
                "difference": 0.002, "low": -0.03, "high": 0.035, "confidence": 0.9,
                "resamples": 1000, "blocks": 20, "block_minutes": 60.0,
            },
            "champion_metrics": {"pr_auc": 0.72, "event_average_precision": 0.8,
                                 "false_alerts_per_day": 12.0},
            "challenger_metrics": {"pr_auc": 0.722, "event_average_precision": 0.802,
                                   "false_alerts_per_day": 9.5},
            "test_window_start": "2024-03-08T15:00:00+00:00",
            "test_window_end": "2024-03-08T16:00:00+00:00",
        },
        now=now,
    )
    # A writer killed mid-line leaves a torn last line: it must not break the build.
    with (home / "monitoring" / "audit" / "audit-2024-03-08.ndjson").open("a") as handle:
        handle.write('{"event_id": "torn", "event_ts": "2024-03-08T15:0')
    drift_common = {
        "run_id": "d1", "run_ts": "2024-03-09T00:00:00+00:00", "threshold": 0.2,
        "reference_rows": 5000, "current_rows": 800,
        "reference_start": "2024-03-01T00:00:00+00:00",
        "reference_end": "2024-03-08T00:00:00+00:00",
        "current_start": "2024-03-08T00:00:00+00:00", "current_end": "2024-03-09T00:00:00+00:00",
    }
    _write_ndjson(
        home / "monitoring" / "drift" / "drift-d1.ndjson",
        [
            {**drift_common, "feature": "volume_zscore", "kind": "numeric",
             "statistic_name": "psi", "statistic": 0.31, "drifted": True},
            {**drift_common, "feature": "session_type", "kind": "categorical",
             "statistic_name": "js_distance", "statistic": 0.02, "threshold": 0.1,
             "drifted": False},
        ],
    )
    _write_ndjson(
        home / "monitoring" / "quality" / "quality-q1.ndjson",
        [
            {"run_id": "q1", "run_ts": "2024-03-09T00:05:00Z", "suite": "silver_trades",
             "expectation": "expect_column_values_to_not_be_null", "column": "trade_id",
             "severity": "critical", "success": True, "observed_value": "0", "details": ""},
            {"run_id": "q1", "run_ts": "2024-03-09T00:05:00Z", "suite": "silver_trades",
             "expectation": "expect_table_row_count_to_be_between", "column": None,
             "severity": "warning", "success": False, "observed_value": "12", "details": "few"},
        ],
    )
    _write_scores(home, "r1", [_score("t1", 0.9, "2024-03-08T16:00:00Z", "1"),
                               _score("t2", 0.1, "2024-03-08T16:00:00Z", "1")])
    # A newer champion re-scored t1: the newest score wins.
    _write_scores(home, "r2", [_score("t1", 0.4, "2024-03-08T17:00:00Z", "2")])


@pytest.fixture(scope="session")
def monitoring_story(tmp_path_factory: pytest.TempPathFactory) -> MonitoringStory:
    home = tmp_path_factory.mktemp("monitoring_home")
    builds, snapshots = {}, {}
    builds["no_files"] = run_build(home, select=MONITORING, exclude=SHADOW)
    snapshots["no_files"] = _snapshot(home)
    _land_ml_files(home)
    builds["with_files"] = run_build(home, select=MONITORING, exclude=SHADOW)
    snapshots["with_files"] = _snapshot(home)
    snapshots["with_files"]["scores"] = query(home, SCORES_SQL)
    _write_scores(home, "r3", [_score("t9", 1.5, "2024-03-08T18:00:00Z", "2")])
    builds["bad_score"] = run_build(home, select=MONITORING, exclude=SHADOW)
    return MonitoringStory(home, builds, snapshots)


def test_without_files_every_model_builds_empty_and_typed(monitoring_story):
    assert monitoring_story.builds["no_files"].ok, monitoring_story.builds["no_files"].error
    snap = monitoring_story.snapshots["no_files"]
    assert snap["counts"] == dict.fromkeys(TABLES, 0)
    for table, expected in EXPECTED_TYPES.items():
        types = snap["types"][table]
        assert {name: types[name] for name in expected} == expected, table


def test_types_do_not_change_once_files_exist(monitoring_story):
    snapshots = monitoring_story.snapshots
    assert snapshots["with_files"]["types"] == snapshots["no_files"]["types"]


def test_audit_events_and_gate_decisions_come_from_the_audit_log(monitoring_story):
    assert monitoring_story.builds["with_files"].ok, monitoring_story.builds["with_files"].error
    counts = monitoring_story.snapshots["with_files"]["counts"]
    assert counts["monitoring_audit_events"] == 3  # the torn line is skipped
    decisions = query(
        monitoring_story.home,
        "select decision, champion_version, challenger_version, champion_pr_auc, "
        "challenger_pr_auc, challenger_roc_auc, strftime(test_window_end, '%H:%M') "
        "from monitoring_gate_decisions order by challenger_version",
    )
    assert decisions == [
        ("promote", None, "1", None, 0.72, 0.93, "15:00"),
        ("reject", "1", "2", 0.72, 0.722, None, "16:00"),
    ]
    # the gate's comparison on events: a first-release decision has none
    compared = query(
        monitoring_story.home,
        "select reason_code, primary_metric, challenger_primary, primary_difference_low, "
        "primary_difference_high, events_in_window, challenger_false_alerts_per_day "
        "from monitoring_gate_decisions order by challenger_version",
    )
    assert compared == [
        (None, None, None, None, None, None, None),
        ("not_better", "event_average_precision", 0.802, -0.03, 0.035, 41, 9.5),
    ]


def test_drift_and_quality_results_are_typed_rows(monitoring_story):
    drift = query(
        monitoring_story.home,
        "select feature, statistic_name, statistic, drifted, reference_rows "
        "from monitoring_drift_reports order by feature",
    )
    assert drift == [
        ("session_type", "js_distance", 0.02, False, 5000),
        ("volume_zscore", "psi", 0.31, True, 5000),
    ]
    quality = query(
        monitoring_story.home,
        "select column_name, severity, success from monitoring_quality_results order by severity",
    )
    assert quality == [("trade_id", "critical", True), (None, "warning", False)]


def test_scores_keep_the_newest_score_per_trade_in_utc(monitoring_story):
    assert monitoring_story.snapshots["with_files"]["scores"] == [
        ("t1", 0.4, "2", "2024-03-08 14:30:00.250", "17:00"),
        ("t2", 0.1, "1", "2024-03-08 14:30:00.250", "16:00"),
    ]


def test_a_failing_data_test_fails_the_transform_with_one_line(monitoring_story):
    build = monitoring_story.builds["bad_score"]
    assert not build.ok
    assert "\n" not in build.error
    assert build.error.startswith("dbt build on target local failed: ")
    assert "accepted_range_gold_anomaly_scores_score" in build.error
    assert "failing row" in build.error
