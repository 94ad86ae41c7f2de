"""The expectation suites of every warehouse layer, defined in code and versioned with it.

Each layer (bronze, silver, gold) is checked through three kinds of batch, each its own Great
Expectations suite:

- `<layer>.<table>.schema` — a one-row frame of the table's declared column types (read from the
  catalog, so a DOUBLE is a DOUBLE whatever pandas makes of it);
- `<layer>.<table>.rows` — the table's rows (only the columns checked), for keys, null checks,
  value ranges and allowed values;
- `<layer>.aggregates` — a one-row frame of counts, shares and freshness computed in SQL by the
  warehouse (far cheaper there than in pandas, and the only way that scales on Databricks), for
  row-count reconciliation, distribution sanity, per-symbol completeness and freshness.

Every expectation carries a severity, `critical` (the flows stop before training, promotion and
scoring) or `warning` (reported and alerted, not blocking), in GX's own `severity` field and in
its `meta`, and a note saying why it matters, which Data Docs shows beside it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

import great_expectations as gx
import great_expectations.expectations as gxe
from great_expectations.expectations.expectation import Expectation
from great_expectations.expectations.metadata_types import FailureSeverity

from core.schema import (
    ANOMALY_KINDS,
    BOOLEAN,
    CATEGORY_LEVELS,
    DATE,
    FEATURES_TABLE,
    FLOAT,
    GOLD_FEATURES_TYPES,
    ID_COLUMNS,
    INTEGER,
    LABEL_SOURCES,
    LIST,
    NUMBER,
    NUMERIC_FEATURES,
    SESSION_TYPES,
    STRING,
    TIMESTAMP,
    TRADE_TYPES,
)
from expectations.results import Severity

RULE_KINDS = ("rule_volume_price_move", "rule_rsi_extreme", "rule_outside_bollinger")
RISK_LEVELS = ("critical", "high", "medium", "low")
SOURCES = ("finnhub",)
# Every numeric model input is defined on every row (first trades get 0, 50, 0.5).
NEVER_NULL_FEATURES = NUMERIC_FEATURES

BatchKind = Literal["schema", "rows", "aggregates"]
LAYERS = ("bronze", "silver", "gold")


@dataclass(frozen=True)
class QualityPolicy:
    """The thresholds the suites are built from; plain values, chosen by the caller.

    `max_trade_age` bounds how far the newest trade lags the reference time (see
    `expectations.aggregates`); the shares are fractions of rows in [0, 1].
    """

    symbols: tuple[str, ...]
    max_trade_age: timedelta = timedelta(hours=1)
    volume_zscore_limit: float = 3.0
    max_volume_zscore_outlier_share: float = 0.05
    max_quarantine_share: float = 0.01
    max_anomaly_label_share: float = 0.25

    def __post_init__(self) -> None:
        if not self.symbols:
            raise ValueError("QualityPolicy.symbols: give at least one symbol to expect")
        if self.max_trade_age <= timedelta(0):
            raise ValueError("QualityPolicy.max_trade_age must be positive")
        for name in ("max_volume_zscore_outlier_share", "max_quarantine_share",
                     "max_anomaly_label_share"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"QualityPolicy.{name} must be a share between 0 and 1")


@dataclass(frozen=True)
class TableContract:
    """A warehouse table's columns and the logical types each may have."""

    table: str
    layer: str
    columns: Mapping[str, tuple[str, ...]]
    # Optional tables (scores before the first scoring run) are checked only when present.
    required: bool = True


@dataclass(frozen=True)
class SuiteDefinition:
    """One GX suite: its batch kind, the table it reads (none for aggregates), its expectations."""

    name: str
    layer: str
    kind: BatchKind
    table: str | None
    expectations: tuple[Expectation, ...]
    required: bool = True
    columns: tuple[str, ...] = field(default=())

    def to_gx(self) -> gx.ExpectationSuite:
        """A fresh GX ExpectationSuite holding copies of this definition's expectations."""
        suite = gx.ExpectationSuite(name=self.name, meta={"layer": self.layer, "kind": self.kind})
        for expectation in self.expectations:
            suite.add_expectation(expectation.copy(deep=True))
        return suite


