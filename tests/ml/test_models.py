"""The four models behind one interface: fit, score in [0, 1], a validation-chosen threshold."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

import ml.models
from ml.datasets import LABEL_COLUMN
from ml.metrics import pr_auc
from ml.models import (
    InsufficientLabels,
    ModelError,
    NotFitted,
    ThresholdPolicy,
    UnknownModel,
    build_model,
)

MODEL_NAMES = ["isolation_forest", "lightgbm", "random_forest", "xgboost"]


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_each_model_scores_within_unit_interval_and_finds_the_planted_signal(
    name, fitted_models, split
):
    model = fitted_models[name]

    scores = model.score(split.test)

    assert scores.shape == (len(split.test),)
    assert np.all((scores >= 0) & (scores <= 1))
    assert 0 < model.threshold <= 1
    base_rate = split.test[LABEL_COLUMN].mean()
    # The planted signal is learnable: every model ranks anomalies far above chance.
    assert pr_auc(split.test[LABEL_COLUMN], scores) > 4 * base_rate
    assert np.array_equal(model.flag(split.test), scores >= model.threshold)


@pytest.mark.parametrize("name", ["lightgbm", "xgboost"])
def test_boosted_trees_stop_early_on_validation(name, fitted_models, fast_models):
    report = fitted_models[name].fit_report
    assert report.best_iteration is not None
    assert report.best_iteration < fast_models[name]["n_estimators"]


def test_supervised_models_beat_the_unsupervised_one(fitted_models, split):
    y = split.test[LABEL_COLUMN]
    unsupervised = pr_auc(y, fitted_models["isolation_forest"].score(split.test))
    for name in ("lightgbm", "xgboost", "random_forest"):
        assert pr_auc(y, fitted_models[name].score(split.test)) > unsupervised


def test_class_imbalance_is_weighted_unless_configured(fitted_models, split):
    y = split.train[LABEL_COLUMN]
    expected = np.sqrt((len(y) - y.sum()) / y.sum())
    assert fitted_models["lightgbm"].resolved_params["scale_pos_weight"] == pytest.approx(expected)
    assert fitted_models["xgboost"].resolved_params["scale_pos_weight"] == pytest.approx(expected)
    assert fitted_models["random_forest"].resolved_params["class_weight"] == "balanced_subsample"
    configured = build_model("lightgbm", {"n_estimators": 5, "scale_pos_weight": 2.0, "n_jobs": 1})
    configured.fit(split.train, split.validation)
    assert configured.resolved_params["scale_pos_weight"] == 2.0


@pytest.mark.parametrize("name", ["lightgbm", "xgboost", "random_forest"])
def test_categorical_features_carry_signal(name, split, fast_models):
    # Anomalies here are exactly the block trades in the pre-market: only the two categoricals
    # (plus one noise column) are given, so the model must use them properly.
    def relabel(frame):
        frame = frame.copy()
        frame[LABEL_COLUMN] = (frame["trade_type"] == "block") | (
            frame["session_type"] == "pre_market"
        )
        return frame

    train, validation, test = (relabel(f) for f in (split.train, split.validation, split.test))
    params = {k: v for k, v in fast_models[name].items() if k != "early_stopping_rounds"}
    model = build_model(name, params, features=("session_type", "trade_type", "price_zscore"))
    model.fit(train, validation)

    assert pr_auc(test[LABEL_COLUMN], model.score(test)) > 0.95


def test_unseen_category_level_scores_without_error(fitted_models, split):
    frame = split.test.head(20).copy()
    frame.loc[frame.index[:5], "session_type"] = "auction"
    frame.loc[frame.index[5:10], "trade_type"] = None
    for model in fitted_models.values():
        scores = model.score(frame)
        assert np.all((scores >= 0) & (scores <= 1))


def test_isolation_forest_threshold_travels_with_the_pickled_model(fitted_models, split):
    model = fitted_models["isolation_forest"]

    restored = pickle.loads(pickle.dumps(model))

    assert restored.threshold == model.threshold
    assert np.array_equal(restored.flag(split.test), model.flag(split.test))


def test_missing_values_are_scored(fitted_models, split):
    frame = split.test.head(50).copy()
    frame.loc[frame.index[::2], ["price_volatility_1h", "rsi_14"]] = np.nan
    frame.loc[frame.index[1], "volume_zscore"] = np.inf
    for model in fitted_models.values():
        assert np.isfinite(model.score(frame)).all()


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_a_single_row_scores_exactly_as_inside_a_large_batch(
    name, fitted_models, split, monkeypatch
):
    # Small batches take the single-thread fast paths, large ones the library's own (parallel)
    # call; lower the cut-off so that the test window is a "large" batch.
    monkeypatch.setattr(ml.models, "_PARALLEL_SCORING_ROWS", 500)
    monkeypatch.setattr(ml.models, "_THREADED_BOOSTING_ROWS", 500)
    model = fitted_models[name]
    frame = split.test.copy()
    frame.loc[frame.index[::9], ["rsi_14", "price_volatility_1h"]] = np.nan
    frame.loc[frame.index[::13], "volume_zscore"] = np.inf
    frame.loc[frame.index[::17], "trade_type"] = None
    frame.loc[frame.index[::19], "session_type"] = "auction"
    assert len(frame) >= 500

    in_batch = model.score(frame)
    rows = list(range(0, len(frame), 7))
    alone = np.array([model.score(frame.iloc[[i]])[0] for i in rows])
    in_small_batches = np.concatenate(
        [model.score(frame.iloc[i : i + 100]) for i in range(0, len(frame), 100)]
    )

    assert np.array_equal(alone, in_batch[rows])
    assert np.array_equal(in_small_batches, in_batch)


@pytest.mark.parametrize(("n_jobs", "expected"), [(2, "2"), (None, "0")])
def test_scoring_a_small_batch_leaves_xgboost_threads_as_configured(n_jobs, expected, split):
    model = build_model("xgboost", {"n_estimators": 5, "n_jobs": n_jobs})
    model.fit(split.train, split.validation)

    model.score(split.test.head(1))

    config = json.loads(model.estimator.get_booster().save_config())
    assert config["learner"]["generic_param"]["nthread"] == expected


def test_a_training_window_without_anomalies_is_refused(split):
    quiet = split.train.assign(**{LABEL_COLUMN: False})
    with pytest.raises(InsufficientLabels, match="anomalous and normal"):
        build_model("xgboost", {"n_estimators": 5}).fit(quiet, split.validation)


def test_scoring_before_fit_and_unknown_models_are_typed_errors(split):
    with pytest.raises(NotFitted, match="call fit"):
        build_model("random_forest").score(split.test)
    with pytest.raises(UnknownModel, match="lightgbm"):
        build_model("catboost")


def _alert_precision(validation, events, flags):
    """Detected events / (detected events + false flags), each event counted once."""
    flagged = validation[flags]
    detected = events[events["trade_id"].isin(flagged["trade_id"])]["event_id"].nunique()
    false_flags = int((~flagged[LABEL_COLUMN]).sum())
    return detected, detected / (detected + false_flags) if detected else 0.0


def test_event_recall_policy_finds_the_most_events_at_the_alert_precision(
    split, market, fast_models
):
    policy = ThresholdPolicy("event_recall", min_alert_precision=0.6)
    model = build_model("lightgbm", fast_models["lightgbm"], threshold_policy=policy)

    report = model.fit(split.train, split.validation, events=market.events)

    assert report.threshold_rule == "event_recall at alert precision >= 0.6"
    scores = model.score(split.validation)
    flags = scores >= model.threshold
    detected, precision = _alert_precision(split.validation, market.answer_key, flags)
    assert precision >= 0.6
    # Any lower threshold that detects one more event costs the precision.
    for lower in np.unique(scores[scores < model.threshold])[::-1]:
        more, lower_precision = _alert_precision(
            split.validation, market.answer_key, scores >= lower
        )
        if more > detected:
            assert lower_precision < 0.6
            break
    max_f1 = build_model("lightgbm", fast_models["lightgbm"])
    assert max_f1.fit(split.train, split.validation).threshold_rule == "max_f1"


def test_event_recall_policy_falls_back_to_max_f1_and_says_so(
    split, market, fitted_models, fast_models
):
    # Validation whose only anomaly is its most ordinary-looking trade: to flag it, every
    # threshold flags nearly everything, so none reaches 100 % precision.
    ordinary = split.validation["trade_id"].iloc[
        int(np.argmin(fitted_models["lightgbm"].score(split.validation)))
    ]
    validation = split.validation.assign(**{LABEL_COLUMN: split.validation["trade_id"] == ordinary})
    policy = ThresholdPolicy("event_recall", min_alert_precision=1.0)
    model = build_model("lightgbm", fast_models["lightgbm"], threshold_policy=policy)

    report = model.fit(split.train, validation, events=market.events)

    assert report.threshold_rule == "max_f1 (no threshold reached alert precision 1)"


def test_threshold_policy_refuses_unknown_rules_and_precisions():
    with pytest.raises(ModelError, match="max_f1 or event_recall"):
        ThresholdPolicy("max_recall")
    with pytest.raises(ModelError, match="within"):
        ThresholdPolicy("event_recall", min_alert_precision=0)
