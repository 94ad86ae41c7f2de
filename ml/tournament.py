"""The model tournament: train every configured model, judge all on one test window, log to MLflow.

Each model gets its own MLflow run (params, metrics, label policy, data window, the logged
pyfunc). Models are ranked by the gate's primary metric (default event-level average precision,
see ml.events), trade-level PR-AUC breaking ties. A model that raises while training or being
evaluated is reported with its error and left off the leaderboard; it is never ranked. The
rule deck (ml.rules) is judged beside them on the same window as a baseline, never ranked.
"""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import mlflow
import pandas as pd
from mlflow import MlflowClient

from ml.datasets import LabelSummary, TimeSplit, label_mix_of
from ml.events import DEFAULT_ALERT_GAP_SECONDS, EventJudge, events_from_labels
from ml.metrics import (
    COMPARABLE_METRICS,
    DEFAULT_LATENCY_BATCH_SIZES,
    Evaluation,
    evaluate,
    event_judge,
)
from ml.models import ThresholdPolicy, build_model
from ml.pyfunc import DEFAULT_RISK_LEVELS, TradewatchModel, log_tradewatch_model, predictor
from ml.registry import use_stores
from ml.rules import RULES_MODEL_NAME, RULES_THRESHOLD, evaluate_rules

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LeaderboardEntry:
    """A model that trained and was evaluated on the test window."""

    rank: int
    model_name: str
    run_id: str
    model_uri: str
    threshold: float
    training_seconds: float
    evaluation: Evaluation
    params: dict[str, Any] = field(default_factory=dict)
    #: A baseline (the rule deck): judged beside the models, never ranked, never a challenger.
    baseline: bool = False

    @property
    def pr_auc(self) -> float:
        return self.evaluation.pr_auc

    @property
    def event_average_precision(self) -> float | None:
        return self.evaluation.event_average_precision


@dataclass(frozen=True)
class ModelFailure:
    """A model that raised; excluded from the ranking."""

    model_name: str
    stage: str
    error_type: str
    message: str
    run_id: str | None


@dataclass(frozen=True)
class Leaderboard:
    """Ranked entries (best `ranked_by` first) and the models that failed."""

    entries: tuple[LeaderboardEntry, ...]
    failures: tuple[ModelFailure, ...]
    experiment_id: str
    split_summary: dict[str, Any]
    labels: LabelSummary
    ranked_by: str = "event_average_precision"
    #: Baselines judged on the same test window (the rule deck), outside the ranking.
    baselines: tuple[LeaderboardEntry, ...] = ()

    @property
    def winner(self) -> LeaderboardEntry | None:
        """The best-ranked model: the challenger-to-be (a baseline never is)."""
        return self.entries[0] if self.entries else None

    def baseline(self, name: str) -> LeaderboardEntry | None:
        """The baseline called `name` (e.g. "rules"), or None when it was not judged."""
        return next((b for b in self.baselines if b.model_name == name), None)

    def rows(self) -> list[dict[str, Any]]:
        """One plain row per model, then the baselines (rank None, `baseline` true), failures
        last, for a printed table."""
        rows: list[dict[str, Any]] = []
        for entry in (*self.entries, *self.baselines):
            e = entry.evaluation
            rows.append(
                {
                    "rank": None if entry.baseline else entry.rank,
                    "baseline": entry.baseline,
                    "model": entry.model_name,
                    "event_average_precision": e.event_average_precision,
                    "event_recall_at_precision": e.event_recall_at_precision,
                    "alert_precision": e.alert_precision,
                    "false_alerts_per_day": e.false_alerts_per_day,
                    "median_time_to_detect_s": e.median_time_to_detect_s,
                    "events": e.events,
                    "pr_auc": e.pr_auc,
                    "roc_auc": e.roc_auc,
                    "precision": e.precision,
                    "recall": e.recall,
                    "f1": e.f1,
                    "event_recall": e.event_recall,
                    "trade_precision": e.trade_precision,
                    "threshold": entry.threshold,
                    "train_s": None if entry.baseline else entry.training_seconds,
                    "latency_p99_ms": e.latency_p99_ms,
                    "error": None,
                }
            )
        for failure in self.failures:
            rows.append(
                {
                    "rank": None,
                    "model": failure.model_name,
                    "error": f"{failure.error_type}: {failure.message}",
                }
            )
        return rows


