"""The registered pyfunc: score, flag and risk level, carrying its threshold and features."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.datasets import MissingColumns
from ml.pyfunc import (
    InvalidRiskLevels,
    TradewatchModel,
    feature_names,
    predictor,
    risk_levels_for,
)


def test_risk_levels_follow_the_given_cutoffs():
    scores = np.array([0.0, 0.19, 0.2, 0.49, 0.5, 0.79, 0.8, 1.0])
    assert list(risk_levels_for(scores, {"critical": 0.8, "high": 0.5, "medium": 0.2})) == [
        "low",
        "low",
        "medium",
        "medium",
        "high",
        "high",
        "critical",
        "critical",
    ]
    assert list(risk_levels_for(scores, {"critical": 0.95, "high": 0.7, "medium": 0.45})) == [
        "low",
        "low",
        "low",
        "medium",
        "medium",
        "high",
        "high",
        "critical",
    ]


@pytest.mark.parametrize(
    "levels",
    [
        {"critical": 0.5, "high": 0.8, "medium": 0.2},
        {"critical": 0.8, "high": 0.5},
        {"critical": 1.2, "high": 0.5, "medium": 0.2},
    ],
)
def test_inconsistent_risk_levels_are_refused(levels, fitted_models):
    with pytest.raises(InvalidRiskLevels):
        TradewatchModel(fitted_models["lightgbm"], levels)


def test_in_memory_pyfunc_output_columns_flags_and_levels(fitted_models, split):
    model = fitted_models["xgboost"]
    wrapper = TradewatchModel(model, {"critical": 0.9, "high": 0.6, "medium": 0.3})

    out = wrapper.predict(None, split.test)

    assert list(out.columns) == ["score", "flag", "risk_level"]
    assert len(out) == len(split.test)
    np.testing.assert_allclose(out["score"], model.score(split.test))
    assert (out["flag"] == (out["score"] >= model.threshold)).all()
    assert set(out.loc[out["score"] >= 0.9, "risk_level"]) <= {"critical"}
    assert set(out.loc[out["score"] < 0.3, "risk_level"]) <= {"low"}


def test_logged_model_carries_threshold_features_and_scores_like_the_original(
    register_model, registry, fitted_models, split
):
    model = fitted_models["random_forest"]
    version = register_model(model)

    loaded = registry.load_version(version).model

    meta = loaded.metadata.metadata
    assert meta["threshold"] == pytest.approx(model.threshold)
    assert meta["features"] == list(model.features)
    assert meta["algorithm"] == "random_forest"
    assert feature_names(loaded) == list(model.features)
    # Warehouse-typed input (integer columns, extra columns) is cast to the signature.
    frame = split.test.head(300).copy()
    frame["hour_of_day"] = frame["hour_of_day"].astype("int64")
    out = predictor(loaded)(frame)
    np.testing.assert_allclose(out["score"], model.score(frame))
    assert set(out["risk_level"]) <= {"critical", "high", "medium", "low"}
    assert out["flag"].dtype == bool


def test_a_frame_missing_a_feature_is_refused_by_name(fitted_models, split):
    wrapper = TradewatchModel(fitted_models["lightgbm"])
    with pytest.raises(MissingColumns, match="rsi_14"):
        predictor(wrapper)(split.test.drop(columns=["rsi_14"]))


def test_a_loaded_model_scores_a_lone_trade_as_it_does_inside_a_batch(
    register_model, registry, fitted_models, split
):
    version = register_model(fitted_models["lightgbm"])
    predict = predictor(registry.load_version(version).model)
    # warehouse-typed rows: integer clock columns, categoricals missing or unseen
    frame = split.test.head(400).copy()
    frame["hour_of_day"] = frame["hour_of_day"].astype("int64")
    frame.loc[frame.index[::11], "trade_type"] = None
    frame.loc[frame.index[::13], "session_type"] = "auction"
    frame.loc[frame.index[::7], "rsi_14"] = np.nan

    in_batch = predict(frame)
    rows = list(range(0, len(frame), 9))
    alone = pd.concat([predict(frame.iloc[[i]]) for i in rows], ignore_index=True)

    pd.testing.assert_frame_equal(alone, in_batch.iloc[rows].reset_index(drop=True))
