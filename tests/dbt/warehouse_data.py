"""Landed data for the warehouse tests, and dbt builds run the way `tradewatch transform` runs.

Trades are landed with the collector's own writer (ingest.landing), so the files look exactly
like production ones: date partitions, hidden temporary names, atomic renames. The data spans
the 2024 DST change (Friday 8 March in EST, Monday 11 March in EDT) with trades on every
session boundary, replayed messages (duplicates within a file, across files and across
batches) and one bad row per quarantine rule.

dbt runs in a child process (as the CLI does), so this process can open the DuckDB file
read-only between builds; builds are session-scoped and run a handful of times per session.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import orjson

from core.layers import schema_of, search_path_schemas
from core.warehouse import set_search_path
from ingest.landing import PartitionedNdjsonWriter, utc_date_of_ms, write_bars

REPO_ROOT = Path(__file__).resolve().parents[2]
NEW_YORK = ZoneInfo("America/New_York")
#: The models this area owns, for builds that must not depend on the feature models.
WAREHOUSE_CORE = (
    "tag:seed tag:bronze tag:silver tag:monitoring gold_minute_bars gold_daily_bars "
    "gold_anomaly_scores"
)
#: What WAREHOUSE_CORE leaves out (and the tests that read them): the models that need labels
#: (the marts read gold_anomaly_labels, which needs every feature model).
NEEDS_LABELS = (
    "monitoring_shadow_scores monitoring_shadow_summary gold_flagged_trades gold_symbol_daily "
    "gold_anomaly_events monitoring_review_weekly"
)

_BUILD_SCRIPT = """
import json, os, sys
from flows.config import load_settings
from flows.transform import TransformFailed, run_transform

args = json.loads(sys.argv[1])
settings = load_settings(environ={**os.environ, "TRADEWATCH_HOME": args["home"]})
try:
    result = run_transform(
        settings, target=args["target"], full_refresh=args["full_refresh"], select=args["select"],
        exclude=args["exclude"],
    )
    out = {
        "ok": True,
        "nodes": [[n.name, n.resource_type, n.layer, n.status] for n in result.nodes],
        "row_counts": dict(result.row_counts),
    }
except TransformFailed as exc:
    out = {"ok": False, "error": str(exc)}
print("BUILD-RESULT " + json.dumps(out, default=str), flush=True)
if args.get("spark_queries") and out["ok"]:
    from pyspark.sql import SparkSession

    # The session dbt-spark opened (on another thread) is the process's default session.
    spark = SparkSession.builder.getOrCreate()
    rows = {
        name: [list(row) for row in spark.sql(sql).collect()]
        for name, sql in args["spark_queries"].items()
    }
    print("SPARK-RESULT " + json.dumps(rows, default=str), flush=True)
