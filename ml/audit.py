"""The durable audit log: a hash chain of records in append-only NDJSON files, one per UTC day.

Every decision that changes what the platform does (gate decisions, promotions, rollbacks,
retraining triggers, alerts) is appended here. dbt's monitoring models read these files, and
the retraining trigger reads them back to enforce its cooldown and daily limit, so a record
that silently goes missing would let retraining escape its limits. Hence:

- **Complete writes.** A record is one `write` loop of the whole line, fsynced; a write that
  fails part-way (a full disk) is cut back to where it started and the append raises. An
  append never returns for a record that is not whole on disk.
- **Torn lines stay isolated.** A line torn by a killed writer is never glued to the next
  record: an append that finds the file not ending in a newline starts with one. Readers skip
  such fragments (they were never acknowledged) and count them.
- **A chain.** Each record carries `seq` (1, 2, 3, ... across files) and `prev`, the SHA-256
  of the previous record's line, so a deleted, truncated, edited or reordered record breaks
  the chain. The head file (`audit.head.json`) names the newest record, so a log cut at its
  end is detected too. Files are named after the UTC day of the append (the wall clock),
  whatever time the record itself states.
- **No records from the future.** An append dated more than MAX_CLOCK_SKEW ahead of this
  machine's clock is refused; a record already in the log dated ahead of the reader's clock
  (written by a machine with a wrong clock, or by hand) is damage.
- **Damage fails closed.** `records()` raises AuditLogDamaged while any problem stands, so
  decisions that depend on the log (the retraining limits) do not act on it. `verify()`
  reports without raising. `repair()` (the `tradewatch audit repair` command) appends an
  `audit_repaired` record naming the operator, the reason and every problem it acknowledges,
  and re-anchors the head; nothing is deleted or rewritten. Acknowledged future-dated records
  are left out of `records()`.

The chain detects accidents and casual edits; a writer with access to the directory can still
rewrite the whole log consistently. Records written before the chain existed (no `seq`) are
read as they are, and only before the first chained record.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import getpass
import hashlib
import json
import os
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from core.datahome import AUDIT_EVENTS

#: How far ahead of this machine's clock a record may be dated.
MAX_CLOCK_SKEW = timedelta(minutes=5)
#: The kind of the record `repair()` appends.
REPAIRED = "audit_repaired"
HEAD_NAME = "audit.head.json"
GENESIS = "0" * 64
_LOCK_NAME = ".audit.lock"
_FILE_GLOB = AUDIT_EVENTS.pattern
_TAIL_BYTES = 1 << 20


class AuditLogUnreadable(RuntimeError):
    """The audit log exists but cannot be read or trusted: callers must fail closed."""


class AuditLogDamaged(AuditLogUnreadable):
    """The record chain is broken; `problems` says where. Repair with `tradewatch audit repair`."""

    def __init__(self, message: str, problems: tuple[AuditProblem, ...] = ()) -> None:
        super().__init__(message)
        self.problems = problems


class AuditTimestampRejected(AuditLogUnreadable):
    """A record dated further ahead of this machine's clock than MAX_CLOCK_SKEW."""


@dataclass(frozen=True)
class AuditProblem:
    """One thing wrong with the log. `problem_id` is stable, so a repair can acknowledge it."""

    problem_id: str
    text: str
    file: str | None = None
    line: int | None = None

    def as_payload(self) -> dict[str, Any]:
        return {"id": self.problem_id, "text": self.text, "file": self.file, "line": self.line}


@dataclass(frozen=True)
class AuditRecord:
    """One audit event; `seq` and `prev` are None for records written before the chain."""

    event_id: str
    event_ts: datetime
    kind: str
    payload: dict[str, Any]
    seq: int | None = None
    prev: str | None = None

    def to_json(self) -> str:
        """One line of the audit file: core.datahome.AUDIT_EVENTS's columns (what dbt reads),
        plus the chain's `seq` and `prev` (read by this module only)."""
        data: dict[str, Any] = AUDIT_EVENTS.record({
            "event_id": self.event_id,
            "event_ts": self.event_ts.astimezone(UTC).isoformat(timespec="milliseconds"),
            "kind": self.kind,
            "payload": self.payload,
        })
        if self.seq is not None:
            data["seq"] = self.seq
            data["prev"] = self.prev
        return json.dumps(data, sort_keys=True, default=str)


