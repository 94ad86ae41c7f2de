"""Reading gold tables read-only (training, scoring and drift windows), the label-source policy
and the time split."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from core.schema import FEATURE_COLUMNS
from core.warehouse import (
    DatabricksWarehouse,
    MissingWarehouseSetting,
    WarehouseBusy,
    WarehouseNotFound,
)
from ml.datasets import (
    DatasetError,
    InsufficientData,
    MissingColumns,
    TooFewTrustedLabels,
    count_new_analyst_decisions,
    count_trusted_labelled,
    load_ground_truth_events,
    load_training_frame,
    load_window_rows,
    newest_trade_ms,
    normalise_features,
    split_by_time,
    training_frame_from,
    training_query,
    trusted_labels,
    trusted_training_frame,
)
from ml.synthetic import synthetic_market


def write_gold(path: Path, features: pd.DataFrame, labels: pd.DataFrame) -> None:
    """Stand in for dbt: gold tables with the warehouse's column types."""
    con = duckdb.connect(str(path))
    con.register("features_df", features)
    con.register("labels_df", labels)
    con.execute("create schema gold")  # where dbt builds gold
    con.execute(
        "create table gold.gold_trade_features as select * exclude (trade_ts, hour_of_day, "
        "minute_of_hour, day_of_week), make_timestamp(trade_ts_ms * 1000) as trade_ts, "
        "cast(hour_of_day as integer) as hour_of_day, cast(minute_of_hour as integer) as "
        "minute_of_hour, cast(day_of_week as integer) as day_of_week from features_df"
    )
    con.execute(
        "create table gold.gold_anomaly_labels as select trade_id, symbol, "
        "make_timestamp(trade_ts_ms * 1000) as trade_ts, is_anomaly, label_source, anomaly_kind "
        "from labels_df"
    )
    con.close()


@pytest.fixture(scope="module")
def small_market():
    return synthetic_market(3000, anomaly_rate=0.03, seed=3)


def split_frames(market):
    columns = [
        c for c in market.frame.columns if c not in ("is_anomaly", "label_source", "anomaly_kind")
    ]
    return market.frame[columns], market.frame[
        ["trade_id", "symbol", "trade_ts_ms", "is_anomaly", "label_source", "anomaly_kind"]
    ]


def test_training_frame_joins_labels_and_records_the_label_source_mix(tmp_path, small_market):
    features, labels = split_frames(small_market)
    labels = labels.iloc[50:].copy()  # the first 50 trades have no label yet
    labels.loc[labels.index[:100], "label_source"] = "analyst"
    warehouse = tmp_path / "warehouse.duckdb"
    write_gold(warehouse, features, labels)

    data = load_training_frame(warehouse)

    assert data.unlabelled_rows == 50
    assert len(data.frame) == len(features) - 50
    assert data.labels.mix == {"analyst": 100, "ground_truth": len(features) - 150, "rule": 0}
    assert data.labels.positives == int(labels["is_anomaly"].sum())
    assert data.labels.weak is False
    assert data.labels.as_tags()["weak_labels"] == "false"
    # Types are canonical whatever the warehouse used (integers, naive timestamps).
    assert data.frame["hour_of_day"].dtype == "float64"
    assert str(data.frame["trade_ts"].dt.tz) == "UTC"
    assert data.frame["trade_ts_ms"].is_monotonic_increasing
    assert set(data.frame["session_type"].dropna()) <= {
        "pre_market",
        "regular",
        "after_hours",
        "closed",
    }


def test_rule_only_labels_flag_the_run_as_weak(tmp_path, small_market):
    features, labels = split_frames(small_market)
    labels = labels.assign(label_source="rule")
    warehouse = tmp_path / "warehouse.duckdb"
    write_gold(warehouse, features, labels)

    data = load_training_frame(warehouse)

    assert data.labels.weak is True
    assert json.loads(data.labels.as_tags()["label_source_mix"])["rule"] == len(features)


