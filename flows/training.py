"""`tradewatch train`, `score` and `rollback`: the ML library wired to settings and files.

Training runs the tournament on the warehouse's gold rows, registers the winner as the
challenger, lets the gate judge it against the champion on the same newest test window,
promotes when the gate says so (alerting the promotion or the rejection) and scores with the
champion. Scoring gives every gold trade the current champion's score: new trades, and after
a promotion or a rollback the trades that version has not scored yet; a registered
challenger scores the new trades too, in shadow. The quality gate is the caller's
(flows.validate.apply_quality_gate): these jobs assume it passed or was skipped explicitly.
"""

from __future__ import annotations

import getpass
import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pandas as pd
from rich.console import Console
from rich.table import Table

from core.alerts import AlertKind
from core.datahome import SCORES, SCORING_RUNS_DIR, SHADOW_SCORES, within
from flows.alerts import alert_sender, send_gate_outcome_alert
from flows.config import Settings
from flows.engine import data_home, location, mlflow_stores, open_warehouse, scores_cache
from flows.warehouse import warehouse_slot
from ingest.simulator.anomalies import KINDS
from ml.audit import AuditLog
from ml.datasets import (
    TooFewTrustedLabels,
    load_ground_truth_events,
    load_scoring_frame,
    load_training_frame,
    split_by_time,
    trusted_training_frame,
)
from ml.events import events_from_answer_key
from ml.gate import BootstrapPolicy, GateDecision, GatePolicy, run_gate
from ml.models import ThresholdPolicy
from ml.registry import LoadedModel, ModelIntegrityError, ModelRegistry, Rollback
from ml.rules import RuleFlagsMissing, load_rule_flags
from ml.scoring import ScoringResult, score_new_trades, write_scoring_run
from ml.tournament import Leaderboard, run_tournament


class TrainingFailed(RuntimeError):
    """No model could be trained, or the warehouse holds nothing to train on."""


class TrainingRefused(TrainingFailed):
    """The training window has too few trusted labels: nothing was trained, registered or
    promoted (a training_refused alert says how many it has and needs)."""


@dataclass(frozen=True)
class TrainOutcome:
    """What one training run produced."""

    leaderboard: Leaderboard
    challenger_version: str
    decision: GateDecision
    scoring: ScoreOutcome | None


def tracking_uri(settings: Settings) -> str:
    """The MLflow tracking store of the configured engine (flows.engine)."""
    return mlflow_stores(settings).tracking_uri


def audit_log(settings: Settings) -> AuditLog:
    """The durable audit log under <home>/monitoring/audit."""
    return AuditLog(settings.paths.audit)


def registry(settings: Settings) -> ModelRegistry:
    """The registered model named in settings.training (three-part in Unity Catalog), in the
    configured engine's registry (flows.engine), signing with the key (if any) in the
    environment variable settings.training.model_signing_key_env."""
    stores = mlflow_stores(settings)
    return ModelRegistry(
        stores.tracking_uri,
        registry_uri=stores.registry_uri,
        name=stores.model_name,
        signing_key=os.environ.get(settings.training.model_signing_key_env) or None,
    )


def load_checked(settings: Settings, models: ModelRegistry, alias: str) -> LoadedModel:
    """The version behind `alias`, loaded after its integrity check; a failed check raises
    one model_integrity alert (and the ModelIntegrityError) instead of loading anything."""
    try:
        return models.load_alias(alias)
    except ModelIntegrityError as exc:
        alert_sender(settings).send(
            "critical", "Model refused: integrity check failed", str(exc),
            {"model": models.name, "version": exc.version, "alias": alias},
            kind=AlertKind.MODEL_INTEGRITY,
        )
        raise


