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

from core.warehouse import DuckDBWarehouse
from flows.config import Settings, load_settings
from flows.training import registry, run_rollback
from ingest.simulator import SimulatorConfig
from ml.audit import AuditLog
from tests.support.market import land_market
from tests.support.webhook import PROXY_VARIABLES, webhook_server

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


# --------------------------------------------------------------------------- the analysts' side

ANALYST_FIGURES = """
    select
        (select count(*) from gold_trade_features) as trades,
        (select count(*) from gold_flagged_trades) as flagged,
        (select count(*) from gold_anomaly_scores where flag) as scores_flagged,
        (select sum(trades) from gold_symbol_daily) as daily_trades,
        (select sum(flagged_trades) from gold_symbol_daily) as daily_flagged,
        (select newest_trade_ts from publication) as newest_trade_ts
"""


def _analysts_session(settings: Settings) -> duckdb.DuckDBPyConnection:
    """What an analyst's notebook does: open the analysts' database read-only."""
    from flows.analysts import SEARCH_PATH_SQL, analysts_database

    session = duckdb.connect(str(analysts_database(settings)), read_only=True)
    session.execute(SEARCH_PATH_SQL)
    return session


def test_an_analysts_session_held_across_a_build_and_a_scoring_run_keeps_its_copy(running):
    """Sessions hold the copy they opened, consistent, and never block the cycle; the next
    session sees the new rows."""
    from flows.analysts import analysts_database, shell_command
    from flows.pipeline import cycle_flow

    settings, market, _ = running
    session = _analysts_session(settings)
    # An open `tradewatch sql` shell too: the DuckDB CLI, reading its queries from stdin.
    shell = subprocess.Popen(shell_command(analysts_database(settings))[:-1]
                             + ["-csv", str(analysts_database(settings))],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        before = session.execute(ANALYST_FIGURES).fetchone()
        trades, flagged, scores_flagged, daily_trades, daily_flagged, _ = before
        assert trades == daily_trades == market.landed
        assert flagged == scores_flagged == daily_flagged > 0
        landed_before = market.landed
        _, end = market.land(SLICE_MINUTES)
        state = cycle_flow(reference_time=end, report=False, settings=settings,
                           return_state=True)
        assert state.is_completed(), state
        assert state.result().scoring.rows_scored == market.landed - landed_before
        # The held session still reads the copy it opened, whole.
        assert session.execute(ANALYST_FIGURES).fetchone() == before
        out, err = shell.communicate("select count(*) as n from gold_trade_features;\n",
                                     timeout=60)
        assert shell.returncode == 0, err
        assert out.split() == ["n", str(trades)]
    finally:
        session.close()
        if shell.poll() is None:
            shell.kill()
    # A new session sees the cycle's trades and scores, consistent again.
    fresh = _analysts_session(settings)
    try:
        trades, flagged, scores_flagged, daily_trades, daily_flagged, newest = (
            fresh.execute(ANALYST_FIGURES).fetchone())
    finally:
        fresh.close()
    assert trades == daily_trades == market.landed > before[0]
    assert flagged == scores_flagged == daily_flagged
    assert newest > before[-1]


def _tradewatch(settings: Settings, *arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(Path(sys.executable).parent / "tradewatch"), *arguments],
        # wide enough that rich never wraps a trade id, whatever terminal runs the tests
        env={**os.environ, "TRADEWATCH_HOME": str(settings.paths.home), "COLUMNS": "200"},
        capture_output=True, text=True, check=False, timeout=600,
    )


