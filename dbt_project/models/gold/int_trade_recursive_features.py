"""Recursive trade indicators: Wilder's RSI(14) and MACD(12, 26, 9), one row per trade.

The EMAs and Wilder's averages have infinite memory, so they are not window functions. This
model runs the recursions per symbol in (trade_ts_ms, trade_id) order with pandas' ewm
(adjust=False): on DuckDB over numpy views of Arrow record batches that DuckDB streams in that
order (and the rows stream back to DuckDB as Arrow), on Spark and Databricks with
groupBy('symbol').applyInPandas. Both paths call `symbol_indicators`, so they perform the same
floating-point operations.

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
#: The columns the recursions compute; trade_id, symbol, trade_ts_ms and price pass through,
#: and rsi_14 is an elementwise function of Wilder's averages (see `_rsi`).
RECURSIVE_COLUMNS = [
    "ema_12",
    "ema_26",
    "macd_line",
    "macd_signal",
    "macd_hist",
    "rsi_avg_gain",
    "rsi_avg_loss",
]
SILVER_VIEW = "tradewatch_recursive_features_silver"
#: Each symbol's trades in recursion order; its carried state row (if any) comes first.
RECURSION_ORDER = "symbol, is_carried_state desc, trade_ts_ms, trade_id"
#: Rows per Arrow batch on DuckDB: big enough that per-batch overhead vanishes, small enough
#: that a batch and its indicators (about 130 bytes a row) stay a few tens of MB.
BATCH_ROWS = 262_144


def _ema(values, alpha, carried):
    """EMA with adjust=False; `carried` (the previous EMA, or None) continues a recursion."""
    if carried is not None:
        values = np.concatenate([[carried], values])
    # No copy: pandas wraps the float64 array (a slice of the batch on DuckDB) as it is.
    smoothed = pd.Series(values, dtype="float64", copy=False).ewm(alpha=alpha, adjust=False)
    smoothed = smoothed.mean().to_numpy()
    return smoothed if carried is None else smoothed[1:]


def _rsi(avg_gain, avg_loss):
    """100 - 100 / (1 + gain / loss); 100 with no losses, 50 with no movement (or none yet)."""
    rsi = np.full(len(avg_gain), 50.0)
    moved = ~np.isnan(avg_gain) & ((avg_gain > 0) | (avg_loss > 0))
    rsi[moved & (avg_loss == 0)] = 100.0
    both = moved & (avg_loss > 0)
    rsi[both] = 100 - 100 / (1 + avg_gain[both] / avg_loss[both])
    return rsi


def symbol_indicators(price, state):
    """EMAs, MACD and Wilder's averages for one symbol's prices in (trade_ts_ms, trade_id) order.

    `state` maps STATE_COLUMNS and "price" to the values of the symbol's last kept trade (the
    recursion continues from it), or is None on the symbol's first trade. Returns one float64
    array per name of RECURSIVE_COLUMNS, each aligned with `price`.
    """
    seed = dict.fromkeys(STATE_COLUMNS) if state is None else state
    previous_price = np.nan if state is None else state["price"]
    change = price - np.concatenate([[previous_price], price[:-1]])
    # The first trade has no change (NaN), so Wilder's averages start at the second one.
    with np.errstate(invalid="ignore"):
        gain = np.where(np.isnan(change), np.nan, np.maximum(change, 0.0))
        loss = np.where(np.isnan(change), np.nan, np.maximum(-change, 0.0))
    ema_12 = _ema(price, EMA_FAST_ALPHA, seed["ema_12"])
    ema_26 = _ema(price, EMA_SLOW_ALPHA, seed["ema_26"])
    macd_line = ema_12 - ema_26
    macd_signal = _ema(macd_line, MACD_SIGNAL_ALPHA, seed["macd_signal"])
    return {
        "ema_12": ema_12,
        "ema_26": ema_26,
        "macd_line": macd_line,
        "macd_signal": macd_signal,
        "macd_hist": macd_line - macd_signal,
        "rsi_avg_gain": _ema(gain, RSI_ALPHA, seed["rsi_avg_gain"]),
        "rsi_avg_loss": _ema(loss, RSI_ALPHA, seed["rsi_avg_loss"]),
    }


def recursive_features(trades):
    """RSI and MACD for one symbol's trades (a pandas frame, any order; Spark's applyInPandas).

    A row flagged is_carried_state seeds the recursion and is not returned.
    """
    trades = trades.sort_values(["trade_ts_ms", "trade_id"], kind="mergesort")
    carried = trades[trades["is_carried_state"].astype(bool)]
    batch = trades[~trades["is_carried_state"].astype(bool)]
    state = None
    if len(carried):
        last = carried.iloc[-1]
        state = {name: float(last[name]) for name in [*STATE_COLUMNS, "price"]}
    price = batch["price"].to_numpy(dtype="float64")
    indicators = symbol_indicators(price, state)
    return pd.DataFrame(
        {
            "trade_id": batch["trade_id"].astype(str).to_numpy(),
            "symbol": batch["symbol"].astype(str).to_numpy(),
            "trade_ts_ms": batch["trade_ts_ms"].to_numpy(dtype="int64"),
            "price": price,
            **indicators,
            "rsi_14": _rsi(indicators["rsi_avg_gain"], indicators["rsi_avg_loss"]),
        }
    )


def output_schema(batch_schema):
    """The Arrow schema of this model's rows: pass-through columns as DuckDB sent them."""
    import pyarrow as pa

    passed = [batch_schema.field(name) for name in ("trade_id", "symbol", "trade_ts_ms", "price")]
    return pa.schema(
        passed + [pa.field(name, pa.float64()) for name in [*RECURSIVE_COLUMNS, "rsi_14"]]
    )


