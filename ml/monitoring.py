"""What the monitoring report shows, read once: the warehouse's monitoring and gold models and
the model registry, as typed records and frames.

Every warehouse read goes through `core.warehouse` (any engine) and names a dbt model:
monitoring_gate_decisions (the audit log's gate decisions, parsed), monitoring_drift_reports,
monitoring_quality_results, monitoring_flags_hourly and gold_anomaly_scores (each trade once,
with the newest champion's score), monitoring_shadow_summary, monitoring_review_weekly.
MLflow is read through `ml.registry`. Nothing here writes.

Each source is read on its own: one that does not exist yet (no warehouse, a model not built)
gives empty data ("no data yet"), one that fails gives that section's error in one line, and
neither hides the other sections.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

from core.warehouse import Warehouse, WarehouseError
from ml.registry import LoggedRun, ModelRegistry, RegisteredVersion

#: Section ids, in page order; also the keys of MonitoringData.errors and .notes.
MODELS = "models"
SHADOW = "shadow"
TOURNAMENT = "tournament"
DRIFT = "drift"
ANOMALIES = "anomalies"
REVIEW = "review"
QUALITY = "quality"

# How much history is read: enough to see a trend, little enough to stay readable.
MAX_TOURNAMENT_RUNS = 2000
MAX_DRIFT_RUNS = 40
MAX_QUALITY_RUNS = 40
ANOMALY_HOURS = 48
TOP_ANOMALIES = 10
REVIEW_WEEKS = 12

#: The metrics read back per tournament run (MLflow metric names).
RUN_METRICS = (
    "event_average_precision", "event_recall", "false_alerts_per_day", "median_time_to_detect_s",
    "pr_auc", "roc_auc", "precision", "recall", "f1", "trade_precision", "training_seconds",
    "latency_p99_ms",
)
TOURNAMENT_COLUMNS = (
    "tournament", "tournament_started_at", "run_id", "model", "started_at", "status", "rank",
    *RUN_METRICS, "error",
)
INPUT_KINDS = ("numeric", "categorical")

T = TypeVar("T")


@dataclass(frozen=True)
class GateRecord:
    """One champion/challenger gate decision (a row of monitoring_gate_decisions)."""

    decided_at: datetime
    decision: str
    reason: str
    champion_version: str | None
    challenger_version: str | None
    champion_metrics: dict[str, float]
    challenger_metrics: dict[str, float]
    test_window_start: datetime | None = None
    test_window_end: datetime | None = None
    primary_metric: str | None = None
    # challenger − champion on the primary metric with its bootstrap interval (keys metric,
    # champion, challenger, difference, low, high, confidence); None when the gate decided
    # before comparing.
    comparison: dict[str, Any] | None = None
    events: int | None = None

    def comparison_line(self) -> str | None:
        """The primary metric, both values, the difference and its interval, in words."""
        c = self.comparison
        if c is None:
            return None
        return (
            f"{c['metric']}: challenger {c['challenger']:.3f} vs champion "
            f"{c['champion']:.3f}, difference {c['difference']:+.3f} "
            f"({c['confidence']:.0%} interval {c['low']:+.3f} to {c['high']:+.3f}"
            + (f", {self.events} events)" if self.events is not None else ")")
        )


@dataclass(frozen=True)
class MonitoringData:
    """Everything the page shows, already read; an empty frame means "no data yet"."""

    generated_at: datetime
    home: Path
    registered_model: str = "tradewatch_anomaly"
    experiment: str = "tradewatch"
    aliases: dict[str, str] = field(default_factory=dict)
    versions: dict[str, RegisteredVersion] = field(default_factory=dict)
    gate_decisions: tuple[GateRecord, ...] = ()
    #: one row per MLflow run, TOURNAMENT_COLUMNS, numbered by `assign_tournaments`
    tournament_runs: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: monitoring_drift_reports of the newest MAX_DRIFT_RUNS runs, oldest run first
    drift: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: monitoring_flags_hourly over the newest ANOMALY_HOURS hours of trade time
    anomalies_hourly: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: the same hours per symbol: scored, flagged, critical, high, last_flagged_ts
    anomalies_by_symbol: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: the highest-scoring flagged trades of those hours (gold_anomaly_scores rows)
    top_anomalies: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: monitoring_quality_results of the newest MAX_QUALITY_RUNS runs, oldest run first
    quality: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: monitoring_shadow_summary: the champion's and a challenger's flags on the same trades.
    shadow: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: monitoring_review_weekly, every week (oldest first): the analysts' review of the flags.
    review: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: label → link relative to the reports directory (the drift page, Data Docs).
    links: dict[str, str] = field(default_factory=dict)
    #: section → why its source could not be read.
    errors: dict[str, str] = field(default_factory=dict)
    #: section → remarks about what was read (truncated history).
    notes: dict[str, list[str]] = field(default_factory=dict)

    def model_of(self, version: str | None) -> str | None:
        """The model kind (lightgbm, ...) of a registered version, when known."""
        info = self.versions.get(str(version)) if version is not None else None
        return info.model_name if info else None

    def version_label(self, version: str | None) -> str:
        """`v3 (xgboost)`, `v3` when the model kind is unknown, `none` for no version."""
        model = self.model_of(version)
        return "none" if version is None else f"v{version} ({model})" if model else f"v{version}"


def rows(frame: pd.DataFrame, index: bool = True) -> Iterator[Any]:
    """`frame.itertuples(index=index)`: the fields' types come from the model's contract (the
    pandas stubs type each field as any scalar at all)."""
    return frame.itertuples(index=index)


def one_line(exc: BaseException) -> str:
    """An exception as `Type: first line of its message`."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


