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
    """A retraining decision that needs attention (triggered, or blocked by its audit log)."""
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
    """A feed delivered nothing for the configured minutes while its market was open."""
