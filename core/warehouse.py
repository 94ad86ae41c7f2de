"""Reading the warehouse dbt builds: one read-only interface, three engines, one set of errors.

    with DuckDBWarehouse("data/warehouse.duckdb") as warehouse:      # or Databricks, or Spark
        frame = warehouse.query(f"select * from {warehouse.table('gold_trade_features')}")

`Warehouse` answers four questions the same way on every engine: a table's qualified name
(`table`), the rows of a query (`query`, as pandas through Arrow), a table's columns and their
logical types (`table_columns`, None when it does not exist) and the rows of some columns of a
table (`read_table`). Nothing here writes: dbt is the only writer of warehouse tables.

Tables live where dbt builds them: a layer (the name's prefix before its first "_") that
core.layers.LAYER_SCHEMAS maps to a schema of its own (gold, monitoring) is read there, every
other table in the default schema. `layer_schemas={}` reads everything from one schema.

Used as a context manager, a warehouse keeps one connection open for every query inside the
block; outside one, each query opens and closes its own connection, so that a DuckDB file is
not held between queries (a read-only reader blocks dbt from writing it).

Every failure is a `WarehouseError`: `WarehouseNotFound` (no DuckDB file), `WarehouseBusy`
(another process holds it: retrying can succeed), `WarehouseUnreachable` (cannot connect;
`MissingWarehouseSetting` when a setting is not in the environment), `MissingTableOrColumn`
(build the warehouse first) and `QueryFailed` (anything else the engine refused).
"""

from __future__ import annotations

import os
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from core.layers import LAYER_SCHEMAS
from core.schema import logical_type

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_BUILD = "run `tradewatch transform` to build the tables"


# --------------------------------------------------------------------------- errors


class WarehouseError(RuntimeError):
    """The warehouse could not answer; nothing was read."""


class WarehouseNotFound(WarehouseError):
    """The DuckDB warehouse file does not exist."""


class WarehouseBusy(WarehouseError):
    """Another process holds the warehouse (a dbt build): retrying later can succeed."""


class WarehouseUnreachable(WarehouseError):
    """The warehouse cannot be opened or reached."""


class MissingWarehouseSetting(WarehouseUnreachable):
    """A setting the warehouse needs is not in the environment (or is malformed)."""


class MissingTableOrColumn(WarehouseError):
    """A table or column the query names does not exist: the warehouse is not built yet."""


class QueryFailed(WarehouseError):
    """The engine refused or failed the query."""


class InvalidIdentifier(WarehouseError, ValueError):
    """A name that is not a plain SQL identifier (letters, digits, underscores)."""


def identifier(name: str) -> str:
    """`name` if it is a plain SQL identifier, else InvalidIdentifier."""
    if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name):
        raise InvalidIdentifier(
            f"{name!r} is not a plain SQL identifier (letters, digits, underscores)"
        )
    return name


def sql_literal(text: str) -> str:
    """`text` as a quoted string literal of Spark and Databricks SQL, where a backslash
    escapes the next character (so it is doubled)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def duckdb_literal(text: str) -> str:
    """`text` as a quoted DuckDB string literal (standard SQL: a backslash is itself)."""
    return "'" + text.replace("'", "''") + "'"


def duckdb_quote(name: str) -> str:
    """One identifier, checked and double-quoted for DuckDB."""
    return f'"{identifier(name)}"'


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


# --------------------------------------------------------------------------- the interface


class Warehouse(ABC):
    """Read-only SQL over the warehouse tables, whichever engine holds them."""

    def __init__(self, schema: str, layer_schemas: Mapping[str, str] | None = None) -> None:
        self.schema = identifier(schema)
        layers = LAYER_SCHEMAS if layer_schemas is None else layer_schemas
        self.layer_schemas = MappingProxyType(
            {identifier(layer): identifier(name) for layer, name in layers.items()}
        )
        self._connection: Any = None
        self._depth = 0

    # -- names

    @abstractmethod
    def quote(self, name: str) -> str:
        """One identifier, checked and quoted in this engine's SQL."""

    def literal(self, text: str) -> str:
        """`text` as a string literal of this engine's SQL."""
        return sql_literal(text)

    def schema_of(self, table: str) -> str:
        """The schema holding `table`: its layer's schema, else the default one."""
        return self.layer_schemas.get(identifier(table).split("_", 1)[0], self.schema)

    def table(self, name: str) -> str:
        """The fully qualified, quoted name of a warehouse table (for SQL text)."""
        return f"{self.quote(self.schema_of(name))}.{self.quote(name)}"

    def read_sql(self, table: str, columns: Sequence[str]) -> str:
        """The query reading `columns` of every row of `table`."""
        selected = ", ".join(self.quote(column) for column in columns) or "1 as _row"
        return f"select {selected} from {self.table(table)}"

    # -- reading

    def query(self, sql: str) -> pd.DataFrame:
        """The rows of one read-only query."""
        return self._arrow(sql).to_pandas()

    def read_table(self, table: str, columns: Sequence[str]) -> pd.DataFrame:
        """Every row of `table`, only `columns` (one placeholder column when none)."""
        return self.query(self.read_sql(table, columns))

    @abstractmethod
    def table_columns(self, table: str) -> dict[str, str] | None:
        """Column name → logical type (core.schema), in table order; None when there is no
        such table."""

    def has_table(self, table: str) -> bool:
        """Whether `table` exists."""
        return self.table_columns(table) is not None

    # -- connections

    def __enter__(self) -> Warehouse:
        """Hold one connection until the block ends (blocks nest: the outermost closes it)."""
        if self._connection is None:
            self._connection = self._connect()
        self._depth += 1
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._depth -= 1
        if self._depth <= 0:
            self.close()

    def close(self) -> None:
        """Close the connection a `with` block opened (nothing to do otherwise)."""
        connection, self._connection, self._depth = self._connection, None, 0
        if connection is not None:
            self._disconnect(connection)

    def _arrow(self, sql: str) -> pa.Table:
        if self._connection is not None:
            return self._run(self._connection, sql)
        connection = self._connect()
        try:
            return self._run(connection, sql)
        finally:
            self._disconnect(connection)

    @abstractmethod
    def _connect(self) -> Any:
        """Open a connection; WarehouseError subclasses for every failure."""

    @abstractmethod
    def _disconnect(self, connection: Any) -> None:
        """Release a connection `_connect` opened."""

    @abstractmethod
    def _run(self, connection: Any, sql: str) -> pa.Table:
        """Run one query; WarehouseError subclasses for every failure."""


