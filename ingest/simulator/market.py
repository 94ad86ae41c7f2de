"""The simulated market: one seeded, seekable stream of trades per symbol and trading day.

Each (seed, symbol, trading day) has its own random stream, so any day can be generated on
its own — the WebSocket feed walks forward from `start`, the Alpha Vantage API aggregates
days before it — and both see the very same trades.

Per symbol and day:
- trade times: a Poisson process per minute whose rate has the intraday U-shape in the
  regular session and is thin before and after it;
- prices: a mid-price random walk whose per-second volatility follows the same U-shape,
  pinned at both ends to daily anchors (a daily random walk, so a day opens near where the
  previous one closed, with a small overnight gap); each print sits at the bid, the ask or
  the mid (bid-ask bounce) and is rounded to the 0.01 tick;
- sizes: odd lots, round lots (mostly 100–300), mixed lots and rare blocks ≥ 10,000 shares,
  scaled by the symbol's lot size and the time of day;
- injected anomalies (see `ingest.simulator.anomalies`).
"""

from __future__ import annotations

import hashlib
import math
import threading
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np

from ingest.simulator.config import SimulatorConfig
from ingest.simulator.sessions import (
    AFTER_HOURS,
    MINUTES_PER_DAY,
    PRE_MARKET,
    REGULAR,
    REGULAR_CLOSE_MINUTE,
    REGULAR_OPEN_MINUTE,
    business_day_index,
    day_open_ms,
    minute_sessions,
)

TICK = 0.01
REGULAR_SECONDS_PER_YEAR = 252 * 6.5 * 3600
_REFERENCE_DAY = date(2024, 3, 8)  # base prices are the opens of this day
_ANCHOR_DAYS = 27_000  # business days from 2000-01-03: past 2100
_ANCHOR_STREAM, _DAY_STREAM, _PLAN_STREAM = 1, 2, 3

# Condition codes of a print, as sent in "c" (index 0: no conditions, "c": null).
# "1" regular sale, "12" Form T (outside regular hours), "37" odd lot.
CONDITIONS: tuple[list[str] | None, ...] = (None, ["1"], ["1", "37"], ["12"], ["12", "37"])


@dataclass(frozen=True)
class SymbolProfile:
    """The character of one symbol."""

    base_price: float  # open of the reference day, 2024-03-08
    annual_volatility: float
    activity: float  # relative trade rate; the default ten average 1.0
    lot_scale: float  # relative size of round and mixed lots


PROFILES: dict[str, SymbolProfile] = {
    "AAPL": SymbolProfile(170.0, 0.22, 1.3, 1.2),
    "MSFT": SymbolProfile(405.0, 0.22, 1.0, 0.8),
    "NVDA": SymbolProfile(875.0, 0.50, 1.6, 0.6),
    "AMZN": SymbolProfile(176.0, 0.30, 1.1, 1.1),
    "GOOGL": SymbolProfile(136.0, 0.28, 0.9, 1.1),
    "META": SymbolProfile(500.0, 0.35, 1.0, 0.7),
    "TSLA": SymbolProfile(178.0, 0.55, 1.5, 1.2),
    "JPM": SymbolProfile(192.0, 0.20, 0.6, 0.9),
    "XOM": SymbolProfile(108.0, 0.22, 0.5, 1.2),
    "KO": SymbolProfile(60.0, 0.13, 0.5, 1.5),
}


def _hash_fractions(text: str, count: int) -> list[float]:
    digest = hashlib.blake2b(text.encode(), digest_size=2 * count).digest()
    return [int.from_bytes(digest[2 * i : 2 * i + 2], "big") / 65535 for i in range(count)]


def profile_for(symbol: str) -> SymbolProfile:
    """The preset profile of a known symbol, or a stable one derived from the symbol's name."""
    if symbol in PROFILES:
        return PROFILES[symbol]
    a, b, c, d = _hash_fractions(symbol, 4)
    return SymbolProfile(
        base_price=round(20.0 * math.exp(a * math.log(20.0)), 2),  # 20 to 400
        annual_volatility=0.18 + 0.32 * b,
        activity=0.5 + c,
        lot_scale=0.7 + 0.6 * d,
    )


