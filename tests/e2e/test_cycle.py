"""The scoring cycle under a real Prefect API, on a small simulated market landed by the real
collector into a real DuckDB warehouse.

One data home for the module (tests run in file order and build on each other): the market
is served in slices; a first slice trains the champion, then each cycle collects a new slice
(or takes what landed), builds, checks quality, scores and publishes. Alerts go to a Slack-like
webhook on 127.0.0.1 and to the audit log, and are counted in both.
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
from e2e_support import PROXY_VARIABLES, land_market, webhook_server

from core.warehouse import DuckDBWarehouse
from flows.config import Settings, load_settings
from flows.training import registry, run_rollback
from ingest.simulator import SimulatorConfig
from ml.audit import AuditLog

# The module fixture trains a champion and runs three cycles: on a loaded 2-core machine that
# alone can pass the default 900 s per-test timeout.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]

NEW_YORK = ZoneInfo("America/New_York")
SYMBOLS = ("AAPL", "MSFT", "KO")
TRAINING_START = datetime(2024, 3, 12, 9, 30, tzinfo=NEW_YORK)
TRAINING_HOURS = 2.0
SLICE_MINUTES = 10
# The cycle is under test, not the tournament: one small model is enough for a champion.
MODELS = {
    "lightgbm": {"n_estimators": 40, "learning_rate": 0.1, "num_leaves": 15,
                 "early_stopping_rounds": 10},
}


def _settings(home: Path) -> Settings:
    settings = load_settings(environ={**os.environ, "TRADEWATCH_HOME": str(home)})
    training = settings.training.model_copy(update={"models": MODELS, "purge_seconds": 300})
    gate = settings.gate.model_copy(
        update={"max_latency_p99_ms": 10_000.0, "min_primary_metric": 0.0}
    )
    # Retries of a busy warehouse short enough for a test, long enough for the holder.
    cycle = settings.cycle.model_copy(update={"warehouse_retry_delays": (1.0, 2.0, 3.0, 5.0)})
    return settings.model_copy(
        update={"symbols": SYMBOLS, "training": training, "gate": gate, "cycle": cycle}
    )


class Market:
    """The simulated market served slice after slice, each continuing where the last ended."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.end = TRAINING_START
        self.landed = 0
        self.seed = 20

    def land(self, minutes: float) -> tuple[datetime, datetime]:
        start, self.seed = self.end, self.seed + 1
        config = SimulatorConfig(
            seed=self.seed, symbols=SYMBOLS, start=start, duration_seconds=minutes * 60,
            trades_per_second=1.0, anomaly_rate=0.02,
            ground_truth_dir=self.home / "simulator" / "ground_truth",
        )
        self.landed += land_market(self.home, config, SYMBOLS)
        self.end = start + timedelta(minutes=minutes)
        return start, self.end


def _fetch(home: Path, sql: str):
    return DuckDBWarehouse(home / "warehouse.duckdb").query(sql)


def _alerts(settings: Settings, kind: str) -> list[dict]:
    audit = AuditLog(settings.paths.monitoring / "audit")
    return [r.payload for r in audit.records("alert") if r.payload.get("kind") == kind]


def _hook_kinds(hook) -> list[str]:
    kinds = []
    for body in hook.received:
        for block in body["blocks"]:
            for item in block.get("fields", []):
                if item["text"].startswith("*kind*"):
                    kinds.append(item["text"].split("\n", 1)[1])
    return kinds


@pytest.fixture(scope="module")
def hook():
    with webhook_server() as hook, pytest.MonkeyPatch.context() as env:
        for name in PROXY_VARIABLES:
            env.delenv(name, raising=False)
        env.setenv("TRADEWATCH_WEBHOOK_URL", hook.url)
        env.delenv("PREFECT_API_URL", raising=False)
        yield hook


@pytest.fixture(scope="module")
def running(tmp_path_factory, prefect_api, hook):
    """A trained champion, then three cycles, each after a new slice of the market."""
    from flows.pipeline import cycle_flow, training_flow, transform_flow

    home = tmp_path_factory.mktemp("cycle_home")
    settings = _settings(home)
    market = Market(home)
    _, trained_until = market.land(TRAINING_HOURS * 60)
    quality = transform_flow(reference_time=trained_until, settings=settings)
    training_flow(reference_time=trained_until, settings=settings, quality=quality)
    assert registry(settings).version_for_alias("champion") == "1"
    results = []
    for number in range(3):
        _, end = market.land(SLICE_MINUTES)
        if number == 1:
            # A second version registered as the challenger: the cycle scores it in shadow.
            champion = registry(settings).client.get_model_version("tradewatch_anomaly", "1")
            registry(settings).register_challenger(champion.source)
        results.append(cycle_flow(reference_time=end, report=number == 0, settings=settings))
    return settings, market, results


