"""The whole project, the Python model included, in one dbt build on a local Spark session, on
a small landed dataset with replays and bad lines: it must give the rows DuckDB gives."""

from __future__ import annotations

import pytest

from tests.dbt.warehouse_data import (
    bad_lines,
    clean_trades,
    expected_local_fields,
    land_bars,
    land_trades,
    run_build,
)


@pytest.mark.slow
@pytest.mark.spark
def test_whole_project_builds_on_a_local_spark_session(tmp_path):
    home, scratch = tmp_path / "home", tmp_path / "cwd"
    scratch.mkdir()
    records = clean_trades(("AAPL", "MSFT"))
    bad = bad_lines("s")
    land_trades(home, records + records[:3], [text for _id, text, _rule in bad])
    land_bars(home, fetched_at="2024-03-12T00:00:00.000Z")
    landed_files = sorted((home / "landing").rglob("*.ndjson"))

    build = run_build(
        home,
        target="spark",
        select=None,
        cwd=scratch,
        spark_queries={
            "silver": "select trade_id, cast(trade_date_ny as string), "
            "date_format(ts_ny, 'yyyy-MM-dd HH:mm:ss.SSS'), session_type, trade_ts_ms "
            "from tradewatch.silver_trades",
            "quarantine": (
                "select trade_id, quarantine_rule from tradewatch.silver_trades_quarantine"
            ),
            "bronze": "select count(*) from tradewatch.bronze_trades",
            "features": "select count(*) from gold.gold_trade_features",
            "daily": "select symbol, cast(bar_date as string), derived_from "
            "from gold.gold_daily_bars order by 1, 2",
        },
    )

    assert build.ok, build.error + "\n" + build.output[-3000:]
    assert set(build.statuses("model").values()) == {"success"}
    assert build.spark["bronze"] == [[len(records) + 3 + len(bad)]]
    silver = {row[0]: row[1:] for row in build.spark["silver"]}
    assert len(silver) == len(build.spark["silver"]) == len(records)
    for trade_id, (date_ny, ts_ny, session, ts_ms) in silver.items():
        assert (date_ny, ts_ny, session) == expected_local_fields(ts_ms), trade_id
    assert dict(map(tuple, build.spark["quarantine"])) == {tid: rule for tid, _t, rule in bad}
    assert build.spark["features"] == [[len(records)]]
    assert [row[2] for row in build.spark["daily"]] == ["5min", "daily", "daily"]
    # The landed files are external data: dropping the reader tables must leave them alone.
    assert sorted((home / "landing").rglob("*.ndjson")) == landed_files
    # The metastore and tables live under the data home, not in the working directory.
    assert (home / "spark" / "metastore_db").is_dir()
    assert not (scratch / "metastore_db").exists() and not (scratch / "spark-warehouse").exists()
    assert (home / "spark" / "derby.log").is_file() and not (scratch / "derby.log").exists()
