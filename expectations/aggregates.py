"""The aggregates each layer's `<layer>.aggregates` suite checks, computed in the warehouse.

Counts, shares, newest timestamps and per-symbol counts are one SQL pass in the warehouse and
a one-row pandas frame here; the same SQL runs on DuckDB and Databricks (plain aggregates,
scalar subqueries, `not exists`, `is not distinct from`).

Freshness: the age of the newest trade is `reference_time − max(silver.trade_ts)`, how far the
data lags the market. The reference time is the run's clock unless the caller passes one: the
simulator replays historical dates, so a replay passes its simulated clock (the end of the
window it served), and re-validating an old snapshot passes the time of that snapshot. The
newest `received_at` (the collector's wall clock) is reported beside it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from core.warehouse import Warehouse
from expectations.readers import LandingSource
from expectations.suites import QualityPolicy, symbol_column

Qualify = Callable[[str], str]


def _scalar_select(metrics: Mapping[str, tuple[str, tuple[str, ...]]], present: Collection[str],
                   qualify: Qualify) -> str:
    """`select (subquery) as name, ...` with null for each metric whose tables are missing."""
    parts = []
    for name, (template, tables) in metrics.items():
        if all(table in present for table in tables):
            expression = template.format(**{table: qualify(table) for table in tables})
            parts.append(f"    ({expression}) as {name}")
        else:
            parts.append(f"    cast(null as double) as {name}")
    return "select\n" + ",\n".join(parts)


def bronze_sql(present: Collection[str], qualify: Qualify) -> str:
    """Bronze's row count."""
    return _scalar_select(
        {"bronze_rows": ("select count(*) from {bronze_trades}", ("bronze_trades",))},
        present, qualify,
    )


def silver_sql(present: Collection[str], qualify: Qualify) -> str:
    """Counts for bronze = silver + quarantine + duplicates, and the newest silver trade.

    Duplicates are counted from bronze alone: the bronze rows that were not quarantined (matched
    on their file and raw id), minus the distinct trade ids among them. Silver keeps one copy of
    each, so a row silver loses or invents breaks the equation.
    """
    tables = ("bronze_trades", "silver_trades", "silver_trades_quarantine")
    duplicates = (
        "select count(*) - count(distinct trim(b.trade_id)) from {bronze_trades} as b "
        "where not exists (select 1 from {silver_trades_quarantine} as q "
        "where q._source_file = b._source_file and q.trade_id is not distinct from b.trade_id)"
    )
    return _scalar_select(
        {
            "bronze_rows": ("select count(*) from {bronze_trades}", ("bronze_trades",)),
            "silver_rows": ("select count(*) from {silver_trades}", ("silver_trades",)),
            "quarantine_rows": (
                "select count(*) from {silver_trades_quarantine}", ("silver_trades_quarantine",)
            ),
            "unparseable_lines": (
                "select count(*) from {silver_trades_quarantine} "
                "where quarantine_rule = 'unparseable_line'", ("silver_trades_quarantine",)
            ),
            "duplicate_rows": (duplicates, ("bronze_trades", "silver_trades_quarantine")),
            "newest_received_at": ("select max(received_at) from {silver_trades}", tables[1:2]),
            "newest_trade_ts": ("select max(trade_ts) from {silver_trades}", tables[1:2]),
        },
        present, qualify,
    )


def gold_sql(present: Collection[str], qualify: Qualify, volume_zscore_limit: float) -> str:
    """Row counts of gold against silver, gold's newest trade, and the distribution shares."""
    outliers = (
        f"select avg(case when abs(volume_zscore) > {float(volume_zscore_limit)!r} "
        "then 1.0 else 0.0 end) from {gold_trade_features}"
    )
    return _scalar_select(
        {
            "silver_rows": ("select count(*) from {silver_trades}", ("silver_trades",)),
            "gold_rows": ("select count(*) from {gold_trade_features}", ("gold_trade_features",)),
            "label_rows": ("select count(*) from {gold_anomaly_labels}", ("gold_anomaly_labels",)),
            "newest_silver_trade_ts": ("select max(trade_ts) from {silver_trades}",
                                       ("silver_trades",)),
            "newest_gold_trade_ts": ("select max(trade_ts) from {gold_trade_features}",
                                     ("gold_trade_features",)),
            "volume_zscore_outlier_share": (outliers, ("gold_trade_features",)),
            "anomaly_label_share": (
                "select avg(case when is_anomaly then 1.0 else 0.0 end) from {gold_anomaly_labels}",
                ("gold_anomaly_labels",),
            ),
        },
        present, qualify,
    )


