"""Drift statistics: PSI over reference quantile bins, JS distance, prediction and performance
drift, and the drift file. Given two windows of trades, when they are compared, then the
features a user would call drifted (and only those) are flagged."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import jensenshannon

from ml.drift import (
    PSI_EPSILON,
    DriftInputError,
    compute_drift,
    jensen_shannon_distance,
    numeric_binning,
    population_stability_index,
    write_drift_ndjson,
)

NUMERIC = ("volume_zscore", "price_change_pct", "rsi_14", "trade_intensity_1m")
CATEGORICAL = ("session_type", "trade_type")
END = datetime(2024, 3, 8, 21, 0, tzinfo=UTC)
WINDOWS = {
    "reference_window": (END - timedelta(days=8), END - timedelta(days=1)),
    "current_window": (END - timedelta(days=1), END),
}


def trades(rows: int, seed: int) -> pd.DataFrame:
    """Feature rows shaped like gold_trade_features: continuous, tied and categorical columns."""
    rng = np.random.default_rng(seed)
    change = rng.normal(0, 0.05, rows)
    change[rng.random(rows) < 0.4] = 0.0  # unchanged prices: a point mass
    sessions = np.array(["pre_market", "regular", "after_hours"], dtype=object)
    types = np.array(["block", "standard", "odd_lot"], dtype=object)
    return pd.DataFrame(
        {
            "volume_zscore": rng.normal(0, 1, rows),
            "price_change_pct": change,
            "rsi_14": np.clip(rng.normal(50, 12, rows), 0, 100),
            "trade_intensity_1m": rng.poisson(30, rows).astype(float),
            "session_type": sessions[rng.choice(3, rows, p=[0.1, 0.8, 0.1])],
            "trade_type": types[rng.choice(3, rows, p=[0.02, 0.6, 0.38])],
        }
    )


def drift(reference: pd.DataFrame, current: pd.DataFrame, **kwargs):
    return compute_drift(
        reference,
        current,
        numeric_features=NUMERIC,
        categorical_features=CATEGORICAL,
        **WINDOWS,
        **kwargs,
    )


def by_feature(report) -> dict:
    return {f.feature: f for f in report.features}


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return trades(20_000, seed=1)


def test_identical_windows_have_zero_psi_and_nothing_drifts(reference):
    report = drift(reference, reference.copy())

    assert [f.statistic for f in report.features] == [0.0] * len(NUMERIC + CATEGORICAL)
    assert not report.drifted_features
    assert report.drifted_share == 0.0
    assert not report.data_drift


def test_a_fresh_sample_of_the_same_market_does_not_drift(reference):
    report = drift(reference, trades(20_000, seed=2))

    assert not report.drifted_features
    assert max(f.statistic for f in report.features) < 0.02


def test_a_two_sigma_shift_is_detected_in_that_feature_only(reference):
    current = trades(20_000, seed=2)
    current["volume_zscore"] += 2.0

    features = by_feature(drift(reference, current))

    assert features["volume_zscore"].drifted
    assert features["volume_zscore"].statistic > 1.0
    assert [f for f, v in features.items() if v.drifted] == ["volume_zscore"]


def test_values_beyond_the_reference_range_count(reference):
    # 30 % of the current window lies above anything seen in the reference: only the open
    # outer bin can hold them.
    current = trades(20_000, seed=2)
    beyond = np.random.default_rng(3).random(len(current)) < 0.3
    current.loc[beyond, "rsi_14"] = reference["rsi_14"].max() + 5.0

    features = by_feature(drift(reference, current))

    assert features["rsi_14"].drifted
    assert features["rsi_14"].statistic > 0.3


def test_a_new_category_is_detected_and_named(reference):
    current = trades(20_000, seed=2)
    auction = np.random.default_rng(4).random(len(current)) < 0.15
    current.loc[auction, "session_type"] = "closing_auction"

    features = by_feature(drift(reference, current))

    assert features["session_type"].drifted
    assert features["session_type"].statistic_name == "js_distance"
    assert "closing_auction" in features["session_type"].note
    assert not features["trade_type"].drifted


def test_a_feature_collapsed_to_a_constant_is_detected(reference):
    # An upstream bug pins the feature to its old median: every value lands in one bin.
    current = trades(20_000, seed=2)
    current["volume_zscore"] = float(np.median(reference["volume_zscore"]))

    report = drift(reference, current)
    feature = by_feature(report)["volume_zscore"]

    assert feature.drifted
    assert "collapsed" in feature.note
    assert any("volume_zscore" in note for note in report.notes)


def test_a_constant_reference_tells_values_below_it_apart():
    # The reference was pinned at 100 (RSI with no losses); now every value is below it.
    # Without a bin of its own for the tied value, "all at 100" and "all below 100" would
    # share a bin and look identical.
    reference = np.full((5_000, 1), 100.0)
    current = np.random.default_rng(5).uniform(60, 99, (5_000, 1))

    assert population_stability_index(reference, current)[0] > 1.0
    assert population_stability_index(reference, reference.copy())[0] == 0.0


def test_the_callers_data_is_left_as_it_was(reference):
    scores = pd.Series(np.random.default_rng(6).uniform(size=3_000))
    column = np.random.default_rng(7).normal(size=(3_000, 1))
    before_scores, before_column, before_frame = scores.copy(), column.copy(), reference.copy()

    drift(reference, reference, reference_scores=scores, current_scores=scores)
    population_stability_index(column, column[::-1])

    pd.testing.assert_series_equal(scores, before_scores)
    np.testing.assert_array_equal(column, before_column)
    pd.testing.assert_frame_equal(reference, before_frame)


def test_a_change_in_the_missing_rate_counts_as_drift(reference):
    current = trades(20_000, seed=2)
    current.loc[current.index[:6_000], "rsi_14"] = np.nan

    assert by_feature(drift(reference, current))["rsi_14"].drifted


def straightforward_psi(reference: np.ndarray, current: np.ndarray, bins: int) -> float:
    """PSI as documented, written plainly: one mask per bin, one feature at a time."""
    values = reference[~np.isnan(reference)]
    cuts = np.unique(np.quantile(values, np.arange(1, bins) / bins))

    def shares(x: np.ndarray) -> np.ndarray:
        counts = [np.sum(x < cuts[0])]
        for i, cut in enumerate(cuts):
            counts.append(np.sum(x == cut))
            above = x > cut
            counts.append(np.sum(above & (x < cuts[i + 1])) if i + 1 < len(cuts) else np.sum(above))
        counts.append(np.sum(np.isnan(x)))
        return np.maximum(np.array(counts) / len(x), PSI_EPSILON)

    p, q = shares(reference), shares(current)
    return float(np.sum((q - p) * np.log(q / p)))


@pytest.mark.parametrize("workers", [1, 2])
def test_psi_agrees_with_a_straightforward_implementation_on_random_data(workers):
    rng = np.random.default_rng(11)
    for trial in range(12):
        n_ref, n_cur = rng.integers(50, 4_000, size=2)
        bins = int(rng.choice([4, 10, 20]))
        reference = rng.normal(size=(n_ref, 6))
        current = rng.normal(rng.uniform(-1, 1), rng.uniform(0.5, 2), size=(n_cur, 6))
        reference[:, 1], current[:, 1] = np.round(reference[:, 1]), np.round(current[:, 1])
        reference[:, 2] = rng.exponential(size=n_ref) * (rng.random(n_ref) < 0.5)
        current[:, 2] = rng.exponential(size=n_cur) * (rng.random(n_cur) < 0.2)
        reference[rng.random(n_ref) < 0.05, 3] = np.nan
        current[rng.random(n_cur) < 0.25, 3] = np.nan
        current[:5, 4] = [np.inf, -np.inf, 1e300, -1e300, 0.0]
        reference[:, 5] = 2.5  # constant reference

        got = population_stability_index(reference, current, bins=bins, workers=workers)
        expected = [straightforward_psi(reference[:, j], current[:, j], bins) for j in range(6)]

        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9, err_msg=f"trial {trial}")


def test_reference_and_current_bins_are_counted_alike():
    # The reference is binned by bisection over its sorted rows, the current window by
    # comparisons: the same data on both sides must give the same counts.
    rng = np.random.default_rng(12)
    data = np.round(rng.normal(size=(3, 10_001)), 1)
    data[0, ::7] = np.nan

    binning = numeric_binning(data.copy(), data.copy())

    np.testing.assert_array_equal(binning.reference_counts, binning.current_counts)
    assert binning.reference_counts.sum(axis=1).tolist() == [10_001] * 3


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


def test_compute_drift_js_equals_scipy_on_the_category_counts(reference):
    current = trades(20_000, seed=2)
    current.loc[current.index[:500], "trade_type"] = None  # missing is a category too

    got = by_feature(drift(reference, current))["trade_type"].statistic

    ref_counts = reference["trade_type"].value_counts()
    cur_counts = current["trade_type"].fillna("(missing)").value_counts()
    cats = sorted(set(ref_counts.index) | set(cur_counts.index))
    expected = jensenshannon(
        ref_counts.reindex(cats, fill_value=0).to_numpy(float),
        cur_counts.reindex(cats, fill_value=0).to_numpy(float),
        base=2,
    )
    assert got == pytest.approx(expected, abs=1e-12)


def test_prediction_drift_is_psi_on_the_scores(reference):
    rng = np.random.default_rng(14)
    reference_scores = rng.beta(1, 20, 10_000)

    same = drift(
        reference,
        reference,
        reference_scores=reference_scores,
        current_scores=rng.beta(1, 20, 10_000),
    )
    shifted = drift(
        reference,
        reference,
        reference_scores=reference_scores,
        current_scores=rng.beta(2, 5, 10_000),
    )

    assert same.prediction is not None and not same.prediction_drift
    assert shifted.prediction.drifted and shifted.prediction.statistic_name == "psi"
    assert shifted.prediction.kind == "prediction"
    assert not shifted.data_drift  # the inputs did not move: only the model's output did


def test_performance_drop_beyond_the_threshold_is_drift(reference):
    rng = np.random.default_rng(15)
    labels = rng.random(4_000) < 0.1
    good_scores = np.where(labels, rng.uniform(0.5, 1, 4_000), rng.uniform(0, 0.6, 4_000))
    noisy_scores = rng.uniform(0, 1, 4_000)
    partly_labelled = labels.astype(object)
    partly_labelled[:1_000] = None  # not every trade has a label yet

    kept = drift(
        reference,
        reference,
        reference_scores=good_scores,
        current_scores=good_scores,
        current_labels=partly_labelled,
        reference_labels=labels,
    )
    dropped = drift(
        reference,
        reference,
        reference_scores=good_scores,
        current_scores=noisy_scores,
        current_labels=partly_labelled,
        reference_pr_auc=0.9,
    )

    assert abs(kept.performance.statistic) < 0.05
    assert not kept.performance_drift
    assert kept.performance.current_rows == 3_000
    assert dropped.performance_drift
    assert dropped.performance.statistic > 0.5
    assert dropped.performance.statistic_name == "pr_auc_drop"


def test_performance_is_skipped_with_a_note_when_labels_are_one_class(reference):
    scores = np.random.default_rng(16).uniform(size=1_000)

    report = drift(
        reference,
        reference,
        reference_scores=scores,
        current_scores=scores,
        current_labels=np.zeros(1_000, dtype=bool),
        reference_pr_auc=0.8,
    )

    assert report.performance is None
    assert any("performance drift not checked" in note for note in report.notes)


def test_drift_file_follows_the_shared_contract(reference, tmp_path):
    current = trades(5_000, seed=2)
    current["volume_zscore"] += 2.0
    report = drift(reference, current, run_id="run-42", run_ts=END)

    path = write_drift_ndjson(report, tmp_path / "monitoring" / "drift")

    assert path.name == "drift-run-42.ndjson"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["feature"] for r in rows] == list(NUMERIC + CATEGORICAL)
    assert set(rows[0]) == {
        "run_id",
        "run_ts",
        "feature",
        "kind",
        "statistic_name",
        "statistic",
        "threshold",
        "drifted",
        "reference_rows",
        "current_rows",
        "reference_start",
        "reference_end",
        "current_start",
        "current_end",
    }
    zscore = rows[0]
    assert zscore["drifted"] is True and zscore["kind"] == "numeric"
    assert zscore["statistic_name"] == "psi" and zscore["threshold"] == 0.2
    assert zscore["reference_rows"] == 20_000 and zscore["current_rows"] == 5_000
    assert zscore["run_ts"] == "2024-03-08T21:00:00.000Z"
    assert zscore["reference_start"] == "2024-02-29T21:00:00.000Z"
    assert rows[4]["kind"] == "categorical" and rows[4]["statistic_name"] == "js_distance"
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left over
    with pytest.raises(FileExistsError):
        write_drift_ndjson(report, path.parent)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda ref, cur: (ref, cur.drop(columns=["rsi_14"])),
            "current window lacks feature columns: rsi_14",
        ),
        (lambda ref, cur: (ref.iloc[:0], cur), "reference window has no rows"),
        (
            lambda ref, cur: (ref, cur.assign(rsi_14="high")),
            "'rsi_14' in the current window is not numeric",
        ),
    ],
)
def test_bad_windows_fail_with_one_clear_line(reference, mutate, message):
    ref, cur = mutate(reference, trades(100, seed=2))

    with pytest.raises(DriftInputError, match=message) as caught:
        drift(ref, cur)

    assert "\n" not in str(caught.value)


def test_a_window_without_timezone_is_refused(reference):
    with pytest.raises(DriftInputError, match="timezone"):
        compute_drift(
            reference,
            reference,
            numeric_features=NUMERIC,
            reference_window=(datetime(2024, 3, 1), datetime(2024, 3, 8)),
            current_window=WINDOWS["current_window"],
        )
