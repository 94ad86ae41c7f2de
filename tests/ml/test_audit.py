"""The audit log behind the retraining limits: whole records or none, torn lines kept apart,
a chain that notices what went missing, no records from the future, and a repair on record."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import ml.audit
from core.alerts import AlertKind
from ml.audit import (
    HEAD_NAME,
    REPAIRED,
    AuditLog,
    AuditLogDamaged,
    AuditTimestampRejected,
)
from ml.retraining import BlockedBy, RetrainingPolicy, RetrainingTrigger
from tests.support.disk_faults import small_disk

T0 = datetime(2024, 3, 8, 12, 0, tzinfo=UTC)
POLICY = RetrainingPolicy(cooldown_hours=6, max_per_day=4, min_new_labelled_rows=100)


class Alerts(list):
    def __call__(self, **alert) -> None:
        self.append(alert)


def decide(directory: Path, now: datetime, alerts: Alerts | None = None):
    """A retraining check with a reason to retrain (enough new labels), as a new process."""
    return RetrainingTrigger(AuditLog(directory), POLICY, notify=alerts).decide(
        new_labelled_rows=1000, now=now
    )


def set_clock(monkeypatch: pytest.MonkeyPatch, moment: datetime) -> None:
    """This machine's clock reads `moment` (for the audit log: file names, future checks)."""

    class Clock(datetime):
        @classmethod
        def now(cls, tz=None):
            return moment if tz is not None else moment.replace(tzinfo=None)

    monkeypatch.setattr(ml.audit, "datetime", Clock)
    monkeypatch.setattr("ml.retraining.datetime", Clock)


def day_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("audit-*.ndjson"))


