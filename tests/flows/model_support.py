"""A champion registered in a data home's own MLflow store, small and quick to fit."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from flows.config import Settings


def register_champion(settings: Settings) -> str:
    """Fit a small isolation forest on a synthetic market, register it, make it champion."""
    import mlflow
    from mlflow import MlflowClient

    from flows.training import audit_log, registry, tracking_uri
    from ml.datasets import split_by_time, training_frame_from
    from ml.models import build_model
    from ml.pyfunc import TradewatchModel, log_tradewatch_model
    from ml.registry import use_stores
    from ml.synthetic import synthetic_market
    from ml.tournament import ensure_experiment

    market = synthetic_market(3_000, symbols=("AAPL",), anomaly_rate=0.05, seed=3)
    split = split_by_time(training_frame_from(market.frame), purge_seconds=60)
    model = build_model("isolation_forest", {"n_estimators": 20, "n_jobs": 1})
    model.fit(split.train, split.validation)
    settings.paths.home.mkdir(parents=True, exist_ok=True)
    use_stores(tracking_uri(settings))
    experiment = ensure_experiment(MlflowClient(tracking_uri(settings)), "tests",
                                   settings.paths.mlartifacts.resolve().as_uri())
    with mlflow.start_run(experiment_id=experiment):
        info = log_tradewatch_model(TradewatchModel(model), split.test)
    models = registry(settings)
    version = models.register_challenger(info.model_uri)
    models.promote(version, audit_log=audit_log(settings), reason="test champion")
    return version


def tamper_with(settings: Settings, version: str) -> Path:
    """Replace the version's pickle in the store (as a process with write access could)."""
    from flows.training import registry

    models = registry(settings)
    source = models.client.get_model_version(models.name, version).source
    location = models.client.get_logged_model(source.removeprefix("models:/")).artifact_location
    pickled = Path(urlparse(location).path) / "python_model.pkl"
    pickled.write_bytes(pickled.read_bytes() + b"\n# appended")
    return pickled
