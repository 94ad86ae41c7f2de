"""Drift statistics and the drift report.

Numeric features: Population Stability Index (PSI) over bins cut at the reference window's
quantiles i/bins (i = 1 .. bins-1, numpy's default linear interpolation over the non-missing
values). The outer bins are open to -inf/+inf, so values beyond the reference range land in
them and count. Each cut value is also a bin of its own ("point bin"): the bins are

    (-inf, e1), {e1}, (e1, e2), {e2}, ..., {em}, (em, +inf), missing

over the distinct cut values e1 < ... < em. For continuous data the point bins are empty and
this is ordinary decile PSI; for tied data (integer counts, many exact zeros, a constant
reference) they keep a point mass apart from its neighbours, so a constant reference still
tells "below", "at" and "above" apart and a feature collapsing onto or off a value is seen.
Missing values (NaN) have their own bin: a change in the missing rate is drift too.

    PSI = sum over bins of (c - r) * ln(c / r)

with r and c the reference and current shares of all rows. An empty bin's share is raised to
PSI_EPSILON (1e-4) first: ln(0) is undefined, and 1e-4 caps what one empty bin can add at a
level (about 0.1 * ln(0.1 / 1e-4) = 0.69 for a decile that emptied) that still reads as severe
drift without letting one bin dwarf the rest. Bins empty in both windows add nothing.

Categorical features: Jensen-Shannon distance in base 2 (0 = same distribution, 1 = disjoint),
over the union of categories of both windows, so a category new in the current window counts.
Missing values are a category of their own.

Prediction drift is PSI on the champion's score distribution; performance drift is the drop in
PR-AUC (average precision) from the reference to the current window where labels exist.

Everything numeric is computed for all features at once on a (features x rows) matrix: one
in-place sort of the reference, quantiles and bin counts by a vectorised bisection over the
sorted rows, and the current window binned by comparing cache-sized slabs against every cut
at once and counting with a single offset `bincount`. No Python runs per row or per feature
in that path.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePath
from typing import Any, Literal

import numpy as np
import pandas as pd

from core.datahome import DRIFT_RECORDS, DataHome, as_data_home
from ml.metrics import pr_auc

PSI_EPSILON = 1e-4
DEFAULT_BINS = 10
DEFAULT_PSI_THRESHOLD = 0.2
DEFAULT_JS_THRESHOLD = 0.1
DEFAULT_PERFORMANCE_DROP = 0.05
PREDICTION_FEATURE = "score"
PERFORMANCE_FEATURE = "pr_auc"
MISSING_CATEGORY = "(missing)"

# Columns of the current window compared per pass: 8192 rows x a dozen features of float64
# stay in L2 cache while every cut is compared against them.
_SLAB_ROWS = 8192
# Bars in the report's histograms; categories beyond this many are summed as "(other)".
_DISPLAY_BINS = 30
_DISPLAY_CATEGORIES = 15
# The display range for a drifted numeric feature is the central 99 % of both windows, taken
# from at most this many evenly spaced rows of the current window (display only, not the PSI).
_DISPLAY_SAMPLE = 200_000
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")

FeatureKind = Literal["numeric", "categorical", "prediction", "performance"]
StatisticName = Literal["psi", "js_distance", "pr_auc_drop"]


class DriftInputError(ValueError):
    """The windows handed to the drift check cannot be compared (empty, missing columns, ...)."""


@dataclass(frozen=True)
class TimeWindow:
    """A closed time interval, both ends timezone-aware."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            if getattr(self, name).tzinfo is None:
                raise DriftInputError(f"window {name} needs a timezone (e.g. UTC)")
        if self.end < self.start:
            raise DriftInputError(
                f"window ends ({iso_utc(self.end)}) before it starts ({iso_utc(self.start)})"
            )

    @classmethod
    def of(cls, value: TimeWindow | tuple[datetime, datetime]) -> TimeWindow:
        """Accept a TimeWindow or a (start, end) pair."""
        if isinstance(value, TimeWindow):
            return value
        start, end = value
        return cls(start, end)


