"""The Finnhub-protocol WebSocket feed: one market clock shared by every connection.

A single pump thread walks the market forward in batches (at most `batch_size` trades; with
speed > 0 also at most 100 ms of wall time each) and writes each batch to every connection
that is subscribed to one of its symbols, filtered to that connection's symbols. With
speed 0 the clock only moves while a subscribed client is connected and reads, so a client
that is dropped and reconnects resumes exactly where it left off; with speed > 0 the clock
follows the wall clock (closed hours skipped) whether or not anyone listens.

A trade counts as sent only once its message was written to a live socket. A forced drop
half-closes the socket after the last counted message (FIN, no close frame), so everything
counted reaches the client before it sees the connection end.
"""

from __future__ import annotations

import contextlib
import hmac
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TypeGuard
from urllib.parse import parse_qs, urlsplit

import numpy as np
import orjson
from websockets.exceptions import ConnectionClosed
from websockets.sync.server import ServerConnection

from ingest.simulator.config import SimulatorConfig
from ingest.simulator.ground_truth import GroundTruthWriter
from ingest.simulator.market import CONDITIONS, Market, Trades
from ingest.simulator.sessions import DAY_MS, day_open_ms, trading_days_from
from ingest.simulator.stats import Counters
from ingest.symbols import InvalidSymbol, validate_symbol
from ingest.trade_id import MessageCounter, trade_id

# A new client is sent trades once its subscriptions have been quiet this long, so that a
# client that subscribes symbol by symbol starts with all of them (and two runs see the same
# messages).
SUBSCRIPTION_SETTLE_SECONDS = 0.2
WALL_BATCH_SECONDS = 0.1  # with speed > 0, one message holds at most this much wall time
OVERSIZED_BYTES = 2 * 1024 * 1024 + 4096  # above a 1 MiB client limit, whatever its rounding
PING = b'{"type":"ping"}'

_CONDITION_OBJECTS = np.empty(len(CONDITIONS), dtype=object)
for _code, _value in enumerate(CONDITIONS):
    _CONDITION_OBJECTS[_code] = _value

_MALFORMED = (
    b'{"type":"trade","data":[{"p":101.5,"s":"AAPL","t":17099',  # cut off mid-message
    b"trade AAPL 101.5 x 100",  # not JSON at all
    b'{"type": "trade", "data": [}',  # broken structure
    b"{'type': 'trade', 'data': []}",  # Python repr, not JSON
)
# Each corrupts one field of a trade in a way a validating collector must refuse.
_CORRUPTIONS = (
    lambda t: {**t, "p": "abc"},
    lambda t: {**t, "t": None},
    lambda t: {**t, "v": "lots"},
    lambda t: {**t, "s": 12345},
    lambda t: {**t, "p": True},
    lambda t: {**t, "p": str(t["p"])},  # a number in a string is still the wrong type
    lambda t: {**t, "p": -abs(t["p"])},
    lambda t: {**t, "v": -100},
    lambda t: {k: v for k, v in t.items() if k != "p"},
    lambda t: {**t, "t": str(t["t"])},
)
_ERRORS = (
    "Subscribing to too many symbols",
    "Internal server error, please retry",
    "Rate limit exceeded for this connection",
)


class _FeedConnection:
    """One client: its subscriptions and how many trade messages it has been sent."""

    def __init__(self, ws: ServerConnection, n_symbols: int):
        self.ws = ws
        self.subscriptions: set[str] = set()
        self.mask = np.zeros(n_symbols, dtype=bool)  # subscribed market symbols
        self.ready_at = float("inf")
        self.alive = True
        self.started = False  # trades have been sent to it
        self.trade_messages = 0
        # Trade ids depend on identical messages before on the same connection, as the
        # collector counts them (ingest.trade_id).
        self.message_keys = MessageCounter()

    @property
    def listening(self) -> bool:
        return self.alive and bool(self.mask.any())


@dataclass
class _Batch:
    trades: Trades
    lo: int
    hi: int
    elapsed_ms: int  # open market time from `start` to the batch's first trade


