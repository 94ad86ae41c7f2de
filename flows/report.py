"""`tradewatch report`: the monitoring page an on-call engineer opens first.

One self-contained HTML file, <home>/reports/monitoring.html: inline CSS and every plot a PNG
embedded as a data URI, so it renders offline (from a laptop, a mail attachment or a volume)
and references no external asset. Sections: the champion and the challenger with the latest
gate decision, the tournament history, drift per feature over time, flagged trades per symbol
per hour, and the data-quality history.

Everything is read-only. The sections read the files the ML and quality layers write (the
shared file contracts: audit log, drift and quality NDJSON, scores parquet) and the MLflow
store, not the warehouse's monitoring tables: dbt rebuilds those only on `tradewatch
transform`, so right after training, scoring or a drift run they lag behind, while this page
must show what just happened. Each section reads its own source: one that does not exist yet
renders a "no data yet" note, one that cannot be read renders why, and neither hides the rest.
A fresh data home is never written to, except for the report itself.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator
from rich.console import Console

from core.datahome import DRIFT_RECORDS, QUALITY_RESULTS, SCORES_FILES, write_atomic
from core.html import Cell, escape, figure, new_figure, page, png, table
from flows.config import Settings
from ml.audit import AuditLog

REPORT_FILE = "monitoring.html"

#: Section ids, in page order; also the keys of MonitoringData.errors and .notes.
MODELS = "models"
SHADOW = "shadow"
TOURNAMENT = "tournament"
DRIFT = "drift"
ANOMALIES = "anomalies"
QUALITY = "quality"
SECTIONS: dict[str, str] = {
    MODELS: "Champion and challenger",
    SHADOW: "Champion against challenger on live trades",
    TOURNAMENT: "Tournament history",
    DRIFT: "Drift per feature",
    ANOMALIES: "Anomalies per symbol",
    QUALITY: "Data quality",
}

# How much history the page shows: enough to see a trend, little enough to stay readable.
MAX_TOURNAMENT_RUNS = 2000
MAX_DRIFT_RUNS = 40
MAX_QUALITY_RUNS = 40
QUALITY_RUNS_SHOWN = 12
GATE_DECISIONS_SHOWN = 10
TOURNAMENTS_SHOWN = 10
ANOMALY_HOURS = 48
TOP_ANOMALIES = 10

TOURNAMENT_COLUMNS = (
    "tournament", "tournament_started_at", "run_id", "model", "started_at", "status", "rank",
    "event_average_precision", "event_recall", "false_alerts_per_day", "median_time_to_detect_s",
    "pr_auc", "roc_auc", "precision", "recall", "f1", "trade_precision",
    "training_seconds", "latency_p99_ms", "error",
)
# Logged per tournament run (MLflow metric names), read back for the leaderboard.
_RUN_METRICS = (
    "event_average_precision", "event_recall", "false_alerts_per_day", "median_time_to_detect_s",
    "pr_auc", "roc_auc", "precision", "recall", "f1", "trade_precision", "training_seconds",
    "latency_p99_ms",
)
DRIFT_COLUMNS = tuple(DRIFT_RECORDS.columns)
QUALITY_COLUMNS = tuple(QUALITY_RESULTS.columns)
HOURLY_COLUMNS = ("symbol", "hour", "scored", "flagged")
BY_SYMBOL_COLUMNS = ("symbol", "scored", "flagged", "critical", "high", "last_flagged")
SHADOW_COLUMNS = (
    "challenger_version", "champion_version", "trades", "flag_agreement", "both_flagged",
    "champion_only_flagged", "challenger_only_flagged", "labelled_trades",
    "champion_precision", "challenger_precision", "first_trade_ts", "last_trade_ts",
)
TOP_COLUMNS = (
    "trade_ts", "symbol", "score", "risk_level", "model_name", "model_version", "trade_id",
)

# (metric name as logged, label, which way is better: +1 higher, -1 lower, 0 neither)
# Event-level figures first (ml/events.py: alerts per symbol, each labelled event once), then
# trade-level ones.
METRICS: tuple[tuple[str, str, int], ...] = (
    ("event_average_precision", "event average precision", 1),
    ("event_recall_at_precision", "event recall at the required alert precision", 1),
    ("event_recall", "event recall at threshold", 1),
    ("alert_precision", "alert precision at threshold", 1),
    ("false_alerts_per_day", "false alerts per day", -1),
    ("median_time_to_detect_s", "median time to detect (s)", -1),
    ("events", "labelled events in window", 0),
    ("pr_auc", "trade PR-AUC", 1),
    ("roc_auc", "trade ROC-AUC", 1),
    ("precision", "trade precision", 1),
    ("recall", "trade recall", 1),
    ("f1", "trade F1", 1),
    ("latency_p50_ms", "latency p50 (ms/row)", -1),
    ("latency_p99_ms", "latency p99 (ms/row)", -1),
    ("threshold", "score threshold", 0),
    ("rows", "test rows", 0),
    ("positives", "test positives", 0),
)
_COUNT_METRICS = {"rows", "positives", "events"}
_METRIC_DIGITS = {"false_alerts_per_day": 1, "median_time_to_detect_s": 1}
_KIND_ORDER = {"numeric": 0, "categorical": 1, "prediction": 2, "performance": 3}


# ------------------------------------------------------------------------------------ data


@dataclass(frozen=True)
class ModelVersionInfo:
    """One registered version of the anomaly model."""

    version: str
    model_name: str | None = None
    run_id: str | None = None
    created_at: datetime | None = None


@dataclass(frozen=True)
class GateRecord:
    """One champion/challenger gate decision from the audit log."""

    decided_at: datetime
    decision: str
    reason: str
    champion_version: str | None
    challenger_version: str | None
    champion_metrics: dict[str, float]
    challenger_metrics: dict[str, float]
    test_window_start: str | None = None
    test_window_end: str | None = None
    primary_metric: str | None = None
    # challenger − champion on the primary metric with its bootstrap interval (ml.metrics
    # Difference.as_dict()); None when the gate decided before comparing.
    comparison: dict[str, Any] | None = None
    events: int | None = None

    def comparison_line(self) -> str | None:
        """The primary metric, both values, the difference and its interval, in words."""
        c = self.comparison
        try:
            return (
                f"{c['metric']}: challenger {float(c['challenger']):.3f} vs champion "
                f"{float(c['champion']):.3f}, difference {float(c['difference']):+.3f} "
                f"({float(c['confidence']):.0%} interval {float(c['low']):+.3f} to "
                f"{float(c['high']):+.3f}"
                + (f", {self.events} events)" if self.events is not None else ")")
            )
        except (TypeError, KeyError, ValueError):
            return None


def _frame(columns: Sequence[str]) -> Callable[[], pd.DataFrame]:
    return lambda: pd.DataFrame(columns=list(columns))


@dataclass(frozen=True)
class MonitoringData:
    """Everything the page shows, already read; an empty frame means "no data yet"."""

    generated_at: datetime
    home: Path
    registered_model: str = "tradewatch_anomaly"
    experiment: str = "tradewatch"
    aliases: dict[str, str] = field(default_factory=dict)
    versions: dict[str, ModelVersionInfo] = field(default_factory=dict)
    gate_decisions: tuple[GateRecord, ...] = ()
    tournament_runs: pd.DataFrame = field(default_factory=_frame(TOURNAMENT_COLUMNS))
    drift: pd.DataFrame = field(default_factory=_frame(DRIFT_COLUMNS))
    anomalies_hourly: pd.DataFrame = field(default_factory=_frame(HOURLY_COLUMNS))
    anomalies_by_symbol: pd.DataFrame = field(default_factory=_frame(BY_SYMBOL_COLUMNS))
    top_anomalies: pd.DataFrame = field(default_factory=_frame(TOP_COLUMNS))
    quality: pd.DataFrame = field(default_factory=_frame(QUALITY_COLUMNS))
    #: monitoring_shadow_summary: the champion's and a challenger's flags on the same trades.
    shadow: pd.DataFrame = field(default_factory=_frame(SHADOW_COLUMNS))
    #: label → link relative to the reports directory (the drift page, Data Docs).
    links: dict[str, str] = field(default_factory=dict)
    #: section → why its source could not be read.
    errors: dict[str, str] = field(default_factory=dict)
    #: section → remarks about what was read (skipped files, truncated history).
    notes: dict[str, list[str]] = field(default_factory=dict)


# ------------------------------------------------------------------------------- readers

T = TypeVar("T")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def _read_registry(
    tracking_uri: str, name: str
) -> tuple[dict[str, str], dict[str, ModelVersionInfo]]:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        model = client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"):
            return {}, {}
        raise
    aliases = {alias: str(version) for alias, version in (model.aliases or {}).items()}
    versions: dict[str, ModelVersionInfo] = {}
    for found in client.search_model_versions(f"name = '{name}'"):
        tags = found.tags or {}
        created = (
            datetime.fromtimestamp(found.creation_timestamp / 1000, UTC)
            if found.creation_timestamp else None
        )
        versions[str(found.version)] = ModelVersionInfo(
            str(found.version), tags.get("model_name"), tags.get("run_id") or found.run_id,
            created,
        )
    return aliases, versions


def _read_tournament_runs(tracking_uri: str, experiment: str) -> pd.DataFrame:
    from mlflow import MlflowClient
    from mlflow.entities import ViewType

    client = MlflowClient(tracking_uri=tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None or found.lifecycle_stage == "deleted":
        return _frame(TOURNAMENT_COLUMNS)()
    runs = client.search_runs(
        [found.experiment_id],
        run_view_type=ViewType.ACTIVE_ONLY,
        max_results=MAX_TOURNAMENT_RUNS,
        order_by=["attributes.start_time DESC"],
    )
    rows = []
    for run in runs:
        metrics, tags, params = run.data.metrics, run.data.tags, run.data.params
        rank = tags.get("rank")
        rows.append({
            "run_id": run.info.run_id,
            "model": tags.get("model") or run.info.run_name or "?",
            "started_at": pd.Timestamp(run.info.start_time, unit="ms", tz="UTC"),
            "status": run.info.status,
            "rank": int(rank) if rank and rank.isdigit() else None,
            **{name: metrics.get(name) for name in _RUN_METRICS},
            "error": tags.get("error"),
            "tournament_tag": tags.get("tournament_id"),
            "test_window": params.get("data.test_end"),
        })
    if not rows:
        return _frame(TOURNAMENT_COLUMNS)()
    return assign_tournaments(pd.DataFrame(rows))


def assign_tournaments(runs: pd.DataFrame) -> pd.DataFrame:
    """Number the tournaments (1 = oldest) that the MLflow runs belong to.

    A run tagged `tournament_id` belongs to that tournament. Untagged runs are grouped the way
    a tournament logs them: each configured model once, one after another, on one test window;
    a model seen again, or another test window, starts the next tournament.
    """
    ordered = runs.sort_values("started_at", kind="stable").reset_index(drop=True)
    numbers: list[int] = []
    number, seen, key = 0, set(), None
    for row in ordered.itertuples(index=False):
        tag, window = getattr(row, "tournament_tag", None), getattr(row, "test_window", None)
        tag = tag if isinstance(tag, str) and tag else None
        window = window if isinstance(window, str) else None
        this_key = ("tag", tag) if tag else ("window", window)
        if number == 0 or this_key != key or (not tag and row.model in seen):
            number, seen, key = number + 1, set(), this_key
        seen.add(row.model)
        numbers.append(number)
    ordered["tournament"] = numbers
    ordered["tournament_started_at"] = ordered.groupby("tournament")["started_at"].transform("min")
    return ordered.reindex(columns=list(TOURNAMENT_COLUMNS))


def _gate_records(directory: Path) -> tuple[GateRecord, ...]:
    records = []
    for record in AuditLog(directory).records("gate_decision"):
        payload = record.payload

        def metrics(key: str, payload: dict[str, Any] = payload) -> dict[str, float]:
            value = payload.get(key) or {}
            return {k: float(v) for k, v in value.items() if isinstance(v, int | float)}

        records.append(GateRecord(
            decided_at=record.event_ts.astimezone(UTC),
            decision=str(payload.get("decision", "?")),
            reason=str(payload.get("reason", "")),
            champion_version=_str_or_none(payload.get("champion_version")),
            challenger_version=_str_or_none(payload.get("challenger_version")),
            champion_metrics=metrics("champion_metrics"),
            challenger_metrics=metrics("challenger_metrics"),
            test_window_start=_str_or_none(payload.get("test_window_start")),
            test_window_end=_str_or_none(payload.get("test_window_end")),
            primary_metric=_str_or_none(payload.get("primary_metric")),
            comparison=payload.get("comparison") if isinstance(payload.get("comparison"), dict)
            else None,
            events=payload.get("events") if isinstance(payload.get("events"), int) else None,
        ))
    return tuple(sorted(records, key=lambda r: r.decided_at))


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _newest_files(directory: Path, pattern: str, limit: int) -> tuple[list[Path], int]:
    """The newest `limit` completed files (dot-named temporaries excluded) and how many exist."""
    if not directory.is_dir():
        return [], 0
    paths = [p for p in directory.glob(pattern) if not p.name.startswith(".")]
    paths.sort(key=lambda p: (p.stat().st_mtime, p.name))
    return paths[-limit:], len(paths)


def _read_ndjson_runs(
    directory: Path, pattern: str, limit: int, columns: Sequence[str], what: str
) -> tuple[pd.DataFrame, list[str]]:
    """Records of the newest files; a damaged file is skipped and named in the notes."""
    paths, total = _newest_files(directory, pattern, limit)
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    if total > len(paths):
        notes.append(f"showing the newest {len(paths)} of {total} {what} runs")
    for path in paths:
        try:
            with open(path, encoding="utf-8") as handle:
                rows.extend(json.loads(line) for line in handle if line.strip())
        except (OSError, ValueError) as exc:
            notes.append(f"skipped unreadable file {path.name} ({_one_line(exc)})")
    frame = pd.DataFrame(rows).reindex(columns=list(columns))
    if not frame.empty:
        frame["run_ts"] = pd.to_datetime(frame["run_ts"], utc=True, format="ISO8601")
        for flag in ("drifted", "success"):
            if flag in frame:
                frame[flag] = frame[flag].map(lambda v: v is True)
        frame = frame.sort_values(["run_ts", "run_id"], kind="stable").reset_index(drop=True)
    return frame, notes


def _read_anomalies(scores_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Flagged trades per symbol per hour over the newest ANOMALY_HOURS of trade time."""
    files = sorted(
        p for p in scores_dir.glob(SCORES_FILES.pattern) if not p.name.startswith(".")
    ) if scores_dir.is_dir() else []
    if not files:
        return (_frame(HOURLY_COLUMNS)(), _frame(BY_SYMBOL_COLUMNS)(), _frame(TOP_COLUMNS)())
    import duckdb

    listed = ", ".join("'" + str(p).replace("'", "''") + "'" for p in files)
    # An in-memory database: nothing is opened for writing, and no lock is taken on the
    # warehouse that dbt may be building at the same time.
    connection = duckdb.connect()
    try:
        connection.execute("set TimeZone = 'UTC'")
        # A trade re-scored by a newer champion counts once, with its newest score: the same
        # rule as gold_anomaly_scores.
        connection.execute(f"""
            create temp view scores as
            with landed as (
                select * from read_parquet([{listed}], filename = true,
                                           hive_partitioning = false, union_by_name = true)
            ),
            ranked as (
                select *, row_number() over (
                    partition by trade_id order by scored_at desc, filename desc
                ) as score_rank
                from landed
                where trade_id is not null
            )
            select trade_id, symbol, trade_ts, score, flag, risk_level, model_name,
                   model_version
            from ranked
            where score_rank = 1
        """)
        connection.execute(f"""
            create temp view recent as
            select * from scores
            where trade_ts >= (
                select date_trunc('hour', max(trade_ts)) - interval {ANOMALY_HOURS - 1} hour
                from scores
            )
        """)
        hourly = connection.execute("""
            select symbol, date_trunc('hour', trade_ts) as hour, count(*) as scored,
                   count(*) filter (where flag) as flagged
            from recent group by all order by symbol, hour
        """).df()
        by_symbol = connection.execute("""
            select symbol, count(*) as scored, count(*) filter (where flag) as flagged,
                   count(*) filter (where flag and risk_level = 'critical') as critical,
                   count(*) filter (where flag and risk_level = 'high') as high,
                   max(trade_ts) filter (where flag) as last_flagged
            from recent group by symbol order by flagged desc, symbol
        """).df()
        top = connection.execute(f"""
            select trade_ts, symbol, score, risk_level, model_name, model_version, trade_id
            from recent where flag
            order by score desc, trade_ts desc, trade_id limit {TOP_ANOMALIES}
        """).df()
    finally:
        connection.close()
    return hourly, by_symbol, top


