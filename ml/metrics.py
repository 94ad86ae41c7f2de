"""How good a model is: ranking, thresholded, event-level and latency metrics.

Pure functions of labels, scores and flags (no I/O), plus `evaluate`, which scores one frame
with any predictor and gathers every metric the tournament logs and the gate compares.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

# Per-row latency is sampled over the batch sizes a scoring run meets: a lone late trade, a
# few seconds of one symbol, and a minute of the whole feed.
DEFAULT_LATENCY_BATCH_SIZES: tuple[int, ...] = (1, 100, 1000)
DEFAULT_LATENCY_REPEATS = 30  # 90 samples: one scheduler stall does not make the p99


def pr_auc(y_true: Sequence[bool] | np.ndarray, scores: Sequence[float] | np.ndarray) -> float:
    """Average precision (area under the precision-recall curve); 0 when there is no positive."""
    y = np.asarray(y_true, dtype=bool)
    if not y.any():
        return 0.0
    return float(average_precision_score(y, np.asarray(scores, dtype=float)))


def roc_auc(
    y_true: Sequence[bool] | np.ndarray, scores: Sequence[float] | np.ndarray
) -> float | None:
    """ROC-AUC, or None when only one class is present (it is undefined then)."""
    y = np.asarray(y_true, dtype=bool)
    if y.all() or not y.any():
        return None
    return float(roc_auc_score(y, np.asarray(scores, dtype=float)))


@dataclass(frozen=True)
class ThresholdMetrics:
    """Precision, recall and F1 of the flags at one threshold."""

    precision: float
    recall: float
    f1: float
    flagged: int


def threshold_metrics(
    y_true: Sequence[bool] | np.ndarray, flags: Sequence[bool] | np.ndarray
) -> ThresholdMetrics:
    """Precision/recall/F1 of boolean flags against labels (0 where undefined)."""
    y = np.asarray(y_true, dtype=bool)
    f = np.asarray(flags, dtype=bool)
    true_positives = int((y & f).sum())
    flagged = int(f.sum())
    precision = true_positives / flagged if flagged else 0.0
    recall = true_positives / int(y.sum()) if y.any() else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return ThresholdMetrics(precision, recall, f1, flagged)


def best_f1_threshold(
    y_true: Sequence[bool] | np.ndarray,
    scores: Sequence[float] | np.ndarray,
    *,
    default: float = 0.5,
) -> float:
    """The score threshold with the highest F1 (`score >= threshold` flags a trade).

    Among equal F1 the highest threshold wins (fewer alerts for the same quality). Without a
    positive label there is nothing to choose from and `default` is returned.
    """
    y = np.asarray(y_true, dtype=bool)
    s = np.asarray(scores, dtype=float)
    if not y.any() or y.all():
        return default
    precision, recall, thresholds = precision_recall_curve(y, s)
    # The last precision/recall pair has no threshold (recall 0 by convention).
    precision, recall = precision[:-1], recall[:-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    best = np.flatnonzero(f1 == f1.max())
    return float(thresholds[best[-1]])


def event_recall_threshold(
    y_true: Sequence[bool] | np.ndarray,
    scores: Sequence[float] | np.ndarray,
    event_ids: Sequence[object] | np.ndarray,
    *,
    min_precision: float,
) -> float | None:
    """The score threshold that finds the most anomaly events at a guaranteed precision.

    Precision here is alert precision: every event counts once however many of its trades
    reach the threshold (an anomalous trade without an event id is an event of its own), so
    `detected events / (detected events + flagged normal trades)`. It is never above trade
    precision, and one long event (a pump-and-dump labels hundreds of trades) cannot make a
    loose threshold look precise on the window where it happens to fall. Among the thresholds
    whose alert precision is at least `min_precision`, the one that detects the most events
    wins, the highest of equals. None when no threshold reaches `min_precision` (or there is no
    anomalous row).
    """
    y = np.asarray(y_true, dtype=bool)
    s = np.asarray(scores, dtype=float)
    if not y.any():
        return None
    events = pd.Series(np.asarray(event_ids, dtype=object))
    # an anomalous trade that no event claims stands for itself
    events = events.where(events.notna() | ~y, pd.Series(np.arange(len(y))).map("trade-{}".format))
    order = np.argsort(-s, kind="stable")
    s, y, events = s[order], y[order], events.to_numpy()[order]
    first_of_event = y & ~pd.Series(np.where(y, events, None)).duplicated().to_numpy()
    detected = np.cumsum(first_of_event)
    false_flags = np.cumsum(~y)
    # a threshold flags every row with the same score: look only at the last row of each score
    last_of_score = np.r_[s[1:] != s[:-1], True]
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(detected > 0, detected / (detected + false_flags), 0.0)
    eligible = last_of_score & (detected > 0) & (precision >= min_precision - 1e-12)
    if not eligible.any():
        return None
    candidates = np.flatnonzero(eligible)
    best = candidates[np.argmax(detected[candidates])]  # first = highest threshold of the most
    return float(s[best])


@dataclass(frozen=True)
class EventRecall:
    """Share of ground-truth events with at least one flagged trade, overall and per kind."""

    recall: float | None
    events: int
    detected: int
    by_kind: dict[str, float] = field(default_factory=dict)
    events_by_kind: dict[str, int] = field(default_factory=dict)


def event_recall(
    evaluated: pd.DataFrame, flags: Sequence[bool] | np.ndarray, events: pd.DataFrame
) -> EventRecall:
    """Event recall over the events that have at least one trade in `evaluated`.

    `events` maps trade_id → event_id, kind (the simulator's ground truth). An event counts as
    detected when any of its trades in `evaluated` is flagged.
    """
    flagged = pd.DataFrame(
        {"trade_id": evaluated["trade_id"].to_numpy(), "flag": np.asarray(flags, dtype=bool)}
    )
    joined = events.merge(flagged, on="trade_id", how="inner")
    if joined.empty:
        return EventRecall(None, 0, 0)
    per_event = joined.groupby(["event_id", "kind"], as_index=False)["flag"].any()
    by_kind = per_event.groupby("kind")["flag"].agg(["mean", "size"])
    return EventRecall(
        recall=float(per_event["flag"].mean()),
        events=len(per_event),
        detected=int(per_event["flag"].sum()),
        by_kind={str(k): float(v) for k, v in by_kind["mean"].items()},
        events_by_kind={str(k): int(v) for k, v in by_kind["size"].items()},
    )


def trade_precision(
    evaluated: pd.DataFrame,
    flags: Sequence[bool] | np.ndarray,
    anomalous_trade_ids: Sequence[str] | set[str],
) -> float:
    """Share of flagged trades that are ground-truth anomalous (0 when nothing is flagged)."""
    f = np.asarray(flags, dtype=bool)
    if not f.any():
        return 0.0
    truth = set(anomalous_trade_ids)
    flagged_ids = evaluated["trade_id"].to_numpy()[f]
    return float(np.mean([trade_id in truth for trade_id in flagged_ids]))


@dataclass(frozen=True)
class Latency:
    """Per-row scoring latency in milliseconds, p50 and p99 over sampled batches."""

    p50_ms: float
    p99_ms: float
    samples: int


def scoring_latency(
    predict: Callable[[pd.DataFrame], Any],
    frame: pd.DataFrame,
    *,
    batch_sizes: Sequence[int] = DEFAULT_LATENCY_BATCH_SIZES,
    repeats: int = DEFAULT_LATENCY_REPEATS,
    seed: int = 0,
) -> Latency:
    """Time `predict` on random contiguous batches of `frame`; per-row = batch time / rows."""
    if frame.empty:
        raise ValueError("cannot measure scoring latency on an empty frame")
    rng = np.random.default_rng(seed)
    predict(frame.iloc[: min(len(frame), 10)])  # first call pays one-off set-up costs
    per_row_ms: list[float] = []
    for size in batch_sizes:
        size = min(size, len(frame))
        for _ in range(repeats):
            start = int(rng.integers(0, len(frame) - size + 1))
            batch = frame.iloc[start : start + size]
            began = time.perf_counter()
            predict(batch)
            per_row_ms.append((time.perf_counter() - began) * 1000 / size)
    samples = np.asarray(per_row_ms)
    return Latency(
        float(np.percentile(samples, 50)), float(np.percentile(samples, 99)), len(samples)
    )


@dataclass(frozen=True)
class Evaluation:
    """Every metric of one model on one window. None marks a metric that is undefined there."""

    rows: int
    positives: int
    threshold: float
    pr_auc: float
    roc_auc: float | None
    precision: float
    recall: float
    f1: float
    flagged: int
    event_recall: float | None = None
    events: int = 0
    events_detected: int = 0
    event_recall_by_kind: dict[str, float] = field(default_factory=dict)
    events_by_kind: dict[str, int] = field(default_factory=dict)
    trade_precision: float | None = None
    latency_p50_ms: float | None = None
    latency_p99_ms: float | None = None

    def as_metrics(self) -> dict[str, float]:
        """Flat numeric metrics (MLflow names); undefined ones are left out."""
        out: dict[str, float] = {}
        for key, value in asdict(self).items():
            if key == "event_recall_by_kind":
                out.update({f"event_recall_{kind}": float(v) for kind, v in value.items()})
            elif key == "events_by_kind":
                out.update({f"events_{kind}": float(v) for kind, v in value.items()})
            elif value is not None and not (isinstance(value, float) and math.isnan(value)):
                out[key] = float(value)
        return out

    def get(self, name: str) -> float | None:
        """A metric by its MLflow name (per-kind event recall included), or None."""
        return self.as_metrics().get(name)


def evaluate(
    predict: Callable[[pd.DataFrame], pd.DataFrame],
    frame: pd.DataFrame,
    *,
    threshold: float,
    label_column: str = "is_anomaly",
    events: pd.DataFrame | None = None,
    latency_batch_sizes: Sequence[int] = DEFAULT_LATENCY_BATCH_SIZES,
    latency_repeats: int = DEFAULT_LATENCY_REPEATS,
) -> Evaluation:
    """Score `frame` with `predict` (→ columns score, flag) and compute every metric.

    With `events` (trade_id, event_id, kind) event recall and trade precision against the
    ground-truth trade ids are computed too.
    """
    predictions = predict(frame)
    scores = np.asarray(predictions["score"], dtype=float)
    flags = np.asarray(predictions["flag"], dtype=bool)
    if len(scores) != len(frame):
        raise ValueError(f"predict returned {len(scores)} rows for {len(frame)} inputs")
    if np.isnan(scores).any() or (scores < 0).any() or (scores > 1).any():
        raise ValueError("scores must be finite and within [0, 1]")
    y = frame[label_column].to_numpy(dtype=bool)
    at_threshold = threshold_metrics(y, flags)
    extra: dict[str, Any] = {}
    if events is not None:
        recall = event_recall(frame, flags, events)
        extra.update(
            event_recall=recall.recall,
            events=recall.events,
            events_detected=recall.detected,
            event_recall_by_kind=recall.by_kind,
            events_by_kind=recall.events_by_kind,
            trade_precision=trade_precision(frame, flags, set(events["trade_id"])),
        )
    latency = scoring_latency(
        predict, frame, batch_sizes=latency_batch_sizes, repeats=latency_repeats
    )
    return Evaluation(
        rows=len(frame),
        positives=int(y.sum()),
        threshold=float(threshold),
        pr_auc=pr_auc(y, scores),
        roc_auc=roc_auc(y, scores),
        precision=at_threshold.precision,
        recall=at_threshold.recall,
        f1=at_threshold.f1,
        flagged=at_threshold.flagged,
        latency_p50_ms=latency.p50_ms,
        latency_p99_ms=latency.p99_ms,
        **extra,
    )


def metric_drops(
    champion: Mapping[str, float], challenger: Mapping[str, float], tolerances: Mapping[str, float]
) -> dict[str, float]:
    """Secondary metrics whose drop (champion − challenger) exceeds its tolerance → the drop.

    A metric missing on either side cannot be compared and is not reported as a drop: the
    gate asks `uncompared_metrics` about those, and refuses to promote on a one-sided gap.
    """
    drops: dict[str, float] = {}
    for name, tolerance in tolerances.items():
        if name not in champion or name not in challenger:
            continue
        drop = champion[name] - challenger[name]
        if drop > tolerance + 1e-12:
            drops[name] = drop
    return drops


def uncompared_metrics(
    champion: Mapping[str, float], challenger: Mapping[str, float], tolerances: Mapping[str, float]
) -> dict[str, str]:
    """Toleranced metrics that cannot be compared → which side lacks them.

    "champion" or "challenger" when only that side lacks the metric (something differs
    between the two evaluations: the gate fails closed), "both" when it is undefined for both
    on this window (no ground-truth events for event recall, one class for ROC-AUC).
    """
    missing: dict[str, str] = {}
    for name in tolerances:
        lacks = [side for side, metrics in (("champion", champion), ("challenger", challenger))
                 if name not in metrics]
        if lacks:
            missing[name] = lacks[0] if len(lacks) == 1 else "both"
    return missing