@dataclass(frozen=True)
class NumericBinning:
    """PSI for k numeric features, with the bins behind it.

    `edges[j]` are feature j's reference quantiles (bins-1 of them, possibly tied);
    `reference_counts[j]` / `current_counts[j]` count rows per bin: 2*(bins-1)+1 value bins
    in the order of the module docstring (tied cuts leave empty slots) and a last bin for
    missing values.
    """

    psi: np.ndarray
    edges: np.ndarray
    reference_counts: np.ndarray
    current_counts: np.ndarray
    reference_rows: int
    current_rows: int
    reference_constant: np.ndarray
    current_constant: np.ndarray
    current_min: np.ndarray
    current_max: np.ndarray


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
        return any(f.drifted for f in self.input_features)

    @property
    def prediction(self) -> FeatureDrift | None:
        return next((f for f in self.features if f.kind == "prediction"), None)

    @property
    def performance(self) -> FeatureDrift | None:
        return next((f for f in self.features if f.kind == "performance"), None)

    @property
    def prediction_drift(self) -> bool:
        return self.prediction is not None and self.prediction.drifted

    @property
    def performance_drift(self) -> bool:
        return self.performance is not None and self.performance.drifted

    def records(self) -> list[dict[str, Any]]:
        """The rows of the drift file (core.datahome.DRIFT_RECORDS), one per feature."""
        windows = {
            "run_id": self.run_id,
            "run_ts": iso_utc(self.run_ts),
            "reference_start": iso_utc(self.reference_window.start),
            "reference_end": iso_utc(self.reference_window.end),
            "current_start": iso_utc(self.current_window.start),
            "current_end": iso_utc(self.current_window.end),
        }
        return [
            DRIFT_RECORDS.record({
                **windows,
                "feature": f.feature,
                "kind": f.kind,
                "statistic_name": f.statistic_name,
                "statistic": float(f.statistic),
                "threshold": float(f.threshold),
                "drifted": bool(f.drifted),
                "reference_rows": int(f.reference_rows),
                "current_rows": int(f.current_rows),
            })
            for f in self.features
        ]

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


# --------------------------------------------------------------------------------------------
# Numeric: PSI


def population_stability_index(
    reference: Any,
    current: Any,
    *,
    bins: int = DEFAULT_BINS,
    epsilon: float = PSI_EPSILON,
    workers: int = 1,
) -> np.ndarray:
    """PSI per feature for arrays shaped (rows,) or (rows, features); returns shape (features,).

    See the module docstring for the bins and the epsilon.
    """
    ref = _feature_major(reference, "reference")
    cur = _feature_major(current, "current")
    if ref.shape[0] != cur.shape[0]:
        raise DriftInputError(
            f"reference has {ref.shape[0]} features but current has {cur.shape[0]}"
        )
    return numeric_binning(ref, cur, bins=bins, epsilon=epsilon, workers=workers).psi


