"""Reading the warehouse: DuckDB read-only, landed-line counting, the Databricks reader offline."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading

import duckdb
import pytest

from core.warehouse import (
    DatabricksWarehouse,
    DuckDBWarehouse,
    MissingWarehouseSetting,
    QueryFailed,
    WarehouseBusy,
    WarehouseNotFound,
    WarehouseUnreachable,
)
from expectations.readers import LocalLanding, VolumeLanding

TOKEN = "dapi-not-a-real-token-0123456789"


def test_landed_lines_are_counted_and_files_being_written_are_not(tmp_path):
    day = tmp_path / "date=2024-03-08"
    day.mkdir()
    (day / "a.ndjson").write_text('{"trade_id": "1"}\n{"trade_id": "2"}\n\n')
    (day / "b.ndjson").write_text('{"trade_id": "3"}')  # no trailing newline
    (day / ".c.tmp").write_text('{"trade_id": "4"}\n')
    (day / ".d.ndjson").write_text('{"trade_id": "5"}\n')

    assert LocalLanding(tmp_path).count_trade_lines() == 3
    assert LocalLanding(tmp_path / "missing").count_trade_lines() == 0


@pytest.fixture
def small_warehouse(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(path)) as connection:
        connection.execute(
            "create table silver_trades as select 't1' as trade_id, 'AAPL' as symbol, "
            "189.5::double as price, ['1']::varchar[] as conditions, "
            "timestamp '2024-03-08 15:00:00' as trade_ts"
        )
    return path


def test_duckdb_reader_sees_declared_types_and_reads_only_the_asked_columns(small_warehouse):
    with DuckDBWarehouse(small_warehouse) as warehouse:
        assert warehouse.table_columns("silver_trades") == {
            "trade_id": "string", "symbol": "string", "price": "float",
            "conditions": "list", "trade_ts": "timestamp",
        }
        assert warehouse.table_columns("gold_trade_features") is None
        frame = warehouse.read_table("silver_trades", ["trade_id", "price"])
    assert list(frame.columns) == ["trade_id", "price"]
    assert frame.iloc[0].to_dict() == {"trade_id": "t1", "price": 189.5}


def test_duckdb_reader_cannot_write_the_warehouse(small_warehouse):
    with DuckDBWarehouse(small_warehouse) as warehouse, pytest.raises(QueryFailed):
        warehouse.query("delete from silver_trades")
    with duckdb.connect(str(small_warehouse), read_only=True) as check:
        assert check.execute("select count(*) from silver_trades").fetchone() == (1,)


def test_duckdb_reader_shares_a_connection_this_process_already_opened(small_warehouse):
    # What a process that ran dbtRunner looks like: the file is open with the default config.
    held = duckdb.connect(str(small_warehouse))
    try:
        with DuckDBWarehouse(small_warehouse) as warehouse:
            assert warehouse.table_columns("silver_trades") is not None
    finally:
        held.close()


def test_a_missing_warehouse_says_how_to_build_it(tmp_path):
    with pytest.raises(WarehouseNotFound, match="tradewatch transform"):
        DuckDBWarehouse(tmp_path / "warehouse.duckdb")


def test_a_warehouse_locked_by_another_process_is_a_clear_error(small_warehouse):
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('open', flush=True);"
         " time.sleep(60)", str(small_warehouse)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(WarehouseBusy, match="another process"), \
                DuckDBWarehouse(small_warehouse):
            pass
    finally:
        holder.kill()
        holder.wait()


def test_databricks_settings_name_every_missing_variable():
    with pytest.raises(MissingWarehouseSetting) as missing:
        DatabricksWarehouse.from_env({"DATABRICKS_HOST": "adb-1.azuredatabricks.net"})
    assert "DATABRICKS_HTTP_PATH, DATABRICKS_TOKEN" in str(missing.value)


def test_databricks_settings_keep_the_token_out_of_their_repr():
    settings = DatabricksWarehouse.from_env({
        "DATABRICKS_HOST": "https://adb-1.azuredatabricks.net/",
        "DATABRICKS_HTTP_PATH": "/sql/1.0/warehouses/abc",
        "DATABRICKS_TOKEN": TOKEN,
    })
    assert TOKEN not in repr(settings)
    assert (settings.host, settings.port) == ("adb-1.azuredatabricks.net", 443)
    assert (settings.catalog, settings.schema) == ("tradewatch", "main")
    arguments = settings.connect_arguments()
    assert arguments["access_token"] == TOKEN
    assert arguments["_retry_stop_after_attempts_count"] == 1


class _RefusingServer:
    """A TCP port on 127.0.0.1 that accepts and drops every connection, counting them."""

    def __init__(self) -> None:
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(16)
        self.socket.settimeout(0.2)
        self.port = self.socket.getsockname()[1]
        self.connections = 0
        self.closing = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.closing.is_set():
            try:
                connection, _ = self.socket.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            connection.close()

    def close(self) -> None:
        self.closing.set()
        self.thread.join()
        self.socket.close()


def test_an_unreachable_databricks_warehouse_fails_at_once_without_leaking_the_token():
    server = _RefusingServer()
    warehouse = DatabricksWarehouse(
        f"127.0.0.1:{server.port}", "/sql/1.0/warehouses/abc",
        catalog="tradewatch", schema="main", environ={"DATABRICKS_TOKEN": TOKEN},
    )
    try:
        with pytest.raises(WarehouseUnreachable) as unavailable, warehouse:
            pass
    finally:
        server.close()
    message = str(unavailable.value)
    assert f"cannot reach the Databricks SQL warehouse 127.0.0.1:{server.port}" in message
    assert "DATABRICKS_HOST" in message and TOKEN not in message
    assert unavailable.value.__cause__ is None  # the connector's exception may quote the URL
    # One attempt (urllib3 may reopen the socket once), not the connector's 30-try retry loop.
    assert 1 <= server.connections <= 2


class _RecordingConnection:
    """Stands in for a Databricks SQL connection: remembers the SQL it was asked to run."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    def cursor(self):
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return None

    def execute(self, sql):
        self.statements.append(sql)

    def fetchall_arrow(self):
        import pyarrow as pa

        return pa.table({"landing_lines": [42]})

    def close(self):
        return None