def test_tradewatch_sql_answers_one_query_and_names_a_bad_one_in_one_line(running):
    settings, _, _ = running
    session = _analysts_session(settings)
    try:
        flagged = session.execute("select count(*) from gold_flagged_trades").fetchone()[0]
    finally:
        session.close()
    table = _tradewatch(settings, "sql", "-c", "select count(*) as flagged from "
                        "gold_flagged_trades")
    assert table.returncode == 0, table.stderr
    assert table.stdout.split().count(str(flagged)) == 1 and "flagged" in table.stdout
    csv = _tradewatch(settings, "sql", "--format", "csv", "-c",
                      "select symbol, count(*) as n from gold_flagged_trades "
                      "group by symbol order by symbol")
    assert csv.returncode == 0, csv.stderr
    rows = [line.split(",") for line in csv.stdout.splitlines()]
    assert rows[0] == ["symbol", "n"]
    assert sum(int(n) for _, n in rows[1:]) == flagged
    bad = _tradewatch(settings, "sql", "-c", "select * from no_such_table")
    assert bad.returncode != 0
    assert len(bad.stderr.strip().splitlines()) == 1 and "no_such_table" in bad.stderr


def test_every_analysis_compiles_and_runs_on_the_analysts_database(running, tmp_path):
    from flows.metrics import ANALYSTS_TARGET, mf_environment
    from flows.transform import DBT_PROJECT_DIR, PROFILES_DIR

    settings, _, _ = running
    target = tmp_path / "target"
    compiled = subprocess.run(
        [str(Path(sys.executable).parent / "dbt"), "compile", "--quiet",
         "--select", "resource_type:analysis", "--project-dir", str(DBT_PROJECT_DIR),
         "--profiles-dir", str(PROFILES_DIR), "--target", ANALYSTS_TARGET,
         "--target-path", str(target)],
        env=mf_environment(settings), capture_output=True, text=True, check=False,
    )
    assert compiled.returncode == 0, compiled.stdout[-2000:] + compiled.stderr[-2000:]
    analyses = sorted((DBT_PROJECT_DIR / "analyses").glob("*.sql"))
    outputs = {path.stem: path for path in target.rglob("analyses/*.sql")}
    assert {path.stem for path in analyses} == set(outputs) and len(analyses) >= 3
    session = _analysts_session(settings)
    try:
        results = {name: session.execute(path.read_text()).df()
                   for name, path in outputs.items()}
        newest_day = session.execute(
            "select max(trade_date_ny) from gold_trade_features").fetchone()[0]
        critical = session.execute(
            "select count(*) from gold_flagged_trades where risk_level = 'critical' "
            "and trade_date_ny = ?", [newest_day]).fetchone()[0]
        minutes = session.execute(
            "select count(*) from gold_minute_bars where symbol = 'AAPL' and trade_date_ny = "
            "(select max(trade_date_ny) from gold_minute_bars where symbol = 'AAPL')"
        ).fetchone()[0]
    finally:
        session.close()
    assert len(results["todays_critical_flags"]) == critical
    assert results["todays_critical_flags"]["score"].is_monotonic_decreasing
    bars = results["symbol_flags_against_minute_bars"]
    assert len(bars) == minutes > 0
    compared = results["model_versions_compared"]
    assert compared["challenger_version"].tolist() == ["2"]  # the shadow of these cycles
    assert compared["trades_scored_by_both"].iloc[0] > 0


def test_mf_query_returns_the_metrics_and_they_equal_plain_sql(running, tmp_path):
    settings, _, _ = running
    output = tmp_path / "by_symbol.csv"
    completed = _tradewatch(
        settings, "mf", "query", "--metrics", "trades,flagged_trades,flag_rate",
        "--group-by", "symbol", "--order", "symbol", "--csv", str(output),
    )
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-2000:]
    import pandas as pd

    metrics = pd.read_csv(output).set_index("symbol").sort_index()
    session = _analysts_session(settings)
    try:
        plain = session.execute("""
            select
                trades.symbol,
                trades.trades,
                coalesce(flags.flagged, 0) as flagged_trades,
                coalesce(flags.flagged, 0) / trades.trades as flag_rate
            from (select symbol, count(*) as trades from gold_trade_features group by symbol)
                as trades
            left join (select symbol, count(*) as flagged from gold_anomaly_scores where flag
                       group by symbol) as flags using (symbol)
            order by symbol
        """).df().set_index("symbol")
        events = session.execute(
            "select count(*) from gold_anomaly_events").fetchone()[0]
    finally:
        session.close()
    assert metrics.index.tolist() == plain.index.tolist() == sorted(SYMBOLS)
    assert metrics["trades"].tolist() == plain["trades"].tolist()
    assert metrics["flagged_trades"].tolist() == plain["flagged_trades"].tolist()
    assert metrics["flag_rate"].tolist() == pytest.approx(plain["flag_rate"].tolist())
    saved = tmp_path / "events.csv"
    completed = _tradewatch(settings, "mf", "query", "--metrics", "anomaly_events",
                            "--csv", str(saved))
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-2000:]
    assert pd.read_csv(saved)["anomaly_events"].iloc[0] == events > 0


