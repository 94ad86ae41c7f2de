"""The Finnhub collector against the simulator on 127.0.0.1: the simulator's ids are the truth."""

from __future__ import annotations

import random
import re
import threading
from datetime import UTC, datetime

import orjson
import pytest

from ingest.finnhub import FinnhubAuthError, FinnhubCollector, reconnect_delay
from ingest.landing import REJECT_RAW_LIMIT, LandingError
from ingest.simulator import FaultConfig
from ingest.symbols import InvalidSymbol
from ingest.trade_id import message_key, trade_id
from tests.support.collectors import (
    landed_rejects,
    landed_trades,
    reason_codes,
    scripted_server,
    wait_for,
)

SYMBOLS = ("AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "TSLA", "JPM", "XOM", "KO")
FAST_RECONNECT = {"reconnect_initial_seconds": 0.01, "reconnect_max_seconds": 0.05}
RECEIVED_AT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def _collector(url: str, landing, **options) -> FinnhubCollector:
    options.setdefault("symbols", SYMBOLS)
    return FinnhubCollector(url=url, landing_dir=landing, **FAST_RECONNECT, **options)


def _collect_until_the_market_closes(market, collector: FinnhubCollector):
    """Run until the simulator has sent everything and the collector has read its close frame.

    Stopping on max_trades instead would race the fault frames the simulator sends after
    the last trade message.
    """
    runner = threading.Thread(target=collector.run)
    runner.start()
    try:
        assert market.wait_finished(timeout=120)
        wait_for(lambda: market.stats().active_connections == 0, what="the close handshake")
    finally:
        collector.stop()
        runner.join(timeout=60)
    assert not runner.is_alive()
    return collector.stats


def test_every_sent_trade_lands_exactly_once_across_forced_disconnects(simulator, tmp_path):
    market = simulator(seed=11, max_trades=3_000, faults=FaultConfig(drop_every_n_messages=7))
    landing = tmp_path / "landing"

    stats = _collector(market.ws_url, landing, max_trades=3_000).run()

    sent = market.sent_trade_ids()
    ids = [record["trade_id"] for record in landed_trades(landing)]
    assert market.stats().forced_disconnects >= 3
    assert stats.reconnects == market.stats().forced_disconnects
    assert len(sent) == market.stats().trades_sent == 3_000
    assert len(ids) == len(set(ids)) == 3_000  # exactly once, no de-duplication needed
    assert set(ids) == sent
    assert stats.landed == 3_000 and stats.rejected == 0


def test_landed_records_follow_the_landing_contract(simulator, tmp_path):
    market = simulator(seed=5, max_trades=500)
    landing = tmp_path / "landing"
    _collector(market.ws_url, landing, max_trades=500).run()

    files = sorted((landing / "trades").rglob("*.ndjson"))
    assert files and all(not path.name.startswith(".") for path in files)
    for path in files:
        for line in path.read_bytes().splitlines():
            record = orjson.loads(line)
            assert set(record) == {"trade_id", "symbol", "price", "volume", "trade_ts_ms",
                                   "conditions", "exchange", "received_at", "source"}
            assert isinstance(record["price"], float) and record["price"] > 0
            assert isinstance(record["volume"], float) and record["volume"] >= 0
            assert isinstance(record["trade_ts_ms"], int)
            assert record["conditions"] is None or all(
                isinstance(c, str) for c in record["conditions"])
            assert record["source"] == "finnhub"
            assert RECEIVED_AT.match(record["received_at"])
            day = datetime.fromtimestamp(record["trade_ts_ms"] / 1000, UTC).date()
            assert path.parent.name == f"date={day:%Y-%m-%d}"


def test_malformed_oversized_and_wrongly_typed_messages_are_rejected_and_collection_goes_on(
    simulator, tmp_path
):
    faults = FaultConfig(malformed_every_n=3, wrong_types_every_n=4, oversized_every_n=5,
                         unknown_type_every_n=6, error_every_n=7, ping_every_n=2)
    market = simulator(seed=21, max_trades=4_000, faults=faults)
    landing = tmp_path / "landing"

    stats = _collect_until_the_market_closes(market, _collector(market.ws_url, landing))

    truth = market.stats()
    assert {r["trade_id"] for r in landed_trades(landing)} == market.sent_trade_ids()
    assert stats.landed == truth.trades_sent == 4_000
    rejects = landed_rejects(landing)
    codes = reason_codes(rejects)
    assert codes["malformed_json"] == truth.malformed_sent > 0
    assert codes["oversized_frame"] == truth.oversized_sent > 0
    assert codes["unknown_type"] == truth.unknown_type_sent > 0
    assert codes["server_error"] == truth.errors_sent > 0
    # Each wrongly typed message carries four corrupted trades, each rejected on its own.
    per_trade = sum(codes.get(code, 0) for code in
                    ("wrong_type", "invalid_price", "invalid_volume", "missing_field"))
    assert per_trade == 4 * truth.wrong_types_sent > 0
    assert stats.pings == truth.pings_sent > 0  # pings are ignored, not rejected
    for record in rejects:
        assert set(record) == {"received_at", "source", "reason", "raw", "raw_bytes"}
        assert record["source"] == "finnhub" and ": " in record["reason"]
    oversized = [r for r in rejects if r["reason"].startswith("oversized_frame")]
    assert all(r["raw_bytes"] > 1024 * 1024 and len(r["raw"]) == REJECT_RAW_LIMIT
               for r in oversized)


def test_each_bad_trade_is_rejected_and_its_good_neighbours_kept(tmp_path):
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    t = 1_709_908_200_000
    data = [
        {"p": 189.5, "s": "AAPL", "t": t, "v": 100, "c": ["1", "12"]},
        {"p": 10, "s": "MSFT", "t": t + 1, "v": 0, "c": None},  # ints are numbers too
        {"p": 1e-05, "s": "AAPL", "t": t + 2, "v": 2.5e+20, "c": [], "x": "XNAS"},
        {"p": 189.5, "s": "IBM", "t": t, "v": 1, "c": None},
        {"p": 189.5, "s": "AAPL", "t": 631_152_000_000, "v": 1, "c": None},  # 1990
        {"p": 189.5, "s": "AAPL", "t": now_ms + 3 * 86_400_000, "v": 1, "c": None},
        {"p": 0, "s": "AAPL", "t": t, "v": 1, "c": None},
        {"p": -5.25, "s": "AAPL", "t": t, "v": 1, "c": None},
        {"p": 189.5, "s": "AAPL", "t": t, "v": -1, "c": None},
        {"p": 189.5, "s": "AAPL", "t": t, "v": 1, "c": "12"},
        {"p": 189.5, "s": "AAPL", "t": t, "v": 1, "c": [12]},
        {"p": 189.5, "s": "AAPL", "t": float(t), "v": 1, "c": None},
        {"s": "AAPL", "t": t, "v": 1},
        ["not", "an", "object"],
        {"p": 189.5, "s": "AAPL", "t": t + 3, "v": 100, "c": ["1", "12"]},
    ]
    frames = [orjson.dumps({"type": "trade", "data": data}).decode()]
    landing = tmp_path / "landing"
    with scripted_server(frames, subscriptions=2) as url:
        stats = _collector(url, landing, symbols=("AAPL", "MSFT"), max_trades=4).run()

    kept = {0, 1, 2, 14}
    key = message_key(frames[0].encode(), 0)
    expected = {trade_id(key, i) for i in kept}
    records = landed_trades(landing)
    assert {r["trade_id"] for r in records} == expected
    assert next(r for r in records if r["symbol"] == "MSFT")["price"] == 10.0
    assert next(r for r in records if r["exchange"] == "XNAS")["volume"] == 2.5e20
    reasons = sorted(r["reason"].split(":")[0] for r in landed_rejects(landing))
    assert reasons == sorted([
        "unknown_symbol", "implausible_timestamp", "implausible_timestamp", "invalid_price",
        "invalid_price", "invalid_volume", "wrong_type", "wrong_type", "wrong_type",
        "missing_field", "wrong_type",
    ])
    assert stats.received == len(data) and stats.rejected == 11


def test_ids_computed_in_the_hot_path_match_the_reference_trade_id(tmp_path):
    rng = random.Random(3)
    t = 1_709_908_200_000
    data = [
        {"p": rng.choice([rng.uniform(0.0001, 1e6), rng.randint(1, 10**6), 0.1 + 0.2, 1e16]),
         "s": rng.choice(["AAPL", "BRK.B"]), "t": t + rng.randint(0, 10**6),
         "v": rng.choice([rng.randint(0, 10**7), rng.uniform(0, 1e4), 1e-7]), "c": None}
        for _ in range(300)
    ]
    frames = [orjson.dumps({"type": "trade", "data": data[:150]}).decode(),
              orjson.dumps({"type": "trade", "data": data[150:]}).decode()]
    landing = tmp_path / "landing"
    with scripted_server(frames, subscriptions=2) as url:
        _collector(url, landing, symbols=("AAPL", "BRK.B"), max_trades=300).run()
    keys = [message_key(frame.encode(), 0) for frame in frames]
    expected = [trade_id(keys[i // 150], i % 150) for i in range(len(data))]
    records = landed_trades(landing)
    assert {r["trade_id"] for r in records} == set(expected)
    by_id = {r["trade_id"]: r for r in records}
    for i, d in enumerate(data):
        record = by_id[expected[i]]
        assert record["price"] == float(d["p"]) and record["volume"] == float(d["v"])


def test_stop_from_another_thread_lands_everything_received(simulator, tmp_path):
    market = simulator(seed=8)  # endless market
    landing = tmp_path / "landing"
    collector = _collector(market.ws_url, landing, flush_trades=10**9, flush_seconds=3600)
    runner = threading.Thread(target=collector.run)
    runner.start()
    wait_for(lambda: collector.stats.accepted >= 2_000, what="trades to arrive")
    assert not list((landing / "trades").rglob("*.ndjson"))  # all still in memory

    collector.stop()
    runner.join(timeout=30)

    assert not runner.is_alive()
    stats = collector.stats
    records = landed_trades(landing)
    assert len(records) == stats.landed == stats.accepted >= 2_000
    assert {r["trade_id"] for r in records} <= market.sent_trade_ids()


def test_a_landing_dir_that_cannot_be_written_ends_the_run_with_a_clear_error(
    simulator, tmp_path
):
    market = simulator(seed=3, max_trades=300)
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "trades").write_text("a file where the trades directory should be")
    collector = _collector(market.ws_url, landing, flush_trades=100)

    with pytest.raises(LandingError, match="cannot land trades"):
        collector.run()

    stats = collector.stats
    assert stats.accepted >= 100 and stats.landed == 0  # reported, not counted as landed
    assert stats.reconnects == 0  # a disk problem is not mistaken for a network one


def test_a_refused_token_is_a_clear_error_without_the_token(simulator, tmp_path):
    market = simulator(seed=1, token="the-right-token")
    collector = _collector(market.ws_url, tmp_path / "landing", api_key="WRONG-token-4711",
                           key_urls=[market.ws_url])
    with pytest.raises(FinnhubAuthError, match="check FINNHUB_API_KEY") as caught:
        collector.run()
    assert "WRONG-token-4711" not in str(caught.value)
    assert "WRONG-token-4711" not in repr(collector)


def test_the_right_token_is_accepted(simulator, tmp_path):
    market = simulator(seed=1, token="the-right-token", max_trades=200)
    stats = _collector(market.ws_url, tmp_path / "landing", api_key="the-right-token",
                       key_urls=[market.ws_url],
                       max_trades=200).run()
    assert stats.landed == 200


def test_an_unreachable_server_is_retried_until_the_duration_ends(tmp_path):
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    stats = _collector(f"ws://127.0.0.1:{port}", tmp_path / "landing",
                       duration_seconds=0.5).run()
    assert stats.connect_failures >= 3
    assert stats.landed == 0 and "connect failed" in (stats.last_problem or "")


def test_reconnect_delays_grow_exponentially_with_jitter_up_to_the_cap():
    rng = random.Random(0)
    for attempt in range(12):
        ceiling = min(30.0, 0.5 * 2**attempt)
        delays = [reconnect_delay(attempt, 0.5, 30.0, rng) for _ in range(200)]
        assert all(ceiling / 2 <= delay <= ceiling for delay in delays)
        assert len(set(delays)) > 100  # jittered, not a fixed schedule
    assert reconnect_delay(10_000, 0.5, 30.0, rng) <= 30.0


def test_path_traversal_symbol_is_refused_before_anything_is_sent(tmp_path):
    with pytest.raises(InvalidSymbol, match="invalid symbol '../../etc'"):
        FinnhubCollector(url="ws://127.0.0.1:1", symbols=["AAPL", "../../etc"],
                         landing_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []
