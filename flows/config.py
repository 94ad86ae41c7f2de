"""Settings: `project_config.yml` read once into frozen, strict pydantic models.

`${VAR}` and `${VAR:-default}` are taken from the environment before validation; the block
under `environments.<name>` is merged over the top level for the selected environment. A bad
value fails with the field's dotted name and the reason. YAML aliases are refused (an alias
bomb would otherwise take minutes and gigabytes to expand).
"""

from __future__ import annotations

import os
import re
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from core.datahome import HomeLayout
from core.markets import MarketReferenceError, read_symbol_reference, symbols_missing_from
from core.schema import LABEL_SOURCES
from ingest.symbols import InvalidSymbol, validate_symbols

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "project_config.yml"
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigError(ValueError):
    """The configuration file is missing, unreadable or invalid."""


class _AliasRefused(yaml.YAMLError):
    """A settings file used a YAML alias."""


class _NoAliasLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses aliases (`*name`).

    Settings never need them, and aliases of aliases expand exponentially: a few hundred
    bytes of "billion laughs" take minutes and gigabytes to load. Refused at the first alias,
    before anything is expanded.
    """

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise _AliasRefused(
                f"line {event.start_mark.line + 1}: YAML aliases (*{event.anchor}) are not "
                "allowed in settings; write the value out"
            )
        return super().compose_node(parent, index)


def _load_yaml(text: str) -> Any:
    """Parse settings YAML safely: no Python objects (SafeLoader), no aliases."""
    return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader subclass


class _Strict(BaseModel):
    # The docstring under each field is its description: the settings reference shows it.
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class Paths(_Strict, HomeLayout):
    """The data home; every location in it is a property (see core.datahome.HomeLayout)."""

    home: Path
    """The data home (relative: to the folder holding project_config.yml)."""


class SimulatorSettings(_Strict):
    """The simulated market of `tradewatch simulate` and `tradewatch demo`."""

    seed: int = 42
    """Seed of the market: the same seed serves the same trades and anomalies."""
    start: datetime
    """Simulated time of the first trade, with its UTC offset."""
    speed: float = Field(0.0, ge=0)
    """0 = as fast as the client reads; 1 = real time; 60 = one simulated minute a second."""
    anomaly_rate: float = Field(0.01, ge=0, le=0.5)
    """Share of trades that belong to an injected anomaly."""
    trades_per_second: float = Field(2.0, gt=0)
    """Mean trades per second per symbol in the regular session."""

    @field_validator("start")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("needs a UTC offset, e.g. 2024-03-08T09:00:00-05:00")
        return value


class FinnhubSettings(_Strict):
    """The Finnhub WebSocket trade collector."""

    url: str
    """WebSocket URL of the feed (`tradewatch collect finnhub --url` overrides it)."""
    api_key_env: str = "FINNHUB_API_KEY"
    """Name of the environment variable holding the API key (never the key itself)."""
    key_urls: tuple[str, ...] = ()
    """URLs besides TLS to finnhub.io that may receive the key (an explicit opt-in, logged on
    every connection); any other URL, and plain text to finnhub.io, gets no key."""
    flush_trades: int = Field(50_000, gt=0)
    """Land a file after this many trades ..."""
    flush_seconds: float = Field(2.0, gt=0)
    """... or after this many seconds, whichever comes first."""
    reconnect_initial_seconds: float = Field(0.5, gt=0)
    """First wait before reconnecting after a dropped connection; doubles on each failure."""
    reconnect_max_seconds: float = Field(30.0, gt=0)
    """Longest wait between reconnection attempts."""
    ping_interval_seconds: float = Field(20.0, gt=0)
    """Send a WebSocket ping after this many seconds without a message."""
    read_idle_timeout_seconds: float = Field(60.0, gt=0)
    """Drop the connection (and alert feed_silent) after this many seconds with nothing
    received, not even a pong: a half-open connection is noticed and reconnected."""
    landing_retry_max_seconds: float = Field(30.0, gt=0)
    """Longest wait between attempts to land a file while the disk is full or failing (the
    collector stops reading the feed meanwhile and keeps what it holds)."""
    landing_grace_seconds: float = Field(60.0, ge=0)
    """After the run's duration ends, keep retrying a failing landing this long before the run
    fails with the count of trades it could not land."""


class AlphaVantageSettings(_Strict):
    """The Alpha Vantage REST bar collector and its call budget."""

    url: str
    """Base URL of the API (`tradewatch collect alphavantage --url` overrides it)."""
    api_key_env: str = "ALPHAVANTAGE_API_KEY"
    """Name of the environment variable holding the API key (never the key itself)."""
    key_urls: tuple[str, ...] = ()
    """URLs besides TLS to alphavantage.co that may receive the key (an explicit opt-in, logged
    on every request); any other URL, and plain text to alphavantage.co, gets no key."""
    interval: Literal["1min", "5min", "15min", "30min", "60min", "daily"] = "5min"
    """Bar interval to fetch."""
    calls_per_minute: int = Field(5, gt=0)
    """Most calls in any minute (the provider's rate limit); retries count too."""
    calls_per_day: int = Field(25, gt=0)
    """Most calls in a day (the provider's daily quota); kept in a file in the data home."""
    timeout_seconds: float = Field(10.0, gt=0)
    """Timeout of one HTTP request."""
    retries: int = Field(3, ge=0)
    """Extra attempts after a failed request."""


class DbtSettings(_Strict):
    """The warehouse engine dbt builds on."""

    target: Literal["local", "databricks", "spark"] = "local"
    """dbt target of profiles.yml: local (DuckDB), databricks, or spark (a local session)."""


#: dbt_project.yml, whose `vars` hold the one set of defaults of the feature windows.
DBT_PROJECT_FILE = DEFAULT_CONFIG.parent / "dbt_project" / "dbt_project.yml"


def _feature_defaults() -> dict[str, int]:
    """The feature windows' defaults: the `vars` of dbt_project.yml (a plain `dbt build`
    reads the same values)."""
    project = yaml.safe_load(DBT_PROJECT_FILE.read_text())
    return {name: int(value) for name, value in project["vars"].items()
            if name.endswith(("_trades", "_seconds"))}


_FEATURES = _feature_defaults()


class FeatureSettings(_Strict):
    """Window lengths of the gold features. The defaults are the `vars` of dbt_project.yml;
    the flows pass these settings to every dbt run as vars, so a value set in the `features`
    block of project_config.yml changes what dbt builds. Changing one changes what a column
    means: rebuild gold with `--full-refresh`."""

    zscore_window_trades: int = Field(_FEATURES["zscore_window_trades"], gt=1)
    """Previous trades behind volume_zscore and price_zscore."""
    volatility_window_seconds: int = Field(_FEATURES["volatility_window_seconds"], gt=0)
    """Trailing time window of price_volatility_1h."""
    intensity_window_seconds: int = Field(_FEATURES["intensity_window_seconds"], gt=0)
    """Trailing time window of trade_intensity_1m."""
    bollinger_window_trades: int = Field(_FEATURES["bollinger_window_trades"], gt=1)
    """Trades behind the Bollinger bands of bollinger_pct_b."""
    roll_window_trades: int = Field(_FEATURES["roll_window_trades"], gt=2)
    """Trades behind roll_spread_pct."""
    volume_median_window_trades: int = Field(_FEATURES["volume_median_window_trades"], gt=0)
    """Previous trades behind the median of volume_to_median_100."""
    rate_window_seconds: int = Field(_FEATURES["rate_window_seconds"], gt=0)
    """Short window of trade_rate_ratio_10s."""
    rate_baseline_seconds: int = Field(_FEATURES["rate_baseline_seconds"], gt=0)
    """Baseline window of trade_rate_ratio_10s."""
    same_print_window_seconds: int = Field(_FEATURES["same_print_window_seconds"], gt=0)
    """Trailing window of same_print_count_2s."""

    def dbt_vars(self) -> dict[str, int]:
        """The vars every dbt run gets (`--vars`)."""
        return self.model_dump()


class LabelSettings(_Strict):
    """Where training labels come from."""

    # The allowed values are core.schema's label sources (one definition), kept a Literal so
    # that the error and the settings reference list them.
    sources: tuple[Literal[LABEL_SOURCES], ...]  # type: ignore[valid-type]
    """Label sources in order of trust, as gold_anomaly_labels applies them."""


ModelName = Literal["lightgbm", "xgboost", "random_forest", "isolation_forest"]


class ThresholdSettings(_Strict):
    """How each model chooses its flag threshold on the validation window."""

    rule: Literal["max_f1", "event_recall"] = "event_recall"
    """max_f1, or event_recall: the most anomaly events found on the validation window while
    alert precision (each event counted once) stays at min_alert_precision; see
    ml.models.ThresholdPolicy."""
    min_alert_precision: float = Field(0.6, gt=0, le=1)
    """Alert precision (each event counted once) the event_recall rule must keep."""


class TrainingSettings(_Strict):
    """The model tournament: data windows, MLflow names and the competing models."""

    experiment: str = "tradewatch"
    """MLflow experiment every tournament run is logged to."""
    registered_model: str = "tradewatch_anomaly"
    """Registered model holding the champion, challenger and previous aliases."""
    model_signing_key_env: str = "TRADEWATCH_MODEL_SIGNING_KEY"
    """Environment variable holding the key that signs registered models' content hashes
    (optional). Unset: the hashes are checked, not signed."""
    validation_share: float = Field(0.15, gt=0, lt=0.5)
    """Share of the newest rows (by time) before the test window used for validation."""
    test_share: float = Field(0.15, gt=0, lt=0.5)
    """Share of the newest rows (by time) used as the test window the gate judges on."""
    purge_seconds: int = Field(3600, ge=0)
    """Gap left out between train, validation and test (the longest feature window)."""
    history_days: float | None = Field(30.0, gt=0)
    """Train on the newest this many days of trade time (null: all history)."""
    random_seed: int = 42
    """Seed of every model's randomness."""
    threshold: ThresholdSettings = ThresholdSettings()
    """How each model chooses its flag threshold."""
    models: dict[ModelName, dict[str, Any]]
    """The competing models and their hyperparameters (passed to the library unchanged)."""
    min_trusted_labels: int = Field(500, ge=1)
    """Refuse to train on a window with fewer trades labelled by a trusted source (an analyst
    or the simulator's answer key); rule labels never count and are never trained on."""
    min_trusted_positives: int = Field(30, ge=1)
    """Refuse to train on a window with fewer trusted-labelled anomalous trades."""


PrimaryMetric = Literal["event_average_precision", "event_recall_at_precision", "pr_auc"]


class BootstrapSettings(_Strict):
    """The paired bootstrap behind the gate's interval (ml.metrics.paired_bootstrap)."""

    resamples: int = Field(1000, ge=100)
    """How many resamples of the test window's blocks."""
    confidence: float = Field(0.9, gt=0.5, lt=1)
    """Confidence of the two-sided interval."""
    block_minutes: float = Field(60.0, gt=0)
    """Length of the (symbol, time) blocks resampled together."""
    seed: int = 0
    """Seed of the resampling: the same window and models give the same interval."""


class GateSettings(_Strict):
    """The champion/challenger gate: challenger and champion judged on the same test window."""

    primary_metric: PrimaryMetric = "event_average_precision"
    """What the gate weighs first and promotes on; the tournament ranks by it too
    (event-level average precision, event recall at the threshold policy's alert precision, or
    trade-level PR-AUC)."""
    min_improvement_threshold: float = Field(0.01, ge=0)
    """Promote only when the lower bound of the interval of challenger − champion on the
    primary metric clears this."""
    bootstrap: BootstrapSettings = BootstrapSettings()
    """The paired bootstrap behind that interval."""
    min_events: int = Field(30, ge=1)
    """Fewer labelled events than this in the test window is not enough evidence: the
    champion stays."""
    alert_gap_seconds: float = Field(60.0, gt=0)
    """Flags of one symbol within this many seconds of an alert's first flag are one alert."""
    tolerances: dict[str, float]
    """Largest allowed worsening of each secondary metric (metric name → amount; a rise for
    false alerts, time to detect and latency). A metric named here that either side cannot
    give fails the gate closed."""
    min_primary_metric: float = Field(0.3, ge=0, le=1)
    """Lowest primary metric a challenger may have to be promoted at all."""
    max_latency_p99_ms: float = Field(50.0, gt=0)
    """Highest p99 scoring latency per row a challenger may have, in milliseconds."""


class ScoringSettings(_Strict):
    """Batch scoring."""

    risk_levels: dict[Literal["critical", "high", "medium"], float]
    """Lowest score of each risk level (below medium: low); 1 ≥ critical > high > medium > 0."""


class DriftSettings(_Strict):
    """The drift check of `tradewatch drift`."""

    psi_threshold: float = Field(0.2, gt=0)
    """A numeric feature (or the score) drifted when its PSI is above this."""
    js_threshold: float = Field(0.1, gt=0, le=1)
    """A categorical feature drifted when its Jensen-Shannon distance (base 2) is above this."""
    bins: int = Field(10, ge=2)
    """Quantile bins of the reference window for PSI (outer bins open to ±∞)."""
    reference_days: float = Field(7, gt=0)
    """Most reference data to compare with, in days of trade time."""
    current_hours: float = Field(24, gt=0)
    """The current window: the newest this many hours of trade time."""


class RetrainingSettings(_Strict):
    """The retraining trigger and its limits (read back from the audit log)."""

    performance_drop: float = Field(0.05, gt=0)
    """Retrain when PR-AUC on trusted labels fell by more than this."""
    min_new_labelled_rows: int = Field(5000, gt=0)
    """Retrain when this many trusted-labelled trades arrived since the last training data."""
    cooldown_hours: float = Field(6, ge=0)
    """Least time between two triggers."""
    max_per_day: int = Field(4, ge=1)
    """Most triggers in any 24 hours."""


class ReviewSettings(_Strict):
    """Analyst review of the champion's flags (`tradewatch review`, the review page)."""

    cluster_gap_seconds: float = Field(60.0, gt=0)
    """Flags of one symbol each within this many seconds of the previous one form a cluster,
    which an analyst can decide at once."""
    context_minutes: float = Field(10.0, gt=0)
    """A flag's context: the symbol's trades and minute bars this many minutes either side."""


class AlertSettings(_Strict):
    """Alert delivery: a Slack-compatible webhook, and always the audit log."""

    webhook_url_env: str = "TRADEWATCH_WEBHOOK_URL"
    """Name of the environment variable holding the webhook URL (unset: audit log only)."""
    timeout_seconds: float = Field(5.0, gt=0)
    """Timeout of one webhook request."""
    retries: int = Field(3, ge=0)
    """Extra attempts after a failed delivery, with exponential backoff."""


class CycleSettings(_Strict):
    """The scoring cycle: collect → dbt build → quality → score → publish → report."""

    interval_seconds: int = Field(300, ge=30)
    """Seconds between the starts of two scoring cycles (the scoring-cycle deployment)."""
    collect_seconds: float = Field(0.0, ge=0)
    """0: the continuous-ingestion deployment lands trades (no gap between cycles); > 0: the
    cycle collects this long itself before building."""
    warehouse_retry_delays: tuple[float, ...] = (2.0, 5.0, 10.0, 20.0, 40.0, 60.0)
    """Waits (s) before each retry while another process holds the warehouse."""


class MarketSettings(_Strict):
    """Operations per asset class (the symbol_reference seed says which class a symbol has)."""

    feed_silent_minutes: float = Field(gt=0)
    """Alert (feed_silent) when a symbol landed nothing for this long while its regular
    session had been open at least as long."""


AssetClass = Literal["us_equity", "crypto", "forex"]
_DEFAULT_MARKETS: dict[AssetClass, MarketSettings] = {
    "us_equity": MarketSettings(feed_silent_minutes=15),
    "crypto": MarketSettings(feed_silent_minutes=10),
    "forex": MarketSettings(feed_silent_minutes=10),
}


class QualitySettings(_Strict):
    """Thresholds of the data-quality suites (expectations.QualityPolicy)."""

    max_trade_age_minutes: float = Field(60.0, gt=0)
    """Freshness: the newest trade may lag the run's clock by at most this (warning)."""
    max_volume_zscore_outlier_share: float = Field(0.05, ge=0, le=1)
    """Largest share of gold rows with |volume_zscore| > 3 (warning)."""
    max_quarantine_share: float = Field(0.01, ge=0, le=1)
    """Largest share of bronze rows that break a silver rule (warning)."""
    max_anomaly_label_share: float = Field(0.25, ge=0, le=1)
    """Largest share of trades labelled anomalous (warning)."""


class Settings(_Strict):
    """Every runtime setting of Tradewatch."""

    environment: Literal["dev", "spark", "prd"] = "dev"
    """Which block of `environments:` is merged over the settings (dev: DuckDB, spark: a local
    Spark session, prd: Databricks); flows.engine builds every engine from the result."""
    paths: Paths
    symbols: tuple[str, ...]
    """Ticker symbols to collect, validate and expect in every test window."""
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
    cycle: CycleSettings = CycleSettings()
    """The scoring cycle: its interval, in-cycle collection, warehouse retries."""
    review: ReviewSettings = ReviewSettings()
    """Analyst review of the champion's flags."""
    markets: dict[AssetClass, MarketSettings] = Field(
        default_factory=lambda: dict(_DEFAULT_MARKETS)
    )
    """Operations per asset class (us_equity, crypto, forex): the feed-silence window."""

    @field_validator("symbols", mode="before")
    @classmethod
    def _symbols(cls, value: Any) -> tuple[str, ...]:
        if not isinstance(value, list | tuple):
            raise ValueError("must be a list of ticker symbols")
        try:
            symbols = validate_symbols(list(value))
        except InvalidSymbol as exc:
            raise ValueError(str(exc)) from exc
        try:
            missing = symbols_missing_from(read_symbol_reference(), symbols)
        except MarketReferenceError as exc:
            raise ValueError(str(exc)) from exc
        if missing:
            raise ValueError(
                f"{', '.join(missing)} not in dbt_project/seeds/symbol_reference.csv: add a row "
                "with the asset class (us_equity, crypto, forex) and calendar (XNYS, 24/7, FX)"
            )
        return symbols

    @field_validator("markets", mode="before")
    @classmethod
    def _markets(cls, value: Any) -> Any:
        # Settings name the classes they change; the others keep their defaults.
        if isinstance(value, dict):
            return {**_DEFAULT_MARKETS, **value}
        return value

    def asset_class_symbols(self, asset_class: str) -> tuple[str, ...]:
        """The configured symbols of one asset class (Alpha Vantage serves US equities only)."""
        reference = read_symbol_reference()
        return tuple(s for s in self.symbols if reference[s].asset_class == asset_class)


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
        raw = _load_yaml(config_path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {config_path} not found") from exc
    except _AliasRefused as exc:
        raise ConfigError(f"config file {config_path} {exc}") from None
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read config file {config_path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {config_path} must hold a mapping of settings")
    data = _interpolate(raw, env)
    overrides = data.pop("environments", {}) or {}
    environment = data.get("environment", "dev")
    if environment not in overrides and environment not in ("dev", "spark", "prd"):
        raise ConfigError(
            f"environment: unknown environment {environment!r} (dev, spark or prd)"
        )
    data = _merge(data, overrides.get(environment) or {})
    home = Path(data.get("paths", {}).get("home", "data"))
    if not home.is_absolute():
        data.setdefault("paths", {})["home"] = (config_path.resolve().parent / home).resolve()
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{config_path.name}: {_describe(exc)}") from exc