WRITER_HOLDER = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])
print("holding", flush=True)
time.sleep(float(sys.argv[2]))
con.close()
"""


def test_a_publication_that_cannot_read_the_warehouse_alerts_and_keeps_the_old_copy(
    running, hook,
):
    from flows.pipeline import publish_analysts

    settings, _, _ = running
    session = _analysts_session(settings)
    try:
        published = session.execute("select published_at from publication").fetchone()[0]
    finally:
        session.close()
    before = len(_alerts(settings, "analysts_publish_failed"))
    # Another process writes the warehouse for longer than every retry of the publication.
    holder = subprocess.Popen(
        [sys.executable, "-c", WRITER_HOLDER, str(settings.paths.warehouse), "25"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "holding"
        assert publish_analysts(settings) is None
    finally:
        holder.wait(timeout=60)
    alerts = _alerts(settings, "analysts_publish_failed")
    assert len(alerts) == before + 1
    assert "analysts_publish_failed" in _hook_kinds(hook)
    assert "another process" in alerts[-1]["text"]
    session = _analysts_session(settings)
    try:  # analysts still read the previous copy, whole
        assert session.execute("select published_at from publication").fetchone()[0] == published
    finally:
        session.close()
    assert not list(settings.paths.home.joinpath("analysts").glob(".warehouse-*"))
    # Once the warehouse is free again, the next publication goes through.
    assert publish_analysts(settings).published_at.replace(tzinfo=None) > published


def _store_files(settings: Settings) -> list[str]:
    return sorted(p.name for p in settings.paths.label_decisions.glob("*"))


def test_analysts_review_flags_from_the_cli_and_the_decisions_become_labels(running):
    """`tradewatch review`: the queue, one flag in context, confirm a cluster, dismiss a flag
    the answer key calls anomalous, change one's mind; bad input changes nothing; after a build
    the decisions are gold_anomaly_labels' analyst labels (latest wins) and leave the queue."""
    from flows.review import review_queue
    from flows.transform import run_transform

    settings, _, _ = running
    home = settings.paths.home
    queue = review_queue(settings, limit=10_000)
    cluster = [q.trade_id for q in queue if q.cluster_id == queue[0].cluster_id]
    session = _analysts_session(settings)
    try:
        unreviewed = session.execute("select count(*) from gold_flagged_trades "
                                     "where review_status = 'unreviewed'").fetchone()[0]
        # outside that cluster: a flag the answer key calls anomalous, and a false flag
        true_flag, false_flag = (next(trade_id for (trade_id,) in session.execute(
            "select trade_id from gold_flagged_trades where label_source = 'ground_truth' "
            f"and is_anomaly = {verdict} order by score desc").fetchall()
            if trade_id not in cluster) for verdict in ("true", "false"))
        never_flagged = session.execute(
            "select trade_id from gold_trade_features where trade_id not in "
            "(select trade_id from gold_flagged_trades) limit 1").fetchone()[0]
    finally:
        session.close()
    assert len(queue) == unreviewed > 0
    assert [q.score for q in queue] == sorted((q.score for q in queue), reverse=True)
    assert len(cluster) == queue[0].cluster_size

    listed = _tradewatch(settings, "review", "list", "--limit", "5")
    assert listed.returncode == 0, listed.stderr
    assert queue[0].trade_id in listed.stdout and "Review queue: 5 unreviewed" in listed.stdout
    shown = _tradewatch(settings, "review", "show", queue[0].trade_id)
    assert shown.returncode == 0, shown.stderr
    assert "What drove the score (model contributions)" in shown.stdout  # LightGBM's own
    assert "minute bars" in shown.stdout and f"cluster {queue[0].cluster_id}" in shown.stdout

    # Bad input: one line, non-zero, nothing written.
    audit = AuditLog(settings.paths.monitoring / "audit")
    audited = len(list(audit.records("review_decision")))
    for arguments, message in (
        (("confirm", "no-such-trade", "--kind", "other", "--reason", "x"), "unknown trade id"),
        (("dismiss", never_flagged, "--reason", "x"), "never flagged by the champion"),
        (("confirm", false_flag, "--kind", "rug_pull", "--reason", "x"), "unknown kind"),
        (("dismiss", false_flag, "--reason", " "), "needs a reason"),
    ):
        bad = _tradewatch(settings, "review", *arguments)
        assert bad.returncode == 1 and message in bad.stderr, bad.stderr
        assert len(bad.stderr.strip().splitlines()) == 1
    assert _store_files(settings) == []
    assert len(list(audit.records("review_decision"))) == audited

    decisions = (
        ("confirm", *cluster, "--kind", "price_spike", "--reason", "one spike, many prints"),
        ("dismiss", true_flag, "--reason", "a known block trade", "--reviewer", "carol"),
        ("confirm", false_flag, "--kind", "other", "--reason", "looked odd"),
        ("dismiss", false_flag, "--reason", "on second thought, ordinary"),  # the latest wins
    )
    for arguments in decisions:
        done = _tradewatch(settings, "review", *arguments)
        assert done.returncode == 0, done.stderr
    files = _store_files(settings)
    assert len(files) == len(decisions)
    records = [r.payload for r in audit.records("review_decision")][audited:]
    assert len(records) == len(cluster) + 3
    assert {r["reviewer"] for r in records if r["trade_id"] == true_flag} == {"carol"}
    assert all(r["reason"] and r["decided_at"] and r["file"] in files for r in records)
    # A file torn by hand in the store is reported and refused, not read.
    torn = settings.paths.label_decisions / "decisions-torn.ndjson"
    torn.write_text('{"decision_id": "d", "trade_id": "' + true_flag + '", "decision": "conf')
    warned = _tradewatch(settings, "review", "list", "--limit", "1")
    assert warned.returncode == 0 and "decisions-torn.ndjson" in warned.stdout
    assert not {true_flag, false_flag, *cluster} & {
        q.trade_id for q in review_queue(settings, limit=10_000)}  # decided: out of the queue

    run_transform(settings, select="bronze_label_decisions+")
    labels = _fetch(home, "select trade_id, is_anomaly, label_source, anomaly_kind "
                    "from gold_anomaly_labels where trade_id in ("
                    + ", ".join(f"'{t}'" for t in (true_flag, false_flag, *cluster)) + ")"
                    ).set_index("trade_id")
    assert set(labels.label_source) == {"analyst"}
    assert not labels.loc[true_flag, "is_anomaly"]  # the analyst over the answer key
    assert not labels.loc[false_flag, "is_anomaly"]  # the later decision
    assert labels.loc[cluster, "anomaly_kind"].tolist() == ["price_spike"] * len(cluster)
    status = _fetch(home, "select trade_id, review_status from gold_flagged_trades where "
                    f"trade_id in ('{true_flag}', '{cluster[0]}')").set_index("trade_id")
    assert status.review_status.to_dict() == {true_flag: "dismissed", cluster[0]: "confirmed"}