def recursive_feature_batches(sorted_batches, schema):
    """RSI and MACD for Arrow record batches of trades in RECURSION_ORDER (DuckDB's path).

    Yields one record batch of `schema` per input batch, without the carried state rows.
    trade_id and symbol stay Arrow strings end to end (as millions of Python str objects they
    were most of the time and memory of a pandas version); each symbol is a contiguous run of
    rows, so the recursions run on numpy views. A symbol that continues into the next batch
    continues from the state of its last row, exactly like a carried state row does, so the
    batch size cannot change a single bit of the result.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    continued = None  # (symbol, state after its last row) at the end of the previous batch
    for batch in sorted_batches:
        rows = batch.num_rows
        if rows == 0:
            continue
        price = batch.column("price").to_numpy(zero_copy_only=False)
        carried = batch.column("is_carried_state").to_numpy(zero_copy_only=False)
        symbol = batch.column("symbol")
        starts = pc.not_equal(symbol[1:], symbol[:-1]).to_numpy(zero_copy_only=False)
        bounds = [0, *(np.flatnonzero(starts) + 1).tolist(), rows]

        indicators = {name: np.empty(rows) for name in RECURSIVE_COLUMNS}
        for first, end in zip(bounds[:-1], bounds[1:], strict=True):
            run_symbol = symbol[first].as_py()
            if carried[first]:
                # The carried row only seeds the recursion; its slot is dropped below.
                state = {name: _as_float(batch.column(name)[first]) for name in STATE_COLUMNS}
                state["price"] = float(price[first])
                for values in indicators.values():
                    values[first] = np.nan
                first += 1
            elif continued is not None and continued[0] == run_symbol:
                state = continued[1]
            else:
                state = None
            for name, values in symbol_indicators(price[first:end], state).items():
                indicators[name][first:end] = values
            if first < end:
                state = {name: float(indicators[name][end - 1]) for name in STATE_COLUMNS}
                state["price"] = float(price[end - 1])
            continued = (run_symbol, state)
        indicators["rsi_14"] = _rsi(indicators["rsi_avg_gain"], indicators["rsi_avg_loss"])

        # from_pandas: NaN becomes NULL (Wilder's averages on a symbol's first trade), as
        # DuckDB reads NaN from a pandas frame.
        computed = [
            pa.array(indicators[name], type=pa.float64(), from_pandas=True)
            for name in [*RECURSIVE_COLUMNS, "rsi_14"]
        ]
        passed = [batch.column(name) for name in ("trade_id", "symbol", "trade_ts_ms", "price")]
        result = pa.record_batch(passed + computed, schema=schema)
        yield result.filter(pa.array(~carried)) if carried.any() else result


def _as_float(value):
    """An Arrow double scalar as a float, NULL (no RSI average yet) as NaN."""
    value = value.as_py()
    return np.nan if value is None else float(value)


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
    # The table is read where it is needed, never through a shared CTE: DuckDB materialises a
    # CTE read more than once, which here meant every kept row and state column in memory.
    return f"""
        with recompute_from as (
            -- earliest trade per symbol that is not in the table yet
            select silver.symbol, min(silver.trade_ts_ms) as from_ts_ms
            from {SILVER_VIEW} as silver
            left join {existing} as existing on silver.trade_id = existing.trade_id
            where existing.trade_id is null
            group by silver.symbol
        ),
        last_kept_ts as (
            select existing.symbol, max(existing.trade_ts_ms) as trade_ts_ms
            from {existing} as existing
            join recompute_from
                on existing.symbol = recompute_from.symbol
                and existing.trade_ts_ms < recompute_from.from_ts_ms
            group by existing.symbol
        ),
        last_kept as (
            select existing.symbol, max(existing.trade_id) as trade_id
            from {existing} as existing
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
        from {existing} as existing
        join last_kept on existing.trade_id = last_kept.trade_id
    """


def sorted_batch_sql(existing):
    """batch_sql in RECURSION_ORDER, without the state columns a full build leaves empty."""
    columns = ["trade_id", "symbol", "trade_ts_ms", "price", "is_carried_state"]
    if existing is not None:
        columns += STATE_COLUMNS
    return f"""
        select {", ".join(columns)}
        from ({batch_sql(existing)}) as batch
        order by {RECURSION_ORDER}
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

    # DuckDB: DuckDB sorts (much faster than pandas on text keys) and streams Arrow record
    # batches; the model streams its rows back the same way, so neither the sorted trades nor
    # the indicators are ever held whole in Python. dbt-duckdb writes the returned reader on
    # a cursor of its own while this query is still being read. An empty batch keeps its
    # column types, so DuckDB never sees NULL.
    import pyarrow as pa

    silver.create_view(SILVER_VIEW, replace=True)
    relation = session.sql(sorted_batch_sql(existing))
    # duckdb >= 1.4 names it to_arrow_reader; fetch_record_batch is the older (now deprecated) name.
    to_arrow_reader = getattr(relation, "to_arrow_reader", None) or relation.fetch_record_batch
    trades = to_arrow_reader(BATCH_ROWS)
    schema = output_schema(trades.schema)
    return pa.RecordBatchReader.from_batches(schema, recursive_feature_batches(trades, schema))