def rule_text(expectation_class: type[Expectation], kwargs: Mapping[str, object]) -> str:
    """The rule an expectation states, in one short line (e.g. `0 ≤ rsi_14 ≤ 100`)."""
    kind = expectation_class.__name__
    column = kwargs.get("column")
    if kind == "ExpectColumnValuesToNotBeNull":
        return f"{column} is never null"
    if kind == "ExpectColumnValuesToBeUnique":
        return f"{column} is unique"
    if kind == "ExpectColumnValuesToBeInSet":
        return f"{column} in {{{', '.join(map(str, kwargs['value_set']))}}}"  # type: ignore[call-overload]
    if kind == "ExpectColumnPairValuesToBeEqual":
        return f"{kwargs['column_A']} = {kwargs['column_B']}"
    if kind == "ExpectTableColumnsToMatchSet":
        return "has every contract column"
    if kind == "ExpectColumnValuesToBeBetween":
        low, high = kwargs.get("min_value"), kwargs.get("max_value")
        above = ">" if kwargs.get("strict_min") else "≥"
        below = "<" if kwargs.get("strict_max") else "≤"
        if low is not None and high is not None:
            return f"{low:g} {'<' if kwargs.get('strict_min') else '≤'} {column} {below} {high:g}"
        if low is not None:
            return f"{column} {above} {low:g}"
        return f"{column} {below} {high:g}"
    return kind


def expect(
    expectation_class: type[Expectation], severity: Severity, why: str, **kwargs: Any
) -> Expectation:
    """Build one expectation with its severity (GX field and meta), its rule and its reason.

    The description (`[severity] rule — why`) is what Data Docs show for the expectation.
    """
    return expectation_class(
        severity=FailureSeverity(severity),
        meta={"severity": severity},
        notes=why,
        description=f"[{severity}] {rule_text(expectation_class, kwargs)} — {why}",
        **kwargs,
    )


def _t(*types: str) -> tuple[str, ...]:
    return types


BRONZE_TRADES = TableContract(
    table="bronze_trades",
    layer="bronze",
    columns={
        # Landed as text; silver types it.
        "trade_id": _t(STRING), "symbol": _t(STRING), "price": _t(STRING, FLOAT),
        "volume": _t(STRING, FLOAT), "trade_ts_ms": _t(STRING, INTEGER),
        "conditions": _t(STRING, LIST), "exchange": _t(STRING),
        "received_at": _t(STRING, TIMESTAMP),
        "source": _t(STRING), "_source_file": _t(STRING), "_ingested_at": _t(TIMESTAMP),
    },
)
SILVER_TRADES = TableContract(
    table="silver_trades",
    layer="silver",
    columns={
        "trade_id": _t(STRING), "symbol": _t(STRING), "price": _t(FLOAT), "volume": _t(FLOAT),
        "trade_ts": _t(TIMESTAMP), "trade_ts_ms": _t(INTEGER), "conditions": _t(LIST, STRING),
        "exchange": _t(STRING), "received_at": _t(TIMESTAMP), "source": _t(STRING),
        "trade_date_ny": _t(DATE), "ts_ny": _t(TIMESTAMP), "session_type": _t(STRING),
        "trade_type": _t(STRING), "_source_file": _t(STRING), "_ingested_at": _t(TIMESTAMP),
    },
)
SILVER_QUARANTINE = TableContract(
    table="silver_trades_quarantine",
    layer="silver",
    columns={
        "trade_id": _t(STRING), "symbol": _t(STRING), "quarantine_rule": _t(STRING),
        "_source_file": _t(STRING), "_ingested_at": _t(TIMESTAMP),
    },
)
GOLD_FEATURES = TableContract(
    table=FEATURES_TABLE,
    layer="gold",
    # The model inputs and the trade they describe, typed as the gold contract declares them;
    # an integer model input may also be read as a float (the models see float64 anyway).
    columns={
        column: NUMBER if column in NUMERIC_FEATURES and kind == INTEGER else _t(kind)
        for column, kind in GOLD_FEATURES_TYPES.items()
        if column in (*ID_COLUMNS, "price", "volume", *NUMERIC_FEATURES, *CATEGORY_LEVELS)
    },
)
GOLD_LABELS = TableContract(
    table="gold_anomaly_labels",
    layer="gold",
    columns={
        "trade_id": _t(STRING), "symbol": _t(STRING), "trade_ts": _t(TIMESTAMP),
        "is_anomaly": _t(BOOLEAN), "label_source": _t(STRING), "anomaly_kind": _t(STRING),
    },
)
GOLD_SCORES = TableContract(
    table="gold_anomaly_scores",
    layer="gold",
    columns={
        "trade_id": _t(STRING), "symbol": _t(STRING), "trade_ts": _t(TIMESTAMP),
        "score": _t(FLOAT), "flag": _t(BOOLEAN), "risk_level": _t(STRING),
        "model_name": _t(STRING), "model_version": _t(STRING, INTEGER),
        "scored_at": _t(TIMESTAMP),
    },
    required=False,
)
CONTRACTS = (BRONZE_TRADES, SILVER_TRADES, SILVER_QUARANTINE, GOLD_FEATURES, GOLD_LABELS,
             GOLD_SCORES)


