"""The champion/challenger gate: promote only a challenger that beats the champion on the same data.

Both registered versions are loaded from the registry (what is judged is what would serve)
and scored on the same, newest test window, and judged on events as an analyst sees them
(ml.events). The challenger must first pass validation (a minimum of the primary metric, p99
latency, every configured symbol present in the window). With no champion it is promoted.
Otherwise:
- a window holding fewer than `min_events` events is not enough evidence: the champion stays;
- the primary metric (default event-level average precision) must be measurable on both
  sides, and so must every metric with a tolerance, else the gate fails closed with an alert; a
  toleranced metric undefined for both on the window (one class for ROC-AUC) is named as not
  compared, a name no evaluation gives (a misspelling) fails closed;
- challenger − champion on the primary metric comes with a paired bootstrap interval over
  (symbol, time) blocks of the window; the challenger is promoted only when the interval's lower
  bound clears `min_improvement_threshold` and no secondary metric worsens beyond its tolerance.
Any failure to read the registry or to load or score either model rejects the challenger and
raises an alert (fail closed). Every decision, with every figure, is appended to the audit log.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd

from core.alerts import AlertKind
from ml.audit import AuditLog
from ml.datasets import symbols_missing, window_bounds
from ml.events import DEFAULT_ALERT_GAP_SECONDS, EventJudge
from ml.metrics import (
    COMPARABLE_METRICS,
    DEFAULT_LATENCY_BATCH_SIZES,
    Difference,
    Evaluation,
    evaluate,
    event_judge,
    known_metric,
    metric_drops,
    missing_metrics,
    paired_bootstrap,
    uncompared_metrics,
)
from ml.pyfunc import predictor
from ml.registry import CHAMPION, LoadedModel, ModelIntegrityError, ModelRegistry

log = logging.getLogger(__name__)

#: Why the gate decided as it did, one word each (the audit record's `reason_code`).
REASON_CODES: tuple[str, ...] = (
    "empty_window", "events_unreadable", "challenger_unusable", "validation_failed",
    "registry_unreadable", "no_champion", "already_champion", "champion_unusable",
    "insufficient_evidence", "metric_missing", "not_better", "secondary_drop", "better",
)


@dataclass(frozen=True)
class BootstrapPolicy:
    """The paired bootstrap behind the gate's interval (project_config.yml `gate.bootstrap`)."""

    resamples: int = 1000
    confidence: float = 0.9
    block_minutes: float = 60.0
    seed: int = 0


@dataclass(frozen=True)
class GatePolicy:
    """The promotion rules (project_config.yml `gate`, plus the configured symbols and the
    alert precision of the threshold policy)."""

    primary_metric: str = "event_average_precision"
    min_improvement_threshold: float = 0.01
    min_events: int = 30
    alert_gap_seconds: float = DEFAULT_ALERT_GAP_SECONDS
    required_alert_precision: float = 0.6
    bootstrap: BootstrapPolicy = field(default_factory=BootstrapPolicy)
    tolerances: Mapping[str, float] = field(default_factory=dict)
    min_primary_metric: float = 0.3
    max_latency_p99_ms: float = 50.0
    required_symbols: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.primary_metric not in COMPARABLE_METRICS:
            raise ValueError(
                f"primary metric {self.primary_metric!r} cannot be compared: choose from "
                f"{', '.join(COMPARABLE_METRICS)}"
            )


@dataclass(frozen=True)
class GateDecision:
    """What the gate decided, why, and on which evidence."""

    decision: Literal["promote", "reject"]
    reason: str
    reason_code: str
    challenger_version: str
    champion_version: str | None
    challenger_metrics: dict[str, float]
    champion_metrics: dict[str, float] | None
    test_window_start: str | None
    test_window_end: str | None
    checks: dict[str, bool]
    alert: str | None
    audit_event_id: str
    primary_metric: str = "event_average_precision"
    events: int | None = None
    comparison: Difference | None = None

    @property
    def promote(self) -> bool:
        return self.decision == "promote"

    def summary(self) -> str:
        """One line: the primary metric, both values and the interval when there was a
        comparison, then the decision and its reason."""
        verdict = "promote" if self.promote else "reject"
        c = self.comparison
        if c is None:
            value = self.challenger_metrics.get(self.primary_metric)
            shown = f"{value:.3f}" if value is not None else "not measured"
            events = f", {self.events} events" if self.events is not None else ""
            return f"{self.primary_metric} {shown}{events} → {verdict}: {self.reason}"
        return (
            f"{c.metric}: challenger {c.challenger:.3f} vs champion {c.champion:.3f}, "
            f"difference {c.difference:+.3f} ({c.confidence:.0%} interval {c.low:+.3f} … "
            f"{c.high:+.3f}, {self.events} events) → {verdict}: {self.reason}"
        )


