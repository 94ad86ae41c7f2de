"""int_trade_recursive_features' own guarantees, bit for bit, without a dbt build around it.

The DuckDB path streams Arrow batches sorted by DuckDB; Spark runs one pandas frame per
symbol. Both must give the same bits, whatever the batch size (a symbol continues across
batches from the state of its last row), and an incremental batch continuing from the carried
state must give the bits of a full build. The dbt-level tests (test_features.py) hold gold to
the reference and incremental to full refresh at 1e-12; these hold the model to exactly 0.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from tests.dbt.synthetic_trades import make_trades

MODEL_FILE = (
    Path(__file__).resolve().parents[2] / "dbt_project/models/gold/int_trade_recursive_features.py"
)


def _load_model():
    spec = importlib.util.spec_from_file_location("int_trade_recursive_features", MODEL_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


model = _load_model()


@pytest.fixture(scope="module")
def trades() -> pd.DataFrame:
    """Four symbols, ties in the same millisecond, flat runs, a symbol starting late."""
    return make_trades()[["trade_id", "symbol", "trade_ts_ms", "price"]]


def _duckdb_build(
    con: duckdb.DuckDBPyConnection, silver: pd.DataFrame, existing: str | None, batch_rows: int
) -> pd.DataFrame:
    """What the model returns on DuckDB for `silver` (and the table `existing`, if any)."""
    con.register(model.SILVER_VIEW, silver)
    reader = con.sql(model.sorted_batch_sql(existing)).to_arrow_reader(batch_rows)
    schema = model.output_schema(reader.schema)
    table = pa.Table.from_batches(list(model.recursive_feature_batches(reader, schema)), schema)
    assert table.column_names == list(model.OUTPUT_COLUMNS)
    return table.to_pandas().set_index("trade_id").sort_index()


def _assert_same_bits(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert list(actual.index) == list(expected.index)
    for column in expected.columns:
        got, want = actual[column].to_numpy(), expected[column].to_numpy()
        if want.dtype.kind == "f":
            # NaN (no RSI average yet) in pandas is NULL in DuckDB: same positions, same bits.
            assert np.array_equal(np.isnan(got), np.isnan(want)), column
            assert np.array_equal(got.view(np.int64)[~np.isnan(want)],
                                  want.view(np.int64)[~np.isnan(want)]), column  # fmt: skip
        else:
            assert np.array_equal(got, want), column


def test_duckdb_batches_give_the_bits_of_the_per_symbol_pandas_path(
    trades: pd.DataFrame, tmp_path: Path
) -> None:
    per_symbol = [
        model.recursive_features(group.assign(is_carried_state=False))
        for _, group in trades.groupby("symbol")
    ]
    spark_path = pd.concat(per_symbol).set_index("trade_id").sort_index()
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    # batches of 7 rows split every symbol many times; 100,000 holds all trades in one
    for batch_rows in (7, 500, 100_000):
        _assert_same_bits(_duckdb_build(con, trades, None, batch_rows), spark_path)


def test_an_incremental_batch_with_late_trades_gives_the_bits_of_a_full_build(
    trades: pd.DataFrame, tmp_path: Path
) -> None:
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    full = _duckdb_build(con, trades, None, model.BATCH_ROWS)

    # The first build misses the newest trades, 5 % of the older ones (they arrive late) and
    # every trade of KO (a symbol the table has never seen).
    cutoff = trades["trade_ts_ms"].quantile(0.8)
    late = np.random.default_rng(3).random(len(trades)) < 0.05
    first = trades[(trades["trade_ts_ms"] < cutoff) & ~late & (trades["symbol"] != "KO")]
    kept = _duckdb_build(con, first, None, model.BATCH_ROWS)
    con.register("kept_rows", kept.reset_index())
    con.execute("create table int_trade_recursive_features as select * from kept_rows")

    # Every batch row is one a full build also has; the table keeps the rows it does not replace.
    batch = _duckdb_build(con, trades, "int_trade_recursive_features", 64)
    assert batch.index.isin(full.index).all()
    assert len(batch) < len(full) and set(batch["symbol"]) == set(trades["symbol"])
    merged = pd.concat([kept.drop(batch.index, errors="ignore"), batch]).sort_index()
    _assert_same_bits(merged, full)