def run_trust(
    settings: Settings, version: str, *, reason: str, console: Console | None = None
) -> str:
    """`tradewatch model trust`: record a version's current content hash on record."""
    console = console or Console()
    digest = registry(settings).trust_version(
        version, audit_log=audit_log(settings), reason=reason, operator=_operator()
    )
    console.print(
        f"model: {settings.training.registered_model} version {version} trusted with content "
        f"sha256 {digest} (audited)"
    )
    return digest


def _operator() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


def labelled_events(settings: Settings):
    """The events models are judged on (ml.events frame): the simulator's answer key when the
    data home has one, else None (the labelled trades' own runs stand for events)."""
    directory = settings.paths.ground_truth
    if not (directory / "trades.ndjson").exists():
        return None
    return events_from_answer_key(load_ground_truth_events(directory))


def gate_policy(settings: Settings) -> GatePolicy:
    """The gate's rules from settings.gate, the configured symbols and the threshold policy's
    alert precision."""
    gate = settings.gate
    return GatePolicy(
        primary_metric=gate.primary_metric,
        min_improvement_threshold=gate.min_improvement_threshold,
        min_events=gate.min_events,
        alert_gap_seconds=gate.alert_gap_seconds,
        required_alert_precision=settings.training.threshold.min_alert_precision,
        bootstrap=BootstrapPolicy(**gate.bootstrap.model_dump()),
        tolerances=gate.tolerances,
        min_primary_metric=gate.min_primary_metric,
        max_latency_p99_ms=gate.max_latency_p99_ms,
        required_symbols=settings.symbols,
    )


