"""`tradewatch drift`: compare the newest trades with what the champion was judged on, decide.

Windows are measured in trade time, not wall-clock time (the simulator replays historical
dates, and a feed that was down for a night should not leave an empty window):

- current: the newest `current_hours` of gold trades, up to and including the newest trade;
- reference: the champion's test window, the newest data the champion was scored on
  out-of-sample and approved by the gate on (its `data.test_start`/`data.test_end` in MLflow),
  clipped to end where the current window starts and cut to its newest `reference_hours`
  (default `reference_days`). Without a champion, or when that window holds no trades before
  the current one (the champion was tested on data that is now current), the reference is
  the `reference_hours` immediately before the current window. The report names the basis.

Why anchor the reference to the champion rather than always to the span before the current
window: the question the trigger asks is "has the market moved away from what the model was
shown to handle?". With a sliding reference, a shift that could not be acted on (the cooldown
or the daily limit held it back, or the gate rejected the retrained challenger) disappears
from the report once the reference window has slid past it, although the champion never
learned it; and the champion's own scores and PR-AUC on its training rows are in-sample, so
a sliding reference that overlaps the training data reports prediction and performance drift
on any new data. The test window is out-of-sample for the champion by construction.

Prediction drift (PSI of the champion's scores) and performance drift (PR-AUC drop) are
checked only when the reference is the champion's test window: anywhere else in the past the
champion may have trained on the rows, and its in-sample scores would read as drift. The
scores are computed here with the champion itself rather than read from the scores files:
those hold each trade's score from whichever champion scored it first, so after a promotion
the reference rows carry another version's scores. Performance uses only trusted labels —
analyst labels and the simulator's ground truth — because the rule heuristic is a function of
the features themselves: agreement with it says nothing about finding anomalies. The same
goes for "new labelled rows": trusted-labelled trades newer than the newest test window any
gate decision in the audit log has seen, i.e. data no training run has used yet.

Raw trade `volume` and `symbol` are compared next to the model's inputs: the volume features
are relative (z-scores), so a market-wide change in trade sizes would otherwise go unseen, and
a symbol appearing or vanishing is drift the model has never been tested on. Clock features
are left out: a newer window always differs from an older one in the hour. Each window is
capped at MAX_WINDOW_ROWS by a seeded uniform sample, so a week of a busy feed fits in memory.

The report is written as NDJSON for dbt's monitoring model and as an offline HTML page, the
drift alert is sent — unless the previous report had the same windows and verdicts (no trade
arrived since: a weekend must not page every half hour) — and the retraining trigger decides
against its audit log. An unreadable audit log never stops the report: the trigger then
blocks retraining and raises its alert.

A champion that exists but cannot be loaded (its integrity check failed, its artifacts are
gone or do not unpickle) fails the check closed: the data-drift report is still written, with
a note that prediction and performance drift were not checked, one critical alert says why
(`model_integrity`, or `drift` for any other load failure), no retraining decision is taken on
the half-evidence, and ChampionUnavailable ends the run (the CLI exits 1, the flow fails).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePath
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from core.schema import (
    CATEGORICAL_FEATURES,
    FEATURE_COLUMNS,
    FEATURES_TABLE,
    LABELS_TABLE,
    NUMERIC_FEATURES,
)
from core.warehouse import Warehouse
from flows.alerts import alert_sender, send_drift_alert
from flows.config import Settings
from flows.engine import open_warehouse
from ml.audit import AuditLog, AuditLogUnreadable
from ml.datasets import (
    WindowRows,
    count_new_analyst_decisions,
    count_trusted_labelled,
    load_window_rows,
    newest_trade_ms,
    trusted_labels,
)
from ml.drift import DriftOptions, DriftReport, ModelScores, compute_drift
from ml.drift_records import drift_records, read_newest_drift_records, write_drift_ndjson
from ml.drift_report import write_drift_html
from ml.drift_windows import TimeWindow, iso_utc
from ml.retraining import RetrainDecision, RetrainingPolicy, RetrainingTrigger

#: Clock features are left out: a newer window always differs from an older one in the hour.
CLOCK_FEATURES = ("hour_of_day", "minute_of_hour", "day_of_week")
#: Raw trade size is watched too: the model only sees it relative to recent trades.
RAW_NUMERIC_COLUMNS = ("volume",)
DRIFT_NUMERIC_FEATURES = (
    *(f for f in NUMERIC_FEATURES if f not in CLOCK_FEATURES),
    *RAW_NUMERIC_COLUMNS,
)
#: `symbol` is compared too, so that a symbol appearing or vanishing shows up as drift.
DRIFT_CATEGORICAL_FEATURES = (*CATEGORICAL_FEATURES, "symbol")
#: Rows kept per window; beyond this a seeded uniform sample (PSI needs thousands, not millions).
MAX_WINDOW_ROWS = 500_000


class NotEnoughHistory(RuntimeError):
    """One of the two windows holds no trades yet."""


class DriftWindowError(ValueError):
    """A window length that cannot describe a window (zero, negative, not a number)."""


class ChampionUnavailable(RuntimeError):
    """The champion exists but could not be loaded: prediction and performance drift unchecked."""

    def __init__(self, message: str, version: str | None = None, integrity: bool = False):
        super().__init__(message)
        self.version = version
        self.integrity = integrity


@dataclass(frozen=True)
class Champion:
    """The model in production: its version, the loaded pyfunc, the window it was tested on."""

    version: str
    model: Any
    test_window: TimeWindow | None


@dataclass(frozen=True)
class DriftOutcome:
    """The report, where it was written, the retraining decision, and what the reference was."""

    report: DriftReport
    ndjson: PurePath
    html: PurePath
    decision: RetrainDecision
    reference_basis: str = ""
    champion_version: str | None = None
    new_labelled_rows: int = 0


def _at_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def _hours(value: float | None, name: str) -> float | None:
    if value is None:
        return None
    if not (isinstance(value, int | float) and np.isfinite(value) and value > 0):
        raise DriftWindowError(f"{name} must be a positive number of hours, got {value!r}")
    return float(value)


# --------------------------------------------------------------------------- warehouse


def _newest_trade_ms(warehouse: Warehouse) -> int:
    newest = newest_trade_ms(warehouse)
    if newest is None:
        raise NotEnoughHistory(
            f"{FEATURES_TABLE} holds no trades: collect trades and run `tradewatch transform`"
        )
    return newest


def _window_rows(warehouse: Warehouse, window: TimeWindow, *, labels: bool) -> WindowRows:
    """The window's gold rows and labels; a seeded sample beyond MAX_WINDOW_ROWS."""
    return load_window_rows(
        warehouse,
        window.start,
        window.end,
        features=FEATURE_COLUMNS,
        extra_columns=RAW_NUMERIC_COLUMNS,
        labels=labels,
        max_rows=MAX_WINDOW_ROWS,
    )