def _read_shadow(warehouse: Path) -> pd.DataFrame:
    """monitoring_shadow_summary (built by the cycle's publish step); empty before it exists."""
    from core.warehouse import DuckDBWarehouse

    if not warehouse.exists():
        return _frame(SHADOW_COLUMNS)()
    with DuckDBWarehouse(warehouse) as reader:
        if not reader.has_table("monitoring_shadow_summary"):  # the model is not built yet
            return _frame(SHADOW_COLUMNS)()
        return reader.query(
            f"select * from {reader.table('monitoring_shadow_summary')} "
            "order by last_trade_ts desc, challenger_version desc"
        )


def _links(reports: Path) -> dict[str, str]:
    links: dict[str, str] = {}
    drift_pages, _ = _newest_files(reports / "drift", "drift-*.html", 1)
    if drift_pages:
        links["latest drift report"] = f"drift/{drift_pages[-1].name}"
    if (reports / "data_docs" / "index.html").exists():
        links["Data Docs (expectation results)"] = "data_docs/index.html"
    return links


def collect_monitoring_data(settings: Settings, *, now: datetime | None = None) -> MonitoringData:
    """Read every section's source (read-only); a source that fails becomes that section's error."""
    paths = settings.paths
    errors: dict[str, str] = {}
    notes: dict[str, list[str]] = {}

    def attempt(section: str, read: Callable[[], T], default: T) -> T:
        try:
            return read()
        except Exception as exc:  # one unreadable source must not take the page down
            errors[section] = _one_line(exc)
            return default

    # Opening a missing SQLite file would create (and migrate) an MLflow store: look first.
    has_mlflow = paths.mlflow_db.is_file()
    tracking_uri = f"sqlite:///{paths.mlflow_db}"
    name = settings.training.registered_model
    aliases, versions = attempt(
        MODELS, lambda: _read_registry(tracking_uri, name) if has_mlflow else ({}, {}), ({}, {})
    )
    gate_decisions = attempt(MODELS, lambda: _gate_records(paths.audit), ())
    tournament_runs = attempt(
        TOURNAMENT,
        lambda: _read_tournament_runs(tracking_uri, settings.training.experiment)
        if has_mlflow else _frame(TOURNAMENT_COLUMNS)(),
        _frame(TOURNAMENT_COLUMNS)(),
    )
    drift, notes[DRIFT] = attempt(
        DRIFT,
        lambda: _read_ndjson_runs(paths.drift_records, DRIFT_RECORDS.pattern, MAX_DRIFT_RUNS,
                                  DRIFT_COLUMNS, "drift"),
        (_frame(DRIFT_COLUMNS)(), []),
    )
    quality, notes[QUALITY] = attempt(
        QUALITY,
        lambda: _read_ndjson_runs(paths.quality_results, QUALITY_RESULTS.pattern,
                                  MAX_QUALITY_RUNS, QUALITY_COLUMNS, "quality"),
        (_frame(QUALITY_COLUMNS)(), []),
    )
    hourly, by_symbol, top = attempt(
        ANOMALIES,
        lambda: _read_anomalies(paths.scores),
        (_frame(HOURLY_COLUMNS)(), _frame(BY_SYMBOL_COLUMNS)(), _frame(TOP_COLUMNS)()),
    )
    shadow = attempt(SHADOW, lambda: _read_shadow(paths.warehouse), _frame(SHADOW_COLUMNS)())
    return MonitoringData(
        generated_at=(now or datetime.now(UTC)).astimezone(UTC),
        home=paths.home,
        registered_model=name,
        experiment=settings.training.experiment,
        aliases=aliases,
        versions=versions,
        gate_decisions=gate_decisions,
        tournament_runs=tournament_runs,
        drift=drift,
        anomalies_hourly=hourly,
        anomalies_by_symbol=by_symbol,
        top_anomalies=top,
        quality=quality,
        shadow=shadow,
        links=attempt("links", lambda: _links(paths.reports), {}),
        errors=errors,
        notes={k: v for k, v in notes.items() if v},
    )