def _schema_suite(contract: TableContract) -> SuiteDefinition:
    why_columns = f"{contract.table} must keep every contract column; readers select them by name"
    expectations: list[Expectation] = [
        expect(gxe.ExpectTableColumnsToMatchSet, "critical", why_columns,
               column_set=sorted(contract.columns), exact_match=False),
    ]
    for column, types in contract.columns.items():
        expectations.append(
            expect(gxe.ExpectColumnValuesToBeInSet, "critical",
                   f"{contract.table}.{column} is declared as {' or '.join(types)}",
                   column=column, value_set=list(types))
        )
    return SuiteDefinition(
        name=f"{contract.layer}.{contract.table}.schema", layer=contract.layer, kind="schema",
        table=contract.table, expectations=tuple(expectations), required=contract.required,
    )


def _not_null(column: str, severity: Severity, why: str) -> Expectation:
    return expect(gxe.ExpectColumnValuesToNotBeNull, severity, why, column=column)


def _unique(column: str, why: str) -> Expectation:
    return expect(gxe.ExpectColumnValuesToBeUnique, "critical", why, column=column)


def _in_set(column: str, values: Sequence[str], severity: Severity, why: str) -> Expectation:
    return expect(gxe.ExpectColumnValuesToBeInSet, severity, why, column=column,
                  value_set=list(values))


def _between(column: str, severity: Severity, why: str, **bounds: object) -> Expectation:
    return expect(gxe.ExpectColumnValuesToBeBetween, severity, why, column=column, **bounds)


def _rows_suite(contract: TableContract, expectations: Sequence[Expectation]) -> SuiteDefinition:
    columns: list[str] = []
    for expectation in expectations:
        for key in ("column", "column_A", "column_B"):
            name = getattr(expectation, key, None)
            if isinstance(name, str) and name not in columns:
                columns.append(name)
        for name in getattr(expectation, "column_list", None) or ():
            if name not in columns:
                columns.append(name)
    return SuiteDefinition(
        name=f"{contract.layer}.{contract.table}.rows", layer=contract.layer, kind="rows",
        table=contract.table, expectations=tuple(expectations), required=contract.required,
        columns=tuple(columns),
    )


def _bronze_rows() -> list[Expectation]:
    return [
        _not_null("_source_file", "critical",
                  "every bronze row names the landed file it came from"),
        _not_null("_ingested_at", "critical", "every bronze row records when dbt ingested it"),
        _not_null("trade_id", "warning",
                  "the collector lands an id on every trade; silver quarantines rows without one"),
        _in_set("source", SOURCES, "warning",
                "trades come from the Finnhub feed (or its simulator)"),
    ]