# ----------------------------------------------------------------------------- the registry


def assign_tournaments(runs: pd.DataFrame) -> pd.DataFrame:
    """Number the tournaments (1 = oldest) that the MLflow runs belong to.

    A run tagged `tournament_id` belongs to that tournament. Untagged runs are grouped the way
    a tournament logs them: each configured model once, one after another, on one test window;
    a model seen again, or another test window, starts the next tournament.
    """
    ordered = runs.sort_values("started_at", kind="stable").reset_index(drop=True)
    numbers: list[int] = []
    number, seen, key = 0, set[str](), None
    for row in rows(ordered, index=False):
        tag, window = getattr(row, "tournament_tag", None), getattr(row, "test_window", None)
        tag = tag if isinstance(tag, str) and tag else None
        window = window if isinstance(window, str) else None
        this_key = ("tag", tag) if tag else ("window", window)
        if number == 0 or this_key != key or (not tag and row.model in seen):
            number, seen, key = number + 1, set(), this_key
        seen.add(str(row.model))
        numbers.append(number)
    ordered["tournament"] = numbers
    ordered["tournament_started_at"] = ordered.groupby("tournament")["started_at"].transform("min")
    return ordered.reindex(columns=list(TOURNAMENT_COLUMNS))


def tournament_runs(runs: list[LoggedRun]) -> pd.DataFrame:
    """The logged runs as one frame, grouped into numbered tournaments."""
    if not runs:
        return pd.DataFrame(columns=list(TOURNAMENT_COLUMNS))
    return assign_tournaments(pd.DataFrame([{
        "run_id": run.run_id, "model": run.model, "started_at": pd.Timestamp(run.started_at),
        "status": run.status, "rank": run.rank,
        **{name: run.metrics.get(name) for name in RUN_METRICS},
        "error": run.error, "tournament_tag": run.tournament_tag, "test_window": run.test_window,
    } for run in runs]))


# ---------------------------------------------------------------------------- the warehouse


def _utc(frame: pd.DataFrame, *columns: str) -> pd.DataFrame:
    """`columns` as UTC-aware timestamps (DuckDB's TIMESTAMP comes back naive, in UTC)."""
    for column in columns:
        values = pd.to_datetime(frame[column])
        frame[column] = (values.dt.tz_localize("UTC") if values.dt.tz is None
                         else values.dt.tz_convert("UTC"))
    return frame


def _moment(value: Any) -> datetime | None:
    if value is None or pd.isna(value):
        return None
    moment = pd.Timestamp(value)
    moment = moment.tz_localize("UTC") if moment.tzinfo is None else moment.tz_convert("UTC")
    return moment.to_pydatetime()


