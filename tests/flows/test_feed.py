"""A feed that delivers nothing while its market is open raises one feed_silent alert."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import orjson

from flows.config import load_settings
from flows.feed import check_feeds
from ingest.landing import PartitionedNdjsonWriter
from ml.audit import AuditLog

# Tuesday 12 March 2024, 11:00 New York (EDT): US equities, crypto and forex all open.
OPEN = datetime(2024, 3, 12, 15, 0, tzinfo=UTC)
# Saturday 16 March 2024, 11:00 New York: only crypto trades.
WEEKEND = datetime(2024, 3, 16, 15, 0, tzinfo=UTC)
SYMBOLS = ("AAPL", "BINANCE:BTCUSDT", "OANDA:EUR_USD")


def _settings(home):
    settings = load_settings(environ={**os.environ, "TRADEWATCH_HOME": str(home)})
    return settings.model_copy(update={"symbols": SYMBOLS})


def _land(home, *symbols: str) -> None:
    """Land one trades file of `symbols`: in the folder `home`, or in a data home whose root
    is the trades landing folder."""
    writer = PartitionedNdjsonWriter(
        home / "landing" / "trades" if isinstance(home, Path) else home, "trades")
    for number, symbol in enumerate(symbols):
        writer.add("2024-03-12", orjson.dumps(
            {"trade_id": f"t{number}", "symbol": symbol, "price": 1.0, "volume": 1,
             "trade_ts_ms": 1710255600000}, option=orjson.OPT_APPEND_NEWLINE))
    writer.flush()


def _silent_alerts(settings) -> list[dict]:
    audit = AuditLog(settings.paths.monitoring / "audit")
    return [r.payload for r in audit.records("alert") if r.payload["kind"] == "feed_silent"]


def test_a_silent_symbol_is_alerted_once_while_silent_and_again_after_it_recovered(
        tmp_path, monkeypatch):
    monkeypatch.delenv("TRADEWATCH_WEBHOOK_URL", raising=False)
    settings = _settings(tmp_path)
    _land(tmp_path, "AAPL", "OANDA:EUR_USD")

    first = check_feeds(settings, market_time=OPEN)
    assert first.silent == {"BINANCE:BTCUSDT": "crypto"} == first.alerted
    assert len(_silent_alerts(settings)) == 1
    assert "BINANCE:BTCUSDT (crypto, 10 min)" in _silent_alerts(settings)[0]["text"]

    again = check_feeds(settings, market_time=OPEN)
    assert again.silent == {"BINANCE:BTCUSDT": "crypto"} and not again.alerted
    assert len(_silent_alerts(settings)) == 1  # still silent: not alerted twice

    _land(tmp_path, "BINANCE:BTCUSDT")
    assert not check_feeds(settings, market_time=OPEN).silent
    # Ten minutes on with nothing landed (the wall clock moves, the files do not).
    later = check_feeds(settings, market_time=OPEN, now=datetime.now(UTC).timestamp() + 16 * 60)
    assert set(later.alerted) == set(SYMBOLS)
    assert len(_silent_alerts(settings)) == 2


def test_a_closed_market_is_not_expected_to_deliver(tmp_path, monkeypatch):
    monkeypatch.delenv("TRADEWATCH_WEBHOOK_URL", raising=False)
    settings = _settings(tmp_path)
    weekend = check_feeds(settings, market_time=WEEKEND)
    assert weekend.expected == ("BINANCE:BTCUSDT",)
    assert weekend.alerted == {"BINANCE:BTCUSDT": "crypto"}
    # Just after the US open: equities are not expected yet, forex and crypto are.
    just_open = datetime(2024, 3, 12, 13, 35, tzinfo=UTC)
    assert "AAPL" not in check_feeds(settings, market_time=just_open).expected


def test_on_prd_the_silence_check_reads_the_volume_the_collectors_land_in(
        tmp_path, monkeypatch):
    """TRADEWATCH_ENV=prd: trades land in a Unity Catalog volume (the real databricks-sdk
    client against the loopback Files API fake) and the check reads them there, by the
    landing time in each file's name; nothing is read from the local landing folder."""
    import time

    from core.datahome import LANDING_TRADES, within
    from core.volume import VolumeDataHome
    from tests.support.files_api import FakeFilesApi

    volume, token = "/Volumes/surveillance/prod/tradewatch", "dapi-fake-feed-5d6e7f80"
    monkeypatch.delenv("TRADEWATCH_WEBHOOK_URL", raising=False)
    monkeypatch.delenv("TRADEWATCH_VOLUME", raising=False)
    with FakeFilesApi(token=token, volumes=[volume]) as api:
        for name, value in {"DATABRICKS_HOST": api.url, "DATABRICKS_TOKEN": token,
                            "DATABRICKS_CATALOG": "surveillance",
                            "DATABRICKS_SCHEMA": "prod", "TRADEWATCH_ENV": "prd"}.items():
            monkeypatch.setenv(name, value)
        settings = _settings(tmp_path)
        trades = within(VolumeDataHome(volume, host=api.url), LANDING_TRADES)
        _land(tmp_path, "BINANCE:BTCUSDT")  # a local file: not where prd lands
        # Landed an hour ago under the collector's naming: too old to count.
        hour_ago = time.strftime("%Y%m%dT%H%M%S", time.gmtime(time.time() - 3600))
        api.put(f"{volume}/{LANDING_TRADES}/date=2024-03-12/trades-{hour_ago}Z-1-ab-000001"
                ".ndjson", b'{"symbol": "BINANCE:BTCUSDT"}\n')
        _land(trades, "AAPL", "OANDA:EUR_USD")

        first = check_feeds(settings, market_time=OPEN)
        _land(trades, "BINANCE:BTCUSDT")
        recovered = check_feeds(settings, market_time=OPEN)
        later = check_feeds(settings, market_time=OPEN,
                            now=datetime.now(UTC).timestamp() + 16 * 60)

    assert first.silent == {"BINANCE:BTCUSDT": "crypto"} == first.alerted
    assert not recovered.silent
    assert set(later.alerted) == set(SYMBOLS)
    assert len(_silent_alerts(settings)) == 2
    assert (tmp_path / "state" / "feed_silence.json").is_file()  # local operator state