def _silver_rows() -> list[Expectation]:
    return [
        _not_null("trade_id", "critical", "trade_id is silver's key"),
        _unique("trade_id", "silver is de-duplicated on trade_id: one row per trade"),
        _not_null("symbol", "critical", "every trade belongs to a symbol"),
        _not_null("price", "critical", "rows without a price belong in quarantine"),
        _between("price", "critical", "a trade price is positive", min_value=0, strict_min=True),
        _not_null("volume", "critical", "rows without a volume belong in quarantine"),
        _between("volume", "critical", "a trade size is never negative", min_value=0),
        _not_null("trade_ts", "critical", "features are ordered by trade_ts"),
        _not_null("trade_ts_ms", "critical", "trade_ts_ms is the exchange timestamp"),
        _not_null("received_at", "warning", "the collector stamps every trade it receives"),
        _not_null("trade_date_ny", "critical", "the New York trading day partitions VWAP"),
        _not_null("session_type", "critical", "every trade falls in one session"),
        _in_set("session_type", SESSION_TYPES, "critical", "sessions are the four US equity ones"),
        _not_null("trade_type", "critical", "every trade has a size class"),
        _in_set("trade_type", TRADE_TYPES, "critical", "size classes are block, standard, odd_lot"),
        _in_set("source", SOURCES, "warning",
                "trades come from the Finnhub feed (or its simulator)"),
    ]


def _quarantine_rows() -> list[Expectation]:
    return [
        _not_null("quarantine_rule", "critical",
                  "a quarantined row names the rule it broke, or nobody can fix it"),
        _not_null("_source_file", "critical",
                  "a quarantined row names the landed file it came from"),
    ]


def _gold_feature_rows() -> list[Expectation]:
    expectations = [
        _not_null("trade_id", "critical", "trade_id is gold's key"),
        _unique("trade_id", "gold_trade_features has one row per trade"),
        _not_null("symbol", "critical", "features are computed per symbol"),
        _not_null("trade_ts", "critical", "the time split of training orders by trade_ts"),
        _between("price", "critical", "a trade price is positive", min_value=0, strict_min=True),
        _between("volume", "critical", "a trade size is never negative", min_value=0),
    ]
    expectations += [
        _not_null(column, "critical",
                  f"{column} is a model input with a defined value on every row")
        for column in NEVER_NULL_FEATURES
    ]
    expectations += [
        _between("rsi_14", "critical", "Wilder's RSI lies in [0, 100]", min_value=0, max_value=100),
        _between("trade_intensity_1m", "critical",
                 "the trailing-minute count includes the trade itself", min_value=1),
        _between("price_volatility_1h", "critical", "a standard deviation is never negative",
                 min_value=0),
        _between("roll_spread_pct", "critical", "Roll's spread estimate is never negative",
                 min_value=0),
        _between("hour_of_day", "critical", "New York hour of day", min_value=0, max_value=23),
        _between("minute_of_hour", "critical", "New York minute of hour", min_value=0,
                 max_value=59),
        _between("day_of_week", "critical", "ISO day of week in New York (1 = Monday)",
                 min_value=1, max_value=7),
        _in_set("session_type", SESSION_TYPES, "critical", "sessions are the four US equity ones"),
        _in_set("trade_type", TRADE_TYPES, "critical", "size classes are block, standard, odd_lot"),
    ]
    return expectations


def _gold_label_rows() -> list[Expectation]:
    return [
        _not_null("trade_id", "critical", "labels join to features on trade_id"),
        _unique("trade_id", "one label per trade: the most trusted source's"),
        _not_null("is_anomaly", "critical", "every labelled trade says whether it is anomalous"),
        _not_null("label_source", "critical", "every label names its source"),
        _in_set("label_source", LABEL_SOURCES, "critical",
                "label sources are analyst, ground_truth and rule"),
        _in_set("anomaly_kind", (*ANOMALY_KINDS, *RULE_KINDS), "warning",
                "anomaly kinds are the simulator's five or the rule that fired"),
    ]


def _gold_score_rows() -> list[Expectation]:
    return [
        _not_null("trade_id", "critical", "scores join to trades on trade_id"),
        _not_null("score", "critical", "every scored trade has a score"),
        _between("score", "critical", "a score is a probability in [0, 1]", min_value=0,
                 max_value=1),
        _in_set("risk_level", RISK_LEVELS, "critical", "risk levels are critical/high/medium/low"),
    ]