def _text(value: Any) -> str | None:
    return None if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value)


def _metrics(text: Any) -> dict[str, float]:
    parsed = json.loads(text) if isinstance(text, str) and text else {}
    return {k: float(v) for k, v in (parsed or {}).items()
            if isinstance(v, int | float) and not isinstance(v, bool)}


def gate_decisions(warehouse: Warehouse) -> tuple[GateRecord, ...]:
    """Every gate decision, oldest first."""
    frame = warehouse.query(
        f"select * from {warehouse.table('monitoring_gate_decisions')} "
        "order by decided_at, event_id"
    )
    records = []
    for row in rows(frame, index=False):
        compared = row.primary_difference is not None and not pd.isna(row.primary_difference)
        records.append(GateRecord(
            decided_at=_moment(row.decided_at) or datetime.min.replace(tzinfo=UTC),
            decision=_text(row.decision) or "?",
            reason=_text(row.reason) or "",
            champion_version=_text(row.champion_version),
            challenger_version=_text(row.challenger_version),
            champion_metrics=_metrics(row.champion_metrics),
            challenger_metrics=_metrics(row.challenger_metrics),
            test_window_start=_moment(row.test_window_start),
            test_window_end=_moment(row.test_window_end),
            primary_metric=_text(row.primary_metric),
            comparison={
                "metric": row.primary_metric, "champion": row.champion_primary,
                "challenger": row.challenger_primary, "difference": row.primary_difference,
                "low": row.primary_difference_low, "high": row.primary_difference_high,
                "confidence": row.interval_confidence,
            } if compared else None,
            events=None if pd.isna(row.events_in_window) else int(row.events_in_window),
        ))
    return tuple(records)


def newest_runs(
    warehouse: Warehouse, model: str, limit: int, what: str
) -> tuple[pd.DataFrame, list[str]]:
    """The rows of the newest `limit` runs (run_id, run_ts) of a monitoring model, oldest run
    first, and a note when older runs were left out."""
    table = warehouse.table(model)
    runs = warehouse.query(
        f"select run_id, max(run_ts) as run_ts from {table} group by run_id"
    ).sort_values(["run_ts", "run_id"])
    if runs.empty:
        return pd.DataFrame(), []
    kept = runs.tail(limit)
    listed = ", ".join(warehouse.literal(str(run_id)) for run_id in kept["run_id"])
    frame = _utc(warehouse.query(f"select * from {table} where run_id in ({listed})"), "run_ts")
    for flag in ("drifted", "success"):  # a missing verdict counts as neither
        if flag in frame:
            frame[flag] = frame[flag].fillna(False).astype(bool)
    frame = frame.sort_values(["run_ts", "run_id"], kind="stable")
    notes = ([f"showing the newest {len(kept)} of {len(runs)} {what} runs"]
             if len(runs) > len(kept) else [])
    return frame.reset_index(drop=True), notes


