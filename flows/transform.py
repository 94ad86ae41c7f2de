"""`tradewatch transform`: build the dbt warehouse for a target and say what happened.

dbt is the only writer of warehouse tables; this module runs it in-process with dbtRunner,
reads every node's status (a failed model gives `success=False` with no exception), prints a
summary per layer and raises `TransformFailed` with one line when anything failed. The
environment dbt needs (the data home as an absolute path, the profiles and project dirs,
telemetry off) is set here for the duration of the call and restored afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from core.layers import search_path_schemas
from flows.config import Settings
from flows.warehouse import is_lock_message, warehouse_slot

REPO_ROOT = Path(__file__).resolve().parent.parent
DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"
PROFILES_DIR = REPO_ROOT
TARGETS = ("local", "databricks", "spark")
LAYERS = ("bronze", "silver", "gold", "monitoring")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")

_QUIET_ENV = {
    "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    "DO_NOT_TRACK": "true",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
}
_DATABRICKS_ENV = ("DATABRICKS_HOST", "DATABRICKS_HTTP_PATH", "DATABRICKS_TOKEN")
_OK_STATUSES = {"success", "pass"}
_FAILED_STATUSES = {"error", "fail", "runtime error"}


class TransformFailed(RuntimeError):
    """dbt did not build the warehouse: the message names what failed and where the log is."""


class WarehouseLocked(TransformFailed):
    """dbt could not open the warehouse: another process holds its lock. Transient: retry."""


@dataclass(frozen=True)
class NodeOutcome:
    """What happened to one dbt node (model, test, unit test, seed) in a run."""

    name: str
    resource_type: str
    layer: str
    status: str
    message: str = ""
    failures: int | None = None

    @property
    def ok(self) -> bool:
        return self.status in _OK_STATUSES

    @property
    def failed(self) -> bool:
        return self.status in _FAILED_STATUSES


@dataclass(frozen=True)
class TransformResult:
    """The outcome of one `dbt build`: every node's status and, on DuckDB, rows per table."""

    target: str
    success: bool
    nodes: tuple[NodeOutcome, ...]
    elapsed_seconds: float
    row_counts: Mapping[str, int] = field(default_factory=dict)
    log_path: Path | None = None

    @property
    def failed_nodes(self) -> tuple[NodeOutcome, ...]:
        return tuple(node for node in self.nodes if node.failed)

    def counts(self, layer: str, kind: str) -> Counter[str]:
        """Statuses of `kind` nodes ('model', 'test', 'unit_test', 'seed') in `layer`."""
        return Counter(
            node.status for node in self.nodes if node.layer == layer and node.resource_type == kind
        )


def dbt_vars(settings: Settings) -> dict[str, float]:
    """The vars every dbt run gets: the feature windows and the rule deck's thresholds."""
    return {**settings.features.dbt_vars(), **settings.rules.dbt_vars()}


def dbt_paths(settings: Settings) -> tuple[Path, Path]:
    """dbt's target and log folders for this data home (one per home: runs never collide)."""
    base = settings.paths.home.resolve() / "dbt"
    return base / "target", base / "logs"


@contextlib.contextmanager
def dbt_environment(settings: Settings, target: str) -> Iterator[None]:
    """Set the variables that profiles.yml and the project read; restore them afterwards."""
    home = settings.paths.home.resolve()
    wanted = {
        **_QUIET_ENV,
        "TRADEWATCH_HOME": str(home),
        "TRADEWATCH_DBT_TARGET": target,
        "DBT_PROFILES_DIR": str(PROFILES_DIR),
        "DBT_PROJECT_DIR": str(DBT_PROJECT_DIR),
    }
    saved = {name: os.environ.get(name) for name in wanted}
    os.environ.update(wanted)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _model_layer(node: Any) -> str | None:
    """The layer folder of a model or seed (its fqn is project, folder, ..., name)."""
    fqn = list(getattr(node, "fqn", None) or [])
    return fqn[1] if len(fqn) > 2 and fqn[1] in LAYERS else None


def _tested_ids(node: Any) -> list[str]:
    """Unique ids (or names) of what a data test or unit test checks, most specific first."""
    ids = [getattr(node, "attached_node", None) or ""]
    model = getattr(node, "model", None)
    if model:
        ids.append(f"model.{getattr(node, 'package_name', '')}.{model}")
    ids += list(getattr(getattr(node, "depends_on", None), "nodes", None) or [])
    return [str(i) for i in ids if i]


