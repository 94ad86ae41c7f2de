"""The analysts' database: a read-only copy of the public models that no session can block.

DuckDB lets one process write the warehouse, and a reader (even read-only) blocks that writer;
a writer in turn refuses every reader. Analysts keep sessions open for hours, and the pipeline
builds every few minutes, so they must not share the file. After each successful build (and
scoring cycle) `publish_analysts_database` copies every public dbt model (the `gold` and
`monitoring` schemas, read from dbt's manifest) into a new DuckDB file under a hidden
temporary name and renames it over `<data home>/analysts/warehouse.duckdb`:

- a session holds the file it opened: on Linux a file renamed over stays readable by whoever
  has it open, so an open session keeps reading the copy it opened, consistent, until it
  closes (then the old copy's disk is freed);
- a new session opens the newest copy;
- the pipeline never waits for an analyst, and an analyst never waits for the pipeline.

Only the public models are copied (the gold marts and monitoring, not bronze, silver or the
intermediate models), with each table's and column's dbt description as a DuckDB comment.
The file is named like the warehouse, so SQL that dbt compiles against the warehouse
(`"warehouse"."gold"."gold_flagged_trades"`, the analyses) runs on it unchanged, and it is
written in the storage format of the DuckDB CLI that `tradewatch sql` runs (duckdb-cli from
PyPI), which cannot read the newer format the duckdb Python package writes by default.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from rich.console import Console

from core.layers import search_path
from core.warehouse import duckdb_literal, duckdb_quote
from flows.config import Settings

ANALYSTS_FOLDER = "analysts"
DATABASE_NAME = "warehouse.duckdb"
#: The statement every analysts' session starts with: public tables by their bare names.
SEARCH_PATH_SQL = f"set search_path = '{search_path()}'"
#: `tradewatch sql --format` → the DuckDB CLI's output mode.
OUTPUT_FORMATS = {"table": "-box", "csv": "-csv", "json": "-json", "markdown": "-markdown",
                  "line": "-line"}


class PublishFailed(RuntimeError):
    """The analysts' database was not published; the previous copy is still in place."""


class AnalystsDatabaseMissing(RuntimeError):
    """No analysts' database yet: nothing has been built and published."""


class PublishBusy(PublishFailed):
    """Another process is writing the warehouse: publishing again later succeeds."""


class SqlFailed(RuntimeError):
    """The query failed (the message is the engine's first line)."""


@dataclass(frozen=True)
class PublicModel:
    """A public dbt model as the manifest describes it."""

    schema: str
    name: str
    description: str
    columns: dict[str, str]


@dataclass(frozen=True)
class PublishResult:
    """What one publication copied, and what it cost."""

    path: Path
    rows: dict[str, int]
    seconds: float
    cpu_seconds: float
    bytes: int
    published_at: datetime
    skipped: tuple[str, ...] = ()

    def summary(self) -> str:
        """One line for the console."""
        skipped = f"; not built yet: {', '.join(self.skipped)}" if self.skipped else ""
        return (
            f"analysts' database: {len(self.rows)} tables, {sum(self.rows.values()):,} rows, "
            f"{self.bytes / 1e6:,.1f} MB, published in {self.seconds:.1f} s → {self.path}"
            f"{skipped}"
        )


def analysts_database(settings: Settings) -> Path:
    """Where the analysts' database is: `<data home>/analysts/warehouse.duckdb`."""
    return settings.paths.home.resolve() / ANALYSTS_FOLDER / DATABASE_NAME


def storage_version() -> str | None:
    """The DuckDB storage version the installed DuckDB CLI reads (None: the default).

    The duckdb Python package writes its newest format unless told otherwise; duckdb-cli is
    released separately and may be older. Writing the older CLI's version keeps every tool
    able to open the file (the Python package reads older formats).
    """
    import duckdb

    try:
        cli = metadata.version("duckdb-cli")
    except metadata.PackageNotFoundError:
        return None
    cli_version = tuple(int(part) for part in cli.split(".")[:2])
    python_version = tuple(int(part) for part in duckdb.__version__.split(".")[:2])
    if cli_version >= python_version:
        return None
    return f"v{cli_version[0]}.{cli_version[1]}.0"