"""


def synthetic_trade_id(symbol: str, ts_ms: int, price: float, volume: float, position: int) -> str:
    """A deterministic id for a made-up trade (no feed message: ingest.trade_id does not apply)."""
    key = f"{symbol}|{int(ts_ms)}|{float(price)!r}|{float(volume)!r}|{int(position)}"
    return hashlib.blake2b(key.encode(), digest_size=16).hexdigest()


@dataclass
class BuildOutcome:
    """What one `run_transform` in a child process reported."""

    ok: bool
    error: str = ""
    nodes: list[list[str]] = field(default_factory=list)
    row_counts: dict[str, int] = field(default_factory=dict)
    spark: dict[str, list[list[Any]]] = field(default_factory=dict)
    output: str = ""

    def statuses(self, resource_type: str) -> dict[str, str]:
        return {name: status for name, kind, _layer, status in self.nodes if kind == resource_type}


def run_build(
    home: Path,
    *,
    target: str = "local",
    select: str | None = WAREHOUSE_CORE,
    exclude: str | None = None,
    full_refresh: bool = False,
    cwd: Path | None = None,
    spark_queries: dict[str, str] | None = None,
    extra_env: dict[str, str] | None = None,
) -> BuildOutcome:
    """Run flows.transform.run_transform in a child process; return what it reported."""
    args = {
        "home": str(home),
        "target": target,
        "select": select,
        "exclude": exclude if exclude is not None else (
            NEEDS_LABELS if select == WAREHOUSE_CORE else None
        ),
        "full_refresh": full_refresh,
        "spark_queries": spark_queries,
    }
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), **(extra_env or {})}
    completed = subprocess.run(
        [sys.executable, "-c", _BUILD_SCRIPT, json.dumps(args)],
        cwd=cwd or home,
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    output = completed.stdout + completed.stderr
    reported = {}
    for line in completed.stdout.splitlines():
        tag, _, payload = line.partition(" ")
        if tag in ("BUILD-RESULT", "SPARK-RESULT"):
            reported[tag] = json.loads(payload)
    build = reported.get("BUILD-RESULT")
    if build and (not spark_queries or not build["ok"] or "SPARK-RESULT" in reported):
        return BuildOutcome(
            **build, spark=reported.get("SPARK-RESULT", {}), output=output
        )
    raise AssertionError(
        f"the build process reported nothing (exit {completed.returncode}):\n{output[-4000:]}"
    )


def query(home: Path, sql: str) -> list[tuple]:
    """Rows of `sql` on the warehouse, read-only (dbt is not running in this process)."""
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        set_search_path(con, search_path_schemas())  # gold and monitoring by bare name
        return con.execute(sql).fetchall()
    finally:
        con.close()


def column_types(home: Path, table: str) -> dict[str, str]:
    rows = query(
        home,
        "select column_name, data_type from information_schema.columns "
        f"where table_schema = '{schema_of(table)}' and table_name = '{table}' "
        "order by ordinal_position",
    )
    return dict(rows)


# --- landed trades ------------------------------------------------------------------------


def ny_ms(day: str, clock: str) -> int:
    """Epoch ms of a New York wall-clock time."""
    return int(datetime.fromisoformat(f"{day}T{clock}").replace(tzinfo=NEW_YORK).timestamp() * 1000)


def iso_ms(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def trade(symbol: str, ts_ms: int, price: float, volume: float, position: int = 0) -> dict:
    """One landed trade record, as the Finnhub collector writes it."""
    return {
        "trade_id": synthetic_trade_id(symbol, ts_ms, price, volume, position),
        "symbol": symbol,
        "price": price,
        "volume": volume,
        "trade_ts_ms": ts_ms,
        "conditions": ["1", "12"] if position % 2 else None,
        "exchange": None,
        "received_at": iso_ms(ts_ms + 150),
        "source": "finnhub",
    }


#: Session boundaries (New York wall clock) and one instant either side of each.
BOUNDARY_CLOCKS = (
    "03:59:59.999", "04:00:00.000", "09:29:59.999", "09:30:00.000", "12:00:00.000",
    "15:59:59.999", "16:00:00.000", "19:59:59.999", "20:00:00.000", "23:30:00.000",
)
DAYS = ("2024-03-08", "2024-03-09", "2024-03-11")  # Friday EST, Saturday, Monday EDT


def clean_trades(
    symbols: Iterable[str] = ("AAPL", "MSFT", "KO"), start_price: float = 100.0
) -> list[dict]:
    """Valid trades on every session boundary of three days, sizes across all trade types."""
    volumes = (50.0, 99.0, 100.0, 250.0, 9_999.0, 10_000.0, 25_000.0, 0.0)
    records = []
    for s_index, symbol in enumerate(symbols):
        price = start_price + 10 * s_index
        for d_index, day in enumerate(DAYS):
            for c_index, clock in enumerate(BOUNDARY_CLOCKS):
                price = round(price * (1 + 0.001 * ((c_index % 3) - 1)), 4)
                volume = volumes[(c_index + d_index + s_index) % len(volumes)]
                records.append(trade(symbol, ny_ms(day, clock), price, volume, c_index % 3))
    return records


#: One landed line per quarantine rule: (trade_id, the line's JSON text, the expected rule).
def bad_lines(tag: str) -> list[tuple[str, str, str]]:
    ts = ny_ms("2024-03-08", "10:00:00.000")

    def line(trade_id_: str, **fields: Any) -> str:
        base = {
            "trade_id": trade_id_, "symbol": "AAPL", "price": 10.0, "volume": 5.0,
            "trade_ts_ms": ts, "conditions": None, "exchange": None,
            "received_at": iso_ms(ts), "source": "finnhub",
        }
        base.update(fields)
        return orjson.dumps({k: v for k, v in base.items() if v is not _MISSING}).decode()

    rows = [
        (f"{tag}-empty-symbol", line(f"{tag}-empty-symbol", symbol=""), "empty_symbol"),
        (f"{tag}-no-ts", line(f"{tag}-no-ts", trade_ts_ms=_MISSING), "missing_timestamp"),
        (f"{tag}-text-ts", line(f"{tag}-text-ts", trade_ts_ms="soon"), "uncastable_timestamp"),
        (f"{tag}-zero-price", line(f"{tag}-zero-price", price=0.0), "price_not_positive"),
        (f"{tag}-neg-price", line(f"{tag}-neg-price", price=-3.5), "price_not_positive"),
        (f"{tag}-text-price", line(f"{tag}-text-price", price="abc"), "uncastable_price"),
        (f"{tag}-null-price", line(f"{tag}-null-price", price=None), "missing_price"),
        (f"{tag}-neg-volume", line(f"{tag}-neg-volume", volume=-1.0), "negative_volume"),
        (f"{tag}-bad-received", line(f"{tag}-bad-received", received_at="yesterday"),
         "uncastable_received_at"),
    ]
    # NaN is not JSON, but Python's json module writes it: the line must still be read.
    nan_line = line(f"{tag}-nan-price").replace('"price":10.0', '"price":NaN')
    rows.append((f"{tag}-nan-price", nan_line, "price_not_finite"))
    return rows


_MISSING = object()


def land_trade_lines(home: Path, lines_by_date: dict[str, list[str]]) -> list[Path]:
    """Land lines with the collector's writer: one new file per date partition."""
    writer = PartitionedNdjsonWriter(home / "landing" / "trades", "trades")
    for date, lines in lines_by_date.items():
        writer.add(date, "".join(f"{text}\n" for text in lines).encode(), lines=len(lines))
    return writer.flush()