def test_rule_labels_are_never_training_labels_and_too_few_trusted_ones_refuse(
    tmp_path, small_market
):
    features, labels = split_frames(small_market)
    labels = labels.copy()
    labels.loc[labels.index[:2000], "label_source"] = "rule"  # the rule labels most trades
    labels.loc[labels.index[:2000:2], "is_anomaly"] = True  # and calls half of them anomalous
    warehouse = tmp_path / "warehouse.duckdb"
    write_gold(warehouse, features, labels)
    data = load_training_frame(warehouse)
    trusted = labels.iloc[2000:]

    kept = trusted_training_frame(data, min_labels=1, min_positives=1)

    assert len(kept.frame) == len(trusted) and kept.untrusted_rows == 2000
    assert set(kept.frame["label_source"]) == {"ground_truth"}
    assert kept.labels.positives == int(trusted["is_anomaly"].sum())
    with pytest.raises(TooFewTrustedLabels, match=(
        rf"{len(trusted):,} trusted labels \({kept.labels.positives} anomalous\); training needs "
        rf"at least {len(trusted) + 1:,}"
    )) as refused:
        trusted_training_frame(data, min_labels=len(trusted) + 1, min_positives=1)
    assert (refused.value.labels, refused.value.untrusted_rows) == (len(trusted), 2000)
    with pytest.raises(TooFewTrustedLabels):
        trusted_training_frame(data, min_labels=1, min_positives=kept.labels.positives + 1)


def test_missing_feature_column_is_a_typed_error_naming_it(tmp_path, small_market):
    features, labels = split_frames(small_market)
    write_gold(tmp_path / "w.duckdb", features.drop(columns=["rsi_14"]), labels)

    with pytest.raises(MissingColumns, match="rsi_14"):
        load_training_frame(tmp_path / "w.duckdb")


def test_missing_warehouse_says_to_run_transform(tmp_path):
    with pytest.raises(WarehouseNotFound, match="tradewatch transform"):
        load_training_frame(tmp_path / "absent.duckdb")
    assert not (tmp_path / "absent.duckdb").exists()


