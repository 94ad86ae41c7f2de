"""The Alpha Vantage REST API of the simulator, through requests on 127.0.0.1."""

from __future__ import annotations

import re
import time
from collections import defaultdict
from datetime import datetime

import numpy as np
import pytest
import requests

from ingest.simulator import FaultConfig
from ingest.simulator.config import NEW_YORK, SimulatorConfig
from ingest.simulator.market import Market

GENEROUS = {"av_calls_per_minute": 1_000, "av_calls_per_day": 10_000}
INTRADAY = {"function": "TIME_SERIES_INTRADAY", "symbol": "AAPL", "interval": "5min",
            "apikey": "demo"}
VALUE_KEYS = ["1. open", "2. high", "3. low", "4. close", "5. volume"]


def query(market, **params) -> requests.Response:
    return requests.get(f"{market.av_url}/query", params=params, timeout=60)


def test_intraday_compact_has_the_alpha_vantage_shape(simulator):
    market = simulator(**GENEROUS)  # "now" is the start: Friday 2024-03-08 09:00 New York

    response = query(market, **INTRADAY)

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert list(body) == ["Meta Data", "Time Series (5min)"]
    assert body["Meta Data"] == {
        "1. Information": "Intraday (5min) open, high, low, close prices and volume",
        "2. Symbol": "AAPL",
        "3. Last Refreshed": "2024-03-08 08:55:00",
        "4. Interval": "5min",
        "5. Output Size": "Compact",
        "6. Time Zone": "US/Eastern",
    }
    series = body["Time Series (5min)"]
    keys = list(series)
    assert len(keys) == 100 and keys == sorted(keys, reverse=True)
    # Completed bars only, newest first, extended hours included, the night skipped.
    assert keys[0] == "2024-03-08 08:55:00" and keys[59] == "2024-03-08 04:00:00"
    assert keys[60] == "2024-03-07 19:55:00"
    for key, bar in series.items():
        assert re.fullmatch(r"2024-03-0[78] \d\d:[0-5][05]:00", key)
        assert list(bar) == VALUE_KEYS
        assert all(isinstance(v, str) for v in bar.values())
        assert all(re.fullmatch(r"\d+\.\d{4}", bar[k]) for k in VALUE_KEYS[:4])
        o, h, lo, c = (float(bar[k]) for k in VALUE_KEYS[:4])
        assert lo <= min(o, c) <= max(o, c) <= h
        assert int(bar["5. volume"]) > 0


def test_intraday_bars_aggregate_the_feeds_trades_across_the_dst_change(simulator, record_feed):
    start = datetime(2024, 3, 8, 19, 50, tzinfo=NEW_YORK)  # Friday, EST
    end = datetime(2024, 3, 11, 4, 10, tzinfo=NEW_YORK)  # Monday, EDT: Alpha Vantage's "now"
    market = simulator(start=start, duration_seconds=end.timestamp() - start.timestamp(),
                       **GENEROUS)
    recording = record_feed(market.ws_url, ["MSFT"])
    by_minute: dict[str, list[dict]] = defaultdict(list)
    for data in recording.trade_messages():
        for trade in data:
            wall = datetime.fromtimestamp(trade["t"] / 1000, NEW_YORK)
            by_minute[wall.strftime("%Y-%m-%d %H:%M:00")].append(trade)

    body = query(market, **{**INTRADAY, "symbol": "MSFT", "interval": "1min"}).json()

    series = body["Time Series (1min)"]
    assert body["Meta Data"]["3. Last Refreshed"] == "2024-03-11 04:09:00"
    assert not any(key.startswith(("2024-03-09", "2024-03-10")) for key in series)
    assert set(by_minute) <= set(series)
    assert len(by_minute) > 15
    for key, trades in by_minute.items():
        bar = series[key]
        prices = [t["p"] for t in trades]
        assert float(bar["1. open"]) == prices[0] and float(bar["4. close"]) == prices[-1]
        assert float(bar["2. high"]) == max(prices) and float(bar["3. low"]) == min(prices)
        assert int(bar["5. volume"]) == sum(t["v"] for t in trades)


def test_intraday_options_full_month_and_regular_hours(simulator):
    market = simulator(av_as_of=datetime(2024, 3, 12, 16, 0, tzinfo=NEW_YORK), **GENEROUS)

    regular = query(market, **INTRADAY, extended_hours="false").json()["Time Series (5min)"]
    full = query(market, **{**INTRADAY, "interval": "60min", "outputsize": "full"}).json()
    month = query(market, **{**INTRADAY, "interval": "60min", "month": "2024-02",
                             "outputsize": "full"}).json()

    assert all("09:30:00" <= key[11:] < "16:00:00" for key in regular)
    assert len(regular) == 100
    days = {key[:10] for key in full["Time Series (60min)"]}
    assert full["Meta Data"]["5. Output Size"] == "Full size"
    assert len(days) in (21, 22) and min(days) > "2024-02-11"  # the trailing 30 days
    feb = month["Time Series (60min)"]
    assert {key[:7] for key in feb} == {"2024-02"} and len({k[:10] for k in feb}) == 21
    assert len(feb) == 21 * 16  # 04:00–20:00 every weekday of February 2024


