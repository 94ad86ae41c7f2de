"""The warehouse on DuckDB: bronze, silver, quarantine and bars through batches and re-runs.

One landed home goes through four builds (first batch, a re-run on the same files, a second
batch, a full refresh); the tests read the snapshots taken after each. See conftest.py and
warehouse_data.py for the data.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest

from tests.dbt.warehouse_data import expected_local_fields, expected_trade_type, query

pytestmark = pytest.mark.slow


def test_every_build_succeeds_with_all_tests_passing(warehouse_story):
    for stage, build in warehouse_story.builds.items():
        assert build.ok, f"{stage}: {build.error}"
        tests = build.statuses("test")
        assert tests["assert_trades_reconcile"] == "pass"
        assert "unique_silver_trades_trade_id" in tests
        assert set(build.statuses("unit_test").values()) == {"pass"}


def test_full_refresh_rebuilds_the_same_trades_from_the_landed_files(warehouse_story):
    snapshots = warehouse_story.snapshots
    incremental, rebuilt = snapshots["second"], snapshots["full_refresh"]
    for name in ("bronze_rows", "silver_rows", "quarantine_rows", "silver_values", "quarantine"):
        assert rebuilt[name] == incremental[name], name


def test_bronze_keeps_every_landed_line_and_never_reads_hidden_files(warehouse_story):
    first = warehouse_story.snapshots["first"]
    assert first["bronze_rows"] == warehouse_story.landed_first.lines
    assert first["bronze_files"] == len(warehouse_story.landed_first.files)
    sources = query(warehouse_story.home, "select distinct _source_file from bronze_trades")
    assert all(not path.rsplit("/", 1)[-1].startswith(".") for (path,) in sources)


def test_rerun_on_the_same_files_adds_nothing(warehouse_story):
    first, rerun = warehouse_story.snapshots["first"], warehouse_story.snapshots["rerun"]
    for name in ("bronze_rows", "silver_rows", "quarantine_rows", "bronze_bars_rows"):
        assert rerun[name] == first[name], name
    assert rerun["silver_ingested"] == first["silver_ingested"]


def test_rows_reconcile_bronze_equals_silver_plus_quarantine_plus_duplicates(warehouse_story):
    for stage, landed in (("first", warehouse_story.landed_first),
                          ("second", warehouse_story.landed_second)):
        snap = warehouse_story.snapshots[stage]
        assert landed.duplicates > 0
        assert snap["silver_rows"] == len(landed.valid_records)
        assert snap["quarantine_rows"] == len(landed.rules)
        accounted = snap["silver_rows"] + snap["quarantine_rows"] + landed.duplicates
        assert snap["bronze_rows"] == accounted


def test_every_bad_row_is_quarantined_with_the_rule_it_broke(warehouse_story):
    quarantined = dict(warehouse_story.snapshots["second"]["quarantine"])
    assert quarantined == warehouse_story.landed_second.rules
    silver_rows = warehouse_story.snapshots["second"]["silver_ingested"]
    silver_ids = {trade_id for trade_id, _at, _file in silver_rows}
    assert not silver_ids & set(quarantined)


def test_silver_holds_each_trade_once_typed_as_landed(warehouse_story):
    rows = query(
        warehouse_story.home,
        "select trade_id, symbol, price, volume, trade_ts_ms, trade_ts, received_at, conditions "
        "from silver_trades",
    )
    expected = warehouse_story.landed_second.valid_records
    assert len(rows) == len(expected) == len({row[0] for row in rows})
    for trade_id, symbol, price, volume, ts_ms, trade_ts, received_at, conditions in rows:
        record = expected[trade_id]
        assert (symbol, price, volume, ts_ms) == (
            record["symbol"], record["price"], record["volume"], record["trade_ts_ms"]
        )
        assert trade_ts == datetime.fromtimestamp(ts_ms / 1000, UTC).replace(tzinfo=None)
        assert received_at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z" == record["received_at"]
        assert conditions == record["conditions"]


def test_first_landed_copy_of_a_duplicate_wins(warehouse_story):
    """A trade replayed in the second batch keeps the row (file, ingestion time) of batch one."""
    first = {row[0]: row[1:] for row in warehouse_story.snapshots["first"]["silver_ingested"]}
    second = {row[0]: row[1:] for row in warehouse_story.snapshots["second"]["silver_ingested"]}
    assert all(second[trade_id] == kept for trade_id, kept in first.items())


def test_second_batch_adds_only_its_new_trades(warehouse_story):
    first = {row[0] for row in warehouse_story.snapshots["first"]["silver_ingested"]}
    second = warehouse_story.snapshots["second"]["silver_ingested"]
    new_ids = {trade_id for trade_id, _at, _file in second} - first
    expected_new = set(warehouse_story.landed_second.valid_records) - set(
        warehouse_story.landed_first.valid_records
    )
    assert new_ids == expected_new
    first_stamp = {at for trade_id, at, _file in second if trade_id in first}
    new_stamp = {at for trade_id, at, _file in second if trade_id in new_ids}
    assert len(first_stamp) == 1 and len(new_stamp) == 1 and new_stamp != first_stamp


def test_new_york_fields_and_sessions_are_dst_correct(warehouse_story):
    rows = query(
        warehouse_story.home,
        "select trade_ts_ms, cast(trade_date_ny as varchar), "
        "strftime(ts_ny, '%Y-%m-%d %H:%M:%S.%g'), session_type from silver_trades",
    )
    sessions = Counter()
    for ts_ms, date_ny, ts_ny, session in rows:
        assert (date_ny, ts_ny, session) == expected_local_fields(ts_ms)
        sessions[session] += 1
    assert set(sessions) == {"pre_market", "regular", "after_hours", "closed"}
    # 09:30 New York is 14:30 UTC on Friday 8 March (EST) and 13:30 UTC on Monday 11 March (EDT).
    opens = query(
        warehouse_story.home,
        "select distinct strftime(trade_ts, '%Y-%m-%d %H:%M') from silver_trades "
        "where strftime(ts_ny, '%H:%M:%S.%g') = '09:30:00.000'",
    )
    assert sorted(opens) == [("2024-03-08 14:30",), ("2024-03-09 14:30",), ("2024-03-11 13:30",)]


def test_trade_type_follows_the_size_thresholds(warehouse_story):
    rows = query(warehouse_story.home, "select volume, trade_type from silver_trades")
    assert {trade_type for _v, trade_type in rows} == {"block", "standard", "odd_lot"}
    assert all(trade_type == expected_trade_type(volume) for volume, trade_type in rows)


def test_minute_bars_match_an_independent_aggregation(warehouse_story):
    trades = query(
        warehouse_story.home,
        "select symbol, date_trunc('minute', trade_ts), trade_ts, trade_id, price, volume "
        "from silver_trades",
    )
    by_bar: dict[tuple, list] = {}
    for symbol, minute, ts, trade_id, price, volume in trades:
        by_bar.setdefault((symbol, minute), []).append((ts, trade_id, price, volume))
    bars = query(
        warehouse_story.home,
        "select symbol, bar_minute, open, high, low, close, volume, vwap, trade_count "
        "from gold_minute_bars",
    )
    assert len(bars) == len(by_bar)
    for symbol, minute, open_, high, low, close, volume, vwap, count in bars:
        rows = sorted(by_bar[(symbol, minute)])
        prices = [price for _ts, _id, price, _v in rows]
        total = sum(v for *_rest, v in rows)
        assert (open_, close, count) == (prices[0], prices[-1], len(rows))
        assert (high, low) == (max(prices), min(prices))
        assert volume == pytest.approx(total, rel=1e-12)
        if total == 0:
            assert vwap is None
        else:
            assert vwap == pytest.approx(sum(p * v for *_r, p, v in rows) / total, rel=1e-12)


def test_refetched_bars_are_appended_and_silver_keeps_the_newest(warehouse_story):
    first = warehouse_story.snapshots["first"]["bronze_bars_rows"]
    assert first == 8
    assert warehouse_story.snapshots["second"]["bronze_bars_rows"] == 16
    closes = query(
        warehouse_story.home,
        "select close, strftime(fetched_at, '%Y-%m-%d') from silver_bars "
        "where symbol = 'AAPL' and bar_local = '2024-03-08 15:55:00'",
    )
    assert closes == [(110.0, "2024-03-13")]


def test_daily_bars_take_daily_fetches_or_roll_up_the_regular_session(warehouse_story):
    rows = query(
        warehouse_story.home,
        "select symbol, cast(bar_date as varchar), open, high, low, close, volume, bar_count, "
        "derived_from from gold_daily_bars order by symbol, bar_date",
    )
    # AAPL: the 09:30, 12:00 and 15:55 bars (08:00, 16:00 and 18:00 are outside the session).
    assert rows[0] == ("AAPL", "2024-03-08", 100.5, 111.0, 100.0, 110.0, 3000.0, 3, "5min")
    assert [row[:2] for row in rows[1:]] == [("MSFT", "2024-03-08"), ("MSFT", "2024-03-11")]
    assert {row[-1] for row in rows[1:]} == {"daily"}
