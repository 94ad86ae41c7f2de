"""Recursive trade indicators: Wilder's RSI(14) and MACD(12, 26, 9), one row per trade.

The EMAs and Wilder's averages have infinite memory, so they are not window functions. This
model runs the recursions per symbol in pandas, in (trade_ts_ms, trade_id) order: on DuckDB over
a pandas frame, on Spark and Databricks with groupBy('symbol').applyInPandas.

Incremental runs are exact, not approximate: each symbol is recomputed from its earliest trade
that is not in the table yet (so late trades are placed where they belong), and the recursion
continues from the carried state of the symbol's last trade before that point (ema_12, ema_26,
macd_signal, rsi_avg_gain, rsi_avg_loss, price). Feeding that state to pandas' ewm as the first
observation performs the same floating-point operations as a full refresh.
"""

import numpy as np
import pandas as pd

EMA_FAST_ALPHA = 2 / (12 + 1)
EMA_SLOW_ALPHA = 2 / (26 + 1)
MACD_SIGNAL_ALPHA = 2 / (9 + 1)
RSI_ALPHA = 1 / 14

STATE_COLUMNS = ["ema_12", "ema_26", "macd_signal", "rsi_avg_gain", "rsi_avg_loss"]
OUTPUT_COLUMNS = {
    "trade_id": "string",
    "symbol": "string",
    "trade_ts_ms": "bigint",
    "price": "double",
    "ema_12": "double",
    "ema_26": "double",
    "macd_line": "double",
    "macd_signal": "double",
    "macd_hist": "double",
    "rsi_avg_gain": "double",
    "rsi_avg_loss": "double",
    "rsi_14": "double",
}
SILVER_VIEW = "tradewatch_recursive_features_silver"


def _ema(values, alpha, carried):
    """EMA with adjust=False; `carried` (the previous EMA, or None) continues a recursion."""
    series = pd.Series(values, dtype="float64")
    if carried is not None:
        series = pd.concat([pd.Series([carried], dtype="float64"), series], ignore_index=True)
    smoothed = series.ewm(alpha=alpha, adjust=False).mean().to_numpy()
    return smoothed if carried is None else smoothed[1:]


def _rsi(avg_gain, avg_loss):
    """100 - 100 / (1 + gain / loss); 100 with no losses, 50 with no movement (or none yet)."""
    rsi = np.full(len(avg_gain), 50.0)
    moved = ~np.isnan(avg_gain) & ((avg_gain > 0) | (avg_loss > 0))
    rsi[moved & (avg_loss == 0)] = 100.0
    both = moved & (avg_loss > 0)
    rsi[both] = 100 - 100 / (1 + avg_gain[both] / avg_loss[both])
    return rsi


def recursive_features(trades):
    """RSI and MACD for one symbol's trades; a row flagged is_carried_state seeds the recursion."""
    trades = trades.sort_values(["trade_ts_ms", "trade_id"], kind="mergesort")
    carried = trades[trades["is_carried_state"].astype(bool)]
    batch = trades[~trades["is_carried_state"].astype(bool)]
    price = batch["price"].to_numpy(dtype="float64")
    if len(carried):
        state = carried.iloc[-1]
        seed = {name: float(state[name]) for name in STATE_COLUMNS}
        previous_price = float(state["price"])
    else:
        seed = dict.fromkeys(STATE_COLUMNS)
        previous_price = np.nan

    change = price - np.concatenate([[previous_price], price[:-1]])
    with np.errstate(invalid="ignore"):
        gain = np.where(np.isnan(change), np.nan, np.maximum(change, 0.0))
        loss = np.where(np.isnan(change), np.nan, np.maximum(-change, 0.0))
    ema_12 = _ema(price, EMA_FAST_ALPHA, seed["ema_12"])
    ema_26 = _ema(price, EMA_SLOW_ALPHA, seed["ema_26"])
    macd_line = ema_12 - ema_26
    macd_signal = _ema(macd_line, MACD_SIGNAL_ALPHA, seed["macd_signal"])
    avg_gain = _ema(gain, RSI_ALPHA, seed["rsi_avg_gain"])
    avg_loss = _ema(loss, RSI_ALPHA, seed["rsi_avg_loss"])

    return pd.DataFrame(
        {
            "trade_id": batch["trade_id"].astype(str).to_numpy(),
            "symbol": batch["symbol"].astype(str).to_numpy(),
            "trade_ts_ms": batch["trade_ts_ms"].to_numpy(dtype="int64"),
            "price": price,
            "ema_12": ema_12,
            "ema_26": ema_26,
            "macd_line": macd_line,
            "macd_signal": macd_signal,
            "macd_hist": macd_line - macd_signal,
            "rsi_avg_gain": avg_gain,
            "rsi_avg_loss": avg_loss,
            "rsi_14": _rsi(avg_gain, avg_loss),
        }
    )