def _layer_by_name(name: str) -> str:
    for layer in LAYERS:
        if name.startswith(f"{layer}_"):
            return layer
    return "other"


def _outcomes(run_results: list[Any]) -> tuple[NodeOutcome, ...]:
    """Every node's outcome; a test belongs to the layer of the model it checks."""
    layers: dict[str, str] = {}
    for run_result in run_results:
        node = run_result.node
        is_seed = str(getattr(node.resource_type, "value", node.resource_type)) == "seed"
        layer = "seeds" if is_seed else _model_layer(node)
        if layer:
            layers[node.unique_id] = layer
    outcomes = []
    for run_result in run_results:
        node = run_result.node
        resource_type = str(getattr(node.resource_type, "value", node.resource_type))
        layer = layers.get(node.unique_id)
        if layer is None:
            tested = _tested_ids(node)
            layer = next((layers[i] for i in tested if i in layers), None)
            if layer is None:
                names = [i.rsplit(".", 1)[-1] for i in tested] + [node.name]
                layer = next(
                    (found for found in map(_layer_by_name, names) if found != "other"), "other"
                )
        status = str(getattr(run_result.status, "value", run_result.status)).lower()
        outcomes.append(
            NodeOutcome(
                name=node.name,
                resource_type=resource_type,
                layer=layer,
                status=status,
                message=str(run_result.message or ""),
                failures=run_result.failures,
            )
        )
    return tuple(outcomes)


def _describe_failure(node: NodeOutcome) -> str:
    kind = node.resource_type.replace("_", " ")
    if node.resource_type == "test" and node.status == "fail":
        return f"{kind} {node.name}: {node.failures} failing row(s)"
    lines = [line.strip() for line in _ANSI.sub("", node.message).splitlines() if line.strip()]
    if any(line.startswith("Traceback (most recent call last)") for line in lines):
        # A Python model's error: the exception is the traceback's last line.
        lines = lines[-1:]
    elif node.resource_type == "unit_test" and node.status == "fail":
        # The rest is the table of differing rows, which dbt has printed already.
        lines = lines[:1]
    detail = " ".join(" ".join(lines).split(" compiled code at ")[0].split())
    return f"{kind} {node.name}: {detail[:300]}"


def _warehouse_row_counts(settings: Settings) -> dict[str, int]:
    """Rows per table of the DuckDB warehouse, read in another process (read-only).

    dbt-duckdb keeps its database open in this process with its own configuration, so a
    read-only connection here would be refused; a child process sees the file as it is.
    """
    schemas = ", ".join(f"'{name}'" for name in search_path_schemas())
    script = (
        "import duckdb, json, sys\n"
        "con = duckdb.connect(sys.argv[1], read_only=True)\n"
        "tables = con.execute(\"select table_schema, table_name from information_schema.tables"
        f" where table_schema in ({schemas}) and table_type = 'BASE TABLE'\").fetchall()\n"
        "print(json.dumps({n: con.execute(f'select count(*) from \"{s}\".\"{n}\"').fetchone()[0]"
        " for s, n in sorted(tables, key=lambda t: t[1])}))\n"
    )
    warehouse = settings.paths.warehouse
    if not warehouse.exists():
        return {}
    completed = subprocess.run(
        [sys.executable, "-c", script, str(warehouse)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **_QUIET_ENV},
    )
    if completed.returncode != 0:
        return {}
    return {str(name): int(count) for name, count in json.loads(completed.stdout).items()}


