"""Reading gold back and comparing it column by column, for the feature and label tests."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from core.layers import search_path_schemas
from core.schema import GOLD_FEATURES_CONTRACT
from core.warehouse import set_search_path

#: The columns gold_trade_features adds beyond the trade and the model's inputs.
EXTRA_COLUMNS = [
    "trade_date_ny",
    "symbol_trade_seq",
    "session_vwap",
    "session_cum_notional",
    "session_cum_volume",
]
#: The trade and the model's inputs: the contract of gold_trade_features less the extras.
CONTRACT_COLUMNS = [column for column in GOLD_FEATURES_CONTRACT if column not in EXTRA_COLUMNS]


def read_table(home: Path, sql: str) -> pd.DataFrame:
    """Rows of `sql` on the DuckDB warehouse of `home`, read-only (dbt runs in a child process)."""
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        set_search_path(con, search_path_schemas())  # gold by its bare name
        return con.execute(sql).df()
    finally:
        con.close()


def read_gold(home: Path) -> pd.DataFrame:
    """gold_trade_features indexed by trade_id, sorted."""
    return read_table(home, "select * from gold_trade_features").set_index("trade_id").sort_index()


def mismatches(
    actual: pd.DataFrame,
    expected: pd.DataFrame,
    columns: list[str],
    *,
    rtol: float,
    atol: float = 0.0,
) -> list[str]:
    """One line per column whose values differ beyond |a - e| <= atol + rtol * |e|.

    Both frames are indexed by trade_id; text and integer columns must be equal. Each line
    names the worst row, so a failure says which trade and by how much.
    """
    problems = []
    for column in columns:
        got = actual[column]
        want = expected.loc[actual.index, column]
        if got.dtype.kind in "fc" or want.dtype.kind in "fc":
            got_values = got.to_numpy(dtype=float)
            want_values = want.to_numpy(dtype=float)
            error = np.abs(got_values - want_values)
            allowed = atol + rtol * np.abs(want_values)
            bad = ~(error <= allowed)
            if bad.any():
                worst = int(np.argmax(np.where(bad, error / np.maximum(allowed, 1e-300), 0)))
                problems.append(
                    f"{column}: {int(bad.sum())} of {len(bad)} rows off, worst "
                    f"{actual.index[worst]}: gold {got_values[worst]!r} "
                    f"vs expected {want_values[worst]!r}"
                )
        else:
            bad = got.astype(str).to_numpy() != want.astype(str).to_numpy()
            if bad.any():
                worst = int(np.argmax(bad))
                problems.append(
                    f"{column}: {int(bad.sum())} rows differ, e.g. {actual.index[worst]}: "
                    f"gold {got.iloc[worst]!r} vs expected {want.iloc[worst]!r}"
                )
    return problems
