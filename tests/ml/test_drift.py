"""The drift check: given two windows of trades, when they are compared, then the features a
user would call drifted (and only those) are flagged, with prediction and performance drift
where the model's scores and labels are given. (The statistics themselves are tested against
their reference definitions in test_drift_statistics.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import jensenshannon

from ml.drift import DriftOptions, ModelScores, compute_drift
from ml.drift_windows import DriftInputError

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


def test_the_callers_data_is_left_as_it_was(reference):
    scores = pd.Series(np.random.default_rng(6).uniform(size=3_000))
    current = trades(20_000, seed=2)
    current["volume_zscore"] += 2.0  # drifted: its histogram is drawn from the windows too
    before_scores, before_frame, before_current = scores.copy(), reference.copy(), current.copy()

    drift(reference, current, scores=ModelScores(scores, scores[::-1]))

    pd.testing.assert_series_equal(scores, before_scores)
    pd.testing.assert_frame_equal(reference, before_frame)
    pd.testing.assert_frame_equal(current, before_current)


def test_a_change_in_the_missing_rate_counts_as_drift(reference):
    current = trades(20_000, seed=2)
    current.loc[current.index[:6_000], "rsi_14"] = np.nan

    assert by_feature(drift(reference, current))["rsi_14"].drifted


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
    fresh, moved = rng.beta(1, 20, 10_000), rng.beta(2, 5, 10_000)

    same = drift(reference, reference, scores=ModelScores(reference_scores, fresh))
    shifted = drift(reference, reference, scores=ModelScores(reference_scores, moved))

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
        scores=ModelScores(
            good_scores, good_scores, current_labels=partly_labelled, reference_labels=labels
        ),
    )
    dropped = drift(
        reference,
        reference,
        scores=ModelScores(
            good_scores, noisy_scores, current_labels=partly_labelled, reference_pr_auc=0.9
        ),
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
        scores=ModelScores(
            scores, scores, current_labels=np.zeros(1_000, dtype=bool), reference_pr_auc=0.8
        ),
    )

    assert report.performance is None
    assert any("performance drift not checked" in note for note in report.notes)


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


def test_the_options_set_the_thresholds_of_every_kind(reference):
    current = trades(20_000, seed=2)
    current["volume_zscore"] += 0.3  # a small shift: PSI around 0.1
    rng = np.random.default_rng(17)
    scores = ModelScores(rng.beta(1, 20, 5_000), rng.beta(1.3, 20, 5_000))

    default = by_feature(drift(reference, current, scores=scores))
    strict = by_feature(drift(
        reference, current, scores=scores,
        options=DriftOptions(psi_threshold=0.05, prediction_psi_threshold=10.0),
    ))

    assert not default["volume_zscore"].drifted and default["volume_zscore"].threshold == 0.2
    assert default["score"].threshold == 0.2  # the scores share the PSI threshold by default
    assert strict["volume_zscore"].drifted and strict["volume_zscore"].threshold == 0.05
    assert strict["score"].threshold == 10.0 and not strict["score"].drifted
    assert strict["session_type"].threshold == 0.1


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"bins": 1}, "bins must be at least 2, got 1"),
        ({"psi_threshold": 0}, "psi_threshold must be positive, got 0"),
        ({"js_threshold": -0.1}, "js_threshold must be positive"),
        ({"workers": 0}, "workers must be at least 1"),
    ],
)
def test_options_that_cannot_judge_anything_are_refused(options, message):
    with pytest.raises(DriftInputError, match=message):
        DriftOptions(**options)
