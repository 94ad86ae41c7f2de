"""`collect_market`: a real collector lands a whole simulated market, then stops."""

from __future__ import annotations

import pytest

from ingest.finnhub import FinnhubAuthError, FinnhubCollector
from ingest.landing import read_landed_records
from ingest.simulator import collect_market

SYMBOLS = ("AAPL", "MSFT", "NVDA")


def _collector(url: str, tmp_path, **options) -> FinnhubCollector:
    return FinnhubCollector(
        url=url, symbols=SYMBOLS, landing_dir=tmp_path / "landing", flush_trades=500,
        flush_seconds=0.5, reconnect_initial_seconds=0.01, reconnect_max_seconds=0.05, **options,
    )


def test_every_trade_the_market_sent_is_landed_before_it_returns(simulator, tmp_path):
    market = simulator(seed=3, symbols=SYMBOLS, max_trades=1_200)
    collector = _collector(market.ws_url, tmp_path)

    sent = collect_market(market, collector)

    assert sent == market.stats().trades_sent == 1_200
    assert collector.stats.received == collector.stats.landed == sent
    landed = {record["trade_id"] for record in read_landed_records(tmp_path / "landing" / "trades")}
    assert landed == market.sent_trade_ids()


def test_a_collector_that_fails_raises_its_error_in_the_caller(simulator, tmp_path):
    market = simulator(seed=3, symbols=SYMBOLS, max_trades=200, token="the-right-token")
    collector = _collector(market.ws_url, tmp_path, api_key="WRONG-token-4711",
                           key_urls=[market.ws_url])

    with pytest.raises(FinnhubAuthError, match="check FINNHUB_API_KEY"):
        collect_market(market, collector)