def _new_labelled_rows(
    warehouse: Warehouse, log: AuditLog, *, labels: bool
) -> tuple[int, str]:
    """Trusted-labelled trades newer than any test window a gate decision has seen."""
    if not labels:
        return 0, f"{LABELS_TABLE} is not built: no labelled rows counted"
    try:
        decisions = list(log.records("gate_decision"))
        seen = [
            datetime.fromisoformat(str(r.payload["test_window_end"]))
            for r in decisions
            if r.payload.get("test_window_end")
        ]
    except AuditLogUnreadable:
        # The trigger reads the same log, blocks retraining and alerts; count nothing here.
        return 0, "audit log unreadable: new labelled rows not counted"
    except (ValueError, TypeError) as exc:
        return 0, f"a gate decision's test_window_end is unreadable ({exc}): rows not counted"
    since = max(seen, default=None)
    count = count_trusted_labelled(warehouse, after=since)
    after = f"after {iso_utc(since)}" if since is not None else "(no training run yet)"
    counted = f"{count:,} trusted-labelled trades {after}"
    if since is None:
        return count, counted  # every analyst label is on a trade counted above
    # Analysts' decisions since the last training on trades that training saw: new labels too.
    trained_at = max(r.event_ts for r in decisions)
    reviewed = count_new_analyst_decisions(warehouse, decided_after=trained_at,
                                           trades_until=since)
    return count + reviewed, (
        f"{counted}, and {reviewed:,} analyst decisions since the last training "
        f"({iso_utc(trained_at)}) on older trades"
    )


