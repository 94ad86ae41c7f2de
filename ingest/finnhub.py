"""Finnhub WebSocket collector: subscribe, validate every trade, land it, survive the network.

websocket-client opens the connection (URL parsing, TLS, the HTTP upgrade) and sends our
frames. Incoming frames are read by `_FrameReader` straight from the socket instead of
websocket-client's `recv`, for two reasons: a frame larger than the size limit is skipped in
chunks while only its first 64 KiB are kept for the reject record (websocket-client would
assemble the whole payload, twice over, before we could look at its size), and reading
256 KiB at a time into one buffer takes fewer system calls than its three reads per frame.

When the world misbehaves:

- A connection that delivers nothing is pinged after `ping_interval_seconds`; one that stays
  silent for `read_idle_timeout_seconds` (not even a pong: half-open, or a feed that stopped)
  is dropped and reconnected, and `notify` gets one `feed_silent` alert per silent spell.
- When landed files cannot be written (disk full, a failing or read-only volume), the
  collector stops reading the socket (TCP back-pressure), keeps every trade it received in
  memory, retries with capped exponential backoff and raises one `landing_failed` alert; once
  a write succeeds it goes on reading. An error that retrying cannot fix (the landing path is
  a file) ends the run instead. At the end of a run a blocked landing is retried for
  `landing_grace_seconds` before the run fails with the number of trades it could not land.
- Rejects are bounded in bytes per line and per day (ingest.landing.RejectWriter), the cache
  of condition-code texts in bytes; what is dropped or not cached is counted.
- Trade ids follow ingest.trade_id: a message's bytes, the identical messages before it on
  the connection, the trade's position.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import math
import random
import socket
import struct
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

import orjson
import websocket

from core.alerts import AlertKind
from core.datahome import DataHome, remove_stale_temp_files, within
from ingest.api_keys import (
    ApiKey,
    is_provider_host,
    key_destination,
    protect_library_loggers,
    redact_credentials,
    refuse_key_destination,
)
from ingest.landing import (
    REJECT_BYTES_PER_DAY,
    REJECT_RAW_LIMIT,
    REJECTS,
    TRADES,
    LandingError,
    PartitionedNdjsonWriter,
    RejectWriter,
    reject_record,
    utc_date_of_ms,
)
from ingest.symbols import validate_symbols
from ingest.trade_id import MessageCounter

SOURCE = "finnhub"
#: The provider's domain: the API key goes there over TLS (wss://), nowhere else unless listed.
FINNHUB_DOMAIN = "finnhub.io"
#: Frames (or fragmented messages) larger than this are rejected unread.
MAX_MESSAGE_BYTES = 1024 * 1024
#: 2000-01-01T00:00:00Z: anything earlier is not a plausible trade time.
MIN_TRADE_TS_MS = 946_684_800_000
_MS_PER_DAY = 86_400_000
_INF = math.inf
_READ_CHUNK = 256 * 1024
_POLL_SECONDS = 0.25
_POLICY_VIOLATION = 1008
_REJECT_FLUSH_LINES = 10_000
#: Condition lists are remembered as JSON text up to this many bytes in all; a list is cached
#: only while its text is short (real ones are a few codes), so hostile lists cannot pin memory.
_CONDITION_CACHE_BYTES = 1024 * 1024
_CONDITION_CACHE_ENTRY_BYTES = 256
_CONDITION_CACHE_ENTRY_CODES = 32
#: A feed that keeps going silent is alerted again at most this often.
SILENCE_REALERT_SECONDS = 15 * 60
#: Write errors that may go away (space freed, a volume back): retried with back-pressure.
_TRANSIENT_WRITE_ERRORS = frozenset(
    code for code in (
        errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS, errno.ENOMEM, errno.EAGAIN,
        errno.EINTR, errno.ETIMEDOUT, getattr(errno, "ESTALE", None), errno.EBUSY,
        errno.ENOBUFS, errno.EMFILE, errno.ENFILE,
    ) if code is not None
)

log = logging.getLogger(__name__)

ProgressCallback = Callable[["CollectorStats"], None]
#: notify(kind=, severity=, title=, text=, fields=) — flows.alerts.AlertSender.send fits.
Notify = Callable[..., object]


class FinnhubError(RuntimeError):
    """The Finnhub collector cannot go on."""


class FinnhubAuthError(FinnhubError):
    """The server refused the API token (HTTP 401/403, or a policy close before any trade)."""


class _ConnectionClosed(Exception):
    """The server closed the connection (close frame or end of stream)."""

    def __init__(self, message: str, code: int | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason


class _ProtocolError(Exception):
    """The server broke the WebSocket framing rules; the connection cannot be trusted."""


class _FeedSilent(Exception):
    """Nothing arrived on the connection, not even a pong, for the read-idle timeout."""


@dataclass
class CollectorStats:
    """Running counts of one collector; a copy is handed to progress callbacks."""

    messages: int = 0  #: WebSocket messages received
    received: int = 0  #: trade entries received (accepted or rejected)
    accepted: int = 0  #: valid trades buffered or landed
    landed: int = 0  #: trades in landed files
    rejected: int = 0  #: reject records (bad trades and bad messages) written or buffered
    reconnects: int = 0  #: connections re-established after the first
    connect_failures: int = 0  #: connection attempts that failed
    pings: int = 0  #: Finnhub `{"type":"ping"}` messages
    server_errors: int = 0  #: `{"type":"error"}` messages
    files: int = 0  #: trade files landed
    elapsed_seconds: float = 0.0
    last_problem: str | None = None  #: the latest connection problem, already redacted
    reject_reasons: dict[str, int] = field(default_factory=dict)
    pings_sent: int = 0  #: WebSocket pings sent to a quiet connection
    silent_disconnects: int = 0  #: connections dropped after the read-idle timeout
    landing_stalls: int = 0  #: times landing failed and reading stopped until it recovered
    landing_retries: int = 0  #: failed landing attempts (the first included)
    landing_stalled_seconds: float = 0.0  #: time spent not reading because landing failed
    rejects_dropped: int = 0  #: reject lines counted but not kept (daily byte budget spent)
    uncached_conditions: int = 0  #: condition lists formatted without the bounded cache

    def summary(self) -> str:
        """One line: received, landed, rejected, reconnects (and any faults met)."""
        line = (
            f"received {self.received:,} trades in {self.messages:,} messages, "
            f"landed {self.landed:,}, rejected {self.rejected:,}, reconnects {self.reconnects:,}"
        )
        if self.silent_disconnects:
            line += f", silent connections dropped {self.silent_disconnects:,}"
        if self.landing_stalls:
            line += (
                f", landing stalled {self.landing_stalls:,}x for "
                f"{self.landing_stalled_seconds:.1f} s"
            )
        if self.rejects_dropped:
            line += f", rejects not kept {self.rejects_dropped:,}"
        return line


@dataclass(frozen=True)
class _Oversized:
    total_bytes: int
    head: bytes


def reconnect_delay(
    attempt: int, initial_seconds: float, max_seconds: float, rng: random.Random
) -> float:
    """Seconds to wait before reconnect number `attempt` (0-based): capped exponential with
    "equal jitter" — between half and all of min(max, initial * 2**attempt), so reconnecting
    clients spread out but never hammer a server that has just gone down."""
    ceiling = min(max_seconds, initial_seconds * 2 ** min(attempt, 62))
    return ceiling / 2 + rng.uniform(0, ceiling / 2)


def _with_token(url: str, api_key: ApiKey | None) -> str:
    if api_key is None:
        return url
    separator = "&" if urlsplit(url).query else "?"
    return f"{url}{separator}token={api_key.url_quoted()}"


class _FrameReader:
    """Reassembles server WebSocket messages from a socket, answering pings, skipping giants."""

    def __init__(self, sock: socket.socket, send_pong: Callable[[bytes], None], limit: int):
        self._sock = sock
        self._send_pong = send_pong
        self._limit = limit
        self._chunk = bytearray(_READ_CHUNK)
        self._view = memoryview(self._chunk)
        self._buf = bytearray()
        self._pos = 0
        self._fragments: list[bytes] | None = None  # a fragmented message being assembled
        self._fragment_bytes = 0
        self._oversized_total = -1  # >= 0 while an oversized message is being skipped
        self._oversized_head = bytearray()
        self._skip = 0  # payload bytes of the current oversized frame still to skip
        self._skip_fin = False
        self.last_received = time.monotonic()  #: when bytes last arrived (pongs included)

    def next_message(self) -> bytes | bytearray | _Oversized:
        """The next complete data message; raises TimeoutError when none arrives in time."""
        while True:
            message = self._parse()
            if message is not None:
                return message
            self._fill()

    def _fill(self) -> None:
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0
        received = self._sock.recv_into(self._view)
        if received == 0:
            raise _ConnectionClosed("the server closed the connection")
        self.last_received = time.monotonic()
        self._buf += self._view[:received]

    def _capture(self, start: int, count: int) -> None:
        room = REJECT_RAW_LIMIT - len(self._oversized_head)
        if room > 0:
            self._oversized_head += self._buf[start : start + min(room, count)]

    def _finish_oversized(self) -> _Oversized:
        message = _Oversized(self._oversized_total, bytes(self._oversized_head))
        self._oversized_total = -1
        self._oversized_head = bytearray()
        return message

    def _parse(self) -> bytes | bytearray | _Oversized | None:
        buf = self._buf
        while True:
            pos = self._pos
            available = len(buf) - pos
            if self._skip:
                take = min(available, self._skip)
                self._capture(pos, take)
                self._pos = pos + take
                self._skip -= take
                if self._skip:
                    return None
                if self._skip_fin:
                    return self._finish_oversized()
                continue
            if available < 2:
                return None
            first, second = buf[pos], buf[pos + 1]
            if first & 0x70:
                raise _ProtocolError("reserved bits set without a negotiated extension")
            if second & 0x80:
                raise _ProtocolError("the server sent a masked frame")
            fin = first & 0x80
            opcode = first & 0x0F
            length = second & 0x7F
            header = 2
            if length == 126:
                if available < 4:
                    return None
                length = struct.unpack_from("!H", buf, pos + 2)[0]
                header = 4
            elif length == 127:
                if available < 10:
                    return None
                length = struct.unpack_from("!Q", buf, pos + 2)[0]
                header = 10

            if opcode >= 0x8:  # control frame: ping, pong or close
                if length > 125 or not fin:
                    raise _ProtocolError("invalid control frame")
                if available < header + length:
                    return None
                payload = bytes(buf[pos + header : pos + header + length])
                self._pos = pos + header + length
                if opcode == 0x9:
                    self._send_pong(payload)
                elif opcode == 0x8:
                    code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                    reason = payload[2:].decode("utf-8", "replace")
                    raise _ConnectionClosed(
                        f"the server closed the connection (code {code} {reason})".strip(),
                        code, reason,
                    )
                continue

            if opcode in (0x1, 0x2):
                if self._fragments is not None or self._oversized_total >= 0:
                    raise _ProtocolError("a new message started inside a fragmented one")
            elif opcode == 0x0:
                if self._fragments is None and self._oversized_total < 0:
                    raise _ProtocolError("a continuation frame without a message")
            else:
                raise _ProtocolError(f"unknown opcode {opcode}")

            if self._oversized_total >= 0 or self._fragment_bytes + length > self._limit:
                if self._oversized_total < 0:
                    # Switch to skipping: keep what we have of the message up to the raw limit.
                    self._oversized_total = self._fragment_bytes
                    self._oversized_head = bytearray(
                        b"".join(self._fragments or [])[:REJECT_RAW_LIMIT]
                    )
                    self._fragments = None
                    self._fragment_bytes = 0
                self._oversized_total += length
                self._pos = pos + header
                self._skip = length
                self._skip_fin = bool(fin)
                if length == 0 and fin:
                    return self._finish_oversized()
                continue

            end = pos + header + length
            if available < header + length:
                return None
            payload = buf[pos + header : end]
            self._pos = end
            if fin and self._fragments is None:
                return payload
            if self._fragments is None:
                self._fragments = []
            self._fragments.append(bytes(payload))
            self._fragment_bytes += length
            if fin:
                message = b"".join(self._fragments)
                self._fragments = None
                self._fragment_bytes = 0
                return message


class FinnhubCollector:
    """Collects trades from a Finnhub-protocol WebSocket into the landing directory.

    `run()` blocks until `stop()` is called (from a signal handler or another thread), the
    duration has passed or `max_trades` valid trades were received; it reconnects with capped
    exponential backoff and jitter in between and flushes everything before it returns.
    """

    def __init__(
        self,
        *,
        url: str,
        symbols: tuple[str, ...] | list[str],
        landing_dir: Path | str | DataHome,
        api_key: ApiKey | str | None = None,
        flush_trades: int = 50_000,
        flush_seconds: float = 2.0,
        reconnect_initial_seconds: float = 0.5,
        reconnect_max_seconds: float = 30.0,
        duration_seconds: float | None = None,
        max_trades: int | None = None,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        connect_timeout_seconds: float = 10.0,
        on_progress: ProgressCallback | None = None,
        progress_every_seconds: float = 0.5,
        ping_interval_seconds: float = 20.0,
        read_idle_timeout_seconds: float = 60.0,
        landing_retry_initial_seconds: float = 1.0,
        landing_retry_max_seconds: float = 30.0,
        landing_grace_seconds: float = 60.0,
        max_reject_bytes_per_day: int = REJECT_BYTES_PER_DAY,
        notify: Notify | None = None,
        key_urls: Sequence[str] = (),
    ) -> None:
        self._symbols = validate_symbols(list(symbols))
        if urlsplit(url).scheme not in ("ws", "wss"):
            raise ValueError(f"the Finnhub URL must start with ws:// or wss://, got {url!r}")
        if isinstance(api_key, str):
            api_key = ApiKey(api_key)
        if api_key is not None:
            allowed = key_destination(url, FINNHUB_DOMAIN, key_urls)
            if allowed is None:
                raise refuse_key_destination(url, FINNHUB_DOMAIN, "the Finnhub API key")
            if not is_provider_host(url, FINNHUB_DOMAIN):
                log.warning("sending the Finnhub API key to %s: %s",
                            redact_credentials(url), allowed)
        if flush_trades <= 0 or flush_seconds <= 0:
            raise ValueError("flush_trades and flush_seconds must be positive")
        if reconnect_initial_seconds <= 0 or reconnect_max_seconds < reconnect_initial_seconds:
            raise ValueError("reconnect delays must be positive with initial <= max")
        if not 0 < ping_interval_seconds < read_idle_timeout_seconds:
            raise ValueError(
                "ping_interval_seconds must be positive and shorter than read_idle_timeout_seconds"
            )
        if landing_retry_initial_seconds <= 0 or (
            landing_retry_max_seconds < landing_retry_initial_seconds
        ) or landing_grace_seconds < 0:
            raise ValueError("landing retry delays must be positive with initial <= max")
        self.url = url
        self._api_key = api_key
        # A folder, or a data home whose root is the landing folder (core.datahome: e.g. a
        # Unity Catalog volume through the Files API, core.volume).
        trades_home: Path | DataHome
        rejects_home: Path | DataHome
        if isinstance(landing_dir, DataHome):
            self.landing_dir: Path | None = None
            trades_home, rejects_home = within(landing_dir, TRADES), within(landing_dir, REJECTS)
            self._landing_where = repr(landing_dir)
        else:
            self.landing_dir = Path(landing_dir)
            trades_home, rejects_home = self.landing_dir / TRADES, self.landing_dir / REJECTS
            self._landing_where = str(self.landing_dir)
        self.flush_trades = flush_trades
        self.flush_seconds = flush_seconds
        self.reconnect_initial_seconds = reconnect_initial_seconds
        self.reconnect_max_seconds = reconnect_max_seconds
        self.duration_seconds = duration_seconds
        self.max_trades = max_trades
        self.max_message_bytes = max_message_bytes
        self.connect_timeout_seconds = connect_timeout_seconds
        self._on_progress = on_progress
        self._progress_every = progress_every_seconds
        self.ping_interval_seconds = ping_interval_seconds
        self.read_idle_timeout_seconds = read_idle_timeout_seconds
        self.landing_retry_initial_seconds = landing_retry_initial_seconds
        self.landing_retry_max_seconds = landing_retry_max_seconds
        self.landing_grace_seconds = landing_grace_seconds
        self._notify = notify
        self._symbol_set = frozenset(self._symbols)
        self._trades = PartitionedNdjsonWriter(trades_home, "trades")
        self._rejects = RejectWriter(
            rejects_home, "rejects", source=SOURCE,
            max_bytes_per_day=max_reject_bytes_per_day,
        )
        self._stats = CollectorStats()
        self._messages = MessageCounter()
        self._landing_blocked_since: float | None = None
        self._landing_retry_at = 0.0
        self._landing_attempt = 0
        self._silence_alerted_at: float | None = None
        self._messages_at_silence_alert = 0
        self._stopping = False
        self._ws: websocket.WebSocket | None = None
        self._dates: dict[int, str] = {}
        self._condition_texts: dict[tuple, str] = {}
        self._condition_bytes = 0
        self._second = -1
        self._second_text = ""
        self._random = random.Random()
        protect_library_loggers()

    def __repr__(self) -> str:
        return (
            f"FinnhubCollector(url={redact_credentials(self.url)!r}, symbols={self._symbols!r}, "
            f"api_key={'set' if self._api_key else 'none'})"
        )

    @property
    def symbols(self) -> tuple[str, ...]:
        return self._symbols

    @property
    def stats(self) -> CollectorStats:
        """A snapshot of the counts so far."""
        return replace(self._stats, reject_reasons=dict(self._stats.reject_reasons))

    def stop(self) -> None:
        """Ask `run()` to flush and return; safe from signal handlers and other threads."""
        self._stopping = True

    # ------------------------------------------------------------------ running

    def run(self) -> CollectorStats:
        """Collect until stopped; return the final counts.

        Raises FinnhubAuthError when the token is refused and LandingError when trades cannot
        be written: at once for an error retrying cannot fix, else when the run ends with
        trades still unlanded after `landing_grace_seconds` (the count is in the message).
        """
        started = time.monotonic()
        self._deadline = started + self.duration_seconds if self.duration_seconds else None
        self._started = started
        self._last_flush = started
        self._last_progress = started
        if self.landing_dir is not None:  # a data home's files are whole uploads: no temporaries
            remove_stale_temp_files(self.landing_dir / TRADES)
            remove_stale_temp_files(self.landing_dir / REJECTS)
        attempt = 0
        connected_before = False
        try:
            while not self._should_stop():
                if self._landing_blocked_since is not None:
                    self._wait_for_landing()  # no new connection while nothing can be landed
                    continue
                try:
                    ws = self._connect()
                except FinnhubAuthError:
                    raise
                except (OSError, websocket.WebSocketException) as exc:
                    self._stats.connect_failures += 1
                    self._note_problem(f"connect failed: {self._describe(exc)}")
                    self._backoff(attempt)
                    attempt += 1
                    continue
                if connected_before:
                    self._stats.reconnects += 1
                connected_before = True
                messages_before = self._stats.messages
                received_before = self._stats.received
                try:
                    self._receive(ws)
                except _ConnectionClosed as exc:
                    if exc.code == _POLICY_VIOLATION and self._stats.received == received_before:
                        # Closing a fresh connection for a policy violation, before any trade,
                        # is how a Finnhub-protocol server refuses a token after the upgrade.
                        raise FinnhubAuthError(
                            "the server closed the connection before any trade (policy "
                            f"violation: {self._api_key_safe(exc.reason)[:120]}); check "
                            "FINNHUB_API_KEY, or pass --url to use the simulator"
                        ) from None
                    self._note_problem(f"connection lost: {self._describe(exc)}")
                except _FeedSilent as exc:
                    self._on_silent(str(exc))
                except (OSError, websocket.WebSocketException, _ProtocolError) as exc:
                    self._note_problem(f"connection lost: {self._describe(exc)}")
                finally:
                    self._close(ws)
                if self._should_stop():
                    break
                # A connection that carried data resets the backoff; a flapping one does not.
                attempt = 0 if self._stats.messages > messages_before else attempt + 1
                self._backoff(attempt)
        finally:
            self._final_flush()
            self._stats.elapsed_seconds = time.monotonic() - started
            self._report_progress(force=True)
        return self.stats

    def _should_stop(self) -> bool:
        if self._stopping:
            return True
        if self.max_trades is not None and self._stats.accepted >= self.max_trades:
            return True
        return self._deadline is not None and time.monotonic() >= self._deadline

    def _describe(self, exc: BaseException) -> str:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return redact_credentials(text, self._api_key)[:300]

    def _api_key_safe(self, text: str) -> str:
        return redact_credentials(text, self._api_key)

    def _note_problem(self, text: str) -> None:
        self._stats.last_problem = text

    def _alert(self, kind: AlertKind, severity: str, title: str, text: str,
               fields: dict[str, str]) -> None:
        if self._notify is None:
            return
        try:
            self._notify(kind=kind, severity=severity, title=title, text=text, fields=fields)
        except Exception as exc:  # an alert path must not stop collection
            print(f"alert {title!r} could not be sent: {type(exc).__name__}", file=sys.stderr)

    def _on_silent(self, detail: str) -> None:
        """A connection went silent: count it, and alert once per silent spell.

        A spell ends when data flows again; a feed that keeps stalling is alerted again at
        most every SILENCE_REALERT_SECONDS.
        """
        self._stats.silent_disconnects += 1
        self._note_problem(f"connection silent: {detail}")
        now = time.monotonic()
        if self._silence_alerted_at is not None and (
            self._stats.messages == self._messages_at_silence_alert
            or now - self._silence_alerted_at < SILENCE_REALERT_SECONDS
        ):
            return
        self._silence_alerted_at = now
        self._messages_at_silence_alert = self._stats.messages
        self._alert(
            AlertKind.FEED_SILENT, "warning", "Finnhub feed silent: reconnecting",
            f"The connection to {redact_credentials(self.url, self._api_key)} delivered "
            f"nothing, not even an answer to a ping, for {detail}; it was dropped and the "
            "collector reconnects. If this repeats, check the network path and the provider's "
            "status.",
            {"symbols": ", ".join(self._symbols[:10]),
             "read-idle timeout": f"{self.read_idle_timeout_seconds:g} s"},
        )

    def _backoff(self, attempt: int) -> None:
        """Sleep a capped exponential delay with jitter, waking early when asked to stop."""
        delay = reconnect_delay(
            attempt, self.reconnect_initial_seconds, self.reconnect_max_seconds, self._random
        )
        until = time.monotonic() + delay
        while not self._should_stop():
            remaining = until - time.monotonic()
            if remaining <= 0:
                break
            time.sleep(min(remaining, _POLL_SECONDS))
            self._maybe_flush()
            self._report_progress()

    def _connect(self) -> websocket.WebSocket:
        try:
            ws = websocket.create_connection(
                _with_token(self.url, self._api_key),
                timeout=self.connect_timeout_seconds,
                enable_multithread=False,
                skip_utf8_validation=True,
            )
        except websocket.WebSocketBadStatusException as exc:
            if exc.status_code in (401, 403):
                raise FinnhubAuthError(
                    f"the server refused the API token (HTTP {exc.status_code}); check "
                    "FINNHUB_API_KEY, or pass --url to use the simulator"
                ) from None
            # Drop the original: its text carries the response headers and body.
            raise websocket.WebSocketException(
                f"handshake failed with HTTP {exc.status_code}"
            ) from None
        try:
            for symbol in self._symbols:
                ws.send(orjson.dumps({"type": "subscribe", "symbol": symbol}).decode())
            assert ws.sock is not None, "a connected WebSocket has a socket"
            ws.sock.settimeout(_POLL_SECONDS)
        except BaseException:
            self._close(ws)
            raise
        self._ws = ws
        # Identical messages are counted per connection (see ingest.trade_id).
        self._messages = MessageCounter()
        return ws

    @staticmethod
    def _close(ws: websocket.WebSocket) -> None:
        # The connection may already be gone: closing is best effort.
        with contextlib.suppress(Exception):
            ws.send_close()
        ws.shutdown()

    def _receive(self, ws: websocket.WebSocket) -> None:
        assert ws.sock is not None, "a connected WebSocket has a socket"
        reader = _FrameReader(ws.sock, ws.pong, self.max_message_bytes)
        monotonic = time.monotonic
        last_ping = monotonic()
        while not self._should_stop():
            if self._landing_blocked_since is not None:
                # Back-pressure: read nothing more until what we hold is on disk. The wait
                # is not the server's silence, so the idle clock starts again afterwards.
                self._wait_for_landing()
                reader.last_received = last_ping = monotonic()
                continue
            try:
                message = reader.next_message()
            except TimeoutError:
                now = monotonic()
                idle = now - reader.last_received
                if idle >= self.read_idle_timeout_seconds:
                    raise _FeedSilent(
                        f"{idle:.0f} s (read-idle timeout {self.read_idle_timeout_seconds:g} s)"
                    ) from None
                if idle >= self.ping_interval_seconds and (
                    now - last_ping >= self.ping_interval_seconds
                ):
                    ws.ping(b"tradewatch")
                    last_ping = now
                    self._stats.pings_sent += 1
                self._maybe_flush()
                self._report_progress()
                continue
            self._stats.messages += 1
            if isinstance(message, _Oversized):
                self._reject_oversized(message)
            else:
                self._handle(message)
            now = monotonic()
            if self._trades.pending >= self.flush_trades or (
                now - self._last_flush >= self.flush_seconds
            ) or self._rejects.pending >= _REJECT_FLUSH_LINES:
                self._flush()
            if now - self._last_progress >= self._progress_every:
                self._report_progress()

    # ------------------------------------------------------------------ messages

    def _received_at(self, now: float) -> str:
        second = int(now)
        if second != self._second:
            self._second = second
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._second_text}.{int((now - second) * 1000):03d}Z"

    def _reject(
        self, reason: str, raw: bytes | bytearray, received_at: str, raw_bytes: int | None = None
    ) -> None:
        raw_bytes = len(raw) if raw_bytes is None else raw_bytes
        head = bytes(raw[:REJECT_RAW_LIMIT])
        if self._api_key is not None:
            # A server could echo the token back (in an error text, say); never land it.
            head = self._api_key.redact(head.decode("utf-8", "replace")).encode()
        line = reject_record(
            received_at=received_at, source=SOURCE, reason=reason, raw=head, raw_bytes=raw_bytes
        )
        self._rejects.add(received_at[:10], line)
        self._stats.rejected += 1
        code = reason.split(":", 1)[0]
        self._stats.reject_reasons[code] = self._stats.reject_reasons.get(code, 0) + 1

    def _reject_oversized(self, message: _Oversized) -> None:
        received_at = self._received_at(time.time())
        self._reject(
            f"oversized_frame: {message.total_bytes} bytes exceeds the "
            f"{self.max_message_bytes}-byte limit",
            message.head,
            received_at,
            raw_bytes=message.total_bytes,
        )

    def _handle(self, payload: bytes | bytearray) -> None:
        now = time.time()
        received_at = self._received_at(now)
        try:
            message = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            self._reject(f"malformed_json: {str(exc)[:200]}", payload, received_at)
            return
        if type(message) is not dict:
            self._reject(
                f"wrong_type: message is a JSON {type(message).__name__}, expected an object",
                payload, received_at,
            )
            return
        kind = message.get("type")
        if kind == "trade":
            data = message.get("data")
            if type(data) is not list:
                self._reject(
                    f"wrong_type: trade message 'data' is {type(data).__name__}, expected a list",
                    payload, received_at,
                )
                return
            self._on_trades(data, received_at, int(now * 1000), self._messages.key(payload))
        elif kind == "ping":
            self._stats.pings += 1
        elif kind == "error":
            self._stats.server_errors += 1
            detail = str(message.get("msg"))[:300]
            self._reject(f"server_error: {detail}", payload, received_at)
        else:
            shown = repr(kind)[:60]
            self._reject(f"unknown_type: message type {shown}", payload, received_at)

    def _on_trades(self, data: list, received_at: str, now_ms: int, message_key: str) -> None:
        """Validate and buffer every trade of one message (the hot path: keep it lean)."""
        symbols = self._symbol_set
        dates = self._dates
        latest = now_ms + _MS_PER_DAY
        dumps = orjson.dumps
        blake2b = hashlib.blake2b
        condition_texts = self._condition_texts
        batches: dict[str, list[str]] = {}
        current_day = -1
        lines: list[str] = []
        accepted = 0
        for position, trade in enumerate(data):
            problem = None
            try:
                price = trade["p"]
                symbol = trade["s"]
                ts = trade["t"]
                volume = trade["v"]
                conditions = trade.get("c")
                exchange = trade.get("x")
            except KeyError as exc:
                problem = f"missing_field: trade {position} has no {exc.args[0]!r}"
            except (TypeError, AttributeError):
                problem = f"wrong_type: trade {position} is a {type(trade).__name__}, not an object"
            else:
                kind = type(price)
                if kind is not float and kind is not int:
                    problem = f"wrong_type: trade {position} price is {kind.__name__}"
                elif not 0.0 < price < _INF:
                    problem = f"invalid_price: trade {position} price {price!r} is not finite > 0"
                elif type(volume) is not float and type(volume) is not int:
                    problem = f"wrong_type: trade {position} volume is {type(volume).__name__}"
                elif not 0.0 <= volume < _INF:
                    problem = (
                        f"invalid_volume: trade {position} volume {volume!r} is not finite >= 0"
                    )
                elif type(symbol) is not str:
                    problem = f"wrong_type: trade {position} symbol is {type(symbol).__name__}"
                elif symbol not in symbols:
                    problem = (
                        f"unknown_symbol: trade {position} symbol {symbol[:40]!r} not subscribed"
                    )
                elif type(ts) is not int:
                    problem = f"wrong_type: trade {position} timestamp is {type(ts).__name__}"
                elif not MIN_TRADE_TS_MS <= ts <= latest:
                    problem = f"implausible_timestamp: trade {position} t={ts} ms"
                elif exchange is not None and type(exchange) is not str:
                    problem = f"wrong_type: trade {position} exchange is {type(exchange).__name__}"
                elif conditions is not None:
                    if type(conditions) is not list:
                        problem = (
                            f"wrong_type: trade {position} conditions is "
                            f"{type(conditions).__name__}"
                        )
                    else:
                        for condition in conditions:
                            if type(condition) is not str:
                                problem = f"wrong_type: trade {position} has a non-string condition"
                                break
            if problem is not None:
                self._reject(problem, dumps(trade), received_at)
                continue
            day = ts // _MS_PER_DAY
            if day != current_day:
                date = dates.get(day)
                if date is None:
                    date = dates[day] = utc_date_of_ms(ts)
                lines = batches.setdefault(date, [])
                current_day = day
            # The id key exactly as ingest.trade_id.trade_id builds it (a test holds the two
            # together). Float reprs are valid JSON numbers: each trade is formatted once.
            price_text = repr(float(price))
            volume_text = repr(float(volume))
            key = f"{message_key}|{position}"
            if conditions is None:
                conditions_text = "null"
            elif len(conditions) > _CONDITION_CACHE_ENTRY_CODES:
                conditions_text = dumps(conditions).decode()
                self._stats.uncached_conditions += 1
            else:
                shape = tuple(conditions)
                cached = condition_texts.get(shape)
                if cached is not None:
                    conditions_text = cached
                else:
                    conditions_text = dumps(conditions).decode()
                    size = len(conditions_text)
                    if size <= _CONDITION_CACHE_ENTRY_BYTES and (
                        self._condition_bytes + size <= _CONDITION_CACHE_BYTES
                    ):
                        condition_texts[shape] = conditions_text
                        self._condition_bytes += size
                    else:
                        self._stats.uncached_conditions += 1
            exchange_text = "null" if exchange is None else dumps(exchange).decode()
            lines.append(
                f'{{"trade_id":"{blake2b(key.encode(), digest_size=16).hexdigest()}",'
                f'"symbol":"{symbol}","price":{price_text},"volume":{volume_text},'
                f'"trade_ts_ms":{ts},"conditions":{conditions_text},'
                f'"exchange":{exchange_text},"received_at":"{received_at}",'
                f'"source":"{SOURCE}"}}\n'
            )
            accepted += 1
        for date, batch in batches.items():
            self._trades.add(date, "".join(batch).encode(), len(batch))
        self._stats.received += len(data)
        self._stats.accepted += accepted

    # ------------------------------------------------------------------ landing

    def _maybe_flush(self) -> None:
        now = time.monotonic()
        if self._landing_blocked_since is not None:
            if now >= self._landing_retry_at:
                self._flush()
        elif now - self._last_flush >= self.flush_seconds:
            self._flush()

    def _flush(self) -> bool:
        """Land every buffered trade and reject; counts move from accepted to landed.

        Returns False when landing failed with an error worth retrying (the lines stay
        buffered and the collector stops reading until a retry succeeds); raises LandingError
        for one that retrying cannot fix.
        """
        pending = self._trades.pending
        try:
            files = self._trades.flush()
            self._rejects.flush()
        except OSError as exc:
            if exc.errno not in _TRANSIENT_WRITE_ERRORS:
                # Not a connection problem: raised as LandingError so run() ends instead of
                # reconnecting while the buffer grows.
                raise LandingError(
                    f"cannot land trades under {self._landing_where}: {type(exc).__name__}: "
                    f"{exc.strerror or exc}"
                ) from exc
            self._landing_failed(exc)
            return False
        finally:
            self._stats.landed += pending - self._trades.pending
            self._stats.rejects_dropped = self._rejects.dropped
        self._stats.files += len(files)
        self._last_flush = time.monotonic()
        if self._landing_blocked_since is not None:
            stalled = self._last_flush - self._landing_blocked_since
            self._stats.landing_stalled_seconds += stalled
            self._landing_blocked_since = None
            self._landing_attempt = 0
            self._note_problem(f"landing resumed after {stalled:.1f} s")
        return True

    def _landing_failed(self, exc: OSError) -> None:
        now = time.monotonic()
        self._stats.landing_retries += 1
        delay = reconnect_delay(
            self._landing_attempt, self.landing_retry_initial_seconds,
            self.landing_retry_max_seconds, self._random,
        )
        self._landing_attempt += 1
        self._landing_retry_at = now + delay
        problem = f"{type(exc).__name__}: {exc.strerror or exc}"
        self._note_problem(f"cannot land trades ({problem}); retrying in {delay:.1f} s")
        if self._landing_blocked_since is not None:
            return
        self._landing_blocked_since = now
        self._stats.landing_stalls += 1
        held = self._trades.pending
        self._alert(
            AlertKind.LANDING_FAILED, "critical", "Collector cannot land trades",
            f"Writing under {self._landing_where} failed ({problem}). The Finnhub collector "
            f"holds {held:,} trades in memory, has stopped reading the feed and retries with "
            "backoff; trades the feed sends meanwhile are not received. Free space on (or fix) "
            "the volume of the data home.",
            {"landing": self._landing_where, "trades held": f"{held:,}", "error": problem},
        )

    def _wait_for_landing(self) -> None:
        """Retry the blocked landing with backoff until it succeeds or the run must stop."""
        while self._landing_blocked_since is not None and not self._should_stop():
            remaining = self._landing_retry_at - time.monotonic()
            if remaining > 0:
                time.sleep(min(remaining, _POLL_SECONDS))
                self._report_progress()
                continue
            self._flush()

    def _final_flush(self) -> None:
        """Land what is held before run() returns, retrying a blocked landing for a while."""
        if self._flush():
            return
        give_up = time.monotonic() + self.landing_grace_seconds
        while time.monotonic() < give_up:
            time.sleep(max(0.0, min(self._landing_retry_at, give_up) - time.monotonic()))
            if self._flush():
                return
        if self._landing_blocked_since is not None:
            self._stats.landing_stalled_seconds += time.monotonic() - self._landing_blocked_since
        raise LandingError(
            f"cannot land trades under {self._landing_where} ({self._stats.last_problem}); "
            f"{self._trades.pending:,} trades received in this run were not landed"
        )

    def _report_progress(self, force: bool = False) -> None:
        if self._on_progress is None:
            return
        now = time.monotonic()
        if not force and now - self._last_progress < self._progress_every:
            return
        self._last_progress = now
        self._stats.elapsed_seconds = now - self._started
        try:
            self._on_progress(self.stats)
        except Exception as exc:  # a broken display must not stop collection
            print(f"progress display failed: {type(exc).__name__}", file=sys.stderr)
            self._on_progress = None
