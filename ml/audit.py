"""The durable audit log: append-only newline-delimited JSON files, one per UTC day.

Every decision that changes what the platform does (gate decisions, promotions, rollbacks,
retraining triggers, alerts) is appended here. dbt's monitoring models read these files, and
the retraining trigger reads them back to enforce its cooldown and daily limit.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.datahome import AUDIT_EVENTS


class AuditLogUnreadable(RuntimeError):
    """The audit log exists but cannot be read or parsed: callers must fail closed."""


@dataclass(frozen=True)
class AuditRecord:
    """One audit event."""

    event_id: str
    event_ts: datetime
    kind: str
    payload: dict[str, Any]

    def to_json(self) -> str:
        """One line of the audit file (core.datahome.AUDIT_EVENTS)."""
        return json.dumps(
            AUDIT_EVENTS.record({
                "event_id": self.event_id,
                "event_ts": self.event_ts.astimezone(UTC).isoformat(timespec="milliseconds"),
                "kind": self.kind,
                "payload": self.payload,
            }),
            sort_keys=True,
            default=str,
        )


class AuditLog:
    """Append-only audit log under `directory` (e.g. data/monitoring/audit)."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)

    def append(
        self, kind: str, payload: dict[str, Any], *, now: datetime | None = None
    ) -> AuditRecord:
        """Append one event and fsync it before returning."""
        when = (now or datetime.now(UTC)).astimezone(UTC)
        record = AuditRecord(uuid.uuid4().hex, when, kind, payload)
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"audit-{when:%Y-%m-%d}.ndjson"
        line = (record.to_json() + "\n").encode()
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        return record

    def records(self, kind: str | None = None) -> Iterator[AuditRecord]:
        """Yield every record, oldest file first; raise AuditLogUnreadable on any damage.

        A missing directory means an empty log. A torn last line (a process killed mid-write)
        is the one tolerated damage: it is skipped, because it was never acknowledged.
        """
        if not self.directory.exists():
            return
        if not self.directory.is_dir():
            raise AuditLogUnreadable(f"audit log {self.directory} is not a directory")
        try:
            paths = sorted(self.directory.glob(AUDIT_EVENTS.pattern))
            for path in paths:
                lines = path.read_bytes().split(b"\n")
                for number, raw in enumerate(lines, start=1):
                    if not raw.strip():
                        continue
                    try:
                        data = json.loads(raw)
                        record = AuditRecord(
                            event_id=data["event_id"],
                            event_ts=datetime.fromisoformat(data["event_ts"]),
                            kind=data["kind"],
                            payload=data["payload"],
                        )
                    except (ValueError, KeyError, TypeError) as exc:
                        torn_tail = number == len(lines) and not raw.endswith(b"}")
                        if torn_tail:
                            continue
                        raise AuditLogUnreadable(
                            f"audit log {path.name} line {number} is damaged: {exc}"
                        ) from exc
                    if kind is None or record.kind == kind:
                        yield record
        except OSError as exc:
            raise AuditLogUnreadable(f"cannot read audit log {self.directory}: {exc}") from exc
