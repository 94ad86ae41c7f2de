"""The drift check: every feature of a current window compared with a reference window.

`compute_drift` takes the two windows' rows (e.g. of gold_trade_features), the features to
compare and a `DriftOptions` (bins and thresholds), and optionally the model's scores and
trusted labels on both windows (`ModelScores`). It returns a `DriftReport`: one `FeatureDrift`
verdict per numeric feature (PSI), per categorical feature (Jensen-Shannon distance), for the
scores (prediction drift, PSI) and for performance (the PR-AUC drop), and a picture of each
drifted feature's distributions for the HTML report.

The statistics are in ml.drift_statistics, the windows in ml.drift_windows, the drift file in
ml.drift_records and the HTML page in ml.drift_report.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
import pandas as pd

from ml.drift_statistics import (
    DEFAULT_BINS,
    NumericBinning,
    categorical_counts,
    feature_major,
    jensen_shannon_distance,
    numeric_binning,
    performance_drop,
    row_quantiles,
)
from ml.drift_windows import DriftInputError, TimeWindow

DEFAULT_PSI_THRESHOLD = 0.2
DEFAULT_JS_THRESHOLD = 0.1
DEFAULT_PERFORMANCE_DROP = 0.05
PREDICTION_FEATURE = "score"
PERFORMANCE_FEATURE = "pr_auc"

# Bars in the report's histograms; categories beyond this many are summed as "(other)".
_DISPLAY_BINS = 30
_DISPLAY_CATEGORIES = 15
# The display range for a drifted numeric feature is the central 99 % of both windows, taken
# from at most this many evenly spaced rows of each window (display only, not the PSI).
_DISPLAY_SAMPLE = 200_000
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")

FeatureKind = Literal["numeric", "categorical", "prediction", "performance"]
StatisticName = Literal["psi", "js_distance", "pr_auc_drop"]


@dataclass(frozen=True)
class DriftOptions:
    """How a drift check bins and judges: built once from the settings (`drift.*`,
    `retraining.performance_drop`), the same for every feature of a kind."""

    bins: int = DEFAULT_BINS
    """Quantile bins of the reference window for PSI (outer bins open to +-inf); at least 2."""
    psi_threshold: float = DEFAULT_PSI_THRESHOLD
    """A numeric feature drifted when its PSI is above this."""
    js_threshold: float = DEFAULT_JS_THRESHOLD
    """A categorical feature drifted when its Jensen-Shannon distance (base 2, 0..1) is above."""
    prediction_psi_threshold: float | None = None
    """The scores drifted when their PSI is above this; None: `psi_threshold`."""
    performance_drop: float = DEFAULT_PERFORMANCE_DROP
    """Performance drifted when PR-AUC fell by more than this from reference to current."""
    workers: int = 1
    """Threads for the numeric features (numpy releases the GIL in their heavy parts)."""

    def __post_init__(self) -> None:
        if self.bins < 2:
            raise DriftInputError(f"bins must be at least 2, got {self.bins}")
        if self.workers < 1:
            raise DriftInputError(f"workers must be at least 1, got {self.workers}")
        for name in ("psi_threshold", "js_threshold", "prediction_psi_threshold",
                     "performance_drop"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise DriftInputError(f"{name} must be positive, got {value}")

    @property
    def prediction_threshold(self) -> float:
        """The PSI threshold for the scores."""
        return (
            self.psi_threshold
            if self.prediction_psi_threshold is None
            else self.prediction_psi_threshold
        )


@dataclass(frozen=True)
class ModelScores:
    """The model's scores on both windows (prediction drift) and, where known, labels
    (performance drift): aligned with the windows' rows, None where a row has no label."""

    reference: Any
    """Scores of the reference rows (1-D)."""
    current: Any
    """Scores of the current rows (1-D)."""
    current_labels: Any = None
    """Labels of the current rows; None: performance drift is not checked."""
    reference_labels: Any = None
    """Labels of the reference rows, for the reference PR-AUC."""
    reference_pr_auc: float | None = None
    """The reference PR-AUC when known (e.g. the model's test figure), instead of labels."""


@dataclass(frozen=True)
class DriftHistogram:
    """What the report plots for one drifted feature: shares of all rows per bar.

    Numeric: `edges` has one more entry than the share tuples (values outside the first and
    last edge are counted in the end bars and `clipped` says so). Categorical: `categories`
    names each bar.
    """

    reference_share: tuple[float, ...]
    current_share: tuple[float, ...]
    edges: tuple[float, ...] | None = None
    categories: tuple[str, ...] | None = None
    clipped: bool = False
    reference_missing_share: float = 0.0
    current_missing_share: float = 0.0


