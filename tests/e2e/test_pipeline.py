"""End to end: the pipeline flow under a real Prefect API on a small simulated market.

Given a small market served by the simulator on 127.0.0.1 and landed by the real collector,
the `pipeline` flow builds the warehouse, validates it, trains, gates, promotes, scores,
checks drift and writes the report. Then: a critical data-quality failure stops training, and
a transient failure (the warehouse locked by another process) is retried.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import pytest

from core.warehouse import DuckDBWarehouse
from flows.config import Settings, load_settings
from flows.training import registry
from ingest.simulator import SimulatorConfig
from ml.audit import AuditLog
from tests.support.market import land_market

pytestmark = pytest.mark.slow

NEW_YORK = ZoneInfo("America/New_York")
SYMBOLS = ("AAPL", "MSFT", "KO")
START = datetime(2024, 3, 12, 9, 30, tzinfo=NEW_YORK)
HOURS = 3.0
END = START + timedelta(hours=HOURS)
MODELS = {
    "lightgbm": {"n_estimators": 60, "learning_rate": 0.1, "num_leaves": 15,
                 "early_stopping_rounds": 10},
    "xgboost": {"n_estimators": 60, "learning_rate": 0.1, "max_depth": 4,
                "early_stopping_rounds": 10},
    "random_forest": {"n_estimators": 20, "max_depth": 8},
    "isolation_forest": {"n_estimators": 40},
}


def _settings(home: Path) -> Settings:
    settings = load_settings(environ={**os.environ, "TRADEWATCH_HOME": str(home)})
    # Three hours of history cannot afford the production one-hour purge gap.
    training = settings.training.model_copy(update={"models": MODELS, "purge_seconds": 300})
    # Latency is judged by its own tests; on two shared cores it is noise here.
    gate = settings.gate.model_copy(
        update={"max_latency_p99_ms": 10_000.0, "min_primary_metric": 0.0}
    )
    return settings.model_copy(update={"symbols": SYMBOLS, "training": training, "gate": gate})


def _market(home: Path) -> SimulatorConfig:
    return SimulatorConfig(
        seed=11, symbols=SYMBOLS, start=START, duration_seconds=HOURS * 3600,
        trades_per_second=1.0, anomaly_rate=0.02,
        ground_truth_dir=home / "simulator" / "ground_truth",
    )


def _count(home: Path, sql: str) -> int:
    # The reader the ML layer uses: read-only, and safe in a process that has run dbt.
    return int(DuckDBWarehouse(home / "warehouse.duckdb").query(sql).iloc[0, 0])


@pytest.fixture(scope="module")
def pipeline_home(tmp_path_factory, prefect_api):
    from flows.pipeline import pipeline

    home = tmp_path_factory.mktemp("pipeline_home")
    settings = _settings(home)
    landed = land_market(home, _market(home), SYMBOLS)
    with pytest.MonkeyPatch.context() as env:
        env.delenv("PREFECT_API_URL", raising=False)
        result = pipeline(reference_time=END, current_hours=1.0, reference_hours=2.0,
                          settings=settings)
    return settings, landed, result


def test_the_pipeline_populates_every_layer(pipeline_home):
    settings, landed, _ = pipeline_home
    home = settings.paths.home
    assert _count(home, "select count(*) from bronze_trades") == landed
    assert _count(home, "select count(*) from silver_trades") == landed
    assert _count(home, "select count(*) from gold_trade_features") == landed
    assert _count(home, "select count(*) from gold_anomaly_labels") == landed


def test_a_champion_is_registered_and_every_trade_is_scored(pipeline_home):
    settings, landed, result = pipeline_home
    assert result["quality"].success
    assert result["training"].decision.promote
    assert registry(settings).version_for_alias("champion") == "1"
    scored = duckdb.connect().execute(
        f"select count(distinct trade_id) from read_parquet('{settings.paths.scores}/*/*.parquet')"
    ).fetchone()[0]
    assert scored == landed
    # The pipeline published them: one current champion score per gold trade, queryable.
    assert _count(settings.paths.home, "select count(distinct trade_id) from gold_anomaly_scores "
                  "where model_version = '1'") == landed


def test_the_rules_baseline_is_judged_on_the_models_test_window(pipeline_home):
    from mlflow import MlflowClient

    from flows.demo import rules_beside_champion
    from flows.training import tracking_uri

    settings, _, result = pipeline_home
    leaderboard = result["training"].leaderboard
    rules, winner = leaderboard.baseline("rules"), leaderboard.winner
    assert rules is not None and winner is not None and winner.model_name != "rules"
    assert "rules" not in [entry.model_name for entry in leaderboard.entries]
    # The same trades and events as the models ...
    assert rules.evaluation.rows == winner.evaluation.rows == leaderboard.split_summary["test_rows"]
    assert rules.evaluation.events == winner.evaluation.events > 0
    # ... flagged where gold_rule_flags says a rule fired in that window.
    first, last = (
        round(datetime.fromisoformat(leaderboard.split_summary[f"test_{end}"]).timestamp() * 1000)
        for end in ("start", "end")
    )
    assert rules.evaluation.flagged == _count(
        settings.paths.home,
        "select count(*) from gold_rule_flags where rules_fired > 0 "
        f"and trade_ts_ms between {first} and {last}",
    ) > 0
    runs = MlflowClient(tracking_uri=tracking_uri(settings))
    rules_run, winner_run = runs.get_run(rules.run_id), runs.get_run(winner.run_id)
    assert rules_run.data.tags["baseline"] == "true"
    for window in ("data.test_start", "data.test_end", "data.test_rows"):
        assert rules_run.data.params[window] == winner_run.data.params[window]
    # The demo's closing summary puts the two side by side.
    line = rules_beside_champion(result["training"]) or ""
    assert f"event recall {rules.evaluation.event_recall:.3f}" in line
    assert f"trade precision {rules.evaluation.trade_precision:.3f}" in line
    assert "champion version 1: event recall" in line


def test_drift_report_audit_records_and_monitoring_report_are_written(pipeline_home):
    settings, _, result = pipeline_home
    drift = result["drift"]
    assert drift.ndjson.exists() and drift.html.exists()
    audit = AuditLog(settings.paths.monitoring / "audit")
    kinds = [record.kind for record in audit.records()]
    assert "gate_decision" in kinds and "promotion" in kinds
    assert "retrain_triggered" in kinds or "retrain_skipped" in kinds
    assert result["report"].exists()
    assert list((settings.paths.monitoring / "quality").glob("quality-*.ndjson"))


def test_a_critical_quality_failure_stops_training(pipeline_home, prefect_api):
    from flows.pipeline import training_flow
    from flows.validate import DataQualityFailed

    settings, _, _ = pipeline_home
    # A landed file dbt has not ingested: landing no longer reconciles with bronze (critical).
    extra = settings.paths.landing / "trades" / "date=2024-03-12" / "late-arrival.ndjson"
    source = next((settings.paths.landing / "trades").glob("date=*/*.ndjson"))
    extra.write_text(source.read_text())
    versions_before = registry(settings).client.search_model_versions("name = 'tradewatch_anomaly'")
    try:
        with pytest.raises(DataQualityFailed, match="before training"):
            training_flow(reference_time=END, settings=settings)
    finally:
        extra.unlink()
    versions_after = registry(settings).client.search_model_versions("name = 'tradewatch_anomaly'")
    assert len(versions_after) == len(versions_before)


LOCK_HOLDER = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
con.close()
"""


