"""Reference implementation of every gold_trade_features column, written from its definition.

The definitions are the docs blocks of dbt_project/models/gold/_gold__features_docs.md (the
documentation site's gold features reference shows them).

This is the yardstick the dbt models are held to, so it is deliberately naive: plain loops
over each symbol's trades, exact two-pass statistics on every window (never a running or
incremental variance), and the textbook recursions for the EMAs and Wilder's RSI. It starts
from the landed trades (not from silver), so New York local time, the trading day, the
session and the trade type are derived here independently with zoneinfo.

Conventions pinned where a short definition leaves room (the dbt docs state the same):

- Sums are exact (math.fsum, Fractions) and statistics two-pass, so the reference carries no
  rounding of its own beyond the final operations.
- Trades of a symbol are ordered by (trade_ts_ms, trade_id); a trade's features depend only
  on trades at or before it in that order. Trades sharing a millisecond are therefore
  counted in each other's time windows only in that order.
- Time windows are closed: the trailing hour of a trade at t is [t - 3,600,000 ms, t] and the
  trailing minute [t - 60,000 ms, t].
- A sample standard deviation needs two values; where it is undefined the volatility is 0.
- Bollinger bands and the Roll window use the trades available so far (fewer than 20 / 100
  at the start of a symbol). The Roll covariance is the sample covariance of the pairs
  (dp_t, dp_t-1) for the last 100 trades t (the current one included) where both price
  changes exist; with fewer than two pairs it is undefined and the spread is 0.
- VWAP is 0 % away from itself when the day's cumulative volume is 0.
- day_of_week is ISO: 1 = Monday ... 7 = Sunday.
- RSI: the first trade has no movement (50); the second seeds the averages with its gain and
  loss, later trades smooth them with alpha = 1/14 (pandas ewm(adjust=False) semantics).
- The trade-rate ratio compares the closed windows [t - 10 s, t] and [t - 10 min, t] (both
  include the current trade, so neither is empty): (n_10s / 10) / (n_10min / 600).
- Identical prints: trades of the symbol at exactly the same price and the same volume in
  [t - 2 s, t], the current one included.
- The volume median is over the previous 100 trades (the current one excluded; fewer at the
  start), the mean of the two middle values for an even count; the ratio is 1 on a symbol's
  first trade and where that median is 0.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from fractions import Fraction
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from core.schema import FEATURE_COLUMNS as MODEL_INPUTS
from core.schema import GOLD_FEATURES_CONTRACT

NEW_YORK = ZoneInfo("America/New_York")

ZSCORE_WINDOW_TRADES = 50
VOLATILITY_WINDOW_MS = 3_600_000
INTENSITY_WINDOW_MS = 60_000
BOLLINGER_WINDOW_TRADES = 20
ROLL_WINDOW_TRADES = 100
RATE_WINDOW_MS = 10_000
RATE_BASELINE_MS = 600_000
SAME_PRINT_WINDOW_MS = 2_000
VOLUME_MEDIAN_WINDOW_TRADES = 100
RSI_ALPHA = 1 / 14
EMA_FAST_ALPHA = 2 / (12 + 1)
EMA_SLOW_ALPHA = 2 / (26 + 1)
MACD_SIGNAL_ALPHA = 2 / (9 + 1)

#: The model's inputs in the order of the gold table's columns.
FEATURE_COLUMNS = [column for column in GOLD_FEATURES_CONTRACT if column in MODEL_INPUTS]


def new_york_wall_clock(trade_ts_ms: int) -> datetime:
    """The New York wall-clock time of an epoch-millisecond timestamp (DST-aware)."""
    return datetime.fromtimestamp(trade_ts_ms / 1000, tz=UTC).astimezone(NEW_YORK)


def session_type(local: datetime) -> str:
    """pre_market 04:00-09:30, regular 09:30-16:00, after_hours 16:00-20:00, else closed."""
    minutes = local.hour * 60 + local.minute + local.second / 60 + local.microsecond / 6e7
    if 4 * 60 <= minutes < 9 * 60 + 30:
        return "pre_market"
    if 9 * 60 + 30 <= minutes < 16 * 60:
        return "regular"
    if 16 * 60 <= minutes < 20 * 60:
        return "after_hours"
    return "closed"


def trade_type(volume: float) -> str:
    """block >= 10,000 shares, standard >= 100, odd_lot below."""
    if volume >= 10_000:
        return "block"
    if volume >= 100:
        return "standard"
    return "odd_lot"


def _mean(values: np.ndarray) -> float:
    """Mean from a correctly rounded sum (math.fsum)."""
    return math.fsum(values) / len(values)


def _squared_deviations(values: np.ndarray) -> float:
    """Two-pass sum of squared deviations from the mean, correctly rounded sums."""
    mean = _mean(values)
    return math.fsum((values - mean) ** 2)


def _sample_std(values: np.ndarray) -> float:
    """Two-pass sample standard deviation (callers ensure at least two values)."""
    return math.sqrt(_squared_deviations(values) / (len(values) - 1))


def _zscore(history: np.ndarray, current: float) -> float:
    """(current - mean) / sample stddev of history; 0 where the stddev is 0 or undefined."""
    if len(history) < 2 or history.max() == history.min():
        return 0.0
    return (current - _mean(history)) / _sample_std(history)


def _bollinger_pct_b(window: np.ndarray, price: float) -> float:
    """%B against the SMA +- 2 population stddev of the window; 0.5 when the band is flat."""
    if window.max() == window.min():
        return 0.5
    sma = _mean(window)
    sd = math.sqrt(_squared_deviations(window) / len(window))
    lower, upper = sma - 2 * sd, sma + 2 * sd
    return (price - lower) / (upper - lower)


def _roll_spread_pct(dp: np.ndarray, dp_prev: np.ndarray, price: float) -> float:
    """2 * sqrt(-cov(dp_t, dp_t-1)) as % of price; 0 where cov >= 0 or undefined."""
    defined = ~(np.isnan(dp) | np.isnan(dp_prev))
    x, y = dp[defined], dp_prev[defined]
    if len(x) < 2:
        return 0.0
    cov = math.fsum((x - _mean(x)) * (y - _mean(y))) / (len(x) - 1)
    if cov >= 0:
        return 0.0
    return 2 * math.sqrt(-cov) / price * 100


def _recursive_indicators(prices: np.ndarray) -> dict[str, np.ndarray]:
    """Textbook recursions: EMA12/26 of price, MACD and its EMA9 signal, Wilder's RSI."""
    n = len(prices)
    out = {name: np.empty(n) for name in ("rsi_14", "macd_line", "macd_signal", "macd_hist")}
    ema_fast = ema_slow = signal = 0.0
    avg_gain = avg_loss = None
    for i, price in enumerate(prices):
        if i == 0:
            ema_fast = ema_slow = price
        else:
            ema_fast = (1 - EMA_FAST_ALPHA) * ema_fast + EMA_FAST_ALPHA * price
            ema_slow = (1 - EMA_SLOW_ALPHA) * ema_slow + EMA_SLOW_ALPHA * price
            change = price - prices[i - 1]
            gain, loss = max(change, 0.0), max(-change, 0.0)
            if avg_gain is None:
                avg_gain, avg_loss = gain, loss
            else:
                avg_gain = (1 - RSI_ALPHA) * avg_gain + RSI_ALPHA * gain
                avg_loss = (1 - RSI_ALPHA) * avg_loss + RSI_ALPHA * loss
        line = ema_fast - ema_slow
        signal = line if i == 0 else (1 - MACD_SIGNAL_ALPHA) * signal + MACD_SIGNAL_ALPHA * line
        if avg_gain is None or (avg_gain == 0 and avg_loss == 0):
            rsi = 50.0
        elif avg_loss == 0:
            rsi = 100.0
        else:
            rsi = 100 - 100 / (1 + avg_gain / avg_loss)
        out["rsi_14"][i] = rsi
        out["macd_line"][i] = line
        out["macd_signal"][i] = signal
        out["macd_hist"][i] = line - signal
    return out


