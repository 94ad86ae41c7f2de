"""Reading the warehouse for validation: DuckDB locally, a Databricks SQL warehouse in production.

Both readers answer the same four questions — which columns (and declared types) a table has,
its rows for a set of columns, the result of an aggregate query, and how many trade lines have
landed — so the checkpoint and the suites do not know which warehouse they validate. Neither
writes: dbt is the only writer of warehouse tables.

Great Expectations' own SQL datasource is not used: on DuckDB every metric fails (GX fetches
after closing its connection), and on Databricks pulling rows through GX gains nothing over the
connector. Rows are read here into pandas; aggregates run as SQL in the warehouse.
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from core.schema import logical_type

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class WarehouseUnavailable(RuntimeError):
    """The warehouse cannot be opened or reached; nothing was validated."""


class WarehouseBusy(WarehouseUnavailable):
    """Another process holds the warehouse (a dbt run): retrying later can succeed."""


class MissingWarehouseSetting(RuntimeError):
    """A setting the Databricks reader needs is not in the environment."""


def _identifier(name: str) -> str:
    if not _IDENTIFIER.fullmatch(name):
        raise ValueError(f"{name!r} is not a plain SQL identifier (letters, digits, underscores)")
    return name


def _literal(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def frame_for_validation(frame: pd.DataFrame) -> pd.DataFrame:
    """Widen narrow numeric columns (INTEGER → int64, FLOAT → float64).

    GX's pandas range check is vectorised only for int64 and float64 columns; on any other
    numeric dtype it calls a Python function per row (seconds per million rows).
    """
    for column, dtype in frame.dtypes.items():
        if not isinstance(dtype, np.dtype) or pd.api.types.is_bool_dtype(dtype):
            continue
        if pd.api.types.is_integer_dtype(dtype) and dtype != "int64":
            frame[column] = frame[column].astype("int64")
        elif pd.api.types.is_float_dtype(dtype) and dtype != "float64":
            frame[column] = frame[column].astype("float64")
    return frame


class WarehouseReader(Protocol):
    """What the checkpoint needs from a warehouse."""

    def qualified(self, table: str) -> str:
        """The table's fully qualified, quoted name in this warehouse's SQL."""

    def table_columns(self, table: str) -> dict[str, str] | None:
        """Column name → logical type, in table order; None when the table does not exist."""

    def read_table(self, table: str, columns: Sequence[str]) -> pd.DataFrame:
        """Every row of `table`, only `columns`."""

    def query(self, sql: str) -> pd.DataFrame:
        """The result of one read-only query."""

    def close(self) -> None:
        """Release the connection."""


class LandingSource(Protocol):
    """Where the landed trade files are, and how many trade lines they hold."""

    def count_trade_lines(self, ingested: Collection[str] | None = None) -> int:
        """Number of landed trade records (one per non-blank line of every visible file).

        `ingested`: the files bronze has read (its `_source_file` values). A source that
        knows when the build started counts a file landed after that only if it is there:
        a file landing while the build runs is next, not missing.
        """


class LocalLanding:
    """Landed trade files on the local disk: `<home>/landing/trades/date=*/<name>.ndjson`.

    `settled_before` (epoch seconds, e.g. when the dbt build started): files renamed into
    place after it are still arriving. Under a collector that never stops, the checkpoint
    after a build would otherwise find more landed lines than bronze read and call it lost.
    """

    def __init__(self, trades_dir: Path | str, settled_before: float | None = None) -> None:
        self.trades_dir = Path(trades_dir)
        self.settled_before = settled_before

    def files(self) -> list[Path]:
        """Every landed file; names starting with "." are being written and are not landed yet."""
        if not self.trades_dir.exists():
            return []
        return sorted(
            path
            for path in self.trades_dir.glob("*/*.ndjson")
            if not path.name.startswith(".") and not path.parent.name.startswith(".")
        )

    def count_trade_lines(self, ingested: Collection[str] | None = None) -> int:
        total = 0
        for path in self.files():
            if (
                self.settled_before is not None
                and ingested is not None
                and str(path) not in ingested
                and path.stat().st_mtime >= self.settled_before
            ):
                continue  # landed while the build ran: the next build reads it
            with open(path, "rb") as handle:
                total += sum(1 for line in handle if line.strip())
        return total


class DuckDBWarehouse:
    """The local DuckDB warehouse, opened read-only (only dbt writes it)."""

    def __init__(self, path: Path | str, schema: str = "main") -> None:
        import duckdb

        self.path = Path(path)
        self.schema = _identifier(schema)
        if not self.path.exists():
            raise WarehouseUnavailable(
                f"no DuckDB warehouse at {self.path}; run `tradewatch transform` to build it"
            )
        try:
            self._connection = duckdb.connect(str(self.path), read_only=True)
        except duckdb.ConnectionException as exc:
            # A process that already opened the file (dbtRunner in this process) holds it with
            # the default configuration; DuckDB refuses a second, read-only configuration of the
            # same file, but shares the open one. We only ever run SELECTs on it.
            if "different configuration" not in str(exc):
                raise WarehouseUnavailable(f"cannot open {self.path}: {exc}") from exc
            self._connection = duckdb.connect(str(self.path))
        except duckdb.IOException as exc:
            raise WarehouseBusy(
                f"cannot open {self.path} read-only ({exc}); another process (a dbt run?) may "
                "hold it: retry when it finishes"
            ) from exc

    def __enter__(self) -> DuckDBWarehouse:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def qualified(self, table: str) -> str:
        return f'"{self.schema}"."{_identifier(table)}"'

    def table_columns(self, table: str) -> dict[str, str] | None:
        rows = self._connection.execute(
            "select column_name, data_type from information_schema.columns "
            "where table_schema = ? and table_name = ? order by ordinal_position",
            [self.schema, table],
        ).fetchall()
        if not rows:
            return None
        return {name: logical_type(declared) for name, declared in rows}

    def read_table(self, table: str, columns: Sequence[str]) -> pd.DataFrame:
        selected = ", ".join(f'"{_identifier(column)}"' for column in columns) or "1 as _row"
        return self.query(f"select {selected} from {self.qualified(table)}")

    def query(self, sql: str) -> pd.DataFrame:
        # Through Arrow: about 2.5x faster than DuckDB's own pandas conversion on wide tables.
        return frame_for_validation(self._connection.sql(sql).to_arrow_table().to_pandas())

    def close(self) -> None:
        self._connection.close()


class DatabricksSettings:
    """Where the Databricks SQL warehouse is; read from the same variables as the dbt profile."""

    HOST, HTTP_PATH, TOKEN = "DATABRICKS_HOST", "DATABRICKS_HTTP_PATH", "DATABRICKS_TOKEN"
    CATALOG, SCHEMA = "DATABRICKS_CATALOG", "DATABRICKS_SCHEMA"

    def __init__(self, host: str, http_path: str, token: str, catalog: str, schema: str) -> None:
        address = host.removeprefix("https://").rstrip("/")
        name, _, port = address.partition(":")
        if port and not port.isdigit():
            raise MissingWarehouseSetting(f"{self.HOST}: {host!r} is not a host name[:port]")
        self.host = name
        self.port = int(port) if port else 443
        self.http_path = http_path
        self._token = token
        self.catalog = _identifier(catalog)
        self.schema = _identifier(schema)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> DatabricksSettings:
        """Read the settings; MissingWarehouseSetting names every variable that is not set."""
        env = os.environ if environ is None else environ
        missing = [name for name in (cls.HOST, cls.HTTP_PATH, cls.TOKEN) if not env.get(name)]
        if missing:
            raise MissingWarehouseSetting(
                f"set {', '.join(missing)} to validate the Databricks warehouse "
                "(or validate the local DuckDB warehouse with the local target)"
            )
        return cls(
            host=env[cls.HOST],
            http_path=env[cls.HTTP_PATH],
            token=env[cls.TOKEN],
            catalog=env.get(cls.CATALOG) or "tradewatch",
            schema=env.get(cls.SCHEMA) or "main",
        )

    def connect_arguments(self) -> dict[str, Any]:
        """Arguments for `databricks.sql.connect`: one attempt, bounded waits, no telemetry."""
        return {
            "server_hostname": self.host,
            "_port": self.port,
            "http_path": self.http_path,
            "access_token": self._token,
            "catalog": self.catalog,
            "schema": self.schema,
            "_retry_stop_after_attempts_count": 1,
            "_socket_timeout": 30,
            "enable_telemetry": False,
        }

    def redact(self, text: str) -> str:
        """`text` with the access token removed, for messages and logs."""
        return text.replace(self._token, "***") if self._token else text

    def __repr__(self) -> str:
        return (
            f"DatabricksSettings(host={self.host!r}, port={self.port}, "
            f"http_path={self.http_path!r}, "
            f"catalog={self.catalog!r}, schema={self.schema!r}, token=***)"
        )


class DatabricksWarehouse:
    """A Unity Catalog schema read through a Databricks SQL warehouse (databricks-sql-connector)."""

    def __init__(self, settings: DatabricksSettings, connect: Any = None) -> None:
        self.settings = settings
        if connect is None:
            from databricks import sql as databricks_sql

            connect = databricks_sql.connect
        try:
            self._connection = connect(**settings.connect_arguments())
        except Exception as exc:  # the connector raises many types; all mean "not reachable"
            raise WarehouseUnavailable(
                "cannot reach the Databricks SQL warehouse "
                f"{settings.host}:{settings.port}{settings.http_path}: "
                f"{type(exc).__name__}: {settings.redact(str(exc))[:300]}; check "
                f"{DatabricksSettings.HOST}, {DatabricksSettings.HTTP_PATH} and "
                f"{DatabricksSettings.TOKEN}"
            ) from None

    def __enter__(self) -> DatabricksWarehouse:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def qualified(self, table: str) -> str:
        return f"`{self.settings.catalog}`.`{self.settings.schema}`.`{_identifier(table)}`"

    def columns_sql(self, table: str) -> str:
        """The catalog query listing a table's columns."""
        return (
            "select column_name, data_type "
            f"from `{self.settings.catalog}`.information_schema.columns "
            f"where table_schema = {_literal(self.settings.schema)} "
            f"and table_name = {_literal(_identifier(table))} order by ordinal_position"
        )

    def read_sql(self, table: str, columns: Sequence[str]) -> str:
        """The query reading `columns` of every row of `table`."""
        selected = ", ".join(f"`{_identifier(column)}`" for column in columns) or "1 as _row"
        return f"select {selected} from {self.qualified(table)}"

    def table_columns(self, table: str) -> dict[str, str] | None:
        frame = self.query(self.columns_sql(table))
        if frame.empty:
            return None
        return {row.column_name: logical_type(row.data_type) for row in frame.itertuples()}

    def read_table(self, table: str, columns: Sequence[str]) -> pd.DataFrame:
        return self.query(self.read_sql(table, columns))

    def query(self, sql: str) -> pd.DataFrame:
        with self._connection.cursor() as cursor:
            cursor.execute(sql)
            return frame_for_validation(cursor.fetchall_arrow().to_pandas())

    def close(self) -> None:
        self._connection.close()


class VolumeLanding:
    """Landed trade files in a Unity Catalog volume, counted by the SQL warehouse."""

    def __init__(self, warehouse: DatabricksWarehouse, trades_path: str) -> None:
        if not trades_path.startswith("/Volumes/"):
            raise ValueError(f"{trades_path!r}: landed files on Databricks live under /Volumes/")
        self.warehouse = warehouse
        self.trades_path = trades_path.rstrip("/") + "/"

    def count_sql(self) -> str:
        """Counts JSON lines in every partition; Spark skips names starting "." or "_"."""
        return (
            "select count(*) as landing_lines from read_files("
            f"{_literal(self.trades_path)}, format => 'json', "
            "pathGlobFilter => '*.ndjson', recursiveFileLookup => true)"
        )

    def count_trade_lines(self, ingested: Collection[str] | None = None) -> int:
        return int(self.warehouse.query(self.count_sql()).iloc[0, 0])
