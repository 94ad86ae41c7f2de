"""The engine of every flow comes from the settings (flows.engine), and nothing else builds one."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from core.warehouse import (
    DatabricksWarehouse,
    DuckDBWarehouse,
    MissingWarehouseSetting,
    SparkWarehouse,
)
from flows.analysts import AnalystsDatabaseMissing, analysts_database
from flows.config import load_settings
from flows.engine import (
    gold_reader_for_analysts,
    has_model_registry,
    has_warehouse,
    mlflow_stores,
    open_warehouse,
    publishes_analysts_copy,
    spark_settings,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
DATABRICKS = {
    "DATABRICKS_HOST": "adb-123.azuredatabricks.net",
    "DATABRICKS_HTTP_PATH": "/sql/1.0/warehouses/abc",
    "DATABRICKS_TOKEN": "dapi-not-a-real-token",
    "DATABRICKS_CATALOG": "surveillance",
    "DATABRICKS_SCHEMA": "prod",
}


def _settings(tmp_path: Path, environment: str, **extra: str):
    return load_settings(environ={"TRADEWATCH_HOME": str(tmp_path), "TRADEWATCH_ENV": environment,
                                 **extra})


def test_dev_reads_the_duckdb_file_and_tracks_in_sqlite_under_the_home(tmp_path):
    settings = _settings(tmp_path, "dev")
    (tmp_path / "warehouse.duckdb").touch()

    warehouse = open_warehouse(settings)
    stores = mlflow_stores(settings)

    assert isinstance(warehouse, DuckDBWarehouse)
    assert warehouse.path == settings.paths.warehouse
    assert warehouse.table("gold_trade_features") == '"gold"."gold_trade_features"'
    assert stores.tracking_uri == stores.registry_uri == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert stores.model_name == "tradewatch_anomaly"


def test_prd_reads_databricks_and_registers_in_unity_catalog_with_a_three_part_name(
    tmp_path, monkeypatch,
):
    for name, value in DATABRICKS.items():
        monkeypatch.setenv(name, value)
    settings = _settings(tmp_path, "prd", **DATABRICKS)

    warehouse = open_warehouse(settings)
    stores = mlflow_stores(settings)

    assert settings.dbt.target == "databricks"
    assert isinstance(warehouse, DatabricksWarehouse)
    assert warehouse.table("gold_trade_features") == "`surveillance`.`gold`.`gold_trade_features`"
    assert warehouse.table("silver_trades") == "`surveillance`.`prod`.`silver_trades`"
    assert "dapi-not-a-real-token" not in repr(warehouse)
    assert (stores.tracking_uri, stores.registry_uri) == ("databricks", "databricks-uc")
    assert stores.model_name == "surveillance.prod.tradewatch_anomaly"


def test_prd_without_the_workspace_variables_names_what_to_set(tmp_path, monkeypatch):
    for name in DATABRICKS:
        monkeypatch.delenv(name, raising=False)
    settings = _settings(tmp_path, "prd")

    with pytest.raises(MissingWarehouseSetting, match="DATABRICKS_HOST"):
        open_warehouse(settings)


def test_the_spark_environment_reads_the_spark_sessions_catalog(tmp_path):
    settings = _settings(tmp_path, "spark")

    warehouse = open_warehouse(settings)

    assert isinstance(warehouse, SparkWarehouse)
    assert warehouse.table("gold_trade_features") == "`gold`.`gold_trade_features`"
    assert settings.dbt.target == "spark"
    assert mlflow_stores(settings).tracking_uri.startswith("sqlite:///")


def test_analysts_read_their_copy_on_duckdb_and_the_engines_own_reader_elsewhere(
    tmp_path, monkeypatch,
):
    # DuckDB: the published read-only copy, never the warehouse file a cycle writes.
    dev = _settings(tmp_path, "dev")
    (tmp_path / "warehouse.duckdb").touch()
    with pytest.raises(AnalystsDatabaseMissing, match="no analysts' database at .*tradewatch demo"):
        gold_reader_for_analysts(dev)
    analysts_database(dev).parent.mkdir(parents=True)
    analysts_database(dev).touch()

    copy = gold_reader_for_analysts(dev)

    assert isinstance(copy, DuckDBWarehouse) and copy.path == analysts_database(dev)
    assert copy.path != dev.paths.warehouse
    # Spark and Databricks: the reader training and scoring use; no analysts' copy needed.
    spark = gold_reader_for_analysts(_settings(tmp_path / "s", "spark"))
    assert isinstance(spark, SparkWarehouse)
    assert spark.table("gold_flagged_trades") == "`gold`.`gold_flagged_trades`"
    for name, value in DATABRICKS.items():
        monkeypatch.setenv(name, value)
    prd = gold_reader_for_analysts(_settings(tmp_path / "p", "prd", **DATABRICKS))
    assert isinstance(prd, DatabricksWarehouse)
    assert prd.table("gold_flagged_trades") == "`surveillance`.`gold`.`gold_flagged_trades`"


def test_the_champion_is_asked_for_where_a_registry_exists(tmp_path):
    # The review's score drivers load the champion only where there is a registry to ask.
    dev, spark = _settings(tmp_path, "dev"), _settings(tmp_path, "spark")
    assert not has_model_registry(dev) and not has_model_registry(spark)
    (tmp_path / "mlflow.db").touch()
    assert has_model_registry(dev) and has_model_registry(spark)
    assert has_model_registry(_settings(tmp_path / "empty", "prd", **DATABRICKS))


def test_only_duckdb_publishes_an_analysts_copy_and_waits_for_its_file(tmp_path):
    # A reader of the DuckDB file would lock out the next build; Spark's and Databricks'
    # schemas are read where they are, and their catalogs always answer.
    dev, spark = _settings(tmp_path, "dev"), _settings(tmp_path, "spark")
    prd = _settings(tmp_path / "p", "prd", **DATABRICKS)
    assert [publishes_analysts_copy(s) for s in (dev, spark, prd)] == [True, False, False]
    assert publishes_analysts_copy(prd, "local")  # `transform --target local` on prd settings
    assert not has_warehouse(dev) and has_warehouse(spark) and has_warehouse(prd)
    (tmp_path / "warehouse.duckdb").touch()
    assert has_warehouse(dev)


def test_a_spark_session_of_its_own_opens_the_metastore_dbt_built(tmp_path):
    # A `score` or `validate` run in a process of its own must find the tables dbt built:
    # the session settings come from the profile, with the data home the flows use.
    settings = _settings(tmp_path, "spark")
    home = settings.paths.home.resolve()

    conf = spark_settings(settings)

    assert conf["spark.sql.warehouse.dir"] == f"{home}/spark/warehouse"
    assert conf["spark.hadoop.javax.jdo.option.ConnectionURL"] == (
        f"jdbc:derby:;databaseName={home}/spark/metastore_db;create=true"
    )
    assert conf["spark.sql.session.timeZone"] == "UTC"


def test_no_flow_or_library_builds_an_engine_of_its_own():
    """Only core.warehouse (which defines the readers) and flows.engine (which builds them
    from the settings) may name a reader's constructor or an MLflow store URI."""
    pattern = re.compile(r"sqlite:///|(DuckDB|Spark|Databricks)Warehouse\(")
    allowed = {"core/warehouse.py", "flows/engine.py"}
    files = subprocess.run(
        ["git", "ls-files", "core", "ingest", "ml", "expectations", "flows"],
        cwd=REPO_ROOT, capture_output=True, text=True, check=True,
    ).stdout.split()
    offenders = [
        f"{name}:{number}: {line.strip()}"
        for name in files if name.endswith(".py") and name not in allowed
        for number, line in enumerate((REPO_ROOT / name).read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert offenders == []


#: Each verb that reaches the engine, with the arguments it needs to start.
WORKSPACE_VERBS = {
    "collect finnhub": ["collect", "finnhub", "--max-trades", "1"],
    "collect alphavantage": ["collect", "alphavantage"],
    "transform": ["transform"],
    "validate": ["validate"],
    "train": ["train"],
    "score": ["score"],
    "cycle": ["cycle"],
    "rollback": ["rollback"],
    "drift": ["drift"],
    "model trust": ["model", "trust", "1", "--reason", "checked"],
    "report": ["report"],
    "demo": ["demo"],
    # The queue and the context are read from gold; decisions go to the label store.
    "review list": ["review", "list"],
    "review show": ["review", "show", "t1"],
    "review confirm": ["review", "confirm", "t1", "--kind", "price_spike", "--reason", "seen"],
    "review dismiss": ["review", "dismiss", "t1", "--reason", "seen"],
}


@pytest.mark.parametrize(
    ("host", "reason"),
    [("workspace.invalid", "Name or service not known"), ("127.0.0.1:9", "ConnectionRefused")],
)
def test_on_databricks_every_verb_fails_fast_in_one_line_when_the_workspace_is_unreachable(
    tmp_path, monkeypatch, capsys, host, reason,
):
    import time

    from flows.cli import OFFLINE_VERBS, VERBS, main

    assert {v.name for v in VERBS} - OFFLINE_VERBS == set(WORKSPACE_VERBS)
    token = "dapi-secret-token-0123456789"
    for name, value in {**DATABRICKS, "DATABRICKS_HOST": host, "DATABRICKS_TOKEN": token,
                        "TRADEWATCH_ENV": "prd", "TRADEWATCH_HOME": str(tmp_path)}.items():
        monkeypatch.setenv(name, value)
    for verb, argv in WORKSPACE_VERBS.items():
        started = time.monotonic()
        code = main(argv)
        elapsed = time.monotonic() - started
        err = capsys.readouterr().err
        assert code == 1, (verb, err)
        assert elapsed < 30, (verb, elapsed)
        assert err.count("\n") == 1 and err.startswith("tradewatch: WorkspaceUnreachable: "), err
        assert f"workspace {host.split(':')[0]}:" in err and reason in err, err
        assert token not in err
    assert not (tmp_path / "warehouse.duckdb").exists()
