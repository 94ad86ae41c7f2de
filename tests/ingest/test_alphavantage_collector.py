"""The Alpha Vantage collector against the simulator's REST endpoint on 127.0.0.1."""

from __future__ import annotations

from datetime import datetime, timedelta
from urllib.parse import unquote

import orjson
import pytest

from ingest.alphavantage import (
    AlphaVantageCollector,
    CallBudget,
    InvalidApiKey,
    LandingFailed,
    RateLimited,
)
from ingest.landing import bars_path, read_landed_records
from ingest.simulator import FaultConfig


class _Clock:
    """Budget time that the collector's waits advance instead of sleeping."""

    def __init__(self) -> None:
        import time

        self.now = time.time()
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.sleeps.append(seconds)


def _budget(tmp_path, per_minute: int = 100, per_day: int = 100, clock: _Clock | None = None):
    kwargs = {"clock": clock, "sleep": clock.sleep} if clock else {}
    return CallBudget(tmp_path / "state" / "alphavantage_budget.json",
                      calls_per_minute=per_minute, calls_per_day=per_day, **kwargs)


def _collector(url, tmp_path, symbols=("AAPL", "MSFT"), *, budget=None, **options):
    options.setdefault("api_key", None)  # the simulator needs none; a loopback URL gets none
    options.setdefault("landing_dir", tmp_path / "landing")
    return AlphaVantageCollector(
        base_url=url, symbols=symbols, interval="5min",
        budget=budget or _budget(tmp_path), backoff_initial_seconds=0.01, **options)


def _bars(tmp_path) -> list[dict]:
    return list(read_landed_records(tmp_path / "landing" / "bars"))


def test_bars_land_one_file_per_symbol_month_and_a_rerun_replaces_them(simulator, tmp_path):
    market = simulator(seed=2)
    first = _collector(market.av_url, tmp_path).collect()
    assert first.error is None and first.failed == []
    before = _bars(tmp_path)
    assert len(before) == first.bars == 200  # compact: the latest 100 bars per symbol

    second = _collector(market.av_url, tmp_path).collect()

    after = _bars(tmp_path)
    assert second.bars == 200
    assert len(after) == len(before)  # replaced, not appended
    assert {(b["symbol"], b["bar_ts_utc"]) for b in after} == {
        (b["symbol"], b["bar_ts_utc"]) for b in before}
    assert min(b["fetched_at"] for b in after) > max(b["fetched_at"] for b in before)
    month = bars_path(tmp_path / "landing", "5min", "AAPL", "2024-03")
    assert month.exists()
    for bar in after:
        assert bar["time_zone"] == "US/Eastern" and bar["source"] == "alphavantage"
        assert bar["bar_ts_utc"].endswith("Z") and bar["low"] <= bar["close"] <= bar["high"]
        # Eastern is UTC-5 until the DST change on 2024-03-10 at 02:00, UTC-4 after it.
        local = datetime.strptime(bar["bar_local"], "%Y-%m-%d %H:%M:%S")
        offset = 5 if bar["bar_local"] < "2024-03-10 02:00:00" else 4
        assert bar["bar_ts_utc"] == f"{local + timedelta(hours=offset):%Y-%m-%dT%H:%M:%S}Z"


def test_rate_limit_note_is_detected_and_ends_the_run_keeping_what_was_fetched(
    simulator, tmp_path
):
    market = simulator(seed=2, av_calls_per_minute=2)
    result = _collector(market.av_url, tmp_path, ("AAPL", "MSFT", "NVDA", "AMZN")).collect()

    assert isinstance(result.error, RateLimited)
    assert "Note" in str(result.error)
    assert [r.symbol for r in result.results if not r.error] == ["AAPL", "MSFT"]
    assert market.stats().av_requests == 3  # nothing more after the notice
    assert market.stats().av_rate_limited == 1
    assert {b["symbol"] for b in _bars(tmp_path)} == {"AAPL", "MSFT"}


def test_daily_limit_information_is_a_rate_limit_too(simulator, tmp_path):
    market = simulator(seed=2, av_calls_per_day=1)
    result = _collector(market.av_url, tmp_path).collect()
    assert isinstance(result.error, RateLimited) and "Information" in str(result.error)
    assert result.bars == 100


