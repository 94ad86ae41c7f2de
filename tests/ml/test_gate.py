"""The champion/challenger gate, judged on one shared test window, with every decision audited.

Besides real fitted models, `Scripted` models score with a column the test writes: constructed
score sets that go through the real registry, pyfunc and gate, so that promote, reject and
"not enough evidence" are decided on figures the test controls.
"""

from __future__ import annotations

import copy
import pickle
import shutil
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pandas as pd
import pytest

from core.alerts import AlertKind
from ml.audit import AuditLog
from ml.datasets import window_bounds
from ml.events import event_ids_of
from ml.gate import BootstrapPolicy, GatePolicy, run_gate
from ml.models import AnomalyModel, build_model
from ml.registry import CHAMPION

SYMBOLS = ("AAPL", "MSFT", "NVDA")
TOLERANCES = {"event_recall": 0.05, "alert_precision": 0.1}
POLICY = GatePolicy(
    min_improvement_threshold=0.01,
    min_events=20,  # the synthetic test window holds 26 events
    bootstrap=BootstrapPolicy(resamples=400, confidence=0.9, block_minutes=60, seed=0),
    tolerances=TOLERANCES,
    min_primary_metric=0.3,
    # Latency is checked on its own below; elsewhere a scheduler stall on the shared test
    # machine must not decide a test about metrics.
    max_latency_p99_ms=1e9,
    required_symbols=SYMBOLS,
)
BATCHES = (1, 200)


class Scripted(AnomalyModel):
    """Scores are the values of one feature column, flags those at or above `threshold`."""

    name = "scripted"

    def __init__(self, column: str, threshold: float = 0.5) -> None:
        super().__init__({}, features=(column,))
        self.threshold = threshold

    def _fit(self, x_train, y_train, x_validation, y_validation):
        return None

    def _score(self, x):
        return x[self.features[0]].to_numpy()


CHAMPION_COLUMN, CHALLENGER_COLUMN = "price_zscore", "volume_zscore"


def scripted_window(split, market, champion: np.ndarray, challenger: np.ndarray) -> pd.DataFrame:
    """The test window with both constructed score sets written into the scripted columns."""
    return split.test.assign(**{CHAMPION_COLUMN: champion, CHALLENGER_COLUMN: challenger})


def constructed_scores(split, market, *, hide_every: int | None, false_alerts: int) -> np.ndarray:
    """0.9 on every trade of the events kept, 0.05 elsewhere; `hide_every`-th event (in time)
    left at 0.05; `false_alerts` normal trades far from any event at 0.9."""
    window = split.test
    ids = event_ids_of(window, market.events)
    y = window["is_anomaly"].to_numpy()
    scores = np.where(y, 0.9, 0.05)
    order = pd.unique(ids[y])
    if hide_every:
        hidden = set(order[::hide_every])
        scores[np.isin(ids, list(hidden))] = 0.05
    normal = np.flatnonzero(~y)
    if false_alerts:
        scores[normal[np.linspace(0, len(normal) - 1, false_alerts).astype(int)]] = 0.9
    return scores


@pytest.fixture(scope="module")
def weak_model(split, fast_models):
    """Sees only the clock: ranks anomalies barely above chance."""
    model = build_model(
        "lightgbm",
        fast_models["lightgbm"],
        features=("hour_of_day", "minute_of_hour", "day_of_week"),
    )
    model.fit(split.train, split.validation)
    return model


@pytest.fixture
def audit(tmp_path) -> AuditLog:
    return AuditLog(tmp_path / "monitoring" / "audit")


