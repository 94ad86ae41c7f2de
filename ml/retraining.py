"""The retraining trigger: whether to retrain now, within the limits the team set.

Reasons to retrain: data drift (any input feature drifted), prediction drift (the score
distribution moved), a performance drop (PR-AUC fell by more than the policy allows where
labels exist) and enough new labelled rows. Limits: a cooldown after each trigger and a
maximum number of triggers in any 24 hours (a rolling window, so two bursts either side of
midnight cannot double the allowance).

Both limits are read from the durable audit log (records of kind `retrain_triggered`), never
from memory, so they hold across restarts, processes and machines sharing the log. The
read-decide-append runs under an exclusive file lock in the log's directory, so two checks
racing each other cannot both trigger. A log that cannot be read or whose record chain is
broken blocks retraining (fail closed) and raises a critical `audit_log_damaged` alert; so does
a decision dated in the future (it would hold the limits until then). After `tradewatch audit
repair` the limits assume the worst about what was lost: automatic retraining waits 24 hours
from the repair (`tradewatch train` still works by hand). Every decision is appended to the
log as `retrain_triggered` or `retrain_skipped`.

Starting the training run is the caller's job (flows); this module only decides.
"""

from __future__ import annotations

import fcntl
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal

from core.alerts import AlertKind
from ml.audit import (
    MAX_CLOCK_SKEW,
    REPAIRED,
    AuditLog,
    AuditLogDamaged,
    AuditLogUnreadable,
    ahead_text,
)
from ml.drift_windows import iso_utc

if TYPE_CHECKING:
    # Only the report's attributes are read: deciding needs neither pandas nor scikit-learn.
    from ml.drift import DriftReport

log = logging.getLogger(__name__)

TRIGGERED = "retrain_triggered"
SKIPPED = "retrain_skipped"
_LOCK_NAME = ".retraining.lock"
_DAY = timedelta(hours=24)


class RetrainReason(StrEnum):
    DATA_DRIFT = "data_drift"
    PREDICTION_DRIFT = "prediction_drift"
    PERFORMANCE_DROP = "performance_drop"
    NEW_LABELLED_ROWS = "new_labelled_rows"


class BlockedBy(StrEnum):
    COOLDOWN = "cooldown"
    DAILY_LIMIT = "daily_limit"
    AUDIT_LOG_UNREADABLE = "audit_log_unreadable"
    AUDIT_REPAIR = "audit_repair"
    FUTURE_TIMESTAMP = "future_timestamp"


class RetrainingInputError(ValueError):
    """A retraining policy or check was given an impossible value."""


@dataclass(frozen=True)
class RetrainingPolicy:
    """When to retrain and how often at most (settings.retraining in project_config.yml)."""

    performance_drop: float = 0.05
    min_new_labelled_rows: int = 5000
    cooldown_hours: float = 6.0
    max_per_day: int = 4

    def __post_init__(self) -> None:
        if not self.performance_drop > 0:
            raise RetrainingInputError("performance_drop must be > 0 (a PR-AUC drop)")
        if self.min_new_labelled_rows < 1:
            raise RetrainingInputError("min_new_labelled_rows must be at least 1")
        if self.cooldown_hours < 0:
            raise RetrainingInputError("cooldown_hours cannot be negative")
        if self.max_per_day < 1:
            raise RetrainingInputError("max_per_day must be at least 1")

    def as_dict(self) -> dict[str, Any]:
        return {
            "performance_drop": self.performance_drop,
            "min_new_labelled_rows": self.min_new_labelled_rows,
            "cooldown_hours": self.cooldown_hours,
            "max_per_day": self.max_per_day,
        }


@dataclass(frozen=True)
class AlertMessage:
    """An alert the decision deserves; flows.alerts.AlertSender.send(**asdict(...)) sends it."""

    severity: Literal["info", "warning", "critical"]
    title: str
    text: str
    fields: dict[str, str] = field(default_factory=dict)
    kind: AlertKind = AlertKind.RETRAINING


