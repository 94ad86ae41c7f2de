"""The four competing models behind one interface: fit(train, validation), score, threshold.

Hyperparameters arrive as plain dicts (the shape of project_config.yml `training.models`) and
are passed to the library estimator unchanged, except for the few keys this module owns:
`early_stopping_rounds` (LightGBM, applied as a callback on the validation window). Class
imbalance is handled unless the dict says otherwise (`scale_pos_weight` = √(negatives/positives)
for the boosted trees, `class_weight="balanced_subsample"` for the random forest). Every model
chooses its flag threshold on the validation window by its ThresholdPolicy: maximum F1, or the
most anomaly events detected at a minimum alert precision.
"""

from __future__ import annotations

import inspect
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd

from core.schema import CATEGORY_LEVELS, FEATURE_COLUMNS, LABEL_COLUMN
from ml.datasets import MissingColumns
from ml.events import event_ids_of
from ml.metrics import best_f1_threshold, event_recall_threshold


class ModelError(RuntimeError):
    """A model cannot be built, trained or used."""


class UnknownModel(ModelError):
    """The configuration names a model this library does not have."""


class NotFitted(ModelError):
    """score() was called before fit()."""


class InsufficientLabels(ModelError):
    """A supervised model needs both classes in its training window."""


@dataclass(frozen=True)
class ThresholdPolicy:
    """How a model chooses its flag threshold on the validation window.

    - `max_f1`: the highest F1 against the trade labels.
    - `event_recall`: the most anomaly events detected (event recall) while alert precision —
      each event counted once, see `ml.metrics.event_recall_threshold` — stays at or above
      `min_alert_precision`. Trade-level F1 is dominated by the few events that label hundreds
      of trades and says little about the single-trade kinds; this rule aims at what an analyst
      sees: events found, and how many flags are false. Falls back to maximum F1 when no
      threshold reaches the precision (the fit report says so).
    """

    rule: Literal["max_f1", "event_recall"] = "max_f1"
    min_alert_precision: float = 0.6

    def __post_init__(self) -> None:
        if self.rule not in ("max_f1", "event_recall"):
            raise ModelError(f"unknown threshold rule {self.rule!r}: use max_f1 or event_recall")
        if not 0 < self.min_alert_precision <= 1:
            raise ModelError(
                f"min_alert_precision={self.min_alert_precision} must be within (0, 1]"
            )

    def describe(self) -> str:
        if self.rule == "max_f1":
            return "max_f1"
        return f"event_recall at alert precision >= {self.min_alert_precision:g}"


@dataclass(frozen=True)
class FitReport:
    """What one fit did: its duration, sizes and the choices made on validation."""

    training_seconds: float
    train_rows: int
    validation_rows: int
    threshold: float
    best_iteration: int | None = None
    threshold_rule: str = "max_f1"  # the rule that chose the threshold, fallbacks included


_CATEGORY_DTYPES = {
    name: pd.CategoricalDtype(list(levels)) for name, levels in CATEGORY_LEVELS.items()
}


def design_matrix(frame: pd.DataFrame, features: Sequence[str], *, one_hot: bool) -> pd.DataFrame:
    """Model inputs: numeric features as float64 (±inf → NaN), categoricals either as pandas
    categoricals with fixed levels (native handling) or one indicator column per level."""
    missing = [c for c in features if c not in frame.columns]
    if missing:
        raise MissingColumns(f"rows to score lack feature column(s) {', '.join(missing)}")
    numeric = _numeric_columns(frame, [name for name in features if name not in CATEGORY_LEVELS])
    columns: dict[str, Any] = {}
    for name in features:
        if name in CATEGORY_LEVELS:
            text = frame[name].to_numpy(dtype=object)
            if one_hot:
                # missing values (None, NaN, pd.NA) match no level, as in a pandas comparison
                present = ~pd.isna(text)
                for level in CATEGORY_LEVELS[name]:
                    indicator = np.zeros(len(text), dtype="float64")
                    indicator[present] = text[present] == level
                    columns[f"{name}={level}"] = indicator
            else:
                columns[name] = pd.Categorical(text, dtype=_CATEGORY_DTYPES[name])
        else:
            columns[name] = numeric[name]
    return pd.DataFrame(columns, index=frame.index)


