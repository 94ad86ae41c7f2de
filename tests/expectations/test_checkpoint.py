"""The checkpoint on a dbt-built warehouse: green as built, and each corruption caught.

Every test here validates the warehouse dbt built from simulator data (see conftest), or a
corrupted copy of it, and checks the verdict a user would read: which suite, which
expectation, which column, which severity, and whether the flow would stop.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest

from core.warehouse import DatabricksWarehouse
from expectations.checkpoint import CheckpointPaths, run_checkpoint
from expectations.readers import LocalLanding
from expectations.results import DataQualityFailed, ValidationSummary, raise_on_critical
from expectations.suites import QualityPolicy
from tests.support.quality_home import SimulatedHome, validate

pytestmark = pytest.mark.slow

# A handful of trades to corrupt, chosen the same way in every statement.
SOME_TRADES = "select trade_id from silver_trades order by trade_id limit 4"


def _failures(summary: ValidationSummary) -> set[tuple[str, str, str | None, str]]:
    return {(o.suite, o.expectation, o.column, o.severity) for o in summary.outcomes
            if not o.success}


def test_the_warehouse_dbt_built_from_simulator_data_is_green(simulated_home, tmp_path):
    summary = validate(simulated_home, tmp_path)

    assert _failures(summary) == set()
    assert [layer.layer for layer in summary.layers] == ["bronze", "silver", "gold"]
    for layer in summary.layers:
        assert layer.evaluated > 10 and layer.passed == layer.evaluated
    aggregates = {o.column: o.observed_value for o in summary.outcomes
                  if o.suite == "silver.aggregates" and o.column}
    assert aggregates["trades_AAPL"].startswith("trades_AAPL=") and aggregates["trades_AAPL"] != (
        "trades_AAPL=0"
    )
    raise_on_critical(summary, stage="training")  # nothing to stop


def test_every_result_is_written_for_dbt_in_the_contract_shape(simulated_home, tmp_path):
    summary = validate(simulated_home, tmp_path, layers=("silver",))

    lines = summary.results_path.read_text().splitlines()
    assert summary.results_path.parent == tmp_path / "monitoring" / "quality"
    assert len(lines) == len(summary.outcomes)
    first = json.loads(lines[0])
    assert first["run_id"] == summary.run_id and first["suite"].startswith("silver.")
    assert {record["severity"] for record in map(json.loads, lines)} == {"critical", "warning"}


@dataclass(frozen=True)
class Corruption:
    statements: tuple[str, ...]
    layers: tuple[str, ...]
    caught: tuple[str, str, str | None, str]
    # Validate this long after the market stopped (stale data is data nobody refreshed).
    later: timedelta = timedelta(0)


CORRUPTIONS = {
    "null trade ids": Corruption(
        (f"update silver_trades set trade_id = null where trade_id in ({SOME_TRADES})",),
        ("silver",),
        ("silver.silver_trades.rows", "expect_column_values_to_not_be_null", "trade_id",
         "critical"),
    ),
    "duplicate trades": Corruption(
        ("insert into silver_trades "
         f"select * from silver_trades where trade_id in ({SOME_TRADES})",),
        ("silver",),
        ("silver.silver_trades.rows", "expect_column_values_to_be_unique", "trade_id",
         "critical"),
    ),
    "negative prices": Corruption(
        (f"update silver_trades set price = -price where trade_id in ({SOME_TRADES})",),
        ("silver",),
        ("silver.silver_trades.rows", "expect_column_values_to_be_between", "price", "critical"),
    ),
    "silver rows lost": Corruption(
        (f"delete from silver_trades where trade_id in ({SOME_TRADES})",),
        ("silver",),
        ("silver.aggregates", "expect_column_pair_values_to_be_equal", None, "critical"),
    ),
    "stale data": Corruption(
        (),
        ("silver",),
        ("silver.aggregates", "expect_column_values_to_be_between", "newest_trade_age_seconds",
         "warning"),
        later=timedelta(hours=3),
    ),
    "RSI out of range": Corruption(
        ("update gold_trade_features set rsi_14 = 140 where trade_id in "
         "(select trade_id from gold_trade_features order by trade_id limit 3)",),
        ("gold",),
        ("gold.gold_trade_features.rows", "expect_column_values_to_be_between", "rsi_14",
         "critical"),
    ),
    "a column changes type": Corruption(
        ("alter table silver_trades alter price type varchar",),
        ("silver",),
        ("silver.silver_trades.schema", "expect_column_values_to_be_in_set", "price", "critical"),
    ),
    "volume z-score outliers": Corruption(
        ("update gold_trade_features set volume_zscore = 9.5 where hash(trade_id) % 5 = 0",),
        ("gold",),
        ("gold.aggregates", "expect_column_values_to_be_between", "volume_zscore_outlier_share",
         "warning"),
    ),
}


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_each_corruption_is_caught_with_its_severity(name, corrupted, tmp_path):
    corruption = CORRUPTIONS[name]
    copy = corrupted(*corruption.statements)

    summary = validate(copy, tmp_path / "out", layers=corruption.layers,
                       reference_time=copy.clock + corruption.later)

    failures = _failures(summary)
    assert corruption.caught in failures, f"{name} not caught; failures: {sorted(failures)}"
    severity = corruption.caught[3]
    if severity == "critical":
        with pytest.raises(DataQualityFailed, match="before training"):
            raise_on_critical(summary, stage="training")
    else:
        # A warning alone is reported, never blocking: nothing critical fails with it.
        assert {failure[3] for failure in failures} == {"warning"}
        raise_on_critical(summary, stage="training")


def test_a_configured_symbol_with_no_trades_is_a_warning(simulated_home, tmp_path):
    summary = validate(simulated_home, tmp_path, layers=("silver",),
                       symbols=(*simulated_home.symbols, "TSLA"))

    assert _failures(summary) == {
        ("silver.aggregates", "expect_column_values_to_be_between", "trades_TSLA", "warning")
    }
    failure = summary.warning_failures[0]
    assert failure.observed_value == "trades_TSLA=0"
    raise_on_critical(summary, stage="scoring")


def test_landed_trades_missing_from_bronze_break_the_landing_reconciliation(corrupted, tmp_path):
    copy = corrupted()
    late = copy.trades_dir / "date=2024-03-08" / "landed-after-the-build.ndjson"
    late.write_text('{"trade_id": "late-1"}\n{"trade_id": "late-2"}\n')

    summary = validate(copy, tmp_path / "out", layers=("bronze",))

    assert _failures(summary) == {
        ("bronze.aggregates", "expect_column_pair_values_to_be_equal", None, "critical")
    }
    observed = summary.critical_failures[0].observed_value
    bronze, landing = (int(n) for n in re.findall(r"=(\d+)", observed))
    assert landing == bronze + 2


def test_data_docs_show_every_suite_with_the_history_of_runs(simulated_home, corrupted, tmp_path):
    first = validate(simulated_home, tmp_path, data_docs=True)
    broken = corrupted(f"update silver_trades set price = -price where trade_id in ({SOME_TRADES})")
    second = validate(broken, tmp_path, data_docs=True)

    index = second.data_docs_index
    assert index == tmp_path / "reports" / "data_docs" / "index.html"
    html = index.read_text()
    for outcome in first.outcomes:
        assert outcome.suite in html
    assert first.run_id in html and second.run_id in html
    pages = list((index.parent / "validations").rglob("*.html"))
    assert len({page.parent.parent.name for page in pages}) == 2  # one folder per run
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=\"https?://", html)
    rows_page = next(p for p in pages
                     if second.run_id in str(p) and "/silver/silver_trades/rows/" in str(p))
    assert "[critical] price > 0 — a trade price is positive" in rows_page.read_text()


class _DuckDBAsDatabricks:
    """A DB-API connection shaped like databricks-sql-connector's, answering from DuckDB.

    Databricks cannot run here; this stands in for the workspace so that the Databricks
    reader's own SQL (backtick-quoted, catalog-qualified) runs end to end. Only the quoting
    and the catalog-qualified information schema are translated.
    """

    def __init__(self, warehouse: Path) -> None:
        self.connection = duckdb.connect()
        self.connection.execute(f"attach '{warehouse}' as tradewatch (read_only)")

    def cursor(self) -> _DuckDBAsDatabricks:
        return self

    def __enter__(self) -> _DuckDBAsDatabricks:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    def execute(self, sql: str) -> None:
        sql = sql.replace("`tradewatch`.information_schema", "information_schema")
        self.result = self.connection.sql(sql.replace("`", '"'))

    def fetchall_arrow(self):  # noqa: ANN201 - a pyarrow.Table
        return self.result.to_arrow_table()

    def close(self) -> None:
        self.connection.close()


def test_the_databricks_reader_reaches_the_same_verdicts_as_the_duckdb_reader(
    simulated_home: SimulatedHome, corrupted, tmp_path
):
    copy = corrupted(f"update silver_trades set price = -price where trade_id in ({SOME_TRADES})")
    policy = QualityPolicy(symbols=simulated_home.symbols)

    local = validate(copy, tmp_path / "local")
    stand_in = _DuckDBAsDatabricks(copy.warehouse)
    with DatabricksWarehouse(
        "adb-0.azuredatabricks.net", "/sql/1.0/warehouses/x", catalog="tradewatch",
        schema="main", environ={"DATABRICKS_TOKEN": "dapi-unused"},
        connect=lambda **_: stand_in,
    ) as remote:
        through_databricks = run_checkpoint(
            remote, LocalLanding(copy.trades_dir), policy,
            CheckpointPaths(tmp_path / "remote" / "quality", tmp_path / "remote" / "gx"),
            reference_time=copy.clock,
        )

    def verdicts(summary: ValidationSummary) -> list[tuple[str, str, str | None, bool, str]]:
        return sorted((o.suite, o.expectation, o.column or "", o.success, o.observed_value)
                      for o in summary.outcomes)

    assert verdicts(through_databricks) == verdicts(local)
    assert not through_databricks.success