def test_a_locked_warehouse_is_retried_until_it_is_free(pipeline_home, prefect_api, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from flows.pipeline import score_flow

    built, _, _ = pipeline_home
    # This process ran dbt, so it still holds the built warehouse: lock a copy instead, made
    # after a checkpoint (which folds the write-ahead log into the file), in a fresh home that
    # shares the built home's registry.
    home = tmp_path / "copy"
    home.mkdir()
    con = duckdb.connect(str(built.paths.warehouse))  # dbt's cached instance in this process
    con.execute("checkpoint")
    con.close()
    shutil.copy(built.paths.warehouse, home / "warehouse.duckdb")
    shutil.copy(built.paths.mlflow_db, home / "mlflow.db")
    settings = built.model_copy(update={"paths": built.paths.model_copy(update={"home": home})})
    holder = subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, str(settings.paths.warehouse), "4"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        # The copy has no landing folder to check quality against: the gate is skipped
        # (explicitly, audited); this test is about the lock.
        state = score_flow(settings=settings, skip_quality_gate=True, publish=False,
                           return_state=True)
        assert state.is_completed(), state
        assert time.monotonic() - started > 2  # it waited for the lock to go
    finally:
        holder.wait(timeout=30)
    with get_client(sync_client=True) as prefect:
        runs = prefect.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
        )
    score_runs = [run for run in runs if run.name.startswith("score new trades")]
    assert len(score_runs) == 1 and score_runs[0].run_count >= 2
