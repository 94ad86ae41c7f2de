"""The retraining trigger: retrains for a reason, never more often than the policy allows, and
remembers its triggers in the audit log across restarts and processes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.alerts import AlertKind
from ml.audit import AuditLog
from ml.drift import DriftReport, FeatureDrift
from ml.drift_windows import TimeWindow
from ml.retraining import (
    BlockedBy,
    RetrainingInputError,
    RetrainingPolicy,
    RetrainingTrigger,
    RetrainReason,
)

T0 = datetime(2024, 3, 8, 12, 0, tzinfo=UTC)
POLICY = RetrainingPolicy(
    performance_drop=0.05, min_new_labelled_rows=5000, cooldown_hours=6, max_per_day=4
)


def report(
    *, data: bool = False, prediction: bool = False, pr_auc_drop: float | None = None
) -> DriftReport:
    def row(feature, kind, name, value, threshold):
        return FeatureDrift(feature, kind, name, value, threshold, value > threshold, 1000, 500)

    rows = [
        row("volume_zscore", "numeric", "psi", 0.9 if data else 0.01, 0.2),
        row("session_type", "categorical", "js_distance", 0.02, 0.1),
        row("score", "prediction", "psi", 0.5 if prediction else 0.03, 0.2),
    ]
    if pr_auc_drop is not None:
        # The report's own threshold is deliberately loose: the policy must decide.
        rows.append(row("pr_auc", "performance", "pr_auc_drop", pr_auc_drop, 0.5))
    window = TimeWindow(T0 - timedelta(days=8), T0 - timedelta(days=1))
    return DriftReport("run-1", T0, window, TimeWindow(T0 - timedelta(days=1), T0), tuple(rows))


class Alerts(list):
    """Collects the alerts a trigger raises, as flows.alerts.AlertSender.send would get them."""

    def __call__(self, **alert) -> None:
        self.append(alert)


@pytest.fixture
def audit_dir(tmp_path) -> Path:
    return tmp_path / "monitoring" / "audit"


def trigger(audit_dir: Path, alerts: Alerts | None = None, policy=POLICY) -> RetrainingTrigger:
    """A fresh trigger and audit log each time, as a new process would have."""
    return RetrainingTrigger(AuditLog(audit_dir), policy, notify=alerts)


def kinds(audit_dir: Path) -> list[str]:
    return [r.kind for r in AuditLog(audit_dir).records()]


def test_no_reason_means_no_retraining_and_a_skipped_record(audit_dir):
    alerts = Alerts()

    decision = trigger(audit_dir, alerts).decide(report(), new_labelled_rows=10, now=T0)

    assert not decision.retrain and decision.reasons == () and decision.blocked_by == ()
    assert kinds(audit_dir) == ["retrain_skipped"]
    assert alerts == []


def test_data_drift_triggers_retraining_records_it_and_alerts(audit_dir):
    alerts = Alerts()

    decision = trigger(audit_dir, alerts).decide(report(data=True), now=T0)

    assert decision.retrain and decision.reasons == (RetrainReason.DATA_DRIFT,)
    (record,) = AuditLog(audit_dir).records("retrain_triggered")
    assert record.event_id == decision.audit_event_id
    assert record.payload["reasons"] == ["data_drift"]
    assert record.payload["drifted_features"] == ["volume_zscore"]
    assert record.payload["drift_run_id"] == "run-1"
    assert record.payload["policy"]["cooldown_hours"] == 6
    assert [a["severity"] for a in alerts] == ["info"]
    assert alerts[0]["title"] == "Retraining triggered"


@pytest.mark.parametrize(
    ("check", "reason"),
    [
        ({"report": report(prediction=True)}, RetrainReason.PREDICTION_DRIFT),
        ({"report": report(pr_auc_drop=0.06)}, RetrainReason.PERFORMANCE_DROP),
        ({"new_labelled_rows": 5000}, RetrainReason.NEW_LABELLED_ROWS),
    ],
)
def test_each_reason_alone_triggers(audit_dir, check, reason):
    decision = trigger(audit_dir).decide(now=T0, **check)

    assert decision.retrain and decision.reasons == (reason,)


@pytest.mark.parametrize(
    "check", [{"report": report(pr_auc_drop=0.05)}, {"new_labelled_rows": 4999}]
)
def test_just_below_a_threshold_does_not_trigger(audit_dir, check):
    assert not trigger(audit_dir).decide(now=T0, **check).retrain


def test_cooldown_holds_across_a_restart(audit_dir):
    assert trigger(audit_dir).decide(report(data=True), now=T0).retrain

    # A new process: new AuditLog, new trigger, same directory.
    held = trigger(audit_dir).decide(report(data=True), now=T0 + timedelta(hours=5, minutes=59))
    released = trigger(audit_dir).decide(report(data=True), now=T0 + timedelta(hours=6))

    assert not held.retrain and held.blocked_by == (BlockedBy.COOLDOWN,)
    assert held.reasons == (RetrainReason.DATA_DRIFT,)
    assert held.last_triggered_at == T0 and held.next_allowed_at == T0 + timedelta(hours=6)
    assert held.alert is None  # a cooldown is routine: audited, not alerted
    assert released.retrain
    assert kinds(audit_dir) == ["retrain_triggered", "retrain_skipped", "retrain_triggered"]


def test_daily_limit_holds_across_restarts_in_a_rolling_24_hours(audit_dir):
    policy = RetrainingPolicy(cooldown_hours=0, max_per_day=4)
    times = [T0 + timedelta(hours=h) for h in (0, 1, 2, 3)]
    for moment in times:
        assert trigger(audit_dir, policy=policy).decide(report(data=True), now=moment).retrain
    alerts = Alerts()

    fifth = trigger(audit_dir, alerts, policy).decide(
        report(data=True), now=T0 + timedelta(hours=23)
    )
    later = trigger(audit_dir, policy=policy).decide(
        report(data=True), now=T0 + timedelta(hours=24, seconds=1)
    )

    assert not fifth.retrain and fifth.blocked_by == (BlockedBy.DAILY_LIMIT,)
    assert fifth.triggered_last_24h == 4
    assert fifth.next_allowed_at == T0 + timedelta(hours=24)
    assert [a["severity"] for a in alerts] == ["warning"]
    assert later.retrain  # the first trigger aged out of the window


# A separate process that decides on the same audit directory. It imports only the trigger
# and its audit log (no pandas/scikit-learn), and has a reason to retrain: enough new labels.
DECIDE_IN_ANOTHER_PROCESS = """
import json, os, sys, time
from datetime import datetime
from core.alerts import AlertKind
from ml.audit import AuditLog
from ml.retraining import RetrainingPolicy, RetrainingTrigger
directory, now, start_line = sys.argv[1], datetime.fromisoformat(sys.argv[2]), sys.argv[3]
if start_line != "-":  # racing: say we are ready, then wait for the start signal
    open(os.path.join(start_line, f"ready-{os.getpid()}"), "w").close()
    while not os.path.exists(os.path.join(start_line, "go")):
        time.sleep(0.0005)