@dataclass
class AuditVerification:
    """What `verify()` found: the readable records, what is wrong, what was acknowledged."""

    records: list[AuditRecord] = field(default_factory=list)
    problems: list[AuditProblem] = field(default_factory=list)
    acknowledged: list[AuditProblem] = field(default_factory=list)
    torn_lines: list[tuple[str, int]] = field(default_factory=list)
    files: int = 0
    last_seq: int | None = None

    @property
    def intact(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        """One line for people."""
        torn = f", {len(self.torn_lines)} torn line(s) skipped" if self.torn_lines else ""
        acknowledged = (
            f", {len(self.acknowledged)} earlier problem(s) acknowledged by a repair"
            if self.acknowledged else ""
        )
        state = "intact" if self.intact else f"DAMAGED ({len(self.problems)} problem(s))"
        return (
            f"audit log {state}: {len(self.records):,} records in {self.files} file(s)"
            f"{f', newest seq {self.last_seq}' if self.last_seq else ''}{torn}{acknowledged}"
        )


@dataclass(frozen=True)
class _Line:
    """One parsed chained or legacy record with where it is and the hash of its bytes."""

    record: AuditRecord
    digest: str
    file: str
    line: int

    @property
    def seq(self) -> int:
        """The record's place in the chain (asked of chained records only)."""
        assert self.record.seq is not None, "a legacy record has no place in the chain"
        return self.record.seq


def _digest(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def _parse(raw: bytes) -> AuditRecord:
    return _record_from(json.loads(raw))


def _record_from(data: Any) -> AuditRecord:
    if not isinstance(data, dict):
        raise TypeError(f"a JSON {type(data).__name__}, not an object")
    event_ts = datetime.fromisoformat(data["event_ts"])
    if event_ts.tzinfo is None:
        raise ValueError("event_ts has no UTC offset")
    payload = data["payload"]
    if not isinstance(data["event_id"], str) or not isinstance(data["kind"], str):
        raise TypeError("event_id and kind must be strings")
    if not isinstance(payload, dict):
        raise TypeError("payload must be an object")
    seq, prev = data.get("seq"), data.get("prev")
    if seq is not None and (type(seq) is not int or not isinstance(prev, str)):
        raise TypeError("seq must be an integer and prev a hash")
    return AuditRecord(data["event_id"], event_ts, data["kind"], payload, seq, prev)


def _write_all(fd: int, data: bytes) -> None:
    """os.write until every byte is written; a short write is retried, not ignored."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written <= 0:  # not expected from a regular file, but never loop forever
            raise OSError(errno.EIO, "write returned no progress")
        view = view[written:]


class AuditLog:
    """Append-only, hash-chained audit log under `directory` (e.g. data/monitoring/audit)."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)

    def __repr__(self) -> str:
        return f"AuditLog({str(self.directory)!r})"

    @property
    def head_path(self) -> Path:
        return self.directory / HEAD_NAME

    # ------------------------------------------------------------------ writing

    def append(
        self, kind: str, payload: dict[str, Any], *, now: datetime | None = None
    ) -> AuditRecord:
        """Append one event, whole and fsynced, chained to the newest record; return it.

        Raises OSError when the record cannot be written completely (nothing of it is left
        behind when the file can be cut back) and AuditTimestampRejected when `now` is more
        than MAX_CLOCK_SKEW ahead of this machine's clock.
        """
        clock = datetime.now(UTC)
        when = (now or clock).astimezone(UTC)
        if when > clock + MAX_CLOCK_SKEW:
            raise AuditTimestampRejected(
                f"refused to record {kind!r} dated {when.isoformat(timespec='seconds')}: "
                f"{ahead_text(when - clock)} ahead of this machine's clock (a record from the "
                "future would hold the retraining limits until then)"
            )
        self._ensure_directory()
        path = self.directory / f"audit-{clock:%Y-%m-%d}.ndjson"
        with self._locked(fcntl.LOCK_EX):
            seq, prev, anchored = self._predecessor(path)
            record = AuditRecord(uuid.uuid4().hex, when, kind, payload, seq + 1, prev)
            raw = record.to_json().encode()
            self._append_and_anchor(path, raw, record.seq if anchored else None)
        return record

    def _ensure_directory(self) -> None:
        if self.directory.exists() and not self.directory.is_dir():
            raise AuditLogUnreadable(f"audit log {self.directory} is not a directory")
        self.directory.mkdir(parents=True, exist_ok=True)

    def _append_and_anchor(self, path: Path, raw: bytes, head_seq: int | None) -> None:
        """Append `raw` as one line, fsynced, then move the head to it (unless `head_seq` is
        None); on any failure cut the file back to where it was, so the append fails whole."""
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            start = os.fstat(fd).st_size
            # A fragment left by a writer killed mid-line would glue itself to this record.
            torn_tail = start > 0 and os.pread(fd, 1, start - 1) != b"\n"
            try:
                _write_all(fd, (b"\n" if torn_tail else b"") + raw + b"\n")
                os.fsync(fd)
                if head_seq is not None:
                    self._write_head(head_seq, _digest(raw), path.name)
            except OSError:
                # No short record, and no record the head does not name, stays behind to be
                # read as damage (or, worse, as a record the caller thinks failed).
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, start)
                    os.fsync(fd)
                raise
        finally:
            os.close(fd)

    def _write_head(self, seq: int, digest: str, file: str) -> None:
        data = json.dumps({"seq": seq, "hash": digest, "file": file}).encode() + b"\n"
        temp = self.directory / f".{HEAD_NAME}.{os.getpid()}.tmp"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            try:
                _write_all(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temp, self.head_path)
        except BaseException:
            with contextlib.suppress(OSError):
                temp.unlink()
            raise
        dir_fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def _read_head(self) -> dict[str, Any] | None:
        """The head, None when there is none; AuditLogUnreadable when it is damaged."""
        try:
            head = json.loads(self.head_path.read_bytes())
            if type(head.get("seq")) is not int or not isinstance(head.get("hash"), str):
                raise ValueError("seq or hash missing")
            return head
        except FileNotFoundError:
            return None
        except (OSError, ValueError, AttributeError) as exc:
            raise AuditLogUnreadable(f"audit head {self.head_path} is damaged: {exc}") from exc

    def _predecessor(self, today: Path) -> tuple[int, str, bool]:
        """(seq, hash) to chain the next record from, and whether the head may move to it.

        The head is the anchor. A record that extends the head by exactly one (a writer died
        between its record and the head) is adopted. Without a usable head, a log that already
        holds chained records keeps its damage visible: the record chains from the highest one
        found, and the head stays missing until `tradewatch audit repair`.
        """
        try:
            head = self._read_head()
        except AuditLogUnreadable:
            head, damaged_head = None, True
        else:
            damaged_head = False
        if head is not None:
            files = self._files()
            for path in {today, *files[-1:]}:
                last = self._tail_record(path)
                if (
                    last is not None and last.seq == head["seq"] + 1
                    and last.record.prev == head["hash"]
                ):
                    return last.seq, last.digest, True
            return head["seq"], head["hash"], True
        highest = self._highest_record()
        if highest is None:
            return 0, GENESIS, not damaged_head  # a new log, or one from before the chain
        return highest.seq, highest.digest, False

    def _files(self) -> list[Path]:
        return sorted(self.directory.glob(_FILE_GLOB))

    @staticmethod
    def _tail_record(path: Path) -> _Line | None:
        """The last chained record of `path`, reading only its tail."""
        try:
            handle = path.open("rb")
        except FileNotFoundError:
            return None
        with handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - _TAIL_BYTES))
            lines = handle.read().split(b"\n")
        if size > _TAIL_BYTES:
            lines = lines[1:]  # the first line of the window may be cut
        for raw in reversed(lines):
            if b'"seq":' not in raw:
                continue
            try:
                record = _parse(raw)
            except (ValueError, KeyError, TypeError):
                continue
            if record.seq is not None:
                return _Line(record, _digest(raw), path.name, 0)
        return None

    def _highest_record(self) -> _Line | None:
        """The chained record with the highest seq in any file (a full scan)."""
        highest: _Line | None = None
        for path in self._files():
            for number, raw in enumerate(path.read_bytes().split(b"\n"), start=1):
                if b'"seq":' not in raw:
                    continue
                try:
                    record = _parse(raw)
                except (ValueError, KeyError, TypeError):
                    continue
                if record.seq is not None and (highest is None or record.seq > highest.seq):
                    highest = _Line(record, _digest(raw), path.name, number)
        return highest

    @contextlib.contextmanager
    def _locked(self, mode: int) -> Iterator[None]:
        with open(self.directory / _LOCK_NAME, "a") as handle:
            fcntl.flock(handle, mode)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # ------------------------------------------------------------------ reading

    def records(self, kind: str | None = None) -> Iterator[AuditRecord]:
        """Every trusted record in chain order; raise AuditLogUnreadable on any damage.

        A missing directory means an empty log. Torn lines (never acknowledged) are skipped.
        Anything else wrong raises AuditLogDamaged, listing the problems.
        """
        verification = self.verify()
        if verification.problems:
            first = verification.problems[0]
            more = len(verification.problems) - 1
            raise AuditLogDamaged(
                f"audit log {self.directory} is damaged: {first.text}"
                f"{f' (and {more} more problem(s))' if more else ''}; see `tradewatch audit "
                "verify`, then `tradewatch audit repair`",
                tuple(verification.problems),
            )
        for record in verification.records:
            if kind is None or record.kind == kind:
                yield record

    def verify(self, *, now: datetime | None = None) -> AuditVerification:
        """Walk the whole chain and report what is wrong, without raising for damage.

        Raises AuditLogUnreadable only when the files cannot be read at all.
        """
        if not self.directory.exists():
            return AuditVerification()
        if not self.directory.is_dir():
            raise AuditLogUnreadable(f"audit log {self.directory} is not a directory")
        try:
            with self._locked(fcntl.LOCK_SH):
                return self._verify_unlocked(now)
        except OSError as exc:
            raise AuditLogUnreadable(f"cannot read audit log {self.directory}: {exc}") from exc

    def _verify_unlocked(self, now: datetime | None) -> AuditVerification:
        result = AuditVerification()
        clock = (now or datetime.now(UTC)).astimezone(UTC)
        head_problem: AuditProblem | None = None
        try:
            head = self._read_head()
        except AuditLogUnreadable as exc:
            head, head_problem = None, AuditProblem("head:unreadable", str(exc), HEAD_NAME)
        lines, found = self._read_lines(result)

        problems: list[AuditProblem] = list(found)
        acknowledged: set[str] = set()
        for line in lines:
            if line.record.kind == REPAIRED and line.record.seq is not None:
                acknowledged.update(map(str, line.record.payload.get("acknowledged") or []))

        # Records without a chain position come from before the chain, so only before it.
        seen_chained = False
        previous_in_file: dict[str, int] = {}
        for line in lines:
            where = f"{line.file} line {line.line}"
            seq = line.record.seq
            if seq is None:
                if seen_chained:
                    problems.append(AuditProblem(
                        f"unchained:{line.digest}",
                        f"{where}: a record without a chain position after chained records "
                        "(inserted by hand?)", line.file, line.line))
                continue
            seen_chained = True
            before = previous_in_file.get(line.file)
            if before is not None and seq <= before:
                problems.append(AuditProblem(
                    f"order:{line.digest}",
                    f"{where}: seq {seq} comes after seq {before} in its file: records were "
                    "reordered", line.file, line.line))
            previous_in_file[line.file] = seq

        # The chain in seq order (a clock stepped back can put newer records in an older-named
        # file; the order of the files proves nothing, the links do).
        chain = sorted(
            (line for line in lines if line.record.seq is not None),
            key=lambda line: line.seq,
        )
        future: set[str] = set()
        expected_seq, expected_prev = 1, GENESIS
        for line in chain:
            record = line.record
            where = f"{line.file} line {line.line}"
            if record.seq != expected_seq or record.prev != expected_prev:
                if line.seq < expected_seq:
                    gap = f"a second record with seq {record.seq}"
                elif record.seq != expected_seq:
                    gap = f"expected seq {expected_seq}, found {record.seq}"
                else:
                    gap = f"seq {record.seq} does not follow the record before it"
                problems.append(AuditProblem(
                    f"break:{line.digest}",
                    f"{where}: the chain is broken ({gap}): records were deleted, "
                    "truncated, reordered or edited before this one", line.file, line.line))
            expected_seq, expected_prev = line.seq + 1, line.digest
            if record.event_ts.astimezone(UTC) > clock + MAX_CLOCK_SKEW:
                future.add(line.digest)
                problems.append(AuditProblem(
                    f"future:{line.digest}",
                    f"{where}: {record.kind} record seq {record.seq} is dated "
                    f"{record.event_ts.isoformat(timespec='seconds')}, "
                    f"{ahead_text(record.event_ts.astimezone(UTC) - clock)} ahead of the clock",
                    line.file, line.line))

        standing: list[AuditProblem] = []
        for problem in problems:
            if problem.problem_id in acknowledged:
                result.acknowledged.append(problem)
            else:
                standing.append(problem)

        if head_problem is not None:
            standing.append(head_problem)
        elif chain and head is None:
            standing.append(AuditProblem(
                "head:missing", f"{HEAD_NAME} is missing, so records cut from the end of the "
                "log cannot be detected", HEAD_NAME))
        elif head is not None and not any(
            line.record.seq == head["seq"] and line.digest == head["hash"] for line in chain
        ):
            newest = chain[-1].record.seq if chain else None
            standing.append(AuditProblem(
                f"tail:{head['hash']}",
                f"the head names seq {head['seq']} in {head.get('file')}, but the log "
                f"{'ends at seq ' + str(newest) if newest else 'holds no chained record'}: "
                "records were cut from the end or a file was deleted", HEAD_NAME))

        result.problems = standing
        legacy = [line.record for line in lines if line.record.seq is None]
        result.records = legacy + [
            line.record for line in chain if line.digest not in future
        ]
        result.last_seq = chain[-1].record.seq if chain else None
        return result

    def _read_lines(self, result: AuditVerification) -> tuple[list[_Line], list[AuditProblem]]:
        lines: list[_Line] = []
        problems: list[AuditProblem] = []
        paths = self._files()
        result.files = len(paths)
        for path in paths:
            for number, raw in enumerate(path.read_bytes().split(b"\n"), start=1):
                if not raw.strip():
                    continue
                try:
                    data = json.loads(raw)
                except ValueError:
                    # Not JSON at all: a fragment of a write that never completed (or noise).
                    # It was never acknowledged; if it replaced a record, the chain breaks.
                    result.torn_lines.append((path.name, number))
                    continue
                try:
                    record = _record_from(data)
                except (ValueError, KeyError, TypeError) as exc:
                    problems.append(AuditProblem(
                        f"malformed:{_digest(raw)}",
                        f"{path.name} line {number}: complete JSON but not an audit record "
                        f"({type(exc).__name__}: {exc})", path.name, number))
                    continue
                lines.append(_Line(record, _digest(raw), path.name, number))
        return lines, problems

    # ------------------------------------------------------------------ repairing

    def repair(
        self, *, reason: str, operator: str | None = None, now: datetime | None = None
    ) -> AuditRecord | None:
        """Acknowledge every standing problem in an `audit_repaired` record and re-anchor.

        Returns the repair record, or None when the log is intact. Nothing is deleted or
        rewritten: the damaged lines stay where they are, for whoever investigates.
        """
        if not reason or not reason.strip():
            raise ValueError("a repair needs a reason (what happened, who checked it)")
        self._ensure_directory()
        clock = datetime.now(UTC)
        when = (now or clock).astimezone(UTC)
        if when > clock + MAX_CLOCK_SKEW:
            raise AuditTimestampRejected(f"a repair cannot be dated {when.isoformat()}")
        with self._locked(fcntl.LOCK_EX):
            verification = self._verify_unlocked(None)
            if verification.intact:
                return None
            last = self._highest_record()
            seq, prev = (last.seq, last.digest) if last is not None else (0, GENESIS)
            payload = {
                "reason": reason.strip(),
                "operator": operator or _operator(),
                "host": socket.gethostname(),
                "acknowledged": [p.problem_id for p in verification.problems],
                "problems": [p.as_payload() for p in verification.problems],
                "records_before": len(verification.records),
            }
            record = AuditRecord(uuid.uuid4().hex, when, REPAIRED, payload, seq + 1, prev)
            raw = record.to_json().encode()
            path = self.directory / f"audit-{clock:%Y-%m-%d}.ndjson"
            self._append_and_anchor(path, raw, record.seq)
        return record


def ahead_text(delta: timedelta) -> str:
    """A time difference for people: "30.0 days", "2.5 h", "12 min"."""
    seconds = delta.total_seconds()
    if seconds >= 2 * 86_400:
        return f"{seconds / 86_400:.1f} days"
    if seconds >= 2 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.0f} min"


def _operator() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"
