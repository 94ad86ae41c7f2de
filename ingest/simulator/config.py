"""What the simulated market looks like and which faults it injects: plain frozen dataclasses."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from ingest.symbols import validate_symbols

NEW_YORK = ZoneInfo("America/New_York")

DEFAULT_SYMBOLS: tuple[str, ...] = (
    "AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "TSLA", "JPM", "XOM", "KO",
)
# A Friday before the March 2024 DST change, pre-market.
DEFAULT_START = datetime(2024, 3, 8, 9, 0, tzinfo=NEW_YORK)


class SimulatorConfigError(ValueError):
    """A simulator setting is out of range; the message names the field."""


def _every_n(name: str, value: int | None) -> None:
    if value is not None and (not isinstance(value, int) or value < 1):
        raise SimulatorConfigError(f"{name} must be a positive whole number or None, got {value!r}")


@dataclass(frozen=True)
class FaultConfig:
    """Deterministic faults: each "every n-th" counts trade messages on one connection.

    None switches a fault off. Fault frames are sent in addition to the trade messages, never
    instead of them, so the stream of valid trades does not depend on which faults are on.
    """

    drop_every_n_messages: int | None = None  # close the socket abruptly after every N
    malformed_every_n: int | None = None  # a text frame that is not valid JSON
    wrong_types_every_n: int | None = None  # a trade message whose trades all have bad fields
    oversized_every_n: int | None = None  # a ~2 MiB trade message (above a 1 MiB client limit)
    unknown_type_every_n: int | None = None  # {"type": "news", ...}
    error_every_n: int | None = None  # {"type": "error", "msg": ...}
    ping_every_n: int | None = 50  # {"type": "ping"}
    slow_response_seconds: float = 0.0  # Alpha Vantage answers after this delay
    http_5xx_every_n: int | None = None  # Alpha Vantage answers 503 to every n-th request

    def __post_init__(self) -> None:
        for name in (
            "drop_every_n_messages", "malformed_every_n", "wrong_types_every_n",
            "oversized_every_n", "unknown_type_every_n", "error_every_n", "ping_every_n",
            "http_5xx_every_n",
        ):
            _every_n(name, getattr(self, name))
        if not (math.isfinite(self.slow_response_seconds) and self.slow_response_seconds >= 0):
            raise SimulatorConfigError("slow_response_seconds must be a finite number ≥ 0")


@dataclass(frozen=True)
class SimulatorConfig:
    """The market, its pace, its limits and its faults. Same config, same trades."""

    seed: int = 42
    symbols: tuple[str, ...] = DEFAULT_SYMBOLS
    start: datetime = DEFAULT_START
    speed: float = 0.0  # 0 = as fast as the client reads; 1 = real time; 60 = a minute a second
    trades_per_second: float = 2.0  # mean per symbol in the regular session
    anomaly_rate: float = 0.01  # share of trades that belong to an injected anomaly
    max_trades: int | None = None  # stop after this many valid trades sent, then close normally
    duration_seconds: float | None = None  # simulated (calendar) seconds after `start` to serve
    batch_size: int = 100  # most trades in one WebSocket message
    # Finnhub token required in ?token= (None accepts any or none); kept out of repr.
    token: str | None = field(default=None, repr=False)
    # Alpha Vantage key required (None accepts any non-empty key); kept out of repr.
    av_api_key: str | None = field(default=None, repr=False)
    av_calls_per_minute: int = 5
    av_calls_per_day: int = 25
    av_as_of: datetime | None = None  # Alpha Vantage "now"; default: end of the served window
    faults: FaultConfig = field(default_factory=FaultConfig)
    ground_truth_dir: Path | None = None  # events.ndjson and trades.ndjson go here
    record_sent_ids: bool = False  # keep every sent trade id (tests; off for long benches)
    # Regime switch, for drift work: the same seed under different market conditions.
    volatility_multiplier: float = 1.0
    volume_multiplier: float = 1.0
    extra_symbols: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "symbols", validate_symbols(tuple(self.symbols)))
            if self.extra_symbols:
                object.__setattr__(
                    self, "extra_symbols", validate_symbols(tuple(self.extra_symbols))
                )
        except ValueError as exc:
            raise SimulatorConfigError(f"symbols: {exc}") from exc
        if self.start.tzinfo is None:
            raise SimulatorConfigError("start needs a time zone, e.g. 2024-03-08T09:00-05:00")
        if self.av_as_of is not None and self.av_as_of.tzinfo is None:
            raise SimulatorConfigError("av_as_of needs a time zone")
        checks = {
            "speed": self.speed >= 0,
            "trades_per_second": self.trades_per_second > 0,
            "anomaly_rate": 0 <= self.anomaly_rate <= 0.5,
            "batch_size": self.batch_size >= 1,
            "av_calls_per_minute": self.av_calls_per_minute >= 1,
            "av_calls_per_day": self.av_calls_per_day >= 1,
            "volatility_multiplier": self.volatility_multiplier > 0,
            "volume_multiplier": self.volume_multiplier > 0,
        }
        for name, ok in checks.items():
            value = getattr(self, name)
            if not ok or not math.isfinite(value):
                raise SimulatorConfigError(f"{name} is out of range: {value!r}")
        if self.max_trades is not None and self.max_trades < 1:
            raise SimulatorConfigError(f"max_trades must be positive, got {self.max_trades}")
        if self.duration_seconds is not None and not self.duration_seconds > 0:
            raise SimulatorConfigError(
                f"duration_seconds must be positive, got {self.duration_seconds}"
            )

    @property
    def market_symbols(self) -> tuple[str, ...]:
        """Every symbol that trades: the configured ones, then the regime's extra ones."""
        return tuple(dict.fromkeys(self.symbols + self.extra_symbols))

    @property
    def start_ms(self) -> int:
        return int(round(self.start.timestamp() * 1000))

    @property
    def end_ms(self) -> int | None:
        if self.duration_seconds is None:
            return None
        return self.start_ms + int(round(self.duration_seconds * 1000))

    @property
    def alphavantage_as_of_ms(self) -> int:
        """The simulated "now" of the Alpha Vantage API: fixed, so that answers are repeatable."""
        if self.av_as_of is not None:
            return int(round(self.av_as_of.timestamp() * 1000))
        return self.end_ms if self.end_ms is not None else self.start_ms