def _fmt(value: object, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


#: Column titles of the tournament table (metric → title).
LEADERBOARD_COLUMNS: tuple[tuple[str, str], ...] = (
    ("rank", "rank"), ("model", "model"),
    ("event_average_precision", "event AP"), ("event_recall", "event recall"),
    ("alert_precision", "alert precision"), ("false_alerts_per_day", "false alerts/day"),
    ("median_time_to_detect_s", "median TTD s"),
    ("pr_auc", "trade PR-AUC"), ("precision", "trade precision"), ("recall", "trade recall"),
    ("train_s", "train s"), ("latency_p99_ms", "p99 ms/row"),
)
_DIGITS = {
    "latency_p99_ms": 4, "false_alerts_per_day": 1, "median_time_to_detect_s": 1, "train_s": 1,
}


def print_leaderboard(leaderboard: Leaderboard, console: Console) -> None:
    """The tournament as a table, best primary metric first, then the `rules` baseline (the
    rule deck on the same test window: what the models add over rules), failures last.

    Event-level figures (ml.events): event AP is the event-level average precision, event
    recall and alert precision are at each model's own threshold (the rules: at least one rule
    fired), false alerts are per 24 h of the test window and the time to detect is from an
    event's first trade to its first flag.
    """
    judged = (*leaderboard.entries, *leaderboard.baselines)
    events = next((e.evaluation.events for e in judged), 0)
    table = Table(
        title=f"Model tournament (same test window for every model, {events} events; "
        f"ranked by {leaderboard.ranked_by})"
    )
    columns = list(LEADERBOARD_COLUMNS)
    for _, title in columns:
        table.add_column(title, justify="left" if title == "model" else "right")
    for row in leaderboard.rows():
        if row.get("error"):
            table.add_row("–", row["model"], f"[red]failed: {row['error'][:60]}[/]",
                          *[""] * (len(columns) - 3))
            continue
        cells = [_fmt(row.get(key), _DIGITS.get(key, 3)) for key, _ in columns]
        if row.get("baseline"):
            cells[0] = "baseline"
        table.add_row(*cells)
    console.print(table)
    print_event_recall_by_kind(leaderboard, console)


def print_event_recall_by_kind(leaderboard: Leaderboard, console: Console) -> None:
    """Per model, the share of each kind's injected events it flagged in the test window.

    Printed only when the simulator's ground truth is there (a real feed has none).
    """
    judged = (*leaderboard.entries, *leaderboard.baselines)
    seen = {kind for e in judged for kind in e.evaluation.event_recall_by_kind}
    if not seen:
        return
    kinds = [k for k in KINDS if k in seen] + sorted(seen - set(KINDS))
    table = Table(title="Event recall by anomaly kind (test window; events in brackets)")
    table.add_column("model")
    for kind in kinds:
        table.add_column(kind, justify="right")
    table.add_column("all kinds", justify="right")
    table.add_column("trade precision", justify="right")
    table.add_column("threshold", justify="right")
    for entry in judged:
        e = entry.evaluation
        table.add_row(
            entry.model_name,
            *[
                f"{e.event_recall_by_kind[kind]:.2f} ({e.events_by_kind.get(kind, 0)})"
                if kind in e.event_recall_by_kind
                else "–"
                for kind in kinds
            ],
            f"{_fmt(e.event_recall, 2)} ({e.events})",
            _fmt(e.trade_precision, 2),
            _fmt(entry.threshold),
        )
    console.print(table)


def run_train(settings: Settings, *, console: Console | None = None) -> TrainOutcome:
    """Tournament → register challenger → gate → promote → score; print what happened."""
    console = console or Console()
    training = settings.training
    start = None
    with warehouse_slot("read training data"):
        if training.history_days is not None:
            warehouse = open_warehouse(settings)
            newest = warehouse.query(
                f"select max(trade_ts_ms) as newest from {warehouse.table('gold_trade_features')}"
            )["newest"].iloc[0]
            if newest == newest and newest is not None:  # not NaN: the table has rows
                start = datetime.fromtimestamp(int(newest) / 1000, UTC) - timedelta(
                    days=training.history_days
                )
        data = load_training_frame(open_warehouse(settings), start=start)
    if data.frame.empty:
        raise TrainingFailed("the warehouse has no labelled gold rows: run `tradewatch transform`")
    data = _trusted_or_refuse(settings, data, console)
    split = split_by_time(
        data,
        validation_share=training.validation_share,
        test_share=training.test_share,
        purge_seconds=training.purge_seconds,
    )
    events = labelled_events(settings)
    rule_flags = _rule_flags(settings, split.test, console)
    tournament_id = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"
    # (the settings' Literal keys are str; a Mapping's key type is invariant, hence the ignores)
    leaderboard = run_tournament(
        split,
        training.models,  # type: ignore[arg-type]
        tracking_uri=tracking_uri(settings),
        registry_uri=mlflow_stores(settings).registry_uri,
        artifact_location=settings.paths.mlartifacts.resolve().as_uri(),
        experiment_name=training.experiment,
        events=events,
        random_seed=training.random_seed,
        risk_levels=settings.scoring.risk_levels,  # type: ignore[arg-type]
        tags={"tournament_id": tournament_id},
        threshold_policy=ThresholdPolicy(
            training.threshold.rule, training.threshold.min_alert_precision
        ),
        rank_by=settings.gate.primary_metric,
        alert_gap_seconds=settings.gate.alert_gap_seconds,
        rule_flags=rule_flags,
        rule_params=settings.rules.model_dump(),
    )
    print_leaderboard(leaderboard, console)
    winner = leaderboard.winner
    if winner is None:
        raise TrainingFailed(
            "every model failed to train: "
            + "; ".join(f"{f.model_name}: {f.error_type}" for f in leaderboard.failures)
        )
    models = registry(settings)
    version = models.register_challenger(
        winner.model_uri, tags={"model_name": winner.model_name, "run_id": winner.run_id}
    )
    log = audit_log(settings)
    decision = run_gate(
        models,
        version,
        split.test,
        policy=gate_policy(settings),
        audit_log=log,
        events=events,
        notify=alert_sender(settings).send,
    )
    if decision.promote:
        models.promote(version, audit_log=log, reason=decision.reason)
    send_gate_outcome_alert(alert_sender(settings), decision)
    print_gate_decision(decision, winner.model_name, console)
    scoring = run_score(settings, console=console) if models.version_for_alias("champion") \
        else None
    return TrainOutcome(leaderboard, version, decision, scoring)


def _rule_flags(settings: Settings, test: pd.DataFrame, console: Console) -> pd.DataFrame | None:
    """The rule deck's verdicts (gold_rule_flags) on the test window's trades, for the
    tournament's `rules` baseline; None, said in one line, when the warehouse has none."""
    ts = test["trade_ts_ms"]
    try:
        with warehouse_slot("read the rule deck"):
            return load_rule_flags(
                open_warehouse(settings), start_ms=int(ts.min()), end_ms=int(ts.max())
            )
    except RuleFlagsMissing as exc:
        console.print(f"[yellow]no rules baseline: {exc}[/]")
        return None


def _trusted_or_refuse(settings: Settings, data, console: Console):
    """The window's trusted-labelled rows; below the minimums, say so, alert and refuse.

    No circular training: rule labels are functions of the models' own inputs, so they are
    never trained on; a window with too few analyst or answer-key labels is refused.
    """
    training = settings.training
    try:
        trusted = trusted_training_frame(
            data, min_labels=training.min_trusted_labels,
            min_positives=training.min_trusted_positives,
        )
    except TooFewTrustedLabels as exc:
        console.print(
            f"[red]training refused[/]: {exc.labels:,} trusted labels ({exc.positives:,} "
            f"anomalous) in the window; needs {exc.min_labels:,} "
            f"(training.min_trusted_labels) and {exc.min_positives:,} anomalous "
            f"(training.min_trusted_positives). {exc.untrusted_rows:,} rule-labelled trades "
            "are never trained on. Nothing registered or promoted.", highlight=False,
        )
        alert_sender(settings).send(
            "warning", "Training refused: too few trusted labels", str(exc),
            {"trusted_labels": str(exc.labels), "trusted_positives": str(exc.positives),
             "min_trusted_labels": str(exc.min_labels),
             "min_trusted_positives": str(exc.min_positives),
             "rule_labelled_trades": str(exc.untrusted_rows)},
            kind=AlertKind.TRAINING_REFUSED,
        )
        raise TrainingRefused(str(exc)) from None
    if trusted.untrusted_rows:
        console.print(
            f"training on {len(trusted.frame):,} trusted-labelled trades "
            f"({trusted.labels.positives:,} anomalous); {trusted.untrusted_rows:,} "
            "rule-labelled trades left out (rule labels are never training labels)",
            highlight=False,
        )
    return trusted


def print_gate_decision(decision: GateDecision, model_name: str, console: Console) -> None:
    """The gate's line (primary metric, both values, the interval, the decision and why), and
    beside it the event-level and trade-level figures of both sides."""
    verdict = "[green]promoted[/]" if decision.promote else "[yellow]rejected[/]"
    console.print(
        f"gate: {model_name} (version {decision.challenger_version}) {verdict} — "
        f"{decision.summary()}",
        highlight=False,
    )
    sides = [("challenger", decision.challenger_metrics)]
    if decision.champion_metrics:
        sides.insert(0, (f"champion v{decision.champion_version}", decision.champion_metrics))
    if not decision.challenger_metrics:
        return
    shown = [
        ("event_average_precision", "event AP", 3), ("event_recall", "event recall", 3),
        ("false_alerts_per_day", "false alerts/day", 1),
        ("median_time_to_detect_s", "median TTD s", 1), ("pr_auc", "trade PR-AUC", 3),
    ]
    for side, metrics in sides:
        console.print(
            f"  {side}: "
            + ", ".join(
                f"{title} {_fmt(metrics.get(name), digits)}" for name, title, digits in shown
            ),
            highlight=False,
        )


@dataclass(frozen=True)
class ScoreOutcome:
    """One scoring run: the champion's scores and, with a registered challenger, its shadow's."""

    champion: ScoringResult
    rescored: int
    shadow: ScoringResult | None = None

    # The champion's figures, as ScoringResult had them (callers read these).
    @property
    def rows_scored(self) -> int:
        return self.champion.rows_scored

    @property
    def flagged(self) -> int:
        return self.champion.flagged

    @property
    def model_version(self) -> str | None:
        return self.champion.model_version


def run_score(
    settings: Settings, *, console: Console | None = None, shadow: bool = True
) -> ScoreOutcome:
    """Give every gold trade the champion's score; shadow-score the new ones with a challenger.

    The champion scores each trade it has not scored yet (new trades; after a promotion or a
    rollback, the trades the other version scored). A registered challenger (a version the
    gate kept out) scores the trades that had no score at all, into shadow_scores/. Each run
    is recorded in monitoring/scoring, which tells gold_anomaly_scores the current champion.
    """
    console = console or Console()
    models = registry(settings)
    champion = load_checked(settings, models, "champion")
    # Scores and scoring records go to the engine's data home (the volume on Databricks).
    home = data_home(settings)
    scoring_runs = within(home, SCORING_RUNS_DIR)
    # On a volume, what each scores file holds is cached locally: each is downloaded once.
    cache = scores_cache(settings, home, SCORES)
    with warehouse_slot("read trades to score"):
        frame = load_scoring_frame(
            open_warehouse(settings), scores_dir=within(home, SCORES),
            model_version=champion.version, scores_cache=cache,
        )
    new_trades = frame.loc[frame["never_scored"]] if "never_scored" in frame else frame
    result = score_new_trades(
        frame,
        model=champion.model,
        model_name=champion.name,
        model_version=champion.version,
        scores_dir=within(home, SCORES),
        already_scored=(),  # the warehouse query left out what this version has scored
        scores_cache=cache,  # what it writes is cached as it is written
    )
    rescored = result.rows_scored - len(new_trades)
    write_scoring_run(scoring_runs, result, role="champion",
                      model_name=champion.name, rows_rescored=rescored)
    again = f", {rescored:,} of them scored before by another version" if rescored else ""
    console.print(
        f"score: champion version {champion.version} scored {result.rows_scored:,} trades"
        f"{again} ({result.flagged:,} flagged) → {location(home, SCORES)}"
    )
    shadow_result = None
    challenger_version = models.version_for_alias("challenger")
    challenger = None
    if shadow and challenger_version and challenger_version != champion.version:
        try:
            challenger = load_checked(settings, models, "challenger")
        except ModelIntegrityError as exc:
            # Alerted by load_checked; the champion's scores stand, the shadow waits.
            console.print(f"score: no shadow scores: {exc}")
    if challenger is not None:
        shadow_result = score_new_trades(
            new_trades,
            model=challenger.model,
            model_name=challenger.name,
            model_version=challenger.version,
            scores_dir=within(home, SHADOW_SCORES),
            already_scored=(),
        )
        write_scoring_run(scoring_runs, shadow_result, role="shadow",
                          model_name=challenger.name)
        console.print(
            f"score: challenger version {challenger.version} shadow-scored "
            f"{shadow_result.rows_scored:,} new trades (never alerted) → "
            f"{location(home, SHADOW_SCORES)}"
        )
    return ScoreOutcome(result, rescored, shadow_result)


def run_rollback(settings: Settings, *, console: Console | None = None) -> Rollback:
    """Move `champion` back to `previous`, audit it and alert."""
    console = console or Console()
    done = registry(settings).rollback(audit_log=audit_log(settings))
    alert_sender(settings).send("warning", "Champion rolled back", (
        f"{done.model_name}: champion is version {done.champion_version} again "
        f"(was {done.rolled_back_version})."
    ), {}, kind=AlertKind.ROLLBACK)
    console.print(
        f"rollback: champion of {done.model_name} is version {done.champion_version} again "
        f"(version {done.rolled_back_version} demoted)"
    )
    return done
