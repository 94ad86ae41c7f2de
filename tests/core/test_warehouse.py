"""The read-only warehouse reader: layer schemas, typed errors, a file left free between queries,
the Databricks token read only when a connection opens, and the same answers on Spark.

The DuckDB and Databricks basics (declared types, read-only, the dbt-held file, a locked
file, missing settings, an unreachable workspace) are in tests/expectations/test_readers.py."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from core.warehouse import (
    DatabricksWarehouse,
    DuckDBWarehouse,
    MissingTableOrColumn,
    MissingWarehouseSetting,
    QueryFailed,
    WarehouseBusy,
    as_warehouse,
)

REPO = Path(__file__).resolve().parents[2]
LAYERS = {"gold": "gold", "monitoring": "monitoring"}


@pytest.fixture
def layered_warehouse(tmp_path: Path) -> Path:
    """A DuckDB file as dbt leaves it once gold has its own schema (issue #15)."""
    path = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(path)) as connection:
        connection.execute("create schema gold")
        connection.execute(
            "create table gold.gold_trade_features as "
            "select 't1' as trade_id, 1709908200000::bigint as trade_ts_ms, 1.5::double as rsi_14"
        )
        connection.execute("create table main.silver_trades as select 't1' as trade_id")
    return path


def test_tables_resolve_through_their_layers_schema(layered_warehouse):
    warehouse = DuckDBWarehouse(layered_warehouse, layer_schemas=LAYERS)

    assert warehouse.table("gold_trade_features") == '"gold"."gold_trade_features"'
    assert warehouse.table("silver_trades") == '"main"."silver_trades"'
    assert warehouse.table_columns("gold_trade_features") == {
        "trade_id": "string", "trade_ts_ms": "integer", "rsi_14": "float",
    }
    rows = warehouse.query(f"select trade_id from {warehouse.table('gold_trade_features')}")
    assert rows["trade_id"].tolist() == ["t1"]
    assert warehouse.has_table("silver_trades")
    default = DuckDBWarehouse(layered_warehouse)  # the dbt project's layout by default
    assert default.table("gold_trade_features") == '"gold"."gold_trade_features"'
    assert not DuckDBWarehouse(layered_warehouse, layer_schemas={}).has_table("gold_trade_features")


def test_string_literals_come_back_as_written_on_duckdb(layered_warehouse):
    # Spark escapes with a backslash, DuckDB does not: each engine quotes its own way.
    warehouse = DuckDBWarehouse(layered_warehouse)
    assert warehouse.query(f"select {warehouse.literal(TRICKY)} as text")["text"][0] == TRICKY


def test_a_missing_table_or_column_says_to_build_the_warehouse(layered_warehouse):
    warehouse = as_warehouse(layered_warehouse)

    with pytest.raises(MissingTableOrColumn, match="tradewatch transform"):
        warehouse.query("select * from main.gold_anomaly_labels")
    with pytest.raises(MissingTableOrColumn, match="no_such_column"):
        warehouse.query("select no_such_column from main.silver_trades")
    with pytest.raises(QueryFailed, match="failed"):
        warehouse.query("select 1 +")


def _open_for_writing(path: Path) -> subprocess.CompletedProcess:
    """What dbt does: open the file read-write from another process."""
    return subprocess.run(
        [sys.executable, "-c", "import duckdb, sys; duckdb.connect(sys.argv[1]).close()",
         str(path)], capture_output=True, text=True, timeout=60,
    )


def test_the_file_is_free_for_a_writer_between_queries_and_held_inside_a_block(
    layered_warehouse,
):
    warehouse = DuckDBWarehouse(layered_warehouse)
    warehouse.query("select 1")

    assert _open_for_writing(layered_warehouse).returncode == 0
    with warehouse:
        assert warehouse.query("select count(*) as n from main.silver_trades")["n"][0] == 1
        held = _open_for_writing(layered_warehouse)
        assert held.returncode != 0 and "lock" in held.stderr.lower()
    assert _open_for_writing(layered_warehouse).returncode == 0


def test_a_writer_holding_the_file_makes_the_reader_busy_not_broken(layered_warehouse):
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('open', flush=True);"
         " sys.stdin.read()", str(layered_warehouse)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(WarehouseBusy, match="retry"):
            DuckDBWarehouse(layered_warehouse).query("select 1")
    finally:
        holder.communicate("")
    assert DuckDBWarehouse(layered_warehouse).query("select 1 as one")["one"][0] == 1


def test_the_databricks_token_is_read_when_a_connection_opens(monkeypatch):
    opened = []
    monkeypatch.setenv("TW_TEST_TOKEN", "dapi-first")
    warehouse = DatabricksWarehouse(
        "adb-1.azuredatabricks.net", "/sql/1.0/warehouses/abc", catalog="prod",
        layer_schemas=LAYERS, token_env="TW_TEST_TOKEN",
        connect=lambda **arguments: opened.append(arguments) or _Closed(),
    )
    monkeypatch.setenv("TW_TEST_TOKEN", "dapi-rotated")

    with warehouse:
        pass

    assert opened[0]["access_token"] == "dapi-rotated"
    assert opened[0]["enable_telemetry"] is False
    assert "dapi" not in repr(warehouse) and "TW_TEST_TOKEN" in repr(warehouse)
    assert warehouse.table("gold_trade_features") == "`prod`.`gold`.`gold_trade_features`"
    assert warehouse.table("silver_trades") == "`prod`.`main`.`silver_trades`"
    monkeypatch.delenv("TW_TEST_TOKEN")
    with pytest.raises(MissingWarehouseSetting, match="set TW_TEST_TOKEN"), warehouse:
        pass


class _Closed:
    def close(self) -> None:
        return None


#: A string literal must come back as written on every engine (Windows paths, an O'Brien).
TRICKY = "C:\\Users\\o'brien\\n"


class ServerOperationError(Exception):
    """Named like the connector's error for a statement the SQL warehouse refused."""


class _RefusingConnection:
    """A connection whose every statement the SQL warehouse refuses with `message`."""

    def __init__(self, message: str) -> None:
        self.message = message

    def cursor(self):
        return contextlib.nullcontext(self)

    def execute(self, sql):
        raise ServerOperationError(self.message)

    def close(self):
        return None


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ("[TABLE_OR_VIEW_NOT_FOUND] The table `prod`.`main`.`gold_x` cannot be found.",
         MissingTableOrColumn),
        ("[UNRESOLVED_COLUMN.WITH_SUGGESTION] A column `rsi` cannot be resolved.",
         MissingTableOrColumn),
        ("[DIVIDE_BY_ZERO] Division by zero (token dapi-secret-1 in a quoted URL)", QueryFailed),
    ],
)
def test_databricks_query_errors_are_typed_and_never_show_the_token(message, error):
    warehouse = DatabricksWarehouse(
        "adb-1.azuredatabricks.net", "/sql/1.0/warehouses/abc",
        environ={"DATABRICKS_TOKEN": "dapi-secret-1"},
        connect=lambda **_: _RefusingConnection(message),
    )

    with pytest.raises(error) as raised:
        warehouse.query("select 1")

    assert "dapi-secret-1" not in str(raised.value)
    assert raised.value.__cause__ is None