# --------------------------------------------------------------------------- the review page

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def review_page(running):
    """The review page as `tradewatch ui` serves it (its own process group, on a free port of
    127.0.0.1), and headless Chromium driven by Playwright; both stopped afterwards."""
    from playwright.sync_api import sync_playwright

    from flows.ui import start_all, stop_all, ui_servers

    settings, _, _ = running
    port = _free_port()
    server = next(s for s in ui_servers(settings, review_port=port) if s.name == "Review")
    processes = start_all([server], settings, timeout=120)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                                 args=["--no-sandbox"])
            try:
                yield server.url, browser
            finally:
                browser.close()
    finally:
        stop_all(processes)
    assert all(process.poll() is not None for process in processes)


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _store_records(settings: Settings) -> list[dict]:
    """Every decision in the label store, oldest first (files refused as malformed left out,
    as the build leaves them out)."""
    from ml.review import read_decisions

    decisions = read_decisions(settings.paths.label_decisions).decisions
    return decisions.assign(decided_at=decisions["decided_at"].astype(str)).to_dict("records")


def _review_audit(settings: Settings) -> list[dict]:
    return [r.payload for r in AuditLog(settings.paths.audit).records("review_decision")]


def test_a_flag_confirmed_on_the_review_page_reaches_the_label_store_and_the_audit_log(
    running, review_page,
):
    settings, _, _ = running
    url, browser = review_page
    page = browser.new_page()
    try:
        page.goto(f"{url}/")
        scores = [float(s) for s in page.locator("#queue tbody tr td:first-child")
                  .all_inner_texts()]
        assert scores and scores == sorted(scores, reverse=True)
        link = page.locator("a.trade-link").first
        trade_id = link.inner_text()
        link.click()
        page.wait_for_url("**/trade?id=*")
        # The chart: the trade ringed among its symbol's trades; its drivers and cluster.
        assert page.locator("svg.price-chart circle.flagged").get_attribute(
            "data-trade-id") == trade_id
        assert page.locator("svg.price-chart circle").count() > 5
        assert page.locator("#drivers tbody tr").count() > 0
        assert trade_id in page.locator("#cluster").inner_text()
        page.select_option("select[name=kind]", "pump_and_dump")
        page.fill("form.decision input[name=reviewer]", "ana")
        page.fill("textarea[name=reason]", "orders <b>pulled</b> right before the print")
        page.click("button.confirm")
        page.wait_for_url("**/?decided=1")
        assert "Recorded 1 decision" in page.locator("#decided").inner_text()
        # Decided: out of the queue at once (the store is read before the next build).
        assert trade_id not in page.locator("#queue").inner_text()
        # The reviewer's recent decisions, read back from the store; the reason as typed.
        page.goto(f"{url}/decisions")
        assert "Recent decisions of ana" in page.locator("h1").inner_text()
        row = page.locator("#decisions tbody tr").first.inner_text()
        assert trade_id in row and "confirmed" in row and "<b>pulled</b>" in row
    finally:
        page.close()
    stored = [r for r in _store_records(settings) if r["trade_id"] == trade_id]
    assert len(stored) == 1
    assert stored[0] | {"decision_id": None, "decided_at": None} == {
        "decision_id": None, "trade_id": trade_id, "decision": "confirm", "is_anomaly": True,
        "anomaly_kind": "pump_and_dump", "reviewer": "ana",
        "reason": "orders <b>pulled</b> right before the print", "decided_at": None,
    }
    audited = [r for r in _review_audit(settings) if r["trade_id"] == trade_id]
    assert len(audited) == 1 and audited[0]["reviewer"] == "ana"
    assert audited[0]["decision_id"] == stored[0]["decision_id"]