def _numeric_columns(frame: pd.DataFrame, names: list[str]) -> dict[str, np.ndarray]:
    """name → float64 values with ±inf as NaN; non-numeric text becomes NaN."""
    dtypes = dict(zip(frame.columns, frame.dtypes, strict=True))
    if all(dtypes[name] == np.float64 for name in names):
        # The usual case (normalise_features made them float64): one conversion for all,
        # instead of a pandas conversion per column per call.
        block = frame.loc[:, names].to_numpy(dtype="float64")
        block = np.where(np.isfinite(block), block, np.nan)
        return dict(zip(names, block.T, strict=True))
    out = {}
    for name in names:
        values = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype="float64")
        out[name] = np.where(np.isfinite(values), values, np.nan)
    return out


def imbalance_ratio(y: np.ndarray) -> float:
    """Negatives per positive."""
    positives = int(y.sum())
    return float((len(y) - positives) / positives) if positives else 1.0


def positive_class_weight(y: np.ndarray) -> float:
    """The boosted trees' default scale_pos_weight: √(negatives/positives).

    The full ratio (~100 at 1 % anomalies) makes the first boosting rounds swing the
    validation PR-AUC down before it recovers, so early stopping fires on a model of one or two
    trees (measured: test PR-AUC 0.67 against 0.80). The square root still lifts the rare class
    and gives a steady curve.
    """
    return float(np.sqrt(imbalance_ratio(y)))


class AnomalyModel(ABC):
    """A trade-anomaly model: higher score means more anomalous, scores within [0, 1]."""

    name: ClassVar[str]
    supervised: ClassVar[bool] = True
    one_hot: ClassVar[bool] = False

    def __init__(
        self,
        params: Mapping[str, Any] | None = None,
        *,
        features: Sequence[str] = FEATURE_COLUMNS,
        random_seed: int = 42,
        threshold_policy: ThresholdPolicy | None = None,
    ) -> None:
        self.params: dict[str, Any] = dict(params or {})
        self.features: tuple[str, ...] = tuple(features)
        self.random_seed = random_seed
        self.threshold_policy = threshold_policy or ThresholdPolicy()
        self.threshold: float | None = None
        self.fit_report: FitReport | None = None
        self.resolved_params: dict[str, Any] = {}
        if not self.features:
            raise ModelError(f"{self.name}: no feature columns given")

    def fit(
        self,
        train: pd.DataFrame,
        validation: pd.DataFrame,
        *,
        events: pd.DataFrame | None = None,
    ) -> FitReport:
        """Train on `train`; early-stop and choose the threshold on `validation`.

        `events` (an ml.events frame: symbol, start and end, kind, source) groups the
        anomalous validation trades into events for the `event_recall` threshold rule; without
        it every anomalous trade is an event of its own.
        """
        began = time.perf_counter()
        y_train = train[LABEL_COLUMN].to_numpy(dtype=bool)
        y_validation = validation[LABEL_COLUMN].to_numpy(dtype=bool)
        if self.supervised and (y_train.all() or not y_train.any()):
            raise InsufficientLabels(
                f"{self.name}: the training window needs anomalous and normal trades "
                f"({int(y_train.sum())} of {len(y_train)} are anomalous)"
            )
        x_train = design_matrix(train, self.features, one_hot=self.one_hot)
        x_validation = design_matrix(validation, self.features, one_hot=self.one_hot)
        best_iteration = self._fit(x_train, y_train, x_validation, y_validation)
        self.threshold, rule = self._choose_threshold(
            validation, y_validation, self._score(x_validation), events
        )
        self.fit_report = FitReport(
            training_seconds=time.perf_counter() - began,
            train_rows=len(train),
            validation_rows=len(validation),
            threshold=self.threshold,
            best_iteration=best_iteration,
            threshold_rule=rule,
        )
        return self.fit_report

    def _choose_threshold(
        self,
        validation: pd.DataFrame,
        y_validation: np.ndarray,
        scores: np.ndarray,
        events: pd.DataFrame | None,
    ) -> tuple[float, str]:
        """The validation threshold by this model's policy, and the rule that chose it."""
        scores = np.clip(np.asarray(scores, dtype="float64"), 0.0, 1.0)
        policy = self.threshold_policy
        if policy.rule == "event_recall":
            event_ids = (
                event_ids_of(validation, events)
                if events is not None and len(events)
                else np.full(len(validation), None, dtype=object)
            )
            threshold = event_recall_threshold(
                y_validation, scores, event_ids, min_precision=policy.min_alert_precision
            )
            if threshold is not None:
                return threshold, policy.describe()
            return (
                best_f1_threshold(y_validation, scores),
                f"max_f1 (no threshold reached alert precision {policy.min_alert_precision:g})",
            )
        return best_f1_threshold(y_validation, scores), "max_f1"

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        """Anomaly score per row, within [0, 1]."""
        if self.threshold is None:
            raise NotFitted(f"{self.name} has not been fitted: call fit(train, validation) first")
        if frame.empty:
            return np.empty(0, dtype="float64")
        scores = self._score(design_matrix(frame, self.features, one_hot=self.one_hot))
        return np.clip(np.asarray(scores, dtype="float64"), 0.0, 1.0)

    def flag(self, frame: pd.DataFrame) -> np.ndarray:
        """True where the score reaches the validation-chosen threshold."""
        scores = self.score(frame)
        return scores >= self.threshold

    @abstractmethod
    def _fit(
        self,
        x_train: pd.DataFrame,
        y_train: np.ndarray,
        x_validation: pd.DataFrame,
        y_validation: np.ndarray,
    ) -> int | None:
        """Fit the estimator; return the best boosting iteration where there is one."""

    @abstractmethod
    def _score(self, x: pd.DataFrame) -> np.ndarray:
        """Raw anomaly scores of a design matrix."""

    def __repr__(self) -> str:
        state = f"threshold={self.threshold:.4f}" if self.threshold is not None else "unfitted"
        return f"{type(self).__name__}({self.params!r}, {state})"


