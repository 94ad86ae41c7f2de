"""Deterministic trade ids that tell a genuine repeated print from a redelivered message.

What Finnhub guarantees, and what it does not. A WebSocket trade message is
`{"type":"trade","data":[{"s","p","t","v","c"}, ...]}`: no message id, no sequence number, no
trade id, and no replay (trades sent while a client is disconnected are not resent). `t` is
in milliseconds, and two prints of the same symbol at the same price and size in the same
millisecond are ordinary (one order filling against two resting orders at one price level), so
the fields of a trade cannot identify it. TCP delivers each message once and in order on one
connection.

What the collector can know. The bytes of each message, its position in the stream of the
connection that delivered it, and the position of each trade in its message. The id of a
trade is therefore built from:

- the message's bytes (BLAKE2b), so the same print in two different messages differs;
- the number of identical messages that came before it on the same connection (among the
  last REPEAT_WINDOW_MESSAGES), so two genuine identical messages differ too;
- the trade's position in the message, so identical prints within one message differ.

A message replayed on a new connection (a reconnect, a test replaying a stream, the same
landed file read twice) yields the same ids, and silver keeps one copy. What nobody can tell
apart is a message the server sends twice on one connection from two genuine identical
messages: both are kept, which loses nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

#: How many recent message hashes a connection remembers to count identical messages. An
#: identical message (same prints, same milliseconds) further apart than this is a resend.
REPEAT_WINDOW_MESSAGES = 16_384


def message_key(payload: bytes | bytearray | memoryview, occurrence: int) -> str:
    """The identity of one received message: its bytes' hash and how many identical messages
    preceded it on the same connection (0 for the first)."""
    digest = hashlib.blake2b(payload, digest_size=16).hexdigest()
    return f"{digest}:{int(occurrence)}"


def trade_id(key: str, position: int) -> str:
    """The 32-hex-digit id of the trade at `position` in the message identified by `key`."""
    return hashlib.blake2b(f"{key}|{int(position)}".encode(), digest_size=16).hexdigest()


class MessageCounter:
    """Counts identical messages on one connection, remembering the last `window` hashes.

    `key(payload)` returns the message key of the next message; make a new counter for each
    connection.
    """

    __slots__ = ("_seen", "_window")

    def __init__(self, window: int = REPEAT_WINDOW_MESSAGES) -> None:
        self._seen: dict[bytes, int] = {}
        self._window = window

    def key(self, payload: bytes | bytearray | memoryview) -> str:
        digest = hashlib.blake2b(payload, digest_size=16).digest()
        seen = self._seen
        occurrence = seen.get(digest)
        if occurrence is None:
            occurrence = 0
            if len(seen) >= self._window:
                del seen[next(iter(seen))]  # forget the oldest message first seen
        seen[digest] = occurrence + 1
        return f"{digest.hex()}:{occurrence}"


def trade_ids(key: str, count: int) -> list[str]:
    """The ids of the `count` trades of one message (positions 0..count-1)."""
    return [trade_id(key, position) for position in range(count)]


def stream_trade_ids(payloads: Iterable[bytes], counts: Iterable[int]) -> list[str]:
    """Ids of every trade of a connection's trade messages, in order (for tests and tools)."""
    counter = MessageCounter()
    return [
        tid for payload, count in zip(payloads, counts, strict=True)
        for tid in trade_ids(counter.key(payload), count)
    ]
