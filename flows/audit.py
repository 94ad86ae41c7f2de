"""`tradewatch audit verify|repair`: check the audit log's record chain, and repair it on record.

`verify` prints what it found and exits 1 while the chain is damaged (retraining is blocked
meanwhile). `repair --reason TEXT` is the documented way out: it appends an `audit_repaired`
record naming the operator, the reason and every problem it acknowledges, and re-anchors the
chain. Nothing is deleted or rewritten; automatic retraining then waits 24 hours, because the
damage may have hidden triggers.
"""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

from flows.config import Settings
from ml.audit import AuditLog, AuditVerification

EXIT_OK, EXIT_DAMAGED = 0, 1


def audit_log(settings: Settings) -> AuditLog:
    """The durable audit log under <home>/monitoring/audit."""
    return AuditLog(settings.paths.audit)


def _print(verification: AuditVerification, console: Console) -> None:
    console.print(escape(verification.summary()))
    for problem in verification.problems:
        console.print(f"  [red]problem[/] {escape(problem.text)}")
    for file, line in verification.torn_lines:
        console.print(
            f"  [dim]torn line skipped: {escape(file)} line {line} (never acknowledged)[/]"
        )


def run_audit_verify(settings: Settings, *, console: Console | None = None) -> int:
    """Verify the chain; 0 when intact, 1 when damaged."""
    console = console or Console()
    log = audit_log(settings)
    verification = log.verify()
    _print(verification, console)
    if not verification.intact:
        console.print(
            "the retraining limits cannot be trusted until this is repaired: find out what "
            "happened, then run `tradewatch audit repair --reason \"...\"`"
        )
        return EXIT_DAMAGED
    return EXIT_OK


def run_audit_repair(
    settings: Settings, *, reason: str, operator: str | None = None,
    console: Console | None = None,
) -> int:
    """Acknowledge the standing problems in an `audit_repaired` record; 0 when done or intact."""
    console = console or Console()
    log = audit_log(settings)
    record = log.repair(reason=reason, operator=operator)
    if record is None:
        console.print(escape(log.verify().summary()) + ": nothing to repair")
        return EXIT_OK
    problems = record.payload["problems"]
    console.print(
        f"audit log repaired by {escape(record.payload['operator'])}: {len(problems)} problem(s) "
        f"acknowledged in record seq {record.seq} ({record.event_id})"
    )
    for problem in problems:
        console.print(f"  acknowledged: {escape(problem['text'])}")
    console.print(
        "automatic retraining resumes 24 hours after this repair (`tradewatch train` works now)"
    )
    _print(log.verify(), console)
    return EXIT_OK
