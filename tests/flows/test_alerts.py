"""Alerts reach a real webhook server on 127.0.0.1 (retrying when it fails), always land in
the audit log, and never reveal the webhook URL."""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from flows.alerts import AlertError, AlertSender, alert_sender, send_drift_alert
from flows.config import DEFAULT_CONFIG, load_settings
from ml.audit import AuditLog
from ml.drift import DriftReport, FeatureDrift
from ml.drift_windows import TimeWindow
from ml.retraining import BlockedBy, RetrainingTrigger

SECRET = "s3cr3t-Fake-Token-9f8e7d6c"
ENV = "TRADEWATCH_WEBHOOK_URL"


@dataclass
class Webhook:
    """A Slack-like webhook: answers each request with the next scripted status."""

    statuses: list[int]
    delay_seconds: float = 0.0
    # Seconds to hold the answer of each request in turn (then delay_seconds for the rest).
    delays: list[float] = field(default_factory=list)
    received: list[dict] = field(default_factory=list)
    keys: list[str | None] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    url: str = ""


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook(statuses=[200])

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server API
            body = self.rfile.read(int(self.headers["Content-Length"]))
            hook.received.append(json.loads(body))
            hook.paths.append(self.path)
            hook.keys.append(self.headers.get("Idempotency-Key"))
            delay = hook.delays.pop(0) if hook.delays else hook.delay_seconds
            if delay:
                hook.release.wait(delay)
            status = hook.statuses.pop(0) if len(hook.statuses) > 1 else hook.statuses[0]
            self.send_response(status)
            if status == 429:
                self.send_header("Retry-After", "0")
            self.end_headers()
            self.wfile.write(b"ok" if status == 200 else b"error")

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.block_on_close = False
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    hook.url = f"http://127.0.0.1:{server.server_port}/services/T0001/B0001/{SECRET}"
    try:
        yield hook
    finally:
        hook.release.set()
        server.shutdown()
        server.server_close()


@pytest.fixture
def audit(tmp_path) -> AuditLog:
    return AuditLog(tmp_path / "monitoring" / "audit")


def sender(audit: AuditLog, url: str | None, **kwargs) -> AlertSender:
    options = {"timeout_seconds": 2.0, "retries": 3, "backoff_seconds": 0.01}
    return AlertSender(audit, environ={ENV: url} if url else {}, **(options | kwargs))


def audit_text(audit: AuditLog) -> str:
    return "".join(p.read_text() for p in sorted(audit.directory.glob("*.ndjson")))


def assert_secret_kept(audit: AuditLog, caplog, *things) -> None:
    assert SECRET not in audit_text(audit)
    assert SECRET not in caplog.text
    for thing in things:
        assert SECRET not in repr(thing) and SECRET not in str(thing)


@pytest.fixture(autouse=True)
def debug_logging_and_no_proxy(caplog, monkeypatch):
    # Everything any library logs is captured: the URL must not be in it even at DEBUG.
    caplog.set_level(logging.DEBUG)
    # The webhook server is on 127.0.0.1: a proxy from the CI environment must not intercept.
    for name in (
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
    ):
        monkeypatch.delenv(name, raising=False)


def test_an_alert_is_posted_as_slack_json_and_audited(webhook, audit, caplog):
    alerts = sender(audit, webhook.url)

    delivery = alerts.send(
        "warning", "Drift detected", "3 of 17 features drifted", {"run": "r1"}, kind="drift"
    )

    assert delivery.delivered and delivery.attempts == 1 and delivery.status == 200
    assert webhook.paths == [f"/services/T0001/B0001/{SECRET}"]
    (body,) = webhook.received
    assert body["text"] == "[WARNING] Drift detected: 3 of 17 features drifted"
    assert body["blocks"][0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": "[WARNING] Drift detected"},
    }
    assert body["blocks"][2]["fields"] == [
        {"type": "mrkdwn", "text": "*kind*\ndrift"},
        {"type": "mrkdwn", "text": "*run*\nr1"},
    ]
    (record,) = audit.records("alert")
    assert record.event_id == delivery.audit_event_id
    assert record.payload["delivered"] is True and record.payload["title"] == "Drift detected"
    assert record.payload["kind"] == "drift"
    assert record.payload["webhook_url_env"] == ENV
    assert_secret_kept(audit, caplog, delivery, alerts)


def test_a_webhook_that_fails_twice_then_succeeds_gets_the_alert(webhook, audit, caplog):
    webhook.statuses = [500, 503, 200]

    delivery = sender(audit, webhook.url).send(
        "critical", "Gate failed closed", "champion unreadable", kind="gate"
    )

    assert delivery.delivered and delivery.attempts == 3 and delivery.status == 200
    assert len(webhook.received) == 3
    assert webhook.received[0] == webhook.received[2]  # the same alert, resent
    assert audit.records("alert").__next__().payload["attempts"] == 3
    assert_secret_kept(audit, caplog, delivery)