def test_warehouse_locked_by_a_writer_process_is_reported_as_busy(tmp_path, small_market):
    features, labels = split_frames(small_market)
    warehouse = tmp_path / "w.duckdb"
    write_gold(warehouse, features, labels)
    holder = (
        f"import duckdb, sys; c = duckdb.connect({str(warehouse)!r}); "
        "print('open', flush=True); sys.stdin.read()"
    )
    writer = subprocess.Popen(
        [sys.executable, "-c", holder], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert writer.stdout.readline().strip() == "open"
        with pytest.raises(WarehouseBusy, match="retry"):
            load_training_frame(warehouse)
    finally:
        writer.communicate("")


def test_reads_while_this_process_holds_a_dbt_style_connection(tmp_path, small_market):
    features, labels = split_frames(small_market)
    warehouse = tmp_path / "w.duckdb"
    write_gold(warehouse, features, labels)
    held = duckdb.connect(str(warehouse))  # as dbtRunner leaves it after a build
    try:
        data = load_training_frame(warehouse)
    finally:
        held.close()
    assert len(data.frame) == len(features)


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def test_a_drift_window_holds_its_trades_and_their_labels(tmp_path, small_market):
    features, labels = split_frames(small_market)
    labels = labels.iloc[100:].copy()  # the oldest trades have no label yet
    labels.loc[labels.index[:50], "label_source"] = "rule"
    warehouse = tmp_path / "w.duckdb"
    write_gold(warehouse, features, labels)
    ts = features["trade_ts_ms"].to_numpy()
    start, end = int(ts[50]), int(ts[400])

    window = load_window_rows(
        warehouse, _at(start), _at(end), extra_columns=("volume",), max_rows=10_000
    )

    inside = features[(ts >= start) & (ts < end)]  # the end is exclusive
    assert not window.sampled and window.total == len(inside) == len(window.frame)
    assert set(window.frame["trade_id"]) == set(inside["trade_id"])
    assert {"volume", "trade_ts", *FEATURE_COLUMNS} <= set(window.frame.columns)
    assert window.frame["rsi_14"].dtype == np.float64
    assert window.frame["label_source"].isna().sum() == 50  # trades 50..99: no label row
    trusted = trusted_labels(window.frame)
    assert sum(label is None for label in trusted) == 100  # unlabelled and rule-labelled
    assert newest_trade_ms(warehouse) == int(ts.max())


def test_a_drift_window_too_large_is_a_seeded_sample_that_says_so(tmp_path, small_market):
    features, labels = split_frames(small_market)
    warehouse = tmp_path / "w.duckdb"
    write_gold(warehouse, features, labels)
    ts = features["trade_ts_ms"]
    start, end = _at(int(ts.min())), _at(int(ts.max()) + 1)

    first = load_window_rows(warehouse, start, end, labels=False, max_rows=500)
    again = load_window_rows(warehouse, start, end, labels=False, max_rows=500)

    assert first.sampled and (len(first.frame), first.total) == (500, len(features))
    assert first.frame["trade_id"].tolist() == again.frame["trade_id"].tolist()
    assert first.frame["is_anomaly"].isna().all()  # no labels table asked for


def test_trusted_labelled_trades_are_counted_after_a_moment(tmp_path, small_market):
    features, labels = split_frames(small_market)
    labels.loc[labels.index[:1000], "label_source"] = "rule"  # not trusted
    labels.loc[labels.index[1000:1100], "label_source"] = "analyst"
    warehouse = tmp_path / "w.duckdb"
    write_gold(warehouse, features, labels)
    ts = features["trade_ts_ms"].to_numpy()

    assert count_trusted_labelled(warehouse, after=None) == len(features) - 1000
    assert count_trusted_labelled(warehouse, after=_at(int(ts[1999]))) == len(features) - 2000
    assert newest_trade_ms(_empty_gold(tmp_path / "empty.duckdb", features, labels)) is None


def test_analyst_decisions_since_the_last_training_count_on_old_trades_too(
    tmp_path, small_market
):
    features, labels = split_frames(small_market)
    warehouse = tmp_path / "w.duckdb"
    write_gold(warehouse, features, labels)
    ts = features["trade_ts_ms"].to_numpy()
    trained_at = datetime(2026, 1, 5, 12, tzinfo=UTC)
    assert count_new_analyst_decisions(warehouse, decided_after=trained_at,
                                       trades_until=_at(int(ts[1999]))) == 0  # not built: 0
    decided = pd.DataFrame({
        "trade_id": features["trade_id"].iloc[[10, 20, 30, 2500]],
        # two before the training, two after it: one on an old trade, one on a new trade
        "labelled_at": pd.to_datetime(["2026-01-04 09:00", "2026-01-05 11:59",
                                       "2026-01-05 12:01", "2026-01-06 08:00"]),
    })
    with duckdb.connect(str(warehouse)) as con:
        con.register("decided", decided)
        con.execute("create table int_analyst_labels as select * from decided")

    counted = count_new_analyst_decisions(warehouse, decided_after=trained_at,
                                          trades_until=_at(int(ts[1999])))
    assert counted == 1  # the decision on trade 30: the one on trade 2500 is a new trade
    assert count_new_analyst_decisions(warehouse, decided_after=None, trades_until=None) == 4


def _empty_gold(path: Path, features: pd.DataFrame, labels: pd.DataFrame) -> Path:
    write_gold(path, features.iloc[:0], labels.iloc[:0])
    return path


def test_time_split_never_leaks_and_counts_purged_rows(split, market):
    purge_ms = split.purge_seconds * 1000
    train_ts, val_ts, test_ts = (
        s["trade_ts_ms"] for s in (split.train, split.validation, split.test)
    )

    assert train_ts.max() + purge_ms <= val_ts.min()
    assert val_ts.max() + purge_ms <= test_ts.min()
    assert train_ts.max() < test_ts.min()
    assert sum(split.purged_rows.values()) > 0
    assert len(split.train) + len(split.validation) + len(split.test) + sum(
        split.purged_rows.values()
    ) == len(market.frame)
    # The test window is the newest data, kept whole.
    assert test_ts.max() == market.frame["trade_ts_ms"].max()
    summary = split.summary()
    assert summary["test_rows"] == len(split.test)
    assert summary["purged_rows"] == sum(split.purged_rows.values())


def test_equal_timestamps_never_straddle_a_boundary():
    market = synthetic_market(2000, anomaly_rate=0.05, seed=5)
    frame = market.frame.copy()
    frame["trade_ts_ms"] = frame["trade_ts_ms"] // 60_000 * 60_000  # many trades per minute
    data = training_frame_from(frame)

    split = split_by_time(data, purge_seconds=0)

    assert split.train["trade_ts_ms"].max() < split.validation["trade_ts_ms"].min()
    assert split.validation["trade_ts_ms"].max() < split.test["trade_ts_ms"].min()


def test_history_shorter_than_the_purge_gap_is_refused():
    market = synthetic_market(500, anomaly_rate=0.05, seed=1, seconds_between_trades=1.0)

    with pytest.raises(InsufficientData, match="purge"):
        split_by_time(training_frame_from(market.frame), purge_seconds=3600)


def test_validation_without_anomalies_is_refused():
    market = synthetic_market(3000, anomaly_rate=0.03, seed=2)
    frame = market.frame.copy()
    late = frame["trade_ts_ms"] >= frame["trade_ts_ms"].quantile(0.6)
    frame.loc[late, "is_anomaly"] = False

    with pytest.raises(InsufficientData, match="validation window has no anomalous trade"):
        split_by_time(training_frame_from(frame), purge_seconds=60)


def test_databricks_query_is_qualified_and_the_token_stays_out_of_sight(monkeypatch):
    monkeypatch.setenv("TW_TEST_DATABRICKS_TOKEN", "dapi-secret-value")
    warehouse = DatabricksWarehouse(
        "adb-1.azuredatabricks.net",
        "/sql/1.0/warehouses/abc",
        catalog="main",
        schema="tradewatch",
        token_env="TW_TEST_DATABRICKS_TOKEN",
    )

    sql = training_query(warehouse, FEATURE_COLUMNS, start_ms=1_700_000_000_000)

    # Gold is in the catalog's `gold` schema on every target (dbt's generate_schema_name).
    assert "from `main`.`gold`.`gold_trade_features` as f" in sql
    assert "left join `main`.`gold`.`gold_anomaly_labels` as l" in sql
    assert "f.trade_ts_ms >= 1700000000000" in sql
    assert "dapi-secret-value" not in repr(warehouse)
    monkeypatch.delenv("TW_TEST_DATABRICKS_TOKEN")
    with pytest.raises(MissingWarehouseSetting, match="set TW_TEST_DATABRICKS_TOKEN"):
        warehouse.query(sql)
    with pytest.raises(ValueError, match="not a plain SQL identifier"):
        DatabricksWarehouse("h", "/p", catalog="main; drop table x", schema="s")


def test_ground_truth_skips_a_torn_last_line_but_not_damage_inside(tmp_path):
    lines = [
        json.dumps(
            {
                "trade_id": f"t{i}",
                "event_id": f"e{i // 2}",
                "kind": "wash_cluster",
                "symbol": "AAPL",
                "trade_ts_ms": i,
            }
        )
        for i in range(4)
    ]
    (tmp_path / "trades.ndjson").write_text("\n".join(lines) + '\n{"trade_id": "t4", "ev')

    events = load_ground_truth_events(tmp_path)

    assert list(events["trade_id"]) == ["t0", "t1", "t2", "t3"]
    assert events["event_id"].nunique() == 2
    (tmp_path / "trades.ndjson").write_text(lines[0] + "\nnot json\n" + lines[1] + "\n")
    with pytest.raises(DatasetError, match="line 2"):
        load_ground_truth_events(tmp_path)


def test_synthetic_market_is_reproducible():
    a = synthetic_market(1000, seed=11).frame
    b = synthetic_market(1000, seed=11).frame
    pd.testing.assert_frame_equal(a, b)
    assert np.isclose(a["is_anomaly"].mean(), 0.015, atol=0.01)


def test_features_are_normalised_to_float64_and_text_keeping_missing_and_infinite_values():
    features = ("rsi_14", "hour_of_day", "volume_zscore", "session_type", "trade_type")
    raw = pd.DataFrame(
        {
            "trade_ts_ms": [1_709_908_200_000, 1_709_908_201_000, 1_709_908_202_000, 0],
            "rsi_14": [1.5, np.nan, np.inf, -np.inf],
            "hour_of_day": np.array([9, 10, 11, 12], dtype="int64"),
            "volume_zscore": pd.Series(["2", "bad", None, 3], dtype=object),
            "session_type": pd.Series(["regular", None, np.nan, pd.NA], dtype=object),
            "trade_type": pd.Series([1, "block", None, 2.5], dtype=object),
            "symbol": ["AAPL", "AAPL", "MSFT", "MSFT"],
        }
    )
    before = raw.copy()

    out = normalise_features(raw, features)

    pd.testing.assert_frame_equal(raw, before)  # the input is not modified
    for column in ("rsi_14", "hour_of_day", "volume_zscore"):
        assert out[column].dtype == np.float64
    np.testing.assert_array_equal(out["rsi_14"], [1.5, np.nan, np.inf, -np.inf])
    np.testing.assert_array_equal(out["hour_of_day"], [9.0, 10.0, 11.0, 12.0])
    np.testing.assert_array_equal(out["volume_zscore"], [2.0, np.nan, np.nan, 3.0])
    assert list(out["session_type"]) == ["regular", None, None, None]
    assert list(out["trade_type"]) == ["1", "block", None, "2.5"]
    assert {type(v) for v in out["trade_type"] if v is not None} == {str}
    assert out["trade_ts"].iloc[0] == pd.Timestamp("2024-03-08T14:30:00Z")
    assert list(out["symbol"]) == ["AAPL", "AAPL", "MSFT", "MSFT"]
    # already canonical rows come back unchanged
    pd.testing.assert_frame_equal(normalise_features(out, features), out)