def run_report(settings: Settings, *, console: Console | None = None) -> Path:
    """Write <home>/reports/monitoring.html (atomically) and return its path."""
    console = console or Console()
    page = render_monitoring_report(collect_monitoring_data(settings))
    path = write_atomic(settings.paths.reports / REPORT_FILE, page)
    console.print(f"report: {path.resolve().as_uri()}")
    return path


# ------------------------------------------------------------------------------ rendering

def render_monitoring_report(data: MonitoringData) -> str:
    """The whole page as one self-contained HTML document (also well-formed XML)."""
    sections = {
        MODELS: _models_section,
        SHADOW: _shadow_section,
        TOURNAMENT: _tournament_section,
        DRIFT: _drift_section,
        ANOMALIES: _anomalies_section,
        QUALITY: _quality_section,
    }
    nav = " ".join(f'<a href="#{key}">{escape(title)}</a>' for key, title in SECTIONS.items())
    links = " &#183; ".join(
        f'<a href="{escape(href)}">{escape(label)}</a>' for label, href in data.links.items()
    )
    parts = [
        "<h1>Tradewatch monitoring</h1>",
        f'<p class="meta">generated {escape(_ts(data.generated_at))} from '
        f"<code>{escape(data.home)}</code>"
        f" &#183; model <code>{escape(data.registered_model)}</code> &#183; MLflow experiment "
        f"<code>{escape(data.experiment)}</code></p>",
        f"<nav>{nav}</nav>",
        _status_cards(data),
    ]
    if links:
        parts.append(f'<p class="meta">more: {links}</p>')
    for key, render in sections.items():
        parts.append(f'<section id="{key}">')
        parts.append(f"<h2>{escape(SECTIONS[key])}</h2>")
        if key in data.errors:
            parts.append(
                f'<p class="error">Could not read this section\'s source: '
                f"{escape(data.errors[key])}</p>"
            )
        else:
            parts.append(render(data))
        for note in data.notes.get(key, []):
            parts.append(f'<p class="note">{escape(note)}</p>')
        parts.append("</section>")
    return page("Tradewatch monitoring", parts)


