"""The gold feature schema, defined once: what the models read and what dbt's contract promises.

`GOLD_FEATURES_CONTRACT` is the column list of `gold_trade_features` with the data types its
dbt contract declares (`dbt_project/models/gold/_gold__features.yml`; a test holds the two
together). The names below are the parts of it the libraries need: the id columns, the model's
numeric and categorical inputs with the categories' fixed levels, the label column and the
label sources in order of trust.

Column types are compared through one small vocabulary of logical types (`logical_type`), onto
which DuckDB's, Spark's and Databricks' catalog type names all map.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

# --------------------------------------------------------------------------- tables

FEATURES_TABLE: Final = "gold_trade_features"
LABELS_TABLE: Final = "gold_anomaly_labels"
SCORES_TABLE: Final = "gold_anomaly_scores"

# --------------------------------------------------------------------------- features

#: Columns that identify a trade in every gold table, in this order.
ID_COLUMNS: Final[tuple[str, ...]] = ("trade_id", "symbol", "trade_ts", "trade_ts_ms")

#: Numeric model inputs, in the order the models see them.
NUMERIC_FEATURES: Final[tuple[str, ...]] = (
    "price_change_pct",
    "log_return",
    "volume_zscore",
    "price_zscore",
    "price_volatility_1h",
    "trade_intensity_1m",
    "vwap_deviation_pct",
    "rsi_14",
    "macd_line",
    "macd_signal",
    "macd_hist",
    "bollinger_pct_b",
    "roll_spread_pct",
    # trade size against the recent typical size (volume bursts), the short-term trade rate
    # against the recent rate (intensity bursts), identical prints (wash clusters)
    "volume_to_median_100",
    "trade_rate_ratio_10s",
    "same_print_count_2s",
    "hour_of_day",
    "minute_of_hour",
    "day_of_week",
)

#: Trading sessions in New York time (silver's `session_type`).
SESSION_TYPES: Final[tuple[str, ...]] = ("pre_market", "regular", "after_hours", "closed")
#: Trade size classes (silver's `trade_type`).
TRADE_TYPES: Final[tuple[str, ...]] = ("block", "standard", "odd_lot")

#: Categorical model inputs and their fixed levels, so that the encoding is the same at
#: training and at scoring time whatever subset of levels a given window happens to contain.
CATEGORY_LEVELS: Final = MappingProxyType({
    "session_type": SESSION_TYPES,
    "trade_type": TRADE_TYPES,
})
CATEGORICAL_FEATURES: Final[tuple[str, ...]] = tuple(CATEGORY_LEVELS)
FEATURE_COLUMNS: Final[tuple[str, ...]] = NUMERIC_FEATURES + CATEGORICAL_FEATURES

# --------------------------------------------------------------------------- labels

#: Whether a trade is anomalous (gold_anomaly_labels).
LABEL_COLUMN: Final = "is_anomaly"
#: Where a label comes from, most trusted first: an analyst's decision, the simulator's ground
#: truth, the rule heuristic (a weak fallback: it is a function of the features themselves).
LABEL_SOURCES: Final[tuple[str, ...]] = ("analyst", "ground_truth", "rule")
WEAK_LABEL_SOURCE: Final = "rule"
#: Label sources worth measuring a model against.
TRUSTED_LABEL_SOURCES: Final[tuple[str, ...]] = tuple(
    source for source in LABEL_SOURCES if source != WEAK_LABEL_SOURCE
)
#: The anomaly kinds the simulator injects (and a label's `anomaly_kind` names).
ANOMALY_KINDS: Final[tuple[str, ...]] = (
    "price_spike", "volume_burst", "pump_and_dump", "wash_cluster", "intensity_burst",
)

# --------------------------------------------------------------------------- column types

STRING: Final = "string"
INTEGER: Final = "integer"
FLOAT: Final = "float"
TIMESTAMP: Final = "timestamp"
DATE: Final = "date"
BOOLEAN: Final = "boolean"
LIST: Final = "list"
#: Either numeric type, for checks that accept both.
NUMBER: Final[tuple[str, ...]] = (INTEGER, FLOAT)

_INTEGER_TYPES = frozenset({
    "TINYINT", "SMALLINT", "INTEGER", "INT", "BIGINT", "HUGEINT", "LONG", "SHORT", "BYTE",
    "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT", "INT2", "INT4", "INT8",
})
_FLOAT_TYPES = frozenset({"DOUBLE", "FLOAT", "REAL", "FLOAT4", "FLOAT8", "DOUBLE PRECISION"})
_STRING_TYPES = frozenset({"VARCHAR", "STRING", "TEXT", "CHAR", "BPCHAR"})


def logical_type(declared: str) -> str:
    """Map a DuckDB, Spark or Databricks column type onto a logical type (others lower-cased).

    `logical_type("BIGINT") == logical_type("int") == "integer"`; a type outside the vocabulary
    (`DECIMAL(38,12)`) is kept, lower-cased, so that a precision change is still seen.
    """
    text = declared.strip().upper()
    if text.endswith("[]") or text.startswith(("ARRAY", "LIST")):
        return LIST
    if text.startswith("TIMESTAMP") or text == "DATETIME":
        return TIMESTAMP
    if text == "DATE":
        return DATE
    if text in {"BOOLEAN", "BOOL"}:
        return BOOLEAN
    if text in _INTEGER_TYPES:
        return INTEGER
    if text in _FLOAT_TYPES:
        return FLOAT
    if text in _STRING_TYPES or text.startswith(("VARCHAR(", "CHAR(", "STRING(")):
        return STRING
    return text.lower()


# --------------------------------------------------------------------------- the contract

#: gold_trade_features: every column, in contract order, with the data type dbt declares.
GOLD_FEATURES_CONTRACT: Final = MappingProxyType({
    "trade_id": "string",
    "symbol": "string",
    "trade_ts": "timestamp",
    "trade_ts_ms": "bigint",
    "price": "double",
    "volume": "double",
    "price_change_pct": "double",
    "log_return": "double",
    "volume_zscore": "double",
    "price_zscore": "double",
    "price_volatility_1h": "double",
    "trade_intensity_1m": "integer",
    "vwap_deviation_pct": "double",
    "rsi_14": "double",
    "macd_line": "double",
    "macd_signal": "double",
    "macd_hist": "double",
    "bollinger_pct_b": "double",
    "roll_spread_pct": "double",
    "hour_of_day": "integer",
    "minute_of_hour": "integer",
    "day_of_week": "integer",
    "session_type": "string",
    "trade_type": "string",
    "volume_to_median_100": "double",
    "trade_rate_ratio_10s": "double",
    "same_print_count_2s": "integer",
    "trade_date_ny": "date",
    "symbol_trade_seq": "bigint",
    "session_vwap": "double",
    "session_cum_notional": "decimal(38,12)",
    "session_cum_volume": "decimal(38,12)",
})

#: gold_trade_features' logical column types (see `logical_type`), in contract order.
GOLD_FEATURES_TYPES: Final = MappingProxyType({
    name: logical_type(declared) for name, declared in GOLD_FEATURES_CONTRACT.items()
})