policy = RetrainingPolicy(cooldown_hours=6, max_per_day=4, min_new_labelled_rows=5000)
decision = RetrainingTrigger(AuditLog(directory), policy).decide(new_labelled_rows=5000, now=now)
print(json.dumps(decision.as_payload()))
"""


def run_in_subprocess(audit_dir: Path, now: datetime) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", DECIDE_IN_ANOTHER_PROCESS, str(audit_dir), now.isoformat(), "-"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return json.loads(done.stdout)


def test_cooldown_holds_between_separate_processes(audit_dir):
    first = run_in_subprocess(audit_dir, T0)
    in_this_process = trigger(audit_dir).decide(report(data=True), now=T0 + timedelta(hours=1))
    after_cooldown = run_in_subprocess(audit_dir, T0 + timedelta(hours=2))

    assert first["retrain"] is True
    assert not in_this_process.retrain and in_this_process.last_triggered_at == T0
    assert after_cooldown["retrain"] is False
    assert after_cooldown["blocked_by"] == ["cooldown"]
    assert after_cooldown["last_triggered_at"] == "2024-03-08T12:00:00.000Z"


def test_racing_processes_trigger_only_once(audit_dir, tmp_path):
    start_line = tmp_path / "start"
    start_line.mkdir()
    racers = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                DECIDE_IN_ANOTHER_PROCESS,
                str(audit_dir),
                T0.isoformat(),
                str(start_line),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    while len(list(start_line.glob("ready-*"))) < len(racers):
        time.sleep(0.01)
    (start_line / "go").touch()
    outputs = [racer.communicate(timeout=120)[0] for racer in racers]

    assert sorted(json.loads(o)["retrain"] for o in outputs) == [False, False, False, True]
    assert kinds(audit_dir).count("retrain_triggered") == 1


def test_a_damaged_audit_log_blocks_retraining_and_alerts(audit_dir):
    trigger(audit_dir).decide(report(data=True), now=T0)
    (damaged,) = audit_dir.glob("audit-*.ndjson")
    # Complete JSON that is no audit record: written by hand, not torn by a killed writer.
    damaged.write_text('{"event_id": "inserted"}\n' + damaged.read_text())
    alerts = Alerts()

    decision = trigger(audit_dir, alerts).decide(report(data=True), now=T0 + timedelta(days=2))

    assert not decision.retrain
    assert decision.blocked_by == (BlockedBy.AUDIT_LOG_UNREADABLE,)
    assert decision.reasons == (RetrainReason.DATA_DRIFT,)  # it would have retrained
    assert f"{damaged.name} line 1" in decision.detail
    (alert,) = alerts
    assert alert["severity"] == "critical" and alert["kind"] == AlertKind.AUDIT_LOG_DAMAGED
    assert alert["title"] == "Retraining blocked: audit log damaged"
    # The refusal itself is still appended, chained after the last good record.
    tail = damaged.read_text().splitlines()[-1]
    assert '"kind": "retrain_skipped"' in tail and "audit_log_unreadable" in tail


def test_an_audit_log_path_that_is_not_a_directory_blocks_retraining(tmp_path):
    path = tmp_path / "audit"
    path.write_text("oops")
    alerts = Alerts()

    decision = trigger(path, alerts).decide(new_labelled_rows=10_000, now=T0)

    assert not decision.retrain and decision.blocked_by == (BlockedBy.AUDIT_LOG_UNREADABLE,)
    assert decision.audit_event_id is None
    assert [a["severity"] for a in alerts] == ["critical"]


def test_impossible_values_are_refused():
    with pytest.raises(RetrainingInputError, match="max_per_day"):
        RetrainingPolicy(max_per_day=0)
    with pytest.raises(RetrainingInputError, match="negative"):
        RetrainingTrigger(AuditLog("/nonexistent")).decide(new_labelled_rows=-1)
