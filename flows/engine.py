"""The engine of everything, from the settings: where gold is read, where MLflow tracks and
registers, under which name. No flow names an engine in its code; each asks here.

- `local` (dev, the default): the DuckDB file `<home>/warehouse.duckdb`; MLflow tracks and
  registers in SQLite `<home>/mlflow.db`; the model is `training.registered_model`.
- `spark`: the local Spark session's catalog; MLflow as for `local`.
- `databricks` (prd): the SQL warehouse of `DATABRICKS_HOST` and `DATABRICKS_HTTP_PATH`;
  MLflow tracks in the workspace (`databricks`) and registers in Unity Catalog
  (`databricks-uc`) as `<catalog>.<schema>.<registered_model>`.

Analysts (the review verbs and page) read gold through `gold_reader_for_analysts`: on `local`
the analysts' read-only copy of the DuckDB file (flows.analysts), which never blocks a cycle's
writer; on `spark` and `databricks` the engine's own reader, which readers and dbt share.

Files Python writes for dbt (landing, scores, monitoring, the label store) go to the data home
(`data_home`):
the folder `<home>` for `local` and `spark`, the Unity Catalog volume `TRADEWATCH_VOLUME`
(default `/Volumes/<catalog>/<schema>/tradewatch`, as the dbt macro `data_home`) through the
Files API for `databricks`.

On Databricks the catalog and schema come from `DATABRICKS_CATALOG` and `DATABRICKS_SCHEMA`
(defaults `tradewatch`, `main`), as for the dbt profile; the MLflow client reads the workspace
and its token from `DATABRICKS_HOST` and `DATABRICKS_TOKEN` itself.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from core.datahome import DataHome, LocalDataHome
from core.volume import VolumeDataHome
from core.warehouse import (
    DatabricksWarehouse,
    DuckDBWarehouse,
    SparkWarehouse,
    Warehouse,
)
from flows.analysts import AnalystsDatabaseMissing, analysts_database
from flows.config import Settings

#: The Databricks variables the engine reads (the dbt profile reads the same).
CATALOG_ENV, SCHEMA_ENV = DatabricksWarehouse.CATALOG, DatabricksWarehouse.SCHEMA
#: The schema of the `spark` target's tables (profiles.yml).
SPARK_SCHEMA = "tradewatch"


@dataclass(frozen=True)
class MlflowStores:
    """Where MLflow tracks runs and registers models, and the registered model's name."""

    tracking_uri: str
    registry_uri: str
    model_name: str


def _target(settings: Settings, target: str | None) -> str:
    return target or settings.dbt.target


def open_warehouse(settings: Settings, target: str | None = None,
                   environ: Mapping[str, str] | None = None) -> Warehouse:
    """The read-only warehouse reader of `target` (default: settings.dbt.target)."""
    target = _target(settings, target)
    if target == "local":
        return DuckDBWarehouse(settings.paths.warehouse)
    if target == "spark":
        return SparkWarehouse(schema=SPARK_SCHEMA, session_factory=lambda: spark_session(settings))
    if target == "databricks":
        return DatabricksWarehouse.from_env(environ)
    raise ValueError(f"unknown dbt target {target!r}: local, spark or databricks")


def gold_reader_for_analysts(settings: Settings, target: str | None = None,
                             environ: Mapping[str, str] | None = None) -> Warehouse:
    """Where analysts read gold (the review verbs and page) for `target`.

    On `local`, the analysts' read-only copy `<home>/analysts/warehouse.duckdb` that each build
    publishes (flows.analysts): a session open on the warehouse file itself would block the
    next cycle's writer. AnalystsDatabaseMissing (one line) when none has been published yet.
    On `spark` and `databricks`, the same reader training and scoring use (`open_warehouse`):
    those engines let readers and dbt work side by side.
    """
    if _target(settings, target) == "local":
        path = analysts_database(settings)
        if not path.exists():
            raise AnalystsDatabaseMissing(
                f"no analysts' database at {path}: run `tradewatch demo` or a cycle first"
            )
        return DuckDBWarehouse(path)
    return open_warehouse(settings, target, environ)


def spark_settings(settings: Settings) -> dict[str, str]:
    """The `spark` target's session settings, read from profiles.yml (the one place that
    says where its metastore and tables live) with TRADEWATCH_HOME as the flows set it."""
    import jinja2
    import yaml

    from flows.transform import PROFILES_DIR

    home = str(settings.paths.home.resolve())

    def env_var(name: str, default: str = "") -> str:
        return home if name == "TRADEWATCH_HOME" else os.environ.get(name, default)

    profiles = yaml.safe_load((PROFILES_DIR / "profiles.yml").read_text())
    parameters = profiles["tradewatch"]["outputs"]["spark"]["server_side_parameters"]
    render = jinja2.Environment(autoescape=False).from_string
    return {key: render(str(value)).render(env_var=env_var) for key, value in parameters.items()}


#: Spark's configuration folder for the sessions Tradewatch starts: its log4j2.properties keeps
#: Spark to errors, so that the flows' progress is not buried in Spark's warnings. An operator's
#: own SPARK_CONF_DIR wins.
SPARK_CONF_DIR = Path(__file__).resolve().parent / "spark_conf"