def textbook_wilder_rsi(prices: np.ndarray, period: int = 14) -> np.ndarray:
    """Wilder's original RSI: the first average is the simple mean of `period` changes.

    Defined from trade `period` on (NaN before); used to show the model's RSI converges to
    the textbook value after warm-up.
    """
    changes = np.diff(prices)
    rsi = np.full(len(prices), np.nan)
    if len(changes) < period:
        return rsi
    avg_gain = np.clip(changes[:period], 0, None).mean()
    avg_loss = np.clip(-changes[:period], 0, None).mean()
    for i in range(period, len(prices)):
        if i > period:
            change = changes[i - 1]
            avg_gain = (avg_gain * (period - 1) + max(change, 0.0)) / period
            avg_loss = (avg_loss * (period - 1) + max(-change, 0.0)) / period
        rsi[i] = 100.0 if avg_loss == 0 else 100 - 100 / (1 + avg_gain / avg_loss)
    return rsi


def textbook_ema(values: np.ndarray, span: int) -> np.ndarray:
    """The textbook EMA: seeded with the simple mean of the first `span` values (NaN before)."""
    alpha = 2 / (span + 1)
    ema = np.full(len(values), np.nan)
    if len(values) < span:
        return ema
    ema[span - 1] = values[:span].mean()
    for i in range(span, len(values)):
        ema[i] = (1 - alpha) * ema[i - 1] + alpha * values[i]
    return ema