def lines_of(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_an_append_on_a_full_disk_fails_whole_and_leaves_no_fragment(monkeypatch):
    with small_disk(monkeypatch, size="1m") as disk:
        log = AuditLog(disk.path / "audit")
        log.append("gate_decision", {"decision": "promote"})
        (path,) = day_files(log.directory)
        before = path.read_bytes()
        disk.fill()

        # Larger than what is left: the kernel (or the injected fault) writes part of it.
        with pytest.raises(OSError):
            log.append("retrain_triggered", {"detail": "x" * 64 * 1024})

        assert path.read_bytes() == before  # cut back: no short record to read later
        disk.free()
        log.append("retrain_skipped", {})
        verification = log.verify()
        assert verification.intact and verification.torn_lines == []
        assert [r.kind for r in log.records()] == ["gate_decision", "retrain_skipped"]


def test_a_trigger_that_cannot_be_recorded_does_not_retrain_or_escape_the_cooldown(monkeypatch):
    with small_disk(monkeypatch, size="1m") as disk:
        directory = disk.path / "audit"
        assert decide(directory, T0).retrain
        disk.fill()
        alerts = Alerts()

        refused = decide(directory, T0 + timedelta(hours=7), alerts)

        assert not refused.retrain
        assert refused.blocked_by == (BlockedBy.AUDIT_LOG_UNREADABLE,)
        (alert,) = alerts
        assert alert["kind"] == AlertKind.AUDIT_LOG_DAMAGED
        assert alert["title"] == "Retraining blocked: audit log not writable"
        assert "No space left on device" in alert["text"] or "ENOSPC" in alert["text"] \
            or "[Errno 28]" in alert["text"]
        disk.free()
        # Space is back: the log is whole, and the limits are read from it as before.
        assert AuditLog(directory).verify().intact
        assert decide(directory, T0 + timedelta(hours=7, minutes=1)).retrain
        held = decide(directory, T0 + timedelta(hours=8))
        assert held.blocked_by == (BlockedBy.COOLDOWN,)


def test_a_torn_line_stays_apart_from_the_next_record(tmp_path):
    log = AuditLog(tmp_path / "audit")
    log.append("promotion", {"version": "1"})
    (path,) = day_files(log.directory)
    with path.open("a") as handle:  # a writer killed mid-line
        handle.write('{"event_id": "torn", "event_ts": "2024-03-08T15:0')

    AuditLog(log.directory).append("rollback", {"version": "1"})

    lines = lines_of(path)
    assert lines[1].startswith('{"event_id": "torn"') and lines[1].endswith("15:0")
    assert json.loads(lines[2])["kind"] == "rollback"
    verification = log.verify()
    assert verification.intact and verification.torn_lines == [(path.name, 2)]
    assert [r.kind for r in log.records()] == ["promotion", "rollback"]


def test_triggers_cut_from_the_end_of_the_log_are_detected_and_block_retraining(tmp_path):
    directory = tmp_path / "audit"
    assert decide(directory, T0).retrain
    (path,) = day_files(directory)
    # The case: the day file loses its trigger (truncated, restored from an old copy).
    path.write_text("")
    alerts = Alerts()

    decision = decide(directory, T0 + timedelta(hours=1), alerts)

    assert not decision.retrain  # it would have, one hour after a trigger it forgot
    assert decision.blocked_by == (BlockedBy.AUDIT_LOG_UNREADABLE,)
    assert "cut from the end" in decision.detail
    (alert,) = alerts
    assert alert["kind"] == AlertKind.AUDIT_LOG_DAMAGED and alert["severity"] == "critical"
    with pytest.raises(AuditLogDamaged):
        list(AuditLog(directory).records())


def test_a_deleted_day_file_breaks_the_chain(tmp_path, monkeypatch):
    directory = tmp_path / "audit"
    for day in range(3):
        set_clock(monkeypatch, T0 + timedelta(days=day))
        AuditLog(directory).append("retrain_triggered", {"day": day})
    first, middle, last = day_files(directory)
    assert [p.name for p in (first, middle, last)] == [
        "audit-2024-03-08.ndjson", "audit-2024-03-09.ndjson", "audit-2024-03-10.ndjson"
    ]

    middle.unlink()

    verification = AuditLog(directory).verify()
    (problem,) = verification.problems
    assert problem.file == last.name and problem.line == 1
    assert "expected seq 2, found 3" in problem.text


def test_reordered_records_break_the_chain(tmp_path):
    log = AuditLog(tmp_path / "audit")
    for n in range(4):
        log.append("alert", {"n": n})
    (path,) = day_files(log.directory)
    lines = lines_of(path)
    path.write_text("\n".join([lines[0], lines[2], lines[1], lines[3]]) + "\n")

    (problem,) = log.verify().problems

    assert problem.problem_id.startswith("order:") and problem.line == 3
    assert "seq 2 comes after seq 3 in its file: records were reordered" in problem.text


def test_an_edited_record_breaks_the_chain(tmp_path):
    directory = tmp_path / "audit"
    assert decide(directory, T0).retrain
    decide(directory, T0 + timedelta(hours=1))
    (path,) = day_files(directory)
    lines = lines_of(path)
    # Someone turns the trigger into a skip to get another retraining through.
    lines[0] = lines[0].replace('"retrain_triggered"', '"retrain_skipped"')
    path.write_text("\n".join(lines) + "\n")

    problems = AuditLog(directory).verify().problems

    assert [p.line for p in problems] == [2]
    assert "does not follow the record before it" in problems[0].text


def test_a_missing_head_is_detected_and_an_append_does_not_hide_it(tmp_path):
    log = AuditLog(tmp_path / "audit")
    log.append("alert", {})
    log.head_path.unlink()

    log.append("alert", {})  # alerts must still be recorded

    assert [p.problem_id for p in log.verify().problems] == ["head:missing"]


def test_repair_acknowledges_the_damage_on_record_and_holds_retraining_for_a_day(tmp_path):
    directory = tmp_path / "audit"
    assert decide(directory, T0).retrain
    (path,) = day_files(directory)
    path.write_text("")
    damaged = AuditLog(directory).verify().problems
    assert damaged

    repair = AuditLog(directory).repair(
        reason="day file restored from a backup", operator="ops", now=T0 + timedelta(hours=2)
    )

    assert repair is not None and repair.kind == REPAIRED
    assert repair.payload["operator"] == "ops"
    assert repair.payload["reason"] == "day file restored from a backup"
    assert repair.payload["acknowledged"] == [p.problem_id for p in damaged]
    log = AuditLog(directory)
    assert log.verify().intact and [r.kind for r in log.records()] == [REPAIRED]
    assert log.repair(reason="again", now=T0 + timedelta(hours=2)) is None  # nothing to do
    # The lost trigger could have been anything: automatic retraining waits a day.
    held = decide(directory, T0 + timedelta(hours=20))
    assert not held.retrain and held.blocked_by == (BlockedBy.AUDIT_REPAIR,)
    assert held.next_allowed_at == T0 + timedelta(hours=26)
    assert decide(directory, T0 + timedelta(hours=26)).retrain
    assert AuditLog(directory).verify().intact


def test_a_decision_dated_in_the_future_is_refused_with_an_alert(tmp_path):
    directory = tmp_path / "audit"
    ahead = datetime.now(UTC) + timedelta(days=30)
    with pytest.raises(AuditTimestampRejected, match="30.0 days ahead"):
        AuditLog(directory).append("retrain_triggered", {}, now=ahead)
    alerts = Alerts()

    decision = decide(directory, ahead, alerts)

    assert not decision.retrain and decision.blocked_by == (BlockedBy.FUTURE_TIMESTAMP,)
    (alert,) = alerts
    assert alert["kind"] == AlertKind.AUDIT_LOG_DAMAGED
    assert alert["title"] == "Retraining blocked: decision dated in the future"
    # The refusal is recorded at this machine's time, so it holds nothing back.
    (record,) = AuditLog(directory).records()
    assert record.kind == "retrain_skipped" and record.event_ts < ahead - timedelta(days=29)
    assert decide(directory, datetime.now(UTC)).retrain


def test_a_trigger_from_a_clock_30_days_ahead_is_damage_until_repaired(tmp_path, monkeypatch):
    directory = tmp_path / "audit"
    now = datetime.now(UTC).replace(microsecond=0)
    set_clock(monkeypatch, now + timedelta(days=30))  # a host whose clock ran ahead
    assert decide(directory, now + timedelta(days=30)).retrain
    monkeypatch.undo()  # the clock is right again
    alerts = Alerts()

    blocked = decide(directory, now, alerts)

    assert not blocked.retrain and blocked.blocked_by == (BlockedBy.AUDIT_LOG_UNREADABLE,)
    assert "ahead of the clock" in blocked.detail
    assert [a["kind"] for a in alerts] == [AlertKind.AUDIT_LOG_DAMAGED]
    AuditLog(directory).repair(reason="host clock was 30 days ahead; NTP fixed", now=now)
    # The future trigger no longer counts; the day after the repair, retraining is free again.
    log = AuditLog(directory)
    assert "retrain_triggered" not in [r.kind for r in log.records()]
    set_clock(monkeypatch, now + timedelta(hours=1))
    assert decide(directory, now + timedelta(hours=1)).blocked_by == (BlockedBy.AUDIT_REPAIR,)
    set_clock(monkeypatch, now + timedelta(hours=24, minutes=1))
    assert decide(directory, now + timedelta(hours=24, minutes=1)).retrain


def test_records_from_before_the_chain_are_read_and_the_chain_starts_after_them(tmp_path):
    directory = tmp_path / "audit"
    directory.mkdir()
    old = {"event_id": "e1", "event_ts": "2024-03-08T12:00:00.000+00:00",
           "kind": "retrain_triggered", "payload": {"retrain": True}}
    (directory / "audit-2024-03-08.ndjson").write_text(json.dumps(old) + "\n")

    log = AuditLog(directory)
    log.append("alert", {})

    assert log.verify().intact
    assert [(r.kind, r.seq) for r in log.records()] == [("retrain_triggered", None), ("alert", 1)]
    assert decide(directory, T0 + timedelta(hours=1)).blocked_by == (BlockedBy.COOLDOWN,)


APPEND_IN_ANOTHER_PROCESS = """
import sys
from ml.audit import AuditLog
log = AuditLog(sys.argv[1])
for n in range(40):
    log.append("alert", {"writer": sys.argv[2], "n": n})
"""


def test_concurrent_writers_keep_one_chain(tmp_path):
    directory = tmp_path / "audit"
    writers = [
        subprocess.Popen([sys.executable, "-c", APPEND_IN_ANOTHER_PROCESS, str(directory), str(w)])
        for w in range(4)
    ]
    assert [w.wait(timeout=120) for w in writers] == [0, 0, 0, 0]

    verification = AuditLog(directory).verify()

    assert verification.intact
    assert [r.seq for r in verification.records] == list(range(1, 161))
    head = json.loads((directory / HEAD_NAME).read_text())
    assert head["seq"] == 160