class _RunsCode:
    """A pickle that runs code when loaded (it creates `marker`)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def gate(registry, version, split, audit, market, policy=POLICY, window=None, notify=None):
    return run_gate(
        registry,
        version,
        split.test if window is None else window,
        policy=policy,
        audit_log=audit,
        events=market.events,
        latency_batch_sizes=BATCHES,
        notify=notify,
    )


def only_decision(audit):
    decisions = list(audit.records("gate_decision"))
    assert len(decisions) == 1
    return decisions[0].payload


def assert_judged_on_the_test_window(payload, split):
    start, end = window_bounds(split.test)
    assert (payload["test_window_start"], payload["test_window_end"]) == (start, end)
    assert payload["test_rows"] == len(split.test)
    assert payload["events"] == 26


def assert_interval_recorded(payload, decision):
    """The audit record carries the primary metric, both values and the interval."""
    comparison = payload["comparison"]
    assert comparison["metric"] == payload["primary_metric"] == "event_average_precision"
    assert comparison["champion"] == pytest.approx(
        payload["champion_metrics"]["event_average_precision"]
    )
    assert comparison["challenger"] == pytest.approx(
        payload["challenger_metrics"]["event_average_precision"]
    )
    assert comparison["low"] <= comparison["difference"] <= comparison["high"]
    assert (comparison["resamples"], comparison["confidence"]) == (400, 0.9)
    assert comparison == decision.comparison.as_dict()
    # the printed line carries the same figures
    line = decision.summary()
    assert (
        f"challenger {comparison['challenger']:.3f} vs champion {comparison['champion']:.3f}"
        in line
    )
    assert f"interval {comparison['low']:+.3f} … {comparison['high']:+.3f}" in line


def seed_champion(registry, register_model, audit, model) -> str:
    version = register_model(model)
    registry.promote(version, audit_log=audit, reason="seed champion")
    return version


def test_first_challenger_is_promoted_when_there_is_no_champion(
    registry, register_model, fitted_models, split, audit, market
):
    version = register_model(fitted_models["lightgbm"])

    decision = gate(registry, version, split, audit, market)

    assert decision.promote and decision.champion_version is None
    assert "no champion" in decision.reason
    payload = only_decision(audit)
    assert (payload["decision"], payload["reason_code"]) == ("promote", "no_champion")
    assert payload["challenger_version"] == version
    assert payload["champion_metrics"] == {} and payload["comparison"] is None
    assert payload["challenger_metrics"]["event_average_precision"] == pytest.approx(
        decision.challenger_metrics["event_average_precision"]
    )
    assert_judged_on_the_test_window(payload, split)


def test_a_clearly_better_challenger_is_promoted_on_constructed_scores(
    registry, register_model, split, audit, market
):
    # The champion misses every third event and raises six false alerts; the challenger finds
    # every event and raises none.
    window = scripted_window(
        split, market,
        champion=constructed_scores(split, market, hide_every=3, false_alerts=6),
        challenger=constructed_scores(split, market, hide_every=None, false_alerts=0),
    )
    seed_champion(registry, register_model, audit, Scripted(CHAMPION_COLUMN))
    challenger = register_model(Scripted(CHALLENGER_COLUMN))

    decision = gate(registry, challenger, split, audit, market, window=window)

    assert decision.promote, decision.reason
    payload = only_decision(audit)
    assert payload["reason_code"] == "better"
    assert payload["challenger_metrics"]["event_average_precision"] == 1.0
    assert payload["challenger_metrics"]["event_recall"] == 1.0
    assert payload["champion_metrics"]["event_recall"] == pytest.approx(17 / 26)  # 9 hidden
    assert payload["champion_metrics"]["false_alerts"] == 6
    assert payload["comparison"]["low"] >= 0.01
    assert_interval_recorded(payload, decision)
    assert_judged_on_the_test_window(payload, split)


def test_a_challenger_better_by_one_event_is_rejected_the_interval_says_it_may_be_luck(
    registry, register_model, split, audit, market
):
    # The challenger finds one more event than the champion (26 against 25), nothing else.
    champion_scores = constructed_scores(split, market, hide_every=None, false_alerts=3)
    ids = event_ids_of(split.test, market.events)
    one_event = ids == pd.unique(ids[split.test["is_anomaly"].to_numpy()])[0]
    champion_scores[one_event] = 0.05
    window = scripted_window(
        split, market, champion=champion_scores,
        challenger=constructed_scores(split, market, hide_every=None, false_alerts=3),
    )
    champion = seed_champion(registry, register_model, audit, Scripted(CHAMPION_COLUMN))
    challenger = register_model(Scripted(CHALLENGER_COLUMN))

    decision = gate(registry, challenger, split, audit, market, window=window)

    assert not decision.promote
    payload = only_decision(audit)
    assert payload["reason_code"] == "not_better" and payload["alert"] is None
    comparison = payload["comparison"]
    assert comparison["difference"] > 0.01  # better on this window ...
    assert comparison["low"] < 0.01  # ... but not beyond what one event's block can do
    assert "lower bound does not clear +0.01" in decision.reason
    assert_interval_recorded(payload, decision)
    assert registry.version_for_alias(CHAMPION) == champion


def test_too_few_events_is_not_enough_evidence_and_the_champion_stays(
    registry, register_model, split, audit, market
):
    window = scripted_window(
        split, market,
        champion=constructed_scores(split, market, hide_every=3, false_alerts=6),
        challenger=constructed_scores(split, market, hide_every=None, false_alerts=0),
    )
    champion = seed_champion(registry, register_model, audit, Scripted(CHAMPION_COLUMN))
    challenger = register_model(Scripted(CHALLENGER_COLUMN))
    policy = GatePolicy(**{**POLICY.__dict__, "min_events": 27})

    decision = gate(registry, challenger, split, audit, market, policy, window=window)

    assert not decision.promote and decision.alert is None
    assert decision.reason.startswith("not enough evidence")
    assert "26 labelled events, fewer than the 27 required" in decision.reason
    payload = only_decision(audit)
    assert (payload["reason_code"], payload["events"], payload["min_events"]) == (
        "insufficient_evidence", 26, 27
    )
    assert payload["checks"]["enough_events"] is False
    # both sides were measured and recorded, and the interval too, though it decides nothing:
    # the challenger is clearly better here, and still the champion stays
    assert payload["challenger_metrics"]["event_average_precision"] == 1.0
    assert payload["champion_metrics"]["event_average_precision"] < 1.0
    assert payload["comparison"]["low"] >= 0.01
    assert payload["checks"].get("improvement") is None
    assert_interval_recorded(payload, decision)
    assert registry.version_for_alias(CHAMPION) == champion


def test_a_real_better_model_is_promoted_over_a_clock_reading_one(
    registry, register_model, fitted_models, weak_model, split, audit, market
):
    champion = seed_champion(registry, register_model, audit, weak_model)
    challenger = register_model(fitted_models["xgboost"])

    decision = gate(registry, challenger, split, audit, market)

    assert decision.promote, decision.reason
    payload = only_decision(audit)
    assert payload["champion_version"] == champion
    assert {
        "pr_auc", "roc_auc", "recall", "event_recall", "false_alerts_per_day",
        "median_time_to_detect_s", "event_average_precision",
    } <= set(payload["challenger_metrics"])
    assert_interval_recorded(payload, decision)
    assert_judged_on_the_test_window(payload, split)


def test_the_same_model_again_is_rejected(
    registry, register_model, fitted_models, split, audit, market
):
    champion = seed_champion(registry, register_model, audit, fitted_models["lightgbm"])
    challenger = register_model(fitted_models["lightgbm"])

    decision = gate(registry, challenger, split, audit, market)

    assert not decision.promote
    payload = only_decision(audit)
    assert payload["reason_code"] == "not_better"
    assert (payload["comparison"]["difference"], payload["comparison"]["low"]) == (0.0, 0.0)
    assert registry.version_for_alias(CHAMPION) == champion


def test_secondary_metric_drop_beyond_tolerance_is_rejected(
    registry, register_model, fitted_models, split, audit, market
):
    champion = seed_champion(registry, register_model, audit, fitted_models["lightgbm"])
    # Same ranking (same event AP) but a threshold that flags almost nothing: events found at
    # the threshold collapse.
    timid = copy.deepcopy(fitted_models["lightgbm"])
    timid.threshold = 0.99999
    challenger = register_model(timid)
    policy = GatePolicy(**{**POLICY.__dict__, "min_improvement_threshold": 0.0})

    decision = gate(registry, challenger, split, audit, market, policy)

    assert not decision.promote
    assert "secondary metrics worsened" in decision.reason and "event_recall" in decision.reason
    payload = only_decision(audit)
    assert payload["reason_code"] == "secondary_drop"
    assert payload["checks"]["secondary_metrics"] is False
    assert (
        payload["champion_metrics"]["event_recall"] - payload["challenger_metrics"]["event_recall"]
        > 0.05
    )
    assert registry.version_for_alias(CHAMPION) == champion


@pytest.mark.parametrize(
    ("tolerances", "missing"),
    [
        # the champion flags nothing: it has no time to detect to compare against
        ({"median_time_to_detect_s": 60.0}, "median_time_to_detect_s (missing on the champion)"),
        # a misspelt metric exists on neither side: the gate cannot check it, so it fails
        ({"event_recal": 0.05}, "event_recal (missing on the champion and challenger)"),
    ],
)
def test_a_metric_missing_on_either_side_fails_closed_with_a_gate_alert(
    tolerances, missing, registry, register_model, split, audit, market
):
    window = scripted_window(
        split, market,
        champion=np.full(len(split.test), 0.05),
        challenger=constructed_scores(split, market, hide_every=None, false_alerts=0),
    )
    champion = seed_champion(registry, register_model, audit, Scripted(CHAMPION_COLUMN))
    challenger = register_model(Scripted(CHALLENGER_COLUMN))
    policy = GatePolicy(**{**POLICY.__dict__, "tolerances": tolerances})
    sent = []

    decision = gate(registry, challenger, split, audit, market, policy, window=window,
                    notify=lambda **alert: sent.append(alert))

    assert not decision.promote
    assert missing in decision.alert and "failing closed" in decision.alert
    assert len(sent) == 1 and sent[0]["kind"] == "gate" and sent[0]["text"] == decision.alert
    payload = only_decision(audit)
    assert payload["reason_code"] == "metric_missing"
    assert payload["checks"]["metrics_present"] is False
    assert registry.version_for_alias(CHAMPION) == champion


def test_unreadable_champion_fails_closed_and_raises_an_alert(
    registry, register_model, fitted_models, weak_model, split, audit, market
):
    champion = seed_champion(registry, register_model, audit, weak_model)
    model_id = registry.client.get_model_version(registry.name, champion).source.removeprefix(
        "models:/"
    )
    artifacts = urlparse(registry.client.get_logged_model(model_id).artifact_location).path
    shutil.rmtree(Path(artifacts))  # the champion's files are gone
    challenger = register_model(fitted_models["xgboost"])  # clearly better, were it judged

    decision = gate(registry, challenger, split, audit, market)

    assert not decision.promote
    assert decision.alert and "failing closed" in decision.alert
    payload = only_decision(audit)
    assert (payload["decision"], payload["reason_code"]) == ("reject", "champion_unusable")
    assert payload["champion_version"] == champion
    alerts = [r.payload for r in audit.records("alert")]
    assert len(alerts) == 1 and alerts[0]["source"] == "gate"
    assert registry.version_for_alias(CHAMPION) == champion
    assert_judged_on_the_test_window(payload, split)


def test_a_champion_whose_pickle_was_swapped_is_not_loaded_and_the_gate_fails_closed(
    registry, register_model, fitted_models, weak_model, split, audit, market, tmp_path
):
    champion = register_model(weak_model)
    registry.promote(champion, audit_log=audit, reason="seed champion")
    marker = tmp_path / "the attacker's code ran"
    model_id = registry.client.get_model_version(registry.name, champion).source.removeprefix(
        "models:/"
    )
    artifacts = Path(urlparse(registry.client.get_logged_model(model_id).artifact_location).path)
    (artifacts / "python_model.pkl").write_bytes(pickle.dumps(_RunsCode(str(marker))))
    challenger = register_model(fitted_models["xgboost"])  # clearly better, were it judged
    sent = []

    decision = run_gate(registry, challenger, split.test, policy=POLICY, audit_log=audit,
                        events=market.events, latency_batch_sizes=BATCHES,
                        notify=lambda **alert: sent.append(alert))

    assert not decision.promote and "failing closed" in decision.reason
    assert "artifacts changed since it was registered" in decision.reason
    assert not marker.exists()  # nothing was unpickled
    assert [alert["kind"] for alert in sent] == [AlertKind.MODEL_INTEGRITY]
    assert registry.version_for_alias(CHAMPION) == champion


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"min_primary_metric": 0.999}, "event_average_precision"),
        ({"max_latency_p99_ms": 1e-6}, "latency"),
        ({"required_symbols": (*SYMBOLS, "TSLA")}, "no trades for TSLA"),
    ],
)
def test_validation_failures_reject_before_any_comparison(
    change, reason, registry, register_model, fitted_models, split, audit, market
):
    version = register_model(fitted_models["lightgbm"])
    policy = GatePolicy(**{**POLICY.__dict__, **change})

    decision = gate(registry, version, split, audit, market, policy)

    assert not decision.promote and decision.alert is None
    assert decision.reason.startswith("validation failed") and reason in decision.reason
    assert registry.version_for_alias(CHAMPION) is None
    assert only_decision(audit)["reason_code"] == "validation_failed"


def test_an_alert_goes_to_the_notifier_which_records_it_once(registry, split, audit, market):
    sent = []

    decision = gate(
        registry, "999", split, audit, market,  # never registered: cannot be loaded
        notify=lambda **alert: sent.append(alert),
    )

    assert not decision.promote and "could not be loaded" in decision.alert
    assert len(sent) == 1 and sent[0]["severity"] == "critical" and sent[0]["kind"] == "gate"
    assert sent[0]["text"] == decision.alert
    assert sent[0]["fields"]["gate event"] == decision.audit_event_id
    # The notifier (flows.alerts.AlertSender) audits what it sends; the gate adds no second copy.
    assert list(audit.records("alert")) == []
    assert only_decision(audit)["alert"] == decision.alert


def test_the_policy_refuses_a_primary_metric_it_cannot_compare():
    with pytest.raises(ValueError, match="cannot be compared"):
        GatePolicy(primary_metric="f1")