def test_databricks_queries_qualify_tables_in_the_catalog_and_reject_odd_names():
    connection = _RecordingConnection()
    warehouse = DatabricksWarehouse(
        "adb-1.azuredatabricks.net", "/sql/1.0/warehouses/abc", catalog="prod",
        schema="trading", environ={"DATABRICKS_TOKEN": TOKEN}, connect=lambda **_: connection,
    )

    assert warehouse.table("silver_trades") == "`prod`.`trading`.`silver_trades`"
    assert warehouse.read_sql("silver_trades", ["trade_id", "price"]) == (
        "select `trade_id`, `price` from `prod`.`trading`.`silver_trades`"
    )
    assert "`prod`.information_schema.columns" in warehouse.columns_sql("silver_trades")
    assert "table_schema = 'trading' and table_name = 'silver_trades'" in (
        warehouse.columns_sql("silver_trades")
    )
    with pytest.raises(ValueError, match="plain SQL identifier"):
        warehouse.table("silver_trades; drop table x")

    landing = VolumeLanding(warehouse, "/Volumes/prod/trading/data/landing/trades")
    assert landing.count_trade_lines() == 42
    assert connection.statements[-1] == (
        "select count(*) as landing_lines from read_files("
        "'/Volumes/prod/trading/data/landing/trades/', format => 'json', "
        "pathGlobFilter => '*.ndjson', recursiveFileLookup => true)"
    )
    with pytest.raises(ValueError, match="/Volumes/"):
        VolumeLanding(warehouse, "/tmp/landing/trades")


def test_databricks_host_may_carry_a_port():
    token = {"DATABRICKS_TOKEN": TOKEN}
    settings = DatabricksWarehouse("127.0.0.1:8443", "/sql/1.0/warehouses/abc", catalog="c",
                                   schema="s", environ=token)
    assert settings.connect_arguments()["_port"] == 8443
    with pytest.raises(MissingWarehouseSetting):
        DatabricksWarehouse("host:https", "/p", catalog="c", schema="s", environ=token)


def test_identifiers_from_the_environment_are_checked():
    env = {"DATABRICKS_HOST": "h", "DATABRICKS_HTTP_PATH": "/p", "DATABRICKS_TOKEN": TOKEN,
           "DATABRICKS_CATALOG": "prod`; drop"}
    with pytest.raises(ValueError, match="plain SQL identifier"):
        DatabricksWarehouse.from_env(env)