def numeric_binning(
    reference: np.ndarray,
    current: np.ndarray,
    *,
    bins: int = DEFAULT_BINS,
    epsilon: float = PSI_EPSILON,
    workers: int = 1,
) -> NumericBinning:
    """PSI and bins for feature-major float matrices (features x rows).

    `reference` is sorted in place along its rows (pass a copy to keep it; the report's
    histograms reuse the sorted rows). With `workers` > 1 the features are split into that
    many groups computed on threads (numpy releases the GIL in sort and in the comparisons).
    """
    if bins < 2:
        raise DriftInputError(f"bins must be at least 2, got {bins}")
    if not epsilon > 0:
        raise DriftInputError(f"epsilon must be positive, got {epsilon}")
    for name, matrix in (("reference", reference), ("current", current)):
        if matrix.ndim != 2 or matrix.dtype != np.float64 or not matrix.flags.c_contiguous:
            raise DriftInputError(f"{name} must be a C-contiguous float64 (features x rows) matrix")
        if matrix.shape[1] == 0:
            raise DriftInputError(f"the {name} window has no rows")
    if reference.shape[0] != current.shape[0]:
        raise DriftInputError("reference and current must have the same features")
    k = reference.shape[0]
    quantiles = np.arange(1, bins, dtype=np.float64) / bins
    groups = [g for g in np.array_split(np.arange(k), max(1, min(workers, k))) if len(g)]
    if len(groups) <= 1:
        parts = [_bin_group(reference, current, quantiles)]
    else:
        # Contiguous row ranges are views, so each thread sorts its own rows in place.
        slices = [slice(int(g[0]), int(g[-1]) + 1) for g in groups]
        with ThreadPoolExecutor(max_workers=len(slices)) as pool:
            parts = list(
                pool.map(lambda s: _bin_group(reference[s], current[s], quantiles), slices)
            )
    edges = np.concatenate([p["edges"] for p in parts])
    ref_counts = np.concatenate([p["ref_counts"] for p in parts])
    cur_counts = np.concatenate([p["cur_counts"] for p in parts])
    n_ref, n_cur = reference.shape[1], current.shape[1]
    ref_share = np.maximum(ref_counts / n_ref, epsilon)
    cur_share = np.maximum(cur_counts / n_cur, epsilon)
    psi = np.sum((cur_share - ref_share) * np.log(cur_share / ref_share), axis=1)
    return NumericBinning(
        psi=psi,
        edges=edges,
        reference_counts=ref_counts,
        current_counts=cur_counts,
        reference_rows=n_ref,
        current_rows=n_cur,
        reference_constant=np.concatenate([p["ref_constant"] for p in parts]),
        current_constant=np.concatenate([p["cur_constant"] for p in parts]),
        current_min=np.concatenate([p["cur_min"] for p in parts]),
        current_max=np.concatenate([p["cur_max"] for p in parts]),
    )


def _bin_group(reference: np.ndarray, current: np.ndarray, quantiles: np.ndarray) -> dict:
    k, n_ref = reference.shape
    m = len(quantiles)
    reference.sort(axis=1)  # NaN sorts last, so the first `valid` entries of a row are values
    valid = _valid_counts(reference)
    edges = _quantiles_of_sorted(reference, valid, quantiles)
    below = _count_sorted(reference, valid, edges, strict=True)
    at_or_below = _count_sorted(reference, valid, edges, strict=False)
    ref_counts = np.empty((k, 2 * m + 2), dtype=np.int64)
    ref_counts[:, :-1] = _bin_counts_from_cumulative(below, at_or_below, valid)
    ref_counts[:, -1] = n_ref - valid
    last = np.maximum(valid - 1, 0)
    rows = np.arange(k)
    ref_constant = (valid > 0) & (reference[rows, 0] == reference[rows, last])
    cur_counts, cur_min, cur_max = _bin_current(current, edges)
    cur_constant = np.isfinite(cur_min) & (cur_min == cur_max)
    return {
        "edges": edges,
        "ref_counts": ref_counts,
        "cur_counts": cur_counts,
        "ref_constant": ref_constant,
        "cur_constant": cur_constant,
        "cur_min": cur_min,
        "cur_max": cur_max,
    }


def _count_sorted(
    sorted_rows: np.ndarray, valid: np.ndarray, values: np.ndarray, *, strict: bool
) -> np.ndarray:
    """For each row j and value v: how many of its first valid[j] entries are < v (strict) or <= v.

    A bisection run on every (row, value) pair at once: about log2(rows) numpy steps in all.
    """
    k, n = sorted_rows.shape
    lo = np.zeros(values.shape, dtype=np.intp)
    hi = np.broadcast_to(valid[:, None], values.shape).astype(np.intp)
    row_index = np.arange(k)[:, None]
    compare = np.less if strict else np.less_equal
    while True:
        active = lo < hi
        if not active.any():
            return lo
        mid = (lo + hi) // 2
        entry = sorted_rows[row_index, np.minimum(mid, n - 1)]
        go_right = active & compare(entry, values)
        lo = np.where(go_right, mid + 1, lo)
        hi = np.where(active & ~go_right, mid, hi)