def test_per_minute_budget_waits_for_a_free_slot_instead_of_calling(simulator, tmp_path):
    market = simulator(seed=2, av_calls_per_minute=100)
    clock = _Clock()
    result = _collector(market.av_url, tmp_path, ("AAPL", "MSFT", "NVDA"),
                        budget=_budget(tmp_path, per_minute=2, clock=clock)).collect()
    assert result.error is None and result.bars == 300
    assert 59 <= sum(clock.sleeps) <= 61  # the third call waited out the minute
    assert market.stats().av_requests == 3


def test_5xx_answers_are_retried_and_every_attempt_spends_budget(simulator, tmp_path):
    market = simulator(seed=2, faults=FaultConfig(http_5xx_every_n=2))
    budget = _budget(tmp_path)
    result = _collector(market.av_url, tmp_path, ("AAPL", "MSFT", "NVDA"),
                        budget=budget).collect()
    assert result.error is None and result.failed == [] and result.bars == 300
    assert market.stats().av_5xx == 2
    assert result.calls == market.stats().av_requests == 5
    assert budget.used()[1] == 5


def test_timeouts_are_retried_then_reported_for_that_symbol(simulator, tmp_path):
    market = simulator(seed=2, faults=FaultConfig(slow_response_seconds=0.4))
    result = _collector(market.av_url, tmp_path, ("AAPL",), timeout_seconds=0.1,
                        retries=2).collect()
    assert result.error is None  # a symbol-level failure: the run itself was not refused
    [failed] = result.failed
    assert failed.error.startswith("RequestFailed: AAPL: no answer from Alpha Vantage after 3")
    assert "Timeout" in failed.error
    assert result.calls == 3
    assert _bars(tmp_path) == []


def test_bad_key_is_invalid_api_key_and_stops_the_run(simulator, tmp_path):
    market = simulator(seed=2, av_api_key="the-right-key")
    result = _collector(market.av_url, tmp_path, ("AAPL", "MSFT"),
                        api_key="WRONG-av-key-0815", key_urls=[market.av_url]).collect()
    assert isinstance(result.error, InvalidApiKey)
    assert "WRONG-av-key-0815" not in str(result.error)
    assert market.stats().av_requests == 1


def test_an_unknown_symbol_fails_alone(simulator, tmp_path):
    market = simulator(seed=2)
    result = _collector(market.av_url, tmp_path, ("AAPL", "ZZZZ", "MSFT")).collect()
    assert result.error is None
    assert [r.symbol for r in result.failed] == ["ZZZZ"]
    assert result.failed[0].error.startswith("ApiError: Alpha Vantage error: Invalid API call")
    assert result.bars == 200


def test_symbols_and_intervals_are_validated_before_any_request(tmp_path):
    from ingest.symbols import InvalidSymbol

    with pytest.raises(InvalidSymbol):
        _collector("http://127.0.0.1:9", tmp_path, ("../../etc",))
    with pytest.raises(ValueError, match="unknown interval"):
        AlphaVantageCollector(base_url="http://127.0.0.1:9", api_key="k", symbols=["AAPL"],
                              interval="../1min", landing_dir=tmp_path,
                              budget=_budget(tmp_path))
    assert not (tmp_path / "landing").exists()


# ------------------------------------------------------------------ a Unity Catalog volume

VOLUME = "/Volumes/surveillance/prod/tradewatch"
TOKEN = "dapi-fake-bars-7a6b5c4d"
BARS_FILES = "bars", "interval=5min/symbol=*/month=*/bars.ndjson"


@pytest.fixture
def volume():
    """The landing folder of a volume written through the real databricks-sdk client against a
    loopback fake of the Files API; yields (the fake server, the landing data home)."""
    from core.datahome import within
    from core.volume import VolumeDataHome
    from tests.support.files_api import FakeFilesApi

    with FakeFilesApi(token=TOKEN, volumes=[VOLUME]) as api:
        home = VolumeDataHome(VOLUME, host=api.url, environ={"DATABRICKS_TOKEN": TOKEN})
        yield api, within(home, "landing")