def print_summary(result: TransformResult, console: Console | None = None) -> None:
    """A table per layer: models and tests ok/failed, and rows per table where known."""
    console = console or Console()
    table = Table(title=f"dbt build on target {result.target} ({result.elapsed_seconds:.1f} s)")
    for column in ("layer", "models ok", "models failed", "tests ok", "tests failed", "skipped"):
        table.add_column(column, justify="left" if column == "layer" else "right")
    for layer in (*LAYERS, "seeds", "other"):
        models = result.counts(layer, "model") + result.counts(layer, "seed")
        tests = result.counts(layer, "test") + result.counts(layer, "unit_test")
        if not models and not tests:
            continue
        table.add_row(
            layer,
            str(sum(models[s] for s in _OK_STATUSES)),
            str(sum(models[s] for s in _FAILED_STATUSES)),
            str(sum(tests[s] for s in _OK_STATUSES)),
            str(sum(tests[s] for s in _FAILED_STATUSES) + tests["warn"]),
            str(models["skipped"] + tests["skipped"]),
        )
    console.print(table)
    if result.row_counts:
        rows = Table(title="rows per table")
        rows.add_column("table")
        rows.add_column("rows", justify="right")
        for name, count in result.row_counts.items():
            rows.add_row(name, f"{count:,}")
        console.print(rows)
    for node in result.failed_nodes:
        console.print(f"[red]failed[/red] {_describe_failure(node)}")


def release_duckdb() -> None:
    """Close the DuckDB database dbt-duckdb keeps open after a run in this process.

    Otherwise the process holds the warehouse file's lock until it exits: an analyst's
    session, a flow in another process or the next step's read-only reader would be refused.
    (dbt-duckdb caches its environment on DuckDBConnectionManager; this closes it.)
    """
    try:
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    except ImportError:
        return
    with DuckDBConnectionManager._LOCK:
        environment = DuckDBConnectionManager._ENV
        if environment is not None:
            environment.close()
            DuckDBConnectionManager._ENV = None


def _invoke(args: list[str]) -> Any:
    from dbt.cli.main import dbtRunner

    return dbtRunner().invoke(args)


def run_transform(
    settings: Settings,
    *,
    target: str | None = None,
    full_refresh: bool = False,
    select: str | None = None,
    exclude: str | None = None,
    console: Console | None = None,
) -> TransformResult:
    """`dbt build` the warehouse on `target` (default: settings.dbt.target); print a summary.

    Raises TransformFailed (one line: what failed, where the log is) when dbt could not run or
    any model or test failed.
    """
    target = target or settings.dbt.target
    if target not in TARGETS:
        raise TransformFailed(f"unknown dbt target {target!r}: use one of {', '.join(TARGETS)}")
    if target == "databricks":
        missing = [name for name in _DATABRICKS_ENV if not os.environ.get(name)]
        if missing:
            raise TransformFailed(
                f"target databricks needs {', '.join(missing)} in the environment "
                "(DATABRICKS_CATALOG, DATABRICKS_SCHEMA and TRADEWATCH_VOLUME are optional)"
            )
    target_path, log_path = dbt_paths(settings)
    args = [
        "build",
        "--target", target,
        "--project-dir", str(DBT_PROJECT_DIR),
        "--profiles-dir", str(PROFILES_DIR),
        "--target-path", str(target_path),
        "--log-path", str(log_path),
        "--quiet",
        "--vars", json.dumps(dbt_vars(settings)),
    ]
    if full_refresh:
        args.append("--full-refresh")
    if select:
        args += ["--select", select]
    if exclude:
        args += ["--exclude", exclude]
    settings.paths.home.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with warehouse_slot(f"dbt build {select or ''}".strip()):
        with dbt_environment(settings, target), _local_spark_session(target):
            try:
                outcome = _invoke(args)
            finally:
                release_duckdb()
        elapsed = time.monotonic() - started
        log_file = log_path / "dbt.log"
        if outcome.exception is not None:
            text = " ".join(str(outcome.exception).split())
            first_line = re.sub(r"^(Database Error\s*)+", "Database Error: ", text)[:400]
            failure = WarehouseLocked if is_lock_message(text) else TransformFailed
            raise failure(f"dbt could not build target {target}: {first_line} (log: {log_file})")
        run_results = getattr(outcome.result, "results", None) or []
        nodes = _outcomes(list(run_results))
        row_counts = _warehouse_row_counts(settings) if target == "local" else {}
    result = TransformResult(
        target=target,
        success=bool(outcome.success) and not any(node.failed for node in nodes),
        nodes=nodes,
        elapsed_seconds=elapsed,
        row_counts=row_counts,
        log_path=log_file,
    )
    print_summary(result, console)
    if not result.success:
        failed = result.failed_nodes
        first = _describe_failure(failed[0]) if failed else "dbt reported failure"
        more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
        locked = failed and all(is_lock_message(node.message) for node in failed)
        raise (WarehouseLocked if locked else TransformFailed)(
            f"dbt build on target {target} failed: {first}{more} (log: {log_file})"
        )
    return result


