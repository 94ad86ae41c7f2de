"""Landing: newline-delimited JSON files that appear atomically under the landing directory.

Layout (see the shared file contracts):

    landing/trades/date=YYYY-MM-DD/trades-<stamp>-<pid>-<run>-<seq>.ndjson
    landing/rejects/date=YYYY-MM-DD/rejects-<stamp>-<pid>-<run>-<seq>.ndjson
    landing/bars/interval=<interval>/symbol=<SYM, %XX-escaped>/month=YYYY-MM/bars.ndjson

Every file is written with `core.datahome.write_atomic`: under a temporary name starting with
"." in its final directory, fsynced, renamed into place and the directory fsynced, so a reader
sees either the whole file or nothing. Readers skip names starting with "."; a writer killed
mid-file leaves such a temporary behind, which `core.datahome.remove_stale_temp_files` deletes
once its process is gone. The name carries the writer's pid and host: a temporary of another
host sharing the volume (whose processes this host cannot see) is deleted only once it has not
changed for 15 minutes.

`PartitionedNdjsonWriter` and `write_bars` also write to any `core.datahome.DataHome`, such as a
Unity Catalog volume through the Files API (core.volume), where a file is one whole upload instead.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path, PurePath

import orjson

from core.datahome import DataHome, LocalDataHome
from ingest.symbols import symbol_path_part

TRADES = "trades"
REJECTS = "rejects"
BARS = "bars"

#: Longest raw payload kept in a reject record; `raw_bytes` still gives the full size.
REJECT_RAW_LIMIT = 64 * 1024
#: Longest reject line. JSON escaping can grow a raw payload up to six times (a control byte
#: becomes \\u0001); ordinary JSON grows by its escaped quotes. Beyond twice the raw limit the
#: kept payload is cut further until the line fits.
REJECT_LINE_LIMIT = 2 * REJECT_RAW_LIMIT + 4 * 1024
#: Reject bytes kept per UTC day in a landing directory; beyond it rejects are counted only.
REJECT_BYTES_PER_DAY = 64 * 1024 * 1024

_INTERVAL = re.compile(r"^(?:[1-9][0-9]{0,2}min|daily|weekly|monthly)$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_MONTH = re.compile(r"^\d{4}-\d{2}$")
_MS_PER_DAY = 86_400_000


class LandingError(RuntimeError):
    """A landing path or record that cannot be written."""


def utc_iso(epoch_seconds: float) -> str:
    """ISO-8601 UTC with milliseconds and "Z", e.g. "2024-03-08T14:30:00.123Z"."""
    whole = int(epoch_seconds)
    millis = int(round((epoch_seconds - whole) * 1000))
    if millis == 1000:
        whole, millis = whole + 1, 0
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{millis:03d}Z"


def utc_date_of_ms(epoch_ms: int) -> str:
    """The UTC calendar date ("YYYY-MM-DD") of an epoch-milliseconds timestamp."""
    return time.strftime("%Y-%m-%d", time.gmtime((epoch_ms // _MS_PER_DAY) * 86_400))


def iter_landed_files(root: Path) -> Iterator[Path]:
    """Every landed NDJSON file under `root`, sorted, skipping temporaries and hidden names."""
    if not root.is_dir():
        return
    for path in sorted(root.rglob("*.ndjson")):
        if not any(part.startswith(".") for part in path.relative_to(root).parts):
            yield path


def read_landed_records(root: Path) -> Iterator[dict]:
    """Every record of every landed file under `root` (for tests, tools and small reads)."""
    for path in iter_landed_files(root):
        with path.open("rb") as handle:
            for line in handle:
                if line.strip():
                    yield orjson.loads(line)


class PartitionedNdjsonWriter:
    """Buffers NDJSON lines per date partition; each flush lands one new file per partition.

    Lines are kept as encoded, newline-terminated bytes, so a flush is a few writes per file.
    File names carry the writer's pid, a per-writer random token and a sequence number, so two
    writers (or a restarted one) never collide and a replayed flush never overwrites data.
    """

    def __init__(self, root: Path | DataHome, prefix: str) -> None:
        # A folder, or a data home (core.datahome: a local folder, a Unity Catalog volume)
        # whose root is the landing folder of this writer.
        self.home = LocalDataHome(Path(root)) if isinstance(root, str | os.PathLike) else root
        self.root = Path(root) if isinstance(root, str | os.PathLike) else None
        self.prefix = prefix
        self._pending: dict[str, list[bytes]] = {}
        self._counts: dict[str, int] = {}
        self._count = 0
        self._sequence = 0
        self._run = os.urandom(3).hex()

    @property
    def pending(self) -> int:
        """Lines buffered and not yet landed."""
        return self._count

    def add(self, date: str, chunk: bytes, lines: int = 1) -> None:
        """Buffer `chunk` (`lines` newline-terminated lines) for partition `date`.

        Callers on a hot path join a message's lines into one chunk: thousands of small
        long-lived bytes objects cost far more in allocation than one joined chunk.
        """
        chunks = self._pending.get(date)
        if chunks is None:
            if not _DATE.match(date):
                raise LandingError(f"invalid partition date {date!r}: expected YYYY-MM-DD")
            chunks = self._pending[date] = []
        chunks.append(chunk)
        self._count += lines
        self._counts[date] = self._counts.get(date, 0) + lines

    def flush(self) -> list[PurePath]:
        """Land every pending partition as a new file; return the files written.

        A failed write raises (an OSError: a full disk, a volume that cannot be reached) and
        keeps that partition and every later one buffered for the next flush.
        """
        written: list[PurePath] = []
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        for date in sorted(self._pending):
            chunks = self._pending[date]
            self._sequence += 1
            name = f"{self.prefix}-{stamp}Z-{os.getpid()}-{self._run}-{self._sequence:06d}.ndjson"
            written.append(self.home.write_atomic(f"date={date}/{name}", chunks))
            # Forget a partition only once it is on disk: a failed write keeps it for a retry.
            del self._pending[date]
            self._count -= self._counts.pop(date)
        return written


class RejectWriter(PartitionedNdjsonWriter):
    """Reject lines per UTC day, bounded in bytes: a hostile feed cannot fill the disk.

    At most `max_bytes_per_day` of reject lines land per day partition, counting what earlier
    runs landed there. Beyond it each reject is only counted (`dropped`, `dropped_bytes`), and
    the next flush lands one `rejects_dropped` line per day saying how many and how large, so
    the loss is visible in the data as well as in the collector's counts. In a data home that
    is not a local folder (a volume) only what this writer landed is counted.
    """

    def __init__(
        self, root: Path | DataHome, prefix: str, *, source: str,
        max_bytes_per_day: int = REJECT_BYTES_PER_DAY,
    ) -> None:
        super().__init__(root, prefix)
        self.source = source
        self.max_bytes_per_day = max_bytes_per_day
        self.dropped = 0  #: reject lines not kept because the day's budget was spent
        self.dropped_bytes = 0
        self._used: dict[str, int] = {}
        self._unreported: dict[str, tuple[int, int]] = {}

    def _used_bytes(self, date: str) -> int:
        used = self._used.get(date)
        if used is None:
            used = 0
            partition = self.root / f"date={date}" if self.root is not None else None
            if partition is not None and partition.is_dir() and _DATE.match(date):
                used = sum(
                    entry.stat().st_size for entry in os.scandir(partition)
                    if entry.is_file() and not entry.name.startswith(".")
                )
        return used

    def add(self, date: str, chunk: bytes, lines: int = 1) -> None:
        used = self._used_bytes(date)
        if used + len(chunk) > self.max_bytes_per_day:
            self.dropped += lines
            self.dropped_bytes += len(chunk)
            count, size = self._unreported.get(date, (0, 0))
            self._unreported[date] = (count + lines, size + len(chunk))
            return
        super().add(date, chunk, lines)
        self._used[date] = used + len(chunk)

    def flush(self) -> list[PurePath]:
        for date, (count, size) in sorted(self._unreported.items()):
            # The summary line itself is exempt from the budget: it is what makes it visible.
            PartitionedNdjsonWriter.add(self, date, reject_record(
                received_at=utc_now_iso(), source=self.source,
                reason=(
                    f"rejects_dropped: {count} reject(s) of {size} bytes not kept: the "
                    f"{self.max_bytes_per_day}-byte daily reject budget is spent"
                ),
                raw=b"", raw_bytes=size,
            ))
        self._unreported.clear()
        return super().flush()


def reject_record(
    *, received_at: str, source: str, reason: str, raw: bytes | bytearray | str, raw_bytes: int
) -> bytes:
    """One rejects line: the payload truncated to REJECT_RAW_LIMIT, its full size in raw_bytes."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "replace")
    keep = min(len(raw), REJECT_RAW_LIMIT)
    while True:
        record = {
            "received_at": received_at,
            "source": source,
            "reason": reason[:1024],
            "raw": bytes(raw[:keep]).decode("utf-8", "replace"),
            "raw_bytes": int(raw_bytes),
        }
        line = orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)
        if len(line) <= REJECT_LINE_LIMIT or keep == 0:
            return line
        # Escaping grew the payload: keep proportionally less of it.
        keep = max(0, keep * (REJECT_LINE_LIMIT - 2048) // len(line) - 16)


def validate_interval(interval: str) -> str:
    """Return `interval` if it is safe in a path ("5min", "daily", ...), else raise LandingError."""
    if not isinstance(interval, str) or not _INTERVAL.match(interval):
        raise LandingError(f"invalid bar interval {interval!r}: expected e.g. 5min or daily")
    return interval


def bars_relative(interval: str, symbol: str, month: str) -> str:
    """The one file holding a symbol's bars of one interval and month, relative to the
    landing folder ("bars/interval=5min/symbol=AAPL/month=2024-03/bars.ndjson")."""
    validate_interval(interval)
    symbol_part = symbol_path_part(symbol)  # validated; "FXCM:EUR/USD" -> "FXCM%3AEUR%2FUSD"
    if not _MONTH.match(month):
        raise LandingError(f"invalid month {month!r}: expected YYYY-MM")
    return f"{BARS}/interval={interval}/symbol={symbol_part}/month={month}/bars.ndjson"


def bars_path(landing_dir: Path, interval: str, symbol: str, month: str) -> Path:
    """The one file holding a symbol's bars of one interval and month."""
    return Path(landing_dir).joinpath(*bars_relative(interval, symbol, month).split("/"))


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def write_bars(
    landing_dir: Path | str | DataHome, *, symbol: str, interval: str, bars: Iterable[dict]
) -> list[PurePath]:
    """Merge `bars` into their months' files and land each month atomically; return the files.

    `landing_dir` is the landing folder, or a data home whose root is the landing folder
    (core.datahome: a Unity Catalog volume through the Files API, where a month's file is
    one whole upload). Each bar needs `bar_ts_utc` (the merge key) and `month` is taken from
    `bar_local` (exchange-local year-month, so one trading day stays in one file). Bars
    already in the file for another timestamp are kept; for the same timestamp the new bar
    wins. A line of the existing file that does not parse is kept as it was, at the end (the
    warehouse quarantines it with its line number). In a local folder a lock file serialises
    concurrent writers of the same month; a volume has no lock, so two workers must not
    collect the same symbol and interval at once (the call budget is per worker anyway).
    A failed write raises (OSError, e.g. core.volume.VolumeError) and leaves that month's
    file as it was; months written before it stay written.
    """
    home = LocalDataHome(Path(landing_dir)) if isinstance(landing_dir, str | os.PathLike) \
        else landing_dir
    by_month: dict[str, list[dict]] = {}
    for bar in bars:
        if bar.get("symbol") != symbol or bar.get("interval") != interval:
            raise LandingError(
                f"bar for {bar.get('symbol')}/{bar.get('interval')} handed to the "
                f"{symbol}/{interval} writer"
            )
        by_month.setdefault(str(bar["bar_local"])[:7], []).append(bar)
    written: list[PurePath] = []
    for month in sorted(by_month):
        relative = bars_relative(interval, symbol, month)
        lock = (
            _locked(home.path(relative).with_name(".bars.lock"))
            if isinstance(home, LocalDataHome) else contextlib.nullcontext()
        )
        with lock:
            merged: dict[str, dict] = {}
            unparseable: list[bytes] = []
            try:
                existing = home.read(relative)
            except FileNotFoundError:
                existing = b""
            for line in existing.split(b"\n"):
                if line.strip():
                    try:
                        old = orjson.loads(line)
                        merged[old["bar_ts_utc"]] = old
                    except (orjson.JSONDecodeError, KeyError, TypeError):
                        unparseable.append(line + b"\n")
            for bar in by_month[month]:
                merged[bar["bar_ts_utc"]] = bar
            lines = [
                orjson.dumps(merged[key], option=orjson.OPT_APPEND_NEWLINE)
                for key in sorted(merged)
            ] + unparseable
            written.append(home.write_atomic(relative, lines))
    return written


def utc_now_iso() -> str:
    """The current time as ISO-8601 UTC with milliseconds and "Z"."""
    return utc_iso(time.time())


def parse_utc_iso(text: str) -> datetime:
    """Parse an ISO-8601 "Z" timestamp written by this module."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