@dataclass(frozen=True)
class FeatureDrift:
    """The drift verdict for one feature (or for the scores, or for model performance)."""

    feature: str
    kind: FeatureKind
    statistic_name: StatisticName
    statistic: float
    threshold: float
    drifted: bool
    reference_rows: int
    current_rows: int
    note: str | None = None
    histogram: DriftHistogram | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class DriftReport:
    """One drift check: every feature's verdict over one reference and one current window."""

    run_id: str
    run_ts: datetime
    reference_window: TimeWindow
    current_window: TimeWindow
    features: tuple[FeatureDrift, ...]
    notes: tuple[str, ...] = ()

    @property
    def input_features(self) -> tuple[FeatureDrift, ...]:
        """The model-input features (numeric and categorical), not scores or performance."""
        return tuple(f for f in self.features if f.kind in ("numeric", "categorical"))

    @property
    def drifted_features(self) -> tuple[FeatureDrift, ...]:
        """Every row that crossed its threshold, of any kind."""
        return tuple(f for f in self.features if f.drifted)

    @property
    def drifted_share(self) -> float:
        """Share of model-input features that drifted (0 when there are none)."""
        inputs = self.input_features
        return sum(f.drifted for f in inputs) / len(inputs) if inputs else 0.0

    @property
    def data_drift(self) -> bool:
        """Whether any model-input feature drifted."""
        return any(f.drifted for f in self.input_features)

    @property
    def prediction(self) -> FeatureDrift | None:
        """The scores' verdict, when prediction drift was checked."""
        return next((f for f in self.features if f.kind == "prediction"), None)

    @property
    def performance(self) -> FeatureDrift | None:
        """The PR-AUC drop's verdict, when performance drift was checked."""
        return next((f for f in self.features if f.kind == "performance"), None)

    @property
    def prediction_drift(self) -> bool:
        """Whether the scores drifted."""
        return self.prediction is not None and self.prediction.drifted

    @property
    def performance_drift(self) -> bool:
        """Whether PR-AUC fell by more than the tolerance."""
        return self.performance is not None and self.performance.drifted

    def summary(self) -> dict[str, Any]:
        """A small dict for logs, audit payloads and alerts."""
        return {
            "run_id": self.run_id,
            "drifted_share": round(self.drifted_share, 4),
            "drifted_features": [f.feature for f in self.drifted_features],
            "data_drift": self.data_drift,
            "prediction_drift": self.prediction_drift,
            "performance_drift": self.performance_drift,
            "pr_auc_drop": None if self.performance is None else self.performance.statistic,
        }


def compute_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    numeric_features: Sequence[str],
    categorical_features: Sequence[str] = (),
    reference_window: TimeWindow | tuple[datetime, datetime],
    current_window: TimeWindow | tuple[datetime, datetime],
    options: DriftOptions | None = None,
    scores: ModelScores | None = None,
    run_id: str | None = None,
    run_ts: datetime | None = None,
) -> DriftReport:
    """Compare the current window with the reference window, feature by feature.

    `reference`/`current` hold the feature columns (e.g. rows of gold_trade_features); neither
    is modified. Prediction drift is checked when `scores` are given, performance drift when
    they carry current labels and a reference PR-AUC or reference labels. A numeric feature
    whose current window is constant while its reference was not is drifted whatever its PSI:
    a feature that stopped moving is broken upstream.
    """
    options = options or DriftOptions()
    reference_window = TimeWindow.of(reference_window)
    current_window = TimeWindow.of(current_window)
    run_ts = (run_ts or datetime.now(UTC)).astimezone(UTC)
    run_id = run_id or f"{run_ts:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
    if not _RUN_ID.match(run_id):
        raise DriftInputError(f"run_id {run_id!r} must be letters, digits, '.', '_' or '-'")
    numeric_features, categorical_features = list(numeric_features), list(categorical_features)
    _check_windows(reference, current, numeric_features, categorical_features)

    rows: list[FeatureDrift] = []
    notes: list[str] = []
    if numeric_features:
        ref_matrix = _stack_columns(reference, numeric_features, "reference")
        cur_matrix = _stack_columns(current, numeric_features, "current")
        binning = numeric_binning(
            ref_matrix, cur_matrix, bins=options.bins, workers=options.workers
        )
        rows += _numeric_rows(
            numeric_features, "numeric", binning, options.psi_threshold, ref_matrix, cur_matrix,
            notes,
        )
    if categorical_features:
        rows += _categorical_rows(
            reference, current, categorical_features, options.js_threshold
        )
    if scores is not None:
        rows += _prediction_rows(scores, options, notes)
        if scores.current_labels is not None:
            rows += _performance_rows(scores, options.performance_drop, notes)
    return DriftReport(run_id, run_ts, reference_window, current_window, tuple(rows), tuple(notes))