def test_rate_limiting_is_retried_but_a_rejected_request_is_not(webhook, audit):
    webhook.statuses = [429, 200]
    assert sender(audit, webhook.url).send("info", "t", "x", kind="gate").attempts == 2

    webhook.statuses = [400]
    delivery = sender(audit, webhook.url).send("info", "t", "x", kind="gate")

    assert not delivery.delivered and delivery.attempts == 1 and delivery.error == "HTTP 400"


def test_a_server_that_keeps_failing_exhausts_the_retries_and_is_still_audited(
    webhook, audit, caplog
):
    webhook.statuses = [500]
    waits: list[float] = []

    delivery = sender(audit, webhook.url, backoff_seconds=0.5, sleep=waits.append).send(
        "warning", "Rollback", "champion moved back to v3", kind="rollback"
    )

    assert not delivery.delivered and delivery.attempts == 4 and delivery.error == "HTTP 500"
    assert waits == [0.5, 1.0, 2.0]  # exponential backoff between the four attempts
    (record,) = audit.records("alert")
    assert record.payload["delivered"] is False and record.payload["error"] == "HTTP 500"
    assert "not delivered" in caplog.text
    assert_secret_kept(audit, caplog, delivery)


def test_a_server_that_does_not_answer_times_out(webhook, audit, caplog):
    webhook.delay_seconds = 10.0

    delivery = sender(audit, webhook.url, timeout_seconds=0.3, retries=1).send(
        "critical", "Drift", "session_type drifted", kind="drift"
    )

    assert not delivery.delivered and delivery.attempts == 2
    assert delivery.error == "timed out after 0.3 s"
    assert len(webhook.received) == 2
    assert audit.records("alert").__next__().payload["error"] == "timed out after 0.3 s"
    assert_secret_kept(audit, caplog, delivery)


def test_a_post_retried_after_a_lost_answer_carries_the_same_alert_id(webhook, audit, caplog):
    # The server takes the first post but its answer comes too late: the retry is a second
    # post of the same alert. Both carry one id (header and footer) so it can be dropped.
    webhook.delays = [1.5]

    delivery = sender(audit, webhook.url, timeout_seconds=0.3, retries=2).send(
        "critical", "Landing failed", "disk full", kind="landing_failed"
    )

    assert delivery.delivered and delivery.attempts == 2
    assert len(webhook.received) == 2 and webhook.received[0] == webhook.received[1]
    assert webhook.keys == [delivery.alert_id, delivery.alert_id] and delivery.alert_id
    assert f"alert {delivery.alert_id}" in json.dumps(webhook.received[0])
    (record,) = audit.records("alert")
    assert record.payload["alert_id"] == delivery.alert_id
    # A second alert is a different alert: a different id.
    other = sender(audit, webhook.url).send("critical", "Landing failed", "disk full",
                                            kind="landing_failed")
    assert other.alert_id != delivery.alert_id and webhook.keys[-1] == other.alert_id
    assert_secret_kept(audit, caplog, delivery)


def test_an_unreachable_webhook_fails_after_its_retries(audit, caplog):
    with socket.socket() as probe:  # a port that was free a moment ago: nobody listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/services/T0001/B0001/{SECRET}"

    delivery = sender(audit, url, retries=2).send(
        "info", "Retraining triggered", "data drift", kind="retraining"
    )

    assert not delivery.delivered and delivery.attempts == 3
    assert delivery.error == "connection failed (ConnectionRefusedError)"
    assert len(list(audit.records("alert"))) == 1
    assert_secret_kept(audit, caplog, delivery)


def test_without_a_webhook_the_alert_goes_to_the_audit_log_only(audit, caplog):
    delivery = sender(audit, None).send(
        "info", "Retraining triggered", "data drift", kind="retraining"
    )

    assert delivery.channel == "audit_only" and not delivery.delivered
    assert delivery.attempts == 0 and delivery.error is None
    (record,) = audit.records("alert")
    assert record.payload["channel"] == "audit_only"
    assert "not delivered" not in caplog.text


def test_a_malformed_url_is_reported_without_quoting_it(audit, caplog):
    delivery = sender(audit, f"hooks.example/{SECRET}").send("info", "t", "x", kind="gate")

    assert not delivery.delivered and delivery.error == f"${ENV} is not an http(s) URL"
    assert_secret_kept(audit, caplog, delivery)