def _valid_counts(sorted_rows: np.ndarray) -> np.ndarray:
    """Non-missing entries per sorted row (NaN sorts last, and only NaN fails `<= inf`)."""
    k, n = sorted_rows.shape
    return _count_sorted(sorted_rows, np.full(k, n), np.full((k, 1), np.inf), strict=False)[:, 0]


def _quantiles_of_sorted(
    sorted_rows: np.ndarray, valid: np.ndarray, quantiles: np.ndarray
) -> np.ndarray:
    """numpy's default ("linear") quantiles of each row's first valid[j] entries, exactly as
    np.quantile computes them, from rows that are already sorted."""
    k = sorted_rows.shape[0]
    n = valid.astype(np.float64)[:, None]
    virtual = (n - 1) * quantiles[None, :]
    previous = np.floor(virtual)
    above = virtual >= n - 1
    gamma = virtual - previous
    prev_index = np.where(above, n - 1, previous).astype(np.intp)
    next_index = np.where(above, n - 1, previous + 1).astype(np.intp)
    # A row with no values has no quantiles: index 0 (NaN there) gives NaN cuts.
    prev_index = np.maximum(prev_index, 0)
    next_index = np.maximum(next_index, 0)
    rows = np.arange(k)[:, None]
    a = sorted_rows[rows, prev_index]
    b = sorted_rows[rows, next_index]
    with np.errstate(invalid="ignore"):
        diff = b - a
        lerp = a + diff * gamma
        lerp = np.where(gamma >= 0.5, b - diff * (1 - gamma), lerp)
    # Infinite neighbours make the arithmetic give NaN where the limit is plain: equal
    # neighbours are the quantile, and strictly between -inf and x (or x and +inf) it is
    # -inf (or +inf).
    lerp = np.where(np.isneginf(a) | (gamma == 0), a, lerp)
    lerp = np.where(np.isposinf(b) & (gamma > 0) & ~np.isneginf(a), b, lerp)
    return np.where(a == b, a, lerp)


def _bin_counts_from_cumulative(
    below: np.ndarray, at_or_below: np.ndarray, valid: np.ndarray
) -> np.ndarray:
    """Value-bin counts from, per cut, the number of values < cut and <= cut.

    A value's bin is the number of tests "x >= cut" and "x > cut" it passes. Those tests are
    nested once ordered by how many values pass them, so the counts per bin are the steps
    between the sorted cumulative counts.
    """
    cumulative = np.sort(np.concatenate([below, at_or_below], axis=1), axis=1)
    k = cumulative.shape[0]
    bounded = np.concatenate(
        [np.zeros((k, 1), dtype=np.int64), cumulative, valid[:, None].astype(np.int64)], axis=1
    )
    return np.diff(bounded, axis=1)