def as_warehouse(source: Warehouse | Path | str) -> Warehouse:
    """`source` as given, or the DuckDB warehouse at a file path."""
    if isinstance(source, str | os.PathLike):
        return DuckDBWarehouse(Path(source))
    return source


def set_search_path(connection: Any, schemas: Sequence[str]) -> None:
    """Let a DuckDB connection name every table by its bare name too (`from
    gold_trade_features`), as the analysts' database does: the schemas in this order, those
    that exist (DuckDB refuses a search path naming a missing schema)."""
    present = {name for (name,) in connection.execute(
        "select schema_name from duckdb_schemas() where database_name = current_database()"
    ).fetchall()}
    path = [name for name in dict.fromkeys(schemas) if name in present]
    if path:
        connection.execute(f"set search_path = {duckdb_literal(','.join(path))}")


# --------------------------------------------------------------------------- DuckDB


class DuckDBWarehouse(Warehouse):
    """The local DuckDB file dbt-duckdb writes, opened read-only."""

    def __init__(
        self,
        path: Path | str,
        schema: str = "main",
        *,
        layer_schemas: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(schema, layer_schemas)
        self.path = Path(path)
        self._check_exists()

    def __repr__(self) -> str:
        return f"DuckDBWarehouse({str(self.path)!r}, schema={self.schema!r})"

    def _check_exists(self) -> None:
        if not self.path.exists():
            raise WarehouseNotFound(
                f"warehouse {self.path} does not exist: run `tradewatch transform` first"
            )

    def literal(self, text: str) -> str:
        return duckdb_literal(text)

    def quote(self, name: str) -> str:
        return duckdb_quote(name)

    def table_columns(self, table: str) -> dict[str, str] | None:
        frame = self.query(
            "select column_name, data_type from information_schema.columns "
            f"where table_schema = {duckdb_literal(self.schema_of(table))} "
            f"and table_name = {duckdb_literal(identifier(table))} order by ordinal_position"
        )
        if frame.empty:
            return None
        return {
            str(row.column_name): logical_type(str(row.data_type)) for row in frame.itertuples()
        }

    def _connect(self) -> Any:
        import duckdb

        self._check_exists()
        try:
            connection = duckdb.connect(str(self.path), read_only=True)
        except duckdb.ConnectionException as exc:
            if "different configuration" not in str(exc):
                raise WarehouseUnreachable(f"cannot open warehouse {self.path}: {exc}") from exc
            # dbt ran in this process and its database instance is still cached: DuckDB refuses
            # a second, read-only configuration of the same file, but a connection with the
            # default configuration shares the open instance. Only SELECTs are run on it.
            connection = duckdb.connect(str(self.path))
        except duckdb.IOException as exc:
            if "lock" in str(exc).lower():
                raise WarehouseBusy(
                    f"warehouse {self.path} is locked by another process (a dbt build?): "
                    "retry when it has finished"
                ) from exc
            raise WarehouseUnreachable(f"cannot open warehouse {self.path}: {exc}") from exc
        set_search_path(connection, [self.schema, *self.layer_schemas.values()])
        return connection

    def _disconnect(self, connection: Any) -> None:
        connection.close()

    def _run(self, connection: Any, sql: str) -> pa.Table:
        import duckdb
        import pyarrow as pa

        try:
            # Through Arrow: about 2.5x faster than DuckDB's own pandas conversion on wide tables.
            relation = connection.sql(sql)
            return relation.to_arrow_table() if relation is not None else pa.table({})
        except duckdb.Error as exc:
            missing = isinstance(exc, duckdb.CatalogException) or (
                isinstance(exc, duckdb.BinderException) and "Referenced column" in str(exc)
            )
            if missing:
                raise MissingTableOrColumn(
                    f"warehouse {self.path}: {_first_line(exc)}; {_BUILD}"
                ) from exc
            raise QueryFailed(f"query on warehouse {self.path} failed: {_first_line(exc)}") from exc


# --------------------------------------------------------------------------- Databricks


class DatabricksWarehouse(Warehouse):
    """Unity Catalog tables read through a Databricks SQL warehouse (databricks-sql-connector).

    The access token is read from the environment variable `token_env` each time a connection
    opens: it is never stored on the object, so no repr, log line or error can show it. One
    connection attempt, bounded waits and no telemetry: an unreachable workspace fails at once.
    """

    HOST, HTTP_PATH, TOKEN = "DATABRICKS_HOST", "DATABRICKS_HTTP_PATH", "DATABRICKS_TOKEN"
    CATALOG, SCHEMA = "DATABRICKS_CATALOG", "DATABRICKS_SCHEMA"

    def __init__(
        self,
        host: str,
        http_path: str,
        *,
        catalog: str = "tradewatch",
        schema: str = "main",
        layer_schemas: Mapping[str, str] | None = None,
        token_env: str = TOKEN,
        environ: Mapping[str, str] | None = None,
        connect: Callable[..., Any] | None = None,
    ) -> None:
        super().__init__(schema, layer_schemas)
        address = host.removeprefix("https://").rstrip("/")
        name, _, port = address.partition(":")
        if not name or (port and not port.isdigit()):
            raise MissingWarehouseSetting(f"{self.HOST}: {host!r} is not a host name[:port]")
        self.host = name
        self.port = int(port) if port else 443
        self.http_path = http_path
        self.catalog = identifier(catalog)
        self.token_env = token_env
        self._environ = environ
        self._connect_to = connect

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        layer_schemas: Mapping[str, str] | None = None,
        connect: Callable[..., Any] | None = None,
    ) -> DatabricksWarehouse:
        """The warehouse the dbt profile's variables name; MissingWarehouseSetting names every
        variable that is not set (the token is checked now and read again at connection)."""
        env = os.environ if environ is None else environ
        missing = [name for name in (cls.HOST, cls.HTTP_PATH, cls.TOKEN) if not env.get(name)]
        if missing:
            raise MissingWarehouseSetting(
                f"set {', '.join(missing)} to read the Databricks warehouse "
                "(or use the local DuckDB warehouse with the local target)"
            )
        return cls(
            env[cls.HOST],
            env[cls.HTTP_PATH],
            catalog=env.get(cls.CATALOG) or "tradewatch",
            schema=env.get(cls.SCHEMA) or "main",
            layer_schemas=layer_schemas,
            environ=environ,
            connect=connect,
        )

    def __repr__(self) -> str:
        return (
            f"DatabricksWarehouse(host={self.host!r}, port={self.port}, "
            f"http_path={self.http_path!r}, catalog={self.catalog!r}, schema={self.schema!r}, "
            f"token from ${self.token_env})"
        )

    def quote(self, name: str) -> str:
        return f"`{identifier(name)}`"

    def table(self, name: str) -> str:
        return f"{self.quote(self.catalog)}.{super().table(name)}"

    def columns_sql(self, table: str) -> str:
        """The catalog query listing a table's columns."""
        return (
            "select column_name, data_type "
            f"from {self.quote(self.catalog)}.information_schema.columns "
            f"where table_schema = {sql_literal(self.schema_of(table))} "
            f"and table_name = {sql_literal(identifier(table))} order by ordinal_position"
        )

    def table_columns(self, table: str) -> dict[str, str] | None:
        frame = self.query(self.columns_sql(table))
        if frame.empty:
            return None
        return {
            str(row.column_name): logical_type(str(row.data_type)) for row in frame.itertuples()
        }

    def connect_arguments(self) -> dict[str, Any]:
        """Arguments for `databricks.sql.connect`, the token read from the environment now."""
        env = os.environ if self._environ is None else self._environ
        token = env.get(self.token_env, "")
        if not token:
            raise MissingWarehouseSetting(
                f"set {self.token_env} to a Databricks access token to read the warehouse"
            )
        return {
            "server_hostname": self.host,
            "_port": self.port,
            "http_path": self.http_path,
            "access_token": token,
            "catalog": self.catalog,
            "schema": self.schema,
            "_retry_stop_after_attempts_count": 1,
            "_socket_timeout": 30,
            "enable_telemetry": False,
        }

    def _redact(self, text: str) -> str:
        env = os.environ if self._environ is None else self._environ
        token = env.get(self.token_env, "")
        return text.replace(token, "***") if token else text

    def _connect(self) -> Any:
        arguments = self.connect_arguments()
        connect = self._connect_to
        if connect is None:
            from databricks import sql as databricks_sql

            connect = databricks_sql.connect
        try:
            return connect(**arguments)
        except Exception as exc:  # the connector raises many types; all mean "not reachable"
            raise WarehouseUnreachable(
                "cannot reach the Databricks SQL warehouse "
                f"{self.host}:{self.port}{self.http_path}: "
                f"{type(exc).__name__}: {self._redact(str(exc))[:300]}; check "
                f"{self.HOST}, {self.HTTP_PATH} and {self.token_env}"
            ) from None  # the connector's exception may quote the URL and its token

    def _disconnect(self, connection: Any) -> None:
        connection.close()

    def _run(self, connection: Any, sql: str) -> pa.Table:
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql)
                table: pa.Table = cursor.fetchall_arrow()
                return table
        except Exception as exc:
            message = self._redact(_first_line(exc))[:300]
            if any(code in message for code in (
                "TABLE_OR_VIEW_NOT_FOUND", "UNRESOLVED_COLUMN", "SCHEMA_NOT_FOUND",
            )):
                raise MissingTableOrColumn(f"Databricks: {message}; {_BUILD}") from None
            if type(exc).__name__ in ("RequestError", "OperationalError", "MaxRetryDurationError"):
                raise WarehouseUnreachable(f"Databricks SQL warehouse {self.host}: {message}") \
                    from None
            raise QueryFailed(f"query on Databricks failed: {message}") from None