def _records(data: bytes) -> list[dict]:
    return [orjson.loads(line) for line in data.splitlines() if line]


def _without_fetch_time(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in record.items() if k != "fetched_at"} for record in records]


def test_bars_land_in_a_volume_as_the_same_whole_files_as_in_a_folder(
    simulator, tmp_path, volume
):
    api, landing = volume
    market = simulator(seed=2)

    in_volume = _collector(market.av_url, tmp_path, landing_dir=landing).collect()
    in_folder = _collector(market.av_url, tmp_path).collect()

    assert in_volume.error is None and in_volume.failed == [] and in_volume.bars == 200
    assert in_folder.bars == 200
    names = landing.list(*BARS_FILES)
    local = tmp_path / "landing"
    assert names == sorted(path.relative_to(local).as_posix()
                           for path in local.glob("bars/" + BARS_FILES[1]))
    assert [str(path) for result in in_volume.results for path in result.files] == [
        f"{VOLUME}/landing/{name}" for name in names]
    for name in names:  # the same bars, line for line, as the local folder got
        assert _without_fetch_time(_records(landing.read(name))) == _without_fetch_time(
            _records((local / name).read_bytes()))
    # One upload per month file, under its final name: nothing partial a reader could list.
    assert sorted(unquote(path) for path, _ in api.uploads()) == sorted(
        f"/api/2.0/fs/files{VOLUME}/landing/{name}" for name in names)
    assert {status for _, status in api.uploads()} == {204}
    assert not list((tmp_path / "landing").glob("**/.*.tmp"))


def test_a_failed_upload_lands_nothing_of_that_symbol_and_ends_the_run_in_one_line(
    simulator, tmp_path, volume
):
    api, landing = volume
    market = simulator(seed=2)
    api.fail_next_uploads("drop", 500)  # a connection cut mid-body (the SDK resends), then 500

    failed = _collector(market.av_url, tmp_path, ("AAPL", "MSFT"), landing_dir=landing).collect()

    assert isinstance(failed.error, LandingFailed)
    [aapl] = failed.results  # MSFT was not fetched: its bars could not have landed either
    assert aapl.symbol == "AAPL" and aapl.bars == 0 and aapl.files == []
    assert failed.bars == 0 and failed.failed == [aapl]
    message = str(failed.error)
    assert "\n" not in message and TOKEN not in message
    assert message.startswith("cannot land the 5min bars of AAPL: VolumeError: cannot write "
                              f"{VOLUME}/landing/bars/interval=5min/symbol=AAPL/month=")
    assert "InternalError" in message
    assert market.stats().av_requests == 1
    assert [status for _, status in api.uploads()] == [0, 500]
    assert landing.list(*BARS_FILES) == []  # no partial file, nor any file

    # Once the volume is back the next run lands the symbol whole; a failed rewrite later
    # keeps the file landed before it as it was.
    again = _collector(market.av_url, tmp_path, ("AAPL", "MSFT"), landing_dir=landing).collect()
    assert again.error is None and again.bars == 200
    names = landing.list(*BARS_FILES)
    before = {name: landing.read(name) for name in names}
    api.fail_next_uploads(500)
    rewrite = _collector(market.av_url, tmp_path, ("AAPL",), landing_dir=landing).collect()
    assert isinstance(rewrite.error, LandingFailed) and rewrite.bars == 0
    assert {name: landing.read(name) for name in landing.list(*BARS_FILES)} == before


def test_a_local_write_failure_ends_the_run_the_same_way(simulator, tmp_path):
    market = simulator(seed=2)
    (tmp_path / "landing").mkdir()
    (tmp_path / "landing" / "bars").write_text("a file where the bars folder belongs")

    result = _collector(market.av_url, tmp_path, ("AAPL", "MSFT")).collect()

    assert isinstance(result.error, LandingFailed)
    assert [(r.symbol, r.bars, r.files) for r in result.results] == [("AAPL", 0, [])]
    assert str(result.error).startswith(
        f"cannot land the 5min bars of AAPL under {tmp_path / 'landing'}: ")
    assert market.stats().av_requests == 1