# --- status cards


def _card(label: str, value: str, detail: str, state: str) -> str:
    return (
        f'<div class="card {state}"><div class="label">{escape(label)}</div>'
        f'<div class="value">{escape(value)}</div><div class="detail">{escape(detail)}</div></div>'
    )


def _status_cards(data: MonitoringData) -> str:
    cards = []
    champion = data.aliases.get("champion")
    if MODELS in data.errors:
        cards.append(_card("champion", "unreadable", data.errors[MODELS], "bad"))
    elif champion:
        cards.append(_card("champion", f"version {champion}", _model_of(data, champion) or "",
                           "ok"))
    else:
        cards.append(_card("champion", "none yet", "run `tradewatch train`", "none"))
    if data.gate_decisions:
        last = data.gate_decisions[-1]
        cards.append(_card(
            "last gate decision", f"{last.decision} v{last.challenger_version}",
            _ts(last.decided_at), "ok" if last.decision == "promote" else "warn",
        ))
    else:
        cards.append(_card("last gate decision", "none yet", "", "none"))
    drift = data.drift
    if not drift.empty:
        latest = drift[drift["run_id"] == drift["run_id"].iloc[-1]]
        inputs = latest[latest["kind"].isin(["numeric", "categorical"])]
        drifted = int(inputs["drifted"].fillna(False).astype(bool).sum())
        other = latest[~latest["kind"].isin(["numeric", "categorical"])]
        extra = ", ".join(
            f"{row.kind} drift" for row in other.itertuples() if bool(row.drifted)
        )
        cards.append(_card(
            "drift (latest run)", f"{drifted} of {len(inputs)} features",
            extra or _ts(latest["run_ts"].iloc[0]), "bad" if drifted or extra else "ok",
        ))
    else:
        cards.append(_card("drift (latest run)", "no run yet", "", "none"))
    quality = data.quality
    if not quality.empty:
        latest = quality[quality["run_id"] == quality["run_id"].iloc[-1]]
        failed = latest[~latest["success"].astype(bool)]
        critical = int((failed["severity"] == "critical").sum())
        warnings = len(failed) - critical
        if critical:
            value, state = f"{critical} critical failed", "bad"
        elif warnings:
            value, state = f"{warnings} warning{'s' if warnings > 1 else ''}", "warn"
        else:
            value, state = f"all {len(latest)} passed", "ok"
        cards.append(_card("data quality (latest run)", value, _ts(latest["run_ts"].iloc[0]),
                           state))
    else:
        cards.append(_card("data quality (latest run)", "no run yet", "", "none"))
    hourly = data.anomalies_hourly
    if not hourly.empty:
        newest = hourly["hour"].max()
        flagged = int(hourly.loc[hourly["hour"] == newest, "flagged"].sum())
        cards.append(_card(
            "flagged trades (newest hour)", f"{flagged:,}", f"hour from {_ts(newest)}",
            "warn" if flagged else "ok",
        ))
    else:
        cards.append(_card("flagged trades (newest hour)", "no scores yet", "", "none"))
    return '<div class="cards">' + "".join(cards) + "</div>"


