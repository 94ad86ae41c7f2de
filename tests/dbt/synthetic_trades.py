"""Simulator-like trades for the feature tests, landed exactly as the collector lands them.

A seeded random walk per symbol over two New York trading days either side of the 2024 DST
change (Friday 8 March, EST, and Monday 11 March, EDT), from pre-market to after the 20:00
close, so the data crosses UTC midnight inside one New York day. It deliberately contains
what breaks window code: several trades in one message sharing a millisecond, trades exactly
60 s and 1 h apart, gaps longer than the longest window, bursts, flat runs of price and of
volume (zero standard deviation), price spikes, odd lots and blocks, and a symbol that only
starts trading on the second day.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import orjson
import pandas as pd


def synthetic_trade_id(symbol: str, ts_ms: int, price: float, volume: float, position: int) -> str:
    """A deterministic id for a made-up trade (no feed message: ingest.trade_id does not apply)."""
    key = f"{symbol}|{int(ts_ms)}|{float(price)!r}|{float(volume)!r}|{int(position)}"
    return hashlib.blake2b(key.encode(), digest_size=16).hexdigest()


NEW_YORK = ZoneInfo("America/New_York")
DAYS = ("2024-03-08", "2024-03-11")
SYMBOLS = ("AAPL", "MSFT", "NVDA", "KO")
# (local start, trades, mean gap in ms): pre-market, the open, a quiet midday with gaps
# longer than an hour, the close, and the evening past 20:00 ET (past UTC midnight).
SEGMENTS = (
    ("04:05:00", 40, 25_000),
    ("09:28:00", 160, 2_500),
    ("11:00:00", 25, 400_000),
    ("15:58:30", 90, 1_500),
    ("19:50:00", 45, 30_000),
)


def _local_ms(day: str, clock: str) -> int:
    moment = datetime.fromisoformat(f"{day}T{clock}").replace(tzinfo=NEW_YORK)
    return int(moment.timestamp() * 1000)


def make_trades(seed: int = 7) -> pd.DataFrame:
    """Return the landed trade records (one row per trade) as a DataFrame."""
    rng = np.random.default_rng(seed)
    rows: list[dict] = []
    for symbol_index, symbol in enumerate(SYMBOLS):
        price = 50.0 + 40.0 * symbol_index
        for day in DAYS:
            if symbol == "KO" and day == DAYS[0]:
                continue
            for segment_index, (clock, count, mean_gap) in enumerate(SEGMENTS):
                if symbol == "KO" and segment_index < 2:
                    continue
                ts = _local_ms(day, clock) + int(rng.integers(0, 5_000))
                made = 0
                while made < count:
                    flat_price = symbol == "MSFT" and segment_index == 1 and 60 <= made < 95
                    flat_volume = symbol == "NVDA" and segment_index == 1 and 20 <= made < 85
                    in_message = 1 if rng.random() > 0.2 else int(rng.integers(2, 5))
                    for position in range(in_message):
                        if not flat_price:
                            step = rng.normal(0, 0.0008) * price
                            if rng.random() < 0.01:
                                step += price * rng.choice([-1, 1]) * rng.uniform(0.03, 0.08)
                            price = max(1.0, round(price + step, 2))
                        if flat_volume:
                            volume = 100.0
                        else:
                            volume = float(rng.choice([100, 100, 200, 300, 500, 50, 7, 1_000]))
                            if rng.random() < 0.01:
                                volume *= float(rng.integers(20, 100))
                            if rng.random() < 0.05:
                                volume = round(volume * rng.uniform(0.5, 1.5), 3)
                        rows.append(_record(symbol, ts, price, volume, position))
                        made += 1
                    ts += _next_gap(rng, mean_gap, made)
    return pd.DataFrame(rows)


def _next_gap(rng: np.random.Generator, mean_gap: int, made: int) -> int:
    """Gap to the next message: mostly exponential, sometimes exactly on a window edge."""
    roll = rng.random()
    if roll < 0.03:
        return 60_000
    if roll < 0.05:
        return 60_001
    if roll < 0.06 and made % 7 == 0:
        return 3_600_000
    if roll < 0.15:
        return int(rng.integers(1, 300))  # a burst
    return max(1, int(rng.exponential(mean_gap)))


def _record(symbol: str, ts: int, price: float, volume: float, position: int) -> dict:
    return {
        "trade_id": synthetic_trade_id(symbol, ts, price, volume, position),
        "symbol": symbol,
        "price": price,
        "volume": volume,
        "trade_ts_ms": ts,
        "conditions": ["1", "12"] if position == 0 else None,
        "exchange": None,
        "received_at": pd.Timestamp(ts + 35, unit="ms", tz="UTC").strftime("%Y-%m-%dT%H:%M:%S.%f")[
            :-3
        ]
        + "Z",
        "source": "finnhub",
    }


def land_trades(home: Path, trades: pd.DataFrame, name: str) -> list[Path]:
    """Write trades under home/landing/trades/date=<UTC date>/<name>.ndjson (one file a date)."""
    written = []
    utc_dates = pd.to_datetime(trades["trade_ts_ms"], unit="ms", utc=True).dt.strftime("%Y-%m-%d")
    for utc_date, batch in trades.groupby(utc_dates):
        folder = home / "landing" / "trades" / f"date={utc_date}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.ndjson"
        records = batch.to_dict("records")
        for record in records:
            record["trade_ts_ms"] = int(record["trade_ts_ms"])
            if not isinstance(record["conditions"], list):
                record["conditions"] = None
        tmp = folder / f".{name}.tmp"
        tmp.write_bytes(b"".join(orjson.dumps(record) + b"\n" for record in records))
        tmp.rename(path)
        written.append(path)
    return written