def textbook_macd(prices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """MACD line and signal from SMA-seeded EMAs (NaN until the signal has its 9 values)."""
    line = textbook_ema(prices, 12) - textbook_ema(prices, 26)
    signal = np.full(len(prices), np.nan)
    signal[25:] = textbook_ema(line[25:], 9)
    return line, signal


def _symbol_features(trades: pd.DataFrame) -> pd.DataFrame:
    """Every feature for one symbol's trades, already in (trade_ts_ms, trade_id) order."""
    price = trades["price"].to_numpy(dtype=float)
    volume = trades["volume"].to_numpy(dtype=float)
    ts = trades["trade_ts_ms"].to_numpy(dtype=np.int64)
    day = trades["trade_date_ny"].to_numpy()
    n = len(trades)

    previous = np.concatenate([[np.nan], price[:-1]])
    price_change_pct = np.where(np.isnan(previous), 0.0, (price - previous) / previous * 100)
    with np.errstate(invalid="ignore"):
        log_return = np.where(np.isnan(previous), 0.0, np.log(price / previous))
    dp = price - previous
    dp_prev = np.concatenate([[np.nan], dp[:-1]])

    # Exact running sums of the day (Fractions), rounded once.
    cum_notional = np.empty(n)
    cum_volume = np.empty(n)
    notional_so_far = volume_so_far = Fraction(0)
    for i in range(n):
        if i == 0 or day[i] != day[i - 1]:
            notional_so_far = volume_so_far = Fraction(0)
        notional_so_far += Fraction(price[i]) * Fraction(volume[i])
        volume_so_far += Fraction(volume[i])
        cum_notional[i] = float(notional_so_far)
        cum_volume[i] = float(volume_so_far)

    columns: dict[str, np.ndarray] = {
        "price_change_pct": price_change_pct,
        "log_return": log_return,
        **{
            name: np.empty(n)
            for name in (
                "volume_zscore",
                "price_zscore",
                "price_volatility_1h",
                "trade_intensity_1m",
                "vwap_deviation_pct",
                "bollinger_pct_b",
                "roll_spread_pct",
                "session_vwap",
                "volume_to_median_100",
                "trade_rate_ratio_10s",
                "same_print_count_2s",
            )
        },
    }
    for i in range(n):
        start = max(0, i - ZSCORE_WINDOW_TRADES)
        columns["volume_zscore"][i] = _zscore(volume[start:i], volume[i])
        columns["price_zscore"][i] = _zscore(price[start:i], price[i])

        hour_start = int(np.searchsorted(ts, ts[i] - VOLATILITY_WINDOW_MS, side="left"))
        window = log_return[hour_start : i + 1]
        columns["price_volatility_1h"][i] = _sample_std(window) if len(window) >= 2 else 0.0

        minute_start = int(np.searchsorted(ts, ts[i] - INTENSITY_WINDOW_MS, side="left"))
        columns["trade_intensity_1m"][i] = i - minute_start + 1

        vwap = cum_notional[i] / cum_volume[i] if cum_volume[i] != 0 else price[i]
        columns["session_vwap"][i] = vwap
        columns["vwap_deviation_pct"][i] = (price[i] - vwap) / vwap * 100

        band = price[max(0, i - BOLLINGER_WINDOW_TRADES + 1) : i + 1]
        columns["bollinger_pct_b"][i] = _bollinger_pct_b(band, price[i])

        roll_start = max(0, i - ROLL_WINDOW_TRADES + 1)
        columns["roll_spread_pct"][i] = _roll_spread_pct(
            dp[roll_start : i + 1], dp_prev[roll_start : i + 1], price[i]
        )

        previous_volumes = volume[max(0, i - VOLUME_MEDIAN_WINDOW_TRADES) : i]
        median = float(np.median(previous_volumes)) if len(previous_volumes) else 0.0
        columns["volume_to_median_100"][i] = volume[i] / median if median != 0 else 1.0

        rate_start = int(np.searchsorted(ts, ts[i] - RATE_WINDOW_MS, side="left"))
        baseline_start = int(np.searchsorted(ts, ts[i] - RATE_BASELINE_MS, side="left"))
        columns["trade_rate_ratio_10s"][i] = float(
            Fraction(i - rate_start + 1, RATE_WINDOW_MS)
            / Fraction(i - baseline_start + 1, RATE_BASELINE_MS)
        )

        print_start = int(np.searchsorted(ts, ts[i] - SAME_PRINT_WINDOW_MS, side="left"))
        recent = slice(print_start, i + 1)
        columns["same_print_count_2s"][i] = int(
            ((price[recent] == price[i]) & (volume[recent] == volume[i])).sum()
        )

    columns.update(_recursive_indicators(price))
    result = trades[["trade_id", "symbol", "trade_ts_ms", "price", "volume"]].copy()
    for name, values in columns.items():
        result[name] = values
    result["trade_intensity_1m"] = result["trade_intensity_1m"].astype(np.int64)
    result["same_print_count_2s"] = result["same_print_count_2s"].astype(np.int64)
    result["symbol_trade_seq"] = np.arange(1, n + 1, dtype=np.int64)
    result["trade_date_ny"] = day
    for name in ("hour_of_day", "minute_of_hour", "day_of_week", "session_type", "trade_type"):
        result[name] = trades[name].to_numpy()
    return result


def reference_features(landed: pd.DataFrame) -> pd.DataFrame:
    """Compute every gold_trade_features column from landed trade records.

    `landed` needs trade_id, symbol, price, volume and trade_ts_ms; duplicates of a trade_id
    are dropped (the first kept), as silver does. Returns one row per trade, indexed by
    trade_id.
    """
    trades = landed.drop_duplicates("trade_id")[
        ["trade_id", "symbol", "price", "volume", "trade_ts_ms"]
    ].copy()
    local = [new_york_wall_clock(int(ms)) for ms in trades["trade_ts_ms"]]
    trades["trade_date_ny"] = [moment.date() for moment in local]
    trades["hour_of_day"] = [moment.hour for moment in local]
    trades["minute_of_hour"] = [moment.minute for moment in local]
    trades["day_of_week"] = [moment.isoweekday() for moment in local]
    trades["session_type"] = [session_type(moment) for moment in local]
    trades["trade_type"] = [trade_type(volume) for volume in trades["volume"]]
    trades = trades.sort_values(["symbol", "trade_ts_ms", "trade_id"], kind="mergesort")
    per_symbol = [_symbol_features(group) for _, group in trades.groupby("symbol", sort=True)]
    return pd.concat(per_symbol).set_index("trade_id")