def public_models(manifest_path: Path) -> list[PublicModel]:
    """The public models (access: public) of dbt's manifest, in a stable order."""
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as exc:
        raise PublishFailed(
            f"cannot read dbt's manifest {manifest_path} ({exc}): run `tradewatch transform`"
        ) from None
    models = []
    for node in manifest.get("nodes", {}).values():
        if node.get("resource_type") != "model" or node.get("access") != "public":
            continue
        if node.get("config", {}).get("materialized") in ("ephemeral", "view"):
            continue
        models.append(PublicModel(
            schema=node["schema"],
            name=node.get("alias") or node["name"],
            description=" ".join((node.get("description") or "").split()),
            columns={name: " ".join((column.get("description") or "").split())
                     for name, column in node.get("columns", {}).items()},
        ))
    return sorted(models, key=lambda model: (model.schema, model.name))


@contextlib.contextmanager
def _publisher_lock(folder: Path) -> Iterator[None]:
    """One publisher at a time (processes outside Prefect do not share its slot)."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".publish.lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _remove_temporaries(folder: Path) -> None:
    """Temporaries of publishers that died (the lock is held: no live publisher has one)."""
    for stale in folder.glob(".warehouse-*.duckdb*"):
        with contextlib.suppress(OSError):
            stale.unlink()


def _existing_tables(connection, catalog: str) -> set[tuple[str, str]]:
    rows = connection.execute(
        "select schema_name, table_name from duckdb_tables() where database_name = ?",
        [catalog],
    ).fetchall()
    return {(schema, name) for schema, name in rows}


def _copy(warehouse: Path, temporary: Path, models: Sequence[PublicModel],
          published_at: datetime) -> tuple[dict[str, int], tuple[str, ...]]:
    import duckdb

    connection = duckdb.connect()
    try:
        version = storage_version()
        options = f" (storage_version {duckdb_literal(version)})" if version else ""
        connection.execute(f"attach {duckdb_literal(str(temporary))} as analysts{options}")
        try:
            connection.execute(f"attach {duckdb_literal(str(warehouse))} as source (read_only)")
        except duckdb.IOException as exc:
            raise PublishBusy(
                f"cannot read the warehouse {warehouse}: {str(exc).splitlines()[0]} "
                "(another process is writing it: retry when it has finished)"
            ) from None
        built = _existing_tables(connection, "source")
        rows: dict[str, int] = {}
        skipped = []
        for schema in sorted({model.schema for model in models}):
            connection.execute(f"create schema if not exists analysts.{duckdb_quote(schema)}")
        for model in models:
            if (model.schema, model.name) not in built:
                skipped.append(model.name)
                continue
            target = f"analysts.{duckdb_quote(model.schema)}.{duckdb_quote(model.name)}"
            connection.execute(
                f"create table {target} as "
                f"select * from source.{duckdb_quote(model.schema)}.{duckdb_quote(model.name)}"
            )
            if model.description:
                connection.execute(
                    f"comment on table {target} is {duckdb_literal(model.description)}")
            present = {name for (name,) in connection.execute(
                "select column_name from duckdb_columns() where database_name = 'analysts' "
                "and schema_name = ? and table_name = ?", [model.schema, model.name]).fetchall()}
            for column, description in model.columns.items():
                if description and column in present:
                    connection.execute(f"comment on column {target}.{duckdb_quote(column)} "
                                       f"is {duckdb_literal(description)}")
            # (an aggregate without group by returns exactly one row: fetchone() is never None)
            rows[f"{model.schema}.{model.name}"] = connection.execute(
                f"select count(*) from {target}").fetchone()[0]  # type: ignore[index]
        newest_trade = None
        if ("gold", "gold_trade_features") in built:
            newest_trade = connection.execute(
                "select max(trade_ts) from source.gold.gold_trade_features"
            ).fetchone()[0]  # type: ignore[index]  # one row, as above
        connection.execute(
            "create table analysts.main.publication as select "
            "cast(? as timestamp) as published_at, cast(? as timestamp) as newest_trade_ts, "
            "cast(? as bigint) as tables, cast(? as bigint) as total_rows",
            [published_at.replace(tzinfo=None), newest_trade, len(rows), sum(rows.values())],
        )
        connection.execute(
            "comment on table analysts.main.publication is "
            "'When this copy was published (UTC) and the newest trade it holds.'"
        )
        connection.execute("detach source")
        connection.execute("checkpoint analysts")
        connection.execute("detach analysts")
        return rows, tuple(skipped)
    finally:
        connection.close()


def publish_analysts_database(settings: Settings, console: Console | None = None) -> PublishResult:
    """Copy the public models into a new analysts' database and swap it in atomically.

    Raises PublishFailed (one line) when the warehouse or dbt's manifest cannot be read; the
    previous analysts' database is then left as it was.
    """
    from flows.transform import dbt_paths

    warehouse = settings.paths.warehouse.resolve()
    if not warehouse.exists():
        raise PublishFailed(f"no warehouse at {warehouse}: run `tradewatch transform`")
    target = analysts_database(settings)
    models = public_models(dbt_paths(settings)[0] / "manifest.json")
    started, cpu_started = time.monotonic(), time.process_time()
    published_at = datetime.now(UTC)
    with _publisher_lock(target.parent):
        _remove_temporaries(target.parent)
        temporary = target.parent / f".warehouse-{os.getpid()}-{time.time_ns()}.duckdb"
        try:
            rows, skipped = _copy(warehouse, temporary, models, published_at)
            temporary.chmod(0o444)  # read-only on disk too: a session cannot change the copy
            os.replace(temporary, target)
            directory = os.open(target.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
        except PublishFailed:
            raise
        except Exception as exc:
            raise PublishFailed(
                f"the analysts' database was not published ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''}); the previous copy stays"
            ) from exc
        finally:
            for leftover in target.parent.glob(f"{temporary.name}*"):
                with contextlib.suppress(OSError):
                    leftover.unlink()
    result = PublishResult(
        path=target,
        rows=rows,
        seconds=time.monotonic() - started,
        cpu_seconds=time.process_time() - cpu_started,
        bytes=target.stat().st_size,
        published_at=published_at,
        skipped=skipped,
    )
    (console or Console()).print(result.summary())
    return result


# --------------------------------------------------------------------------- the SQL shell


def duckdb_cli() -> Path:
    """The DuckDB CLI binary that the duckdb-cli package installs."""
    try:
        import duckdb_cli
    except ImportError:
        raise FileNotFoundError(
            "the DuckDB CLI is not installed: run `make setup` (it installs duckdb-cli)"
        ) from None
    binary = Path(duckdb_cli.__file__).parent / "duckdb"
    if not binary.is_file():
        raise FileNotFoundError(
            f"the DuckDB CLI is missing from {binary.parent}: reinstall duckdb-cli"
        )
    return binary


def shell_command(database: Path, query: str | None = None, output: str = "table") -> list[str]:
    """The DuckDB CLI command line: read-only, public tables by their bare names."""
    command = [str(duckdb_cli()), "-readonly", "-bail", "-cmd", SEARCH_PATH_SQL]
    if query is not None:
        command += [OUTPUT_FORMATS[output], "-c", query]
    return [*command, str(database)]


def run_sql(settings: Settings, query: str | None = None, output: str = "table") -> int:
    """`tradewatch sql`: the DuckDB CLI on the analysts' database, or one query (`-c`).

    The interactive shell replaces this process (Ctrl-C then cancels a query, as in the CLI).
    With a query, prints its result and returns the CLI's exit code; an SQL error is one line
    on stderr.
    """
    database = analysts_database(settings)
    if not database.exists():
        raise AnalystsDatabaseMissing(
            f"no analysts' database at {database}: run `tradewatch transform` (or `tradewatch "
            "demo`), which publishes it after the build"
        )
    command = shell_command(database, query, output)
    if query is None:
        print(f"Tradewatch analysts' database {database} (read-only; gold and monitoring "
              "tables by name; `select * from publication` says how fresh it is; .quit to leave)",
              flush=True)
        os.execv(command[0], command)
    completed = subprocess.run(command, stdout=sys.stdout, stderr=subprocess.PIPE, text=True,
                               check=False)
    if completed.returncode != 0:
        lines = [line.strip() for line in completed.stderr.splitlines() if line.strip()]
        raise SqlFailed(lines[0] if lines else f"the DuckDB CLI exited {completed.returncode}")
    return 0



def publish_or_alert(
    settings: Settings,
    log: Callable[[str], object],
    publish: Callable[[Settings], PublishResult] | None = None,
) -> PublishResult | None:
    """Publish (by default `publish_analysts_database`); a final failure is logged in one line
    and alerts `analysts_publish_failed`, and the run goes on: the build stands, and analysts
    keep the previous copy."""
    from flows.alerts import alert_sender, send_publish_failure_alert

    try:
        return (publish or publish_analysts_database)(settings)
    except PublishFailed as exc:
        log(str(exc))
        send_publish_failure_alert(alert_sender(settings), exc)
        return None