# Below these many rows a model scores on one thread. Starting and synchronising OpenMP or
# joblib workers costs more than the trees for a small batch, and far more on a busy machine
# (one row through the LightGBM champion: 12 ms with every core, 0.6 ms on one; XGBoost 9 ms
# against 0.8 ms). The boosted trees gain from threads sooner than the forests' joblib jobs
# (LightGBM on 2 loaded cores, 1 thread against 2: 3,000 rows 6.2 against 13 ms, 5,000 rows
# 9.2 against 5.8 ms). Per-row results do not depend on the thread count.
_THREADED_BOOSTING_ROWS = 5_000
_PARALLEL_SCORING_ROWS = 20_000


# Early stopping watches the validation log loss, not its average precision: a window holds
# only a few pump-and-dumps and intensity bursts, each labelling hundreds of trades, so its
# average precision mostly measures those one or two events and peaks after a handful of
# trees (measured on simulator data: 3 trees, 0.64 event recall; on log loss 42 trees, 0.87).
EARLY_STOPPING_METRIC = {"lightgbm": "binary_logloss", "xgboost": "logloss"}


class LightGBMModel(AnomalyModel):
    """LightGBM boosted trees, native categoricals, early stopping on validation log loss."""

    name = "lightgbm"

    def _fit(self, x_train, y_train, x_validation, y_validation):  # noqa: D401
        import lightgbm as lgb

        params = dict(self.params)
        rounds = params.pop("early_stopping_rounds", None)
        if "is_unbalance" not in params:
            params.setdefault("scale_pos_weight", positive_class_weight(y_train))
        params.setdefault("random_state", self.random_seed)
        params.setdefault("verbose", -1)
        params.setdefault("metric", EARLY_STOPPING_METRIC[self.name])
        self.resolved_params = {**params, "early_stopping_rounds": rounds}
        self.estimator = lgb.LGBMClassifier(**params)
        callbacks = (
            [lgb.early_stopping(int(rounds), first_metric_only=True, verbose=False)]
            if rounds
            else []
        )
        categorical = [c for c in x_train.columns if c in CATEGORY_LEVELS]
        # LightGBM 4.7 renamed eval_set to eval_X/eval_y; the pinned range starts at 4.5.
        if "eval_X" in inspect.signature(self.estimator.fit).parameters:
            evaluation = {"eval_X": (x_validation,), "eval_y": (y_validation,)}
        else:
            evaluation = {"eval_set": [(x_validation, y_validation)]}
        self.estimator.fit(
            x_train,
            y_train,
            categorical_feature=categorical or "auto",
            callbacks=callbacks,
            **evaluation,
        )
        best = self.estimator.best_iteration_
        return int(best) if best else None

    def _score(self, x):
        if len(x) >= _THREADED_BOOSTING_ROWS:
            return self.estimator.predict_proba(x)[:, 1]
        # The scikit-learn wrapper passes a thread count with every call (n_jobs unless given),
        # so this one does not carry over to later, larger batches.
        return self.estimator.predict_proba(x, num_threads=1)[:, 1]