def symbol_key(symbol: str) -> int:
    """A stable 32-bit key of a symbol for its random streams (independent of symbol order)."""
    return int.from_bytes(hashlib.blake2b(symbol.encode(), digest_size=4).digest(), "big")


def _minute_shapes() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Relative trade rate, volatility and lot size for each minute of the trading day."""
    minute = np.arange(MINUTES_PER_DAY) + 0.5
    sessions = minute_sessions()
    rate = np.empty(MINUTES_PER_DAY)
    vol = np.empty(MINUTES_PER_DAY)
    size = np.empty(MINUTES_PER_DAY)
    pre, regular, after = sessions == PRE_MARKET, sessions == REGULAR, sessions == AFTER_HOURS
    # U-shape over the regular session with mean exactly 1: busy open and close, quiet lunch.
    x = (minute[regular] - REGULAR_OPEN_MINUTE) / (REGULAR_CLOSE_MINUTE - REGULAR_OPEN_MINUTE)
    u_shape = 0.4 + 1.8 * (2.0 * x - 1.0) ** 2
    rate[regular] = u_shape
    rate[pre] = 0.05 + 0.10 * (minute[pre] / REGULAR_OPEN_MINUTE) ** 2
    rate[after] = 0.03 + 0.20 * np.exp(-(minute[after] - REGULAR_CLOSE_MINUTE) / 60.0)
    vol[regular] = np.sqrt(u_shape)
    vol[pre] = 0.6
    vol[after] = 0.5
    size[regular] = 0.8 + 0.2 * u_shape
    size[pre] = 0.7
    size[after] = 0.7
    return rate, vol, size, sessions


RATE_SHAPE, VOLATILITY_SHAPE, SIZE_SHAPE, MINUTE_SESSION = _minute_shapes()
# Spread as a fraction of price, widest outside the regular session.
_SPREAD_FRACTION = np.where(MINUTE_SESSION == REGULAR, 0.5e-4, 1.5e-4)

# The size mixture (probabilities): odd lots, round lots, mixed lots, blocks.
_ODD, _ROUND, _MIXED = 0.28, 0.62, 0.095  # the rest, 0.005, are blocks
_ROUND_LOT_P = 0.55  # geometric: 1, 2, 3 ... lots of 100
_MIXED_MEDIAN = 300.0


def normal_trade_size(scale: float | np.ndarray) -> float | np.ndarray:
    """Mean size of a non-block trade at a given lot scale: the yardstick of a volume burst."""
    odd_mean = 50.0
    round_mean = 100.0 / _ROUND_LOT_P
    mixed_mean = _MIXED_MEDIAN * math.exp(0.8**2 / 2)
    return (_ODD * odd_mean + (_ROUND * round_mean + _MIXED * mixed_mean) * scale) / (
        _ODD + _ROUND + _MIXED
    )


def sample_sizes(rng: np.random.Generator, scale: np.ndarray) -> np.ndarray:
    """Trade sizes in shares for trades at the given lot scales."""
    n = len(scale)
    kind = rng.random(n)
    sizes = np.empty(n, dtype=np.int64)
    odd = kind < _ODD
    lots = (kind >= _ODD) & (kind < _ODD + _ROUND)
    mixed = (kind >= _ODD + _ROUND) & (kind < _ODD + _ROUND + _MIXED)
    block = kind >= _ODD + _ROUND + _MIXED
    sizes[odd] = rng.integers(1, 100, int(odd.sum()))
    round_lots = rng.geometric(_ROUND_LOT_P, int(lots.sum()))
    sizes[lots] = 100 * np.maximum(1, np.rint(round_lots * scale[lots]))
    sizes[mixed] = np.clip(
        np.rint(rng.lognormal(math.log(_MIXED_MEDIAN), 0.8, int(mixed.sum())) * scale[mixed]),
        101, 9_999,
    )
    sizes[block] = np.maximum(
        10_000, 100 * np.rint(rng.lognormal(0.25, 0.5, int(block.sum())) * scale[block] * 100)
    )
    return sizes


def condition_codes(rng: np.random.Generator, minute: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Index into CONDITIONS: Form T outside regular hours, odd-lot flag, sometimes none."""
    outside = MINUTE_SESSION[minute] != REGULAR
    codes = 1 + 2 * outside.astype(np.int8) + (sizes < 100).astype(np.int8)
    codes[rng.random(len(minute)) < 0.08] = 0
    return codes.astype(np.int8)


