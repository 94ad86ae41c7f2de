"""API keys never leak: not in landed files, state, stdout/stderr, logs, errors or reprs.

The simulator is configured to require recognisable fake keys; the collectors run with the
right keys, wrong keys and an unreachable server (the failure paths are where URLs, and the
keys in them, end up in exception text), and then everything they wrote is searched.
"""

from __future__ import annotations

import logging
import re
import socket
import subprocess
import traceback
from pathlib import Path
from urllib.parse import quote

import pytest

from ingest.alphavantage import AlphaVantageCollector, CallBudget
from ingest.finnhub import FinnhubAuthError, FinnhubCollector
from ingest.simulator import FaultConfig
from tests.support.collectors import TRADEWATCH, cli_env, write_config

# Characters that URL-encoding changes, so both spellings are searched for.
FINNHUB_KEY = "tw+finnhub/SECRET=7Hq2Zx"
AV_KEY = "tw+alphav/SECRET=9Lm4Kp"
WRONG_KEY = "tw+wrong/SECRET=3Xc8Vb"
SYMBOLS = "AAPL,MSFT,NVDA,AMZN,GOOGL,META,TSLA,JPM,XOM,KO"


def _spellings() -> list[bytes]:
    keys = (FINNHUB_KEY, AV_KEY, WRONG_KEY)
    forms = {form for key in keys for form in (key, quote(key, safe=""), quote(key),
                                                key.replace("+", " "))}
    forms |= {key.split("SECRET=")[1] for key in keys}  # the distinctive tail alone
    return sorted(form.encode() for form in forms)


def _assert_clean(text: bytes, where: str) -> None:
    for spelling in _spellings():
        assert spelling not in text, f"{spelling!r} leaked into {where}"


def _dead_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def guarded_market(simulator):
    return simulator(seed=6, token=FINNHUB_KEY, av_api_key=AV_KEY, max_trades=600,
                     faults=FaultConfig(error_every_n=2, malformed_every_n=3))


def test_no_key_in_anything_the_cli_runs_write_or_print(guarded_market, tmp_path):
    market = guarded_market
    home = tmp_path / "home"
    dead = _dead_port()
    # The simulator checks the keys, so it is listed as a place keys may go (an opt-in the
    # runs report); the dead ports are not, and get no key.
    config = write_config(tmp_path / "config",
                          finnhub={"reconnect_initial_seconds": 0.05,
                                   "key_urls": [market.ws_url]},
                          alphavantage={"timeout_seconds": 0.5, "retries": 1,
                                        "key_urls": [market.av_url]})
    runs = [
        # (environment, arguments, expected exit code)
        ({"FINNHUB_API_KEY": FINNHUB_KEY},
         ["collect", "finnhub", "--url", market.ws_url, "--symbols", SYMBOLS,
          "--max-trades", "600"], 0),
        ({"FINNHUB_API_KEY": WRONG_KEY},
         ["collect", "finnhub", "--url", market.ws_url, "--symbols", SYMBOLS], 1),
        ({"FINNHUB_API_KEY": FINNHUB_KEY},
         ["collect", "finnhub", "--url", f"ws://127.0.0.1:{dead}", "--duration", "0.5"], 0),
        ({"ALPHAVANTAGE_API_KEY": AV_KEY},
         ["collect", "alphavantage", "--url", market.av_url, "--symbols", "AAPL",
          "--interval", "5min"], 0),
        ({"ALPHAVANTAGE_API_KEY": WRONG_KEY},
         ["collect", "alphavantage", "--url", market.av_url, "--symbols", "AAPL"], 1),
        ({"ALPHAVANTAGE_API_KEY": AV_KEY},
         ["collect", "alphavantage", "--url", f"http://127.0.0.1:{dead}", "--symbols",
          "AAPL"], 1),
    ]
    outputs = []
    for env, args, expected in runs:
        result = subprocess.run([str(TRADEWATCH), "--config", str(config), *args],
                                env=cli_env(home, **env), capture_output=True, timeout=120)
        assert result.returncode == expected, (args, result.stderr.decode())
        outputs.append((args, result.stdout + result.stderr))

    # The runs did what they say, so the search below covers real success and failure paths.
    assert b"landed 600" in outputs[0][1]
    assert b"FinnhubAuthError" in outputs[1][1]
    assert b"InvalidApiKey" in outputs[4][1]
    assert b"RequestFailed" in outputs[5][1] and b"ConnectionError" in outputs[5][1]
    assert list((home / "landing" / "rejects").rglob("*.ndjson"))  # server errors landed

    for args, text in outputs:
        _assert_clean(text, f"the output of {' '.join(args[:2])}")
    written = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert any("bars" in path.parts for path in written)
    for path in written:
        _assert_clean(path.read_bytes(), str(path.relative_to(tmp_path)))


def test_no_key_in_reprs_errors_or_debug_logs(guarded_market, tmp_path, caplog):
    market = guarded_market
    caplog.set_level(logging.DEBUG)

    good = FinnhubCollector(url=market.ws_url, symbols=["AAPL", "MSFT"], api_key=FINNHUB_KEY,
                            landing_dir=tmp_path / "landing", max_trades=100,
                            key_urls=[market.ws_url])
    good.run()
    wrong = FinnhubCollector(url=market.ws_url, symbols=["AAPL"], api_key=WRONG_KEY,
                             landing_dir=tmp_path / "landing", key_urls=[market.ws_url])
    with pytest.raises(FinnhubAuthError) as refused:
        wrong.run()

    budget = CallBudget(tmp_path / "state" / "budget.json", calls_per_minute=50,
                        calls_per_day=50)
    av_ok = AlphaVantageCollector(base_url=market.av_url, api_key=AV_KEY, symbols=["AAPL"],
                                  interval="5min", landing_dir=tmp_path / "landing",
                                  budget=budget, key_urls=[market.av_url])
    assert av_ok.collect().error is None
    av_wrong = AlphaVantageCollector(base_url=market.av_url, api_key=WRONG_KEY,
                                     symbols=["AAPL"], interval="5min",
                                     landing_dir=tmp_path / "landing", budget=budget,
                                     key_urls=[market.av_url])
    bad_key = av_wrong.collect().error
    dead_url = f"http://127.0.0.1:{_dead_port()}"
    av_dead = AlphaVantageCollector(base_url=dead_url,
                                    api_key=AV_KEY, symbols=["AAPL"], interval="5min",
                                    landing_dir=tmp_path / "landing", budget=budget,
                                    retries=1, backoff_initial_seconds=0.01,
                                    key_urls=[dead_url])
    unreachable = av_dead.collect().failed[0].error

    # urllib3 logs each request line, query string and all, at DEBUG: it must be redacted.
    # The request line is logged with the key masked: by our filter (***) or, when
    # databricks-sql was imported first, by its own (<REDACTED>) before ours sees it.
    assert re.search(r"apikey=(\*\*\*|<REDACTED>)", caplog.text)
    _assert_clean(caplog.text.encode(), "the debug log")
    for shown in (repr(good), repr(wrong), repr(av_ok), repr(av_dead), repr(budget),
                  str(good.stats), unreachable):
        _assert_clean(shown.encode(), shown)
    for error in (refused.value, bad_key):
        _assert_clean("".join(traceback.format_exception(error)).encode(), repr(error))
    for path in Path(tmp_path).rglob("*"):
        if path.is_file():
            _assert_clean(path.read_bytes(), str(path))