class XGBoostModel(AnomalyModel):
    """Gradient-boosted trees (XGBoost, hist), native categoricals, early stopping on log loss."""

    name = "xgboost"

    def _fit(self, x_train, y_train, x_validation, y_validation):
        import xgboost as xgb

        params = dict(self.params)
        params.setdefault("scale_pos_weight", positive_class_weight(y_train))
        params.setdefault("random_state", self.random_seed)
        params.setdefault("tree_method", "hist")
        params.setdefault("enable_categorical", True)
        params.setdefault("eval_metric", EARLY_STOPPING_METRIC[self.name])
        self.resolved_params = params
        self.estimator = xgb.XGBClassifier(**params)
        self.estimator.fit(x_train, y_train, eval_set=[(x_validation, y_validation)], verbose=False)
        if params.get("early_stopping_rounds"):
            return int(self.estimator.best_iteration) + 1
        return None

    def _score(self, x):
        if len(x) >= _THREADED_BOOSTING_ROWS:
            return self.estimator.predict_proba(x)[:, 1]
        # The thread count lives on the booster (predict_proba takes none). xgboost's global
        # config_context(nthread=1) is no substitute: it calls omp_set_num_threads, which
        # outlives the context and would leave later large batches and fits on one thread.
        booster = self.estimator.get_booster()
        configured = self.estimator.n_jobs
        booster.set_param("nthread", 1)
        try:
            return self.estimator.predict_proba(x)[:, 1]
        finally:
            booster.set_param("nthread", configured if configured is not None else 0)


class _Imputed(AnomalyModel):
    """scikit-learn forests: categoricals one-hot encoded, missing values filled with the
    training medians (stored on the model so scoring fills them the same way)."""

    one_hot = True
    estimator: Any  # the scikit-learn forest, set by fit

    def _impute(self, x: pd.DataFrame) -> np.ndarray:
        # x.fillna(self.medians) in numpy: the same values without pandas' per-column fill.
        values = x.to_numpy(dtype="float64")
        missing = np.isnan(values)
        if missing.any():
            medians = self.medians.reindex(x.columns).to_numpy(dtype="float64")
            values = np.where(missing, medians, values)
        return values

    def _learn_medians(self, x_train: pd.DataFrame) -> None:
        self.medians = x_train.median().fillna(0.0)

    def _predict_with(self, method: str, x: pd.DataFrame) -> np.ndarray:
        """Call an estimator method on a large batch, in parallel."""
        return getattr(self.estimator, method)(self._impute(x))


def _tree_input(x: np.ndarray) -> np.ndarray:
    """What scikit-learn's input validation makes of a dense float64 matrix for its trees."""
    return np.ascontiguousarray(x, dtype=np.float32)


def forest_proba(forest: Any, x: np.ndarray) -> np.ndarray:
    """RandomForestClassifier.predict_proba(x), tree by tree on this thread.

    The library sends every tree through joblib even with n_jobs=1, and the per-tree dispatch
    (a config and warnings context each) costs more than the tree on a small batch: ~7 ms for
    one row through 100 trees against ~1 ms here. The arithmetic is the library's own — each
    tree's predict_proba added in tree order, then divided by the number of trees — so the
    result is identical (tests/ml compare it bit for bit).
    """
    x32 = _tree_input(x)
    if not np.isfinite(x32).all():
        # the library refuses such input (a float64 beyond float32's range): let it say so
        return forest.predict_proba(x)
    total = np.zeros((x32.shape[0], forest.n_classes_), dtype=np.float64)
    for tree in forest.estimators_:
        total += tree.predict_proba(x32, check_input=False)
    total /= len(forest.estimators_)
    return total