def anomalies(warehouse: Warehouse) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Flags per symbol-hour, per symbol and the top flagged trades, over the newest
    ANOMALY_HOURS hours of trade time that have scores."""
    hourly_table = warehouse.table("monitoring_flags_hourly")
    newest = warehouse.query(f"select max(trade_hour) as newest from {hourly_table}")["newest"]
    if newest.empty or pd.isna(newest.iloc[0]):
        return pd.DataFrame(), pd.DataFrame(), pd.DataFrame()
    start = pd.Timestamp(newest.iloc[0]).tz_localize(None) - pd.Timedelta(hours=ANOMALY_HOURS - 1)
    since = f"timestamp '{start:%Y-%m-%d %H:%M:%S}'"
    hourly = _utc(warehouse.query(
        f"select * from {hourly_table} where trade_hour >= {since} order by symbol, trade_hour"
    ), "trade_hour", "last_flagged_ts")
    by_symbol = (
        hourly.groupby("symbol", as_index=False)
        .agg(scored=("scored", "sum"), flagged=("flagged", "sum"),
             critical=("critical", "sum"), high=("high", "sum"),
             last_flagged_ts=("last_flagged_ts", "max"))
        .sort_values(["flagged", "symbol"], ascending=[False, True], kind="stable")
    )
    top = _utc(warehouse.query(
        "select trade_ts, symbol, score, risk_level, model_name, model_version, trade_id "
        f"from {warehouse.table('gold_anomaly_scores')} "
        f"where flag and trade_ts >= {since} "
        f"order by score desc, trade_ts desc, trade_id limit {TOP_ANOMALIES}"
    ), "trade_ts")
    return hourly, by_symbol.reset_index(drop=True), top


def shadow_summary(warehouse: Warehouse) -> pd.DataFrame:
    """monitoring_shadow_summary, newest comparison first."""
    return warehouse.query(
        f"select * from {warehouse.table('monitoring_shadow_summary')} "
        "order by last_trade_ts desc, challenger_version desc"
    )


def review_weekly(warehouse: Warehouse) -> pd.DataFrame:
    """monitoring_review_weekly, oldest week first."""
    return _utc(warehouse.query(
        f"select * from {warehouse.table('monitoring_review_weekly')} order by week_start"
    ), "week_start", "oldest_unreviewed_trade_ts", "oldest_unreviewed_scored_at")


@dataclass(frozen=True)
class ReviewSummary:
    """The analysts' review of the current champion's flags, over every week."""

    flagged: int
    reviewed: int
    confirmed: int
    waiting: int
    #: reviewed / flagged
    coverage: float
    #: confirmed / reviewed; None when nothing was reviewed
    confirmed_precision: float | None
    #: trade time and scoring time of the oldest unreviewed flag (None: the queue is empty)
    oldest_waiting_trade_ts: datetime | None
    oldest_waiting_since: datetime | None

    def queue_age(self, now: datetime) -> pd.Timedelta | None:
        """How long the longest-waiting flag has waited (since it was scored)."""
        if self.oldest_waiting_since is None:
            return None
        return pd.Timestamp(now) - pd.Timestamp(self.oldest_waiting_since)


def review_summary(review: pd.DataFrame) -> ReviewSummary:
    """Coverage, confirmed precision and the queue, summed over monitoring_review_weekly."""
    flagged, reviewed = int(review["flagged"].sum()), int(review["reviewed"].sum())
    confirmed = int(review["confirmed"].sum())
    return ReviewSummary(
        flagged=flagged, reviewed=reviewed, confirmed=confirmed,
        waiting=int(review["unreviewed"].sum()),
        coverage=reviewed / flagged if flagged else 0.0,
        confirmed_precision=confirmed / reviewed if reviewed else None,
        oldest_waiting_trade_ts=_moment(review["oldest_unreviewed_trade_ts"].min()),
        oldest_waiting_since=_moment(review["oldest_unreviewed_scored_at"].min()),
    )


# ------------------------------------------------------------------------------ everything


def links(reports: Path) -> dict[str, str]:
    """The other pages beside the report: the newest drift page, the Data Docs."""
    found: dict[str, str] = {}
    pages = sorted(
        (p for p in (reports / "drift").glob("drift-*.html") if not p.name.startswith(".")),
        key=lambda p: (p.stat().st_mtime, p.name),
    ) if (reports / "drift").is_dir() else []
    if pages:
        found["latest drift report"] = f"drift/{pages[-1].name}"
    if (reports / "data_docs" / "index.html").exists():
        found["Data Docs (expectation results)"] = "data_docs/index.html"
    return found


def load_monitoring_data(
    *,
    home: Path,
    warehouse: Warehouse | None,
    registry: ModelRegistry | None,
    experiment: str,
    reports: Path,
    now: datetime | None = None,
    registered_model: str = "tradewatch_anomaly",
) -> MonitoringData:
    """Read every section's source; a source that fails becomes that section's error.

    `warehouse` None: not built yet (every warehouse section empty); `registry` None: no MLflow
    store yet. A model the warehouse does not hold yet reads as empty.
    """
    errors: dict[str, str] = {}
    notes: dict[str, list[str]] = {}
    unreadable: str | None = None

    def attempt(section: str, read: Callable[[], T], default: T, *tables: str) -> T:
        try:
            if tables and unreadable:
                errors[section] = unreadable
                return default
            if tables and (warehouse is None or not all(map(warehouse.has_table, tables))):
                return default
            return read()
        except Exception as exc:  # one unreadable source must not take the page down
            errors[section] = one_line(exc)
            return default

    empty = pd.DataFrame()
    with contextlib.ExitStack() as held:
        try:
            if warehouse is not None:  # one connection for every query
                held.enter_context(warehouse)
        except WarehouseError as exc:
            unreadable = one_line(exc)
        wh: Any = warehouse
        aliases: dict[str, str] = attempt(
            MODELS, lambda: registry.aliases() if registry else {}, {})
        versions: dict[str, RegisteredVersion] = attempt(
            MODELS, lambda: registry.versions() if registry else {}, {})
        decisions: tuple[GateRecord, ...] = attempt(MODELS, lambda: gate_decisions(wh), (),
                            "monitoring_gate_decisions")
        runs = attempt(
            TOURNAMENT,
            lambda: tournament_runs(registry.logged_runs(experiment,
                                                         max_results=MAX_TOURNAMENT_RUNS))
            if registry else empty, empty,
        )
        drift, notes[DRIFT] = attempt(
            DRIFT, lambda: newest_runs(wh, "monitoring_drift_reports", MAX_DRIFT_RUNS, "drift"),
            (empty, list[str]()), "monitoring_drift_reports",
        )
        quality, notes[QUALITY] = attempt(
            QUALITY,
            lambda: newest_runs(wh, "monitoring_quality_results", MAX_QUALITY_RUNS, "quality"),
            (empty, list[str]()), "monitoring_quality_results",
        )
        hourly, by_symbol, top = attempt(
            ANOMALIES, lambda: anomalies(wh), (empty, empty, empty),
            "monitoring_flags_hourly", "gold_anomaly_scores",
        )
        shadow = attempt(SHADOW, lambda: shadow_summary(wh), empty, "monitoring_shadow_summary")
        review = attempt(REVIEW, lambda: review_weekly(wh), empty, "monitoring_review_weekly")
    return MonitoringData(
        generated_at=(now or datetime.now(UTC)).astimezone(UTC),
        home=home,
        registered_model=registered_model,
        experiment=experiment,
        aliases=aliases,
        versions=versions,
        gate_decisions=decisions,
        tournament_runs=runs,
        drift=drift,
        anomalies_hourly=hourly,
        anomalies_by_symbol=by_symbol,
        top_anomalies=top,
        quality=quality,
        shadow=shadow,
        review=review,
        links=attempt("links", lambda: links(reports), {}),
        errors=errors,
        notes={k: v for k, v in notes.items() if v},
    )


# ------------------------------------------------------------------ summaries the page shows

#: (metric name as logged, label, which way is better: +1 higher, -1 lower, 0 neither, decimals),
#: event-level figures first (ml/events.py), then trade-level ones.
GATE_METRICS: tuple[tuple[str, str, int, int], ...] = (
    ("event_average_precision", "event average precision", 1, 3),
    ("event_recall_at_precision", "event recall at the required alert precision", 1, 3),
    ("event_recall", "event recall at threshold", 1, 3),
    ("alert_precision", "alert precision at threshold", 1, 3),
    ("false_alerts_per_day", "false alerts per day", -1, 1),
    ("median_time_to_detect_s", "median time to detect (s)", -1, 1),
    ("events", "labelled events in window", 0, 0),
    ("pr_auc", "trade PR-AUC", 1, 3),
    ("roc_auc", "trade ROC-AUC", 1, 3),
    ("precision", "trade precision", 1, 3),
    ("recall", "trade recall", 1, 3),
    ("f1", "trade F1", 1, 3),
    ("latency_p50_ms", "latency p50 (ms/row)", -1, 4),
    ("latency_p99_ms", "latency p99 (ms/row)", -1, 4),
    ("threshold", "score threshold", 0, 3),
    ("rows", "test rows", 0, 0),
    ("positives", "test positives", 0, 0),
)
#: The leaderboard's columns after rank and model (MLflow metric names, decimals shown).
LEADERBOARD_METRICS = (
    ("event_average_precision", 3), ("event_recall", 3), ("false_alerts_per_day", 1),
    ("median_time_to_detect_s", 1), ("pr_auc", 3), ("roc_auc", 3), ("precision", 3),
    ("recall", 3), ("f1", 3), ("training_seconds", 1), ("latency_p99_ms", 4),
)
_KIND_ORDER = {"numeric": 0, "categorical": 1, "prediction": 2, "performance": 3}


def latest_run(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of the newest run of a drift or quality frame."""
    return frame[frame["run_id"] == frame["run_id"].iloc[-1]]