def test_three_cycles_leave_every_landed_trade_scored_by_the_champion(running):
    settings, market, results = running
    home = settings.paths.home
    counts = _fetch(home, """
        select
            (select count(*) from silver_trades) as silver,
            (select count(*) from gold_trade_features) as gold,
            (select count(*) from gold_anomaly_scores) as scores,
            (select count(distinct trade_id) from gold_anomaly_scores) as scored,
            (select count(*) from gold_trade_features f where not exists
                (select 1 from gold_anomaly_scores s where s.trade_id = f.trade_id)) as unscored,
            (select string_agg(distinct model_version, ',') from gold_anomaly_scores) as versions
    """).iloc[0]
    assert counts.silver == counts.gold == market.landed
    assert counts.scores == counts.scored == market.landed and counts.unscored == 0
    assert counts.versions == "1"
    # Every cycle scored its slice and published it; the steps were timed.
    for result in results:
        assert result.scoring.rows_scored > 0 and result.scoring.rescored == 0
        steps = {"feed check", "dbt build", "quality", "score", "publish scores"}
        assert steps <= set(result.steps)
    assert results[0].report is not None and Path(results[0].report).exists()
    # The last cycle's quality verdict is queryable too: publishing rebuilds the monitoring
    # tables from the files the cycle wrote.
    last_run = results[-1].quality.run_id
    published = _fetch(home, "select count(*) as n from monitoring_quality_results "
                       f"where run_id = '{last_run}'").n.iloc[0]
    assert published == len(results[-1].quality.outcomes) > 0


def test_a_challengers_shadow_scores_are_written_and_never_alerted(running, hook):
    settings, _, results = running
    shadowed = [r.scoring.shadow for r in results if r.scoring.shadow is not None]
    assert [s.model_version for s in shadowed] == ["2", "2"]  # the cycles after registering
    rows = _fetch(settings.paths.home, """
        select count(*) as n, count(champion_version) as compared,
               string_agg(distinct challenger_version, ',') as versions
        from monitoring_shadow_scores
    """).iloc[0]
    assert rows.n == sum(s.rows_scored for s in shadowed) and rows.compared == rows.n
    assert rows.versions == "2"
    # Shadow scores never reach the champion's table, nor any alert: the alerts so far are the
    # first promotion and what quality said.
    assert _fetch(settings.paths.home, "select count(*) as n from gold_anomaly_scores "
                  "where model_version = '2'").n.iloc[0] == 0
    audit = AuditLog(settings.paths.monitoring / "audit")
    alerts = [record.payload for record in audit.records("alert")]
    assert {alert["kind"] for alert in alerts} <= {"promotion", "quality_warning"}
    assert not any("shadow" in alert["text"] or alert["fields"].get("challenger") == "2"
                   for alert in alerts)
    assert not any("shadow" in body["text"] for body in hook.received)


def test_the_report_compares_champion_and_challenger_flags_on_the_same_trades(running):
    from flows.report import run_report

    settings, _, _ = running
    home = settings.paths.home
    pairs = _fetch(home, "select champion_flag, challenger_flag, trusted_label "
                   "from monitoring_shadow_scores")
    summary = _fetch(home, "select * from monitoring_shadow_summary").iloc[0]
    assert (summary.challenger_version, summary.champion_version) == ("2", "1")
    assert summary.trades == len(pairs)
    agreement = (pairs.champion_flag == pairs.challenger_flag).mean()
    assert summary.flag_agreement == pytest.approx(agreement)
    labelled = pairs[pairs.trusted_label.notna()]
    assert summary.labelled_trades == len(labelled) > 0  # the simulator's ground truth
    flagged = labelled[labelled.champion_flag]
    if len(flagged):
        assert summary.champion_precision == pytest.approx(flagged.trusted_label.mean())
    page = run_report(settings).read_text()
    section = page.split('<section id="shadow">', 1)[1].split("</section>", 1)[0]
    assert "flags agree" in section and f"{agreement:.1%}" in section