def _aggregates(layer: str, policy: QualityPolicy) -> SuiteDefinition:
    expectations: list[Expectation] = []
    if layer == "bronze":
        expectations.append(expect(
            gxe.ExpectColumnPairValuesToBeEqual, "critical",
            "bronze holds every landed trade line, once: landing lines = bronze rows",
            column_A="bronze_rows", column_B="landing_lines"))
    elif layer == "silver":
        expectations += [
            expect(gxe.ExpectColumnValuesToBeBetween, "critical",
                   "there are trades to validate, train and score on",
                   column="silver_rows", min_value=1),
            expect(gxe.ExpectColumnPairValuesToBeEqual, "critical",
                   "nothing is lost or invented: bronze = silver + quarantine + duplicates",
                   column_A="bronze_rows", column_B="silver_plus_quarantine_plus_duplicates"),
            expect(gxe.ExpectColumnValuesToBeBetween, "warning",
                   f"at most {policy.max_quarantine_share:.1%} of bronze rows break a rule",
                   column="quarantine_share", min_value=0,
                   max_value=policy.max_quarantine_share),
            expect(gxe.ExpectColumnValuesToBeBetween, "warning",
                   "every landed line parses (lines that do not are in silver_trades_quarantine "
                   "with their file, line_number and parse_error; the build went on)",
                   column="unparseable_lines", min_value=0, max_value=0),
            expect(gxe.ExpectColumnValuesToNotBeNull, "warning",
                   "silver has a newest trade whose age can be measured",
                   column="newest_trade_age_seconds"),
            expect(gxe.ExpectColumnValuesToBeBetween, "warning",
                   f"the newest trade is at most {policy.max_trade_age} older than the "
                   "reference time (stale data: the collector or dbt stopped)",
                   column="newest_trade_age_seconds",
                   max_value=policy.max_trade_age.total_seconds()),
        ]
        expectations += [
            expect(gxe.ExpectColumnValuesToBeBetween, "warning",
                   f"configured symbol {symbol} has trades in silver",
                   column=symbol_column(symbol), min_value=1)
            for symbol in policy.symbols
        ]
    elif layer == "gold":
        expectations += [
            expect(gxe.ExpectColumnPairValuesToBeEqual, "critical",
                   "gold_trade_features has one row per silver trade",
                   column_A="gold_rows", column_B="silver_rows"),
            expect(gxe.ExpectColumnPairValuesToBeEqual, "critical",
                   "gold_anomaly_labels has one row per gold trade",
                   column_A="label_rows", column_B="gold_rows"),
            expect(gxe.ExpectColumnPairValuesToBeEqual, "warning",
                   "gold is rebuilt up to the newest silver trade",
                   column_A="newest_gold_trade_ts", column_B="newest_silver_trade_ts"),
            expect(gxe.ExpectColumnValuesToBeBetween, "warning",
                   f"at most {policy.max_volume_zscore_outlier_share:.1%} of trades have "
                   f"|volume_zscore| > {policy.volume_zscore_limit:g}",
                   column="volume_zscore_outlier_share", min_value=0,
                   max_value=policy.max_volume_zscore_outlier_share),
            expect(gxe.ExpectColumnValuesToBeBetween, "warning",
                   f"at most {policy.max_anomaly_label_share:.0%} of trades are labelled anomalous",
                   column="anomaly_label_share", min_value=0,
                   max_value=policy.max_anomaly_label_share),
        ]
    else:
        raise ValueError(f"unknown layer {layer!r} (one of {', '.join(LAYERS)})")
    return SuiteDefinition(
        name=f"{layer}.aggregates", layer=layer, kind="aggregates", table=None,
        expectations=tuple(expectations),
    )


def symbol_column(symbol: str) -> str:
    """The aggregates column counting one configured symbol's trades."""
    return f"trades_{symbol}"


def build_suites(policy: QualityPolicy) -> tuple[SuiteDefinition, ...]:
    """Every suite of every layer, in the order they run (bronze, silver, gold)."""
    rows = {
        BRONZE_TRADES.table: _bronze_rows(),
        SILVER_TRADES.table: _silver_rows(),
        SILVER_QUARANTINE.table: _quarantine_rows(),
        GOLD_FEATURES.table: _gold_feature_rows(),
        GOLD_LABELS.table: _gold_label_rows(),
        GOLD_SCORES.table: _gold_score_rows(),
    }
    suites: list[SuiteDefinition] = []
    for layer in LAYERS:
        for contract in CONTRACTS:
            if contract.layer == layer:
                suites.append(_schema_suite(contract))
                suites.append(_rows_suite(contract, rows[contract.table]))
        suites.append(_aggregates(layer, policy))
    return tuple(suites)