# --- champion and challenger


def _model_of(data: MonitoringData, version: str | None) -> str | None:
    info = data.versions.get(str(version)) if version is not None else None
    return info.model_name if info else None


def _version_label(data: MonitoringData, version: str | None) -> str:
    if version is None:
        return "none"
    model = _model_of(data, version)
    return f"v{version} ({model})" if model else f"v{version}"


def _models_section(data: MonitoringData) -> str:
    if not data.aliases and not data.gate_decisions:
        return _empty(
            f"No version of {data.registered_model} is registered and the gate has not decided "
            "yet: run `tradewatch train`."
        )
    parts = []
    if data.aliases:
        rows = []
        for alias in ("champion", "challenger", "previous",
                      *sorted(set(data.aliases) - {"champion", "challenger", "previous"})):
            version = data.aliases.get(alias)
            if version is None:
                continue
            info = data.versions.get(version, ModelVersionInfo(version))
            rows.append([
                alias, version, info.model_name or "–",
                _ts(info.created_at) if info.created_at else "–",
                _id(info.run_id) if info.run_id else "–",
            ])
        parts.append("<h3>Registry aliases now</h3>")
        parts.append(table(["alias", "version", "model", "registered", "MLflow run"], rows,
                            numeric={1}))
    else:
        parts.append(_empty(f"No version of {data.registered_model} is registered."))
    if not data.gate_decisions:
        parts.append(_empty("The gate has not decided yet: run `tradewatch train`."))
        return "\n".join(parts)
    last = data.gate_decisions[-1]
    window = (
        f" Test window {escape(last.test_window_start)} to {escape(last.test_window_end)}."
        if last.test_window_start else ""
    )
    parts.append("<h3>Latest gate decision</h3>")
    parts.append(
        f'<p class="banner {escape(last.decision)}">'
        f"<strong>{escape(last.decision.upper())}</strong> "
        f"challenger {escape(_version_label(data, last.challenger_version))} against champion "
        f"{escape(_version_label(data, last.champion_version))} at "
        f"{escape(_ts(last.decided_at))}. "
        f"Reason: {escape(last.reason.rstrip('.'))}.{window}</p>"
    )
    line = last.comparison_line()
    if line:
        parts.append(f'<p class="meta">Primary metric, {escape(line)}.</p>')
    parts.append(_metrics_table(data, last))
    if len(data.gate_decisions) > 1:
        rows = []
        for record in reversed(data.gate_decisions[-GATE_DECISIONS_SHOWN:]):
            c = record.comparison or {}
            interval = (
                f"{float(c['low']):+.3f} to {float(c['high']):+.3f}"
                if c.get("low") is not None and c.get("high") is not None else "–"
            )
            rows.append([
                _ts(record.decided_at), record.decision,
                _version_label(data, record.challenger_version),
                _version_label(data, record.champion_version),
                record.primary_metric or "pr_auc",
                _num(record.challenger_metrics.get(record.primary_metric or "pr_auc")),
                _num(record.champion_metrics.get(record.primary_metric or "pr_auc")),
                interval,
                _num(record.events, 0),
                record.reason,
            ])
        parts.append(f"<h3>Gate decisions (newest {len(rows)} of "
                     f"{len(data.gate_decisions)})</h3>")
        parts.append(table(
            ["decided", "decision", "challenger", "champion", "primary metric", "challenger",
             "champion", "difference interval", "events", "reason"], rows,
            numeric={5, 6, 7, 8},
        ))
    return "\n".join(parts)


def _shadow_section(data: MonitoringData) -> str:
    """Agreement of the flags and precision against trusted labels, per challenger."""
    if data.shadow.empty:
        return _empty("A challenger the gate kept out scores new trades in shadow; the "
                      "comparison appears after a scoring cycle has run with one registered.")
    rows = [
        (
            _version_label(data, row.challenger_version),
            _version_label(data, row.champion_version),
            f"{int(row.trades):,}",
            f"{row.flag_agreement:.1%}",
            f"{int(row.both_flagged):,}",
            f"{int(row.champion_only_flagged):,}",
            f"{int(row.challenger_only_flagged):,}",
            f"{int(row.labelled_trades):,}",
            _num(row.champion_precision),
            _num(row.challenger_precision),
            f"{_ts(row.first_trade_ts)} – {_ts(row.last_trade_ts)}",
        )
        for row in data.shadow.itertuples()
    ]
    header = ("challenger", "champion", "trades", "flags agree", "both flag", "champion only",
              "challenger only", "trusted labels", "champion precision",
              "challenger precision", "trades from – to")
    return (
        '<p class="note">Shadow scores are never alerted and never reach gold_anomaly_scores. '
        "Precision counts the flags on trades with an analyst's or the simulator's label.</p>"
        + table(header, rows, numeric=set(range(2, 10)))
    )