def _check_windows(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    numeric_features: Sequence[str],
    categorical_features: Sequence[str],
) -> None:
    overlap = set(numeric_features) & set(categorical_features)
    if overlap:
        raise DriftInputError(f"features listed as both numeric and categorical: {sorted(overlap)}")
    if not numeric_features and not categorical_features:
        raise DriftInputError(
            "no features to compare: pass numeric_features and/or categorical_features"
        )
    for name, frame in (("reference", reference), ("current", current)):
        missing = [c for c in (*numeric_features, *categorical_features) if c not in frame.columns]
        if missing:
            raise DriftInputError(f"the {name} window lacks feature columns: {', '.join(missing)}")
        if len(frame) == 0:
            raise DriftInputError(f"the {name} window has no rows: widen it or load data first")


def _categorical_rows(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    features: Sequence[str],
    threshold: float,
) -> list[FeatureDrift]:
    counts = categorical_counts(reference, current, features)
    distances = jensen_shannon_distance(counts.reference_counts, counts.current_counts)
    rows = []
    for j, feature in enumerate(features):
        drifted = bool(distances[j] > threshold)
        cats = counts.categories[j]
        ref_c = counts.reference_counts[j, : len(cats)]
        cur_c = counts.current_counts[j, : len(cats)]
        new = [c for c, r, k in zip(cats, ref_c, cur_c, strict=True) if r == 0 and k > 0]
        rows.append(
            FeatureDrift(
                feature=feature,
                kind="categorical",
                statistic_name="js_distance",
                statistic=float(distances[j]),
                threshold=threshold,
                drifted=drifted,
                reference_rows=len(reference),
                current_rows=len(current),
                note=f"new in the current window: {', '.join(new[:5])}" if new else None,
                histogram=_category_histogram(cats, ref_c, cur_c) if drifted else None,
            )
        )
    return rows


def _prediction_rows(
    scores: ModelScores, options: DriftOptions, notes: list[str]
) -> list[FeatureDrift]:
    ref_scores = feature_major(scores.reference, "reference scores")
    cur_scores = feature_major(scores.current, "current scores")
    if ref_scores.shape[0] != 1 or cur_scores.shape[0] != 1:
        raise DriftInputError("scores must be 1-D arrays")
    if ref_scores.shape[1] == 0 or cur_scores.shape[1] == 0:
        notes.append("prediction drift not checked: a window has no scores")
        return []
    binning = numeric_binning(ref_scores, cur_scores, bins=options.bins)
    return _numeric_rows(
        [PREDICTION_FEATURE], "prediction", binning, options.prediction_threshold, ref_scores,
        cur_scores, notes,
    )


def _performance_rows(
    scores: ModelScores, threshold: float, notes: list[str]
) -> list[FeatureDrift]:
    outcome = performance_drop(
        scores.current_labels,
        scores.current,
        reference_pr_auc=scores.reference_pr_auc,
        reference_labels=scores.reference_labels,
        reference_scores=scores.reference,
    )
    if isinstance(outcome, str):
        notes.append(f"performance drift not checked: {outcome}")
        return []
    drop, ref_value, cur_value, ref_rows, cur_rows = outcome
    return [
        FeatureDrift(
            feature=PERFORMANCE_FEATURE,
            kind="performance",
            statistic_name="pr_auc_drop",
            statistic=float(drop),
            threshold=threshold,
            drifted=bool(drop > threshold),
            reference_rows=ref_rows,
            current_rows=cur_rows,
            note=f"PR-AUC {ref_value:.4f} -> {cur_value:.4f}",
        )
    ]


def _stack_columns(frame: pd.DataFrame, features: Sequence[str], window: str) -> np.ndarray:
    matrix = np.empty((len(features), len(frame)), dtype=np.float64)
    for j, feature in enumerate(features):
        try:
            matrix[j] = pd.to_numeric(frame[feature], errors="raise").to_numpy(
                dtype=np.float64, na_value=np.nan
            )
        except (TypeError, ValueError) as exc:
            raise DriftInputError(
                f"numeric feature {feature!r} in the {window} window is not numeric: {exc}"
            ) from exc
    return matrix


