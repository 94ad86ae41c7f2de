"""Where the flows write the files dbt reads: the local data home, or on Databricks the Unity
Catalog volume through the Files API (the real databricks-sdk client, a loopback fake server)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.datahome import (
    DRIFT_RECORDS_DIR,
    QUALITY_RESULTS_DIR,
    SCORES,
    SHADOW_SCORES,
    LocalDataHome,
    within,
)
from core.volume import MissingVolumeSetting, VolumeDataHome
from expectations.readers import VolumeLanding
from expectations.results import (
    ExpectationOutcome,
    LayerOutcome,
    ValidationSummary,
    write_results_ndjson,
)
from flows.config import load_settings
from flows.drift import _same_as_last_report, drift_homes
from flows.engine import data_home, scores_cache
from flows.validate import checkpoint_paths, open_warehouse, previous_failures
from ml.drift_records import write_drift_ndjson
from ml.drift_report import write_drift_html
from tests.ml.test_drift_records import report
from tests.support.files_api import PRD_VOLUME, prd_workspace

TOKEN = "dapi-fake-secret-9e8d7c6b"
VOLUME = PRD_VOLUME


def _settings(tmp_path, environment: str):
    return load_settings(environ={"TRADEWATCH_HOME": str(tmp_path), "TRADEWATCH_ENV": environment})


@pytest.fixture
def workspace(monkeypatch):
    """A fake workspace whose volume the prd environment's variables name."""
    with prd_workspace(monkeypatch, TOKEN) as api:
        yield api


@pytest.mark.parametrize("environment", ["dev", "spark"])
def test_dev_and_spark_write_to_the_local_data_home(tmp_path, environment):
    home = data_home(_settings(tmp_path, environment))

    assert isinstance(home, LocalDataHome) and home.root == tmp_path


def test_prd_writes_to_the_volume_the_dbt_macro_reads(tmp_path, workspace, monkeypatch):
    settings = _settings(tmp_path, "prd")

    home = data_home(settings)
    monkeypatch.setenv("TRADEWATCH_VOLUME", "/Volumes/other/place/files")
    moved = data_home(settings)
    monkeypatch.delenv("DATABRICKS_TOKEN")

    assert isinstance(home, VolumeDataHome) and home.volume == VOLUME
    assert isinstance(moved, VolumeDataHome) and moved.volume == "/Volumes/other/place/files"
    with pytest.raises(MissingVolumeSetting, match="DATABRICKS_TOKEN"):
        data_home(settings)


def _summary(run_id: str, success: bool) -> ValidationSummary:
    outcome = ExpectationOutcome("bronze", "bronze_trades", "expect_column_values_to_not_be_null",
                                 "price", "critical", success, "0", "")
    return ValidationSummary(run_id, datetime(2024, 3, 8, 21, tzinfo=UTC),
                             (LayerOutcome("bronze", (outcome,)),))


def test_on_prd_the_checkpoint_counts_the_landed_trades_in_the_engines_volume(
    tmp_path, workspace, monkeypatch,
):
    # Nothing is reached: the readers connect on their first query.
    monkeypatch.setenv("DATABRICKS_HOST", "adb-1234567890.12.azuredatabricks.net")
    monkeypatch.setenv("DATABRICKS_HTTP_PATH", "/sql/1.0/warehouses/abc123")
    settings = _settings(tmp_path, "prd")

    _, landing = open_warehouse(settings)
    monkeypatch.setenv("TRADEWATCH_VOLUME", "/Volumes/other/place/files")
    _, moved = open_warehouse(settings)

    assert isinstance(landing, VolumeLanding) and isinstance(moved, VolumeLanding)
    assert landing.trades_path == f"{VOLUME}/landing/trades/"
    assert f"'{VOLUME}/landing/trades/'" in landing.count_sql()
    assert moved.trades_path == "/Volumes/other/place/files/landing/trades/"


def test_quality_results_land_in_the_volume_and_are_read_back_from_it(tmp_path, workspace):
    settings = _settings(tmp_path, "prd")

    path = write_results_ndjson(_summary("20240308T210000Z-a", False),
                                checkpoint_paths(settings, data_docs=False).results_dir)

    assert str(path) == f"{VOLUME}/{QUALITY_RESULTS_DIR}/quality-20240308T210000Z-a.ndjson"
    assert b'"success": false' in workspace.files[str(path)]
    assert not (tmp_path / QUALITY_RESULTS_DIR).exists()  # nothing written locally
    assert previous_failures(settings, "20240308T220000Z-b") == frozenset(
        {("bronze_trades", "expect_column_values_to_not_be_null", "price", "critical")})


def test_drift_records_and_report_land_in_the_volume(tmp_path, workspace):
    settings = _settings(tmp_path, "prd")
    records, pages = drift_homes(settings)

    ndjson = write_drift_ndjson(report("20240308T210000Z-a"), records)
    html = write_drift_html(report("20240308T210000Z-a"), pages)

    assert str(ndjson) == f"{VOLUME}/{DRIFT_RECORDS_DIR}/drift-20240308T210000Z-a.ndjson"
    assert str(ndjson) in workspace.files and str(html) in workspace.files
    assert str(html).startswith(f"{VOLUME}/reports/drift/")
    # The next check reads the newest records back from the volume to mute a repeated alert.
    assert _same_as_last_report(records, report("20240308T213000Z-b")) == "20240308T210000Z-a"
    assert not (tmp_path / "monitoring").exists() and not (tmp_path / "reports").exists()


def test_a_local_home_is_unchanged_by_the_engine(tmp_path):
    settings = _settings(tmp_path, "dev")
    records, _ = drift_homes(settings)

    write_drift_ndjson(report("20240308T210000Z-a"), records)

    assert (tmp_path / DRIFT_RECORDS_DIR / "drift-20240308T210000Z-a.ndjson").is_file()
    assert within(data_home(settings), DRIFT_RECORDS_DIR).list() == [
        "drift-20240308T210000Z-a.ndjson"]


def test_scoring_caches_a_volumes_scored_trades_under_the_local_home_and_reads_local_files_in_place(
    tmp_path, workspace,
):
    prd, dev = _settings(tmp_path, "prd"), _settings(tmp_path, "dev")

    champion = scores_cache(prd, data_home(prd), SCORES)
    shadow = scores_cache(prd, data_home(prd), SHADOW_SCORES)

    assert champion == tmp_path / "state/scored-cache/Volumes/surveillance/prod/tradewatch/scores"
    assert shadow == champion.with_name("shadow_scores")
    assert scores_cache(dev, data_home(dev), SCORES) is None


def test_collect_finnhub_on_prd_lands_trades_in_the_volume(tmp_path, workspace, simulator, capsys):
    from flows.collect import run_collect_finnhub

    market = simulator(seed=5, max_trades=500)
    settings = _settings(tmp_path, "prd")

    code = run_collect_finnhub(settings, url=market.ws_url, symbols=("AAPL", "MSFT"),
                               duration=None, max_trades=500)

    landed = [path for path in workspace.files if path.startswith(f"{VOLUME}/landing/trades/")]
    lines = [line for path in landed for line in workspace.files[path].splitlines() if line]
    assert code == 0
    assert landed and len(lines) == 500
    assert f"-> {VOLUME}/landing/trades" in capsys.readouterr().out
    assert not (tmp_path / "landing").exists()
