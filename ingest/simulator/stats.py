"""What the simulator has done so far: the truth that collector tests compare against."""

from __future__ import annotations

import threading
from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True)
class SimulatorStats:
    """A snapshot of the simulator's counters."""

    trades_sent: int = 0  # valid trades in well-formed trade messages written to a live socket
    trade_messages_sent: int = 0
    messages_sent: int = 0  # every frame: trade messages, pings and injected faults
    anomalous_trades_sent: int = 0
    events_sent: int = 0  # distinct anomaly events with at least one trade sent
    malformed_sent: int = 0
    wrong_types_sent: int = 0
    oversized_sent: int = 0
    unknown_type_sent: int = 0
    errors_sent: int = 0  # injected {"type": "error"} frames
    pings_sent: int = 0
    connections: int = 0  # accepted WebSocket connections, all time
    active_connections: int = 0
    rejected_connections: int = 0  # refused for a bad token
    forced_disconnects: int = 0
    av_requests: int = 0  # every Alpha Vantage request
    av_served: int = 0  # answered with data
    av_rate_limited: int = 0  # answered with a Note or Information body
    av_errors: int = 0  # answered with an Error Message body
    av_5xx: int = 0
    market_time_ms: int | None = None  # time of the last trade sent
    finished: bool = False  # max_trades or the end of the duration reached


class Counters:
    """The live, thread-safe counters behind SimulatorStats."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, Any] = {f.name: f.default for f in fields(SimulatorStats)}

    def add(self, **increments: int) -> None:
        with self._lock:
            for name, amount in increments.items():
                self._values[name] += amount

    def set(self, **values: object) -> None:
        with self._lock:
            self._values.update(values)

    def get(self, name: str) -> object:
        with self._lock:
            return self._values[name]

    def snapshot(self) -> SimulatorStats:
        with self._lock:
            return SimulatorStats(**self._values)