def batch_sql(existing):
    """Trades to (re)compute plus, per symbol, the carried state row; portable DuckDB/Spark SQL.

    `existing` is this model's table on an incremental run, else None (a full build).
    """
    state_nulls = ", ".join(f"cast(null as double) as {name}" for name in STATE_COLUMNS)
    if existing is None:
        return f"""
            select trade_id, symbol, trade_ts_ms, price, false as is_carried_state, {state_nulls}
            from {SILVER_VIEW}
        """
    state_columns = ", ".join(f"existing.{name}" for name in STATE_COLUMNS)
    return f"""
        with existing as (
            select trade_id, symbol, trade_ts_ms, price, {", ".join(STATE_COLUMNS)}
            from {existing}
        ),
        recompute_from as (
            -- earliest trade per symbol that is not in the table yet
            select silver.symbol, min(silver.trade_ts_ms) as from_ts_ms
            from {SILVER_VIEW} as silver
            left join existing on silver.trade_id = existing.trade_id
            where existing.trade_id is null
            group by silver.symbol
        ),
        last_kept_ts as (
            select existing.symbol, max(existing.trade_ts_ms) as trade_ts_ms
            from existing
            join recompute_from
                on existing.symbol = recompute_from.symbol
                and existing.trade_ts_ms < recompute_from.from_ts_ms
            group by existing.symbol
        ),
        last_kept as (
            select existing.symbol, max(existing.trade_id) as trade_id
            from existing
            join last_kept_ts
                on existing.symbol = last_kept_ts.symbol
                and existing.trade_ts_ms = last_kept_ts.trade_ts_ms
            group by existing.symbol
        )
        select silver.trade_id, silver.symbol, silver.trade_ts_ms, silver.price,
            false as is_carried_state, {state_nulls}
        from {SILVER_VIEW} as silver
        join recompute_from
            on silver.symbol = recompute_from.symbol
            and silver.trade_ts_ms >= recompute_from.from_ts_ms
        union all
        select existing.trade_id, existing.symbol, existing.trade_ts_ms, existing.price,
            true as is_carried_state, {state_columns}
        from existing
        join last_kept on existing.trade_id = last_kept.trade_id
    """


def rows_to_replace_sql(existing):
    """Kept rows a batch recomputes (same rule as the macro features_rows_to_replace_sql)."""
    return f"""
        with new_trades as (
            select silver.symbol, silver.trade_ts_ms
            from {SILVER_VIEW} as silver
            left join {existing} as existing on silver.trade_id = existing.trade_id
            where existing.trade_id is null
        ),
        recompute_from as (
            select symbol, min(trade_ts_ms) as from_ts_ms from new_trades group by symbol
        )
        select count(*) as rows_to_replace
        from {existing} as existing
        join recompute_from
            on existing.symbol = recompute_from.symbol
            and existing.trade_ts_ms >= recompute_from.from_ts_ms
    """


class AppendOnlyTable(RuntimeError):
    """A batch would replace kept rows, but the table's incremental strategy only appends."""


def model(dbt, session):
    dbt.config(
        materialized="incremental",
        unique_key="trade_id",
        on_schema_change="fail",
    )
    silver = dbt.ref("silver_trades")
    existing = str(dbt.this) if dbt.is_incremental else None

    if hasattr(silver, "createOrReplaceTempView"):
        # Spark and Databricks: one pandas frame per symbol on the executors.
        silver.createOrReplaceTempView(SILVER_VIEW)
        if existing is not None and dbt.config.get("incremental_strategy") == "append":
            replaced = session.sql(rows_to_replace_sql(existing)).collect()[0][0]
            if replaced:
                raise AppendOnlyTable(
                    f"this batch recomputes {replaced} existing rows of {existing} (trades "
                    "arrived late or share a millisecond with kept trades), which needs an "
                    "incremental strategy that replaces rows by trade_id; run with "
                    "--full-refresh, or use file_format: delta with incremental_strategy: merge"
                )
        schema = ", ".join(f"{name} {kind}" for name, kind in OUTPUT_COLUMNS.items())
        return (
            session.sql(batch_sql(existing))
            .groupBy("symbol")
            .applyInPandas(recursive_features, schema=schema)
        )

    # DuckDB: the batch fits in memory as one pandas frame.
    silver.create_view(SILVER_VIEW, replace=True)
    batch = session.sql(batch_sql(existing)).df()
    per_symbol = [recursive_features(trades) for _, trades in batch.groupby("symbol", sort=True)]
    result = pd.concat(per_symbol, ignore_index=True) if per_symbol else recursive_features(batch)
    # A run without new trades returns no rows; typed text keeps DuckDB from calling it NULL.
    return result.astype({"trade_id": "string", "symbol": "string"})
