"""The bar schedule: which symbols are due, keeping a reserve of calls for retries (its use
by the scheduled collect flow is tested in tests/flows/test_collect_alphavantage.py)."""

from __future__ import annotations

from ingest.alphavantage import BarSchedule

DAY = 86_400.0


class Clock:
    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


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