def _threshold_of(loaded: LoadedModel) -> float:
    meta = getattr(loaded.model.metadata, "metadata", None) or {}
    return float(meta.get("threshold", float("nan")))


def _evaluate(
    loaded: LoadedModel,
    frame: pd.DataFrame,
    judge: EventJudge,
    policy: GatePolicy,
    batch_sizes: Sequence[int],
) -> Evaluation:
    return evaluate(
        predictor(loaded.model),
        frame,
        threshold=_threshold_of(loaded),
        judge=judge,
        required_alert_precision=policy.required_alert_precision,
        latency_batch_sizes=batch_sizes,
    )


def _alert_kind(exc: BaseException) -> AlertKind:
    """A model refused by its integrity check is a model_integrity alert, else a gate alert."""
    return AlertKind.MODEL_INTEGRITY if isinstance(exc, ModelIntegrityError) else AlertKind.GATE


def validation_failures(
    evaluation: Evaluation, frame: pd.DataFrame, policy: GatePolicy
) -> dict[str, str]:
    """check name → why it failed, for every validation the challenger must pass."""
    failures: dict[str, str] = {}
    primary = evaluation.get(policy.primary_metric)
    if primary is None:
        failures["min_primary_metric"] = (
            f"{policy.primary_metric} could not be measured (no labelled event in the window)"
        )
    elif primary < policy.min_primary_metric:
        failures["min_primary_metric"] = (
            f"{policy.primary_metric} {primary:.4f} < minimum {policy.min_primary_metric}"
        )
    p99 = evaluation.latency_p99_ms
    if p99 is None or p99 > policy.max_latency_p99_ms:
        failures["max_latency_p99_ms"] = (
            f"p99 scoring latency {p99:.3f} ms per row > {policy.max_latency_p99_ms} ms"
            if p99 is not None
            else "p99 scoring latency was not measured"
        )
    missing = symbols_missing(frame, policy.required_symbols)
    if missing:
        failures["symbols_present"] = f"no trades for {', '.join(missing)} in the test window"
    return failures