class Feed:
    """The market clock and the WebSocket connections it writes to."""

    def __init__(
        self, config: SimulatorConfig, market: Market, counters: Counters,
        ground_truth: GroundTruthWriter,
    ):
        self.config = config
        self.market = market
        self.counters = counters
        self.ground_truth = ground_truth
        self.symbols = market.symbols
        self._symbol_objects = np.array(self.symbols, dtype=object)
        self._symbol_position = {symbol: i for i, symbol in enumerate(self.symbols)}
        self._connections: list[_FeedConnection] = []
        self._changed = threading.Condition()
        self.stopping = threading.Event()
        self.finished = threading.Event()
        self._events_written: set[str] = set()
        self._sent_ids: set[str] = set()
        # Held from a message's send until its ids are recorded, so that a snapshot of the sent
        # ids never misses a message a client may already have read.
        self._sent_ids_lock = threading.RLock()
        self._trades_sent = 0

    # ---- connections (one handler thread each) ----

    def handle(self, ws: ServerConnection) -> None:
        """Serve one WebSocket client: token check, then subscribe/unsubscribe until it leaves."""
        query = parse_qs(urlsplit(ws.request.path if ws.request else "").query)
        token = (query.get("token") or [""])[0]
        if self.config.token is not None and not hmac.compare_digest(
            token.encode(), self.config.token.encode()
        ):
            self.counters.add(rejected_connections=1)
            try:
                ws.send('{"type":"error","msg":"Invalid API key"}')
                ws.close(1008, "Invalid API key")
            except ConnectionClosed:
                pass
            return
        if self.finished.is_set() or self.stopping.is_set():
            ws.close(1001, "the simulated session has ended")
            return
        connection = _FeedConnection(ws, len(self.symbols))
        with self._changed:
            self._connections.append(connection)
        self.counters.add(connections=1, active_connections=1)
        try:
            for message in ws:
                self._on_client_message(connection, message)
        except ConnectionClosed:
            pass
        finally:
            with self._changed:
                connection.alive = False
                self._connections.remove(connection)
                self._changed.notify_all()
            self.counters.add(active_connections=-1)

    def _reply_error(self, connection: _FeedConnection, text: str) -> None:
        with contextlib.suppress(ConnectionClosed, OSError):
            connection.ws.send(orjson.dumps({"type": "error", "msg": text}), text=True)

    def _on_client_message(self, connection: _FeedConnection, message: str | bytes) -> None:
        try:
            request = orjson.loads(message)
        except orjson.JSONDecodeError:
            self._reply_error(connection, "Malformed message: expected JSON")
            return
        kind = request.get("type") if isinstance(request, dict) else None
        if kind not in ("subscribe", "unsubscribe"):
            self._reply_error(connection, f"Unknown message type: {str(kind)[:40]}")
            return
        try:
            symbol = validate_symbol(request.get("symbol"))
        except InvalidSymbol:
            self._reply_error(connection, "Invalid symbol")
            return
        with self._changed:
            if kind == "subscribe":
                connection.subscriptions.add(symbol)
            else:
                connection.subscriptions.discard(symbol)
            position = self._symbol_position.get(symbol)
            if position is not None:
                connection.mask[position] = kind == "subscribe"
            if not connection.started:  # once trades flow, changes apply at once
                connection.ready_at = time.monotonic() + SUBSCRIPTION_SETTLE_SECONDS
            self._changed.notify_all()

    def _listeners(self) -> list[_FeedConnection]:
        """Connections to write the next batch to; with speed 0, wait until there is one."""
        with self._changed:
            while not self.stopping.is_set():
                now = time.monotonic()
                listening = [c for c in self._connections if c.listening]
                ready = [c for c in listening if c.ready_at <= now]
                if ready or self.config.speed > 0:
                    return ready
                wait = min((c.ready_at for c in listening), default=now + 0.5) - now
                self._changed.wait(max(0.001, min(wait, 0.5)))
        return []

    # ---- the market clock (the pump thread) ----

    def _batches(self) -> Iterator[_Batch]:
        config = self.config
        start_ms, end_ms = config.start_ms, config.end_ms
        elapsed_before = 0  # open market time served on earlier days
        window_ms = WALL_BATCH_SECONDS * config.speed * 1000 if config.speed > 0 else None
        for day in trading_days_from(start_ms):
            open_ms = day_open_ms(day)
            if end_ms is not None and open_ms >= end_ms:
                return
            served_from = max(open_ms, start_ms)
            served_to = open_ms + DAY_MS if end_ms is None else min(open_ms + DAY_MS, end_ms)
            trades = self.market.day(day).between(start_ms, end_ms)
            n = len(trades)
            elapsed = elapsed_before + (trades.ts_ms - served_from)
            if window_ms is None:
                bounds = list(range(0, n, config.batch_size))
            else:
                bucket = (elapsed // window_ms).astype(np.int64)
                segments = [0, *(np.flatnonzero(np.diff(bucket)) + 1).tolist(), n]
                bounds = []
                for a, b in zip(segments[:-1], segments[1:], strict=False):
                    bounds.extend(range(a, b, config.batch_size))
            bounds.append(n)
            for lo, hi in zip(bounds[:-1], bounds[1:], strict=False):
                if hi > lo:
                    yield _Batch(trades, lo, hi, int(elapsed[lo]))
            elapsed_before += served_to - served_from
            del trades, elapsed
        return

    def _served_open_ms(self) -> int | None:
        """Open market time in the whole served window (None: endless)."""
        config = self.config
        if config.end_ms is None:
            return None
        total = 0
        for day in trading_days_from(config.start_ms):
            open_ms = day_open_ms(day)
            if open_ms >= config.end_ms:
                return total
            total += min(open_ms + DAY_MS, config.end_ms) - max(open_ms, config.start_ms)
        return total  # pragma: no cover  (the generator is endless)

    def run(self) -> None:
        """The pump: walk the market and write it to the listeners until the end or stop()."""
        try:
            self._pump()
        finally:
            if not self.stopping.is_set():
                self._close_all_normally()
                self.counters.set(finished=True)
                self.finished.set()

    def _pump(self) -> None:
        config = self.config
        wall_origin = time.monotonic()
        for batch in self._batches():
            if config.speed > 0:
                due = wall_origin + batch.elapsed_ms / 1000 / config.speed
                delay = due - time.monotonic()
                if delay > 0 and self.stopping.wait(delay):
                    return
            listeners = self._listeners()
            if self.stopping.is_set():
                return
            encoded: dict[bytes, tuple[np.ndarray, bytes, list[dict[str, Any]]]] = {}
            for connection in listeners:
                if config.max_trades is not None and self._trades_sent >= config.max_trades:
                    return
                self._send_batch(connection, batch, encoded)
            if config.max_trades is not None and self._trades_sent >= config.max_trades:
                return
        if config.speed > 0:  # serve the rest of the window, quiet hours included
            total = self._served_open_ms()
            if total is not None:
                self.stopping.wait(max(0.0, wall_origin + total / 1000 / config.speed
                                       - time.monotonic()))

    def _select(self, connection: _FeedConnection, batch: _Batch) -> np.ndarray:
        symbols = batch.trades.symbol_index[batch.lo : batch.hi]
        if connection.mask.all():
            selected = np.arange(batch.lo, batch.hi)
        else:
            selected = np.flatnonzero(connection.mask[symbols]) + batch.lo
        if self.config.max_trades is not None:
            selected = selected[: max(0, self.config.max_trades - self._trades_sent)]
        return selected

    def _rows(self, trades: Trades, selected: np.ndarray) -> list[dict[str, Any]]:
        prices = (trades.cents[selected] / 100.0).tolist()
        symbols = self._symbol_objects[trades.symbol_index[selected]].tolist()
        times = trades.ts_ms[selected].tolist()
        volumes = trades.volume[selected].tolist()
        conditions = _CONDITION_OBJECTS[trades.conditions[selected]].tolist()
        return [
            {"p": p, "s": s, "t": t, "v": v, "c": c}
            for p, s, t, v, c in zip(prices, symbols, times, volumes, conditions, strict=True)
        ]

    def _send(self, connection: _FeedConnection, payload: bytes) -> bool:
        try:
            connection.ws.send(payload, text=True)
        except (ConnectionClosed, OSError):
            connection.alive = False
            return False
        self.counters.add(messages_sent=1)
        return True

    def _send_batch(
        self, connection: _FeedConnection, batch: _Batch,
        encoded: dict[bytes, tuple[np.ndarray, bytes, list[dict[str, Any]]]],
    ) -> None:
        selected = self._select(connection, batch)
        if len(selected) == 0:
            return
        key = selected.tobytes() if len(selected) != batch.hi - batch.lo else b"all"
        if key not in encoded:
            rows = self._rows(batch.trades, selected)
            encoded[key] = (selected, orjson.dumps({"type": "trade", "data": rows}), rows)
        selected, payload, rows = encoded[key]
        with self._sent_ids_lock:
            if not connection.alive or not self._send(connection, payload):
                return
            self._trades_sent += len(selected)
            connection.started = True
            connection.trade_messages += 1
            self.counters.add(trades_sent=len(selected), trade_messages_sent=1)
            self.counters.set(market_time_ms=int(batch.trades.ts_ms[selected[-1]]))
            self._record(batch.trades, selected, rows, connection.message_keys.key(payload))
        self._inject_faults(connection, rows)

    def _record(
        self, trades: Trades, selected: np.ndarray, rows: list[dict[str, Any]], key: str
    ) -> None:
        """Ground truth for the anomalous trades of a sent message, ids as a collector makes
        them from the message's key and each trade's position."""
        labels = trades.event[selected]
        positions = np.flatnonzero(labels >= 0).tolist()
        if self.config.record_sent_ids:
            ids = [trade_id(key, i) for i in range(len(rows))]
            with self._sent_ids_lock:
                self._sent_ids.update(ids)
        if not positions:
            return
        new_events: list[dict[str, Any]] = []
        truth: list[dict[str, Any]] = []
        for position in positions:
            row = rows[position]
            label = int(labels[position])
            event = trades.events[label]
            if event.event_id not in self._events_written:
                self._events_written.add(event.event_id)
                new_events.append(event.record())
            truth.append({
                "trade_id": trade_id(key, position),
                "event_id": event.event_id,
                "kind": event.kind,
                "symbol": row["s"],
                "trade_ts_ms": row["t"],
            })
        self.ground_truth.write(new_events, truth)
        self.counters.add(anomalous_trades_sent=len(truth), events_sent=len(new_events))

    def _inject_faults(self, connection: _FeedConnection, rows: list[dict[str, Any]]) -> None:
        faults = self.config.faults
        n = connection.trade_messages

        def due(every: int | None) -> TypeGuard[int]:
            return every is not None and n % every == 0

        frames: list[tuple[str, bytes]] = []
        if due(faults.malformed_every_n):
            frames.append(("malformed_sent", _MALFORMED[(n // faults.malformed_every_n) % 4]))
        if due(faults.wrong_types_every_n):
            k = n // faults.wrong_types_every_n
            bad = [
                _CORRUPTIONS[(k + i) % len(_CORRUPTIONS)](row) for i, row in enumerate(rows[:4])
            ]
            wrong = orjson.dumps({"type": "trade", "data": bad})
            connection.message_keys.key(wrong)  # a trade message to the collector's count too
            frames.append(("wrong_types_sent", wrong))
        if due(faults.oversized_every_n):
            one = orjson.dumps(rows[0])
            copies = OVERSIZED_BYTES // (len(one) + 1) + 1
            oversized = {"type": "trade", "data": [rows[0]] * copies}
            frames.append(("oversized_sent", orjson.dumps(oversized)))
        if due(faults.unknown_type_every_n):
            news = {"type": "news", "data": [{
                "category": "company", "datetime": rows[0]["t"] // 1000,
                "headline": f"{rows[0]['s']} announces quarterly results", "related": rows[0]["s"],
            }]}
            frames.append(("unknown_type_sent", orjson.dumps(news)))
        if due(faults.error_every_n):
            text = _ERRORS[(n // faults.error_every_n) % len(_ERRORS)]
            frames.append(("errors_sent", orjson.dumps({"type": "error", "msg": text})))
        if due(faults.ping_every_n):
            frames.append(("pings_sent", PING))
        for counter, payload in frames:
            if not self._send(connection, payload):
                return
            self.counters.add(**{counter: 1})
        if due(faults.drop_every_n_messages):
            self._drop(connection)

    def _drop(self, connection: _FeedConnection) -> None:
        """Half-close: the client reads all that was sent, then end of stream, no close frame."""
        connection.alive = False
        with contextlib.suppress(OSError):
            connection.ws.socket.shutdown(socket.SHUT_WR)
        self.counters.add(forced_disconnects=1)
        with self._changed:
            self._changed.notify_all()

    def _close_all_normally(self) -> None:
        with self._changed:
            connections = [c for c in self._connections if c.alive]
        closers = [
            threading.Thread(target=self._close_one, args=(c,), daemon=True) for c in connections
        ]
        for closer in closers:
            closer.start()
        for closer in closers:
            closer.join(timeout=5.0)

    @staticmethod
    def _close_one(connection: _FeedConnection) -> None:
        with contextlib.suppress(ConnectionClosed, OSError):
            connection.ws.close(1000, "end of the simulated session")

    def stop(self) -> None:
        """Stop the clock and cut every connection (no waiting on slow clients)."""
        self.stopping.set()
        with self._changed:
            connections = list(self._connections)
            self._changed.notify_all()
        for connection in connections:
            connection.alive = False
            with contextlib.suppress(OSError):
                connection.ws.socket.shutdown(socket.SHUT_RDWR)

    def sent_trade_ids(self) -> set[str]:
        with self._sent_ids_lock:
            return set(self._sent_ids)
