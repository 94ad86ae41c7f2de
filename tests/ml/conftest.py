"""Shared fixtures for the model tests: one synthetic market, one time split, models fitted once,
and a real MLflow SQLite store migrated once per session and copied for each test."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from ml.datasets import TimeSplit, split_by_time, training_frame_from
from ml.models import AnomalyModel, build_model
from ml.synthetic import SyntheticMarket, synthetic_market

SYMBOLS = ("AAPL", "MSFT", "NVDA")

# The project_config.yml shape, sized down for tests. One thread each: the test machine is
# shared, and OpenMP/joblib workers fighting for two cores are slower than one.
FAST_MODELS: dict[str, dict] = {
    "lightgbm": {
        "n_estimators": 200,
        "learning_rate": 0.1,
        "num_leaves": 15,
        "early_stopping_rounds": 20,
        "n_jobs": 1,
    },
    "xgboost": {
        "n_estimators": 200,
        "learning_rate": 0.1,
        "max_depth": 4,
        "early_stopping_rounds": 20,
        "n_jobs": 1,
    },
    "random_forest": {"n_estimators": 40, "max_depth": 10, "min_samples_leaf": 2, "n_jobs": 1},
    "isolation_forest": {"n_estimators": 60, "contamination": "auto", "n_jobs": 1},
}
LATENCY_BATCHES = (1, 200)


@pytest.fixture(scope="session")
def market() -> SyntheticMarket:
    return synthetic_market(20_000, symbols=SYMBOLS, anomaly_rate=0.03, seed=7)


@pytest.fixture(scope="session")
def split(market: SyntheticMarket) -> TimeSplit:
    return split_by_time(training_frame_from(market.frame), purge_seconds=3600)


@pytest.fixture(scope="session")
def fitted_models(split: TimeSplit) -> dict[str, AnomalyModel]:
    models = {}
    for name, params in FAST_MODELS.items():
        model = build_model(name, params)
        model.fit(split.train, split.validation)
        models[name] = model
    return models


@dataclass(frozen=True)
class MlflowStore:
    tracking_uri: str
    artifact_location: str
    root: Path


@pytest.fixture(scope="session")
def _migrated_mlflow_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()  # runs the migrations
    return path


def copy_mlflow_store(template: Path, directory: Path) -> MlflowStore:
    db = directory / "mlflow.db"
    shutil.copyfile(template, db)
    return MlflowStore(f"sqlite:///{db}", (directory / "mlartifacts").as_uri(), directory)


@pytest.fixture
def mlflow_store(tmp_path: Path, _migrated_mlflow_db: Path) -> MlflowStore:
    """A fresh MLflow store (tracking + registry) for one test."""
    return copy_mlflow_store(_migrated_mlflow_db, tmp_path)


@pytest.fixture(scope="module")
def module_mlflow_store(
    tmp_path_factory: pytest.TempPathFactory, _migrated_mlflow_db: Path
) -> MlflowStore:
    """A fresh MLflow store shared by the tests of one module (for expensive set-ups)."""
    return copy_mlflow_store(_migrated_mlflow_db, tmp_path_factory.mktemp("mlflow"))


@pytest.fixture(scope="session")
def fast_models() -> dict[str, dict]:
    """Hyperparameters per model, shaped like project_config.yml training.models."""
    return {name: dict(params) for name, params in FAST_MODELS.items()}


@pytest.fixture
def registry(mlflow_store: MlflowStore):
    from ml.registry import ModelRegistry

    return ModelRegistry(mlflow_store.tracking_uri, name="tradewatch_anomaly")


@pytest.fixture
def register_model(mlflow_store: MlflowStore, registry, split: TimeSplit):
    """Log a fitted model as the pyfunc and register it as a new version (the challenger)."""
    import mlflow
    from mlflow import MlflowClient

    from ml.pyfunc import TradewatchModel, log_tradewatch_model
    from ml.registry import use_stores
    from ml.tournament import ensure_experiment

    def register(model: AnomalyModel, risk_levels: dict | None = None) -> str:
        use_stores(mlflow_store.tracking_uri)
        client = MlflowClient(tracking_uri=mlflow_store.tracking_uri)
        experiment_id = ensure_experiment(client, "tests", mlflow_store.artifact_location)
        wrapper = TradewatchModel(model, risk_levels) if risk_levels else TradewatchModel(model)
        with mlflow.start_run(experiment_id=experiment_id) as run:
            info = log_tradewatch_model(wrapper, split.test)
        return registry.register_challenger(info.model_uri, tags={"run_id": run.info.run_id})

    return register
