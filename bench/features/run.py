"""Benchmark: building gold_trade_features for 1M and 5M trades, against two baselines.

For each size a scratch DuckDB warehouse gets N simulator-shaped trades (10 symbols, about 2
trades a second each, across New York days) written straight into silver_trades, so that
only the feature build is timed. Then, each in its own process (peak memory is the process's
maximum resident set):

- gold:  `dbt run` of int_trade_recursive_features + gold_trade_features, full refresh (the
         figure is the two models' execution time from dbt's run_results, and their CPU
         time; dbt's start-up and parse are printed separately);
- floor: one DuckDB window scan of the same rows (partition by symbol, order by time), the
         least any per-trade window feature can cost;
- pandas: a plain per-symbol pandas implementation of the same features (rolling windows,
         ewm), as a data scientist would write it;
- incremental: 1 % new trades appended to silver, then an incremental `dbt run` of the two
         models, against the full build.

Run: .venv/bin/python bench/features/run.py [--sizes 1000000 5000000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
QUIET = {"DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "DO_NOT_TRACK": "true"}
FEATURE_MODELS = "int_trade_recursive_features gold_trade_features"

SILVER_SQL = """
create or replace table silver_trades as
with base as (
    select
        i,
        ['AAPL', 'MSFT', 'NVDA', 'AMZN', 'GOOGL', 'META', 'TSLA', 'JPM', 'XOM', 'KO'][1 + (i % 10)]
            as symbol,
        cast({start_ms} + (i // 10) * 500 + (hash(i) % 500) as bigint) as trade_ts_ms
    from range({first}, {first} + {rows}) as r(i)
)
select
    md5(i::varchar) as trade_id,
    symbol,
    round(100 + 10 * sin(i / 50000.0) + (hash(i * 7) % 1000) / 1000.0, 2) as price,
    (100 * (1 + hash(i * 3) % 5))::double as volume,
    epoch_ms(trade_ts_ms) as trade_ts,
    trade_ts_ms,
    null::varchar[] as conditions,
    null::varchar as exchange,
    epoch_ms(trade_ts_ms) as received_at,
    'finnhub' as source,
    cast(timezone('America/New_York', epoch_ms(trade_ts_ms)::timestamptz) as date) as trade_date_ny,
    timezone('America/New_York', epoch_ms(trade_ts_ms)::timestamptz) as ts_ny,
    'regular' as session_type,
    'standard' as trade_type,
    'bench' as _source_file,
    now()::timestamp as _ingested_at
from base
"""
START_MS = 1_709_904_600_000  # 2024-03-08 09:30 New York


# --- the measured steps, each run in a child process: python run.py --step NAME DB ---------


def _cpu_seconds() -> float:
    """CPU time of this process so far, all threads: on a shared machine wall time varies with
    the neighbours' load, CPU time much less, so both are reported."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def step_floor(database: str) -> dict:
    import duckdb

    con = duckdb.connect(database)
    started, cpu = time.perf_counter(), _cpu_seconds()
    con.execute(
        "create or replace table floor_scan as select trade_id, lag(price) over "
        "(partition by symbol order by trade_ts_ms, trade_id) as previous_price "
        "from silver_trades"
    )
    return {"seconds": time.perf_counter() - started, "cpu_seconds": _cpu_seconds() - cpu}


def step_pandas(database: str) -> dict:
    import duckdb
    import numpy as np
    import pandas as pd

    started, cpu = time.perf_counter(), _cpu_seconds()
    trades = (
        duckdb.connect(database, read_only=True)
        .execute(
            "select trade_id, symbol, price, volume, trade_ts_ms, trade_date_ny, ts_ny "
            "from silver_trades"
        )
        .df()
    )
    out = []
    for _, t in trades.sort_values(["symbol", "trade_ts_ms", "trade_id"]).groupby("symbol"):
        t = t.copy()
        price, volume = t["price"], t["volume"]
        previous = price.shift()
        t["price_change_pct"] = ((price - previous) / previous * 100).fillna(0)
        t["log_return"] = np.log(price / previous).fillna(0)
        for name, column in (("volume_zscore", volume), ("price_zscore", price)):
            mean = column.rolling(50, min_periods=2).mean().shift()
            std = column.rolling(50, min_periods=2).std().shift()
            t[name] = ((column - mean) / std).replace([np.inf, -np.inf], np.nan).fillna(0)
        timed = t.set_index(pd.to_datetime(t["trade_ts_ms"], unit="ms"))
        t["price_volatility_1h"] = (
            timed["log_return"].rolling("3600s", closed="both").std().fillna(0).to_numpy()
        )
        t["trade_intensity_1m"] = timed["price"].rolling("60s", closed="both").count().to_numpy()
        notional = (price * volume).groupby(t["trade_date_ny"]).cumsum()
        vwap = notional / volume.groupby(t["trade_date_ny"]).cumsum()
        t["vwap_deviation_pct"] = (price - vwap) / vwap * 100
        change = price.diff()
        gain = change.clip(lower=0).ewm(alpha=1 / 14, adjust=False).mean()
        loss = (-change).clip(lower=0).ewm(alpha=1 / 14, adjust=False).mean()
        t["rsi_14"] = (100 - 100 / (1 + gain / loss)).fillna(50)
        line = price.ewm(span=12, adjust=False).mean() - price.ewm(span=26, adjust=False).mean()
        t["macd_line"], t["macd_signal"] = line, line.ewm(span=9, adjust=False).mean()
        t["macd_hist"] = t["macd_line"] - t["macd_signal"]
        sma, sd = (
            price.rolling(20, min_periods=1).mean(),
            price.rolling(20, min_periods=1).std(ddof=0),
        )
        t["bollinger_pct_b"] = ((price - (sma - 2 * sd)) / (4 * sd)).fillna(0.5)
        cov = change.rolling(100, min_periods=2).cov(change.shift())
        t["roll_spread_pct"] = (2 * np.sqrt((-cov).clip(lower=0)) / price * 100).fillna(0)
        median = volume.rolling(100, min_periods=1).median().shift()
        t["volume_to_median_100"] = (volume / median.where(median != 0)).fillna(1.0)
        per_second = [
            timed["price"].rolling(f"{seconds}s", closed="both").count().to_numpy() / seconds
            for seconds in (10, 600)
        ]
        t["trade_rate_ratio_10s"] = per_second[0] / per_second[1]
        # identical prints in the last 2 s: per (price, volume) group in time order, the rows
        # since the first one at or after t - 2 s (one global sort on group, then time)
        group = t.groupby(["price", "volume"], sort=False).ngroup().to_numpy()
        ms = (t["trade_ts_ms"] - t["trade_ts_ms"].min()).to_numpy()
        order = np.lexsort((np.arange(len(t)), ms, group))
        keys = group[order] * (ms.max() + 2_001) + ms[order]
        since = np.arange(len(t)) - np.searchsorted(keys, keys - 2_000, "left") + 1
        same = np.empty(len(t), dtype=np.int64)
        same[order] = since
        t["same_print_count_2s"] = same
        local = t["ts_ny"]
        t["hour_of_day"], t["minute_of_hour"] = local.dt.hour, local.dt.minute
        t["day_of_week"] = local.dt.dayofweek + 1
        out.append(t)
    features = pd.concat(out)
    return {
        "seconds": time.perf_counter() - started,
        "cpu_seconds": _cpu_seconds() - cpu,
        "rows": len(features),
    }


def step_dbt(database: str, full_refresh: str) -> dict:
    from dbt.cli.main import dbtRunner

    home = Path(database).parent
    os.environ.update(QUIET, TRADEWATCH_HOME=str(home))
    args = [
        "run", "--select", *FEATURE_MODELS.split(),
        "--project-dir", str(REPO_ROOT / "dbt_project"),
        "--profiles-dir", str(REPO_ROOT),
        "--target-path", str(home / "target"),
        "--log-path", str(home / "logs"),
        "--quiet",
    ]  # fmt: skip
    if full_refresh == "yes":
        args.append("--full-refresh")
    # CPU time per model: read at dbt's NodeStart / NodeFinished events (the two models run
    # one after the other, the second depends on the first)
    node_cpu: dict[str, float] = {}

    def on_event(event) -> None:
        name = event.info.name
        if name in ("NodeStart", "NodeFinished"):
            node = event.data.node_info.unique_id.rsplit(".", 1)[-1]
            sign = -1 if name == "NodeStart" else 1
            node_cpu[node] = node_cpu.get(node, 0.0) + sign * _cpu_seconds()

    started = time.perf_counter()
    result = dbtRunner(callbacks=[on_event]).invoke(args)
    wall = time.perf_counter() - started
    nodes = {r.node.name: r for r in result.result.results}
    failed = [name for name, r in nodes.items() if str(r.status).lower() not in ("success",)]
    if failed or not result.success:
        raise SystemExit(f"dbt run failed for {failed or 'the run'}; see {home / 'logs'}")
    return {
        "seconds": sum(r.execution_time for r in nodes.values()),
        "cpu_seconds": sum(node_cpu[name] for name in nodes),
        "wall_seconds": wall,
        "models": {name: round(r.execution_time, 2) for name, r in nodes.items()},
        "models_cpu": {name: round(node_cpu[name], 2) for name in nodes},
    }


def _child(step: str, *args: str) -> dict:
    """Run one step in a fresh process; its result plus its peak resident memory."""
    completed = subprocess.run(
        [sys.executable, __file__, "--step", step, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **QUIET},
        check=False,
    )
    lines = [line for line in completed.stdout.splitlines() if line.startswith("STEP ")]
    if completed.returncode != 0 or not lines:
        raise SystemExit(
            f"bench step {step} failed:\n{completed.stdout[-2000:]}{completed.stderr[-3000:]}"
        )
    return json.loads(lines[-1].removeprefix("STEP "))


def _fill_silver(database: str, rows: int, first: int = 0, append: bool = False) -> None:
    import duckdb

    sql = SILVER_SQL.format(start_ms=START_MS, first=first, rows=rows)
    con = duckdb.connect(database)
    if append:
        con.execute(
            sql.replace("create or replace table silver_trades as", "insert into silver_trades")
        )
    else:
        con.execute(sql)
    con.close()


def bench(rows: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-features-") as scratch:
        database = str(Path(scratch) / "warehouse.duckdb")
        _fill_silver(database, rows)
        floor = _child("floor", database)
        gold = _child("dbt", database, "yes")
        pandas = _child("pandas", database)
        new_rows = rows // 100
        _fill_silver(database, new_rows, first=rows, append=True)
        incremental = _child("dbt", database, "no")

    mb = 1024 * 1024
    print(f"\n== {rows:,} trades")
    print(
        f"gold full build    {gold['seconds']:8.2f} s  cpu {gold['cpu_seconds']:7.2f} s  peak "
        f"{gold['peak_bytes'] / mb:7.0f} MB   (dbt wall {gold['wall_seconds']:.1f} s; "
        f"{gold['models']}; cpu {gold['models_cpu']})"
    )
    print(
        f"floor window scan  {floor['seconds']:8.2f} s  cpu {floor['cpu_seconds']:7.2f} s  peak "
        f"{floor['peak_bytes'] / mb:7.0f} MB"
    )
    print(
        f"pandas per symbol  {pandas['seconds']:8.2f} s  cpu {pandas['cpu_seconds']:7.2f} s  peak "
        f"{pandas['peak_bytes'] / mb:7.0f} MB"
    )
    print(
        f"incremental +1 %   {incremental['seconds']:8.2f} s  cpu "
        f"{incremental['cpu_seconds']:7.2f} s  peak {incremental['peak_bytes'] / mb:7.0f} MB   "
        f"({incremental['models']}; cpu {incremental['models_cpu']})"
    )
    print(
        f"ratio gold / floor            {gold['seconds'] / floor['seconds']:6.2f}x  (target <= 3)"
    )
    print(
        f"speed-up over pandas          {pandas['seconds'] / gold['seconds']:6.2f}x  (target >= 3)"
    )
    print(
        f"memory gold / pandas          {gold['peak_bytes'] / pandas['peak_bytes']:6.2f}"
        "   (target <= 0.25)"
    )
    print(
        f"incremental / full build      {incremental['seconds'] / gold['seconds']:6.1%}"
        "  (target <= 5 %)"
    )
    print(
        f"in CPU time: gold / floor {gold['cpu_seconds'] / floor['cpu_seconds']:.2f}x, "
        f"speed-up over pandas {pandas['cpu_seconds'] / gold['cpu_seconds']:.2f}x, "
        f"incremental / full {incremental['cpu_seconds'] / gold['cpu_seconds']:.1%}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 5_000_000])
    parser.add_argument("--step", help=argparse.SUPPRESS)
    options, rest = parser.parse_known_args()
    if options.step:
        result = {"floor": step_floor, "pandas": step_pandas, "dbt": step_dbt}[options.step](*rest)
        result["peak_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        print("STEP " + json.dumps(result))
        return
    for rows in options.sizes:
        bench(rows)


if __name__ == "__main__":
    main()
