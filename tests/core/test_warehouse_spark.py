"""The one warehouse reader on a local Spark session answers as it does on DuckDB."""

from __future__ import annotations

import textwrap

import pytest

from tests.support.spark_child import run_spark_script

TRICKY = "C:\\Users\\o'brien\\n"


SPARK_CHECKS = textwrap.dedent("""
    import json, sys
    from tests.support.spark_child import local_session
    from core.warehouse import MissingTableOrColumn, SparkWarehouse

    home = sys.argv[1]
    TRICKY = %r
    session = local_session(home)
    for schema in ("tradewatch", "gold"):
        session.sql(f"create schema {schema}")
    session.sql(
        "create table gold.gold_trade_features using parquet as select 't1' as trade_id, "
        "cast(1709908200000 as bigint) as trade_ts_ms, cast(1.5 as double) as rsi_14, "
        "cast(3 as int) as hour_of_day, cast(2.5 as decimal(38,12)) as session_cum_volume"
    )
    warehouse = SparkWarehouse(session, layer_schemas={"gold": "gold"})
    out = {
        "table": warehouse.table("gold_trade_features"),
        "columns": warehouse.table_columns("gold_trade_features"),
        "absent": warehouse.table_columns("gold_anomaly_labels"),
        "rows": warehouse.read_table("gold_trade_features", ["trade_id", "rsi_14"])
        .to_dict("records"),
        "literal": warehouse.query(
            "select " + warehouse.literal(TRICKY) + " as text")["text"].iloc[0],
    }
    try:
        warehouse.query("select * from tradewatch.gold_anomaly_labels")
    except MissingTableOrColumn as exc:
        out["missing"] = str(exc)
    print("RESULT " + json.dumps(out), flush=True)
    session.stop()
""") % TRICKY


@pytest.mark.slow
@pytest.mark.spark
def test_spark_answers_as_the_other_engines(tmp_path):
    out = run_spark_script(tmp_path, "spark_checks.py", SPARK_CHECKS)

    assert out["table"] == "`gold`.`gold_trade_features`"
    assert out["columns"] == {
        "trade_id": "string", "trade_ts_ms": "integer", "rsi_14": "float",
        "hour_of_day": "integer", "session_cum_volume": "decimal(38,12)",
    }
    assert out["absent"] is None
    assert out["rows"] == [{"trade_id": "t1", "rsi_14": 1.5}]
    assert out["literal"] == TRICKY
    assert "tradewatch transform" in out["missing"]