def test_a_bad_submission_on_the_review_page_shows_one_line_and_writes_nothing(
    running, review_page,
):
    settings, _, _ = running
    url, browser = review_page
    before = (_store_records(settings), _review_audit(settings),
              sorted(settings.paths.label_decisions.glob("*")))
    page = browser.new_page()
    try:
        page.goto(f"{url}/")
        link = page.locator("a.trade-link").first
        trade_id = link.inner_text()
        link.click()
        page.wait_for_url("**/trade?id=*")
        # No reason: refused.
        page.click("button.dismiss")
        page.wait_for_load_state()
        error = page.locator("#error").inner_text()
        assert len(error.strip().splitlines()) == 1 and "reason" in error
        # A confirmation without a kind: refused too, and the reason typed is kept in the form.
        page.fill("textarea[name=reason]", "a fat finger, not a manipulation")
        page.click("button.confirm")
        page.wait_for_load_state()
        assert "kind" in page.locator("#error").inner_text()
        assert page.input_value("textarea[name=reason]") == "a fat finger, not a manipulation"
        page.goto(f"{url}/")
        assert trade_id in page.locator("#queue").inner_text()
    finally:
        page.close()
    assert (_store_records(settings), _review_audit(settings),
            sorted(settings.paths.label_decisions.glob("*"))) == before


