"""Drift statistics: PSI for numeric features, Jensen-Shannon distance for categorical ones,
the PR-AUC drop for performance. Pure functions of arrays and frames: no I/O, no time windows.

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

`psi_reference` is that definition written plainly, one feature and one mask per bin at a
time: the reference the fast `numeric_binning` is tested against. The fast one computes every
feature at once on (features x rows) matrices: the cuts with np.quantile, both windows binned
by comparing cache-sized slabs against every cut at once and counting with a single offset
`bincount`. No Python runs per row in that path.

Categorical features: Jensen-Shannon distance in base 2 (0 = same distribution, 1 = disjoint),
over the union of categories of both windows, so a category new in the current window counts.
Missing values are a category of their own.

Performance: the drop in PR-AUC (average precision) from the reference to the current window,
over the rows that have a label.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ml.drift_windows import DriftInputError
from ml.metrics import pr_auc

PSI_EPSILON = 1e-4
DEFAULT_BINS = 10
MISSING_CATEGORY = "(missing)"

# Columns of a window compared per pass: 8192 rows x a dozen features of float64 stay in L2
# cache while every cut is compared against them.
_SLAB_ROWS = 8192


# --------------------------------------------------------------------------------------------
# Numeric: quantiles and PSI


def linear_quantiles(values: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
    """np.quantile (default "linear" method) of `values` (1-D, no NaN) at `quantiles`.

    Where an infinite neighbour makes numpy's interpolation give NaN (inf - inf), the limit is
    taken instead: equal neighbours are the quantile, and strictly between -inf and x (or x and
    +inf) it is -inf (or +inf).
    """
    with np.errstate(invalid="ignore"):
        result = np.asarray(np.quantile(values, quantiles), dtype=np.float64)
    undefined = np.isnan(result)
    if undefined.any():
        lower = np.quantile(values, quantiles[undefined], method="lower")
        higher = np.quantile(values, quantiles[undefined], method="higher")
        result[undefined] = np.where(np.isneginf(lower) | (lower == higher), lower, higher)
    return result


def row_quantiles(matrix: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
    """`linear_quantiles` of each row's non-missing values: shape (rows, len(quantiles)).

    A row with no values has no quantiles (NaN).
    """
    result = np.full((matrix.shape[0], len(quantiles)), np.nan)
    for j, row in enumerate(matrix):
        missing = np.isnan(row)
        values = row[~missing] if missing.any() else row
        if len(values):
            result[j] = linear_quantiles(values, quantiles)
    return result


def psi_reference(
    reference: Any, current: Any, *, bins: int = DEFAULT_BINS, epsilon: float = PSI_EPSILON
) -> float:
    """PSI of one feature exactly as the module docstring defines it, written plainly.

    One boolean mask per bin over 1-D arrays: slow, and kept as the reference implementation
    that the fast `numeric_binning` is tested against.
    """
    ref = np.asarray(reference, dtype=np.float64).ravel()
    cur = np.asarray(current, dtype=np.float64).ravel()
    if len(ref) == 0 or len(cur) == 0:
        raise DriftInputError("a window has no rows")
    values = ref[~np.isnan(ref)]
    quantiles = np.arange(1, bins, dtype=np.float64) / bins
    cuts = np.unique(linear_quantiles(values, quantiles)) if len(values) else np.empty(0)

    def shares(x: np.ndarray) -> np.ndarray:
        if len(cuts) == 0:
            masks = [~np.isnan(x)]
        else:
            masks = [x < cuts[0]]
            for i, cut in enumerate(cuts):
                masks.append(x == cut)
                last = i + 1 == len(cuts)
                masks.append(x > cut if last else (x > cut) & (x < cuts[i + 1]))
        masks.append(np.isnan(x))
        counts = np.array([np.count_nonzero(mask) for mask in masks])
        return np.maximum(counts / len(x), epsilon)

    r, c = shares(ref), shares(cur)
    return float(np.sum((c - r) * np.log(c / r)))


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
    ref = feature_major(reference, "reference")
    cur = feature_major(current, "current")
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
    """PSI and bins for feature-major float64 matrices (features x rows); neither is modified.

    With `workers` > 1 the features are split into that many groups computed on threads
    (numpy releases the GIL in the quantile selection and in the comparisons).
    """
    if bins < 2:
        raise DriftInputError(f"bins must be at least 2, got {bins}")
    if not epsilon > 0:
        raise DriftInputError(f"epsilon must be positive, got {epsilon}")
    for name, matrix in (("reference", reference), ("current", current)):
        if matrix.ndim != 2 or matrix.dtype != np.float64:
            raise DriftInputError(f"{name} must be a float64 (features x rows) matrix")
        if matrix.shape[1] == 0:
            raise DriftInputError(f"the {name} window has no rows")
    if reference.shape[0] != current.shape[0]:
        raise DriftInputError("reference and current must have the same features")
    k = reference.shape[0]
    quantiles = np.arange(1, bins, dtype=np.float64) / bins
    groups = [g for g in np.array_split(np.arange(k), max(1, min(workers, k))) if len(g)]
    slices = [slice(int(g[0]), int(g[-1]) + 1) for g in groups]
    if len(slices) <= 1:
        parts = [_bin_group(reference, current, quantiles)]
    else:
        with ThreadPoolExecutor(max_workers=len(slices)) as pool:
            parts = list(
                pool.map(lambda s: _bin_group(reference[s], current[s], quantiles), slices)
            )
    ref_counts = np.concatenate([p.reference_counts for p in parts])
    cur_counts = np.concatenate([p.current_counts for p in parts])
    n_ref, n_cur = reference.shape[1], current.shape[1]
    ref_share = np.maximum(ref_counts / n_ref, epsilon)
    cur_share = np.maximum(cur_counts / n_cur, epsilon)
    ref_min = np.concatenate([p.reference_min for p in parts])
    ref_max = np.concatenate([p.reference_max for p in parts])
    cur_min = np.concatenate([p.current_min for p in parts])
    cur_max = np.concatenate([p.current_max for p in parts])
    return NumericBinning(
        psi=np.sum((cur_share - ref_share) * np.log(cur_share / ref_share), axis=1),
        edges=np.concatenate([p.edges for p in parts]),
        reference_counts=ref_counts,
        current_counts=cur_counts,
        reference_rows=n_ref,
        current_rows=n_cur,
        reference_constant=~np.isnan(ref_min) & (ref_min == ref_max),
        current_constant=np.isfinite(cur_min) & (cur_min == cur_max),
        current_min=cur_min,
        current_max=cur_max,
    )


@dataclass(frozen=True)
class _BinnedGroup:
    edges: np.ndarray
    reference_counts: np.ndarray
    current_counts: np.ndarray
    reference_min: np.ndarray
    reference_max: np.ndarray
    current_min: np.ndarray
    current_max: np.ndarray


def _bin_group(reference: np.ndarray, current: np.ndarray, quantiles: np.ndarray) -> _BinnedGroup:
    edges = row_quantiles(reference, quantiles)
    ref_counts, ref_min, ref_max = bin_counts(reference, edges)
    cur_counts, cur_min, cur_max = bin_counts(current, edges)
    return _BinnedGroup(edges, ref_counts, cur_counts, ref_min, ref_max, cur_min, cur_max)


def bin_counts(
    values: np.ndarray, edges: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows per bin of each feature (features x rows `values`, features x cuts `edges`), and
    each feature's min and max ignoring NaN.

    A value's bin is how many of the tests "x >= cut" and "x > cut" it passes over all cuts:
    (-inf, e1) is 0, {e1} is 1, (e1, e2) is 2, ...; NaN passes none and is moved to the last
    (missing) bin. A NaN cut (a reference without values) is passed by nothing.
    """
    k, n = values.shape
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
        part = values[:, start : start + slab]
        width = part.shape[1]
        idx, test, w = index[:, :width], passed[:, :width], wide[:, :width]
        idx.fill(0)
        for cut in cuts:
            np.greater_equal(part, cut, out=test)
            idx += test
            np.greater(part, cut, out=test)
            idx += test
        np.isnan(part, out=test)
        np.add(idx, test * index_dtype(missing_bin), out=idx, casting="unsafe")
        np.add(idx, offsets, out=w, casting="unsafe")
        counts += np.bincount(w.ravel(), minlength=k * n_bins)
    low, high = np.min(values, axis=1), np.max(values, axis=1)
    # min/max propagate NaN; only rows that have one need the slower NaN-skipping reduction.
    with_missing = np.isnan(low)
    if with_missing.any():
        with np.errstate(invalid="ignore"):
            low[with_missing] = np.fmin.reduce(values[with_missing], axis=1)
            high[with_missing] = np.fmax.reduce(values[with_missing], axis=1)
    return counts.reshape(k, n_bins), low, high


def feature_major(values: Any, name: str) -> np.ndarray:
    """Array-like (rows,) or (rows, features) as a C-contiguous (features x rows) float64."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 1:
        return array[None, :]
    if array.ndim == 2:
        return np.ascontiguousarray(array.T)
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
        ref.index = pd.Index(_category_labels(ref.index))
        cur.index = pd.Index(_category_labels(cur.index))
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