# --------------------------------------------------------------------------- champion


def _champion(settings: Settings, console: Console) -> Champion | None:
    """The champion and its test window; None when there is none (never trained).

    Raises ChampionUnavailable when there is one that cannot be loaded.
    """
    if not settings.paths.mlflow_db.exists():
        return None  # never trained here: do not create an MLflow store just to find nothing
    from flows.training import registry
    from ml.registry import ModelIntegrityError, NoChampion

    version: str | None = None
    try:
        models = registry(settings)
        version = models.version_for_alias("champion")
        if version is None:
            return None
        loaded = models.load_version(version)
    except NoChampion:
        return None
    except ModelIntegrityError as exc:
        raise ChampionUnavailable(str(exc), version, integrity=True) from exc
    except Exception as exc:  # the data-drift report still goes out; then the run fails
        raise ChampionUnavailable(
            f"champion version {version or '?'} could not be loaded: "
            f"{type(exc).__name__}: {str(exc)[:300]}", version,
        ) from exc
    return Champion(loaded.version, loaded.model, _test_window(models, loaded.version))


def _alert_champion_unavailable(
    sender: Any, error: ChampionUnavailable, html: PurePath
) -> None:
    from core.alerts import AlertKind

    kind = AlertKind.MODEL_INTEGRITY if error.integrity else AlertKind.DRIFT
    title = (
        "Model refused: integrity check failed" if error.integrity
        else "Drift check incomplete: champion not loaded"
    )
    sender.send(
        "critical", title,
        f"{error} Prediction and performance drift were not checked and no retraining "
        "decision was taken; the data-drift report was written.",
        {"champion version": error.version or "-", "report": str(html)},
        kind=kind,
    )


def _test_window(models: Any, version: str) -> TimeWindow | None:
    """The test window logged with the run that produced `version` (None if unknown)."""
    try:
        model_version = models.client.get_model_version(models.name, version)
        run_id = (model_version.tags or {}).get("run_id") or model_version.run_id
        params = models.client.get_run(run_id).data.params
        start = datetime.fromisoformat(params["data.test_start"]).astimezone(UTC)
        end = datetime.fromisoformat(params["data.test_end"]).astimezone(UTC)
        return TimeWindow(start, end)
    except Exception:  # an older run without data params: fall back to the span before
        return None


@dataclass(frozen=True)
class ReferenceCandidate:
    """A reference window to try, what it is, and whether the champion was tested on it."""

    window: TimeWindow
    basis: str
    champion_tested: bool


def _reference_candidates(
    current: TimeWindow, span: timedelta, champion: Champion | None
) -> list[ReferenceCandidate]:
    """Reference windows to try, best first."""
    preceding = TimeWindow(current.start - span, current.start)
    basis = f"the {_span_text(span)} before the current window"
    if champion is None or champion.test_window is None:
        return [ReferenceCandidate(preceding, basis, False)]
    tested = champion.test_window
    # The test window's end is its newest trade: include it, but never reach into `current`.
    end = min(tested.end + timedelta(milliseconds=1), current.start)
    start = max(tested.start, end - span)
    fallback = ReferenceCandidate(
        preceding,
        f"{basis} (champion version {champion.version}'s test window has no trades before it)",
        False,
    )
    if start >= end:
        return [fallback]
    return [
        ReferenceCandidate(
            TimeWindow(start, end), f"champion version {champion.version}'s test window", True
        ),
        fallback,
    ]


def _span_text(span: timedelta) -> str:
    hours = span.total_seconds() / 3600
    return f"{hours / 24:g} days" if hours >= 48 and hours % 24 == 0 else f"{hours:g} h"


