"""End to end: a market that changes regime is noticed, retrained on once, then left alone.

Given a calm baseline day served by the simulator on 127.0.0.1, landed by the real collector,
built by dbt and used to train a champion through the Prefect training flow, and then the
next trading day at the same hours in a switched regime (volatility x3, trade sizes x5, a new
symbol) landed and built the same way:
- the drift flow finds drift on the features the regime changed, and the new symbol;
- it triggers retraining, and the training flow runs once (a new tournament, a new version);
- a second drift check right after is held back by the cooldown, read from the audit log.
Alerts go to a webhook on 127.0.0.1 from $TRADEWATCH_WEBHOOK_URL.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from mlflow import MlflowClient

from flows.config import Settings, load_settings
from flows.drift import DriftOutcome
from flows.training import TrainOutcome, registry, tracking_uri
from flows.transform import run_transform
from ingest.simulator import SimulatorConfig
from ml.audit import AuditLog, AuditRecord
from ml.retraining import BlockedBy, RetrainReason
from tests.support.market import land_market
from tests.support.webhook import PROXY_VARIABLES, Webhook, webhook_server

pytestmark = pytest.mark.slow

NEW_YORK = ZoneInfo("America/New_York")
SYMBOLS = ("AAPL", "MSFT", "NVDA")
NEW_SYMBOL = "PLTR"
HOURS = 2.0
#: A Tuesday late morning, then the Wednesday at the same hours: time of day cannot explain
#: the drift, only the regime can.
BASELINE_START = datetime(2024, 3, 12, 11, 0, tzinfo=NEW_YORK)
SWITCH_START = BASELINE_START + timedelta(days=1)
#: The features a x3 volatility, x5 trade sizes and a new symbol must move.
REGIME_FEATURES = {"price_change_pct", "log_return", "price_volatility_1h", "volume", "symbol"}
#: Features the switch leaves alone: both days trade in the regular session only.
UNMOVED_FEATURES = {"session_type"}
#: Small but real models, so that two tournaments stay quick on two cores.
MODELS = {
    "lightgbm": {"n_estimators": 80, "learning_rate": 0.1, "num_leaves": 15,
                 "early_stopping_rounds": 15},
    "xgboost": {"n_estimators": 80, "learning_rate": 0.1, "max_depth": 4,
                "early_stopping_rounds": 15},
    "random_forest": {"n_estimators": 30, "max_depth": 8, "min_samples_leaf": 2},
    "isolation_forest": {"n_estimators": 50, "contamination": "auto"},
}


@dataclass
class RegimeStory:
    """Everything the scenario produced, for the tests to read."""

    settings: Settings
    champion: TrainOutcome
    first: DriftOutcome
    second: DriftOutcome
    webhook: Webhook
    trades_landed: dict[str, int]
    #: When the scenario began: the Prefect API is shared with the other end-to-end modules.
    started: datetime

    @property
    def audit(self) -> AuditLog:
        return AuditLog(self.settings.paths.monitoring / "audit")

    def records(self, kind: str) -> list[AuditRecord]:
        return list(self.audit.records(kind))


def _settings(home: Path) -> Settings:
    settings = load_settings(environ={**os.environ, "TRADEWATCH_HOME": str(home)})
    training = settings.training.model_copy(
        # Two hours of history cannot afford the production one-hour purge gap.
        update={"models": MODELS, "purge_seconds": 300}
    )
    # Scoring latency is judged by its own tests; on two shared cores it is noise here. So are
    # the event-level figures: on two hours of three symbols (a few dozen anomalies, fewer
    # events than the production minimum) the calm-day champion, whose scale-free features
    # carry over to the switched day, can keep a few more events at a much lower PR-AUC than
    # the retrained challenger. The gate's event-level rules have their own tests; here
    # trade-level PR-AUC decides (its interval's lower bound must still clear the bar), with
    # ROC-AUC held.
    gate = settings.gate.model_copy(
        update={
            "max_latency_p99_ms": 10_000.0,
            "primary_metric": "pr_auc",
            "min_events": 5,
            # Two hours hold ~50 events: the 90 % interval of the PR-AUC gain is ~0.25 wide
            # (+0.03 [-0.08, +0.16] in one run), so the evidence rule would keep the calm-day
            # champion. This story is about the retraining loop; the evidence rule has its own
            # tests. Here the challenger has to be better on the point estimate only.
            "min_improvement_threshold": -1.0,
            "tolerances": {"roc_auc": 0.02},
        }
    )
    return settings.model_copy(update={"symbols": SYMBOLS, "training": training, "gate": gate})


def _market(start: datetime, home: Path, **regime) -> SimulatorConfig:
    return SimulatorConfig(
        seed=7,
        symbols=SYMBOLS,
        start=start,
        duration_seconds=HOURS * 3600,
        trades_per_second=1.0,
        anomaly_rate=0.02,
        ground_truth_dir=home / "simulator" / "ground_truth",
        **regime,
    )


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory, prefect_api) -> RegimeStory:
    from flows.pipeline import drift_flow, training_flow

    home = tmp_path_factory.mktemp("regime_home")
    settings = _settings(home)
    started = datetime.now(tz=ZoneInfo("UTC"))
    baseline_end = BASELINE_START + timedelta(hours=HOURS)
    switch_end = SWITCH_START + timedelta(hours=HOURS)
    with webhook_server() as hook, pytest.MonkeyPatch.context() as env:
        for name in PROXY_VARIABLES:
            env.delenv(name, raising=False)
        env.setenv(settings.alerts.webhook_url_env, hook.url)
        env.delenv("PREFECT_API_URL", raising=False)  # no training deployment: train in-process

        landed = {"baseline": land_market(home, _market(BASELINE_START, home), SYMBOLS)}
        run_transform(settings)
        champion = training_flow(reference_time=baseline_end, settings=settings)
        assert champion.decision.promote, champion.decision.reason

        landed["switched"] = land_market(
            home,
            _market(
                SWITCH_START,
                home,
                volatility_multiplier=3.0,
                volume_multiplier=5.0,
                extra_symbols=(NEW_SYMBOL,),
            ),
            (*SYMBOLS, NEW_SYMBOL),
        )
        run_transform(settings)
        windows = {"current_hours": HOURS, "reference_hours": 24.0}
        first = drift_flow(**windows, reference_time=switch_end, settings=settings)
        second = drift_flow(**windows, reference_time=switch_end, settings=settings)
    return RegimeStory(settings, champion, first, second, hook, landed, started)


def test_drift_is_found_on_the_features_the_regime_changed(story):
    report = story.first.report
    drifted = {f.feature for f in report.drifted_features}
    assert drifted >= REGIME_FEATURES
    assert not drifted & UNMOVED_FEATURES
    symbol = next(f for f in report.features if f.feature == "symbol")
    assert NEW_SYMBOL in (symbol.note or "")
    # The champion scored both windows: trained on the calm day, it scores the switched one
    # differently and finds its anomalies far worse (labels from the simulator's answer key).
    assert report.prediction_drift and report.performance_drift
    # The calm-day champion's promotion came first; the first alert of the drift check is drift.
    titles = story.webhook.titles()
    assert titles[0] == "[INFO] New champion promoted"
    assert titles[1] == "[CRITICAL] Drift detected"


def test_the_reference_is_what_the_champion_was_tested_on_and_the_current_the_new_day(story):
    first = story.first
    version = story.champion.challenger_version
    assert first.champion_version == version
    assert first.reference_basis == f"champion version {version}'s test window"
    test_start = datetime.fromisoformat(story.champion.decision.test_window_start)
    reference, current = first.report.reference_window, first.report.current_window
    assert reference.start == test_start
    assert reference.end <= BASELINE_START + timedelta(hours=HOURS)
    # The newest two hours of trades: the whole switched day and nothing of the baseline.
    assert BASELINE_START + timedelta(hours=HOURS) < current.start <= SWITCH_START
    assert current.end <= SWITCH_START + timedelta(hours=HOURS)
    rows = [json.loads(line) for line in first.ndjson.read_text().splitlines()]
    assert {row["feature"] for row in rows if row["drifted"]} >= REGIME_FEATURES
    assert {row["current_rows"] for row in rows if row["kind"] == "numeric"} == {
        story.trades_landed["switched"]
    }


def test_retraining_is_triggered_once_and_the_training_flow_runs_once(story, prefect_api):
    decision = story.first.decision
    assert decision.retrain
    assert set(decision.reasons) == set(RetrainReason)  # the switched day is all new labels
    assert story.first.new_labelled_rows == story.trades_landed["switched"]
    triggered = story.records("retrain_triggered")
    assert [r.payload["drift_run_id"] for r in triggered] == [story.first.report.run_id]

    # Two tournaments and two gate decisions: the champion's, and the retraining's.
    models = registry(story.settings)
    versions = models.client.search_model_versions(f"name = '{models.name}'")
    assert sorted(int(v.version) for v in versions) == [1, 2]
    gate_decisions = story.records("gate_decision")
    assert len(gate_decisions) == 2
    # Retrained on the switched day, the challenger beats the champion that collapsed on it.
    assert gate_decisions[1].payload["decision"] == "promote"
    assert gate_decisions[1].payload["comparison"]["difference"] > 0
    assert models.version_for_alias("champion") == "2"
    client = MlflowClient(tracking_uri=tracking_uri(story.settings))
    experiment = client.get_experiment_by_name(story.settings.training.experiment)
    runs = client.search_runs([experiment.experiment_id])
    # Each tournament: one run per model, and the rule deck's baseline run beside them.
    baselines = [run for run in runs if run.data.tags.get("baseline") == "true"]
    assert len(runs) - len(baselines) == 2 * len(MODELS)
    assert [run.info.run_name for run in baselines] == ["rules", "rules"]

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    with get_client(sync_client=True) as prefect:
        trainings = prefect.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["training"]))
        )
    # Other end-to-end modules train on the same API: count this scenario's runs only.
    ours = [run for run in trainings if run.start_time and run.start_time >= story.started]
    assert sorted(run.state_name for run in ours) == ["Completed", "Completed"]
    assert "[INFO] Retraining triggered" in story.webhook.titles()


def test_the_check_right_after_is_held_back_by_the_cooldown(story):
    second = story.second.decision
    assert not second.retrain
    assert second.reasons == (RetrainReason.DATA_DRIFT,)
    # The new champion was tested on trades that are now current: the reference falls back
    # to the day before, where its scores would be in-sample, so only data drift is judged.
    assert story.second.champion_version == "2"
    assert story.second.reference_basis.startswith("the 24 h before the current window")
    assert story.second.report.prediction is None and story.second.report.performance is None
    assert second.blocked_by == (BlockedBy.COOLDOWN,)
    (triggered,) = story.records("retrain_triggered")
    assert second.next_allowed_at == triggered.event_ts + timedelta(
        hours=story.settings.retraining.cooldown_hours
    )
    skipped = story.records("retrain_skipped")[-1]
    assert skipped.payload["blocked_by"] == ["cooldown"]
    assert skipped.payload["drift_run_id"] == story.second.report.run_id
    # Training consumed the switched day: no labelled trade is new to it any more.
    assert story.second.new_labelled_rows == 0
    assert RetrainReason.NEW_LABELLED_ROWS not in second.reasons
    titles = story.webhook.titles()
    assert titles.count("[INFO] Retraining triggered") == 1
    assert len([t for t in titles if t.endswith("] Drift detected")]) == 2