def ensure_experiment(client: MlflowClient, name: str, artifact_location: str | None) -> str:
    """The experiment's id, creating it with an explicit artifact location if needed.

    Locally the location must be given (the SQLite store would otherwise put artifacts in
    ./mlruns); on Databricks pass None and a workspace path as the name.
    """
    existing = client.get_experiment_by_name(name)
    if existing is not None:
        if existing.lifecycle_stage == "deleted":
            client.restore_experiment(existing.experiment_id)
        return existing.experiment_id
    return client.create_experiment(name, artifact_location=artifact_location)


def _flat_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    return {f"{prefix}{key}": str(value)[:6000] for key, value in params.items()}


def run_tournament(
    split: TimeSplit,
    models: Mapping[str, Mapping[str, Any]],
    *,
    tracking_uri: str,
    artifact_location: str | None,
    experiment_name: str = "tradewatch",
    events: pd.DataFrame | None = None,
    random_seed: int = 42,
    risk_levels: Mapping[str, float] = DEFAULT_RISK_LEVELS,
    latency_batch_sizes: Sequence[int] = DEFAULT_LATENCY_BATCH_SIZES,
    registry_uri: str | None = None,
    tags: Mapping[str, str] | None = None,
    threshold_policy: ThresholdPolicy | None = None,
    rank_by: str = "event_average_precision",
    alert_gap_seconds: float = DEFAULT_ALERT_GAP_SECONDS,
    rule_flags: pd.DataFrame | None = None,
    rule_params: Mapping[str, Any] | None = None,
) -> Leaderboard:
    """Train each model in `models` (name → hyperparameters), rank them on `split.test`.

    With `rule_flags` (ml.rules.load_rule_flags over the test window), the rule deck is judged
    on the same test window with the same judge, logged as its own run (`rules`, tagged
    `baseline`, with `rule_params` as its parameters) and listed in `Leaderboard.baselines`:
    never ranked, never the winner.

    `events` (an ml.events frame: the simulator's answer key, analyst-confirmed events) is
    what the event-level metrics judge against and what groups validation trades into events
    for the threshold policy; without it, runs of labelled trades stand for events. Models are
    ranked by `rank_by` (one of ml.metrics.COMPARABLE_METRICS), best first. Runs are logged to
    `experiment_name` at `tracking_uri`; the experiment is created with `artifact_location` when
    it does not exist.
    """
    if rank_by not in COMPARABLE_METRICS:
        raise ValueError(f"cannot rank by {rank_by!r}: choose from {', '.join(COMPARABLE_METRICS)}")
    threshold_policy = threshold_policy or ThresholdPolicy()
    judge = event_judge(split.test, events, alert_gap_seconds=alert_gap_seconds)
    fit_events = (
        events
        if events is not None
        else events_from_labels(split.validation, gap_seconds=alert_gap_seconds)
    )
    use_stores(tracking_uri, registry_uri)
    client = MlflowClient(tracking_uri=tracking_uri)
    experiment_id = ensure_experiment(client, experiment_name, artifact_location)
    summary = split.summary()
    common_tags = {
        **split.labels.as_tags(),
        "label_source_mix_by_window": json.dumps(
            label_mix_of(
                {"train": split.train, "validation": split.validation, "test": split.test}
            ),
            sort_keys=True,
        ),
        "features": ",".join(split.features),
        **(tags or {}),
    }
    data_params = _flat_params({k: v for k, v in summary.items() if v is not None}, "data.")

    scored: list[tuple[str, str, str, float, float, Evaluation, dict[str, Any]]] = []
    failures: list[ModelFailure] = []
    for model_name, params in models.items():
        stage = "build"
        with mlflow.start_run(
            experiment_id=experiment_id,
            run_name=model_name,
            tags={**common_tags, "model": model_name},
            nested=mlflow.active_run() is not None,
        ) as run:
            try:
                model = build_model(
                    model_name,
                    params,
                    features=split.features,
                    random_seed=random_seed,
                    threshold_policy=threshold_policy,
                )
                mlflow.log_params(_flat_params(params))
                mlflow.log_params(data_params)
                mlflow.log_param("threshold_policy", threshold_policy.describe())
                stage = "fit"
                report = model.fit(split.train, split.validation, events=fit_events)
                stage = "evaluate"
                wrapper = TradewatchModel(model, risk_levels)
                evaluation = evaluate(
                    predictor(wrapper, model.features),
                    split.test,
                    threshold=wrapper.threshold,
                    judge=judge,
                    required_alert_precision=threshold_policy.min_alert_precision,
                    latency_batch_sizes=latency_batch_sizes,
                )
                stage = "log"
                mlflow.log_params(
                    _flat_params(
                        {k: v for k, v in model.resolved_params.items() if k not in params},
                        "resolved.",
                    )
                )
                mlflow.log_metrics(
                    {
                        **evaluation.as_metrics(),
                        "training_seconds": report.training_seconds,
                        **(
                            {"best_iteration": report.best_iteration}
                            if report.best_iteration
                            else {}
                        ),
                    }
                )
                mlflow.set_tags(
                    {
                        "event_recall_by_kind": json.dumps(evaluation.event_recall_by_kind),
                        "threshold_rule": report.threshold_rule,
                        "ranked_by": rank_by,
                        "alert_gap_seconds": str(alert_gap_seconds),
                    }
                )
                info = log_tradewatch_model(wrapper, split.test)
            except Exception as exc:  # a failing model must not stop the others
                log.warning("model %s failed at %s: %s", model_name, stage, exc)
                mlflow.set_tags(
                    {
                        "failed_stage": stage,
                        "error": f"{type(exc).__name__}: {exc}"[:4000],
                        "traceback": traceback.format_exc()[-4000:],
                    }
                )
                mlflow.end_run(status="FAILED")
                failures.append(
                    ModelFailure(model_name, stage, type(exc).__name__, str(exc), run.info.run_id)
                )
                continue
            scored.append(
                (
                    model_name,
                    run.info.run_id,
                    info.model_uri,
                    wrapper.threshold,
                    report.training_seconds,
                    evaluation,
                    {**params},
                )
            )

    # Best primary metric first (unmeasurable last); PR-AUC and then the name break ties so
    # the order is reproducible.
    def order(item: tuple) -> tuple:
        value = item[5].get(rank_by)
        return (value is None, -(value or 0.0), -item[5].pr_auc, item[0])

    baselines: tuple[LeaderboardEntry, ...] = ()
    if rule_flags is not None:
        rules = _judge_rules(
            split, rule_flags, judge,
            experiment_id=experiment_id,
            tags=common_tags,
            params={**_flat_params(rule_params or {}), **data_params},
            required_alert_precision=threshold_policy.min_alert_precision,
            alert_gap_seconds=alert_gap_seconds,
        )
        if isinstance(rules, ModelFailure):
            failures.append(rules)
        else:
            baselines = (rules,)

    scored.sort(key=order)
    entries = tuple(
        LeaderboardEntry(rank, name, run_id, uri, threshold, seconds, evaluation, params)
        for rank, (name, run_id, uri, threshold, seconds, evaluation, params) in enumerate(
            scored, 1
        )
    )
    for entry in entries:
        client.set_tag(entry.run_id, "rank", str(entry.rank))
    return Leaderboard(
        entries, tuple(failures), experiment_id, summary, split.labels, rank_by, baselines
    )


