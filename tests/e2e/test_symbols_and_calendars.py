"""Equity, crypto and forex symbols land through the real collector and get their calendars'
sessions and their asset classes' size classes in silver, across a US half day and holiday.

The simulator serves 3 July 2024 (a half day: the regular session ends 13:00 New York,
after-hours 17:00) and 4 July 2024 (Independence Day: the exchange is closed) for one symbol of
each form Finnhub uses; dbt builds silver; every row's session is checked against the Python
reference of the calendars (core.markets) and the days' own rules.
"""

from __future__ import annotations

import csv
import os
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from core.markets import ASSET_CLASSES_SEED, session_type
from core.warehouse import DuckDBWarehouse
from flows.config import load_settings
from flows.transform import run_transform
from ingest.simulator import SimulatorConfig
from tests.support.market import land_market

pytestmark = pytest.mark.slow

NEW_YORK = ZoneInfo("America/New_York")
SYMBOLS = ("AAPL", "BINANCE:BTCUSDT", "OANDA:EUR_USD", "FXCM:EUR/USD")
EXPECTED_CLASS = {"AAPL": "us_equity", "BINANCE:BTCUSDT": "crypto",
                  "OANDA:EUR_USD": "forex", "FXCM:EUR/USD": "forex"}


@pytest.fixture(scope="module")
def silver(tmp_path_factory):
    home = tmp_path_factory.mktemp("markets_home")
    settings = load_settings(environ={**os.environ, "TRADEWATCH_HOME": str(home)})
    settings = settings.model_copy(update={"symbols": SYMBOLS})
    windows = [
        (datetime(2024, 7, 3, 12, 30, tzinfo=NEW_YORK), 5 * 3600),   # half day, to 17:30
        (datetime(2024, 7, 4, 10, 0, tzinfo=NEW_YORK), 30 * 60),     # holiday
    ]
    landed = 0
    for seed, (start, seconds) in enumerate(windows, start=3):
        landed += land_market(home, SimulatorConfig(
            seed=seed, symbols=SYMBOLS, start=start, duration_seconds=seconds,
            trades_per_second=0.1, anomaly_rate=0.0,
        ), SYMBOLS)
    run_transform(settings)
    frame = DuckDBWarehouse(home / "warehouse.duckdb").query(
        "select symbol, asset_class, market_calendar, trade_ts_ms, ts_ny, trade_date_ny,"
        " session_type, trade_type, price, volume from silver_trades"
    )
    return landed, frame


def test_every_symbol_form_lands_with_its_asset_class(silver):
    landed, frame = silver
    assert len(frame) == landed
    assert set(frame.symbol) == set(SYMBOLS)
    assert dict(zip(frame.symbol, frame.asset_class, strict=True)) == EXPECTED_CLASS


def test_sessions_follow_each_calendar_on_a_half_day_and_a_holiday(silver):
    _, frame = silver
    reference = [
        session_type(calendar, datetime.fromtimestamp(ms / 1000, UTC))
        for calendar, ms in zip(frame.market_calendar, frame.trade_ts_ms, strict=True)
    ]
    assert list(frame.session_type) == reference
    equity = frame[frame.symbol == "AAPL"]
    minute = equity.ts_ny.dt.hour * 60 + equity.ts_ny.dt.minute
    half_day = equity[equity.trade_date_ny.astype(str) == "2024-07-03"]
    half_minute = minute[half_day.index]
    assert set(half_day.session_type[half_minute < 780]) == {"regular"}
    assert set(half_day.session_type[(half_minute >= 780) & (half_minute < 1020)]) == {
        "after_hours"}
    assert set(half_day.session_type[half_minute >= 1020]) == {"closed"}
    holiday = equity[equity.trade_date_ny.astype(str) == "2024-07-04"]
    assert len(holiday) > 0 and set(holiday.session_type) == {"closed"}
    # Crypto and forex trade on through the US holiday and the half day's evening.
    assert set(frame[frame.asset_class != "us_equity"].session_type) == {"regular"}


def test_size_classes_follow_each_asset_class(silver):
    _, frame = silver
    with ASSET_CLASSES_SEED.open() as handle:
        classes = {row["asset_class"]: row for row in csv.DictReader(handle)}

    def size_class(row) -> str:
        rule = classes[row.asset_class]
        measure = row.price * row.volume if rule["size_measure"] == "notional" else row.volume
        if measure >= float(rule["block_from"]):
            return "block"
        return "standard" if measure >= float(rule["standard_from"]) else "odd_lot"

    assert list(frame.trade_type) == [size_class(row) for row in frame.itertuples()]
    # The simulator's sizes are share-like: as forex units they are all below a lot.
    assert set(frame[frame.asset_class == "forex"].trade_type) == {"odd_lot"}