def symbol_counts_sql(qualify: Qualify) -> str:
    """Trades per symbol in silver."""
    return f"select symbol, count(*) as trades from {qualify('silver_trades')} group by symbol"


def _timestamp(value: Any) -> datetime | None:
    if value is None or pd.isna(value):
        return None
    stamp = pd.Timestamp(value)
    # The warehouse stores naive timestamps in UTC.
    stamp = stamp.tz_localize(UTC) if stamp.tzinfo is None else stamp.tz_convert(UTC)
    return stamp.to_pydatetime()


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="milliseconds")


def _count(value: Any) -> int | None:
    return None if value is None or pd.isna(value) else int(value)


def layer_aggregates(
    layer: str,
    warehouse: Warehouse,
    present: Collection[str],
    policy: QualityPolicy,
    *,
    landing: LandingSource,
    reference_time: datetime,
) -> pd.DataFrame:
    """The one-row frame the `<layer>.aggregates` suite validates."""
    qualify = warehouse.table
    if layer == "bronze":
        row = warehouse.query(bronze_sql(present, qualify)).iloc[0]
        ingested = None
        if getattr(landing, "settled_before", None) is not None and "bronze_trades" in present:
            files = warehouse.query(
                f"select distinct _source_file from {qualify('bronze_trades')}"
            )["_source_file"]
            ingested = {str(name) for name in files}
        return pd.DataFrame([{
            "bronze_rows": _count(row["bronze_rows"]),
            "landing_lines": landing.count_trade_lines(ingested),
        }])
    if layer == "silver":
        row = warehouse.query(silver_sql(present, qualify)).iloc[0]
        bronze, silver = _count(row["bronze_rows"]), _count(row["silver_rows"])
        quarantine, duplicates = _count(row["quarantine_rows"]), _count(row["duplicate_rows"])
        accounted = (
            None if silver is None or quarantine is None or duplicates is None
            else silver + quarantine + duplicates
        )
        newest = _timestamp(row["newest_trade_ts"])
        values: dict[str, object] = {
            "bronze_rows": bronze,
            "silver_rows": silver,
            "quarantine_rows": quarantine,
            "unparseable_lines": _count(row["unparseable_lines"]),
            "duplicate_rows": duplicates,
            "silver_plus_quarantine_plus_duplicates": accounted,
            "quarantine_share": (quarantine / bronze) if bronze and quarantine is not None else 0.0,
            "newest_trade_ts": _iso(newest),
            "newest_received_at": _iso(_timestamp(row["newest_received_at"])),
            "reference_time": _iso(reference_time.astimezone(UTC)),
            "newest_trade_age_seconds": (
                None if newest is None else (reference_time - newest).total_seconds()
            ),
        }
        counts: dict[str, int] = {}
        if "silver_trades" in present:
            per_symbol = warehouse.query(symbol_counts_sql(qualify))
            counts = {str(s): int(n) for s, n in zip(per_symbol["symbol"], per_symbol["trades"],
                                                      strict=True)}
        for symbol in policy.symbols:
            values[symbol_column(symbol)] = counts.get(symbol, 0)
        return pd.DataFrame([values])
    if layer == "gold":
        row = warehouse.query(gold_sql(present, qualify, policy.volume_zscore_limit)).iloc[0]
        share = row["volume_zscore_outlier_share"]
        labelled = row["anomaly_label_share"]
        return pd.DataFrame([{
            "silver_rows": _count(row["silver_rows"]),
            "gold_rows": _count(row["gold_rows"]),
            "label_rows": _count(row["label_rows"]),
            "newest_silver_trade_ts": _iso(_timestamp(row["newest_silver_trade_ts"])),
            "newest_gold_trade_ts": _iso(_timestamp(row["newest_gold_trade_ts"])),
            # An empty table has no share: 0 of nothing is within every bound.
            "volume_zscore_outlier_share": 0.0 if pd.isna(share) else float(share),
            "anomaly_label_share": 0.0 if pd.isna(labelled) else float(labelled),
        }])
    raise ValueError(f"unknown layer {layer!r}")