LOCK_HOLDER = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
con.execute("select count(*) from silver_trades").fetchall()
print("holding", flush=True)
time.sleep(float(sys.argv[2]))
con.close()
"""


def test_a_connection_held_on_the_warehouse_delays_the_cycle_which_then_succeeds(running):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from flows.pipeline import cycle_flow

    settings, market, _ = running
    _, end = market.land(SLICE_MINUTES)
    holder = subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, str(settings.paths.warehouse), "6"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "holding"
        started = time.monotonic()
        state = cycle_flow(reference_time=end, report=False, settings=settings,
                           return_state=True)
        waited = time.monotonic() - started
    finally:
        holder.wait(timeout=60)
    assert state.is_completed(), state
    assert waited > 4
    with get_client(sync_client=True) as prefect:
        runs = prefect.read_task_runs(flow_run_filter=FlowRunFilter(
            id=FlowRunFilterId(any_=[state.state_details.flow_run_id])))
    builds = [run for run in runs if run.name.startswith("dbt build")]
    # The first build was retried while the analyst held the file.
    assert max(run.run_count for run in builds) >= 2
    assert _fetch(settings.paths.home, "select count(*) as n from gold_anomaly_scores"
                  ).n.iloc[0] == market.landed


def test_a_quality_warning_raises_one_alert_and_scoring_goes_on(running, hook):
    from flows.pipeline import cycle_flow

    settings, market, _ = running
    _, end = market.land(SLICE_MINUTES)
    before = len(_alerts(settings, "quality_warning"))
    hooked = _hook_kinds(hook).count("quality_warning")
    # Judged two hours after the newest trade: the data is stale, a warning.
    result = cycle_flow(reference_time=end + timedelta(hours=2), report=False,
                        settings=settings)
    assert result.quality.success and result.quality.warning_failures
    assert len(_alerts(settings, "quality_warning")) == before + 1
    assert _hook_kinds(hook).count("quality_warning") == hooked + 1
    assert result.scoring.rows_scored > 0
    assert _fetch(settings.paths.home, "select count(*) as n from gold_anomaly_scores"
                  ).n.iloc[0] == market.landed


def test_a_critical_quality_failure_stops_scoring_and_raises_one_alert(running, hook):
    from flows.pipeline import cycle_flow
    from flows.validate import DataQualityFailed

    settings, market, _ = running
    _, end = market.land(SLICE_MINUTES)
    scored_before = _fetch(settings.paths.home, "select count(*) as n from gold_anomaly_scores"
                           ).n.iloc[0]
    # A landed file goes missing after dbt ingested it: bronze no longer reconciles with the
    # landing folder (critical).
    landed = sorted((settings.paths.landing / "trades").glob("date=*/*.ndjson"))[0]
    aside = settings.paths.home / "aside.ndjson"
    shutil.move(landed, aside)
    before = len(_alerts(settings, "quality_critical"))
    hooked = _hook_kinds(hook).count("quality_critical")
    try:
        with pytest.raises(DataQualityFailed, match="before scoring"):
            cycle_flow(reference_time=end, report=False, settings=settings)
    finally:
        shutil.move(aside, landed)
    assert len(_alerts(settings, "quality_critical")) == before + 1
    assert _hook_kinds(hook).count("quality_critical") == hooked + 1
    # Nothing of the new slice was scored.
    assert _fetch(settings.paths.home, "select count(*) as n from gold_anomaly_scores"
                  ).n.iloc[0] == scored_before < market.landed


def test_a_rollback_then_a_cycle_leaves_every_trade_scored_by_the_restored_version(running):
    from flows.pipeline import cycle_flow

    settings, market, _ = running
    models = registry(settings)
    # Version 2 (the shadow) is promoted; the next cycle gives every trade its score...
    models.promote("2", audit_log=AuditLog(settings.paths.monitoring / "audit"),
                   reason="test: promote the shadow")
    _, end = market.land(SLICE_MINUTES)
    promoted = cycle_flow(reference_time=end, report=False, settings=settings)
    assert promoted.scoring.model_version == "2"
    assert promoted.scoring.rows_scored == market.landed
    # ... then it is rolled back: the next cycle re-scores, with version 1, what 2 scored alone.
    scores = f"read_parquet('{settings.paths.scores}/*/*.parquet')"
    scored_by_2_alone = int(duckdb.connect().execute(
        f"select count(distinct trade_id) from {scores} where model_version = '2' and trade_id "
        f"not in (select trade_id from {scores} where model_version = '1')").fetchone()[0])
    assert scored_by_2_alone > 0
    run_rollback(settings)
    assert models.version_for_alias("champion") == "1"
    restored = cycle_flow(reference_time=end, report=False, settings=settings)
    assert restored.scoring.model_version == "1"
    assert restored.scoring.rows_scored == restored.scoring.rescored == scored_by_2_alone
    versions = _fetch(settings.paths.home, """
        select model_version, count(*) as n from gold_anomaly_scores group by model_version
    """)
    assert versions.to_dict("records") == [{"model_version": "1", "n": market.landed}]
    assert len(_alerts(settings, "rollback")) == 1
