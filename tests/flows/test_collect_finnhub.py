"""`tradewatch collect finnhub` as a user runs it: a subprocess, signals, a hard kill."""

from __future__ import annotations

import os
import signal
import subprocess

import orjson

from flows.collect import run_collect_finnhub
from tests.support.collectors import (
    TRADEWATCH,
    cli_env,
    landed_trades,
    settings_for,
    wait_for,
    write_config,
)

SYMBOLS = "AAPL,MSFT,NVDA,AMZN,GOOGL,META,TSLA,JPM,XOM,KO"


def _start(url: str, home, config, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [str(TRADEWATCH), "--config", str(config), "collect", "finnhub", "--url", url,
         "--symbols", SYMBOLS, *extra],
        env=cli_env(home), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _trade_files(landing) -> list:
    return sorted((landing / "trades").rglob("*.ndjson"))


def _market_drained(market) -> bool:
    """The simulator sent its last trade and the collector has read up to its close frame."""
    stats = market.stats()
    return stats.finished and stats.active_connections == 0


def test_cli_collects_max_trades_and_prints_the_summary(simulator, tmp_path):
    market = simulator(seed=4, max_trades=1_000)
    home = tmp_path / "home"
    config = write_config(tmp_path / "config")

    result = subprocess.run(
        [str(TRADEWATCH), "--config", str(config), "collect", "finnhub", "--url",
         market.ws_url, "--symbols", SYMBOLS, "--max-trades", "1000"],
        env=cli_env(home), capture_output=True, text=True, timeout=120,
    )

    assert result.returncode == 0, result.stderr
    summary = [line for line in result.stdout.splitlines() if line.startswith("finnhub:")]
    assert summary and "landed 1,000" in summary[0] and "reconnects 0" in summary[0]
    assert "received 1,000 trades" in summary[0] and "rejected 0" in summary[0]
    assert {r["trade_id"] for r in landed_trades(home / "landing")} == market.sent_trade_ids()


def test_sigterm_lands_everything_held_in_memory(simulator, tmp_path):
    market = simulator(seed=9, max_trades=5_000)
    home = tmp_path / "home"
    # Nothing is flushed by size or interval: only the signal handler can land the trades.
    config = write_config(tmp_path / "config", finnhub={
        "flush_trades": 1_000_000, "flush_seconds": 3600, "reconnect_initial_seconds": 0.2})
    process = _start(market.ws_url, home, config)
    try:
        wait_for(lambda: _market_drained(market), what="the simulator to send everything")
        assert _trade_files(home / "landing") == []  # all 5,000 trades are in memory

        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert "landed 5,000" in out
    ids = [r["trade_id"] for r in landed_trades(home / "landing")]
    assert len(ids) == len(set(ids))
    assert set(ids) == market.sent_trade_ids()
    assert len(market.sent_trade_ids()) == 5_000


def test_kill_9_then_restart_keeps_what_was_landed_and_duplicates_nothing(simulator, tmp_path):
    market = simulator(seed=13, max_trades=120_000)
    home = tmp_path / "home"
    landing = home / "landing"
    config = write_config(tmp_path / "config", finnhub={
        "flush_trades": 2_000, "flush_seconds": 0.2, "reconnect_initial_seconds": 0.05})

    first = _start(market.ws_url, home, config)
    try:
        wait_for(lambda: len(_trade_files(landing)) >= 3, what="the first files to land")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    assert first.returncode == -signal.SIGKILL
    # The simulator counts a trade as sent once written to the socket; wait until it has seen
    # the connection die so no trade counted after this point went to the dead process.
    wait_for(lambda: market.stats().active_connections == 0, what="the dead connection")
    landed_before_kill = {r["trade_id"] for r in landed_trades(landing)}  # complete files only
    sent_before_restart = market.sent_trade_ids()
    assert len(sent_before_restart) < 120_000, "the kill came after the market had finished"

    second = _start(market.ws_url, home, config)
    try:
        wait_for(lambda: _market_drained(market), timeout=120, what="the rest of the market")
        second.send_signal(signal.SIGTERM)
        second.communicate(timeout=60)
    finally:
        if second.poll() is None:
            second.kill()
    assert second.returncode == 0

    sent = market.sent_trade_ids()
    records = []
    for path in _trade_files(landing):
        records.extend(orjson.loads(line) for line in path.read_bytes().splitlines())
    ids = [r["trade_id"] for r in records]
    assert len(ids) == len(set(ids))  # no trade landed twice, even before de-duplication
    landed = set(ids)
    assert landed_before_kill <= landed  # the restart kept every file the killed run wrote
    assert sent - sent_before_restart <= landed  # the second run lost nothing
    assert landed <= sent
    lost = sent - landed
    # Only trades the killed process held (in memory or in flight to it) can be missing.
    assert lost <= sent_before_restart - landed_before_kill
    leftovers = [p for p in landing.rglob("*") if p.is_file() and p.name.startswith(".")]
    assert leftovers == []  # a temporary from the killed writer would have been removed


def test_missing_api_key_for_the_real_service_is_one_clear_line(tmp_path):
    result = subprocess.run(
        [str(TRADEWATCH), "collect", "finnhub", "--max-trades", "1"],
        env=cli_env(tmp_path), capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr == (
        "tradewatch: MissingApiKey: set FINNHUB_API_KEY or pass --url to use the simulator\n"
    )
    assert not (tmp_path / "landing").exists()


def test_path_traversal_symbol_fails_the_flow_with_one_line(tmp_path, capsys):
    settings = settings_for(tmp_path)
    code = run_collect_finnhub(settings, url="ws://127.0.0.1:9", symbols=("../../etc",),
                               duration=None, max_trades=None)
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("tradewatch: InvalidSymbol: invalid symbol '../../etc'")
    assert err.count("\n") == 1
    assert not (tmp_path / "landing").exists()
    assert os.listdir(tmp_path) == []
