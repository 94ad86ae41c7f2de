"""Scheduled bar collection: a run every five minutes spreads the daily call budget over the
day instead of spending it in the first runs (10 symbols, 25 calls: spent on the third run)."""

from __future__ import annotations

from collections import Counter

from flows.collect import run_collect_alphavantage
from ingest.alphavantage import BarSchedule, CallBudget, budget_path
from ingest.landing import read_landed_records
from tests.support.collectors import settings_for

DAY = 86_400.0


class Clock:
    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def test_a_five_minute_schedule_for_a_day_stays_within_25_calls(simulator, tmp_path):
    # The simulator enforces Alpha Vantage's 25 calls a day too: one call over and it answers
    # with a rate-limit notice, which fails the run.
    market = simulator(seed=9, av_calls_per_minute=100, av_calls_per_day=25)
    settings = settings_for(tmp_path / "home")
    settings = settings.model_copy(update={"alphavantage": settings.alphavantage.model_copy(
        update={"calls_per_minute": 100, "calls_per_day": 25})})
    assert len(settings.symbols) == 10
    clock = Clock(1_710_000_000.0)

    codes = []
    fetching_runs = []
    for run in range(288):  # one day of the continuous-ingestion deployment
        before = market.stats().av_requests
        codes.append(run_collect_alphavantage(
            settings, url=market.av_url, symbols=None, interval=None, scheduled=True,
            clock=clock,
        ))
        if market.stats().av_requests > before:
            fetching_runs.append((run, market.stats().av_requests - before))
        clock.now += 300

    assert set(codes) == {0}
    stats = market.stats()
    assert stats.av_requests == 20 and stats.av_rate_limited == 0
    # Each symbol twice a day: all ten at the first run, again twelve hours later.
    assert fetching_runs == [(0, 10), (144, 10)]
    bars = list(read_landed_records(tmp_path / "home" / "landing" / "bars"))
    assert Counter(bar["symbol"] for bar in bars).keys() == set(settings.symbols)
    used = CallBudget(budget_path(settings.paths.home), calls_per_minute=100,
                      calls_per_day=25, clock=clock).used()[1]
    assert used <= 25


def test_the_schedule_keeps_a_reserve_and_waits_for_the_stalest(tmp_path):
    clock = Clock(0.0)
    schedule = BarSchedule(tmp_path / "schedule.json", calls_per_day=25, clock=clock)
    symbols = ("AAPL", "MSFT", "KO")

    assert schedule.due(symbols, calls_left=25) == (["AAPL", "MSFT", "KO"], None)
    assert schedule.due(symbols, calls_left=6) == (["AAPL"], None)  # 5 calls kept for retries
    schedule.record(["AAPL", "MSFT", "KO"])
    clock.now = 3 * DAY / 20 - 1
    assert schedule.due(symbols, calls_left=25) == ([], 3 * DAY / 20)
    clock.now = 3 * DAY / 20
    assert schedule.due(symbols, calls_left=25)[0] == ["AAPL", "MSFT", "KO"]
