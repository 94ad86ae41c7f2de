"""A warehouse built by dbt from simulator data, and corrupted copies of it: the quality tests'
fixtures (tests/expectations and the validate flow's tests in tests/flows).

The simulator serves its Finnhub protocol on 127.0.0.1, the real collector lands what it
receives (`tests.support.market.land_market`), and `dbt build` (every model, in a child
process, with the dbt tests' own helper) builds the warehouse once per session. Tests never
touch that warehouse: each corruption is applied to a copy of the DuckDB file (and of the
landing folder when the landing is corrupted).

A folder's conftest.py makes the fixtures available with
`from tests.support.quality_home import corrupted, simulated_home`.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import pytest

from core.layers import search_path_schemas
from core.warehouse import DuckDBWarehouse, set_search_path
from expectations.checkpoint import CheckpointPaths, run_checkpoint
from expectations.readers import LocalLanding
from expectations.results import ValidationSummary
from expectations.suites import QualityPolicy
from ingest.simulator import SimulatorConfig
from tests.dbt.warehouse_data import run_build
from tests.support.market import land_market

SYMBOLS = ("AAPL", "MSFT", "NVDA")


@dataclass(frozen=True)
class SimulatedHome:
    """A data home with landed simulator trades and the warehouse dbt built from them."""

    home: Path
    symbols: tuple[str, ...]
    # The simulated market's clock when it stopped: "now" for freshness (it replays 2024).
    clock: datetime

    @property
    def warehouse(self) -> Path:
        return self.home / "warehouse.duckdb"

    @property
    def trades_dir(self) -> Path:
        return self.home / "landing" / "trades"


@pytest.fixture(scope="session")
def simulated_home(tmp_path_factory: pytest.TempPathFactory) -> SimulatedHome:
    home = tmp_path_factory.mktemp("quality_home")
    config = SimulatorConfig(
        seed=5,
        symbols=SYMBOLS,
        # Friday 15:58 New York: the close and the after-hours session are both served.
        start=datetime(2024, 3, 8, 15, 58, tzinfo=ZoneInfo("America/New_York")),
        max_trades=3_000,
        anomaly_rate=0.02,
        ground_truth_dir=home / "simulator" / "ground_truth",
    )
    land_market(home, config, SYMBOLS, flush_trades=1_000)
    build = run_build(home, select=None)
    assert build.ok, build.error
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as connection:
        (newest,) = connection.execute("select max(trade_ts) from silver_trades").fetchone()
    return SimulatedHome(home, SYMBOLS, newest.replace(tzinfo=UTC) + timedelta(seconds=1))


@pytest.fixture
def corrupted(simulated_home: SimulatedHome, tmp_path: Path) -> Callable[..., SimulatedHome]:
    """Copy the built home (warehouse and landing) and run SQL against the copy only."""

    def corrupt(*statements: str) -> SimulatedHome:
        copy = tmp_path / "home"
        copy.mkdir()
        shutil.copy2(simulated_home.warehouse, copy / "warehouse.duckdb")
        shutil.copytree(simulated_home.home / "landing", copy / "landing")
        if statements:
            with duckdb.connect(str(copy / "warehouse.duckdb")) as connection:
                set_search_path(connection, search_path_schemas())  # tables by bare name
                for statement in statements:
                    connection.execute(statement)
        return SimulatedHome(copy, simulated_home.symbols, simulated_home.clock)

    return corrupt


def validate(
    target: SimulatedHome,
    output: Path,
    *,
    symbols: Sequence[str] | None = None,
    layers: Sequence[str] = ("bronze", "silver", "gold"),
    data_docs: bool = False,
    reference_time: datetime | None = None,
) -> ValidationSummary:
    """Run the checkpoint on `target`, writing results under `output`.

    Freshness is judged against the simulated clock unless `reference_time` says otherwise.
    """
    policy = QualityPolicy(symbols=tuple(symbols or target.symbols))
    paths = CheckpointPaths(
        results_dir=output / "monitoring" / "quality",
        gx_dir=output / "monitoring" / "gx",
        data_docs_dir=output / "reports" / "data_docs" if data_docs else None,
    )
    with DuckDBWarehouse(target.warehouse) as warehouse:
        return run_checkpoint(warehouse, LocalLanding(target.trades_dir), policy, paths,
                              layers=layers, reference_time=reference_time or target.clock)
