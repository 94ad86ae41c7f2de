"""The kinds of alert Tradewatch can raise: one name per thing an operator must know.

Every alert names its kind, so that the webhook message, the audit log and the runbook agree.
Add a member here (and a runbook entry) before raising a new kind of alert.
"""

from __future__ import annotations

from enum import StrEnum


class AlertKind(StrEnum):
    """What an alert is about; its value is written to the audit log and the webhook."""

    DRIFT = "drift"
    """Input, prediction or performance drift over the thresholds."""
    RETRAINING = "retraining"
    """A retraining decision that needs attention (triggered, or held back by the daily limit)."""
    GATE = "gate"
    """The promotion gate could not judge, or rejected for a reason an operator must see."""
    ROLLBACK = "rollback"
    """The champion was moved back to the previous version."""
    QUALITY_CRITICAL = "quality_critical"
    """A critical data-quality expectation failed: training, promotion and scoring stopped."""
    QUALITY_WARNING = "quality_warning"
    """A warning-level data-quality expectation failed; the run went on."""
    DBT_BUILD_FAILED = "dbt_build_failed"
    """`dbt build` failed (a model or a test) after its retries: the warehouse is not current."""
    PROMOTION = "promotion"
    """The gate promoted a challenger: a new champion scores from now on."""
    REJECTION = "rejection"
    """The gate kept the champion and rejected the challenger (it stays as the shadow)."""
    FEED_SILENT = "feed_silent"
    """A feed delivered nothing for the configured minutes while its market was open; or a
    market-data connection delivered nothing, not even an answer to a ping, for longer than its
    read-idle timeout (a half-open connection, or a feed that stopped sending): the collector
    dropped it and reconnects."""
    LANDING_FAILED = "landing_failed"
    """The collector cannot write landed files (disk full, read-only or failing volume): it
    stopped reading the feed, holds what it received in memory and retries with backoff.
    Free space or fix the volume; trades the feed sends meanwhile are not received."""
    AUDIT_LOG_DAMAGED = "audit_log_damaged"
    """The audit log's record chain is broken (a file truncated, deleted, reordered or edited,
    a record dated in the future) or cannot be read: decisions that depend on it (the
    retraining cooldown and daily limit) are blocked until `tradewatch audit repair`."""
    ANALYSTS_PUBLISH_FAILED = "analysts_publish_failed"
    """The build succeeded but the analysts' database could not be published after its retries
    (disk full, an unreadable warehouse or dbt manifest): analysts keep reading the previous
    copy, which grows stale; the pipeline goes on."""
    MODEL_INTEGRITY = "model_integrity"
    """A registered model's artifacts do not match the content hash recorded when it was
    registered (or carry none): Tradewatch refused to load it, so scoring, drift or the gate
    could not use it. Someone or something changed the model store."""
    TRAINING_REFUSED = "training_refused"
    """A training window had fewer trusted labels (analyst decisions, the simulator's answer
    key) or trusted anomalous trades than training.min_trusted_labels / min_trusted_positives:
    nothing was trained, registered or promoted. Rule labels never count (no circular
    training); review flags with `tradewatch review` or import analyst labels."""
