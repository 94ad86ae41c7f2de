"""The simulator's answer key: which trades it sent were anomalous, and why.

Two newline-delimited JSON files in one directory, appended and flushed as trades are sent:
- events.ndjson: one line per injected event, written when its first trade is sent in this
  run: event_id, kind, symbol, start_ts_ms, end_ts_ms, n_trades, params (kind-specific);
- trades.ndjson: one line per anomalous trade actually sent: trade_id (as a collector computes
  it from the message it received), event_id, kind, symbol, trade_ts_ms.
A second run with the same seed appends the same lines again: readers de-duplicate on
event_id and trade_id.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import IO, Any

import orjson

EVENTS_FILE = "events.ndjson"
TRADES_FILE = "trades.ndjson"


class GroundTruthWriter:
    """Appends ground-truth lines; thread-safe; a no-op without a directory."""

    def __init__(self, directory: Path | None):
        self.directory = directory
        self._lock = threading.Lock()
        self._events: IO[bytes] | None = None
        self._trades: IO[bytes] | None = None
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
            self._events = open(directory / EVENTS_FILE, "ab")  # noqa: SIM115 (kept open)
            self._trades = open(directory / TRADES_FILE, "ab")  # noqa: SIM115

    def write(self, events: list[dict[str, Any]], trades: list[dict[str, Any]]) -> None:
        """Append event and trade lines and flush them, so a reader sees them at once."""
        if self._events is None or self._trades is None or not (events or trades):
            return
        with self._lock:
            if events:
                self._events.write(b"".join(orjson.dumps(e) + b"\n" for e in events))
                self._events.flush()
            if trades:
                self._trades.write(b"".join(orjson.dumps(t) + b"\n" for t in trades))
                self._trades.flush()

    def close(self) -> None:
        with self._lock:
            for handle in (self._events, self._trades):
                if handle is not None:
                    handle.close()
            self._events = self._trades = None


def read_ground_truth(directory: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Events and trades of a ground-truth directory, de-duplicated on event_id and trade_id."""
    def read(name: str, key: str) -> list[dict[str, Any]]:
        path = directory / name
        if not path.exists():
            return []
        rows: dict[str, dict[str, Any]] = {}
        for line in path.read_bytes().splitlines():
            if line.strip():
                row = orjson.loads(line)
                rows.setdefault(row[key], row)
        return list(rows.values())

    return read(EVENTS_FILE, "event_id"), read(TRADES_FILE, "trade_id")
