"""gold_trade_features against the reference implementation, and incremental against full.

Real dbt builds (the way `tradewatch transform` runs them) over simulator-like trades landed
as the collector lands them: four symbols, two New York days either side of the DST change,
ties in time, flat runs and gaps. Tolerances: the reference is held to 1e-9 relative (its sums
are exact, so what is left is rounding of the final operations); incremental and full refresh
to 1e-12 relative.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from core.layers import search_path_schemas
from core.warehouse import set_search_path
from tests.dbt.feature_reference import (
    EMA_FAST_ALPHA,
    FEATURE_COLUMNS,
    reference_features,
    textbook_macd,
    textbook_wilder_rsi,
)
from tests.dbt.features_support import (
    CONTRACT_COLUMNS,
    EXTRA_COLUMNS,
    mismatches,
    read_gold,
    read_table,
)
from tests.dbt.synthetic_trades import land_trades, make_trades
from tests.dbt.warehouse_data import run_build

pytestmark = pytest.mark.slow

# The feature models, what they read and their tests; "cautious" leaves out tests that also
# read models outside this lineage (other layers' reconciliations, the labels).
FEATURES = "+gold_trade_features"
CAUTIOUS = {"DBT_INDIRECT_SELECTION": "cautious"}
NUMERIC_FEATURES = [c for c in FEATURE_COLUMNS if c not in ("session_type", "trade_type")]


def _ny_ms(moment: str) -> int:
    return int(pd.Timestamp(moment, tz="America/New_York").value // 1_000_000)


def _build(home: Path) -> None:
    outcome = run_build(home, select=FEATURES, extra_env=CAUTIOUS)
    assert outcome.ok, outcome.error


@dataclass
class Builds:
    trades: pd.DataFrame
    reference: pd.DataFrame
    full: pd.DataFrame
    incremental: pd.DataFrame
    full_home: Path
    late_trades: pd.DataFrame
    new_symbols: set[str]


def _split_with_late_trades(trades: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Batch 1: up to Monday 12:30 New York, minus 5 % of the morning and all of KO.

    Batch 2 is the rest: newer trades, the held-back morning trades (late: older than trades of
    their symbol already built) and KO, a symbol the table has never seen.
    """
    cutoff = _ny_ms("2024-03-11 12:30")
    rng = np.random.default_rng(11)
    morning = (trades["trade_ts_ms"] < cutoff) & (trades["trade_ts_ms"] > cutoff - 4 * 3_600_000)
    held_back = morning & (rng.random(len(trades)) < 0.05)
    first = (trades["trade_ts_ms"] < cutoff) & ~held_back & (trades["symbol"] != "KO")
    return trades[first], trades[~first]


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> Builds:
    trades = make_trades()

    full_home = tmp_path_factory.mktemp("features_full")
    land_trades(full_home, trades, "all")
    _build(full_home)

    first, second = _split_with_late_trades(trades)
    newest_built = first.groupby("symbol")["trade_ts_ms"].max()
    late = second[second["trade_ts_ms"] < second["symbol"].map(newest_built)]
    incremental_home = tmp_path_factory.mktemp("features_incremental")
    land_trades(incremental_home, first, "batch-1")
    _build(incremental_home)
    land_trades(incremental_home, second, "batch-2")
    _build(incremental_home)

    return Builds(
        trades=trades,
        reference=reference_features(trades),
        full=read_gold(full_home),
        incremental=read_gold(incremental_home),
        full_home=full_home,
        late_trades=late,
        new_symbols=set(second["symbol"]) - set(first["symbol"]),
    )


def test_gold_has_one_row_per_trade_with_the_contract_columns(builds: Builds) -> None:
    assert sorted(builds.full.index) == sorted(builds.trades["trade_id"])
    columns = read_table(
        builds.full_home,
        "select column_name, data_type from information_schema.columns "
        "where table_name = 'gold_trade_features' order by ordinal_position",
    )
    types = dict(zip(columns["column_name"], columns["data_type"], strict=True))
    assert list(types) == CONTRACT_COLUMNS + EXTRA_COLUMNS
    assert {name: types[name] for name in NUMERIC_FEATURES} == {
        name: "INTEGER"
        if name
        in (
            "trade_intensity_1m",
            "hour_of_day",
            "minute_of_hour",
            "day_of_week",
            "same_print_count_2s",
        )
        else "DOUBLE"
        for name in NUMERIC_FEATURES
    }


def test_every_feature_matches_the_reference_implementation(builds: Builds) -> None:
    problems = mismatches(
        builds.full,
        builds.reference,
        FEATURE_COLUMNS + ["symbol_trade_seq", "session_vwap"],
        rtol=1e-9,
    )
    assert not problems, "\n".join(problems)