def leaderboard(runs: pd.DataFrame) -> pd.DataFrame:
    """The newest tournament's runs in rank order (by the gate's primary metric; PR-AUC for
    runs logged without a rank), failed runs last."""
    latest = runs[runs["tournament"] == runs["tournament"].max()].copy()
    latest["_order"] = latest["rank"].where(
        latest["rank"].notna(), latest["pr_auc"].rank(ascending=False, method="first") + 1e6
    ).astype(float)
    latest.loc[latest["status"] != "FINISHED", "_order"] = float("inf")
    return latest.sort_values(["_order", "model"]).drop(columns="_order")


@dataclass(frozen=True)
class TournamentSummary:
    """One tournament: when, which models, the winner (None when every run failed)."""

    number: int
    started_at: datetime
    models: tuple[str, ...]
    winner: str | None
    winner_event_average_precision: float | None
    winner_pr_auc: float | None
    failed: int


def tournament_summaries(runs: pd.DataFrame, shown: int) -> list[TournamentSummary]:
    """The newest `shown` tournaments, newest first."""
    summaries = []
    for number, group in list(runs.groupby("tournament", sort=True))[-shown:][::-1]:
        finished = group[(group["status"] == "FINISHED") & group["pr_auc"].notna()]
        ranked = finished[finished["rank"] == 1]
        best = (ranked.iloc[0] if not ranked.empty else
                finished.loc[finished["pr_auc"].idxmax()] if not finished.empty else None)
        summaries.append(TournamentSummary(
            int(number),  # type: ignore[arg-type]  # the tournament's number
            group["tournament_started_at"].iloc[0], tuple(sorted(group["model"])),
            None if best is None else str(best["model"]),
            # (a row's value: pandas-stubs allow a Series for a label on a row too)
            None if best is None else best["event_average_precision"],  # type: ignore[arg-type]
            None if best is None else best["pr_auc"],  # type: ignore[arg-type]
            int((group["status"] != "FINISHED").sum()),
        ))
    return summaries


