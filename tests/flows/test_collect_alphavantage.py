"""`tradewatch collect alphavantage` and its flow against the simulator's REST endpoint: exit
codes and lines, the daily budget across runs, and the scheduled runs of a whole day (a run
every five minutes spreads the daily call budget over the day instead of spending it in the
first runs: 10 symbols, 25 calls)."""

from __future__ import annotations

import subprocess
from collections import Counter

import orjson
import pytest

from flows.collect import run_collect_alphavantage
from flows.config import load_settings
from ingest.alphavantage import CallBudget, budget_path
from ingest.landing import read_landed_records
from tests.support.collectors import TRADEWATCH, cli_env, settings_for, write_config
from tests.support.files_api import PRD_VOLUME, prd_workspace


class Clock:
    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def test_the_daily_budget_holds_across_two_cli_runs(simulator, tmp_path):
    market = simulator(seed=2)
    home = tmp_path / "home"
    config = write_config(tmp_path / "config", alphavantage={"calls_per_day": 3})

    def run() -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(TRADEWATCH), "--config", str(config), "collect", "alphavantage", "--url",
             market.av_url, "--symbols", "AAPL,MSFT", "--interval", "5min"],
            env=cli_env(home), capture_output=True, text=True, timeout=120)

    first, second = run(), run()

    assert first.returncode == 0, first.stderr
    assert "fetched 2 of 2 symbols" in first.stdout
    assert second.returncode == 1
    assert "fetched 1 of 2 symbols" in second.stdout
    assert second.stderr.splitlines()[-1].startswith(
        "tradewatch: BudgetExhausted: the Alpha Vantage budget of 3 calls per day is spent")
    assert market.stats().av_requests == 3  # the fourth call was never sent
    budget = orjson.loads((home / "state" / "alphavantage_budget.json").read_bytes())
    assert len(budget["calls"]) == 3


def test_flow_exit_codes_and_lines(simulator, tmp_path, capsys):
    market = simulator(seed=2, av_calls_per_minute=1)
    settings = settings_for(tmp_path / "home")

    ok = run_collect_alphavantage(settings, url=market.av_url, symbols=("AAPL",),
                                  interval="5min")
    out = capsys.readouterr().out
    limited = run_collect_alphavantage(settings, url=market.av_url, symbols=("MSFT",),
                                       interval="5min")
    captured = capsys.readouterr()

    assert ok == 0 and "alphavantage: fetched 1 of 1 symbols, landed 100 5min bars" in out
    assert limited == 1
    assert captured.err.splitlines()[-1].startswith("tradewatch: RateLimited: Alpha Vantage")
    assert "fetched 0 of 1 symbols" in captured.out


def test_the_real_service_without_a_key_is_one_clear_line(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("ALPHAVANTAGE_API_KEY", raising=False)
    code = run_collect_alphavantage(settings_for(tmp_path), url=None, symbols=("AAPL",),
                                    interval=None)
    assert code == 2
    assert capsys.readouterr().err == (
        "tradewatch: MissingApiKey: set ALPHAVANTAGE_API_KEY or pass --url to use the "
        "simulator\n")
    assert list(tmp_path.iterdir()) == []  # not even a budget file


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


# ------------------------------------------------------------------ TRADEWATCH_ENV=prd

VOLUME = PRD_VOLUME
TOKEN = "dapi-fake-av-flow-1c2d3e4f"


@pytest.fixture
def workspace(monkeypatch):
    """A fake workspace whose volume the prd environment's variables name."""
    with prd_workspace(monkeypatch, TOKEN) as api:
        yield api


def _prd(home):
    return load_settings(environ={"TRADEWATCH_HOME": str(home), "TRADEWATCH_ENV": "prd"})


def test_on_prd_bars_land_in_the_volume_and_the_budget_stays_local(
    simulator, tmp_path, workspace, capsys
):
    market = simulator(seed=2)
    settings = _prd(tmp_path)

    code = run_collect_alphavantage(settings, url=market.av_url, symbols=("AAPL", "MSFT"),
                                    interval="5min")

    out = capsys.readouterr().out
    landed = sorted(path for path in workspace.files if path.startswith(f"{VOLUME}/landing/"))
    assert code == 0
    assert f"landed 200 5min bars in {len(landed)} files, " in out
    assert out.rstrip().endswith(f"-> {VOLUME}/landing/bars")
    assert landed and all(path.endswith("/bars.ndjson") for path in landed)
    assert sum(len(workspace.files[path].splitlines()) for path in landed) == 200
    assert not (tmp_path / "landing").exists()
    # The per-worker throttles are local operator state, not files dbt reads.
    assert len(orjson.loads(budget_path(tmp_path).read_bytes())["calls"]) == 2
    assert (tmp_path / "state" / "alphavantage_schedule.json").is_file()


def test_on_prd_a_failed_upload_is_one_line_and_the_symbol_stays_due(
    simulator, tmp_path, workspace, capsys
):
    market = simulator(seed=2)
    settings = _prd(tmp_path)
    workspace.fail_next_uploads(500)

    code = run_collect_alphavantage(settings, url=market.av_url, symbols=("AAPL", "MSFT"),
                                    interval="5min")

    captured = capsys.readouterr()
    assert code == 1
    assert "fetched 0 of 1 symbols, landed 0 5min bars in 0 files" in captured.out
    [line] = captured.err.splitlines()
    assert line.startswith("tradewatch: LandingFailed: cannot land the 5min bars of AAPL: "
                           f"VolumeError: cannot write {VOLUME}/landing/bars/interval=5min/")
    assert TOKEN not in captured.err + captured.out
    assert not [path for path in workspace.files if "/landing/bars/" in path]
    assert market.stats().av_requests == 1  # no call spent on MSFT's bars with nowhere to land
    # Not noted as fetched: the next scheduled run fetches AAPL again.
    assert not (tmp_path / "state" / "alphavantage_schedule.json").exists()
