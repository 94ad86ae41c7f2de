"""Alpha Vantage bodies: notices become typed errors, wall-clock times become the right UTC."""

from __future__ import annotations

import pytest

from ingest.alphavantage import (
    ApiError,
    BudgetExhausted,
    BudgetUnreadable,
    CallBudget,
    InvalidApiKey,
    RateLimited,
    Stopped,
    check_body,
    parse_bars,
)
from ingest.api_keys import ApiKey


def _values(close: str = "101.5") -> dict:
    return {"1. open": "100.0", "2. high": "102.0", "3. low": "99.5", "4. close": close,
            "5. volume": "12345"}


def _intraday(series: dict, symbol: str = "AAPL") -> dict:
    return {"Meta Data": {"2. Symbol": symbol, "4. Interval": "5min",
                          "6. Time Zone": "US/Eastern"},
            "Time Series (5min)": series}


def test_notices_are_detected_before_parsing():
    with pytest.raises(RateLimited, match="Information"):
        check_body({"Information": "Thank you for using Alpha Vantage! rate limit is 25/day"})
    with pytest.raises(RateLimited, match="Note"):
        check_body({"Note": "Our standard API call frequency is 5 calls per minute"})
    with pytest.raises(InvalidApiKey, match="ALPHAVANTAGE_API_KEY"):
        check_body({"Error Message": "the parameter apikey is invalid or missing."})
    with pytest.raises(ApiError, match="Invalid API call"):
        check_body({"Error Message": "Invalid API call. Please retry."})
    with pytest.raises(ApiError, match="JSON list"):
        check_body([1, 2])
    body = _intraday({})
    assert check_body(body) is body


def test_a_key_echoed_in_a_notice_is_redacted():
    key = ApiKey("ECHOED-KEY-123")
    with pytest.raises(InvalidApiKey) as caught:
        check_body({"Error Message": "apikey ECHOED-KEY-123 is invalid"}, key)
    assert "ECHOED-KEY-123" not in str(caught.value)


def test_eastern_wall_clock_converts_to_utc_across_the_dst_change():
    body = _intraday({
        "2024-03-08 09:30:00": _values(),  # EST, UTC-5
        "2024-03-11 09:30:00": _values(),  # EDT, UTC-4 (DST began 2024-03-10)
        "2024-11-04 09:30:00": _values(),  # EST again (DST ended 2024-11-03)
    })
    bars, rejected = parse_bars(body, symbol="AAPL", interval="5min",
                                fetched_at="2024-11-05T00:00:00.000Z")
    assert rejected == []
    assert {bar["bar_local"]: bar["bar_ts_utc"] for bar in bars} == {
        "2024-03-08 09:30:00": "2024-03-08T14:30:00Z",
        "2024-03-11 09:30:00": "2024-03-11T13:30:00Z",
        "2024-11-04 09:30:00": "2024-11-04T14:30:00Z",
    }
    assert bars[0]["close"] == 101.5 and bars[0]["volume"] == 12345.0
    assert bars[0]["time_zone"] == "US/Eastern" and bars[0]["source"] == "alphavantage"


def test_daily_bars_are_stamped_at_eastern_midnight():
    body = {"Meta Data": {"2. Symbol": "MSFT", "5. Time Zone": "US/Eastern"},
            "Time Series (Daily)": {"2024-03-08": _values(), "2024-07-01": _values()}}
    bars, _ = parse_bars(body, symbol="MSFT", interval="daily", fetched_at="x")
    assert sorted(bar["bar_ts_utc"] for bar in bars) == [
        "2024-03-08T05:00:00Z", "2024-07-01T04:00:00Z"]


def test_bad_bars_are_rejected_one_by_one_and_a_wrong_body_is_an_error():
    body = _intraday({"2024-03-08 09:30:00": _values(),
                      "2024-03-08 09:35:00": _values(close="abc"),
                      "not a time": _values(),
                      "2024-03-08 09:40:00": _values(close="-1")})
    bars, rejected = parse_bars(body, symbol="AAPL", interval="5min", fetched_at="x")
    assert len(bars) == 1
    assert len(rejected) == 3
    assert all(reason.startswith("invalid_bar: AAPL") for reason, _ in rejected)
    with pytest.raises(ApiError, match="response is for 'MSFT'"):
        parse_bars(_intraday({}, symbol="MSFT"), symbol="AAPL", interval="5min", fetched_at="x")
    with pytest.raises(ApiError, match="no 'Time Series \\(5min\\)'"):
        parse_bars({"Meta Data": {}}, symbol="AAPL", interval="5min", fetched_at="x")


class _Clock:
    """A manual clock: the budget's waits advance it instead of sleeping."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start
        self.slept = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.slept += seconds


def test_budget_waits_for_the_minute_window_and_persists_across_instances(tmp_path):
    clock = _Clock()
    path = tmp_path / "state" / "budget.json"
    budget = CallBudget(path, calls_per_minute=2, calls_per_day=5, clock=clock, sleep=clock.sleep)
    budget.acquire()
    budget.acquire()
    assert clock.slept == 0
    budget.acquire()  # third call in the minute: waits for the first to age out
    assert 59.0 <= clock.slept <= 60.5

    # A second run (a new instance on the same file) sees the calls already made.
    again = CallBudget(path, calls_per_minute=2, calls_per_day=5, clock=clock, sleep=clock.sleep)
    assert again.used() == (1, 3)  # the first two aged out together during the wait
    clock.now += 120
    again.acquire()
    again.acquire()
    with pytest.raises(BudgetExhausted, match="5 calls per day"):
        again.acquire()
    assert again.used()[1] == 5

    clock.now += 86_400  # a day later the rolling window is empty again
    again.acquire()
    assert again.used() == (1, 1)


def test_budget_wait_can_be_interrupted(tmp_path):
    clock = _Clock()
    budget = CallBudget(tmp_path / "b.json", calls_per_minute=1, calls_per_day=9,
                        clock=clock, sleep=clock.sleep)
    budget.acquire()
    with pytest.raises(Stopped):
        budget.acquire(should_stop=lambda: clock.slept > 5)
    assert budget.used() == (1, 1)


def test_an_unreadable_budget_blocks_calls_instead_of_overspending(tmp_path):
    path = tmp_path / "budget.json"
    path.write_text("{not json")
    with pytest.raises(BudgetUnreadable, match="fix or delete"):
        CallBudget(path, calls_per_minute=5, calls_per_day=25).acquire()
