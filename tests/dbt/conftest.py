"""Session fixtures of the warehouse tests: one landed home taken through several builds."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.dbt.warehouse_data import (
    BuildOutcome,
    Landed,
    bad_lines,
    clean_trades,
    land_bars,
    land_trades,
    ny_ms,
    query,
    run_build,
    trade,
)

# --- session fixture: one home through several builds -------------------------------------


@dataclass
class WarehouseStory:
    """Snapshots of one warehouse through: first batch, a re-run, a second batch, a full refresh."""

    home: Path
    landed_first: Landed
    landed_second: Landed
    builds: dict[str, BuildOutcome]
    snapshots: dict[str, dict[str, Any]]


SNAPSHOT_SQL = {
    "bronze_rows": "select count(*) from bronze_trades",
    "bronze_files": "select count(distinct _source_file) from bronze_trades",
    "silver_rows": "select count(*) from silver_trades",
    "quarantine_rows": "select count(*) from silver_trades_quarantine",
    "bronze_bars_rows": "select count(*) from bronze_bars",
    "silver_ingested": (
        "select trade_id, _ingested_at, _source_file from silver_trades order by trade_id"
    ),
    "silver_values": (
        "select trade_id, symbol, price, volume, trade_ts, ts_ny, session_type, trade_type "
        "from silver_trades order by trade_id"
    ),
    "quarantine": (
        "select trade_id, quarantine_rule from silver_trades_quarantine order by trade_id"
    ),
}


def snapshot(home: Path) -> dict[str, Any]:
    taken = {}
    for name, sql in SNAPSHOT_SQL.items():
        rows = query(home, sql)
        taken[name] = rows[0][0] if name.endswith("_rows") or name == "bronze_files" else rows
    return taken


def replayed(records: list[dict], every: int) -> list[dict]:
    """Every `every`-th record again: a replayed feed message lands the same trades twice."""
    return [dict(record) for record in records[::every]]


@pytest.fixture(scope="session")
def warehouse_story(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WarehouseStory]:
    home = tmp_path_factory.mktemp("warehouse_home")
    builds: dict[str, BuildOutcome] = {}
    snapshots: dict[str, dict[str, Any]] = {}

    # Batch 1: clean trades with in-file replays, a second file replaying some, bad lines, and
    # a writer's hidden temporary file that must never be read.
    first_records = clean_trades()
    bad_first = bad_lines("b1")
    landed_first = Landed()
    in_file = first_records + replayed(first_records, 7)
    files = land_trades(home, in_file, [text for _id, text, _rule in bad_first])
    landed_first.add(in_file, bad_first, files)
    again = replayed(first_records, 11)
    landed_first.add(again, [], land_trades(home, again))
    hidden = home / "landing" / "trades" / "date=2024-03-08" / ".trades-in-progress.ndjson"
    unfinished = trade("AAPL", ny_ms("2024-03-08", "10:00:00"), 1.0, 1.0)
    hidden.write_text(orjson.dumps(unfinished).decode())
    land_bars(home, fetched_at="2024-03-12T00:00:00.000Z")

    builds["first"] = run_build(home)
    snapshots["first"] = snapshot(home)
    builds["rerun"] = run_build(home)
    snapshots["rerun"] = snapshot(home)

    # Batch 2: new trades, replays of first-batch trades, new bad lines, a re-fetched month.
    landed_second = Landed(
        lines=landed_first.lines,
        valid_ids_in_order=list(landed_first.valid_ids_in_order),
        valid_records=dict(landed_first.valid_records),
        rules=dict(landed_first.rules),
        files=list(landed_first.files),
    )
    second_records = clean_trades(("NVDA", "AAPL"), start_price=57.0)
    second_records = [r for r in second_records if r["trade_id"] not in landed_first.valid_records]
    second_batch = second_records + replayed(first_records, 5)
    bad_second = bad_lines("b2")
    files = land_trades(home, second_batch, [text for _id, text, _rule in bad_second])
    landed_second.add(second_batch, bad_second, files)
    land_bars(home, fetched_at="2024-03-13T00:00:00.000Z", aapl_close_1555=110.0)

    builds["second"] = run_build(home)
    snapshots["second"] = snapshot(home)
    builds["full_refresh"] = run_build(home, full_refresh=True)
    snapshots["full_refresh"] = snapshot(home)

    yield WarehouseStory(home, landed_first, landed_second, builds, snapshots)
