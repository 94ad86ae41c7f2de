"""Drift statistics: the fast PSI held to the plain reference definition on random inputs and
edge cases, the quantile cuts held to numpy, JS distance to scipy, and the PR-AUC drop."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon

from ml.drift_statistics import (
    PSI_EPSILON,
    DriftInputError,
    jensen_shannon_distance,
    linear_quantiles,
    numeric_binning,
    performance_drop,
    population_stability_index,
    psi_reference,
)


def random_column(rng: np.random.Generator, rows: int, shape: str) -> np.ndarray:
    """One feature column of a given shape: the kinds of data gold features hold."""
    if shape == "continuous":
        return rng.normal(rng.uniform(-1, 1), rng.uniform(0.5, 2), rows)
    if shape == "integers":  # counts: many ties
        return rng.poisson(3, rows).astype(float)
    if shape == "point_mass":  # unchanged prices: many exact zeros
        return rng.exponential(size=rows) * (rng.random(rows) < 0.5)
    if shape == "missing":
        column = rng.normal(size=rows)
        column[rng.random(rows) < rng.uniform(0, 0.5)] = np.nan
        return column
    if shape == "all_missing":
        return np.full(rows, np.nan)
    if shape == "constant":
        return np.full(rows, 2.5)
    if shape == "infinite":
        column = rng.normal(size=rows)
        column[rng.random(rows) < 0.1] = rng.choice([np.inf, -np.inf])
        return column
    if shape == "far_away":  # beyond the reference range: only the open outer bins hold it
        return rng.normal(50, 1, rows)
    raise ValueError(shape)


SHAPES = (
    "continuous", "integers", "point_mass", "missing", "all_missing", "constant", "infinite",
    "far_away",
)


@pytest.mark.parametrize("workers", [1, 2])
def test_fast_psi_equals_the_reference_definition_on_random_inputs(workers):
    # Given many random pairs of windows, of every shape, from one row to thousands,
    rng = np.random.default_rng(11)
    for trial in range(120):
        n_ref = int(rng.choice([1, 2, 3, int(rng.integers(4, 3_000))]))
        n_cur = int(rng.choice([1, 2, int(rng.integers(3, 3_000))]))
        bins = int(rng.choice([2, 3, 4, 10, 20]))
        shapes = [(str(rng.choice(SHAPES)), str(rng.choice(SHAPES))) for _ in range(5)]
        reference = np.column_stack([random_column(rng, n_ref, r) for r, _ in shapes])
        current = np.column_stack([random_column(rng, n_cur, c) for _, c in shapes])

        # when PSI is computed the fast way and the plain way,
        got = population_stability_index(reference, current, bins=bins, workers=workers)
        expected = [
            psi_reference(reference[:, j], current[:, j], bins=bins) for j in range(len(shapes))
        ]

        # then they agree for every feature.
        np.testing.assert_allclose(
            got, expected, rtol=0, atol=1e-9, err_msg=f"trial {trial}: {shapes}, bins {bins}"
        )


def test_the_reference_psi_is_the_documented_formula():
    # Reference 0..9 with 2 bins: the cut is the median 4.5; bins below, at, above, missing.
    reference = np.arange(10.0)
    current = np.array([0.0, 1.0, 2.0, 3.0, 4.5, np.nan, np.nan, np.nan])
    r = np.maximum(np.array([5, 0, 5, 0]) / 10, PSI_EPSILON)
    c = np.maximum(np.array([4, 1, 0, 3]) / 8, PSI_EPSILON)

    expected = float(np.sum((c - r) * np.log(c / r)))

    assert psi_reference(reference, current, bins=2) == pytest.approx(expected, abs=1e-12)
    assert population_stability_index(reference, current, bins=2)[0] == pytest.approx(
        expected, abs=1e-12
    )


def test_a_single_reference_value_still_tells_below_at_and_above_apart():
    assert psi_reference([3.0], [3.0, 3.0]) == 0.0
    assert population_stability_index([3.0], [2.0, 4.0])[0] == pytest.approx(
        psi_reference([3.0], [2.0, 4.0])
    )
    assert psi_reference([3.0], [2.0, 4.0]) > 1.0


def test_a_constant_reference_tells_values_below_it_apart():
    # The reference was pinned at 100 (RSI with no losses); now every value is below it.
    # Without a bin of its own for the tied value, "all at 100" and "all below 100" would
    # share a bin and look identical.
    reference = np.full((5_000, 1), 100.0)
    current = np.random.default_rng(5).uniform(60, 99, (5_000, 1))

    assert population_stability_index(reference, current)[0] > 1.0
    assert population_stability_index(reference, reference.copy())[0] == 0.0


def test_the_callers_arrays_are_left_as_they_were():
    column = np.random.default_rng(7).normal(size=(3_000, 2))
    column[::5, 1] = np.nan
    before = column.copy()

    population_stability_index(column, column[::-1])

    np.testing.assert_array_equal(column, before)


def test_reference_and_current_bins_are_counted_alike():
    rng = np.random.default_rng(12)
    data = np.round(rng.normal(size=(3, 10_001)), 1)
    data[0, ::7] = np.nan

    binning = numeric_binning(data, data.copy())

    np.testing.assert_array_equal(binning.reference_counts, binning.current_counts)
    assert binning.reference_counts.sum(axis=1).tolist() == [10_001] * 3
    assert binning.psi.tolist() == [0.0] * 3


def test_cuts_are_numpys_linear_quantiles():
    rng = np.random.default_rng(13)
    quantiles = np.arange(1, 10) / 10
    for rows in (1, 2, 7, 1_000):
        values = np.round(rng.normal(size=rows), 1)
        np.testing.assert_array_equal(
            linear_quantiles(values, quantiles), np.quantile(values, quantiles)
        )


@pytest.mark.parametrize(
    ("values", "quantile", "expected"),
    [
        ([-math.inf, 1.0, 2.0, 3.0], 0.1, -math.inf),  # between -inf and 1
        ([1.0, 2.0, 3.0, math.inf], 0.9, math.inf),  # between 3 and +inf
        ([1.0, 2.0, 3.0, math.inf], 1.0, math.inf),  # on +inf itself
        ([1.0, math.inf], 0.0, 1.0),  # on a finite value next to +inf
        ([-math.inf, math.inf], 0.5, -math.inf),
        ([math.inf, math.inf], 0.5, math.inf),
    ],
)
def test_an_infinite_neighbour_gives_the_limit_not_nan(values, quantile, expected):
    # numpy's interpolation gives NaN here (inf - inf); a NaN cut would bin nothing.
    assert linear_quantiles(np.array(values), np.array([quantile]))[0] == expected


def test_windows_without_rows_are_refused():
    with pytest.raises(DriftInputError, match="no rows"):
        psi_reference([], [1.0])
    with pytest.raises(DriftInputError, match="current window has no rows"):
        population_stability_index([1.0, 2.0], np.empty(0))


def test_js_distance_matches_scipy_base_2():
    rng = np.random.default_rng(13)
    for _ in range(50):
        width = int(rng.integers(2, 12))
        p = rng.integers(0, 1_000, width).astype(float)
        q = rng.integers(0, 1_000, width).astype(float)
        p[rng.random(width) < 0.3] = 0  # categories missing from one window
        p[0] += 1
        q[-1] += 1

        got = jensen_shannon_distance(p, q)[0]

        assert got == pytest.approx(jensenshannon(p, q, base=2), abs=1e-12)
    assert jensen_shannon_distance([5, 0], [0, 5])[0] == pytest.approx(1.0)


def test_performance_drop_is_reference_minus_current_pr_auc_on_labelled_rows():
    labels = np.array([True, False, True, False, None, None], dtype=object)
    perfect = np.array([0.9, 0.1, 0.8, 0.2, 0.5, 0.5])
    inverted = np.array([0.1, 0.9, 0.2, 0.8, 0.5, 0.5])

    drop, reference, current, reference_rows, current_rows = performance_drop(
        labels, inverted, reference_labels=labels, reference_scores=perfect
    )

    # Inverted: the positives rank 3rd and 4th, average precision (1/3 + 2/4) / 2.
    assert reference == 1.0 and current == pytest.approx(5 / 12)
    assert drop == pytest.approx(7 / 12)
    assert (reference_rows, current_rows) == (4, 4)  # unlabelled rows left out
    assert performance_drop(
        np.zeros(4, dtype=bool), perfect[:4], reference_pr_auc=0.8
    ) == "the current window's 4 labelled rows are all of one class"
