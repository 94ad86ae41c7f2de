"""Synthetic labelled feature rows with a planted, learnable anomaly signal.

For tests and benchmarks of the model code, where the simulator and the warehouse are not the
subject: rows shaped like gold_trade_features joined to gold_anomaly_labels, with anomaly
events of the simulator's five kinds and their ground truth (trade_id → event_id, kind). A
share of anomalies carries no signal and a share of normal trades looks unusual, so no model
is perfect and models can be told apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from core.schema import FEATURE_COLUMNS, ID_COLUMNS, LABEL_COLUMN
from ml.events import events_from_answer_key

NEW_YORK = ZoneInfo("America/New_York")
ANOMALY_KINDS: dict[str, int] = {  # kind → trades per event
    "price_spike": 1,
    "volume_burst": 1,
    "pump_and_dump": 6,
    "wash_cluster": 5,
    "intensity_burst": 8,
}


@dataclass(frozen=True)
class SyntheticMarket:
    """Feature rows with labels (`frame`) and the ground truth of their anomaly events: per
    anomalous trade (`answer_key`: trade_id, event_id, kind, symbol, trade_ts_ms, shaped like
    the simulator's ground_truth/trades.ndjson) and per event (`events`, an ml.events frame)."""

    frame: pd.DataFrame
    answer_key: pd.DataFrame
    events: pd.DataFrame


def _session(minutes: np.ndarray, weekday: np.ndarray) -> np.ndarray:
    session = np.full(minutes.shape, "closed", dtype=object)
    weekday_open = weekday < 5
    session[weekday_open & (minutes >= 240) & (minutes < 570)] = "pre_market"
    session[weekday_open & (minutes >= 570) & (minutes < 960)] = "regular"
    session[weekday_open & (minutes >= 960) & (minutes < 1200)] = "after_hours"
    return session


def synthetic_market(
    rows: int,
    *,
    symbols: Sequence[str] = ("AAPL", "MSFT", "NVDA"),
    anomaly_rate: float = 0.015,
    seed: int = 0,
    start: str = "2024-03-04T14:30:00+00:00",
    seconds_between_trades: float = 10.0,
    signal: float = 1.0,
    silent_share: float = 0.1,
    label_source: str = "ground_truth",
) -> SyntheticMarket:
    """`rows` trades in time order with about `anomaly_rate` of them in anomaly events.

    `signal` scales how far anomalous features move (0 = indistinguishable); `silent_share`
    of the events carry no signal at all.
    """
    rng = np.random.default_rng(seed)
    n = int(rows)
    gaps = rng.exponential(seconds_between_trades * 1000, n).astype("int64") + 1
    start_ms = int(datetime.fromisoformat(start).timestamp() * 1000)
    ts_ms = start_ms + np.cumsum(gaps)
    local = pd.to_datetime(ts_ms, unit="ms", utc=True).tz_convert(NEW_YORK)
    minutes = (local.hour * 60 + local.minute).to_numpy()
    weekday = local.dayofweek.to_numpy()

    volume = np.round(rng.lognormal(4.5, 1.2, n))
    pct = rng.standard_t(4, n) * 0.03
    frame = pd.DataFrame(
        {
            "trade_id": [f"syn-{seed}-{i:08d}" for i in range(n)],
            "symbol": rng.choice(np.asarray(symbols, dtype=object), n),
            "trade_ts_ms": ts_ms,
            "trade_ts": pd.to_datetime(ts_ms, unit="ms", utc=True),
            "price_change_pct": pct,
            "log_return": np.log1p(pct / 100),
            "volume_zscore": rng.standard_t(5, n),
            "price_zscore": rng.normal(0, 1, n),
            "price_volatility_1h": rng.lognormal(-7, 0.4, n),
            "trade_intensity_1m": (rng.poisson(6, n) + 1).astype("float64"),
            "vwap_deviation_pct": rng.normal(0, 0.25, n),
            "rsi_14": np.clip(rng.normal(50, 11, n), 0, 100),
            "macd_line": rng.normal(0, 0.05, n),
            "macd_signal": rng.normal(0, 0.04, n),
            "macd_hist": rng.normal(0, 0.02, n),
            "bollinger_pct_b": rng.normal(0.5, 0.3, n),
            "roll_spread_pct": np.abs(rng.normal(0.02, 0.01, n)),
            "trade_rate_ratio_10s": rng.lognormal(0, 0.35, n),
            "same_print_count_2s": (rng.poisson(0.15, n) + 1).astype("float64"),
            "hour_of_day": local.hour.to_numpy().astype("float64"),
            "minute_of_hour": local.minute.to_numpy().astype("float64"),
            "day_of_week": weekday.astype("float64"),
            "session_type": _session(minutes, weekday),
            "volume": volume,
        }
    )
    frame["volume_to_median_100"] = volume / np.median(volume)
    # Unusual but legitimate trades: the false-positive bait.
    bait = rng.random(n) < 0.01
    frame.loc[bait, "volume_zscore"] = rng.uniform(3, 9, int(bait.sum()))
    frame.loc[bait, "price_change_pct"] *= 20

    is_anomaly = np.zeros(n, dtype=bool)
    kind_of = np.full(n, None, dtype=object)
    truth: list[tuple[Any, ...]] = []
    kinds = list(ANOMALY_KINDS)
    target = anomaly_rate * n
    event_number = 0
    while is_anomaly.sum() < target:
        kind = kinds[event_number % len(kinds)]
        size = ANOMALY_KINDS[kind]
        first = int(rng.integers(0, n - size))
        members = np.arange(first, first + size)
        if is_anomaly[members].any():
            continue
        event_id = f"ev-{seed}-{event_number:05d}"
        event_number += 1
        is_anomaly[members] = True
        kind_of[members] = kind
        # pandas-stubs reject an integer array as the rows of a (rows, column) indexer
        frame.loc[members, "symbol"] = frame.at[first, "symbol"]  # type: ignore[index]
        truth.extend(
            (frame.at[i, "trade_id"], event_id, kind, frame.at[first, "symbol"], ts_ms[i])
            for i in members
        )
        if rng.random() < silent_share:
            continue
        _plant(frame, members, kind, signal, rng)

    frame["log_return"] = np.log1p(frame["price_change_pct"] / 100)
    frame["trade_type"] = np.where(
        frame["volume"] >= 10_000, "block", np.where(frame["volume"] >= 100, "standard", "odd_lot")
    )
    frame["price"] = 100 * np.exp(np.cumsum(frame["log_return"].to_numpy()))
    frame[LABEL_COLUMN] = is_anomaly
    frame["label_source"] = label_source
    frame["anomaly_kind"] = kind_of
    columns = [*ID_COLUMNS, "price", "volume", *FEATURE_COLUMNS]
    frame = frame[[*columns, LABEL_COLUMN, "label_source", "anomaly_kind"]]
    answer_key = pd.DataFrame(
        truth, columns=["trade_id", "event_id", "kind", "symbol", "trade_ts_ms"]
    )
    return SyntheticMarket(
        frame=frame, answer_key=answer_key, events=events_from_answer_key(answer_key)
    )


def _plant(
    frame: pd.DataFrame, members: np.ndarray, kind: str, signal: float, rng: np.random.Generator
) -> None:
    """Move the features of one event's trades the way its kind moves real features."""
    k = len(members)
    sign = rng.choice([-1.0, 1.0])
    at = frame.index[members]
    if kind == "price_spike":
        frame.loc[at, "price_change_pct"] = sign * rng.uniform(3, 10, k) * signal
        frame.loc[at, "price_zscore"] = sign * rng.uniform(3, 8, k) * signal
        frame.loc[at, "bollinger_pct_b"] = 0.5 + sign * rng.uniform(0.8, 2.0, k) * signal
    elif kind == "volume_burst":
        frame.loc[at, "volume_zscore"] = rng.uniform(8, 30, k) * signal
        multiple = rng.uniform(20, 100, k)
        frame.loc[at, "volume"] = frame.loc[at, "volume"] * multiple
        frame.loc[at, "volume_to_median_100"] = multiple * signal
    elif kind == "pump_and_dump":
        frame.loc[at, "vwap_deviation_pct"] = sign * rng.uniform(3, 8, k) * signal
        frame.loc[at, "rsi_14"] = np.clip(50 + sign * rng.uniform(30, 48, k) * signal, 0, 100)
        frame.loc[at, "macd_hist"] = sign * rng.uniform(0.1, 0.4, k) * signal
        frame.loc[at, "volume_zscore"] = rng.uniform(1, 4, k) * signal
    elif kind == "wash_cluster":
        frame.loc[at, "price_change_pct"] = 0.0
        frame.loc[at, "volume_zscore"] = float(rng.uniform(0.5, 2.0)) * signal
        frame.loc[at, "trade_intensity_1m"] = frame.loc[at, "trade_intensity_1m"] + 5 * k * signal
        frame.loc[at, "roll_spread_pct"] = 0.0
        frame.loc[at, "same_print_count_2s"] = 1 + np.arange(k) * signal
    elif kind == "intensity_burst":
        frame.loc[at, "trade_intensity_1m"] = frame.loc[at, "trade_intensity_1m"] * (1 + 9 * signal)
        frame.loc[at, "trade_rate_ratio_10s"] = 1 + 7 * signal * rng.uniform(0.5, 1.0, k)
