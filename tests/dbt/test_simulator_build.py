"""The whole project builds on DuckDB over data from the simulated market.

The simulator serves its Finnhub protocol on 127.0.0.1 and the real collector lands what it
receives, exactly as `tradewatch demo` does; then one `dbt build` of every model and test.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ingest.landing import read_landed_records
from ingest.simulator import SimulatorConfig, read_ground_truth
from tests.dbt.warehouse_data import REPO_ROOT, BuildOutcome, query, run_build
from tests.support.market import land_market

pytestmark = pytest.mark.slow

SYMBOLS = ("AAPL", "MSFT", "NVDA")


@dataclass
class SimulatedWarehouse:
    home: Path
    trades_sent: int
    landed: int
    build: BuildOutcome


@pytest.fixture(scope="session")
def simulated_warehouse(tmp_path_factory: pytest.TempPathFactory) -> SimulatedWarehouse:
    home = tmp_path_factory.mktemp("simulated_home")
    config = SimulatorConfig(
        seed=11,
        symbols=SYMBOLS,
        # Friday 15:58 New York: the close and the after-hours session are both served.
        start=datetime(2024, 3, 8, 15, 58, tzinfo=ZoneInfo("America/New_York")),
        max_trades=4_000,
        anomaly_rate=0.02,
        ground_truth_dir=home / "simulator" / "ground_truth",
    )
    sent = land_market(home, config, SYMBOLS, flush_trades=1_000)
    # What the warehouse will read: the trade records in the landed files.
    landed = sum(1 for _ in read_landed_records(home / "landing" / "trades"))
    build = run_build(home, select=None)
    return SimulatedWarehouse(home, sent, landed, build)


def test_every_model_and_test_of_the_project_passes(simulated_warehouse):
    build = simulated_warehouse.build
    assert build.ok, build.error
    models = build.statuses("model")
    assert {"gold_trade_features", "silver_trades", "gold_minute_bars"} <= set(models)
    assert set(models.values()) == {"success"}
    assert build.statuses("test")["assert_trades_reconcile"] == "pass"


def test_every_landed_simulator_trade_reaches_silver_once(simulated_warehouse):
    assert simulated_warehouse.landed == simulated_warehouse.trades_sent > 0
    counts = query(
        simulated_warehouse.home,
        "select (select count(*) from bronze_trades), (select count(*) from silver_trades), "
        "(select count(*) from silver_trades_quarantine)",
    )[0]
    assert counts == (simulated_warehouse.landed, simulated_warehouse.landed, 0)


def test_injected_anomalies_are_in_silver_with_the_collector_ids(simulated_warehouse):
    events, trades = read_ground_truth(simulated_warehouse.home / "simulator" / "ground_truth")
    anomalous = {row["trade_id"] for row in trades}
    assert events and anomalous
    rows = query(simulated_warehouse.home, "select trade_id from silver_trades")
    silver = {trade_id for (trade_id,) in rows}
    assert anomalous <= silver


def test_the_simulated_close_splits_regular_and_after_hours(simulated_warehouse):
    sessions = dict(
        query(
            simulated_warehouse.home,
            "select session_type, count(*) from silver_trades group by session_type",
        )
    )
    assert sessions.get("regular", 0) > 0 and sessions.get("after_hours", 0) > 0
    bars = query(
        simulated_warehouse.home,
        "select count(*), sum(trade_count) from gold_minute_bars",
    )[0]
    assert bars[0] > 0 and bars[1] == simulated_warehouse.landed


def test_every_sql_example_of_the_documentation_runs_on_the_built_warehouse(simulated_warehouse):
    # The runbook and the guides tell people which SQL to run: a renamed table or column must
    # fail here, not in front of someone on call.
    statements = [
        (path.relative_to(REPO_ROOT).as_posix(), statement.strip())
        for path in sorted((REPO_ROOT / "docs").rglob("*.md"))
        for block in re.findall(r"```sql\n(.*?)```", path.read_text(), re.S)
        for statement in block.split(";")
        if statement.strip()
    ]
    assert len(statements) >= 10
    failures = []
    for page, statement in statements:
        try:
            query(simulated_warehouse.home, statement)
        except Exception as exc:  # report every failing example, not only the first
            failures.append(f"{page}: {type(exc).__name__}: {exc}\n{statement}")
    assert not failures, "\n\n".join(failures)