def _metrics_table(data: MonitoringData, record: GateRecord) -> str:
    challenger, champion = record.challenger_metrics, record.champion_metrics
    header = [
        "metric (same test window)",
        f"challenger {_version_label(data, record.challenger_version)}",
        f"champion {_version_label(data, record.champion_version)}",
        "challenger − champion",
    ]
    rows = []
    for key, label, better in METRICS:
        mine, theirs = challenger.get(key), champion.get(key)
        if mine is None and theirs is None:
            continue
        digits = 0 if key in _COUNT_METRICS else (
            4 if key.startswith("latency") else _METRIC_DIGITS.get(key, 3)
        )
        delta: Any = "–"
        if mine is not None and theirs is not None:
            difference = mine - theirs
            css = ""
            if better and abs(difference) > 1e-12:
                css = "better" if difference * better > 0 else "worse"
            delta = Cell(f"{difference:+,.{digits}f}", css=css or None)
        rows.append([label, _num(mine, digits), _num(theirs, digits), delta])
    if not rows:
        return _empty("The gate decision carries no metrics (it rejected before scoring).")
    note = "" if champion else (
        '<p class="note">No champion at decision time: the challenger was judged on its own.</p>'
    )
    return table(header, rows, numeric={1, 2, 3}) + note


# --- tournament history


def _tournament_section(data: MonitoringData) -> str:
    runs = data.tournament_runs
    if runs.empty:
        return _empty(
            f"No tournament has been logged to MLflow experiment {data.experiment}: "
            "run `tradewatch train`."
        )
    tournaments = runs.groupby("tournament", sort=True)
    parts = [
        f'<p class="meta">{tournaments.ngroups} tournament{"s" if tournaments.ngroups > 1 else ""}'
        f", {len(runs)} model runs in MLflow experiment <code>{escape(data.experiment)}</code>."
        "</p>",
        figure(_tournament_plot(runs),
                "Test PR-AUC of each model per tournament (all models judged on the same "
                "newest test window of their run)."),
    ]
    latest_number = runs["tournament"].max()
    latest = runs[runs["tournament"] == latest_number].copy()
    # The tournament's own rank (by the gate's primary metric); PR-AUC for runs logged without.
    latest["_order"] = latest["rank"].where(
        latest["rank"].notna(), latest["pr_auc"].rank(ascending=False, method="first") + 1e6
    ).astype(float)
    latest.loc[latest["status"] != "FINISHED", "_order"] = np.inf
    latest = latest.sort_values(["_order", "model"])
    rows, classes = [], []
    for row in latest.itertuples(index=False):
        if row.status != "FINISHED" or pd.isna(row.pr_auc):
            rows.append(["–", row.model, *["–"] * 12, f"failed: {row.error or row.status}"])
            classes.append("failed")
            continue
        classes.append(None)
        rows.append([
            _num(row.rank, 0), row.model, _num(row.event_average_precision),
            _num(row.event_recall), _num(row.false_alerts_per_day, 1),
            _num(row.median_time_to_detect_s, 1), _num(row.pr_auc), _num(row.roc_auc),
            _num(row.precision), _num(row.recall), _num(row.f1), _num(row.training_seconds, 1),
            _num(row.latency_p99_ms, 4), "",
        ])
    parts.append(
        f"<h3>Latest leaderboard (tournament {int(latest_number)}, started "
        f"{escape(_ts(latest['tournament_started_at'].iloc[0]))})</h3>"
    )
    parts.append(table(
        ["rank", "model", "event AP", "event recall", "false alerts/day", "median TTD s",
         "trade PR-AUC", "ROC-AUC", "precision", "recall", "F1", "train s", "p99 ms/row", ""],
        rows, numeric=set(range(2, 13)) | {0}, row_classes=classes,
    ))
    history = []
    for number, group in list(tournaments)[-TOURNAMENTS_SHOWN:][::-1]:
        finished = group[(group["status"] == "FINISHED") & group["pr_auc"].notna()]
        ranked = finished[finished["rank"] == 1]
        best = (
            ranked.iloc[0] if not ranked.empty
            else finished.loc[finished["pr_auc"].idxmax()] if not finished.empty else None
        )
        history.append([
            _num(number, 0), _ts(group["tournament_started_at"].iloc[0]),
            ", ".join(sorted(group["model"])),
            best["model"] if best is not None else "none (all failed)",
            _num(best["event_average_precision"]) if best is not None else "–",
            _num(best["pr_auc"]) if best is not None else "–",
            _num(int((group["status"] != "FINISHED").sum()), 0),
        ])
    parts.append(f"<h3>Tournaments (newest {len(history)})</h3>")
    parts.append(table(
        ["#", "started", "models", "winner", "winner event AP", "winner trade PR-AUC", "failed"],
        history, numeric={0, 4, 5, 6},
    ))
    return "\n".join(parts)