# --------------------------------------------------------------------------- Spark


class SparkWarehouse(Warehouse):
    """Tables in a Spark session's catalog (the `spark` target: a local session).

    `session` is a `pyspark.sql.SparkSession`; without one, `session_factory()` makes it, or
    else the active session (or a new local one) is used, when the first query runs. pyspark
    is imported only then (the `spark` extra).
    """

    def __init__(
        self,
        session: Any = None,
        schema: str = "tradewatch",
        *,
        layer_schemas: Mapping[str, str] | None = None,
        session_factory: Callable[[], Any] | None = None,
    ) -> None:
        super().__init__(schema, layer_schemas)
        self._session = session
        self._session_factory = session_factory

    def __repr__(self) -> str:
        return f"SparkWarehouse(schema={self.schema!r})"

    def quote(self, name: str) -> str:
        return f"`{identifier(name)}`"

    def session(self) -> Any:
        """The Spark session queries run in."""
        if self._session is None and self._session_factory is not None:
            self._session = self._session_factory()
        if self._session is None:
            try:
                from pyspark.sql import SparkSession
            except ImportError as exc:
                raise WarehouseUnreachable(
                    "pyspark is not installed: install the `spark` extra (make setup-dev)"
                ) from exc
            self._session = SparkSession.getActiveSession() or SparkSession.builder.getOrCreate()
        return self._session

    def table_columns(self, table: str) -> dict[str, str] | None:
        session = self.session()
        schema = self.schema_of(table)
        try:
            if not session.catalog.tableExists(self.table(table)):  # `schema`.`table`
                return None
            return {
                name: logical_type(declared)
                for name, declared in session.table(self.table(table)).dtypes
            }
        except Exception as exc:
            raise QueryFailed(f"Spark cannot describe {schema}.{table}: {_first_line(exc)}") \
                from exc

    def _connect(self) -> Any:
        return self.session()

    def _disconnect(self, connection: Any) -> None:
        """The session outlives a query (it is the caller's, or shared): nothing to close."""

    def _run(self, connection: Any, sql: str) -> pa.Table:
        from pyspark.errors import AnalysisException

        try:
            table: pa.Table = connection.sql(sql).toArrow()
            return table
        except AnalysisException as exc:
            condition = exc.getCondition() or ""
            if condition.startswith(("TABLE_OR_VIEW_NOT_FOUND", "UNRESOLVED_COLUMN",
                                     "SCHEMA_NOT_FOUND")):
                raise MissingTableOrColumn(f"Spark: {_first_line(exc)}; {_BUILD}") from exc
            raise QueryFailed(f"query on Spark failed: {_first_line(exc)}") from exc
        except Exception as exc:
            raise QueryFailed(f"query on Spark failed: {_first_line(exc)}") from exc
