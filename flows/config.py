"""Settings: `project_config.yml` read once into frozen, strict pydantic models.

`${VAR}` and `${VAR:-default}` are taken from the environment before validation; the block
under `environments.<name>` is merged over the top level for the selected environment. A bad
value fails with the field's dotted name and the reason.
"""

from __future__ import annotations

import os
import re
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ingest.symbols import InvalidSymbol, validate_symbols

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "project_config.yml"
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigError(ValueError):
    """The configuration file is missing, unreadable or invalid."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Paths(_Strict):
    home: Path

    @property
    def landing(self) -> Path:
        return self.home / "landing"

    @property
    def warehouse(self) -> Path:
        return self.home / "warehouse.duckdb"

    @property
    def mlflow_db(self) -> Path:
        return self.home / "mlflow.db"

    @property
    def mlartifacts(self) -> Path:
        return self.home / "mlartifacts"

    @property
    def scores(self) -> Path:
        return self.home / "scores"

    @property
    def monitoring(self) -> Path:
        return self.home / "monitoring"

    @property
    def reports(self) -> Path:
        return self.home / "reports"

    @property
    def simulator(self) -> Path:
        return self.home / "simulator"


class SimulatorSettings(_Strict):
    seed: int = 42
    start: datetime
    speed: float = Field(0.0, ge=0)
    anomaly_rate: float = Field(0.01, ge=0, le=0.5)
    trades_per_second: float = Field(2.0, gt=0)

    @field_validator("start")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("needs a UTC offset, e.g. 2024-03-08T09:00:00-05:00")
        return value


class FinnhubSettings(_Strict):
    url: str
    api_key_env: str = "FINNHUB_API_KEY"
    flush_trades: int = Field(50_000, gt=0)
    flush_seconds: float = Field(2.0, gt=0)
    reconnect_initial_seconds: float = Field(0.5, gt=0)
    reconnect_max_seconds: float = Field(30.0, gt=0)


class AlphaVantageSettings(_Strict):
    url: str
    api_key_env: str = "ALPHAVANTAGE_API_KEY"
    interval: Literal["1min", "5min", "15min", "30min", "60min", "daily"] = "5min"
    calls_per_minute: int = Field(5, gt=0)
    calls_per_day: int = Field(25, gt=0)
    timeout_seconds: float = Field(10.0, gt=0)
    retries: int = Field(3, ge=0)


class DbtSettings(_Strict):
    target: Literal["local", "databricks", "spark"] = "local"


class FeatureSettings(_Strict):
    zscore_window_trades: int = Field(50, gt=1)
    volatility_window_seconds: int = Field(3600, gt=0)
    intensity_window_seconds: int = Field(60, gt=0)
    bollinger_window_trades: int = Field(20, gt=1)
    roll_window_trades: int = Field(100, gt=2)
    volume_median_window_trades: int = Field(100, gt=0)
    rate_window_seconds: int = Field(10, gt=0)
    rate_baseline_seconds: int = Field(600, gt=0)
    same_print_window_seconds: int = Field(2, gt=0)


class LabelSettings(_Strict):
    sources: tuple[Literal["analyst", "ground_truth", "rule"], ...]


ModelName = Literal["lightgbm", "xgboost", "random_forest", "isolation_forest"]


class ThresholdSettings(_Strict):
    # max_f1, or event_recall: the most anomaly events found at this alert precision on the
    # validation window (each event counts once); see ml.models.ThresholdPolicy.
    rule: Literal["max_f1", "event_recall"] = "event_recall"
    min_alert_precision: float = Field(0.6, gt=0, le=1)


class TrainingSettings(_Strict):
    experiment: str = "tradewatch"
    registered_model: str = "tradewatch_anomaly"
    validation_share: float = Field(0.15, gt=0, lt=0.5)
    test_share: float = Field(0.15, gt=0, lt=0.5)
    purge_seconds: int = Field(3600, ge=0)
    # Train on the newest `history_days` of trade time (None: all history).
    history_days: float | None = Field(30.0, gt=0)
    random_seed: int = 42
    threshold: ThresholdSettings = ThresholdSettings()
    models: dict[ModelName, dict[str, Any]]


class GateSettings(_Strict):
    min_improvement_threshold: float = Field(0.01, ge=0)
    tolerances: dict[str, float]
    min_pr_auc: float = Field(0.3, ge=0, le=1)
    max_latency_p99_ms: float = Field(50.0, gt=0)


class ScoringSettings(_Strict):
    risk_levels: dict[Literal["critical", "high", "medium"], float]


class DriftSettings(_Strict):
    psi_threshold: float = Field(0.2, gt=0)
    js_threshold: float = Field(0.1, gt=0, le=1)
    bins: int = Field(10, ge=2)
    reference_days: float = Field(7, gt=0)
    current_hours: float = Field(24, gt=0)


class RetrainingSettings(_Strict):
    performance_drop: float = Field(0.05, gt=0)
    min_new_labelled_rows: int = Field(5000, gt=0)
    cooldown_hours: float = Field(6, ge=0)
    max_per_day: int = Field(4, ge=1)


class AlertSettings(_Strict):
    webhook_url_env: str = "TRADEWATCH_WEBHOOK_URL"
    timeout_seconds: float = Field(5.0, gt=0)
    retries: int = Field(3, ge=0)


class QualitySettings(_Strict):
    """Thresholds of the data-quality suites (expectations.QualityPolicy)."""

    max_trade_age_minutes: float = Field(60.0, gt=0)
    max_volume_zscore_outlier_share: float = Field(0.05, ge=0, le=1)
    max_quarantine_share: float = Field(0.01, ge=0, le=1)
    max_anomaly_label_share: float = Field(0.25, ge=0, le=1)


class Settings(_Strict):
    """Every runtime setting of Tradewatch."""

    environment: Literal["dev", "prd"] = "dev"
    paths: Paths
    symbols: tuple[str, ...]
    simulator: SimulatorSettings
    finnhub: FinnhubSettings
    alphavantage: AlphaVantageSettings
    dbt: DbtSettings
    features: FeatureSettings
    labels: LabelSettings
    training: TrainingSettings
    gate: GateSettings
    scoring: ScoringSettings
    drift: DriftSettings
    retraining: RetrainingSettings
    alerts: AlertSettings
    quality: QualitySettings = QualitySettings()

    @field_validator("symbols", mode="before")
    @classmethod
    def _symbols(cls, value: Any) -> tuple[str, ...]:
        if not isinstance(value, list | tuple):
            raise ValueError("must be a list of ticker symbols")
        try:
            return validate_symbols(list(value))
        except InvalidSymbol as exc:
            raise ValueError(str(exc)) from exc


def _interpolate(value: Any, environ: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {key: _interpolate(item, environ) for key, item in value.items()}
    if isinstance(value, list):
        return [_interpolate(item, environ) for item in value]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in environ and environ[name] != "":
            return environ[name]
        if default is not None:
            return default
        raise ConfigError(f"environment variable {name} is not set (referenced as ${{{name}}})")

    return _ENV_REF.sub(replace, value)


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "(top level)"
    more = len(error.errors()) - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return f"{where}: {first['msg']}{suffix}"


def load_settings(
    path: Path | str | None = None, environ: dict[str, str] | None = None
) -> Settings:
    """Read, interpolate, merge and validate the configuration; raise ConfigError on any problem."""
    config_path = Path(path) if path is not None else Path(
        os.environ.get("TRADEWATCH_CONFIG", DEFAULT_CONFIG)
    )
    env = dict(os.environ if environ is None else environ)
    try:
        raw = yaml.safe_load(config_path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {config_path} not found") from exc
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read config file {config_path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {config_path} must hold a mapping of settings")
    data = _interpolate(raw, env)
    overrides = data.pop("environments", {}) or {}
    environment = data.get("environment", "dev")
    if environment not in overrides and environment not in ("dev", "prd"):
        raise ConfigError(f"environment: unknown environment {environment!r} (dev or prd)")
    data = _merge(data, overrides.get(environment) or {})
    home = Path(data.get("paths", {}).get("home", "data"))
    if not home.is_absolute():
        data.setdefault("paths", {})["home"] = (config_path.resolve().parent / home).resolve()
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{config_path.name}: {_describe(exc)}") from exc