@dataclass(frozen=True)
class AnomalyEvent:
    """One injected anomaly: its kind, where it happened and how many trades carry its label."""

    event_id: str
    kind: str
    symbol: str
    start_ts_ms: int
    end_ts_ms: int
    n_trades: int
    params: dict[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """The ground-truth line of events.ndjson."""
        return {
            "event_id": self.event_id,
            "kind": self.kind,
            "symbol": self.symbol,
            "start_ts_ms": self.start_ts_ms,
            "end_ts_ms": self.end_ts_ms,
            "n_trades": self.n_trades,
            "params": self.params,
        }


@dataclass
class Trades:
    """Time-ordered trades as parallel arrays; `event` indexes `events` (-1: a normal trade)."""

    symbols: tuple[str, ...]
    symbol_index: np.ndarray  # int16 into symbols
    ts_ms: np.ndarray  # int64 epoch milliseconds
    cents: np.ndarray  # int64 price in cents
    volume: np.ndarray  # int64 shares
    conditions: np.ndarray  # int8 into CONDITIONS
    event: np.ndarray  # int32 into events
    events: list[AnomalyEvent]

    def __len__(self) -> int:
        return len(self.ts_ms)

    @property
    def price(self) -> np.ndarray:
        """Prices as floats; cents / 100 is the closest double to the decimal price."""
        return self.cents / 100.0

    def between(self, start_ms: int | None, end_ms: int | None) -> Trades:
        """The trades with start_ms ≤ ts < end_ms (events kept whole)."""
        lo = 0 if start_ms is None else int(np.searchsorted(self.ts_ms, start_ms, "left"))
        hi = len(self) if end_ms is None else int(np.searchsorted(self.ts_ms, end_ms, "left"))
        return Trades(
            self.symbols,
            self.symbol_index[lo:hi],
            self.ts_ms[lo:hi],
            self.cents[lo:hi],
            self.volume[lo:hi],
            self.conditions[lo:hi],
            self.event[lo:hi],
            self.events,
        )


class Market:
    """The deterministic market of one configuration."""

    def __init__(self, config: SimulatorConfig):
        self.config = config
        self.symbols = config.market_symbols
        self.profiles = {symbol: profile_for(symbol) for symbol in self.symbols}
        self._reference_index = business_day_index(_REFERENCE_DAY)
        fingerprint = repr(
            (config.seed, config.trades_per_second, config.anomaly_rate,
             config.volatility_multiplier, config.volume_multiplier)
        )
        self.fingerprint = hashlib.blake2b(fingerprint.encode(), digest_size=3).hexdigest()
        self._anchor_cache: dict[str, np.ndarray] = {}
        self._plan_cache: dict[date, dict[str, SymbolPlan]] = {}
        self._cache_lock = threading.Lock()  # the feed and the HTTP threads share the caches
        activity = np.array([self.profiles[s].activity for s in self.symbols])
        lot_scale = np.array([self.profiles[s].lot_scale for s in self.symbols])
        # Expected trades per second and lot scale of each symbol in each minute of the day.
        self.rates = config.trades_per_second * activity[:, None] * RATE_SHAPE[None, :]
        self.scales = lot_scale[:, None] * config.volume_multiplier * SIZE_SHAPE[None, :]

    def _anchors(self, symbol: str) -> np.ndarray:
        """Log open price of each business day, and the overnight gap before the next open."""
        with self._cache_lock:
            cached = self._anchor_cache.get(symbol)
        if cached is None:
            profile = self.profiles[symbol]
            rng = np.random.default_rng([self.config.seed, symbol_key(symbol), _ANCHOR_STREAM])
            daily_sigma = profile.annual_volatility / math.sqrt(252)
            returns = rng.normal(0.0, daily_sigma, _ANCHOR_DAYS)
            gaps = rng.normal(0.0, 0.3 * daily_sigma, _ANCHOR_DAYS)
            log_open = np.concatenate([[0.0], np.cumsum(returns)])
            log_open += math.log(profile.base_price) - log_open[self._reference_index]
            cached = np.stack([log_open[:-1], log_open[1:] - gaps])  # (open, close target)
            with self._cache_lock:
                self._anchor_cache[symbol] = cached
        return cached

    def day_plan(self, day: date) -> dict[str, SymbolPlan]:
        """The anomalies planned for a trading day, per symbol (cached: every symbol needs it)."""
        with self._cache_lock:
            plans = self._plan_cache.get(day)
        if plans is None:
            rng = np.random.default_rng([self.config.seed, business_day_index(day), _PLAN_STREAM])
            plans = plan_day(rng, self.symbols, self.rates, self.scales, self.config.anomaly_rate)
            with self._cache_lock:
                if len(self._plan_cache) >= 512:  # ~2 years; a day's plan is ~100 kB
                    self._plan_cache.pop(next(iter(self._plan_cache)))
                self._plan_cache[day] = plans
        return plans

    def symbol_day(self, symbol: str, day: date) -> Trades:
        """One symbol's trades on one trading day, anomalies included, in time order."""
        config = self.config
        profile = self.profiles[symbol]
        s = self.symbols.index(symbol)
        index = business_day_index(day)
        if not 0 <= index < _ANCHOR_DAYS:
            raise ValueError(f"{day} is outside the simulated calendar (2000–2100)")
        log_open, log_close = self._anchors(symbol)[:, index]
        rng = np.random.default_rng([config.seed, symbol_key(symbol), index, _DAY_STREAM])

        counts = rng.poisson(self.rates[s] * 60.0)
        n = int(counts.sum())
        starts = np.repeat(np.arange(MINUTES_PER_DAY, dtype=np.int64) * 60_000, counts)
        offsets = np.sort(starts + rng.integers(0, 60_000, n))  # ms after 04:00
        minute = offsets // 60_000

        sigma = (
            profile.annual_volatility / math.sqrt(REGULAR_SECONDS_PER_YEAR)
            * config.volatility_multiplier
        )
        step_variance = (sigma * VOLATILITY_SHAPE[minute]) ** 2 * (
            np.diff(offsets, prepend=0) / 1000.0
        )
        walk = np.cumsum(np.sqrt(step_variance) * rng.standard_normal(n))
        elapsed_variance = np.cumsum(step_variance)
        log_mid = log_open + walk
        if n and elapsed_variance[-1] > 0:  # a Brownian bridge onto the day's close target
            log_mid -= elapsed_variance / elapsed_variance[-1] * (walk[-1] - (log_close - log_open))

        side = np.sign(rng.random(n) - 0.5).astype(np.int8)  # bid or ask
        side[rng.random(n) < 0.2] = 0  # inside the spread
        volume = sample_sizes(rng, self.scales[s][minute])
        conditions = condition_codes(rng, minute, volume)
        return inject_anomalies(
            rng,
            self.day_plan(day)[symbol],
            symbol=symbol,
            day_open_ms=day_open_ms(day),
            offsets=offsets,
            log_mid=log_mid,
            side=side,
            volume=volume,
            conditions=conditions,
            scale=self.scales[s],
            event_prefix=f"{self.fingerprint}-{symbol}-{day:%Y%m%d}",
        )

    def day(self, day: date) -> Trades:
        """Every symbol's trades on one trading day, merged in time order."""
        parts = [self.symbol_day(symbol, day) for symbol in self.symbols]
        events: list[AnomalyEvent] = []
        labels = []
        for part in parts:
            label = part.event.copy()
            label[label >= 0] += len(events)
            labels.append(label)
            events.extend(part.events)
        ts = np.concatenate([part.ts_ms for part in parts])
        order = np.argsort(ts, kind="stable")  # ties: symbol order, then each symbol's order
        symbol_index = np.concatenate(
            [np.full(len(part), i, dtype=np.int16) for i, part in enumerate(parts)]
        )
        return Trades(
            symbols=self.symbols,
            symbol_index=symbol_index[order],
            ts_ms=ts[order],
            cents=np.concatenate([part.cents for part in parts])[order],
            volume=np.concatenate([part.volume for part in parts])[order],
            conditions=np.concatenate([part.conditions for part in parts])[order],
            event=np.concatenate(labels)[order],
            events=events,
        )


from ingest.simulator.anomalies import SymbolPlan, inject_anomalies, plan_day  # noqa: E402 (cycle)