def _scores(champion: Champion, rows: pd.DataFrame) -> np.ndarray:
    from ml.pyfunc import predictor

    return predictor(champion.model)(rows)["score"].to_numpy(dtype=np.float64)


# --------------------------------------------------------------------------- output


def _same_as_last_report(directory: Path, report: DriftReport) -> str | None:
    """The run id of the previous report when it had these windows and these verdicts.

    A scheduled check with no new trades (a weekend, a feed outage) compares the same windows
    again: its report is still written, but alerting the same drift every half hour is noise.
    """
    rows = read_newest_drift_records(directory)  # None when unreadable: alert, do not stay silent
    if rows is None:
        return None

    def verdict(records: list[dict[str, Any]]) -> tuple[set[tuple[Any, ...]], set[str]]:
        windows = {
            (r.get("reference_start"), r.get("reference_end"), r.get("current_start"),
             r.get("current_end"))
            for r in records
        }
        return windows, {str(r.get("feature")) for r in records if r.get("drifted")}

    if not rows or verdict(rows) != verdict(drift_records(report)):
        return None
    return str(rows[0].get("run_id"))


def drift_options(settings: Settings) -> DriftOptions:
    """The drift check's bins and thresholds, from `drift.*` and `retraining.performance_drop`."""
    return DriftOptions(
        bins=settings.drift.bins,
        psi_threshold=settings.drift.psi_threshold,
        js_threshold=settings.drift.js_threshold,
        performance_drop=settings.retraining.performance_drop,
    )


def print_drift_table(report: DriftReport, console: Console) -> None:
    """Per feature: statistic, threshold, drifted, window sizes and what stands out."""
    table = Table(title=f"Drift {report.run_id}")
    for title in ("feature", "kind", "statistic", "value", "threshold", "drifted",
                  "reference rows", "current rows", "note"):
        table.add_column(
            title, justify="left" if title in ("feature", "kind", "note") else "right"
        )
    for feature in report.features:
        table.add_row(
            feature.feature,
            feature.kind,
            feature.statistic_name,
            f"{feature.statistic:.4f}",
            f"{feature.threshold:.3f}",
            "[red]yes[/]" if feature.drifted else "no",
            f"{feature.reference_rows:,}",
            f"{feature.current_rows:,}",
            escape(feature.note or ""),
        )
    console.print(table)


