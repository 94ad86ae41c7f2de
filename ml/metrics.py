"""How good a model is: ranking, thresholded, event-level and latency metrics.

Pure functions of labels, scores and flags (no I/O), plus `evaluate`, which scores one frame
with any predictor and gathers every metric the tournament logs and the gate compares, and
`paired_bootstrap`, which puts a confidence interval on the difference between two models on
the same window. Event-level definitions (alerts, matching, each event once) live in ml.events.
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

from ml.events import DEFAULT_ALERT_GAP_SECONDS, EventJudge, EventMetrics, events_from_labels

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
    s, y, ordered_events = s[order], y[order], events.to_numpy()[order]
    # (numpy's stubs take no None as the fill; an object array takes it)
    first_of_event = y & ~pd.Series(
        np.where(y, ordered_events, None)  # type: ignore[call-overload]
    ).duplicated().to_numpy()
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
    """Every metric of one model on one window. None marks a metric that is undefined there.

    Trade-level: pr_auc, roc_auc, and precision/recall/F1 of the flags at `threshold` against
    the trade labels (`trade_precision` is the same precision under the first release's name).
    Event-level (ml.events: alerts built from the flags, each event counted once): event
    recall at the threshold, event average precision, event recall at the required alert
    precision, alert precision, false alerts per day and median time to detect, with per-kind
    figures. `scores` keeps the window's scores for paired comparisons; it is not a metric.
    """

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
    event_average_precision: float | None = None
    event_recall_at_precision: float | None = None
    alerts: int = 0
    false_alerts: int = 0
    alert_precision: float | None = None
    false_alerts_per_day: float | None = None
    median_time_to_detect_s: float | None = None
    event_recall_by_kind: dict[str, float] = field(default_factory=dict)
    events_by_kind: dict[str, int] = field(default_factory=dict)
    event_average_precision_by_kind: dict[str, float] = field(default_factory=dict)
    median_time_to_detect_s_by_kind: dict[str, float] = field(default_factory=dict)
    trade_precision: float | None = None
    latency_p50_ms: float | None = None
    latency_p99_ms: float | None = None
    scores: np.ndarray | None = field(default=None, repr=False, compare=False)

    def as_metrics(self) -> dict[str, float]:
        """Flat numeric metrics (MLflow names); undefined ones are left out. A per-kind figure
        is `<name>_<kind>`: event_recall_price_spike, events_wash_cluster, ..."""
        out: dict[str, float] = {}
        for key in self.__dataclass_fields__:
            value = getattr(self, key)
            if key == "scores":
                continue
            if key in _BY_KIND:
                out.update({f"{_BY_KIND[key]}_{kind}": float(v) for kind, v in value.items()})
            elif value is not None and not (isinstance(value, float) and math.isnan(value)):
                out[key] = float(value)
        return out

    def get(self, name: str) -> float | None:
        """A metric by its MLflow name (per-kind figures included), or None."""
        return self.as_metrics().get(name)


_BY_KIND = {
    "event_recall_by_kind": "event_recall",
    "events_by_kind": "events",
    "event_average_precision_by_kind": "event_average_precision",
    "median_time_to_detect_s_by_kind": "median_time_to_detect_s",
}

#: Metrics where a lower value is better (a tolerance bounds their rise, not their drop).
LOWER_IS_BETTER: frozenset[str] = frozenset(
    {"false_alerts_per_day", "false_alerts", "median_time_to_detect_s", "latency_p50_ms",
     "latency_p99_ms"}
)


def event_fields(metrics: EventMetrics) -> dict[str, Any]:
    """Evaluation's event-level fields from ml.events figures."""
    return {
        "event_recall": metrics.recall,
        "events": metrics.events,
        "events_detected": metrics.detected,
        "event_average_precision": metrics.average_precision,
        "event_recall_at_precision": metrics.recall_at_precision,
        "alerts": metrics.alerts,
        "false_alerts": metrics.false_alerts,
        "alert_precision": metrics.alert_precision,
        "false_alerts_per_day": metrics.false_alerts_per_day,
        "median_time_to_detect_s": metrics.median_time_to_detect_s,
        "event_recall_by_kind": {k: m.recall for k, m in metrics.by_kind.items()},
        "events_by_kind": {k: m.events for k, m in metrics.by_kind.items()},
        "event_average_precision_by_kind": {
            k: m.average_precision for k, m in metrics.by_kind.items()
        },
        "median_time_to_detect_s_by_kind": {
            k: m.median_time_to_detect_s
            for k, m in metrics.by_kind.items()
            if m.median_time_to_detect_s is not None
        },
    }


def evaluate(
    predict: Callable[[pd.DataFrame], pd.DataFrame],
    frame: pd.DataFrame,
    *,
    threshold: float,
    label_column: str = "is_anomaly",
    events: pd.DataFrame | None = None,
    judge: EventJudge | None = None,
    alert_gap_seconds: float = DEFAULT_ALERT_GAP_SECONDS,
    required_alert_precision: float = 0.6,
    latency_batch_sizes: Sequence[int] = DEFAULT_LATENCY_BATCH_SIZES,
    latency_repeats: int = DEFAULT_LATENCY_REPEATS,
) -> Evaluation:
    """Score `frame` with `predict` (→ columns score, flag) and compute every metric.

    Event-level figures are judged against `events` (ml.events frame: the answer key, later
    analyst-confirmed events); without them, against runs of the frame's labelled trades. Pass
    a `judge` built on this frame to share one between models.
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
    if judge is None:
        judge = event_judge(frame, events, alert_gap_seconds=alert_gap_seconds,
                            label_column=label_column)
    judged = judge.metrics(scores, flags, required_alert_precision=required_alert_precision)
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
        trade_precision=at_threshold.precision,
        latency_p50_ms=latency.p50_ms,
        latency_p99_ms=latency.p99_ms,
        scores=scores,
        **event_fields(judged),
    )


def event_judge(
    frame: pd.DataFrame,
    events: pd.DataFrame | None,
    *,
    alert_gap_seconds: float = DEFAULT_ALERT_GAP_SECONDS,
    block_minutes: float = 60.0,
    label_column: str = "is_anomaly",
) -> EventJudge:
    """The judge of one window: against `events`, or runs of its labelled trades without them."""
    if events is None:
        events = events_from_labels(frame, gap_seconds=alert_gap_seconds, label_column=label_column)
    return EventJudge(frame, events, gap_seconds=alert_gap_seconds, block_minutes=block_minutes)


# --------------------------------------------------------------------------- comparison


#: Metrics a paired bootstrap can compare (the gate's primary metric is one of them).
COMPARABLE_METRICS: tuple[str, ...] = (
    "event_average_precision",
    "event_recall_at_precision",
    "pr_auc",
)


@dataclass(frozen=True)
class Difference:
    """challenger − champion on one metric, with a paired bootstrap confidence interval."""

    metric: str
    champion: float
    challenger: float
    difference: float
    low: float
    high: float
    confidence: float
    resamples: int
    blocks: int
    block_minutes: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def block_resamples(judge: EventJudge, resamples: int, *, seed: int = 0) -> np.ndarray:
    """Bootstrap weights [resamples, blocks]: how often each block of the judge's window is
    drawn when the blocks that hold trades are drawn with replacement."""
    active = np.unique(judge.trade_blocks())
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(len(active), np.full(len(active), 1 / len(active)), size=resamples)
    weights = np.zeros((resamples, judge.blocks))
    weights[:, active] = counts
    return weights


def bootstrap_draws(
    metric: str,
    judge: EventJudge,
    frame: pd.DataFrame,
    scores: np.ndarray,
    block_weights: np.ndarray,
    *,
    required_alert_precision: float = 0.6,
    label_column: str = "is_anomaly",
) -> np.ndarray:
    """`metric` of one model's `scores` under each resample of `block_weights`."""
    if metric not in COMPARABLE_METRICS:
        raise ValueError(f"cannot compare {metric!r}: choose from {', '.join(COMPARABLE_METRICS)}")
    scores = np.asarray(scores, dtype=float)
    if metric == "pr_auc":
        y = frame[label_column].to_numpy(dtype=bool)
        return weighted_average_precision(y, scores, judge.trade_blocks(), block_weights)
    curve = judge.curve(scores)
    event_weights = block_weights[:, curve.event_block]
    if metric == "event_average_precision":
        return np.asarray(curve.average_precision(event_weights, block_weights))
    return np.asarray(
        curve.recall_at_precision(required_alert_precision, event_weights, block_weights)
    )


def point_value(
    metric: str,
    judge: EventJudge,
    frame: pd.DataFrame,
    scores: np.ndarray,
    *,
    required_alert_precision: float = 0.6,
    label_column: str = "is_anomaly",
) -> float:
    """`metric` of one model's `scores` on the whole window."""
    if metric == "pr_auc":
        return pr_auc(frame[label_column].to_numpy(dtype=bool), scores)
    curve = judge.curve(np.asarray(scores, dtype=float))
    if metric == "event_average_precision":
        return float(curve.average_precision())
    if metric == "event_recall_at_precision":
        return float(curve.recall_at_precision(required_alert_precision))
    raise ValueError(f"cannot compare {metric!r}: choose from {', '.join(COMPARABLE_METRICS)}")


def paired_bootstrap(
    metric: str,
    judge: EventJudge,
    frame: pd.DataFrame,
    champion_scores: np.ndarray,
    challenger_scores: np.ndarray,
    *,
    required_alert_precision: float = 0.6,
    resamples: int = 1000,
    confidence: float = 0.9,
    seed: int = 0,
    label_column: str = "is_anomaly",
) -> Difference:
    """The difference challenger − champion on `metric` and its percentile interval.

    Resampling is paired and by blocks: the window is cut into (symbol, block-length) blocks
    (`judge.block_ms`); each resample draws the blocks that hold trades with replacement, and
    both models are measured on the same draw. An event belongs to the block of its start, a
    false alert to the block of its first flag, a trade to its own: an event, the false alerts
    around it and the trades near it move together, as they do from one day to the next.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence {confidence} must be within (0, 1)")
    weights = block_resamples(judge, resamples, seed=seed)
    options: dict[str, Any] = {
        "required_alert_precision": required_alert_precision, "label_column": label_column,
    }
    values, draws = [], []
    for scores in (champion_scores, challenger_scores):
        values.append(point_value(metric, judge, frame, scores, **options))
        draws.append(bootstrap_draws(metric, judge, frame, scores, weights, **options))
    tail = (1 - confidence) / 2
    low, high = np.quantile(draws[1] - draws[0], [tail, 1 - tail])
    return Difference(
        metric=metric,
        champion=values[0],
        challenger=values[1],
        difference=values[1] - values[0],
        low=float(low),
        high=float(high),
        confidence=confidence,
        resamples=resamples,
        blocks=len(np.unique(judge.trade_blocks())),
        block_minutes=judge.block_ms / 60_000,
    )


def weighted_average_precision(
    y_true: np.ndarray,
    scores: np.ndarray,
    row_blocks: np.ndarray,
    block_weights: np.ndarray,
) -> np.ndarray:
    """Trade-level average precision under each row of block weights [resamples, blocks]
    (a row weighs what its block weighs): one value per resample, scikit-learn's formula.

    Recall only steps at the scores of anomalous trades, so precision is needed there only:
    per block, the trades and the anomalous trades at or above each such score are counted
    once, and every resample is then a matrix product instead of a pass over the trades.
    """
    y = np.asarray(y_true, dtype=bool)
    s = np.asarray(scores, dtype="float64")
    steps = np.unique(s[y])  # ascending
    if len(steps) == 0:
        return np.zeros(len(block_weights))
    # the first step (in descending order) each trade reaches: rows below every step reach none
    reached = np.searchsorted(steps, s, side="right")
    counted = reached > 0
    first = len(steps) - reached[counted]
    blocks = np.asarray(row_blocks)[counted]
    size = (block_weights.shape[1], len(steps))
    at_or_above = np.zeros(size)
    np.add.at(at_or_above, (blocks, first), 1.0)
    positive_at_or_above = np.zeros(size)
    np.add.at(positive_at_or_above, (blocks[y[counted]], first[y[counted]]), 1.0)
    flagged = block_weights @ np.cumsum(at_or_above, axis=1)
    true_positives = block_weights @ np.cumsum(positive_at_or_above, axis=1)
    total = true_positives[:, -1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = np.where(total > 0, true_positives / total, 0.0)
        precision = np.where(flagged > 0, true_positives / flagged, 0.0)
    return np.sum(np.diff(recall, axis=1, prepend=0.0) * precision, axis=1)


def missing_metrics(
    names: Sequence[str], champion: Mapping[str, float], challenger: Mapping[str, float]
) -> dict[str, str]:
    """Metric name → which side lacks it, for every name either side cannot give."""
    out: dict[str, str] = {}
    for name in names:
        sides = [side for side, metrics in (("champion", champion), ("challenger", challenger))
                 if name not in metrics]
        if sides:
            out[name] = " and ".join(sides)
    return out


def metric_drops(
    champion: Mapping[str, float], challenger: Mapping[str, float], tolerances: Mapping[str, float]
) -> dict[str, float]:
    """Secondary metrics that worsened beyond their tolerance → how much they worsened.

    Worse is a drop, or a rise for LOWER_IS_BETTER metrics (false alerts, time to detect,
    latency). A metric missing on either side cannot be compared and is not reported as a
    drop: the gate asks `uncompared_metrics` about those, and refuses to promote on a one-sided
    gap.
    """
    drops: dict[str, float] = {}
    for name, tolerance in tolerances.items():
        if name not in champion or name not in challenger:
            continue
        worse = champion[name] - challenger[name]
        if name in LOWER_IS_BETTER:
            worse = -worse
        if worse > tolerance + 1e-12:
            drops[name] = worse
    return drops


def known_metric(name: str) -> bool:
    """Whether `name` is a metric an Evaluation can give (per-kind figures included): a
    tolerance on anything else is a misspelling the gate must not wave through."""
    fields = set(Evaluation.__dataclass_fields__) - {"scores", *_BY_KIND}
    return name in fields or any(name.startswith(f"{prefix}_") for prefix in _BY_KIND.values())


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