def test_daily_series_has_the_alpha_vantage_shape(simulator):
    market = simulator(av_as_of=datetime(2024, 3, 11, 17, 0, tzinfo=NEW_YORK), **GENEROUS)

    body = query(market, function="TIME_SERIES_DAILY", symbol="KO", apikey="demo").json()

    assert body["Meta Data"] == {
        "1. Information": "Daily Prices (open, high, low, close) and Volumes",
        "2. Symbol": "KO",
        "3. Last Refreshed": "2024-03-11",
        "4. Output Size": "Compact",
        "5. Time Zone": "US/Eastern",
    }
    series = body["Time Series (Daily)"]
    keys = list(series)
    assert len(keys) == 100 and keys == sorted(keys, reverse=True)
    assert "2024-03-09" not in series and "2024-03-10" not in series
    assert all(datetime.strptime(k, "%Y-%m-%d").weekday() < 5 for k in keys)
    # The daily bar is the regular session of the same market the feed serves.
    trades = Market(SimulatorConfig()).symbol_day("KO", datetime(2024, 3, 8).date())
    wall = [datetime.fromtimestamp(t / 1000, NEW_YORK) for t in trades.ts_ms]
    regular = np.array([(9, 30) <= (w.hour, w.minute) < (16, 0) for w in wall])
    friday = series["2024-03-08"]
    assert int(friday["5. volume"]) == int(trades.volume[regular].sum())
    assert float(friday["1. open"]) == trades.price[regular][0]
    assert float(friday["2. high"]) == trades.price[regular].max()


def test_per_minute_budget_answers_with_a_note(simulator):
    market = simulator(av_calls_per_minute=3, av_calls_per_day=100)

    answers = [query(market, **INTRADAY) for _ in range(5)]

    assert [r.status_code for r in answers] == [200] * 5
    assert ["Meta Data" in r.json() for r in answers] == [True, True, True, False, False]
    assert set(answers[3].json()) == {"Note"}
    assert "3 calls per minute" in answers[3].json()["Note"]
    assert market.stats().av_rate_limited == 2 and market.stats().av_served == 3


def test_per_day_budget_answers_with_information(simulator):
    market = simulator(av_calls_per_minute=100, av_calls_per_day=2)

    answers = [query(market, **INTRADAY).json() for _ in range(4)]

    assert ["Meta Data" in a for a in answers] == [True, True, False, False]
    assert set(answers[2]) == {"Information"} and "2 requests per day" in answers[2]["Information"]


def test_a_bad_or_missing_key_gets_an_error_message_and_costs_no_budget(simulator):
    market = simulator(av_api_key="right-key", av_calls_per_day=1)

    wrong = query(market, **{**INTRADAY, "apikey": "wrong-key"}).json()
    missing = query(market, **{k: v for k, v in INTRADAY.items() if k != "apikey"}).json()
    right = query(market, **{**INTRADAY, "apikey": "right-key"}).json()

    assert set(wrong) == set(missing) == {"Error Message"}
    assert "apikey is invalid or missing" in wrong["Error Message"]
    assert "right-key" not in wrong["Error Message"] and "wrong-key" not in wrong["Error Message"]
    assert "Meta Data" in right
    assert "right-key" not in repr(SimulatorConfig(av_api_key="right-key"))


@pytest.mark.parametrize("params", [
    {"symbol": "IBM"},  # valid ticker, not in this market
    {"symbol": "../../etc"},
    {"symbol": "aapl"},
    {"interval": "7min"},
    {"outputsize": "huge"},
    {"month": "2024-13"},
    {"function": "TIME_SERIES_WEEKLY"},
])
def test_invalid_calls_get_an_error_message(simulator, params):
    market = simulator(**GENEROUS)

    body = query(market, **{**INTRADAY, **params}).json()

    assert set(body) == {"Error Message"}
    assert market.stats().av_errors == 1


def test_every_nth_request_fails_with_503(simulator):
    market = simulator(faults=FaultConfig(http_5xx_every_n=2), **GENEROUS)

    statuses = [query(market, **INTRADAY).status_code for _ in range(5)]

    assert statuses == [200, 503, 200, 503, 200]
    assert market.stats().av_5xx == 2


def test_slow_responses_take_at_least_the_configured_delay(simulator):
    market = simulator(faults=FaultConfig(slow_response_seconds=0.4), **GENEROUS)

    began = time.monotonic()
    response = query(market, **INTRADAY)

    assert time.monotonic() - began >= 0.4
    assert "Meta Data" in response.json()


def test_other_paths_are_not_found(simulator):
    market = simulator()
    assert requests.get(f"{market.av_url}/v1/bars", timeout=10).status_code == 404
