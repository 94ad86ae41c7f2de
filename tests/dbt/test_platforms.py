"""The same project on Databricks (no workspace: parse and compile); the whole-project build on
a local Spark session is tests/dbt/test_platforms_spark.py.

Databricks is only reachable from a workspace; here the project must parse, compile every
model that compiles without a connection, give the Spark dialect, and fail fast instead of
retrying.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.dbt.warehouse_data import (
    REPO_ROOT,
)

DBT = Path(sys.executable).parent / "dbt"



def _dbt(args: list[str], home: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {
        key: value for key, value in os.environ.items() if not key.startswith("DATABRICKS_")
    }
    env.update(
        TRADEWATCH_HOME=str(home),
        DBT_SEND_ANONYMOUS_USAGE_STATS="false",
        DO_NOT_TRACK="true",
        TRADEWATCH_VOLUME="/Volumes/main/tradewatch/files",
    )
    common = [
        "--target", "databricks",
        "--project-dir", str(REPO_ROOT / "dbt_project"),
        "--profiles-dir", str(REPO_ROOT),
        "--target-path", str(cwd / "target"),
        "--log-path", str(cwd / "logs"),
    ]
    return subprocess.run(
        [str(DBT), *args, *common], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )


@pytest.mark.slow
def test_databricks_target_parses_and_compiles_spark_sql_without_a_workspace(tmp_path):
    parsed = _dbt(["parse"], tmp_path, tmp_path)
    assert parsed.returncode == 0, parsed.stdout[-3000:]

    compiled = _dbt(
        [
            "compile", "--no-populate-cache",
            "--select", "config.materialized:table config.materialized:view",
            "--exclude", "config.materialized:incremental",
        ],
        tmp_path,
        tmp_path,
    )
    assert compiled.returncode == 0, compiled.stdout[-3000:]
    models = tmp_path / "target" / "compiled" / "tradewatch" / "models"
    validated = (models / "silver" / "silver_trades_validated.sql").read_text()
    assert "timestamp_millis(" in validated and "from_utc_timestamp(" in validated
    assert "try_cast(price as double)" in validated and "from_json(" in validated
    minute_bars = (models / "gold" / "gold_minute_bars.sql").read_text()
    assert "date_trunc('MINUTE', trade_ts)" in minute_bars
    drift = (models / "monitoring" / "monitoring_drift_reports.sql").read_text()
    # Databricks reads the ML files in place from the Unity Catalog volume.
    assert "read_files(\n            '/Volumes/main/tradewatch/files/monitoring/drift'" in drift
    assert "_metadata.file_path" in drift
    rules = (models / "gold" / "gold_rule_flags.sql").read_text()
    # The rule deck's windows: a median over trades (Spark takes percentile() over a frame)
    # and trailing time ranges over the epoch milliseconds.
    assert "percentile(price, 0.5) over (" in rules and "median(" not in rules
    assert "range between 300000 preceding and current row" in rules
    assert "range between 180000 preceding and current row" in rules
    for sql in (validated, minute_bars, drift, rules):
        assert "epoch_ms(" not in sql and "at time zone" not in sql and "isfinite(" not in sql

    docs = _dbt(["docs", "generate", "--empty-catalog", "--no-compile"], tmp_path, tmp_path)
    assert docs.returncode == 0, docs.stdout[-3000:]
    assert (tmp_path / "target" / "index.html").stat().st_size > 0

    # `dbt run-operation tradewatch_setup` creates the Unity Catalog objects; its dry run
    # prints the statements without a workspace. Every create is idempotent (if not exists).
    setup = _dbt(["run-operation", "tradewatch_setup", "--args", "{dry_run: true}"],
                 tmp_path, tmp_path)
    assert setup.returncode == 0, setup.stdout[-3000:]
    statements = [line for line in setup.stdout.splitlines() if line.endswith(";")]
    assert statements == [
        "create catalog if not exists `tradewatch`;",
        "create schema if not exists `tradewatch`.`main`;",
        "create schema if not exists `tradewatch`.`gold`;",
        "create schema if not exists `tradewatch`.`monitoring`;",
        "create catalog if not exists `main`;",
        "create schema if not exists `main`.`tradewatch`;",
        "create volume if not exists `main`.`tradewatch`.`files`;",
        "grant use catalog on catalog `tradewatch` to `tradewatch_analysts`;",
        "grant use schema, select on schema `tradewatch`.`gold` to `tradewatch_analysts`;",
        "grant use schema, select on schema `tradewatch`.`monitoring` to `tradewatch_analysts`;",
    ]
    other_group = _dbt(
        ["run-operation", "tradewatch_setup", "--args", "{dry_run: true, analysts: risk_team}"],
        tmp_path, tmp_path,
    )
    assert "select on schema `tradewatch`.`gold` to `risk_team`;" in other_group.stdout


_DATABRICKS_BUILD = """
import os
from flows.config import load_settings
from flows.transform import TransformFailed, run_transform
settings = load_settings(environ={**os.environ, "TRADEWATCH_HOME": os.getcwd()})
try:
    run_transform(settings, target="databricks", select="silver_trades")
except TransformFailed as exc:
    print("FAILED " + str(exc))
"""


def _databricks_build(cwd: Path, **databricks_env: str) -> str:
    completed = subprocess.run(
        [sys.executable, "-c", _DATABRICKS_BUILD],
        cwd=cwd,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("DATABRICKS_")},
            "PYTHONPATH": str(REPO_ROOT),
            **databricks_env,
        },
        capture_output=True,
        text=True,
        check=False,
    )
    output = completed.stdout + completed.stderr
    failed = [line for line in completed.stdout.splitlines() if line.startswith("FAILED ")]
    assert len(failed) == 1, output[-3000:]
    assert "dapi-secret-token-value" not in output
    return failed[0]


def test_databricks_build_without_credentials_says_what_to_set(tmp_path):
    failed = _databricks_build(tmp_path, DATABRICKS_TOKEN="dapi-secret-token-value")
    assert "target databricks needs DATABRICKS_HOST, DATABRICKS_HTTP_PATH" in failed


@pytest.mark.slow
def test_databricks_build_with_an_unreachable_workspace_fails_fast_with_one_line(tmp_path):
    """The host does not resolve: the build must give up at once, not retry for minutes."""
    failed = _databricks_build(
        tmp_path,
        DATABRICKS_HOST="workspace.invalid",
        DATABRICKS_HTTP_PATH="/sql/1.0/warehouses/abc",
        DATABRICKS_TOKEN="dapi-secret-token-value",
    )
    assert failed.startswith("FAILED dbt could not build target databricks: Database Error: ")
    assert "workspace.invalid" in failed
