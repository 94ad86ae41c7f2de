"""Metric definitions on small hand-checked cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.metrics import (
    Evaluation,
    best_f1_threshold,
    evaluate,
    event_recall,
    event_recall_threshold,
    metric_drops,
    pr_auc,
    roc_auc,
    scoring_latency,
    threshold_metrics,
    trade_precision,
    uncompared_metrics,
)

TRADES = pd.DataFrame({"trade_id": [f"t{i}" for i in range(8)]})
EVENTS = pd.DataFrame(
    {
        # e1 (2 trades) and e2 (1 trade) are wash clusters, e3 a price spike; e4 has no trade in
        # the evaluated window and must not count.
        "trade_id": ["t1", "t2", "t4", "t6", "t99"],
        "event_id": ["e1", "e1", "e2", "e3", "e4"],
        "kind": ["wash_cluster", "wash_cluster", "wash_cluster", "price_spike", "price_spike"],
    }
)


def test_event_recall_counts_events_with_one_flagged_trade_overall_and_per_kind():
    flags = np.array([False, False, True, False, False, True, True, False])  # t2, t5, t6

    result = event_recall(TRADES, flags, EVENTS)

    assert result.events == 3
    assert result.detected == 2  # e1 through t2, e3 through t6; e2 missed
    assert result.recall == pytest.approx(2 / 3)
    assert result.by_kind == {"price_spike": 1.0, "wash_cluster": 0.5}
    assert result.events_by_kind == {"price_spike": 1, "wash_cluster": 2}


def test_trade_precision_is_against_ground_truth_trade_ids():
    flags = np.array([False, False, True, False, False, True, True, False])

    assert trade_precision(TRADES, flags, set(EVENTS["trade_id"])) == pytest.approx(2 / 3)
    assert trade_precision(TRADES, np.zeros(8, dtype=bool), set(EVENTS["trade_id"])) == 0.0


def test_threshold_metrics_and_best_f1_threshold():
    y = np.array([0, 0, 1, 1, 0, 1], dtype=bool)
    scores = np.array([0.1, 0.4, 0.35, 0.8, 0.2, 0.9])

    assert best_f1_threshold(y, scores) == pytest.approx(0.35)  # flags 4 rows, 3 true: F1 6/7
    at = threshold_metrics(y, scores >= 0.35)
    assert (at.precision, at.recall, at.flagged) == (0.75, 1.0, 4)
    assert at.f1 == pytest.approx(6 / 7)
    assert best_f1_threshold(np.zeros(6, dtype=bool), scores, default=0.5) == 0.5


def test_ranking_metrics_and_their_undefined_cases():
    y = np.array([0, 0, 1, 1], dtype=bool)
    assert pr_auc(y, [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert roc_auc(y, [0.9, 0.8, 0.1, 0.2]) == 0.0
    assert roc_auc(np.zeros(4, dtype=bool), [0.1, 0.2, 0.3, 0.4]) is None
    assert pr_auc(np.zeros(4, dtype=bool), [0.1, 0.2, 0.3, 0.4]) == 0.0


def test_latency_is_per_row_and_p99_not_below_p50():
    frame = pd.DataFrame({"x": np.arange(500.0)})
    latency = scoring_latency(lambda f: f["x"] * 2, frame, batch_sizes=(1, 100), repeats=5)
    assert latency.samples == 10
    assert 0 < latency.p50_ms <= latency.p99_ms


def test_evaluate_gathers_every_metric_and_rejects_scores_outside_unit_interval():
    frame = TRADES.assign(is_anomaly=TRADES["trade_id"].isin(EVENTS["trade_id"]))
    scores = np.array([0.1, 0.7, 0.9, 0.2, 0.3, 0.6, 0.95, 0.05])

    def predict(f: pd.DataFrame) -> pd.DataFrame:
        s = scores[f.index.to_numpy()]
        return pd.DataFrame({"score": s, "flag": s >= 0.65})

    evaluation = evaluate(predict, frame, threshold=0.65, events=EVENTS, latency_batch_sizes=(1, 4))

    metrics = evaluation.as_metrics()
    assert metrics["precision"] == 1.0 and metrics["recall"] == 0.75
    assert metrics["event_recall"] == pytest.approx(2 / 3)
    assert metrics["event_recall_wash_cluster"] == 0.5
    assert metrics["trade_precision"] == 1.0
    assert {"pr_auc", "roc_auc", "f1", "latency_p50_ms", "latency_p99_ms"} <= set(metrics)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        evaluate(
            lambda f: pd.DataFrame({"score": np.full(len(f), 1.5), "flag": True}),
            frame,
            threshold=0.5,
        )


def test_metric_drops_respect_tolerances():
    champion = {"roc_auc": 0.90, "recall": 0.80, "event_recall": 0.9}
    challenger = {"roc_auc": 0.89, "recall": 0.70, "event_recall": 0.9}
    drops = metric_drops(
        champion, challenger, {"roc_auc": 0.02, "recall": 0.05, "event_recall": 0.05}
    )
    assert drops == {"recall": pytest.approx(0.10)}


def test_a_toleranced_metric_missing_on_one_side_is_named_with_that_side():
    # A metric one side lacks is no drop for metric_drops: the gate must see it to fail closed.
    champion = {"roc_auc": 0.90, "recall": 0.80}
    challenger = {"roc_auc": 0.89, "event_recall": 0.9}
    tolerances = {"roc_auc": 0.02, "recall": 0.05, "event_recall": 0.05, "trade_precision": 0.1}

    assert metric_drops(champion, challenger, tolerances) == {}
    assert uncompared_metrics(champion, challenger, tolerances) == {
        "recall": "challenger",
        "event_recall": "champion",
        "trade_precision": "both",
    }


def test_undefined_metrics_are_left_out_of_mlflow_metrics():
    evaluation = Evaluation(
        rows=3,
        positives=0,
        threshold=0.5,
        pr_auc=0.0,
        roc_auc=None,
        precision=0.0,
        recall=0.0,
        f1=0.0,
        flagged=0,
    )
    assert "roc_auc" not in evaluation.as_metrics()
    assert "event_recall" not in evaluation.as_metrics()


def test_event_recall_threshold_counts_each_event_once():
    # Best first: a five-trade event, then a false flag, a lone spike, two false flags, a
    # second lone spike. By trade precision 0.6 could go down to 0.3 (7 of 10); by alert
    # precision the five trades are one alert: 2 events / 3 flags at 0.6 passes 0.6, while
    # 3 events / 6 flags at 0.3 does not.
    scores = np.array([0.95, 0.94, 0.93, 0.92, 0.91, 0.8, 0.6, 0.5, 0.4, 0.3])
    y = np.array([1, 1, 1, 1, 1, 0, 1, 0, 0, 1], dtype=bool)
    events = np.array(["pump", "pump", "pump", "pump", "pump", None, "s1", None, None, "s2"])

    assert event_recall_threshold(y, scores, events, min_precision=0.6) == pytest.approx(0.6)
    assert event_recall_threshold(y, scores, events, min_precision=0.5) == pytest.approx(0.3)
    # the highest threshold among equals: 0.95 already detects the only event 0.9 allows
    assert event_recall_threshold(y, scores, events, min_precision=0.9) == pytest.approx(0.95)
    # without event ids each anomalous trade is its own event: 7 / 10 reaches 0.6 at 0.3
    no_events = np.full(10, None, dtype=object)
    assert event_recall_threshold(y, scores, no_events, min_precision=0.6) == pytest.approx(0.3)


def test_event_recall_threshold_is_none_when_the_precision_cannot_be_reached():
    y = np.array([0, 1, 0, 1], dtype=bool)
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    events = np.array([None, "a", None, "b"], dtype=object)

    assert event_recall_threshold(y, scores, events, min_precision=0.75) is None
    no_anomaly = np.zeros(4, dtype=bool)
    assert event_recall_threshold(no_anomaly, scores, events, min_precision=0.5) is None
    # equal scores are flagged together: the false flag at 0.8 comes with the event
    tied = np.array([0.8, 0.8, 0.1, 0.1])
    assert event_recall_threshold(y, tied, events, min_precision=0.75) is None