def run_dbt_docs(settings: Settings, *, target: str | None = None) -> Path:
    """`dbt docs generate` (works offline); returns the self-contained index.html.

    On DuckDB the catalog comes from the warehouse; on Databricks, where no workspace may be
    reachable, the docs are generated without a catalog and without compiling.
    """
    target = target or settings.dbt.target
    target_path, log_path = dbt_paths(settings)
    args = [
        "docs", "generate",
        "--target", target,
        "--project-dir", str(DBT_PROJECT_DIR),
        "--profiles-dir", str(PROFILES_DIR),
        "--target-path", str(target_path),
        "--log-path", str(log_path),
        "--quiet",
    ]
    if target == "databricks":
        args += ["--empty-catalog", "--no-compile"]
    settings.paths.home.mkdir(parents=True, exist_ok=True)
    with warehouse_slot("dbt docs generate"), dbt_environment(settings, target):
        try:
            outcome = _invoke(args)
        finally:
            release_duckdb()
    if not outcome.success:
        reason = " ".join(str(outcome.exception or "see the log").split())[:400]
        raise TransformFailed(
            f"dbt docs generate failed on target {target}: {reason} (log: {log_path / 'dbt.log'})"
        )
    return target_path / "index.html"


# --- The local Spark session (the `spark` target) -------------------------------------------
# dbt-spark submits Python models to a Databricks cluster only. For the `spark` target (a local
# session, used to prove the project runs on Spark) the compiled model is run in the same
# session instead: the code dbt generates expects a `spark` global and writes the table itself.
# The session binds to loopback, and its Python workers use this interpreter.


class _SparkSessionPythonJob:
    """Runs a compiled dbt Python model in the local SparkSession dbt-spark already opened."""

    def __init__(self, parsed_model: dict, credentials: Any) -> None:
        self.model_name = parsed_model.get("alias") or parsed_model.get("name", "python_model")

    def submit(self, compiled_code: str) -> None:
        from pyspark.sql import SparkSession

        spark = SparkSession.getActiveSession() or SparkSession.builder.getOrCreate()
        code = compile(compiled_code, f"<dbt python model {self.model_name}>", "exec")
        exec(code, {"spark": spark, "__name__": f"dbt_model_{self.model_name}"})  # noqa: S102


@contextlib.contextmanager
def _local_spark_session(target: str) -> Iterator[None]:
    if target != "spark":
        yield
        return
    from dbt.adapters.base import PythonJobHelper
    from dbt.adapters.spark.impl import SparkAdapter

    from flows.engine import SPARK_CONF_DIR

    # Spark's Python workers must import what the driver imports (pandas, numpy).
    # The local session binds to loopback only.
    python_vars = ("PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON", "SPARK_LOCAL_IP", "SPARK_CONF_DIR")
    saved_python = {name: os.environ.get(name) for name in python_vars}
    os.environ["PYSPARK_PYTHON"] = os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
    # Spark's warnings to errors only (flows/spark_conf/log4j2.properties)
    os.environ.setdefault("SPARK_CONF_DIR", str(SPARK_CONF_DIR))
    session_job = type("SparkSessionPythonJob", (_SparkSessionPythonJob, PythonJobHelper), {})
    original_helpers = SparkAdapter.python_submission_helpers
    original_default = SparkAdapter.default_python_submission_method
    SparkAdapter.python_submission_helpers = property(  # type: ignore[method-assign,assignment]
        # (the class attribute is a property, typed as the method it wraps)
        lambda self: {**original_helpers.fget(self), "session": session_job}  # type: ignore[attr-defined]
    )
    SparkAdapter.default_python_submission_method = property(  # type: ignore[method-assign,assignment]
        lambda self: "session"
    )
    try:
        yield
    finally:
        SparkAdapter.python_submission_helpers = original_helpers  # type: ignore[method-assign]
        SparkAdapter.default_python_submission_method = original_default  # type: ignore[method-assign]
        for name, value in saved_python.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