def spark_session(settings: Settings) -> Any:
    """The local Spark session of the `spark` target: the one dbt opened in this process, or a
    new one on the same metastore and tables (a `score` or `drift` run of its own)."""
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_CONF_DIR", str(SPARK_CONF_DIR))
    builder = SparkSession.builder.master("local[*]").appName("tradewatch") \
        .config("spark.sql.catalogImplementation", "hive")
    for key, value in spark_settings(settings).items():
        builder = builder.config(key, value)
    return builder.enableHiveSupport().getOrCreate()


def mlflow_stores(settings: Settings, target: str | None = None,
                  environ: Mapping[str, str] | None = None) -> MlflowStores:
    """MLflow's stores and the registered model's name for `target`."""
    name = settings.training.registered_model
    if _target(settings, target) == "databricks":
        env = os.environ if environ is None else environ
        catalog = env.get(CATALOG_ENV) or "tradewatch"
        schema = env.get(SCHEMA_ENV) or "main"
        return MlflowStores("databricks", "databricks-uc", f"{catalog}.{schema}.{name}")
    local = f"sqlite:///{settings.paths.mlflow_db}"
    return MlflowStores(local, local, name)


def has_model_registry(settings: Settings, target: str | None = None) -> bool:
    """Whether there is a model registry to ask for the champion: always on Databricks (the
    workspace's Unity Catalog), locally once the SQLite store `<home>/mlflow.db` exists."""
    if _target(settings, target) == "databricks":
        return True
    return settings.paths.mlflow_db.exists()


def has_warehouse(settings: Settings, target: str | None = None) -> bool:
    """Whether there is a warehouse to read: the DuckDB file once a build has made it (opening
    a missing one would create it); Spark's and Databricks' catalogs always answer, and say
    themselves which table is missing."""
    if _target(settings, target) == "local":
        return settings.paths.warehouse.exists()
    return True


def publishes_analysts_copy(settings: Settings, target: str | None = None) -> bool:
    """Whether a build publishes the analysts' read-only copy (flows.analysts): only on DuckDB,
    whose file a reader would lock against the next build; on Spark and Databricks analysts
    read the gold and monitoring schemas themselves."""
    return _target(settings, target) == "local"


def data_home(settings: Settings, target: str | None = None,
              environ: Mapping[str, str] | None = None) -> DataHome:
    """Where the files dbt reads are written for `target`: the local data home, or on
    Databricks the Unity Catalog volume through the Files API (core.volume)."""
    if _target(settings, target) == "databricks":
        return VolumeDataHome.from_env(environ)
    return LocalDataHome(settings.paths.home)


def location(home: DataHome, relative: str = "") -> str:
    """Where `relative` of `home` is, for messages: a local path or a volume path."""
    if isinstance(home, LocalDataHome):
        return str(home.path(relative))
    if isinstance(home, VolumeDataHome):
        return home.remote(relative)
    return f"{home!r}/{relative}"


def scores_cache(settings: Settings, home: DataHome, folder: str) -> Path | None:
    """The local folder that caches what the scores files of `folder` (scores/, shadow_scores/)
    in a volume hold, so that scoring downloads each file once (ml.datasets.scored_by_version):
    `<home>/state/scored-cache/<volume path>/<folder>`. None for a local data home, whose
    files are read in place."""
    if isinstance(home, LocalDataHome):
        return None
    remote = PurePosixPath(location(home, folder))
    return settings.paths.home.joinpath("state", "scored-cache", *remote.parts[1:])


class WorkspaceUnreachable(RuntimeError):
    """The Databricks workspace of DATABRICKS_HOST does not answer."""


#: How long `check_workspace` waits for the workspace to accept a connection.
WORKSPACE_TIMEOUT_SECONDS = 10.0


def check_workspace(settings: Settings, environ: Mapping[str, str] | None = None,
                    timeout: float = WORKSPACE_TIMEOUT_SECONDS) -> None:
    """On the databricks target, fail in seconds, in one line, when the workspace cannot be
    reached (name lookup and a TCP connection to its HTTPS port), instead of leaving each
    client (the SQL connector, MLflow, the Files API) to retry for minutes. The token is not
    needed, sent or shown."""
    if _target(settings, None) != "databricks":
        return
    # the same settings, checked the same way, as the reader the flows will open
    workspace = DatabricksWarehouse.from_env(environ)
    name, port = workspace.host, workspace.port
    outcome: list[BaseException | None] = []

    def connect() -> None:
        try:
            socket.create_connection((name, port), timeout=timeout).close()
            outcome.append(None)
        except (OSError, ValueError) as exc:
            outcome.append(exc)

    # Name lookup ignores the socket's timeout: wait for the whole attempt in a thread.
    worker = threading.Thread(target=connect, name="databricks-preflight", daemon=True)
    worker.start()
    worker.join(timeout)
    if not outcome:
        reason = f"no answer within {timeout:.0f} s"
    elif outcome[0] is None:
        return
    else:
        error = outcome[0]
        reason = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
    raise WorkspaceUnreachable(
        f"cannot reach the Databricks workspace {name}:{port} ({reason}); "
        "check DATABRICKS_HOST and the network"
    )