@dataclass(frozen=True)
class DriftGrid:
    """Statistic / threshold per feature (rows) and drift run (columns); NaN where unknown."""

    ratio: Any  # numpy array, rows × columns
    features: list[str]
    runs: list[datetime]
    #: (row, column) of each drifted feature
    drifted: list[tuple[int, int]]


def drift_grid(drift: pd.DataFrame) -> DriftGrid:
    """The drift history as a grid: inputs first, then scores and performance."""
    runs = drift.drop_duplicates("run_id")[["run_id", "run_ts"]]
    features = (drift.drop_duplicates(["kind", "feature"])[["kind", "feature"]]
                .assign(order=lambda f: f["kind"].map(_KIND_ORDER).fillna(9))
                .sort_values(["order", "feature"]))
    keys = list(zip(features["kind"], features["feature"], strict=True))
    ratio = (drift.assign(ratio=drift["statistic"].clip(lower=0)
                          / drift["threshold"].where(drift["threshold"] > 0))
             .pivot_table(index=["kind", "feature"], columns="run_id", values="ratio",
                          aggfunc="first", dropna=False)
             .reindex(index=pd.MultiIndex.from_tuples(keys), columns=runs["run_id"]))
    row_of = {key: i for i, key in enumerate(keys)}
    column_of = {run_id: j for j, run_id in enumerate(runs["run_id"])}
    return DriftGrid(
        ratio.to_numpy(dtype=float),
        [f if k in INPUT_KINDS else f"{f} ({k})" for k, f in keys],
        list(runs["run_ts"]),
        [(row_of[(row.kind, row.feature)], column_of[row.run_id])
         for row in rows(drift[drift["drifted"]], index=False)],
    )


