"""The suites in code: every layer covered, every expectation with a severity and a reason."""

from __future__ import annotations

from datetime import timedelta

import pytest

from expectations.suites import (
    CONTRACTS,
    LAYERS,
    QualityPolicy,
    build_suites,
    symbol_column,
)

SYMBOLS = ("AAPL", "MSFT", "BRK.B")


@pytest.fixture(scope="module")
def suites():
    return build_suites(QualityPolicy(symbols=SYMBOLS))


def test_each_layer_has_schema_rows_and_aggregates_suites(suites):
    names = {suite.name for suite in suites}
    for contract in CONTRACTS:
        assert f"{contract.layer}.{contract.table}.schema" in names
        assert f"{contract.layer}.{contract.table}.rows" in names
    for layer in LAYERS:
        assert f"{layer}.aggregates" in names
    assert [suite.layer for suite in suites] == sorted(
        (suite.layer for suite in suites), key=LAYERS.index
    )


def test_every_expectation_carries_its_severity_in_gx_and_in_meta_and_a_reason(suites):
    for suite in suites:
        for expectation in suite.expectations:
            assert expectation.meta["severity"] in ("critical", "warning"), suite.name
            assert expectation.severity.value == expectation.meta["severity"]
            assert expectation.notes, f"{suite.name}: say why the expectation exists"
            assert expectation.description.startswith(f"[{expectation.severity.value}] ")


def test_keys_are_critical_and_distribution_and_freshness_are_warnings(suites):
    by_name = {suite.name: suite for suite in suites}

    def severity(suite: str, kind: str, column: str) -> str:
        for expectation in by_name[suite].expectations:
            same_column = getattr(expectation, "column", None) == column
            if expectation.expectation_type == kind and same_column:
                return expectation.severity.value
        raise AssertionError(f"{suite} has no {kind} on {column}")

    rows = "silver.silver_trades.rows"
    assert severity(rows, "expect_column_values_to_not_be_null", "trade_id") == "critical"
    assert severity(rows, "expect_column_values_to_be_unique", "trade_id") == "critical"
    assert severity(rows, "expect_column_values_to_be_between", "price") == "critical"
    aggregates = "silver.aggregates"
    assert severity(aggregates, "expect_column_values_to_be_between",
                    "newest_trade_age_seconds") == "warning"
    assert severity(aggregates, "expect_column_values_to_be_between", "trades_BRK.B") == "warning"
    assert severity("gold.aggregates", "expect_column_values_to_be_between",
                    "volume_zscore_outlier_share") == "warning"
    assert severity("gold.gold_trade_features.rows", "expect_column_values_to_be_between",
                    "rsi_14") == "critical"


def test_every_configured_symbol_gets_its_own_completeness_check(suites):
    aggregates = next(suite for suite in suites if suite.name == "silver.aggregates")
    columns = {getattr(expectation, "column", None) for expectation in aggregates.expectations}
    assert {symbol_column(symbol) for symbol in SYMBOLS} <= columns


def test_rows_suites_read_only_the_columns_they_check(suites):
    rows = next(suite for suite in suites if suite.name == "gold.gold_trade_features.rows")
    assert "rsi_14" in rows.columns and "volume_zscore" in rows.columns
    assert "macd_line" in rows.columns  # checked for nulls
    schema = next(suite for suite in suites if suite.name == "gold.gold_trade_features.schema")
    assert schema.columns == ()  # the schema frame comes from the catalog, not the rows


def test_descriptions_state_the_rule_data_docs_will_show(suites):
    by_name = {suite.name: suite for suite in suites}
    descriptions = {e.description.split(" — ")[0] for e in by_name["gold.gold_trade_features.rows"]
                    .expectations}
    assert "[critical] 0 ≤ rsi_14 ≤ 100" in descriptions
    assert "[critical] price > 0" in descriptions
    assert "[critical] trade_id is unique" in descriptions
    assert "[critical] session_type in {pre_market, regular, after_hours, closed}" in descriptions


def test_thresholds_follow_the_policy():
    policy = QualityPolicy(symbols=("AAPL",), max_trade_age=timedelta(minutes=5),
                           max_volume_zscore_outlier_share=0.02)
    suites = {suite.name: suite for suite in build_suites(policy)}
    bounds = {
        expectation.column: expectation.max_value
        for suite in ("silver.aggregates", "gold.aggregates")
        for expectation in suites[suite].expectations
        if expectation.expectation_type == "expect_column_values_to_be_between"
    }
    assert bounds["newest_trade_age_seconds"] == 300
    assert bounds["volume_zscore_outlier_share"] == 0.02


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"symbols": ()}, "at least one symbol"),
        ({"symbols": ("AAPL",), "max_trade_age": timedelta(0)}, "must be positive"),
        ({"symbols": ("AAPL",), "max_quarantine_share": 1.5}, "share between 0 and 1"),
    ],
)
def test_a_bad_policy_is_refused_with_the_field_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        QualityPolicy(**kwargs)
