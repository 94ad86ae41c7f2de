"""Alerts: a Slack-compatible JSON webhook with retries, and always the audit log.

The webhook URL is a secret (a Slack incoming-webhook URL carries its token in the path):
it is read from the environment variable named in settings.alerts.webhook_url_env at send
time, held only in a local variable while posting, and never written to a log line, the
audit log, an exception message or a repr. Errors are described by kind ("HTTP 500",
"timed out after 5 s"), not by the underlying exception text, which can quote the URL.
Without a URL configured the alert goes to the audit log only; that is not an error.

Delivery uses urllib from the standard library: it honours HTTP(S)_PROXY like any client,
and unlike urllib3 it logs nothing, so even DEBUG logging cannot print the URL.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import PurePath
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from core.alerts import AlertKind
from ml.audit import AuditLog

if TYPE_CHECKING:
    from expectations.results import ValidationSummary
    from flows.config import Settings
    from ml.drift import DriftReport
    from ml.gate import GateDecision

log = logging.getLogger(__name__)

Severity = Literal["info", "warning", "critical"]
SEVERITIES: tuple[str, ...] = ("info", "warning", "critical")
_EMOJI = {"info": ":information_source:", "warning": ":warning:", "critical": ":rotating_light:"}
# Slack's limits: header text 150 characters, section text 3000, 10 fields per section.
_HEADER_LIMIT = 150
_SECTION_LIMIT = 3000
_FIELDS_LIMIT = 10
# Worth another try: the server or the path to it may recover. Other 4xx will not.
_RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class AlertError(ValueError):
    """An alert was built wrongly (unknown severity, empty title)."""


@dataclass(frozen=True)
class AlertDelivery:
    """What happened to one alert. `error` never contains the webhook URL."""

    delivered: bool
    channel: Literal["webhook", "audit_only"]
    attempts: int
    status: int | None
    error: str | None
    audit_event_id: str | None
    alert_id: str | None = None


def slack_payload(
    severity: str,
    title: str,
    text: str,
    fields: Mapping[str, str] | None = None,
    alert_id: str | None = None,
) -> dict[str, Any]:
    """The webhook body: `text` for notifications and plain clients, `blocks` for Slack.

    `alert_id` goes into the footer: a post retried after a lost answer shows the same id.
    """
    label = f"[{severity.upper()}] {title}"
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": _clip(f"{label}", _HEADER_LIMIT)},
        },
        {"type": "section", "text": {"type": "mrkdwn", "text": _clip(text, _SECTION_LIMIT)}},
    ]
    if fields:
        items = list(fields.items())[:_FIELDS_LIMIT]
        blocks.append(
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": _clip(f"*{k}*\n{v}", 2000)} for k, v in items
                ],
            }
        )
    blocks.append(
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": f"{_EMOJI[severity]} tradewatch · {severity}"
                          + (f" · alert {alert_id}" if alert_id else "")}],
        }
    )
    return {"text": _clip(f"{label}: {text}", _SECTION_LIMIT), "blocks": blocks}


class AlertSender:
    """Sends alerts to the webhook named by an environment variable and to the audit log.

    `retries` is the number of extra attempts after the first; between attempts it waits
    backoff_seconds * 2**n (capped at max_backoff_seconds, or the server's Retry-After).
    `send` never raises for a delivery problem: an alert path must not break the flow that
    raises the alert. It returns what happened instead.
    """

    def __init__(
        self,
        audit_log: AuditLog,
        *,
        webhook_url_env: str = "TRADEWATCH_WEBHOOK_URL",
        timeout_seconds: float = 5.0,
        retries: int = 3,
        backoff_seconds: float = 0.5,
        max_backoff_seconds: float = 8.0,
        environ: Mapping[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not timeout_seconds > 0:
            raise AlertError("timeout_seconds must be > 0")
        if retries < 0:
            raise AlertError("retries cannot be negative")
        self.audit_log = audit_log
        self.webhook_url_env = webhook_url_env
        self.timeout_seconds = timeout_seconds
        self.retries = retries
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self._environ = os.environ if environ is None else environ
        self._sleep = sleep

    def __repr__(self) -> str:
        return (
            f"AlertSender(webhook_url_env={self.webhook_url_env!r}, "
            f"configured={bool(self._environ.get(self.webhook_url_env))}, "
            f"retries={self.retries}, timeout_seconds={self.timeout_seconds})"
        )

    def send(
        self,
        severity: str,
        title: str,
        text: str,
        fields: Mapping[str, str] | None = None,
        *,
        kind: AlertKind | str,
    ) -> AlertDelivery:
        """Post the alert (if a webhook is configured), then record it in the audit log."""
        try:
            kind = AlertKind(kind)
        except ValueError:
            raise AlertError(f"unknown alert kind {kind!r} (see core.alerts.AlertKind)") from None
        if severity not in SEVERITIES:
            raise AlertError(f"severity must be one of {', '.join(SEVERITIES)}, got {severity!r}")
        if not title.strip():
            raise AlertError("an alert needs a title")
        fields = {"kind": str(kind), **{str(k): str(v) for k, v in (fields or {}).items()}}
        # One id per alert, the same on every attempt: an answer lost after the server took the
        # post makes the retry a second post (a webhook has no exactly-once), and the id lets
        # the receiver (Idempotency-Key header) or the reader (footer, audit log) drop it.
        alert_id = uuid.uuid4().hex[:16]
        url = self._environ.get(self.webhook_url_env) or ""
        channel: Literal["webhook", "audit_only"]
        if not url:
            delivered, channel, attempts, status, error = False, "audit_only", 0, None, None
        else:
            channel = "webhook"
            body = json.dumps(slack_payload(severity, title, text, fields, alert_id)).encode()
            delivered, attempts, status, error = self._post(url, body, alert_id)
            if error is not None:
                error = _redact(error, url)
            if not delivered:
                log.warning(
                    "alert %r not delivered to the webhook in $%s after %d attempt(s): %s",
                    title,
                    self.webhook_url_env,
                    attempts,
                    error,
                )
        payload = {
            "alert_id": alert_id,
            "kind": str(kind),
            "severity": severity,
            "title": title,
            "text": text,
            "fields": fields,
            "channel": channel,
            "delivered": delivered,
            "attempts": attempts,
            "status": status,
            "error": error,
            "webhook_url_env": self.webhook_url_env,
        }
        try:
            audit_event_id = self.audit_log.append("alert", payload).event_id
        except OSError as exc:
            log.error("alert %r could not be written to the audit log: %s", title, exc)
            audit_event_id = None
        return AlertDelivery(
            delivered, channel, attempts, status, error, audit_event_id, alert_id
        )

    def _post(
        self, url: str, body: bytes, alert_id: str
    ) -> tuple[bool, int, int | None, str | None]:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return False, 0, None, f"${self.webhook_url_env} is not an http(s) URL"
        opener = urllib.request.build_opener(_RefuseRedirects)
        request = urllib.request.Request(
            url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "User-Agent": "tradewatch-alerts",
                "Idempotency-Key": alert_id,
            },
        )
        status: int | None = None
        error: str | None = None
        for attempt in range(1, self.retries + 2):
            retry_after: float | None = None
            try:
                with opener.open(request, timeout=self.timeout_seconds) as response:
                    response.read(4096)
                    return True, attempt, response.status, None
            except urllib.error.HTTPError as exc:
                status, error = exc.code, f"HTTP {exc.code}"
                retry_after = _retry_after(exc.headers.get("Retry-After"))
                exc.close()
                if exc.code not in _RETRYABLE_STATUS:
                    return False, attempt, status, error
            except Exception as exc:  # whatever broke is described by kind, never raised
                status, error = None, self._describe(exc)
            if attempt <= self.retries:
                wait = min(self.backoff_seconds * 2 ** (attempt - 1), self.max_backoff_seconds)
                if retry_after is not None:
                    wait = min(max(wait, retry_after), self.max_backoff_seconds)
                self._sleep(wait)
        return False, self.retries + 1, status, error

    def _describe(self, exc: BaseException) -> str:
        """A description of a delivery failure built from its type, never from its text."""
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        if isinstance(reason, TimeoutError | socket.timeout):
            return f"timed out after {self.timeout_seconds:g} s"
        if isinstance(reason, socket.gaierror):
            return "webhook host name could not be resolved"
        if isinstance(reason, OSError):
            return f"connection failed ({type(reason).__name__})"
        return f"delivery failed ({type(exc).__name__})"


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect would turn the POST into a body-less GET and report success: refuse it."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def alert_sender(settings: Settings, *, environ: Mapping[str, str] | None = None) -> AlertSender:
    """The sender configured by settings.alerts, auditing to <home>/monitoring/audit."""
    return AlertSender(
        AuditLog(settings.paths.audit),
        webhook_url_env=settings.alerts.webhook_url_env,
        timeout_seconds=settings.alerts.timeout_seconds,
        retries=settings.alerts.retries,
        environ=environ,
    )


def send_drift_alert(
    sender: AlertSender, report: DriftReport, *, html_report: PurePath | None = None
) -> AlertDelivery | None:
    """Alert what drifted: a warning, critical if performance dropped; None if nothing drifted."""
    drifted = report.drifted_features
    if not drifted:
        return None
    severity = "critical" if report.performance_drift else "warning"
    names = ", ".join(f"{f.feature} ({f.statistic_name} {f.statistic:.3f})" for f in drifted[:8])
    more = f" and {len(drifted) - 8} more" if len(drifted) > 8 else ""
    fields = {
        "drifted share": f"{report.drifted_share:.0%} of input features",
        "drift run": report.run_id,
    }
    if html_report is not None:
        fields["report"] = str(html_report)
    return sender.send(
        severity, "Drift detected", f"Drifted: {names}{more}.", fields, kind=AlertKind.DRIFT
    )


def failure_keys(summary: ValidationSummary) -> frozenset[tuple[str, str, str, str]]:
    """What failed in a quality run, as (suite, expectation, column, severity) keys."""
    return frozenset(
        (o.suite, o.expectation, o.column or "", o.severity)
        for o in (*summary.critical_failures, *summary.warning_failures)
    )


def send_quality_alert(
    sender: AlertSender,
    summary: ValidationSummary,
    *,
    stage: str | None = None,
    previous_failures: frozenset[tuple[str, str, str, str]] | None = None,
) -> AlertDelivery | None:
    """One alert per quality run that failed: quality_critical, else quality_warning.

    None when nothing failed, or when exactly the same expectations failed in the previous
    run (`previous_failures`): a state that persists is alerted once, when it starts.
    """
    critical, warnings = summary.critical_failures, summary.warning_failures
    if not critical and not warnings:
        return None
    if previous_failures is not None and failure_keys(summary) == previous_failures:
        log.info("quality run %s failed as the previous run did: not alerted again",
                 summary.run_id)
        return None
    worst = critical or warnings
    listed = "; ".join(o.describe() for o in worst[:5])
    more = f" and {len(worst) - 5} more" if len(worst) > 5 else ""
    fields = {
        "quality run": summary.run_id,
        "critical failures": str(len(critical)),
        "warning failures": str(len(warnings)),
    }
    if summary.data_docs_index is not None:
        fields["data docs"] = str(summary.data_docs_index)
    if critical:
        stopped = f" {stage} stopped." if stage else " Training, promotion and scoring stop."
        return sender.send(
            "critical", "Critical data-quality failure", f"{listed}{more}.{stopped}", fields,
            kind=AlertKind.QUALITY_CRITICAL,
        )
    return sender.send(
        "warning", "Data-quality warning", f"{listed}{more}. The run goes on.", fields,
        kind=AlertKind.QUALITY_WARNING,
    )


def send_dbt_failure_alert(sender: AlertSender, error: BaseException) -> AlertDelivery:
    """A failed `dbt build` (after its retries): the warehouse is not current."""
    return sender.send(
        "critical", "dbt build failed", str(error)[:_SECTION_LIMIT - 100],
        {"error": type(error).__name__}, kind=AlertKind.DBT_BUILD_FAILED,
    )


def send_publish_failure_alert(sender: AlertSender, error: BaseException) -> AlertDelivery:
    """The analysts' database was not published: analysts read a stale copy."""
    return sender.send(
        "warning", "Analysts' database not published", str(error)[:_SECTION_LIMIT - 100],
        {"error": type(error).__name__}, kind=AlertKind.ANALYSTS_PUBLISH_FAILED,
    )


def send_gate_outcome_alert(sender: AlertSender, decision: GateDecision) -> AlertDelivery | None:
    """A promotion (info) or a plain rejection (info); None when the gate alerted already."""
    if decision.alert:
        return None  # the gate sent its own (kind gate) alert for this decision
    fields = {
        "challenger": decision.challenger_version,
        "champion before": decision.champion_version or "none",
        "gate event": decision.audit_event_id,
    }
    if decision.comparison is not None:
        c = decision.comparison
        fields[c.metric] = f"{c.challenger:.3f} vs {c.champion:.3f}"
        fields["difference"] = (
            f"{c.difference:+.3f} ({c.confidence:.0%} interval {c.low:+.3f} … {c.high:+.3f})"
        )
    if decision.promote:
        return sender.send(
            "info", "New champion promoted",
            f"Version {decision.challenger_version} is the champion: {decision.summary()}",
            fields, kind=AlertKind.PROMOTION,
        )
    return sender.send(
        "info", "Challenger rejected",
        f"Version {decision.challenger_version} stays challenger (scored in shadow): "
        f"{decision.summary()}",
        fields, kind=AlertKind.REJECTION,
    )


def send_feed_silent_alert(
    sender: AlertSender, symbols: Mapping[str, str], minutes: Mapping[str, float]
) -> AlertDelivery:
    """Symbols (→ asset class) that delivered nothing while their market was open."""
    listed = ", ".join(
        f"{symbol} ({asset_class}, {minutes[symbol]:g} min)" for symbol, asset_class in
        symbols.items()
    )
    return sender.send(
        "critical", "Feed silent while the market is open",
        f"No trades landed for {listed}: check the collector and the feed.",
        {"symbols": ", ".join(symbols)}, kind=AlertKind.FEED_SILENT,
    )


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to the exponential backoff


def _redact(text: str, url: str) -> str:
    """Belt and braces: the descriptions above never quote the URL, but make sure."""
    parts = urlsplit(url)
    for secret in (url, parts.path, parts.query, parts.netloc):
        if secret and secret not in ("/",):
            text = text.replace(secret, "***")
    return text


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