def run_drift(
    settings: Settings,
    *,
    current_hours: float | None = None,
    reference_hours: float | None = None,
    console: Console | None = None,
    now: datetime | None = None,
) -> DriftOutcome:
    """Drift report (table, NDJSON, HTML), the drift alert and the retraining decision.

    `current_hours` (default settings.drift.current_hours) is the newest window in trade time;
    `reference_hours` (default settings.drift.reference_days) the most reference data to use.
    Raises NotEnoughHistory when a window holds no trades.
    """
    console = console or Console()
    config = settings.drift
    current_span = timedelta(
        hours=_hours(current_hours, "current_hours") or config.current_hours
    )
    reference_span = timedelta(
        hours=_hours(reference_hours, "reference_hours") or config.reference_days * 24
    )
    options = drift_options(settings)
    warehouse = open_warehouse(settings)
    # The window ends just after the newest trade, so that trade is in it (end is exclusive).
    newest = _at_ms(_newest_trade_ms(warehouse) + 1)
    current_window = TimeWindow(newest - current_span, newest)
    labels = warehouse.has_table(LABELS_TABLE)
    unavailable: ChampionUnavailable | None = None
    try:
        champion = _champion(settings, console)
    except ChampionUnavailable as exc:
        champion, unavailable = None, exc

    current_rows = _window_rows(warehouse, current_window, labels=labels)
    for candidate in _reference_candidates(current_window, reference_span, champion):
        reference_rows = _window_rows(warehouse, candidate.window, labels=labels)
        if not reference_rows.frame.empty:
            break
    reference, current = reference_rows.frame, current_rows.frame
    reference_window = candidate.window
    if reference.empty or current.empty:
        empty, window = (
            ("reference", reference_window) if reference.empty else ("current", current_window)
        )
        raise NotEnoughHistory(
            f"no trades in the {empty} window ({iso_utc(window.start)} → "
            f"{iso_utc(window.end)}): collect more history or change "
            f"{'--reference-hours' if empty == 'reference' else '--current-hours'}"
        )

    notes = [f"reference: {candidate.basis}"]
    for name, rows in (("reference", reference_rows), ("current", current_rows)):
        if rows.sampled:
            notes.append(f"{name} window sampled: {len(rows.frame):,} of {rows.total:,} trades")
    scores: ModelScores | None = None
    if unavailable is not None:
        notes.append(f"prediction and performance drift NOT checked: {unavailable}")
    elif champion is None:
        notes.append("prediction and performance drift not checked: no champion")
    elif not candidate.champion_tested:
        # Elsewhere in the past the champion's scores may be in-sample (its training rows):
        # flatteringly sharp, they would read as prediction and performance drift.
        notes.append(
            "prediction and performance drift not checked: the reference is not the "
            "champion's test window, where its scores are out-of-sample"
        )
    else:
        try:
            reference_scores = _scores(champion, reference)
            current_scores = _scores(champion, current)
        except Exception as exc:  # a champion that cannot score these rows: data drift only
            notes.append(
                f"prediction and performance drift not checked: champion version "
                f"{champion.version} could not score the windows ({type(exc).__name__})"
            )
        else:
            scores = ModelScores(
                reference_scores,
                current_scores,
                current_labels=trusted_labels(current),
                reference_labels=trusted_labels(reference),
            )
    report = compute_drift(
        reference,
        current,
        numeric_features=DRIFT_NUMERIC_FEATURES,
        categorical_features=DRIFT_CATEGORICAL_FEATURES,
        reference_window=reference_window,
        current_window=current_window,
        options=options,
        scores=scores,
        run_ts=now,
    )
    repeated = (
        _same_as_last_report(settings.paths.drift_records, report)
        if report.drifted_features else None
    )
    if repeated is not None:
        notes.append(
            f"same windows and verdicts as run {repeated} (no new trades): drift alert not "
            "repeated"
        )
    report = replace(report, notes=(*notes, *report.notes))

    ndjson = write_drift_ndjson(report, settings.paths.drift_records)
    html = write_drift_html(report, settings.paths.drift_reports)
    print_drift_table(report, console)
    for note in report.notes:
        console.print(f"  [dim]{escape(note)}[/]")
    console.print(
        f"drift: {report.drifted_share:.0%} of input features drifted; report {html}"
    )
    sender = alert_sender(settings)
    if repeated is None:
        send_drift_alert(sender, report, html_report=html)
    if unavailable is not None:
        # Fail closed: no retraining decision on half the evidence, and the run fails.
        _alert_champion_unavailable(sender, unavailable, html)
        raise unavailable

    log = AuditLog(settings.paths.audit)
    new_rows, counted = _new_labelled_rows(warehouse, log, labels=labels)
    retraining = settings.retraining
    trigger = RetrainingTrigger(
        log,
        RetrainingPolicy(
            performance_drop=retraining.performance_drop,
            min_new_labelled_rows=retraining.min_new_labelled_rows,
            cooldown_hours=retraining.cooldown_hours,
            max_per_day=retraining.max_per_day,
        ),
        notify=sender.send,
    )
    decision = trigger.decide(report, new_labelled_rows=new_rows, now=now)
    console.print(f"new labelled rows: {escape(counted)}")
    console.print(
        f"retraining: {'[bold]yes[/]' if decision.retrain else 'no'} — {escape(decision.detail)}"
    )
    return DriftOutcome(
        report,
        ndjson,
        html,
        decision,
        reference_basis=candidate.basis,
        champion_version=None if champion is None else champion.version,
        new_labelled_rows=new_rows,
    )