def _numeric_rows(
    features: Sequence[str],
    kind: FeatureKind,
    binning: NumericBinning,
    threshold: float,
    reference: np.ndarray,
    current: np.ndarray,
    notes: list[str],
) -> list[FeatureDrift]:
    drifted = binning.psi > threshold
    collapsed = binning.current_constant & ~binning.reference_constant
    drifted |= collapsed
    histograms = _numeric_histograms(
        reference, current, np.flatnonzero(drifted), bounded=kind == "prediction"
    )
    rows = []
    for j, feature in enumerate(features):
        note = None
        if collapsed[j]:
            note = f"collapsed: constant {binning.current_min[j]:g} in the current window"
        elif binning.reference_constant[j] and not binning.current_constant[j]:
            note = "the reference window was constant"
        if note:
            notes.append(f"{feature}: {note}")
        rows.append(
            FeatureDrift(
                feature=feature,
                kind=kind,
                statistic_name="psi",
                statistic=float(binning.psi[j]),
                threshold=threshold,
                drifted=bool(drifted[j]),
                reference_rows=binning.reference_rows,
                current_rows=binning.current_rows,
                note=note,
                histogram=histograms.get(j),
            )
        )
    return rows


def _numeric_histograms(
    reference: np.ndarray, current: np.ndarray, which: np.ndarray, *, bounded: bool
) -> dict[int, DriftHistogram]:
    """Equal-width histograms of both windows for the features in `which` (drifted ones)."""
    if len(which) == 0:
        return {}
    # Evenly spaced rows of each window: enough for a picture.
    ref = reference[which][:, :: max(1, reference.shape[1] // _DISPLAY_SAMPLE)]
    cur = current[which][:, :: max(1, current.shape[1] // _DISPLAY_SAMPLE)]
    d = ref.shape[0]
    central = np.array([0.005, 0.995])
    ref_range = row_quantiles(ref, central)
    cur_range = row_quantiles(cur, central)
    if bounded:
        lo, hi = np.zeros(d), np.ones(d)
    else:
        lo = np.fmin(ref_range[:, 0], cur_range[:, 0])
        hi = np.fmax(ref_range[:, 1], cur_range[:, 1])
        lo = np.where(np.isfinite(lo), lo, 0.0)
        hi = np.where(np.isfinite(hi), hi, lo)
        # A constant (or empty) range still needs a visible bar around its value.
        flat = hi <= lo
        pad = np.maximum(np.abs(lo) * 0.05, 0.5)
        lo, hi = np.where(flat, lo - pad, lo), np.where(flat, hi + pad, hi)
    width = (hi - lo) / _DISPLAY_BINS
    offsets = (np.arange(d) * _DISPLAY_BINS)[:, None]

    def shares(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        finite = ~np.isnan(values)
        with np.errstate(invalid="ignore", over="ignore"):
            position = np.floor((values - lo[:, None]) / width[:, None])
        position = np.clip(
            np.nan_to_num(position, nan=0.0, posinf=1e9, neginf=-1e9), 0, _DISPLAY_BINS - 1
        )
        index = (position.astype(np.intp) + offsets)[finite]
        counts = np.bincount(index, minlength=d * _DISPLAY_BINS).reshape(d, _DISPLAY_BINS)
        outside = np.asarray(((values < lo[:, None]) | (values > hi[:, None])).any(axis=1))
        return counts / values.shape[1], 1 - finite.sum(axis=1) / values.shape[1], outside

    ref_share, ref_missing, ref_out = shares(ref)
    cur_share, cur_missing, cur_out = shares(cur)
    result = {}
    for i, j in enumerate(which):
        edges = lo[i] + width[i] * np.arange(_DISPLAY_BINS + 1)
        result[int(j)] = DriftHistogram(
            reference_share=tuple(float(x) for x in ref_share[i]),
            current_share=tuple(float(x) for x in cur_share[i]),
            edges=tuple(float(x) for x in edges),
            clipped=bool(ref_out[i] or cur_out[i]),
            reference_missing_share=float(ref_missing[i]),
            current_missing_share=float(cur_missing[i]),
        )
    return result


def _category_histogram(
    categories: Sequence[str], ref: np.ndarray, cur: np.ndarray
) -> DriftHistogram:
    ref_share = ref / max(ref.sum(), 1)
    cur_share = cur / max(cur.sum(), 1)
    order = np.argsort(-np.maximum(ref_share, cur_share), kind="stable")
    keep, rest = order[:_DISPLAY_CATEGORIES], order[_DISPLAY_CATEGORIES:]
    labels = [categories[i] for i in keep]
    ref_out, cur_out = list(ref_share[keep]), list(cur_share[keep])
    if len(rest):
        labels.append("(other)")
        ref_out.append(float(ref_share[rest].sum()))
        cur_out.append(float(cur_share[rest].sum()))
    return DriftHistogram(
        reference_share=tuple(float(x) for x in ref_out),
        current_share=tuple(float(x) for x in cur_out),
        categories=tuple(labels),
    )