def test_bad_alerts_are_refused_before_anything_is_sent(audit):
    with pytest.raises(AlertError, match="severity must be one of"):
        sender(audit, None).send("urgent", "t", "x", kind="gate")
    with pytest.raises(AlertError, match="unknown alert kind 'weather'"):
        sender(audit, None).send("info", "t", "x", kind="weather")
    assert list(audit.records()) == []


def test_the_sender_is_wired_from_settings(tmp_path, webhook):
    settings = load_settings(DEFAULT_CONFIG, environ={"TRADEWATCH_HOME": str(tmp_path)})

    alerts = alert_sender(settings, environ={settings.alerts.webhook_url_env: webhook.url})
    delivery = alerts.send("info", "hello", "from settings", kind="drift")

    assert delivery.delivered
    assert alerts.audit_log.directory == tmp_path / "monitoring" / "audit"
    assert alerts.retries == settings.alerts.retries
    assert SECRET not in repr(alerts)


def test_a_trigger_with_a_damaged_audit_log_alerts_through_the_webhook(webhook, audit, caplog):
    audit.append("retrain_triggered", {"reasons": ["data_drift"]})
    (damaged,) = audit.directory.glob("audit-*.ndjson")
    damaged.write_text('{"event_id": "inserted by hand"}' + "\n" + damaged.read_text())
    alerts = sender(audit, webhook.url)

    decision = RetrainingTrigger(audit, notify=alerts.send).decide(new_labelled_rows=10_000)

    assert not decision.retrain and decision.blocked_by == (BlockedBy.AUDIT_LOG_UNREADABLE,)
    (body,) = webhook.received
    assert body["text"].startswith("[CRITICAL] Retraining blocked: audit log damaged")
    lines = [json.loads(line) for line in damaged.read_text().splitlines()[1:]]
    assert [line["kind"] for line in lines] == ["retrain_triggered", "retrain_skipped", "alert"]
    assert lines[-1]["payload"]["delivered"] is True
    assert_secret_kept(audit, caplog, decision)


def test_a_drift_alert_names_the_drifted_features_and_a_quiet_report_sends_none(webhook, audit):
    window = TimeWindow(datetime(2024, 3, 1, tzinfo=UTC), datetime(2024, 3, 8, tzinfo=UTC))

    def report(*rows: FeatureDrift) -> DriftReport:
        return DriftReport("run-9", window.end, window, window, rows)

    shifted = FeatureDrift("volume_zscore", "numeric", "psi", 1.234, 0.2, True, 100, 100)
    steady = FeatureDrift("rsi_14", "numeric", "psi", 0.01, 0.2, False, 100, 100)
    alerts = sender(audit, webhook.url)

    assert send_drift_alert(alerts, report(steady)) is None
    delivery = send_drift_alert(alerts, report(shifted, steady), html_report=Path("r.html"))

    assert delivery.delivered
    (body,) = webhook.received
    assert body["text"] == "[WARNING] Drift detected: Drifted: volume_zscore (psi 1.234)."
    assert {"type": "mrkdwn", "text": "*drifted share*\n50% of input features"} in body["blocks"][
        2
    ]["fields"]
    assert [r.payload["title"] for r in audit.records("alert")] == ["Drift detected"]


def test_a_rejection_alert_gives_the_primary_metric_both_values_and_the_interval(webhook, audit):
    from flows.alerts import send_gate_outcome_alert
    from ml.gate import GateDecision
    from ml.metrics import Difference

    comparison = Difference(
        metric="event_average_precision", champion=0.905, challenger=0.912, difference=0.007,
        low=-0.011, high=0.026, confidence=0.9, resamples=1000, blocks=30, block_minutes=60.0,
    )
    decision = GateDecision(
        decision="reject", reason="the interval's lower bound -0.0110 does not clear +0.01",
        reason_code="not_better", challenger_version="3", champion_version="2",
        challenger_metrics={"event_average_precision": 0.912},
        champion_metrics={"event_average_precision": 0.905}, test_window_start=None,
        test_window_end=None, checks={}, alert=None, audit_event_id="g-1", events=240,
        comparison=comparison,
    )

    delivery = send_gate_outcome_alert(sender(audit, webhook.url), decision)

    assert delivery.delivered
    (record,) = audit.records("alert")
    assert record.payload["kind"] == "rejection"
    assert (
        "event_average_precision: challenger 0.912 vs champion 0.905, difference +0.007 "
        "(90% interval -0.011 … +0.026, 240 events) → reject"
    ) in record.payload["text"]
    assert record.payload["fields"]["difference"] == "+0.007 (90% interval -0.011 … +0.026)"
    # A decision the gate already alerted on (failing closed) sends no second alert.
    closed = GateDecision(**{**decision.__dict__, "alert": "cannot compare alert_precision"})
    assert send_gate_outcome_alert(sender(audit, webhook.url), closed) is None
