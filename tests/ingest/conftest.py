"""Fixtures shared by the ingest tests: the simulated market as a real server on 127.0.0.1.

- `simulator(**fields)` and `ground_truth_dir`: see tests/support/simulator.py.
- `record_feed(url, symbols, ...)` is a plain websocket-client that subscribes, records every
  frame until the server ends the stream, and can reconnect after abrupt drops.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
import websocket

from ingest.symbols import SYMBOL_PATTERN
from ingest.trade_id import MessageCounter, trade_id
from tests.support.simulator import ground_truth_dir, simulator  # noqa: F401 (fixtures)


@dataclass
class FeedRecording:
    """Everything one client received, frame by frame, across its connections."""

    frames: list[str] = field(default_factory=list)  # every text frame, in order
    frame_connections: list[int] = field(default_factory=list)  # the connection of each frame
    connections: int = 0
    abrupt_ends: int = 0  # connections that ended without a close frame
    close_codes: list[int] = field(default_factory=list)

    def messages(self) -> list[Any]:
        """Each frame parsed as JSON (None where it is not JSON)."""
        parsed = []
        for frame in self.frames:
            try:
                parsed.append(orjson.loads(frame))
            except orjson.JSONDecodeError:
                parsed.append(None)
        return parsed

    def trade_messages(self) -> list[list[dict[str, Any]]]:
        """The `data` of every well-formed trade message (at most 1 MiB, every trade valid)."""
        return [
            m["data"] for frame, m in zip(self.frames, self.messages(), strict=True)
            if isinstance(m, dict) and m.get("type") == "trade" and len(frame) <= ONE_MIB
            and isinstance(m.get("data"), list) and all(is_valid_trade(t) for t in m["data"])
        ]

    def trade_ids(self) -> list[str]:
        """Ids of every trade in every well-formed trade message, as a collector makes them:
        from the message's key on its connection and each trade's position."""
        ids: list[str] = []
        counters: dict[int, MessageCounter] = {}
        for frame, message, connection in zip(
            self.frames, self.messages(), self.frame_connections, strict=True
        ):
            if not (isinstance(message, dict) and message.get("type") == "trade"
                    and isinstance(message.get("data"), list) and len(frame) <= ONE_MIB):
                continue
            key = counters.setdefault(connection, MessageCounter()).key(frame.encode())
            if all(is_valid_trade(t) for t in message["data"]):
                ids.extend(trade_id(key, i) for i in range(len(message["data"])))
        return ids


ONE_MIB = 1024 * 1024


def is_valid_trade(trade: object) -> bool:
    """What a careful collector accepts: exact JSON types, finite positive price, plausible time."""
    if not isinstance(trade, dict):
        return False
    p, s, t, v, c = (trade.get(k) for k in ("p", "s", "t", "v", "c"))
    return (
        type(p) in (int, float) and math.isfinite(p) and p > 0
        and type(s) is str and SYMBOL_PATTERN.fullmatch(s) is not None
        and type(t) is int and 946_684_800_000 < t < 4_102_444_800_000
        and type(v) in (int, float) and math.isfinite(v) and v >= 0
        and (c is None or (type(c) is list and all(type(x) is str for x in c)))
    )


def _record_feed(
    url: str,
    symbols: tuple[str, ...] | list[str],
    *,
    reconnect: bool = False,
    max_connections: int = 100,
    max_frames: int | None = None,
    timeout: float = 60.0,
) -> FeedRecording:
    """Subscribe to `symbols` and record frames until a normal close (or `max_frames`).

    With `reconnect`, an abrupt end (no close frame) opens a new connection and subscribes
    again, as a collector would.
    """
    recording = FeedRecording()
    while recording.connections < max_connections:
        # websocket-client's pure-Python UTF-8 check takes seconds on a 2 MiB frame.
        ws = websocket.create_connection(url, timeout=timeout, skip_utf8_validation=True)
        recording.connections += 1
        for symbol in symbols:
            ws.send(json.dumps({"type": "subscribe", "symbol": symbol}))
        try:
            while max_frames is None or len(recording.frames) < max_frames:
                opcode, data = ws.recv_data_frame(control_frame=True)
                if opcode == websocket.ABNF.OPCODE_TEXT:
                    recording.frames.append(data.data.decode())
                    recording.frame_connections.append(recording.connections)
                elif opcode == websocket.ABNF.OPCODE_CLOSE:
                    payload = data.data
                    recording.close_codes.append(
                        int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                    )
                    return recording
            return recording
        except websocket.WebSocketConnectionClosedException:
            recording.abrupt_ends += 1
            if not reconnect:
                return recording
        finally:
            ws.close()
            ws.shutdown()  # after answering a close frame, close() alone leaves the socket open
    return recording


@pytest.fixture
def record_feed() -> Callable[..., FeedRecording]:
    """The recording client, see `_record_feed`."""
    return _record_feed
