"""The drift file dbt reads: the shared contract's columns, written whole, never rewritten."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from core.datahome import DRIFT_RECORDS, LocalDataHome
from ml.drift import DriftReport, FeatureDrift
from ml.drift_records import drift_records, read_newest_drift_records, write_drift_ndjson
from ml.drift_windows import TimeWindow

END = datetime(2024, 3, 8, 21, 0, tzinfo=UTC)


def report(run_id: str = "run-42") -> DriftReport:
    return DriftReport(
        run_id=run_id,
        run_ts=END,
        reference_window=TimeWindow(END - timedelta(days=8), END - timedelta(days=1)),
        current_window=TimeWindow(END - timedelta(days=1), END),
        features=(
            FeatureDrift("volume_zscore", "numeric", "psi", 1.25, 0.2, True, 20_000, 5_000),
            FeatureDrift("session_type", "categorical", "js_distance", 0.01, 0.1, False,
                         20_000, 5_000, note="new in the current window: closed"),
            FeatureDrift("pr_auc", "performance", "pr_auc_drop", 0.02, 0.05, False, 900, 300),
        ),
    )


def test_drift_file_follows_the_shared_contract(tmp_path):
    path = write_drift_ndjson(report(), tmp_path / "monitoring" / "drift")

    assert path.name == "drift-run-42.ndjson"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["feature"] for r in rows] == ["volume_zscore", "session_type", "pr_auc"]
    assert [set(r) for r in rows] == [set(DRIFT_RECORDS.columns)] * 3
    zscore = rows[0]
    assert zscore["drifted"] is True and zscore["kind"] == "numeric"
    assert zscore["statistic_name"] == "psi" and zscore["threshold"] == 0.2
    assert zscore["reference_rows"] == 20_000 and zscore["current_rows"] == 5_000
    assert zscore["run_ts"] == "2024-03-08T21:00:00.000Z"
    assert zscore["reference_start"] == "2024-02-29T21:00:00.000Z"
    assert zscore["current_end"] == "2024-03-08T21:00:00.000Z"
    assert rows[1]["kind"] == "categorical" and rows[1]["statistic_name"] == "js_distance"
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left over


def test_a_drift_file_is_never_rewritten(tmp_path):
    path = write_drift_ndjson(report(), tmp_path)
    before = path.read_bytes()

    with pytest.raises(FileExistsError, match="drift-run-42.ndjson already exists"):
        write_drift_ndjson(report(), tmp_path)
    assert path.read_bytes() == before


def test_the_records_are_in_the_contracts_column_order():
    assert [list(r) for r in drift_records(report())] == [list(DRIFT_RECORDS.columns)] * 3


def test_the_newest_drift_file_is_read_back_and_a_damaged_one_is_none(tmp_path):
    home = LocalDataHome(tmp_path)
    assert read_newest_drift_records(home) is None
    write_drift_ndjson(report("20240308T200000Z-aaaa"), home)
    write_drift_ndjson(report("20240308T210000Z-bbbb"), home)

    rows = read_newest_drift_records(home)

    assert rows == drift_records(report("20240308T210000Z-bbbb"))
    home.write_atomic("drift-20240308T220000Z-cccc.ndjson", '{"run_id": "20240308T22')
    assert read_newest_drift_records(home) is None
