"""Metric definitions on small hand-checked cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.events import EventJudge, events_from_answer_key
from ml.metrics import (
    Evaluation,
    best_f1_threshold,
    block_resamples,
    bootstrap_draws,
    evaluate,
    event_recall_threshold,
    metric_drops,
    missing_metrics,
    paired_bootstrap,
    pr_auc,
    roc_auc,
    scoring_latency,
    threshold_metrics,
    uncompared_metrics,
    weighted_average_precision,
)

T0 = 1_709_562_600_000  # 2024-03-04 14:30 UTC
# Eight trades of one symbol, a minute apart; e1 (t1, t2) and e2 (t4) are wash clusters, e3
# (t6) a price spike; e4 is outside the evaluated window and must not count.
TRADES = pd.DataFrame(
    {
        "trade_id": [f"t{i}" for i in range(8)],
        "symbol": "AAPL",
        "trade_ts_ms": [T0 + i * 60_000 for i in range(8)],
    }
)
ANSWER_KEY = pd.DataFrame(
    {
        "trade_id": ["t1", "t2", "t4", "t6", "t99"],
        "event_id": ["e1", "e1", "e2", "e3", "e4"],
        "kind": ["wash_cluster", "wash_cluster", "wash_cluster", "price_spike", "price_spike"],
        "symbol": "AAPL",
        "trade_ts_ms": [T0 + 60_000, T0 + 120_000, T0 + 240_000, T0 + 360_000, T0 + 9_000_000],
    }
)
EVENTS = events_from_answer_key(ANSWER_KEY)


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
    frame = TRADES.assign(is_anomaly=TRADES["trade_id"].isin(ANSWER_KEY["trade_id"]))
    scores = np.array([0.1, 0.7, 0.9, 0.2, 0.3, 0.6, 0.95, 0.05])

    def predict(f: pd.DataFrame) -> pd.DataFrame:
        s = scores[f.index.to_numpy()]
        return pd.DataFrame({"score": s, "flag": s >= 0.65})

    evaluation = evaluate(predict, frame, threshold=0.65, events=EVENTS, latency_batch_sizes=(1, 4))

    metrics = evaluation.as_metrics()
    # trade level: t1, t2, t6 flagged, all anomalous; t4 missed
    assert metrics["precision"] == 1.0 and metrics["recall"] == 0.75
    assert metrics["trade_precision"] == 1.0
    # event level: e1 (t1, t2: one alert, they are 60 s apart) and e3 found, e2 missed
    assert metrics["event_recall"] == pytest.approx(2 / 3)
    assert metrics["event_recall_wash_cluster"] == 0.5
    assert metrics["events_wash_cluster"] == 2
    assert (metrics["alerts"], metrics["false_alerts"], metrics["alert_precision"]) == (2, 0, 1.0)
    assert metrics["median_time_to_detect_s"] == 0.0
    # e3 (0.95), e1 (0.9) at precision 1; at 0.6 the normal t5 alone is a false alert (2/3),
    # but at 0.3, where e2's t4 is flagged, t5 falls into t4's alert (60 s later): 3 / 3
    assert metrics["event_average_precision"] == pytest.approx((1 + 1 + 1) / 3)
    assert metrics["event_recall_at_precision"] == 1.0
    assert {"pr_auc", "roc_auc", "f1", "latency_p50_ms", "latency_p99_ms"} <= set(metrics)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        evaluate(
            lambda f: pd.DataFrame({"score": np.full(len(f), 1.5), "flag": True}),
            frame,
            threshold=0.5,
        )


def test_without_events_the_labelled_runs_stand_for_events():
    frame = TRADES.assign(is_anomaly=TRADES["trade_id"].isin(ANSWER_KEY["trade_id"]))
    scores = np.array([0.1, 0.7, 0.9, 0.2, 0.3, 0.6, 0.95, 0.05])

    evaluation = evaluate(
        lambda f: pd.DataFrame({"score": scores, "flag": scores >= 0.65}),
        frame, threshold=0.65, latency_batch_sizes=(1,), alert_gap_seconds=90,
    )

    # labelled t1-t2 (60 s apart) are one run, t4 and t6 two more: the same three events
    assert (evaluation.events, evaluation.events_detected) == (3, 2)
    assert evaluation.event_recall_by_kind == {"unknown": pytest.approx(2 / 3)}


def test_metric_drops_respect_tolerances_and_the_direction_of_each_metric():
    champion = {"event_recall": 0.9, "alert_precision": 0.8, "false_alerts_per_day": 40.0}
    challenger = {"event_recall": 0.8, "alert_precision": 0.75, "false_alerts_per_day": 70.0}
    tolerances = {"event_recall": 0.05, "alert_precision": 0.1, "false_alerts_per_day": 20.0}

    drops = metric_drops(champion, challenger, tolerances)

    # fewer false alerts is better: a rise of 30 is the worsening
    assert drops == {"event_recall": pytest.approx(0.1), "false_alerts_per_day": pytest.approx(30)}


def test_a_metric_missing_on_either_side_is_named_and_not_a_drop():
    champion = {"event_recall": 0.9, "alert_precision": 0.8}
    challenger = {"event_recall": 0.9}

    assert missing_metrics(["event_recall", "alert_precision", "pr_auc"], champion, challenger) == {
        "alert_precision": "challenger",
        "pr_auc": "champion and challenger",
    }
    # Not a drop: the gate asks uncompared_metrics, and fails closed on a one-sided gap.
    assert metric_drops(champion, challenger, {"alert_precision": 0.1}) == {}


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
        scores=np.zeros(3),
    )
    metrics = evaluation.as_metrics()
    assert "roc_auc" not in metrics and "event_recall" not in metrics
    assert "event_average_precision" not in metrics and "scores" not in metrics


def _two_models(events_per_symbol: int = 40, seed: int = 0):
    """Eight symbols, a trade a minute for a day; every 12th trade starts a one-trade event.
    `good` ranks every event above every normal trade; `worse` drops a third of the events
    among the normal trades."""
    rng = np.random.default_rng(seed)
    rows = []
    for symbol in [f"S{i}" for i in range(8)]:
        for i in range(events_per_symbol * 12):
            rows.append((f"{symbol}-{i}", symbol, T0 + i * 60_000, i % 12 == 5))
    frame = pd.DataFrame(rows, columns=["trade_id", "symbol", "trade_ts_ms", "is_anomaly"])
    key = frame.loc[frame["is_anomaly"]].assign(
        event_id=lambda f: f["trade_id"], kind="price_spike"
    )
    y = frame["is_anomaly"].to_numpy()
    good = np.where(y, rng.uniform(0.6, 1.0, len(y)), rng.uniform(0.0, 0.7, len(y)))
    worse = good.copy()
    hidden = y & (rng.random(len(y)) < 1 / 3)
    worse[hidden] = rng.uniform(0.0, 0.3, hidden.sum())
    return frame, events_from_answer_key(key), good, worse


def test_paired_bootstrap_interval_brackets_the_difference_and_is_reproducible():
    frame, events, good, worse = _two_models()
    judge = EventJudge(frame, events, block_minutes=60)

    better = paired_bootstrap("event_average_precision", judge, frame, worse, good, seed=1)
    again = paired_bootstrap("event_average_precision", judge, frame, worse, good, seed=1)
    same = paired_bootstrap("event_average_precision", judge, frame, good, good, seed=1)

    assert better == again
    assert better.difference == pytest.approx(better.challenger - better.champion)
    assert better.low <= better.difference <= better.high
    assert better.low > 0.05  # a third of the events lost is far beyond the noise
    assert (same.difference, same.low, same.high) == (0.0, 0.0, 0.0)
    # 8 symbols x 8 hours of trades: 64 blocks to draw from
    assert better.blocks == 64 and better.resamples == 1000 and better.confidence == 0.9
    swapped = paired_bootstrap("event_average_precision", judge, frame, good, worse, seed=1)
    assert swapped.high < -0.05


def test_trade_level_bootstrap_is_weighted_average_precision():
    frame, events, good, worse = _two_models()
    judge = EventJudge(frame, events)
    y = frame["is_anomaly"].to_numpy()

    # all weights one: exactly scikit-learn's average precision
    ones = np.ones((1, judge.blocks))
    assert weighted_average_precision(y, worse, judge.trade_blocks(), ones)[0] == pytest.approx(
        pr_auc(y, worse), abs=1e-12
    )
    # a block drawn twice counts its trades twice: the same as duplicating those rows
    weights = np.zeros((1, judge.blocks))
    blocks = judge.trade_blocks()
    weights[0, blocks[0]] = 2
    weights[0, blocks[-1]] = 1
    chosen = np.isin(blocks, [blocks[0], blocks[-1]])
    repeat = np.where(blocks == blocks[0], 2, 1)[chosen]
    expected = pr_auc(np.repeat(y[chosen], repeat), np.repeat(worse[chosen], repeat))
    assert weighted_average_precision(y, worse, blocks, weights)[0] == pytest.approx(expected)
    draws = bootstrap_draws("pr_auc", judge, frame, worse, block_resamples(judge, 50))
    assert draws.shape == (50,) and ((draws >= 0) & (draws <= 1)).all()


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


def test_a_misspelt_metric_is_not_a_known_one():
    from ml.metrics import known_metric

    assert known_metric("event_recall") and known_metric("roc_auc")
    assert known_metric("event_recall_price_spike")  # a per-kind figure
    assert not known_metric("event_recal") and not known_metric("scores")