def _tournament_plot(runs: pd.DataFrame) -> str:
    plot, axes = new_figure(10, 3.4)
    finished = runs[(runs["status"] == "FINISHED") & runs["pr_auc"].notna()]
    for model, group in finished.groupby("model", sort=True):
        group = group.sort_values("tournament_started_at")
        axes.plot(
            group["tournament_started_at"].dt.tz_localize(None), group["pr_auc"],
            marker="o", linewidth=1.5, markersize=5, label=model,
        )
    axes.set_ylabel("test PR-AUC")
    axes.set_ylim(0, 1.02)
    axes.grid(alpha=0.3)
    _date_axis(axes)
    axes.set_xlabel("tournament start (UTC)")
    if not finished.empty:
        axes.legend(frameon=False, fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return png(plot)


# --- drift


def _drift_section(data: MonitoringData) -> str:
    drift = data.drift
    if drift.empty:
        return _empty("No drift report has been written: run `tradewatch drift`.")
    drift = drift.copy()
    drift["drifted"] = drift["drifted"].fillna(False).astype(bool)
    runs = drift.drop_duplicates("run_id")[["run_id", "run_ts"]]
    latest_id = runs["run_id"].iloc[-1]
    latest = drift[drift["run_id"] == latest_id].copy()
    inputs = latest[latest["kind"].isin(["numeric", "categorical"])]
    link = data.links.get("latest drift report")
    parts = [
        f'<p class="meta">{len(runs)} drift run{"s" if len(runs) > 1 else ""} shown. Latest run '
        f"<code>{escape(latest_id)}</code> at {escape(_ts(latest['run_ts'].iloc[0]))}: "
        f"<strong>{int(inputs['drifted'].sum())} of {len(inputs)} input features drifted"
        f"</strong>; current window {escape(_iso(latest['current_start'].iloc[0]))} to "
        f"{escape(_iso(latest['current_end'].iloc[0]))}."
        + (f' <a href="{escape(link)}">Open its full report.</a>' if link else "")
        + "</p>",
        figure(_drift_heatmap(drift),
                "Statistic divided by its threshold, per feature (rows) and drift run "
                "(columns): green is well below the threshold, red above it; x marks a "
                "drifted feature. PSI for numeric features and scores, Jensen-Shannon "
                "distance for categorical ones, PR-AUC drop for performance."),
    ]
    latest["_ratio"] = latest["statistic"] / latest["threshold"].where(latest["threshold"] > 0)
    latest = latest.sort_values(["drifted", "_ratio"], ascending=[False, False])
    rows = [(
        [row.feature, row.kind, row.statistic_name, _num(row.statistic, 4),
         _num(row.threshold, 3), "yes" if row.drifted else "no",
         _num(row.reference_rows, 0), _num(row.current_rows, 0)],
        "bad" if row.drifted else None,
    ) for row in latest.itertuples(index=False)]
    parts.append("<h3>Latest drift run</h3>")
    parts.append(table(
        ["feature", "kind", "statistic", "value", "threshold", "drifted", "reference rows",
         "current rows"],
        [r[0] for r in rows], numeric={3, 4, 6, 7}, row_classes=[r[1] for r in rows],
    ))
    history = []
    for run_id, group in list(drift.groupby("run_id", sort=False))[::-1][:TOURNAMENTS_SHOWN]:
        group_inputs = group[group["kind"].isin(["numeric", "categorical"])]
        names = sorted(group.loc[group["drifted"], "feature"])
        history.append([
            _ts(group["run_ts"].iloc[0]), _id(run_id),
            f"{int(group_inputs['drifted'].sum())} of {len(group_inputs)}",
            ", ".join(names) or "none",
        ])
    parts.append(f"<h3>Drift runs (newest {len(history)})</h3>")
    parts.append(table(["run at", "run id", "input features drifted", "drifted"], history))
    return "\n".join(parts)


def _drift_heatmap(drift: pd.DataFrame) -> str:
    runs = drift.drop_duplicates("run_id")[["run_id", "run_ts"]].reset_index(drop=True)
    features = (
        drift.drop_duplicates(["kind", "feature"])[["kind", "feature"]]
        .assign(order=lambda f: f["kind"].map(_KIND_ORDER).fillna(9))
        .sort_values(["order", "feature"])
    )
    labels = [
        f if k in ("numeric", "categorical") else f"{f} ({k})"
        for k, f in zip(features["kind"], features["feature"], strict=True)
    ]
    row_of = {(k, f): i for i, (k, f) in enumerate(zip(features["kind"], features["feature"],
                                                       strict=True))}
    col_of = {run_id: j for j, run_id in enumerate(runs["run_id"])}
    ratio = np.full((len(features), len(runs)), np.nan)
    marked = []
    for row in drift.itertuples(index=False):
        i, j = row_of[(row.kind, row.feature)], col_of[row.run_id]
        if row.threshold and row.threshold > 0 and pd.notna(row.statistic):
            ratio[i, j] = max(float(row.statistic), 0.0) / float(row.threshold)
        if row.drifted:
            marked.append((j, i))
    plot, axes = new_figure(10, 0.26 * len(features) + 1.9)
    cmap = _colormap("RdYlGn_r")
    image = axes.imshow(np.ma.masked_invalid(ratio), aspect="auto", cmap=cmap, vmin=0, vmax=2,
                        interpolation="nearest")
    for j, i in marked:
        axes.text(j, i, "x", ha="center", va="center", fontsize=9, fontweight="bold")
    axes.set_yticks(range(len(labels)), labels, fontsize=8)
    step = max(1, int(np.ceil(len(runs) / 16)))
    ticks = list(range(0, len(runs), step))
    axes.set_xticks(
        ticks, [runs["run_ts"].iloc[t].strftime("%m-%d %H:%M") for t in ticks],
        rotation=45, ha="right", fontsize=8,
    )
    axes.set_xlabel("drift run (UTC)")
    bar = plot.colorbar(image, ax=axes, fraction=0.03, pad=0.01)
    bar.set_label("statistic / threshold", fontsize=8)
    return png(plot)


# --- anomalies


def _anomalies_section(data: MonitoringData) -> str:
    hourly = data.anomalies_hourly
    if hourly.empty:
        return _empty(
            "The champion has scored no trade: `tradewatch train` scores new trades once a "
            "champion is promoted (or run `tradewatch score`)."
        )
    start, end = hourly["hour"].min(), hourly["hour"].max() + pd.Timedelta(hours=1)
    scored, flagged = int(hourly["scored"].sum()), int(hourly["flagged"].sum())
    parts = [
        f'<p class="meta">Champion scores of trades from {escape(_ts(start))} to '
        f"{escape(_ts(end))} "
        f"(at most the newest {ANOMALY_HOURS} hours of trade time with scores; a re-scored "
        f"trade counts once, with its newest score): <strong>{flagged:,} of {scored:,} trades "
        "flagged</strong>.</p>",
        figure(_anomaly_heatmap(hourly),
                "Flagged trades per symbol (rows) per hour of trade time (columns, UTC)."),
        "<h3>Per symbol</h3>",
    ]
    rows = [[
        row.symbol, _num(row.scored, 0), _num(row.flagged, 0),
        f"{row.flagged / row.scored:.2%}" if row.scored else "–",
        _num(row.critical, 0), _num(row.high, 0),
        _ts(row.last_flagged) if pd.notna(row.last_flagged) else "–",
    ] for row in data.anomalies_by_symbol.itertuples(index=False)]
    parts.append(table(
        ["symbol", "scored", "flagged", "flagged share", "critical", "high", "last flagged"],
        rows, numeric={1, 2, 3, 4, 5},
    ))
    top = data.top_anomalies
    if not top.empty:
        parts.append(f"<h3>Highest-scoring flagged trades (top {len(top)})</h3>")
        parts.append(table(
            ["trade time", "symbol", "score", "risk", "scored by", "trade id"],
            [[
                _ts(row.trade_ts, seconds=True), row.symbol, _num(row.score, 4), row.risk_level,
                f"{row.model_name} {_version_label(data, row.model_version)}",
                _id(row.trade_id),
            ] for row in top.itertuples(index=False)],
            numeric={2},
        ))
    return "\n".join(parts)


def _anomaly_heatmap(hourly: pd.DataFrame) -> str:
    hours = pd.date_range(hourly["hour"].min(), hourly["hour"].max(), freq="h")
    symbols = sorted(hourly["symbol"].unique())
    table = (
        hourly.pivot_table(index="symbol", columns="hour", values="flagged", aggfunc="sum")
        .reindex(index=symbols, columns=hours)
        .fillna(0)
    )
    counts = table.to_numpy(dtype=float)
    plot, axes = new_figure(10, 0.32 * len(symbols) + 1.9)
    image = axes.imshow(counts, aspect="auto", cmap=_colormap("Reds"), vmin=0,
                        vmax=max(1.0, float(counts.max())), interpolation="nearest")
    if len(hours) <= 36:
        for i in range(counts.shape[0]):
            for j in range(counts.shape[1]):
                if counts[i, j]:
                    dark = counts[i, j] > 0.6 * counts.max()
                    axes.text(j, i, f"{int(counts[i, j])}", ha="center", va="center",
                              fontsize=7, color="white" if dark else "black")
    axes.set_yticks(range(len(symbols)), symbols, fontsize=8)
    step = max(1, int(np.ceil(len(hours) / 16)))
    ticks = list(range(0, len(hours), step))
    axes.set_xticks(ticks, [hours[t].strftime("%m-%d %H:00") for t in ticks], rotation=45,
                    ha="right", fontsize=8)
    axes.set_xlabel("hour of trade time (UTC)")
    bar = plot.colorbar(image, ax=axes, fraction=0.03, pad=0.01)
    bar.set_label("flagged trades", fontsize=8)
    bar.locator = MaxNLocator(integer=True)
    bar.update_ticks()
    return png(plot)


# --- data quality


def _quality_section(data: MonitoringData) -> str:
    quality = data.quality
    if quality.empty:
        return _empty(
            "No data-quality checkpoint has run: run `tradewatch validate` (or `tradewatch "
            "transform`)."
        )
    quality = quality.copy()
    quality["success"] = quality["success"].fillna(False).astype(bool)
    suites = sorted(quality["suite"].dropna().unique())
    runs = list(quality.groupby("run_id", sort=False))[::-1]
    rows = []
    for run_id, group in runs[:QUALITY_RUNS_SHOWN]:
        cells: list[Any] = [_ts(group["run_ts"].iloc[0]),
                            _id(run_id)]
        for suite in suites:
            in_suite = group[group["suite"] == suite]
            if in_suite.empty:
                cells.append("–")
                continue
            failed = in_suite[~in_suite["success"]]
            css = ("bad" if (failed["severity"] == "critical").any()
                   else "warn" if len(failed) else "ok")
            cells.append(Cell(f"{len(in_suite) - len(failed)}/{len(in_suite)} passed", css=css))
        failed = group[~group["success"]]
        critical = int((failed["severity"] == "critical").sum())
        verdict = (f"{critical} critical failed" if critical
                   else f"{len(failed)} warning{'s' if len(failed) != 1 else ''}" if len(failed)
                   else "passed")
        cells.append(verdict)
        rows.append(cells)
    parts = [
        f'<p class="meta">{len(runs)} checkpoint run{"s" if len(runs) > 1 else ""} read; the '
        f"newest {len(rows)} below. Each cell: expectations passed of those evaluated "
        "(red: a critical one failed, amber: a warning failed).</p>",
        table(["run at", "run id", *suites, "result"], rows),
    ]
    latest_id, latest = runs[0]
    failures = latest[~latest["success"]].assign(
        order=lambda f: (f["severity"] != "critical").astype(int)
    ).sort_values(["order", "suite", "expectation"])
    docs = data.links.get("Data Docs (expectation results)")
    parts.append("<h3>Failures in the latest run</h3>")
    if failures.empty:
        parts.append(
            f'<p class="banner promote">All {len(latest)} expectations passed in run '
            f"<code>{escape(latest_id)}</code>.</p>"
        )
    else:
        parts.append(table(
            ["severity", "suite", "expectation", "column", "observed", "details"],
            [[row.severity, row.suite, row.expectation,
              row.column if isinstance(row.column, str) else "(table)",
              _clip(row.observed_value), _clip(row.details)]
             for row in failures.itertuples(index=False)],
            row_classes=["bad" if s == "critical" else "warn" for s in failures["severity"]],
        ))
    if docs:
        parts.append(f'<p class="meta"><a href="{escape(docs)}">Data Docs</a> hold every '
                     "result in detail.</p>")
    return "\n".join(parts)


# --- helpers


def _id(text: Any) -> Cell:
    """An id (run, trade) in monospace."""
    return Cell(f'<span class="id">{escape(text)}</span>', markup=True)


def _empty(message: str) -> str:
    return f'<p class="empty">No data yet. {escape(message)}</p>'


def _colormap(name: str):
    from matplotlib import colormaps

    return colormaps[name].with_extremes(bad="#eaeef2")


def _date_axis(axes: Any) -> None:
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

    locator = AutoDateLocator(maxticks=10)
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(ConciseDateFormatter(locator))


def _num(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    try:
        if pd.isna(value):
            return "–"
    except (TypeError, ValueError):
        return str(value)
    if digits == 0:
        return f"{int(round(float(value))):,}"
    return f"{float(value):,.{digits}f}"


def _ts(value: Any, *, seconds: bool = False) -> str:
    if value is None or (not isinstance(value, datetime) and pd.isna(value)):
        return "–"
    moment = pd.Timestamp(value)
    moment = moment.tz_localize("UTC") if moment.tzinfo is None else moment.tz_convert("UTC")
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC" if seconds else "%Y-%m-%d %H:%M UTC")


def _iso(value: Any) -> str:
    return "–" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)


def _clip(value: Any, limit: int = 300) -> str:
    text = "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"