@dataclass(frozen=True)
class RetrainDecision:
    """Whether to retrain, why, and what (if anything) stood in the way."""

    retrain: bool
    reasons: tuple[RetrainReason, ...]
    blocked_by: tuple[BlockedBy, ...]
    decided_at: datetime
    detail: str
    drift_run_id: str | None = None
    last_triggered_at: datetime | None = None
    triggered_last_24h: int | None = None
    next_allowed_at: datetime | None = None
    audit_event_id: str | None = None
    alert: AlertMessage | None = None

    def as_payload(self) -> dict[str, Any]:
        """The audit-log payload (JSON-ready)."""
        return {
            "retrain": self.retrain,
            "reasons": [str(r) for r in self.reasons],
            "blocked_by": [str(b) for b in self.blocked_by],
            "detail": self.detail,
            "drift_run_id": self.drift_run_id,
            "last_triggered_at": _iso_or_none(self.last_triggered_at),
            "triggered_last_24h": self.triggered_last_24h,
            "next_allowed_at": _iso_or_none(self.next_allowed_at),
        }


Notify = Callable[..., object]


class RetrainingTrigger:
    """Decides on retraining against a policy, with its memory in an audit log.

    `notify`, if given, is called as notify(kind=, severity=, title=, text=, fields=) for every
    decision that deserves an alert (flows.alerts.AlertSender.send fits). The decision's
    `alert` carries the same message either way.
    """

    def __init__(
        self,
        audit_log: AuditLog,
        policy: RetrainingPolicy | None = None,
        *,
        notify: Notify | None = None,
    ) -> None:
        self.audit_log = audit_log
        self.policy = policy or RetrainingPolicy()
        self._notify = notify

    def last_triggered_at(self) -> datetime | None:
        """When retraining was last triggered (None if never); raises AuditLogUnreadable."""
        return max((r.event_ts for r in self.audit_log.records(TRIGGERED)), default=None)

    def decide(
        self,
        report: DriftReport | None = None,
        *,
        new_labelled_rows: int = 0,
        now: datetime | None = None,
    ) -> RetrainDecision:
        """Decide, append the decision to the audit log, alert if it deserves it, return it."""
        if new_labelled_rows < 0:
            raise RetrainingInputError(f"new_labelled_rows cannot be negative: {new_labelled_rows}")
        clock = datetime.now(UTC)
        now = (now or clock).astimezone(UTC)
        reasons, evidence = self._reasons(report, new_labelled_rows)
        context = {
            **evidence,
            "new_labelled_rows": new_labelled_rows,
            "policy": self.policy.as_dict(),
        }
        run_id = report.run_id if report is not None else None
        if now > clock + MAX_CLOCK_SKEW:
            decision = self._from_the_future(reasons, run_id, now, clock)
            decision = self._record(decision, {**context, "requested_at": iso_utc(now)}, clock)
        else:
            try:
                with self._locked():
                    decision = self._decide_from_log(reasons, run_id, now)
                    decision = self._record(decision, context, now)
            except (AuditLogUnreadable, OSError) as exc:
                decision = self._unreadable(reasons, run_id, now, exc)
                decision = self._record(decision, context, now)
        if decision.alert is not None and self._notify is not None:
            alert = decision.alert
            self._notify(
                kind=alert.kind,
                severity=alert.severity, title=alert.title, text=alert.text, fields=alert.fields
            )
        return decision

    def _reasons(
        self, report: DriftReport | None, new_labelled_rows: int
    ) -> tuple[tuple[RetrainReason, ...], dict[str, Any]]:
        reasons: list[RetrainReason] = []
        evidence: dict[str, Any] = {}
        if report is not None:
            evidence["drifted_features"] = [f.feature for f in report.drifted_features]
            evidence["drifted_share"] = round(report.drifted_share, 4)
            if report.data_drift:
                reasons.append(RetrainReason.DATA_DRIFT)
            if report.prediction_drift:
                reasons.append(RetrainReason.PREDICTION_DRIFT)
            if report.performance is not None:
                evidence["pr_auc_drop"] = report.performance.statistic
                # The policy's tolerance decides, whatever threshold the report was run with.
                if report.performance.statistic > self.policy.performance_drop:
                    reasons.append(RetrainReason.PERFORMANCE_DROP)
        if new_labelled_rows >= self.policy.min_new_labelled_rows:
            reasons.append(RetrainReason.NEW_LABELLED_ROWS)
        return tuple(reasons), evidence

    def _decide_from_log(
        self, reasons: tuple[RetrainReason, ...], run_id: str | None, now: datetime
    ) -> RetrainDecision:
        records = list(self.audit_log.records())
        triggers = sorted(r.event_ts.astimezone(UTC) for r in records if r.kind == TRIGGERED)
        repairs = [
            r.event_ts.astimezone(UTC) for r in records
            if r.kind == REPAIRED and now - _DAY < r.event_ts.astimezone(UTC) <= now
        ]
        last = triggers[-1] if triggers else None
        recent = [t for t in triggers if t > now - _DAY]
        blocked: list[BlockedBy] = []
        waits: list[datetime] = []
        if repairs:
            # The repaired damage may have hidden triggers: assume a full day's worth.
            blocked.append(BlockedBy.AUDIT_REPAIR)
            waits.append(max(repairs) + _DAY)
        cooldown = timedelta(hours=self.policy.cooldown_hours)
        if last is not None and now < last + cooldown:
            blocked.append(BlockedBy.COOLDOWN)
            waits.append(last + cooldown)
        if len(recent) >= self.policy.max_per_day:
            blocked.append(BlockedBy.DAILY_LIMIT)
            # Room opens when enough of the last 24 hours' triggers have aged out.
            waits.append(recent[len(recent) - self.policy.max_per_day] + _DAY)
        next_allowed = max(waits) if waits else None
        common: dict[str, Any] = {
            "reasons": reasons,
            "decided_at": now,
            "drift_run_id": run_id,
            "last_triggered_at": last,
            "triggered_last_24h": len(recent),
            "next_allowed_at": next_allowed,
        }
        why = ", ".join(_REASON_TEXT[r] for r in reasons)
        if not reasons:
            return RetrainDecision(
                retrain=False, blocked_by=(), detail="no reason to retrain", **common
            )
        if blocked:
            assert next_allowed is not None, "every block has a wait"
            limits = " and ".join(_BLOCK_TEXT[b] for b in blocked)
            detail = (
                f"retraining wanted ({why}) but blocked by {limits} until {iso_utc(next_allowed)}"
            )
            alert = None
            if BlockedBy.DAILY_LIMIT in blocked:
                # A cooldown is routine; reaching the daily cap is worth a human's attention.
                alert = AlertMessage(
                    "warning",
                    "Retraining held back by the daily limit",
                    detail,
                    {"next allowed": iso_utc(next_allowed), "drift run": run_id or "-"},
                )
            return RetrainDecision(
                retrain=False, blocked_by=tuple(blocked), detail=detail, alert=alert, **common
            )
        detail = f"retraining triggered: {why}"
        alert = AlertMessage(
            "info",
            "Retraining triggered",
            detail,
            {"reasons": ", ".join(reasons), "drift run": run_id or "-"},
        )
        return RetrainDecision(retrain=True, blocked_by=(), detail=detail, alert=alert, **common)

    def _unreadable(
        self,
        reasons: tuple[RetrainReason, ...],
        run_id: str | None,
        now: datetime,
        error: Exception,
    ) -> RetrainDecision:
        damaged = isinstance(error, AuditLogDamaged)
        state = "damaged" if damaged else "unreadable"
        if damaged:
            detail = (
                f"retraining blocked: the audit log's record chain is broken, so the cooldown "
                f"and daily limit cannot be trusted ({error})"
            )
        elif isinstance(error, _Unwritable):
            state = "not writable"
            detail = (
                f"retraining blocked: the trigger could not be recorded ({error}), and a "
                "trigger the log does not hold would escape the cooldown; free space on the "
                "volume of the data home"
            )
        else:
            detail = (
                f"retraining blocked: the audit log cannot be read, so the cooldown and daily "
                f"limit cannot be checked ({error}); fix the file or its permissions, then run "
                "`tradewatch audit verify`"
            )
        log.error("%s", detail)
        return RetrainDecision(
            retrain=False,
            reasons=reasons,
            blocked_by=(BlockedBy.AUDIT_LOG_UNREADABLE,),
            decided_at=now,
            detail=detail,
            drift_run_id=run_id,
            alert=AlertMessage(
                "critical",
                f"Retraining blocked: audit log {state}",
                detail,
                {"audit log": str(self.audit_log.directory), "drift run": run_id or "-"},
                kind=AlertKind.AUDIT_LOG_DAMAGED,
            ),
        )

    def _from_the_future(
        self,
        reasons: tuple[RetrainReason, ...],
        run_id: str | None,
        now: datetime,
        clock: datetime,
    ) -> RetrainDecision:
        detail = (
            f"retraining blocked: the decision is dated {iso_utc(now)}, "
            f"{ahead_text(now - clock)} ahead of this machine's clock ({iso_utc(clock)}); a "
            "trigger recorded at that time would hold the cooldown and daily limit until then. "
            "Check the clock (NTP) of the machine or the time passed to the check"
        )
        log.error("%s", detail)
        return RetrainDecision(
            retrain=False,
            reasons=reasons,
            blocked_by=(BlockedBy.FUTURE_TIMESTAMP,),
            decided_at=clock,
            detail=detail,
            drift_run_id=run_id,
            alert=AlertMessage(
                "critical",
                "Retraining blocked: decision dated in the future",
                detail,
                {"requested at": iso_utc(now), "clock": iso_utc(clock),
                 "drift run": run_id or "-"},
                kind=AlertKind.AUDIT_LOG_DAMAGED,
            ),
        )

    def _record(
        self, decision: RetrainDecision, context: dict[str, Any], now: datetime
    ) -> RetrainDecision:
        kind = TRIGGERED if decision.retrain else SKIPPED
        try:
            record = self.audit_log.append(kind, {**decision.as_payload(), **context}, now=now)
        except (OSError, AuditLogUnreadable) as exc:
            if decision.retrain:
                # A trigger the log does not hold would escape the cooldown: do not retrain.
                raise _Unwritable(f"cannot append to the audit log: {exc}") from exc
            log.error("retraining decision not recorded in the audit log: %s", exc)
            return decision
        return replace(decision, audit_event_id=record.event_id)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        directory = self.audit_log.directory
        if directory.exists() and not directory.is_dir():
            raise AuditLogUnreadable(f"audit log {directory} is not a directory")
        directory.mkdir(parents=True, exist_ok=True)
        with open(directory / _LOCK_NAME, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


class _Unwritable(AuditLogUnreadable):
    """A trigger could not be appended to the audit log."""


_REASON_TEXT = {
    RetrainReason.DATA_DRIFT: "data drift",
    RetrainReason.PREDICTION_DRIFT: "prediction drift",
    RetrainReason.PERFORMANCE_DROP: "PR-AUC drop",
    RetrainReason.NEW_LABELLED_ROWS: "new labelled rows",
}
_BLOCK_TEXT = {
    BlockedBy.COOLDOWN: "the cooldown",
    BlockedBy.DAILY_LIMIT: "the daily limit",
    BlockedBy.AUDIT_LOG_UNREADABLE: "an unreadable audit log",
    BlockedBy.AUDIT_REPAIR: "the day after an audit log repair",
    BlockedBy.FUTURE_TIMESTAMP: "a decision dated in the future",
}


def _iso_or_none(moment: datetime | None) -> str | None:
    return None if moment is None else iso_utc(moment)