def isolation_forest_score_samples(forest: Any, x: np.ndarray) -> np.ndarray:
    """IsolationForest.score_samples(x), tree by tree on this thread without joblib's per-tree
    dispatch (one row through 200 trees: ~13 ms → ~3 ms). Same arithmetic in the same order as
    scikit-learn 1.9's _compute_score_samples; a scikit-learn without the private helper or the
    per-tree path-length tables it reads falls back to the library call."""
    try:
        from sklearn.ensemble._iforest import _average_path_length
    except ImportError:
        return forest.score_samples(x)
    path_lengths = getattr(forest, "_decision_path_lengths", None)
    average_lengths = getattr(forest, "_average_path_length_per_tree", None)
    if path_lengths is None or average_lengths is None:
        return forest.score_samples(x)
    x32 = _tree_input(x)
    subsample_features = forest._max_features != x32.shape[1]
    depths = np.zeros(x32.shape[0], order="F")
    for index, (tree, features) in enumerate(
        zip(forest.estimators_, forest.estimators_features_, strict=True)
    ):
        leaves = tree.apply(x32[:, features] if subsample_features else x32, check_input=False)
        depths += path_lengths[index][leaves] + average_lengths[index][leaves] - 1.0
    denominator = len(forest.estimators_) * _average_path_length([forest._max_samples])
    scores = 2 ** (
        -np.divide(depths, denominator, out=np.ones_like(depths), where=denominator != 0)
    )
    return -scores


class RandomForestModel(_Imputed):
    """Random forest with balanced class weights per bootstrap sample."""

    name = "random_forest"

    def _fit(self, x_train, y_train, x_validation, y_validation):
        from sklearn.ensemble import RandomForestClassifier

        params = dict(self.params)
        params.setdefault("class_weight", "balanced_subsample")
        params.setdefault("random_state", self.random_seed)
        # Trees are independent: use every core (library default is one).
        params.setdefault("n_jobs", -1)
        self.resolved_params = params
        self._learn_medians(x_train)
        self.estimator = RandomForestClassifier(**params)
        self.estimator.fit(self._impute(x_train), y_train)
        return None

    def _score(self, x):
        if len(x) >= _PARALLEL_SCORING_ROWS:
            return self._predict_with("predict_proba", x)[:, 1]
        return forest_proba(self.estimator, self._impute(x))[:, 1]


class IsolationForestModel(_Imputed):
    """Isolation forest (unsupervised): labels are used only to fit the threshold on validation.

    The score is the anomaly score s(x) of Liu et al. (−score_samples), already within (0, 1];
    the chosen threshold is an attribute of this object and travels with it when logged.
    """

    name = "isolation_forest"
    supervised = False

    def _fit(self, x_train, y_train, x_validation, y_validation):
        from sklearn.ensemble import IsolationForest

        params = dict(self.params)
        params.setdefault("random_state", self.random_seed)
        params.setdefault("n_jobs", -1)
        self.resolved_params = params
        self._learn_medians(x_train)
        self.estimator = IsolationForest(**params)
        self.estimator.fit(self._impute(x_train))
        return None

    def _score(self, x):
        if len(x) >= _PARALLEL_SCORING_ROWS:
            return -self._predict_with("score_samples", x)
        return -isolation_forest_score_samples(self.estimator, self._impute(x))


MODEL_TYPES: dict[str, type[AnomalyModel]] = {
    model.name: model
    for model in (LightGBMModel, XGBoostModel, RandomForestModel, IsolationForestModel)
}


def build_model(
    name: str,
    params: Mapping[str, Any] | None = None,
    *,
    features: Sequence[str] = FEATURE_COLUMNS,
    random_seed: int = 42,
    threshold_policy: ThresholdPolicy | None = None,
) -> AnomalyModel:
    """A fresh, unfitted model of the named kind with the given hyperparameters."""
    try:
        model_type = MODEL_TYPES[name]
    except KeyError:
        raise UnknownModel(
            f"unknown model {name!r}: choose from {', '.join(sorted(MODEL_TYPES))}"
        ) from None
    return model_type(
        params, features=features, random_seed=random_seed, threshold_policy=threshold_policy
    )