def land_trades(home: Path, records: list[dict], extra_lines: Iterable[str] = ()) -> list[Path]:
    by_date: dict[str, list[str]] = {}
    for record in records:
        by_date.setdefault(utc_date_of_ms(record["trade_ts_ms"]), []).append(
            orjson.dumps(record).decode()
        )
    for text in extra_lines:
        by_date.setdefault("2024-03-08", []).append(text)
    return land_trade_lines(home, by_date)


# --- landed bars --------------------------------------------------------------------------


def intraday_bar(symbol: str, day: str, clock: str, close: float, fetched_at: str) -> dict:
    local = datetime.fromisoformat(f"{day}T{clock}").replace(tzinfo=NEW_YORK)
    return {
        "symbol": symbol,
        "interval": "5min",
        "bar_ts_utc": local.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "bar_local": f"{day} {clock}",
        "time_zone": "US/Eastern",
        "open": close - 0.5,
        "high": close + 1.0,
        "low": close - 1.0,
        "close": close,
        "volume": 1000.0,
        "source": "alphavantage",
        "fetched_at": fetched_at,
    }


def daily_bar(symbol: str, day: str, close: float, fetched_at: str) -> dict:
    midnight = datetime.fromisoformat(f"{day}T00:00:00").replace(tzinfo=NEW_YORK)
    return {
        "symbol": symbol,
        "interval": "daily",
        "bar_ts_utc": midnight.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "bar_local": day,
        "time_zone": "US/Eastern",
        "open": close - 1,
        "high": close + 2,
        "low": close - 2,
        "close": close,
        "volume": 5.0e6,
        "source": "alphavantage",
        "fetched_at": fetched_at,
    }


AAPL_5MIN_CLOCKS = ("08:00:00", "09:30:00", "12:00:00", "15:55:00", "16:00:00", "18:00:00")


def land_bars(home: Path, fetched_at: str, aapl_close_1555: float = 103.0) -> None:
    """AAPL 5-minute bars on 2024-03-08 (pre, regular and after hours) and MSFT daily bars."""
    landing = home / "landing"
    closes = (100.0, 101.0, 102.0, aapl_close_1555, 104.0, 105.0)
    bars = [
        intraday_bar("AAPL", "2024-03-08", clock, close, fetched_at)
        for clock, close in zip(AAPL_5MIN_CLOCKS, closes, strict=True)
    ]
    write_bars(landing, symbol="AAPL", interval="5min", bars=bars)
    write_bars(
        landing,
        symbol="MSFT",
        interval="daily",
        bars=[daily_bar("MSFT", day, 400.0 + i, fetched_at) for i, day in enumerate(DAYS[::2])],
    )


# --- the expected outcome, computed in Python ---------------------------------------------


@dataclass
class Landed:
    """What was landed so far, and what silver and the quarantine should hold for it."""

    lines: int = 0
    valid_ids_in_order: list[str] = field(default_factory=list)
    valid_records: dict[str, dict] = field(default_factory=dict)
    rules: dict[str, str] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)

    def add(self, records: list[dict], bad: list[tuple[str, str, str]], files: list[Path]) -> None:
        self.lines += len(records) + len(bad)
        for record in records:
            if record["trade_id"] not in self.valid_records:
                self.valid_records[record["trade_id"]] = record
                self.valid_ids_in_order.append(record["trade_id"])
        for trade_id_, _text, rule in bad:
            self.rules[trade_id_] = rule
        self.files.extend(files)

    @property
    def duplicates(self) -> int:
        return self.lines - len(self.valid_records) - len(self.rules)


def expected_local_fields(ts_ms: int) -> tuple[str, str, str]:
    """(New York date, wall clock, session_type) computed with zoneinfo, independently of SQL."""
    local = datetime.fromtimestamp(ts_ms / 1000, UTC).astimezone(NEW_YORK)
    minutes = local.hour * 60 + local.minute
    if local.isoweekday() >= 6 or minutes < 240 or minutes >= 1200:
        session = "closed"
    elif minutes < 570:
        session = "pre_market"
    elif minutes < 960:
        session = "regular"
    else:
        session = "after_hours"
    return local.date().isoformat(), local.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3], session


def expected_trade_type(volume: float) -> str:
    if volume >= 10_000:
        return "block"
    return "standard" if volume >= 100 else "odd_lot"