def flag_grid(hourly: pd.DataFrame) -> pd.DataFrame:
    """Flagged trades per symbol (rows) and hour (columns, every hour of the span)."""
    hours = pd.date_range(hourly["trade_hour"].min(), hourly["trade_hour"].max(), freq="h")
    return (hourly.pivot_table(index="symbol", columns="trade_hour", values="flagged",
                               aggfunc="sum")
            .reindex(index=sorted(hourly["symbol"].unique()), columns=hours).fillna(0))


@dataclass(frozen=True)
class QualityRun:
    """One checkpoint run: per suite (passed, evaluated, worst failure), and its verdict."""

    run_id: str
    run_ts: datetime
    suites: dict[str, tuple[int, int, str]]
    critical_failed: int
    warnings_failed: int
    expectations: int

    @property
    def verdict(self) -> str:
        """"2 critical failed", "1 warning" or "passed"."""
        if self.critical_failed:
            return f"{self.critical_failed} critical failed"
        if self.warnings_failed:
            return f"{self.warnings_failed} warning{'s' if self.warnings_failed != 1 else ''}"
        return "passed"


def quality_runs(quality: pd.DataFrame) -> list[QualityRun]:
    """Every checkpoint run, newest first; a suite's state is bad (a critical expectation
    failed), warn (a warning failed) or ok."""
    runs = []
    for run_id, group in list(quality.groupby("run_id", sort=False))[::-1]:
        suites = {}
        for suite, in_suite in group.groupby("suite", sort=True):
            failed = in_suite[~in_suite["success"]]
            state = ("bad" if (failed["severity"] == "critical").any() else
                     "warn" if len(failed) else "ok")
            suites[str(suite)] = (len(in_suite) - len(failed), len(in_suite), state)
        failed = group[~group["success"]]
        critical = int((failed["severity"] == "critical").sum())
        runs.append(QualityRun(str(run_id), group["run_ts"].iloc[0], suites, critical,
                               len(failed) - critical, len(group)))
    return runs


@dataclass(frozen=True)
class DriftRun:
    """One drift run: how many input features drifted, which did, and its current window."""

    run_id: str
    run_ts: datetime
    inputs: int
    inputs_drifted: int
    #: every drifted feature, score or metric, by name
    drifted: tuple[str, ...]
    #: drifted kinds other than the inputs (prediction, performance)
    other_drifted: tuple[str, ...]
    current_start: datetime | None
    current_end: datetime | None


def drift_runs(drift: pd.DataFrame) -> list[DriftRun]:
    """Every drift run, newest first."""
    runs = []
    for run_id, group in list(drift.groupby("run_id", sort=False))[::-1]:
        inputs = group[group["kind"].isin(INPUT_KINDS)]
        others = group[~group["kind"].isin(INPUT_KINDS) & group["drifted"]]
        runs.append(DriftRun(
            str(run_id), group["run_ts"].iloc[0], len(inputs), int(inputs["drifted"].sum()),
            tuple(sorted(group.loc[group["drifted"], "feature"])), tuple(others["kind"]),
            _moment(group["current_start"].iloc[0]), _moment(group["current_end"].iloc[0]),
        ))
    return runs


def latest_drift(drift: pd.DataFrame) -> pd.DataFrame:
    """The newest run's rows, drifted first, then by statistic / threshold, highest first."""
    latest = latest_run(drift)
    ratio = latest["statistic"] / latest["threshold"].where(latest["threshold"] > 0)
    return latest.assign(_ratio=ratio).sort_values(
        ["drifted", "_ratio"], ascending=[False, False]).drop(columns="_ratio")


def latest_failures(quality: pd.DataFrame) -> pd.DataFrame:
    """The newest checkpoint run's failed expectations, critical first."""
    latest = latest_run(quality)
    return latest[~latest["success"]].assign(
        _order=lambda f: (f["severity"] != "critical").astype(int)
    ).sort_values(["_order", "suite", "expectation"]).drop(columns="_order")
