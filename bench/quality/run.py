"""Benchmark: validating N gold rows with the GX checkpoint vs one plain DuckDB pass.

Writes a synthetic `gold_trade_features` of --rows rows (default 1,000,000) to a DuckDB file,
with `silver_trades` and `gold_anomaly_labels` beside it so the gold aggregates have something
to count, then times:

- the checkpoint: the gold schema, rows and aggregates suites over gold_trade_features (rows
  read into pandas and validated by Great Expectations; aggregates computed in DuckDB), results
  written to NDJSON, no Data Docs;
- the baseline: the same numbers from DuckDB alone — the catalog query, one pass over the table
  computing every count the rows suite checks (nulls, duplicates, out-of-range, out-of-set),
  and the same aggregates query.

Prints both times and their ratio. Run: .venv/bin/python bench/quality/run.py [--rows N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import duckdb  # noqa: E402

from core.schema import SESSION_TYPES, TRADE_TYPES  # noqa: E402

SYMBOLS = ("AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "TSLA", "JPM", "XOM", "KO")
_FEATURES = ("price_change_pct", "log_return", "price_zscore", "vwap_deviation_pct",
             "macd_line", "macd_signal", "macd_hist", "bollinger_pct_b")


def _list(values: tuple[str, ...]) -> str:
    return "[" + ", ".join(f"'{value}'" for value in values) + "]"


def write_gold(path: Path, rows: int) -> None:
    """A gold layer of `rows` trades with every contract column, values inside the suites."""
    symbols = _list(SYMBOLS)
    features = ",\n".join(f"        (random() - 0.5) * 4 as {name}" for name in _FEATURES)
    with duckdb.connect(str(path)) as connection:
        connection.execute("set threads = 2")
        connection.execute("create schema gold")  # where dbt builds gold
        connection.execute(f"""
            create table gold.gold_trade_features as
            with base as (
                select
                    i,
                    md5(cast(i as varchar)) as trade_id,
                    {symbols}[1 + (i % 10)] as symbol,
                    1709906400000 + i * 37 as trade_ts_ms
                from range({rows}) as r(i)
            )
            select
                trade_id,
                symbol,
                make_timestamp(trade_ts_ms * 1000) as trade_ts,
                trade_ts_ms,
                100 + random() * 50 as price,
                cast(1 + floor(random() * 900) as double) as volume,
{features},
                sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random()) as volume_zscore,
                random() * 0.01 as price_volatility_1h,
                cast(1 + floor(random() * 40) as integer) as trade_intensity_1m,
                random() * 100 as rsi_14,
                random() * 0.05 as roll_spread_pct,
                cast(hour(make_timestamp(trade_ts_ms * 1000)) as integer) as hour_of_day,
                cast(minute(make_timestamp(trade_ts_ms * 1000)) as integer) as minute_of_hour,
                cast(isodow(make_timestamp(trade_ts_ms * 1000)) as integer) as day_of_week,
                ({_list(SESSION_TYPES)})[1 + (i % {len(SESSION_TYPES)})] as session_type,
                ({_list(TRADE_TYPES)})[1 + (i % {len(TRADE_TYPES)})] as trade_type,
                random() * 3 as volume_to_median_100,
                random() * 3 as trade_rate_ratio_10s,
                cast(1 + floor(random() * 2) as integer) as same_print_count_2s
            from base
        """)
        connection.execute(
            "create table silver_trades as "
            "select trade_id, symbol, trade_ts from gold.gold_trade_features"
        )
        connection.execute(
            "create table gold.gold_anomaly_labels as select trade_id, symbol, trade_ts, "
            "volume_zscore > 3.5 as is_anomaly, 'rule' as label_source, "
            "cast(null as varchar) as anomaly_kind from gold.gold_trade_features"
        )


def _literal(value: object) -> str:
    return f"'{value}'" if isinstance(value, str) else repr(value)


def baseline_rows_sql(suite) -> str:  # noqa: ANN001 - a SuiteDefinition
    """One pass computing, for each expectation of the rows suite, its unexpected count."""
    parts = []
    for number, expectation in enumerate(suite.expectations):
        column = expectation.column
        kind = expectation.expectation_type
        if kind == "expect_column_values_to_not_be_null":
            parts.append(f"count(*) - count({column})")
        elif kind == "expect_column_values_to_be_unique":
            parts.append(f"count({column}) - count(distinct {column})")
        elif kind == "expect_column_values_to_be_in_set":
            values = ", ".join(_literal(v) for v in expectation.value_set)
            parts.append(f"count(*) filter (where {column} not in ({values}))")
        elif kind == "expect_column_values_to_be_between":
            low = "<=" if expectation.strict_min else "<"
            high = ">=" if expectation.strict_max else ">"
            tests = []
            if expectation.min_value is not None:
                tests.append(f"{column} {low} {expectation.min_value!r}")
            if expectation.max_value is not None:
                tests.append(f"{column} {high} {expectation.max_value!r}")
            parts.append(f"count(*) filter (where {' or '.join(tests)})")
        else:
            raise ValueError(f"no baseline for {kind}")
        parts[-1] += f" as check_{number}"
    return f"select {', '.join(parts)} from gold.gold_trade_features"


def run_baseline(path: Path, suite, aggregates_sql: str) -> float:  # noqa: ANN001
    started = time.perf_counter()
    with duckdb.connect(str(path), read_only=True) as connection:
        connection.execute(
            "select column_name, data_type from information_schema.columns "
            "where table_name = 'gold_trade_features'"
        ).fetchall()
        connection.execute(baseline_rows_sql(suite)).fetchall()
        connection.execute(aggregates_sql).fetchall()
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="gold rows (default 1M)")
    args = parser.parse_args()
    if args.rows < 1:
        parser.error("--rows must be positive")

    from core.warehouse import DuckDBWarehouse
    from expectations.aggregates import gold_sql
    from expectations.checkpoint import CheckpointPaths, open_context, run_checkpoint
    from expectations.readers import LocalLanding
    from expectations.suites import QualityPolicy, build_suites

    policy = QualityPolicy(symbols=SYMBOLS)
    rows_suite = next(s for s in build_suites(policy) if s.name == "gold.gold_trade_features.rows")
    with tempfile.TemporaryDirectory(prefix="tradewatch-bench-quality-") as scratch:
        home = Path(scratch)
        warehouse_path = home / "warehouse.duckdb"
        started = time.perf_counter()
        write_gold(warehouse_path, args.rows)
        print(f"wrote {args.rows:,} gold rows in {time.perf_counter() - started:.1f}s")
        paths = CheckpointPaths(home / "monitoring" / "quality", home / "monitoring" / "gx")
        open_context(paths.gx_dir, None)  # GX's import and project set-up are one-off costs

        started = time.perf_counter()
        with DuckDBWarehouse(warehouse_path) as warehouse:
            summary = run_checkpoint(
                warehouse, LocalLanding(home / "landing" / "trades"), policy, paths,
                layers=("gold",), tables=("gold_trade_features",),
                reference_time=datetime.now(UTC),
            )
        checkpoint_seconds = time.perf_counter() - started
        gold = summary.layer("gold")
        if gold.failed:
            print(f"unexpected failures: {[o.describe() for o in gold.failures]}")
            return 1

        aggregates = gold_sql(
            {"gold_trade_features", "silver_trades", "gold_anomaly_labels"},
            DuckDBWarehouse(warehouse_path).table, policy.volume_zscore_limit,
        )
        baseline_seconds = min(run_baseline(warehouse_path, rows_suite, aggregates)
                               for _ in range(3))

    print(f"checkpoint: {gold.evaluated} expectations over {args.rows:,} gold rows "
          f"in {checkpoint_seconds:.2f}s ({args.rows / checkpoint_seconds:,.0f} rows/s)")
    print(f"baseline:   one DuckDB pass computing the same counts in {baseline_seconds:.3f}s")
    print(f"ratio:      checkpoint / baseline = {checkpoint_seconds / baseline_seconds:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