def test_a_whole_cluster_is_dismissed_from_the_review_page_at_once(running, review_page):
    settings, _, _ = running
    url, browser = review_page
    page = browser.new_page()
    try:
        page.goto(f"{url}/")
        sizes = [int(s) for s in page.locator("#queue tbody tr td:nth-child(7)")
                 .all_inner_texts()]
        row = next((i for i, size in enumerate(sizes) if size > 1), None)
        if row is None:
            pytest.fail(f"no cluster of more than one flag in the queue: {sizes}")
        page.locator("a.trade-link").nth(row).click()
        page.wait_for_url("**/trade?id=*")
        members = page.locator("#cluster tbody tr td:first-child").all_inner_texts()
        assert len(members) > 1
        page.check("input[name=scope][value=cluster]")
        page.fill("textarea[name=reason]", "one block trade printed in pieces")
        page.click("button.dismiss")
        page.wait_for_url(f"**/?decided={len(members)}")
        queue = page.locator("#queue").inner_text() if page.locator("#queue").count() else ""
    finally:
        page.close()
    dismissed = {r["trade_id"] for r in _store_records(settings) if r["decision"] == "dismiss"}
    assert set(members) <= dismissed
    assert not any(member in queue for member in members)


REVIEW_FIGURES = """
    select sum(flagged) as flagged, sum(reviewed) as reviewed, sum(confirmed) as confirmed,
        sum(dismissed) as dismissed, sum(unreviewed) as unreviewed
    from monitoring_review_weekly
"""


def _rebuild_labels(settings: Settings) -> None:
    """What the next build does with the label store: labels, flags, the review figures."""
    from rich.console import Console

    from flows.transform import run_transform

    run_transform(settings, select="bronze_label_decisions+", console=Console(quiet=True))


def test_decisions_change_the_review_coverage_and_precision_after_the_next_build(running):
    from flows.report import REVIEW, run_report
    from flows.review import record_decisions
    from tests.flows.report_page import parse_page

    settings, _, _ = running
    home = settings.paths.home
    before = _fetch(home, REVIEW_FIGURES).iloc[0]
    store = _store_records(settings)
    assert store, "the review page's tests decided some flags first"
    latest = {r["trade_id"]: r for r in store}  # oldest first: the latest decision wins
    _rebuild_labels(settings)
    after = _fetch(home, REVIEW_FIGURES).iloc[0]
    flagged = set(_fetch(home, "select trade_id from gold_flagged_trades").trade_id)
    decided = {t: r for t, r in latest.items() if t in flagged}
    confirmed = sum(r["is_anomaly"] for r in decided.values())
    assert after.flagged == before.flagged == len(flagged)
    assert after.reviewed == len(decided) > before.reviewed
    assert (after.confirmed, after.dismissed) == (confirmed, len(decided) - confirmed)
    assert after.unreviewed == after.flagged - after.reviewed
    # A later decision overrides the earlier one: the confirmed flag is dismissed after all.
    overridden = next(t for t, r in decided.items() if r["is_anomaly"])
    record_decisions(settings, [overridden], confirm=False, kind=None,
                     reason="second look: the quotes moved first", reviewer="lead")
    _rebuild_labels(settings)
    final = _fetch(home, REVIEW_FIGURES).iloc[0]
    assert (final.reviewed, final.confirmed, final.dismissed) == (
        after.reviewed, after.confirmed - 1, after.dismissed + 1)
    # The report shows the same coverage and precision.
    section = parse_page(run_report(settings, refresh=False).read_text()).by_id(REVIEW).text()
    coverage = final.reviewed / final.flagged
    precision = final.confirmed / final.reviewed
    assert f"coverage {coverage:.1%}" in section
    assert (f"confirmed precision {precision:.1%}" in section if final.reviewed else
            "no flag reviewed yet" in section)
    assert f"{int(final.unreviewed):,} flags waiting" in section