def test_rsi_and_macd_match_the_textbook_definitions_after_warm_up(builds: Builds) -> None:
    warm_up = 400  # (13/14)^400 and (25/27)^400 are far below 1e-9: the seeds are forgotten
    checked = 0
    for _, trades in builds.full.groupby("symbol"):
        trades = trades.sort_values(["trade_ts_ms", "trade_id"])
        prices = trades["price"].to_numpy()
        if len(prices) <= warm_up:
            continue
        line, signal = textbook_macd(prices)
        rsi = textbook_wilder_rsi(prices)
        np.testing.assert_allclose(trades["rsi_14"].to_numpy()[warm_up:], rsi[warm_up:], rtol=1e-9)
        np.testing.assert_allclose(
            trades["macd_line"].to_numpy()[warm_up:], line[warm_up:], rtol=1e-9
        )
        np.testing.assert_allclose(
            trades["macd_signal"].to_numpy()[warm_up:], signal[warm_up:], rtol=1e-9
        )
        checked += len(prices) - warm_up
    assert checked > 500


def test_incremental_build_with_late_trades_equals_a_full_refresh(builds: Builds) -> None:
    assert len(builds.late_trades) > 10, "the second batch must contain late trades"
    assert builds.new_symbols == {"KO"}, "the second batch must bring a symbol never seen"
    assert sorted(builds.incremental.index) == sorted(builds.full.index)
    numeric = [c for c in builds.full.columns if builds.full[c].dtype.kind in "fiu"]
    text = [c for c in builds.full.columns if c not in numeric]
    problems = mismatches(builds.incremental, builds.full, numeric, rtol=1e-12)
    problems += mismatches(builds.incremental, builds.full, text, rtol=0)
    assert not problems, "\n".join(problems)


def _execute(home: Path, sql: str, *params: object) -> None:
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    try:
        set_search_path(con, search_path_schemas())  # gold by its bare name
        con.execute(sql, list(params))
    finally:
        con.close()


def test_incremental_run_leaves_old_trades_alone_and_continues_the_carried_state(
    tmp_path: Path,
) -> None:
    """White-box: marks in the stored state show what a batch reads and what it rewrites."""
    trades = make_trades()
    aapl_friday = trades[
        (trades["symbol"] == "AAPL") & (trades["trade_ts_ms"] < _ny_ms("2024-03-09"))
    ]
    split = _ny_ms("2024-03-08 15:59")
    land_trades(tmp_path, aapl_friday[aapl_friday["trade_ts_ms"] < split], "morning")
    _build(tmp_path)

    kept = read_gold(tmp_path).sort_values("symbol_trade_seq")
    first_trade, last_kept = kept.index[0], kept.index[-1]
    recursive = read_table(tmp_path, "select * from int_trade_recursive_features").set_index(
        "trade_id"
    )
    # Marks: an impossible value on the oldest trade; the day's notional and EMA12 of the last
    # kept trade moved, so that a batch continuing from them shows it.
    _execute(
        tmp_path,
        "update gold_trade_features set roll_spread_pct = -1 where trade_id = ?",
        first_trade,
    )
    _execute(
        tmp_path,
        "update gold_trade_features set session_cum_notional = session_cum_notional + 1000 "
        "where trade_id = ?",
        last_kept,
    )
    _execute(
        tmp_path,
        "update int_trade_recursive_features set ema_12 = ema_12 + 1 where trade_id = ?",
        last_kept,
    )

    later = aapl_friday[aapl_friday["trade_ts_ms"] >= split]
    land_trades(tmp_path, later, "afternoon")
    _build(tmp_path)

    gold = read_gold(tmp_path)
    assert gold.loc[first_trade, "roll_spread_pct"] == -1, "an old trade was recomputed"
    first_new = gold.loc[gold.index.difference(kept.index)].sort_values("symbol_trade_seq").iloc[0]
    assert first_new["symbol_trade_seq"] == kept["symbol_trade_seq"].max() + 1
    # the running sums are decimals: compare them exactly, as text
    sums = read_table(
        tmp_path,
        "select gold.trade_id, cast(gold.session_cum_notional as varchar) as notional, "
        "cast(cast(silver.price * silver.volume as decimal(38, 12)) as varchar) as trade_notional "
        "from gold_trade_features as gold join silver_trades as silver using (trade_id) "
        f"where gold.trade_id in ('{last_kept}', '{first_new.name}')",
    ).set_index("trade_id")
    assert Decimal(sums.loc[first_new.name, "notional"]) == Decimal(
        sums.loc[last_kept, "notional"]
    ) + Decimal(sums.loc[first_new.name, "trade_notional"])

    new_recursive = read_table(tmp_path, "select * from int_trade_recursive_features").set_index(
        "trade_id"
    )
    state = recursive.loc[last_kept]
    expected_ema_12 = (1 - EMA_FAST_ALPHA) * (state["ema_12"] + 1) + EMA_FAST_ALPHA * first_new[
        "price"
    ]
    assert new_recursive.loc[first_new.name, "ema_12"] == pytest.approx(expected_ema_12, rel=1e-12)
