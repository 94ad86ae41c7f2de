"""The MLflow pyfunc that is registered, gated and used for scoring.

It wraps a fitted AnomalyModel and returns, per input row, `score` (0–1), `flag` (score at or
above the model's validation-chosen threshold) and `risk_level` (critical, high, medium or
low by the configured score cut-offs). It carries its threshold, feature list and cut-offs, so
a loaded model needs nothing else to score.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import mlflow
import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.models import infer_signature
from mlflow.models.model import ModelInfo
from mlflow.pyfunc import PythonModel

from core.schema import CATEGORY_LEVELS
from ml.datasets import MissingColumns, normalise_features
from ml.models import AnomalyModel, NotFitted

DEFAULT_RISK_LEVELS: dict[str, float] = {"critical": 0.8, "high": 0.5, "medium": 0.2}
RISK_ORDER: tuple[str, ...] = ("critical", "high", "medium")
PREDICTION_COLUMNS: tuple[str, ...] = ("score", "flag", "risk_level")
# Pinned to what is installed, so that logging does not spend seconds resolving requirements.
# Each entry lists the distributions that provide the module, the first installed one wins
# (xgboost-cpu is the `xgboost` module without the CUDA libraries).
_REQUIREMENTS: tuple[tuple[str, ...], ...] = (
    ("mlflow",),
    ("lightgbm",),
    ("xgboost", "xgboost-cpu"),
    ("scikit-learn",),
    ("pandas",),
    ("numpy",),
    ("cloudpickle",),
)


class InvalidRiskLevels(ValueError):
    """Risk cut-offs must be critical > high > medium, all within (0, 1]."""


def validate_risk_levels(levels: Mapping[str, float]) -> dict[str, float]:
    """Return the cut-offs as a dict after checking names and order."""
    names = set(levels)
    if names != set(RISK_ORDER):
        raise InvalidRiskLevels(
            f"risk levels must be exactly {', '.join(RISK_ORDER)} (got {', '.join(sorted(names))})"
        )
    cutoffs = [float(levels[name]) for name in RISK_ORDER]
    if not (1 >= cutoffs[0] > cutoffs[1] > cutoffs[2] > 0):
        raise InvalidRiskLevels(
            "risk levels must satisfy 1 ≥ critical > high > medium > 0 "
            f"(got critical={cutoffs[0]}, high={cutoffs[1]}, medium={cutoffs[2]})"
        )
    return {name: float(levels[name]) for name in RISK_ORDER}


def risk_levels_for(scores: np.ndarray, levels: Mapping[str, float]) -> np.ndarray:
    """critical ≥ levels['critical'], high ≥ levels['high'], medium ≥ levels['medium'], else low."""
    scores = np.asarray(scores, dtype="float64")
    return np.select(
        [scores >= levels["critical"], scores >= levels["high"], scores >= levels["medium"]],
        ["critical", "high", "medium"],
        default="low",
    ).astype(object)


def model_input(frame: pd.DataFrame, features: Sequence[str]) -> pd.DataFrame:
    """The feature columns in the logged signature's types (float64 and str)."""
    missing = [c for c in features if c not in frame.columns]
    if missing:
        raise MissingColumns(f"rows to score lack feature column(s) {', '.join(missing)}")
    return normalise_features(frame.loc[:, list(features)], features)


# PythonModel imported by name: to a type checker the attribute `mlflow.pyfunc` is a lazy loader.
class TradewatchModel(PythonModel):
    """Score, flag and risk level for trades, from a fitted AnomalyModel."""

    def __init__(
        self, model: AnomalyModel, risk_levels: Mapping[str, float] = DEFAULT_RISK_LEVELS
    ) -> None:
        if model.threshold is None:
            raise NotFitted(f"{model.name} must be fitted before it is wrapped for MLflow")
        self.model = model
        self.risk_levels = validate_risk_levels(risk_levels)

    @property
    def threshold(self) -> float:
        assert self.model.threshold is not None, "checked when the model was wrapped"
        return float(self.model.threshold)

    @property
    def features(self) -> tuple[str, ...]:
        return self.model.features

    @property
    def algorithm(self) -> str:
        return self.model.name

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        """One row per input row, same order: score, flag, risk_level."""
        scores = self.model.score(model_input)
        return pd.DataFrame(
            {
                "score": scores,
                "flag": scores >= self.threshold,
                "risk_level": risk_levels_for(scores, self.risk_levels),
            },
            index=model_input.index,
        )

    def metadata(self) -> dict[str, Any]:
        """What the registered model carries besides its weights."""
        return {
            "algorithm": self.algorithm,
            "threshold": self.threshold,
            "features": list(self.features),
            "categorical_levels": {k: list(v) for k, v in CATEGORY_LEVELS.items()},
            "risk_levels": dict(self.risk_levels),
        }


def _installed(distributions: tuple[str, ...]) -> str:
    for name in distributions:
        try:
            return f"{name}=={importlib.metadata.version(name)}"
        except importlib.metadata.PackageNotFoundError:
            continue
    raise importlib.metadata.PackageNotFoundError(" or ".join(distributions))


def pip_requirements() -> list[str]:
    """Installed versions of what the pickled model needs to load."""
    return [_installed(distributions) for distributions in _REQUIREMENTS]


def log_tradewatch_model(
    wrapper: TradewatchModel, sample: pd.DataFrame, *, name: str = "model"
) -> ModelInfo:
    """Log the pyfunc into the active run with its signature; return the logged model's info.

    `sample` supplies the signature and input example (a few rows are enough).
    """
    example = model_input(sample.head(5), wrapper.features)
    signature = infer_signature(example, wrapper.predict(None, example))
    return mlflow.pyfunc.log_model(
        name=name,
        python_model=wrapper,
        signature=signature,
        input_example=example,
        pip_requirements=pip_requirements(),
        metadata=wrapper.metadata(),
    )


def predictor(
    model: Any, features: Sequence[str] | None = None
) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """frame → predictions (score, flag, risk_level) for a loaded pyfunc or a TradewatchModel,
    with inputs cast to the signature's types."""
    names = list(features) if features is not None else feature_names(model)
    if isinstance(model, mlflow.pyfunc.PythonModel):

        def call(inputs: pd.DataFrame) -> pd.DataFrame:
            return model.predict(None, inputs)
    else:
        call = model.predict

    def predict(frame: pd.DataFrame) -> pd.DataFrame:
        return call(model_input(frame, names)).reset_index(drop=True)

    return predict


def feature_names(loaded: Any) -> list[str]:
    """The input columns of a TradewatchModel or a loaded pyfunc (signature, else metadata)."""
    if isinstance(loaded, TradewatchModel):
        return list(loaded.features)
    signature = getattr(getattr(loaded, "metadata", None), "signature", None)
    if signature is not None and signature.inputs is not None:
        return list(signature.inputs.input_names())
    meta = getattr(getattr(loaded, "metadata", None), "metadata", None) or {}
    if "features" in meta:
        return list(meta["features"])
    raise ValueError("the loaded model declares no input features (no signature, no metadata)")