def run_gate(
    registry: ModelRegistry,
    challenger_version: str | int,
    test_frame: pd.DataFrame,
    *,
    policy: GatePolicy,
    audit_log: AuditLog,
    events: pd.DataFrame | None = None,
    latency_batch_sizes: Sequence[int] = DEFAULT_LATENCY_BATCH_SIZES,
    notify: Callable[..., object] | None = None,
) -> GateDecision:
    """Judge registered `challenger_version` against the current champion on `test_frame`.

    `events` is an ml.events frame (the answer key, analyst-confirmed events); without it the
    events are the runs of the window's labelled trades. Returns the decision (already written
    to the audit log); it promotes nothing itself — call `registry.promote(...)` when
    `decision.promote`. A decision with `alert` set is handed to
    `notify(kind=, severity=, title=, text=, fields=)` (flows.alerts.AlertSender.send fits; it
    sends and audits the alert); without a notifier the gate writes the `alert` audit event
    itself. Either way the alert is recorded once.
    """
    challenger_version = str(challenger_version)
    start, end = window_bounds(test_frame)
    checks: dict[str, bool] = {}
    judged_events: list[int] = []

    def decide(
        decision: Literal["promote", "reject"],
        code: str,
        reason: str,
        *,
        challenger: Evaluation | None = None,
        champion: Evaluation | None = None,
        champion_version: str | None = None,
        alert: str | None = None,
        alert_kind: AlertKind = AlertKind.GATE,
        comparison: Difference | None = None,
        not_compared: Sequence[str] = (),
    ) -> GateDecision:
        challenger_metrics = challenger.as_metrics() if challenger else {}
        champion_metrics = champion.as_metrics() if champion else None
        events_count = judged_events[0] if judged_events else None
        payload = {
            "decision": decision,
            "reason": reason,
            "reason_code": code,
            "model_name": registry.name,
            "champion_version": champion_version,
            "challenger_version": challenger_version,
            "champion_metrics": champion_metrics or {},
            "challenger_metrics": challenger_metrics,
            "test_window_start": start,
            "test_window_end": end,
            "test_rows": len(test_frame),
            "events": events_count,
            "checks": dict(checks),
            "primary_metric": policy.primary_metric,
            "comparison": comparison.as_dict() if comparison else None,
            "min_improvement_threshold": policy.min_improvement_threshold,
            "min_events": policy.min_events,
            "alert_gap_seconds": policy.alert_gap_seconds,
            "tolerances": dict(policy.tolerances),
            "secondary_metrics_not_compared": list(not_compared),
            "alert": alert,
        }
        record = audit_log.append("gate_decision", payload)
        if alert and notify is not None:
            notify(
                kind=alert_kind,
                severity="critical",
                title="Promotion gate alert",
                text=alert,
                fields={
                    "model": registry.name,
                    "challenger": challenger_version,
                    "champion": champion_version or "none",
                    "gate event": record.event_id,
                },
            )
        elif alert:
            audit_log.append(
                "alert",
                {
                    "source": "gate",
                    "kind": str(alert_kind),
                    "severity": "critical",
                    "message": alert,
                    "model_name": registry.name,
                    "challenger_version": challenger_version,
                    "champion_version": champion_version,
                    "gate_event_id": record.event_id,
                },
            )
        log.info("gate %s (%s): %s", decision, code, reason)
        return GateDecision(
            decision=decision,
            reason=reason,
            reason_code=code,
            challenger_version=challenger_version,
            champion_version=champion_version,
            challenger_metrics=challenger_metrics,
            champion_metrics=champion_metrics,
            test_window_start=start,
            test_window_end=end,
            checks=dict(checks),
            alert=alert,
            audit_event_id=record.event_id,
            primary_metric=policy.primary_metric,
            events=events_count,
            comparison=comparison,
        )

    if test_frame.empty:
        return decide(
            "reject", "empty_window", "the test window is empty: nothing to judge the challenger on"
        )
    try:
        judge = event_judge(
            test_frame,
            events,
            alert_gap_seconds=policy.alert_gap_seconds,
            block_minutes=policy.bootstrap.block_minutes,
        )
    except Exception as exc:
        message = f"the labelled events cannot be read: {type(exc).__name__}: {exc}"
        return decide("reject", "events_unreadable", message, alert=message)
    judged_events.append(len(judge.events))

    try:
        challenger = _evaluate(
            registry.load_version(challenger_version), test_frame, judge, policy,
            latency_batch_sizes,
        )
    except Exception as exc:
        message = (
            f"challenger {registry.name} version {challenger_version} could not be loaded or "
            f"scored: {type(exc).__name__}: {exc}"
        )
        return decide("reject", "challenger_unusable", message, alert=message,
                      alert_kind=_alert_kind(exc))

    failures = validation_failures(challenger, test_frame, policy)
    checks.update(
        {
            name: name not in failures
            for name in ("min_primary_metric", "max_latency_p99_ms", "symbols_present")
        }
    )
    if failures:
        unmeasured = challenger.get(policy.primary_metric) is None
        reason = "validation failed: " + "; ".join(failures.values())
        return decide(
            "reject", "validation_failed", reason, challenger=challenger,
            alert=reason if unmeasured else None,
        )

    try:
        champion_version = registry.version_for_alias(CHAMPION)
    except Exception as exc:
        message = f"cannot read the champion alias of {registry.name}: {type(exc).__name__}: {exc}"
        return decide(
            "reject", "registry_unreadable", message, challenger=challenger, alert=message
        )
    if champion_version is None:
        return decide(
            "promote", "no_champion", "no champion yet; the challenger passed validation",
            challenger=challenger,
        )
    if champion_version == challenger_version:
        return decide(
            "reject",
            "already_champion",
            f"version {challenger_version} is already the champion",
            challenger=challenger,
            champion_version=champion_version,
        )

    try:
        champion = _evaluate(
            registry.load_version(champion_version), test_frame, judge, policy,
            latency_batch_sizes,
        )
    except Exception as exc:
        message = (
            f"champion {registry.name} version {champion_version} could not be loaded or scored "
            f"({type(exc).__name__}: {exc}); failing closed, the challenger is not promoted"
        )
        return decide(
            "reject",
            "champion_unusable",
            message,
            challenger=challenger,
            champion_version=champion_version,
            alert=message,
            alert_kind=_alert_kind(exc),
        )
    sides: dict[str, Any] = {
        "challenger": challenger, "champion": champion, "champion_version": champion_version,
    }

    bootstrap = policy.bootstrap

    def compare() -> Difference:
        assert champion.scores is not None and challenger.scores is not None, "both evaluated"
        return paired_bootstrap(
            policy.primary_metric,
            judge,
            test_frame,
            champion.scores,
            challenger.scores,
            required_alert_precision=policy.required_alert_precision,
            resamples=bootstrap.resamples,
            confidence=bootstrap.confidence,
            seed=bootstrap.seed,
        )

    events_count = len(judge.events)
    checks["enough_events"] = events_count >= policy.min_events
    if not checks["enough_events"]:
        # Too few events to decide on; the comparison is still recorded for whoever reads the
        # decision, when both sides have the primary metric.
        shown: Difference | None = None
        if not missing_metrics((policy.primary_metric,), champion.as_metrics(),
                               challenger.as_metrics()):
            try:
                shown = compare()
            except Exception as exc:  # a figure for the record only: never a reason to fail
                log.warning("gate: no interval on %d events: %s", events_count, exc)
        return decide(
            "reject",
            "insufficient_evidence",
            f"not enough evidence: the test window holds {events_count} labelled events, "
            f"fewer than the {policy.min_events} required; the champion stays",
            comparison=shown,
            **sides,
        )

    champion_metrics, challenger_metrics = champion.as_metrics(), challenger.as_metrics()
    missing = missing_metrics((policy.primary_metric,), champion_metrics, challenger_metrics)
    # A toleranced metric missing on one side only means the two evaluations differ: fail
    # closed. Undefined for both on this window (one class for ROC-AUC): named, not compared.
    uncompared = uncompared_metrics(champion_metrics, challenger_metrics, policy.tolerances)
    undefined = sorted(
        name for name, side in uncompared.items() if side == "both" and known_metric(name)
    )
    missing.update({
        name: "champion and challenger" if side == "both" else side
        for name, side in uncompared.items() if name not in undefined
    })
    sides["not_compared"] = undefined
    checks["metrics_present"] = not missing
    if missing:
        detail = ", ".join(f"{name} (missing on the {side})" for name, side in missing.items())
        message = (
            f"cannot compare {detail}: failing closed, the challenger is not promoted"
        )
        return decide("reject", "metric_missing", message, alert=message, **sides)

    comparison = compare()
    figures = (
        f"{comparison.difference:+.4f}, {comparison.confidence:.0%} interval "
        f"[{comparison.low:+.4f}, {comparison.high:+.4f}] over {events_count} events"
    )
    checks["improvement"] = comparison.low >= policy.min_improvement_threshold - 1e-12
    if not checks["improvement"]:
        return decide(
            "reject",
            "not_better",
            f"{policy.primary_metric} changed by {figures}: the lower bound does not clear "
            f"+{policy.min_improvement_threshold}",
            comparison=comparison,
            **sides,
        )
    drops = metric_drops(champion_metrics, challenger_metrics, policy.tolerances)
    checks["secondary_metrics"] = not drops
    if drops:
        detail = ", ".join(
            f"{name} worse by {drop:.4f} (tolerance {policy.tolerances[name]})"
            for name, drop in drops.items()
        )
        return decide(
            "reject",
            "secondary_drop",
            f"{policy.primary_metric} improved by {figures}, but secondary metrics worsened: "
            f"{detail}",
            comparison=comparison,
            **sides,
        )
    not_compared = (
        f" ({', '.join(undefined)} undefined for both on this window, not compared)"
        if undefined else ""
    )
    return decide(
        "promote",
        "better",
        f"{policy.primary_metric} improved by {figures}: the lower bound clears "
        f"+{policy.min_improvement_threshold} and secondary metrics are within "
        f"tolerance{not_compared}",
        comparison=comparison,
        **sides,
    )
