"""The feature models on a local Spark session: the same numbers as the reference.

The SQL window features and the Python model (groupBy('symbol').applyInPandas) run on Spark
in a full build and then an incremental one; open-source Spark tables here are parquet, which
dbt-spark can only append to, so a batch that would replace rows (late trades) is refused
with what to do instead.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests.dbt.feature_reference import FEATURE_COLUMNS, reference_features
from tests.dbt.features_support import mismatches
from tests.dbt.synthetic_trades import land_trades, make_trades
from tests.dbt.warehouse_data import run_build

pytestmark = [pytest.mark.slow, pytest.mark.spark]

# The feature and label models, what they read and their tests (see test_features.py).
SELECT = "+gold_anomaly_labels"
CAUTIOUS = {"DBT_INDIRECT_SELECTION": "cautious"}
GOLD_SQL = f"select trade_id, {', '.join(FEATURE_COLUMNS)} from gold.gold_trade_features"


def _gold(rows: list[list[object]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["trade_id", *FEATURE_COLUMNS]).set_index("trade_id")


def test_features_on_spark_match_the_reference_across_an_incremental_run(tmp_path: Path) -> None:
    home, scratch = tmp_path / "home", tmp_path / "cwd"
    scratch.mkdir()
    trades = make_trades()
    trades = trades[trades["symbol"].isin(["AAPL", "MSFT"])]
    monday = int(pd.Timestamp("2024-03-11", tz="America/New_York").value // 1_000_000)
    friday, later = trades[trades["trade_ts_ms"] < monday], trades[trades["trade_ts_ms"] >= monday]

    land_trades(home, friday, "friday")
    first = run_build(home, target="spark", select=SELECT, cwd=scratch, extra_env=CAUTIOUS)
    assert first.ok, first.error + "\n" + first.output[-3000:]
    assert {
        name: status
        for name, status in first.statuses("unit_test").items()
        if name.startswith("gold_trade_features")
    } == dict.fromkeys(
        [
            "gold_trade_features_price_change_and_log_return",
            "gold_trade_features_zscores_previous_50_trades",
            "gold_trade_features_volatility_and_intensity_time_windows",
            "gold_trade_features_vwap_resets_each_new_york_day",
            "gold_trade_features_bollinger_last_20_trades",
            "gold_trade_features_roll_spread",
            "gold_trade_features_volume_to_median_of_previous_trades",
            "gold_trade_features_trade_rate_10s_against_10_minutes",
            "gold_trade_features_same_prints_in_2_seconds",
            "gold_trade_features_new_york_local_time_fields",
            "gold_trade_features_incremental_continues_from_kept_trade",
        ],
        "pass",
    )

    land_trades(home, later, "monday")
    second = run_build(
        home,
        target="spark",
        select=SELECT,
        cwd=scratch,
        extra_env=CAUTIOUS,
        spark_queries={"gold": GOLD_SQL},
    )
    assert second.ok, second.error + "\n" + second.output[-3000:]
    gold = _gold(second.spark["gold"])
    assert sorted(gold.index) == sorted(trades["trade_id"])
    problems = mismatches(gold, reference_features(trades), FEATURE_COLUMNS, rtol=1e-9)
    assert not problems, "\n".join(problems)

    late = friday.iloc[[10]].assign(trade_ts_ms=friday["trade_ts_ms"].iloc[10] + 1)
    late = late.assign(trade_id="late-" + late["trade_id"])
    land_trades(home, late, "late")
    refused = run_build(home, target="spark", select=SELECT, cwd=scratch, extra_env=CAUTIOUS)
    assert not refused.ok
    assert "existing rows" in refused.error and "--full-refresh" in refused.error