def _judge_rules(
    split: TimeSplit,
    rule_flags: pd.DataFrame,
    judge: EventJudge,
    *,
    experiment_id: str,
    tags: Mapping[str, str],
    params: Mapping[str, str],
    required_alert_precision: float,
    alert_gap_seconds: float,
) -> LeaderboardEntry | ModelFailure:
    """The rule deck on the test window, logged as the `rules` run (no model is logged: the
    rules live in the warehouse)."""
    with mlflow.start_run(
        experiment_id=experiment_id,
        run_name=RULES_MODEL_NAME,
        tags={**tags, "model": RULES_MODEL_NAME, "baseline": "true"},
        nested=mlflow.active_run() is not None,
    ) as run:
        try:
            mlflow.log_params(dict(params))
            evaluation = evaluate_rules(
                split.test, rule_flags, judge=judge,
                required_alert_precision=required_alert_precision,
            )
            mlflow.log_metrics(evaluation.as_metrics())
            mlflow.set_tags({
                "event_recall_by_kind": json.dumps(evaluation.event_recall_by_kind),
                "threshold_rule": "at least one rule fired",
                "alert_gap_seconds": str(alert_gap_seconds),
            })
        except Exception as exc:  # the baseline must not stop the tournament
            log.warning("the rules baseline failed: %s", exc)
            mlflow.set_tags({"failed_stage": "evaluate",
                             "error": f"{type(exc).__name__}: {exc}"[:4000]})
            mlflow.end_run(status="FAILED")
            return ModelFailure(RULES_MODEL_NAME, "evaluate", type(exc).__name__, str(exc),
                                run.info.run_id)
    return LeaderboardEntry(
        0, RULES_MODEL_NAME, run.info.run_id, "", RULES_THRESHOLD, 0.0, evaluation,
        dict(params), baseline=True,
    )
