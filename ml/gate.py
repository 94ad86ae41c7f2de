"""The champion/challenger gate: promote only a challenger that beats the champion on the same data.

Both registered versions are loaded from the registry (what is judged is what would serve)
and scored on the same, newest test window. The challenger must first pass validation
(minimum PR-AUC, p99 latency, every configured symbol present in the window). With no
champion it is promoted; otherwise it must beat the champion's PR-AUC by at least
`min_improvement_threshold` with no secondary metric dropping more than its tolerance. Any
failure to read the registry or to load or score the champion, and a toleranced metric measured
for one side only, rejects the challenger and raises an alert (fail closed); a metric undefined
for both on the window (event recall without ground truth) is named as not compared. Every
decision is appended to the audit log.
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
from ml.metrics import (
    DEFAULT_LATENCY_BATCH_SIZES,
    Evaluation,
    evaluate,
    metric_drops,
    uncompared_metrics,
)
from ml.pyfunc import predictor
from ml.registry import CHAMPION, LoadedModel, ModelIntegrityError, ModelRegistry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GatePolicy:
    """The promotion rules (project_config.yml `gate`, plus the configured symbols)."""

    min_improvement_threshold: float = 0.01
    tolerances: Mapping[str, float] = field(default_factory=dict)
    min_pr_auc: float = 0.3
    max_latency_p99_ms: float = 50.0
    required_symbols: tuple[str, ...] = ()


@dataclass(frozen=True)
class GateDecision:
    """What the gate decided, why, and on which evidence."""

    decision: Literal["promote", "reject"]
    reason: str
    challenger_version: str
    champion_version: str | None
    challenger_metrics: dict[str, float]
    champion_metrics: dict[str, float] | None
    test_window_start: str | None
    test_window_end: str | None
    checks: dict[str, bool]
    alert: str | None
    audit_event_id: str

    @property
    def promote(self) -> bool:
        return self.decision == "promote"


def _threshold_of(loaded: LoadedModel) -> float:
    meta = getattr(loaded.model.metadata, "metadata", None) or {}
    return float(meta.get("threshold", float("nan")))


def _evaluate(
    loaded: LoadedModel,
    frame: pd.DataFrame,
    events: pd.DataFrame | None,
    batch_sizes: Sequence[int],
) -> Evaluation:
    return evaluate(
        predictor(loaded.model),
        frame,
        threshold=_threshold_of(loaded),
        events=events,
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
    if evaluation.pr_auc < policy.min_pr_auc:
        failures["min_pr_auc"] = f"PR-AUC {evaluation.pr_auc:.4f} < minimum {policy.min_pr_auc}"
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

    Returns the decision (already written to the audit log); it promotes nothing itself — call
    `registry.promote(...)` when `decision.promote`. A decision with `alert` set is handed to
    `notify(kind=, severity=, title=, text=, fields=)` (flows.alerts.AlertSender.send fits; it sends
    and audits the alert); without a notifier the gate writes the `alert` audit event itself.
    Either way the alert is recorded once.
    """
    challenger_version = str(challenger_version)
    start, end = window_bounds(test_frame)
    checks: dict[str, bool] = {}

    def decide(
        decision: Literal["promote", "reject"],
        reason: str,
        *,
        challenger: Evaluation | None = None,
        champion: Evaluation | None = None,
        champion_version: str | None = None,
        alert: str | None = None,
        alert_kind: AlertKind = AlertKind.GATE,
        extra: Mapping[str, Any] | None = None,
    ) -> GateDecision:
        challenger_metrics = challenger.as_metrics() if challenger else {}
        champion_metrics = champion.as_metrics() if champion else None
        payload = {
            "decision": decision,
            "reason": reason,
            "model_name": registry.name,
            "champion_version": champion_version,
            "challenger_version": challenger_version,
            "champion_metrics": champion_metrics or {},
            "challenger_metrics": challenger_metrics,
            "test_window_start": start,
            "test_window_end": end,
            "test_rows": len(test_frame),
            "checks": dict(checks),
            "min_improvement_threshold": policy.min_improvement_threshold,
            "tolerances": dict(policy.tolerances),
            "alert": alert,
            **(extra or {}),
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
        log.info("gate %s: %s", decision, reason)
        return GateDecision(
            decision=decision,
            reason=reason,
            challenger_version=challenger_version,
            champion_version=champion_version,
            challenger_metrics=challenger_metrics,
            champion_metrics=champion_metrics,
            test_window_start=start,
            test_window_end=end,
            checks=dict(checks),
            alert=alert,
            audit_event_id=record.event_id,
        )

    if test_frame.empty:
        return decide("reject", "the test window is empty: nothing to judge the challenger on")

    try:
        challenger = _evaluate(
            registry.load_version(challenger_version), test_frame, events, latency_batch_sizes
        )
    except Exception as exc:
        message = (
            f"challenger {registry.name} version {challenger_version} could not be loaded or "
            f"scored: {type(exc).__name__}: {exc}"
        )
        return decide("reject", message, alert=message, alert_kind=_alert_kind(exc))

    failures = validation_failures(challenger, test_frame, policy)
    checks.update(
        {
            name: name not in failures
            for name in ("min_pr_auc", "max_latency_p99_ms", "symbols_present")
        }
    )
    if failures:
        return decide(
            "reject", "validation failed: " + "; ".join(failures.values()), challenger=challenger
        )

    try:
        champion_version = registry.version_for_alias(CHAMPION)
    except Exception as exc:
        message = f"cannot read the champion alias of {registry.name}: {type(exc).__name__}: {exc}"
        return decide("reject", message, challenger=challenger, alert=message)
    if champion_version is None:
        return decide(
            "promote", "no champion yet; the challenger passed validation", challenger=challenger
        )
    if champion_version == challenger_version:
        return decide(
            "reject",
            f"version {challenger_version} is already the champion",
            challenger=challenger,
            champion_version=champion_version,
        )

    try:
        champion = _evaluate(
            registry.load_version(champion_version), test_frame, events, latency_batch_sizes
        )
    except Exception as exc:
        message = (
            f"champion {registry.name} version {champion_version} could not be loaded or scored "
            f"({type(exc).__name__}: {exc}); failing closed, the challenger is not promoted"
        )
        return decide(
            "reject",
            message,
            challenger=challenger,
            champion_version=champion_version,
            alert=message,
            alert_kind=_alert_kind(exc),
        )

    improvement = challenger.pr_auc - champion.pr_auc
    extra = {"pr_auc_improvement": improvement}
    if improvement < policy.min_improvement_threshold - 1e-12:
        return decide(
            "reject",
            f"PR-AUC improvement {improvement:+.4f} is below the required "
            f"{policy.min_improvement_threshold}",
            challenger=challenger,
            champion=champion,
            champion_version=champion_version,
            extra=extra,
        )
    champion_metrics, challenger_metrics = champion.as_metrics(), challenger.as_metrics()
    uncompared = uncompared_metrics(champion_metrics, challenger_metrics, policy.tolerances)
    one_sided = {name: side for name, side in uncompared.items() if side != "both"}
    undefined = sorted(name for name, side in uncompared.items() if side == "both")
    extra["secondary_metrics_not_compared"] = undefined
    if one_sided:
        checks["secondary_metrics"] = False
        detail = ", ".join(f"{name} (missing for the {side})" for name, side in one_sided.items())
        message = (
            f"secondary metric(s) {detail} cannot be compared; failing closed, the challenger "
            "is not promoted"
        )
        return decide(
            "reject",
            message,
            challenger=challenger,
            champion=champion,
            champion_version=champion_version,
            alert=message,
            extra=extra,
        )
    drops = metric_drops(champion_metrics, challenger_metrics, policy.tolerances)
    checks["secondary_metrics"] = not drops
    if drops:
        detail = ", ".join(
            f"{name} −{drop:.4f} (tolerance {policy.tolerances[name]})"
            for name, drop in drops.items()
        )
        return decide(
            "reject",
            f"PR-AUC improved by {improvement:+.4f} but secondary metrics dropped: {detail}",
            challenger=challenger,
            champion=champion,
            champion_version=champion_version,
            extra=extra,
        )
    not_compared = (
        f" ({', '.join(undefined)} undefined for both on this window, not compared)"
        if undefined else ""
    )
    return decide(
        "promote",
        f"PR-AUC improved by {improvement:+.4f} (≥ {policy.min_improvement_threshold}) and "
        f"secondary metrics are within tolerance{not_compared}",
        challenger=challenger,
        champion=champion,
        champion_version=champion_version,
        extra=extra,
    )
