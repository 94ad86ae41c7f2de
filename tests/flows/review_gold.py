"""A tiny hand-made gold for the review verbs: the three tables they read, a dozen trades.

Twelve AAPL trades ten seconds apart on 2024-03-08 from 15:00 UTC; the champion flagged t03 and
t04 (10 s apart: one cluster under the default 60 s gap) and t11 (70 s later: a cluster of its
own). Written to a DuckDB file (`duckdb_gold`) or created in a Spark session (`spark_gold`),
with the same rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.schema import CATEGORY_LEVELS, FEATURE_COLUMNS

SYMBOL = "AAPL"
START = pd.Timestamp("2024-03-08 15:00:00")
TRADES = [f"t{n:02d}" for n in range(1, 13)]
#: The champion's flags and scores; t03 and t04 are 10 s apart, t11 is 70 s after t04.
FLAGGED = {"t03": 0.97, "t04": 0.91, "t11": 0.85}


def frames() -> dict[str, pd.DataFrame]:
    """gold_trade_features, gold_flagged_trades and gold_minute_bars as data frames."""
    rng = np.random.default_rng(7)
    features = pd.DataFrame({
        "trade_id": TRADES,
        "symbol": SYMBOL,
        "trade_ts": [START + pd.Timedelta(seconds=10 * n) for n in range(len(TRADES))],
        "trade_date_ny": pd.Timestamp("2024-03-08").date(),
        "price": [180.0 + 0.01 * n for n in range(len(TRADES))],
        "volume": [100.0 * (n + 1) for n in range(len(TRADES))],
    })
    for column in FEATURE_COLUMNS:
        if column in CATEGORY_LEVELS:
            features[column] = CATEGORY_LEVELS[column][1]
        else:
            features[column] = rng.normal(0.0, 1.0, len(TRADES))
    features.loc[features["trade_id"] == "t03", "volume_zscore"] = 25.0  # what drove t03
    flagged = features.loc[features["trade_id"].isin(list(FLAGGED))].copy()
    flagged["score"] = flagged["trade_id"].map(FLAGGED)
    flagged["flag"] = True
    flagged["risk_level"] = "high"
    flagged["model_name"] = "lightgbm"
    flagged["model_version"] = "1"
    flagged["is_anomaly"] = False
    flagged["label_source"] = "rule"
    flagged["review_status"] = "unreviewed"
    bars = pd.DataFrame({
        "symbol": SYMBOL,
        "bar_minute": [START, START + pd.Timedelta(minutes=1)],
        "open": [180.0, 180.06], "high": [180.05, 180.11], "low": [180.0, 180.06],
        "close": [180.05, 180.11], "volume": [2100.0, 5700.0], "trade_count": [6, 6],
    })
    return {"gold_trade_features": features.reset_index(drop=True),
            "gold_flagged_trades": flagged.reset_index(drop=True),
            "gold_minute_bars": bars}


def duckdb_gold(path: Path) -> Path:
    """The tables in schema `gold` of a new DuckDB file at `path` (as the analysts' copy)."""
    import duckdb

    path.parent.mkdir(parents=True, exist_ok=True)
    connection = duckdb.connect(str(path))
    try:
        connection.execute("create schema gold")
        for name, frame in frames().items():
            connection.register("frame", frame)
            connection.execute(f"create table gold.{name} as select * from frame")
            connection.unregister("frame")
    finally:
        connection.close()
    return path


def spark_gold(session: Any) -> None:
    """The tables in database `gold` of a Spark session's catalog."""
    session.sql("create database if not exists gold")
    for name, frame in frames().items():
        session.createDataFrame(frame).write.mode("overwrite").saveAsTable(f"gold.{name}")