def _bin_current(
    current: np.ndarray, edges: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bin counts per feature for the current window, plus its min and max (NaN-aware)."""
    k, n = current.shape
    m = edges.shape[1]
    n_bins = 2 * m + 2
    missing_bin = n_bins - 1
    index_dtype = np.uint8 if n_bins <= 255 else np.uint16
    offsets = (np.arange(k, dtype=np.intp) * n_bins)[:, None]
    counts = np.zeros(k * n_bins, dtype=np.int64)
    slab = min(_SLAB_ROWS, n)
    index = np.empty((k, slab), dtype=index_dtype)
    passed = np.empty((k, slab), dtype=bool)
    wide = np.empty((k, slab), dtype=np.intp)
    cuts = [edges[:, i : i + 1] for i in range(m)]
    for start in range(0, n, slab):
        values = current[:, start : start + slab]
        width = values.shape[1]
        idx, test, w = index[:, :width], passed[:, :width], wide[:, :width]
        idx.fill(0)
        for cut in cuts:
            np.greater_equal(values, cut, out=test)
            idx += test
            np.greater(values, cut, out=test)
            idx += test
        # NaN passes no test (bin 0); move it to the missing bin.
        np.isnan(values, out=test)
        np.add(idx, test * index_dtype(missing_bin), out=idx, casting="unsafe")
        np.add(idx, offsets, out=w, casting="unsafe")
        counts += np.bincount(w.ravel(), minlength=k * n_bins)
    cur_min, cur_max = np.min(current, axis=1), np.max(current, axis=1)
    # min/max propagate NaN; only rows that have one need the slower NaN-skipping reduction.
    with_missing = np.isnan(cur_min)
    if with_missing.any():
        with np.errstate(invalid="ignore"):
            cur_min[with_missing] = np.fmin.reduce(current[with_missing], axis=1)
            cur_max[with_missing] = np.fmax.reduce(current[with_missing], axis=1)
    return counts.reshape(k, n_bins), cur_min, cur_max


def _feature_major(values: Any, name: str) -> np.ndarray:
    """A fresh (features x rows) float64 copy: the caller's array is never sorted in place."""
    # Not np.array(copy=True): pandas 2.2's Series.__array__ ignores `copy` and hands out
    # its own buffer, which the in-place sort would then reorder.
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 1:
        return array.copy()[None, :]
    if array.ndim == 2:
        return array.T.copy(order="C")
    raise DriftInputError(f"{name} must be 1-D (rows) or 2-D (rows x features)")


# --------------------------------------------------------------------------------------------
# Categorical: Jensen-Shannon distance


def jensen_shannon_distance(reference_counts: Any, current_counts: Any) -> np.ndarray:
    """Base-2 Jensen-Shannon distance between count (or share) rows, one per feature.

    Both arguments are (features x categories) aligned on the same categories (zeros pad
    features with fewer); 1-D input is one feature. Same definition as
    scipy.spatial.distance.jensenshannon(p, q, base=2).
    """
    p = np.atleast_2d(np.asarray(reference_counts, dtype=np.float64))
    q = np.atleast_2d(np.asarray(current_counts, dtype=np.float64))
    if p.shape != q.shape:
        raise DriftInputError(f"count shapes differ: {p.shape} vs {q.shape}")
    if (p < 0).any() or (q < 0).any():
        raise DriftInputError("category counts cannot be negative")
    p_total, q_total = p.sum(axis=1, keepdims=True), q.sum(axis=1, keepdims=True)
    if (p_total == 0).any() or (q_total == 0).any():
        raise DriftInputError("a window has no rows for a categorical feature")
    p, q = p / p_total, q / q_total
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        left = np.where(p > 0, p * np.log(p / m), 0.0)
        right = np.where(q > 0, q * np.log(q / m), 0.0)
    divergence = (left.sum(axis=1) + right.sum(axis=1)) / (2 * math.log(2))
    return np.sqrt(np.clip(divergence, 0.0, None))


@dataclass(frozen=True)
class CategoricalCounts:
    """Counts per category of both windows for k features, padded to a common width."""

    categories: tuple[tuple[str, ...], ...]
    reference_counts: np.ndarray
    current_counts: np.ndarray


def categorical_counts(
    reference: Mapping[str, Any] | pd.DataFrame,
    current: Mapping[str, Any] | pd.DataFrame,
    features: Sequence[str],
) -> CategoricalCounts:
    """Count categories of each feature in both windows over the union of their categories.

    Values are counted as-is (hashing, one pass per window and feature); missing values
    become MISSING_CATEGORY. Categories are ordered by reference share, new ones last.
    """
    per_feature: list[tuple[tuple[str, ...], np.ndarray, np.ndarray]] = []
    for feature in features:
        ref = pd.Series(reference[feature]).value_counts(dropna=False, sort=False)
        cur = pd.Series(current[feature]).value_counts(dropna=False, sort=False)
        # A pandas categorical lists its unused levels with a count of 0: not categories seen.
        ref, cur = ref[ref > 0], cur[cur > 0]
        ref.index = _category_labels(ref.index)
        cur.index = _category_labels(cur.index)
        ref = ref.groupby(level=0, sort=False).sum()
        cur = cur.groupby(level=0, sort=False).sum()
        ordered = list(ref.sort_values(ascending=False, kind="stable").index)
        ordered += [
            c for c in cur.sort_values(ascending=False, kind="stable").index if c not in ref.index
        ]
        per_feature.append(
            (
                tuple(ordered),
                ref.reindex(ordered, fill_value=0).to_numpy(np.int64),
                cur.reindex(ordered, fill_value=0).to_numpy(np.int64),
            )
        )
    width = max((len(c) for c, _, _ in per_feature), default=0)
    ref_counts = np.zeros((len(per_feature), width), dtype=np.int64)
    cur_counts = np.zeros((len(per_feature), width), dtype=np.int64)
    for j, (cats, r, c) in enumerate(per_feature):
        ref_counts[j, : len(cats)] = r
        cur_counts[j, : len(cats)] = c
    return CategoricalCounts(tuple(c for c, _, _ in per_feature), ref_counts, cur_counts)


def _category_labels(index: pd.Index) -> list[str]:
    return [MISSING_CATEGORY if _is_missing(v) else str(v) for v in index]


def _is_missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


# --------------------------------------------------------------------------------------------
# Performance


def performance_drop(
    current_labels: Any,
    current_scores: Any,
    *,
    reference_pr_auc: float | None = None,
    reference_labels: Any = None,
    reference_scores: Any = None,
) -> tuple[float, float, float, int, int] | str:
    """PR-AUC drop (reference minus current; positive means worse), or why it cannot be known.

    The reference PR-AUC is `reference_pr_auc` when given (e.g. the champion's test-window
    figure) or computed from `reference_labels`/`reference_scores`. Rows without a label
    (NaN/None) are left out. Returns (drop, reference_pr_auc, current_pr_auc,
    reference_labelled_rows, current_labelled_rows), or a one-line reason string when a
    window has no labelled rows or only one class.
    """
    current = _labelled(current_labels, current_scores, "current")
    if isinstance(current, str):
        return current
    cur_y, cur_s = current
    if reference_pr_auc is not None:
        if not 0.0 <= reference_pr_auc <= 1.0:
            raise DriftInputError(f"reference_pr_auc must be within 0..1, got {reference_pr_auc}")
        ref_value, ref_rows = float(reference_pr_auc), 0
    else:
        if reference_labels is None or reference_scores is None:
            raise DriftInputError(
                "performance drift needs reference_pr_auc or reference labels and scores"
            )
        reference = _labelled(reference_labels, reference_scores, "reference")
        if isinstance(reference, str):
            return reference
        ref_y, ref_s = reference
        ref_value, ref_rows = pr_auc(ref_y, ref_s), len(ref_y)
    cur_value = pr_auc(cur_y, cur_s)
    return ref_value - cur_value, ref_value, cur_value, ref_rows, len(cur_y)


def _labelled(labels: Any, scores: Any, window: str) -> tuple[np.ndarray, np.ndarray] | str:
    y = pd.Series(labels, dtype="object")
    s = np.asarray(scores, dtype=np.float64)
    if len(y) != len(s):
        raise DriftInputError(f"{window} labels ({len(y)}) and scores ({len(s)}) differ in length")
    known = (~y.isna()).to_numpy() & np.isfinite(s)
    y_known = y[known].astype(bool).to_numpy()
    if len(y_known) == 0:
        return f"the {window} window has no labelled rows"
    if y_known.all() or not y_known.any():
        return f"the {window} window's {len(y_known)} labelled rows are all of one class"
    return y_known, s[known]


# --------------------------------------------------------------------------------------------
# The report


def compute_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    numeric_features: Sequence[str],
    categorical_features: Sequence[str] = (),
    reference_window: TimeWindow | tuple[datetime, datetime],
    current_window: TimeWindow | tuple[datetime, datetime],
    psi_threshold: float = DEFAULT_PSI_THRESHOLD,
    js_threshold: float = DEFAULT_JS_THRESHOLD,
    bins: int = DEFAULT_BINS,
    reference_scores: Any = None,
    current_scores: Any = None,
    prediction_psi_threshold: float | None = None,
    current_labels: Any = None,
    reference_labels: Any = None,
    reference_pr_auc: float | None = None,
    performance_threshold: float = DEFAULT_PERFORMANCE_DROP,
    run_id: str | None = None,
    run_ts: datetime | None = None,
    workers: int = 1,
) -> DriftReport:
    """Compare the current window with the reference window, feature by feature.

    `reference`/`current` hold the feature columns (e.g. rows of gold_trade_features).
    Prediction drift is checked when both score arrays are given (PSI, threshold
    `prediction_psi_threshold`, default `psi_threshold`); performance drift when
    `current_labels` (with `current_scores`) and a reference PR-AUC or reference labels are
    given. A numeric feature whose current window is constant while its reference was not is
    drifted whatever its PSI: a feature that stopped moving is broken upstream.
    """
    reference_window = TimeWindow.of(reference_window)
    current_window = TimeWindow.of(current_window)
    run_ts = (run_ts or datetime.now(UTC)).astimezone(UTC)
    run_id = run_id or f"{run_ts:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
    if not _RUN_ID.match(run_id):
        raise DriftInputError(f"run_id {run_id!r} must be letters, digits, '.', '_' or '-'")
    numeric_features, categorical_features = list(numeric_features), list(categorical_features)
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
    threshold_prediction = (
        psi_threshold if prediction_psi_threshold is None else prediction_psi_threshold
    )

    rows: list[FeatureDrift] = []
    notes: list[str] = []
    if numeric_features:
        ref_matrix = _stack_columns(reference, numeric_features, "reference")
        cur_matrix = _stack_columns(current, numeric_features, "current")
        binning = numeric_binning(ref_matrix, cur_matrix, bins=bins, workers=workers)
        # numeric_binning sorted ref_matrix in place: the histograms reuse the sorted rows.
        rows += _numeric_rows(
            numeric_features, "numeric", binning, psi_threshold, ref_matrix, cur_matrix, notes
        )

    if categorical_features:
        counts = categorical_counts(reference, current, categorical_features)
        distances = jensen_shannon_distance(counts.reference_counts, counts.current_counts)
        for j, feature in enumerate(categorical_features):
            drifted = bool(distances[j] > js_threshold)
            cats = counts.categories[j]
            ref_c = counts.reference_counts[j, : len(cats)]
            cur_c = counts.current_counts[j, : len(cats)]
            new = [c for c, r, k in zip(cats, ref_c, cur_c, strict=True) if r == 0 and k > 0]
            note = f"new in the current window: {', '.join(new[:5])}" if new else None
            rows.append(
                FeatureDrift(
                    feature=feature,
                    kind="categorical",
                    statistic_name="js_distance",
                    statistic=float(distances[j]),
                    threshold=js_threshold,
                    drifted=drifted,
                    reference_rows=len(reference),
                    current_rows=len(current),
                    note=note,
                    histogram=_category_histogram(cats, ref_c, cur_c) if drifted else None,
                )
            )

    if (reference_scores is None) != (current_scores is None):
        raise DriftInputError("prediction drift needs both reference_scores and current_scores")
    if reference_scores is not None:
        ref_scores = _feature_major(reference_scores, "reference_scores")
        cur_scores = _feature_major(current_scores, "current_scores")
        if ref_scores.shape[0] != 1 or cur_scores.shape[0] != 1:
            raise DriftInputError("scores must be 1-D arrays")
        if ref_scores.shape[1] == 0 or cur_scores.shape[1] == 0:
            notes.append("prediction drift not checked: a window has no scores")
        else:
            binning = numeric_binning(ref_scores, cur_scores, bins=bins)
            rows += _numeric_rows(
                [PREDICTION_FEATURE],
                "prediction",
                binning,
                threshold_prediction,
                ref_scores,
                cur_scores,
                notes,
            )

    if current_labels is not None:
        if current_scores is None:
            raise DriftInputError("performance drift needs current_scores with current_labels")
        outcome = performance_drop(
            current_labels,
            current_scores,
            reference_pr_auc=reference_pr_auc,
            reference_labels=reference_labels,
            reference_scores=reference_scores,
        )
        if isinstance(outcome, str):
            notes.append(f"performance drift not checked: {outcome}")
        else:
            drop, ref_value, cur_value, ref_rows, cur_rows = outcome
            rows.append(
                FeatureDrift(
                    feature=PERFORMANCE_FEATURE,
                    kind="performance",
                    statistic_name="pr_auc_drop",
                    statistic=float(drop),
                    threshold=performance_threshold,
                    drifted=bool(drop > performance_threshold),
                    reference_rows=ref_rows,
                    current_rows=cur_rows,
                    note=f"PR-AUC {ref_value:.4f} -> {cur_value:.4f}",
                )
            )
    return DriftReport(run_id, run_ts, reference_window, current_window, tuple(rows), tuple(notes))


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
    sorted_reference: np.ndarray,
    current: np.ndarray,
    notes: list[str],
) -> list[FeatureDrift]:
    drifted = binning.psi > threshold
    collapsed = binning.current_constant & ~binning.reference_constant
    drifted |= collapsed
    histograms = _numeric_histograms(
        sorted_reference, current, np.flatnonzero(drifted), bounded=kind == "prediction"
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
    sorted_reference: np.ndarray, current: np.ndarray, which: np.ndarray, *, bounded: bool
) -> dict[int, DriftHistogram]:
    """Equal-width histograms of both windows for the features in `which` (drifted ones)."""
    if len(which) == 0:
        return {}
    # Evenly spaced rows of each window: every step-th order statistic of the sorted
    # reference, every step-th trade of the current window. Enough for a picture.
    ref = np.ascontiguousarray(
        sorted_reference[which][:, :: max(1, sorted_reference.shape[1] // _DISPLAY_SAMPLE)]
    )
    cur = np.sort(current[which][:, :: max(1, current.shape[1] // _DISPLAY_SAMPLE)], axis=1)
    d = ref.shape[0]
    central = np.array([0.005, 0.995])
    ref_range = _quantiles_of_sorted(ref, _valid_counts(ref), central)
    cur_range = _quantiles_of_sorted(cur, _valid_counts(cur), central)
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
        outside = ((values < lo[:, None]) | (values > hi[:, None])).any(axis=1)
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


def write_drift_ndjson(report: DriftReport, directory: DataHome | Path | str) -> PurePath:
    """Write the report as <directory>/drift-<run_id>.ndjson, atomically; return the path.

    `directory` is a folder or a DataHome (core.datahome); the file appears whole or not at
    all, so a reader (dbt) never sees half a report.
    """
    folder = as_data_home(directory)
    name = f"drift-{report.run_id}.ndjson"
    if folder.exists(name):
        raise FileExistsError(
            f"drift report {name} already exists in {directory}: use a new run_id"
        )
    body = "".join(json.dumps(r, sort_keys=True) + "\n" for r in report.records())
    return folder.write_atomic(name, body)


def iso_utc(moment: datetime) -> str:
    """ISO-8601 UTC with milliseconds and a trailing Z, like the landing files."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
