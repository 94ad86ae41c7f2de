"""The Finnhub WebSocket feed, against a real client on 127.0.0.1."""

from __future__ import annotations

import json
import math
import time
from datetime import UTC, datetime

import orjson
import pytest
import websocket

from ingest.simulator import DEFAULT_SYMBOLS, FaultConfig, SimulatorConfig, read_ground_truth
from ingest.simulator.config import NEW_YORK
from ingest.symbols import SYMBOL_PATTERN

NO_PINGS = FaultConfig(ping_every_n=None)


def strictly_valid(trade: object) -> bool:
    """What a careful collector accepts: exact JSON types, finite positive price, known symbol."""
    if not isinstance(trade, dict):
        return False
    p, s, t, v, c = (trade.get(k) for k in ("p", "s", "t", "v", "c"))
    return (
        type(p) in (int, float) and math.isfinite(p) and p > 0
        and type(s) is str and s in DEFAULT_SYMBOLS
        and type(t) is int and 946_684_800_000 < t < 4_102_444_800_000
        and type(v) in (int, float) and v >= 0
        and (c is None or (type(c) is list and all(type(x) is str for x in c)))
    )


def test_one_seed_sends_the_same_messages_twice_and_another_seed_does_not(simulator, record_feed):
    first = record_feed(simulator(seed=5, max_trades=3_000).ws_url, DEFAULT_SYMBOLS)
    again = record_feed(simulator(seed=5, max_trades=3_000).ws_url, DEFAULT_SYMBOLS)
    other = record_feed(simulator(seed=6, max_trades=3_000).ws_url, DEFAULT_SYMBOLS)

    assert first.frames == again.frames
    assert first.trade_ids() == again.trade_ids()
    assert set(other.trade_ids()).isdisjoint(first.trade_ids())


def test_max_trades_are_sent_exactly_then_the_stream_closes_normally(simulator, record_feed):
    market = simulator(max_trades=2_345, faults=NO_PINGS)

    recording = record_feed(market.ws_url, DEFAULT_SYMBOLS)

    ids = recording.trade_ids()
    assert len(ids) == len(set(ids)) == 2_345 == market.stats().trades_sent
    assert set(ids) == market.sent_trade_ids()
    assert recording.close_codes == [1000] and recording.abrupt_ends == 0
    assert market.wait_finished(10) and market.stats().finished
    messages = recording.trade_messages()
    assert all(1 <= len(m) <= 100 for m in messages)
    assert all(strictly_valid(t) for m in messages for t in m)
    assert any(len({t["s"] for t in m}) > 1 for m in messages)  # messages mix symbols
    times = [t["t"] for m in messages for t in m]
    assert times == sorted(times)  # one market clock
    assert times[0] >= 1_709_906_400_000  # simulated time from 2024-03-08 09:00 New York
    assert {type(t["v"]) for m in messages for t in m} == {int}


def test_only_subscribed_symbols_are_sent(simulator, record_feed):
    market = simulator(max_trades=1_500)

    recording = record_feed(market.ws_url, ["KO", "JPM", "IBM"])  # IBM is not traded here

    assert {t["s"] for m in recording.trade_messages() for t in m} == {"KO", "JPM"}
    assert len(recording.trade_ids()) == 1_500


def test_unsubscribe_stops_a_symbol_and_bad_requests_get_error_replies(simulator):
    market = simulator(max_trades=40_000, faults=NO_PINGS)
    ws = websocket.create_connection(market.ws_url, timeout=30)
    for symbol in ("AAPL", "MSFT"):
        ws.send(json.dumps({"type": "subscribe", "symbol": symbol}))
    seen_before = {t["s"] for _ in range(20) for t in orjson.loads(ws.recv())["data"]}

    ws.send(json.dumps({"type": "unsubscribe", "symbol": "MSFT"}))
    ws.send(json.dumps({"type": "subscribe", "symbol": "../../etc"}))
    ws.send("subscribe AAPL")
    ws.send(json.dumps({"type": "order", "symbol": "AAPL"}))
    errors, symbols_after = [], []
    while True:
        message = ws.recv()
        if not message:
            break  # normal close after max_trades
        parsed = orjson.loads(message)
        if parsed["type"] == "error":
            errors.append(parsed["msg"])
        else:
            symbols_after.append({t["s"] for t in parsed["data"]})
    ws.shutdown()

    assert seen_before == {"AAPL", "MSFT"}
    assert errors == ["Invalid symbol", "Malformed message: expected JSON",
                      "Unknown message type: order"]
    # Frames already in flight may still carry MSFT; the tail of the stream does not.
    assert all(s == {"AAPL"} for s in symbols_after[-50:])
    assert market.stats().trades_sent == 40_000


@pytest.mark.parametrize("query", ["?token=wrong", "/?token=", ""])
def test_a_wrong_or_missing_token_gets_an_error_and_a_close(simulator, record_feed, query):
    market = simulator(token="s3cret", max_trades=200)

    refused = record_feed(market.ws_url + query, DEFAULT_SYMBOLS)
    accepted = record_feed(market.ws_url + "?token=s3cret", DEFAULT_SYMBOLS)

    assert refused.frames == ['{"type":"error","msg":"Invalid API key"}']
    assert refused.close_codes == [1008]
    assert len(accepted.trade_ids()) == 200
    assert market.stats().rejected_connections == 1
    assert "s3cret" not in repr(SimulatorConfig(token="s3cret")) + repr(market)


def test_ground_truth_names_the_anomalous_trades_the_client_received(
    simulator, record_feed, ground_truth_dir
):
    market = simulator(max_trades=30_000, anomaly_rate=0.05, faults=NO_PINGS)

    recording = record_feed(market.ws_url, DEFAULT_SYMBOLS)

    trades = [t for data in recording.trade_messages() for t in data]
    received = dict(zip(recording.trade_ids(), trades, strict=True))
    events, truth = read_ground_truth(ground_truth_dir)
    stats = market.stats()
    assert len(truth) == stats.anomalous_trades_sent > 300
    assert len(events) == stats.events_sent
    # Forty minutes hold mostly the small kinds; the rate over whole days is a market test.
    assert 0.01 < len(truth) / len(received) < 0.08
    by_event = {e["event_id"]: e for e in events}
    for row in truth:
        trade = received[row["trade_id"]]
        event = by_event[row["event_id"]]
        assert (trade["s"], trade["t"]) == (row["symbol"], row["trade_ts_ms"])
        assert row["kind"] == event["kind"] and row["symbol"] == event["symbol"]
        assert event["start_ts_ms"] <= trade["t"] <= event["end_ts_ms"]
        if event["kind"] == "volume_burst":
            assert trade["v"] == event["params"]["volume"]
        if event["kind"] == "wash_cluster":
            assert (trade["p"], trade["v"]) == (event["params"]["price"], event["params"]["size"])
    assert {"price_spike", "volume_burst", "wash_cluster"} <= {e["kind"] for e in events}
    assert set(events[0]) == {"event_id", "kind", "symbol", "start_ts_ms", "end_ts_ms",
                              "n_trades", "params"}


def test_every_trade_sent_arrives_once_across_forced_disconnects(simulator, record_feed):
    dropped = simulator(max_trades=6_000, faults=FaultConfig(drop_every_n_messages=7))
    steady = simulator(max_trades=6_000)

    recording = record_feed(dropped.ws_url, DEFAULT_SYMBOLS, reconnect=True)
    reference = record_feed(steady.ws_url, DEFAULT_SYMBOLS)

    ids = recording.trade_ids()
    assert recording.abrupt_ends == dropped.stats().forced_disconnects >= 8
    assert recording.connections == recording.abrupt_ends + 1
    assert len(ids) == len(set(ids)) == dropped.stats().trades_sent == 6_000
    assert set(ids) == dropped.sent_trade_ids()
    # The market clock waited for the reconnect: nothing was skipped, nothing repeated.
    assert ids == reference.trade_ids()


def test_each_fault_appears_as_configured(simulator, record_feed):
    faults = FaultConfig(malformed_every_n=5, wrong_types_every_n=7, oversized_every_n=11,
                         unknown_type_every_n=13, error_every_n=17, ping_every_n=3)
    market = simulator(max_trades=5_000, faults=faults)  # 50 full trade messages

    recording = record_feed(market.ws_url, DEFAULT_SYMBOLS)

    kinds: list[str] = []
    for frame in recording.frames:
        try:
            message = orjson.loads(frame)
        except orjson.JSONDecodeError:
            kinds.append("malformed")
            continue
        if len(frame) > 1024 * 1024:
            kinds.append("oversized")
        elif message.get("type") == "trade":
            valid = [strictly_valid(t) for t in message["data"]]
            assert all(valid) or not any(valid), "a message is either all valid or all corrupt"
            kinds.append("trade" if all(valid) else "wrong_types")
        else:
            kinds.append(message.get("type"))
    counts = {kind: kinds.count(kind) for kind in set(kinds)}
    assert counts == {"trade": 50, "malformed": 10, "wrong_types": 7, "oversized": 4,
                      "news": 3, "error": 2, "ping": 16}
    stats = market.stats()
    assert (stats.malformed_sent, stats.wrong_types_sent, stats.oversized_sent,
            stats.unknown_type_sent, stats.errors_sent, stats.pings_sent) == (10, 7, 4, 3, 2, 16)
    assert stats.trades_sent == 5_000 and stats.messages_sent == len(recording.frames)
    # A fault frame follows the n-th trade message: the 5th is followed by a malformed frame.
    fifth = [i for i, kind in enumerate(kinds) if kind == "trade"][4]
    assert kinds[fifth + 1] == "malformed"
    # Only the well-formed trade messages carry trades the simulator counted as sent ...
    assert set(recording.trade_ids()) == market.sent_trade_ids()
    # ... while an oversized frame looks like a real (huge) trade message: a collector that
    # did not enforce its size limit would land trades the simulator never sent.
    oversized = next(orjson.loads(f) for f, k in zip(recording.frames, kinds, strict=True)
                     if k == "oversized")
    assert all(strictly_valid(t) for t in oversized["data"][:100])


def test_with_speed_the_market_clock_follows_the_wall_clock(simulator, record_feed):
    start = datetime(2024, 3, 8, 10, 0, tzinfo=NEW_YORK)
    began = time.monotonic()
    market = simulator(start=start, speed=600.0, duration_seconds=900)  # 15 min in 1.5 s

    recording = record_feed(market.ws_url, DEFAULT_SYMBOLS)
    wall = time.monotonic() - began

    assert wall >= 1.5  # the feed never runs ahead of the clock
    assert market.wait_finished(10) and recording.close_codes == [1000]
    messages = recording.trade_messages()
    last = messages[-1][-1]["t"]
    assert last < start.timestamp() * 1000 + 900_000
    # One message holds at most 0.1 s of wall time: 60 simulated seconds at 600x.
    assert all(m[-1]["t"] - m[0]["t"] < 60_000 for m in messages)


def test_the_feed_skips_closed_hours_and_the_weekend_across_the_dst_change(
    simulator, record_feed
):
    start = datetime(2024, 3, 8, 19, 40, tzinfo=NEW_YORK)  # Friday, EST
    end = datetime(2024, 3, 11, 4, 20, tzinfo=NEW_YORK)  # Monday, EDT
    market = simulator(start=start, duration_seconds=end.timestamp() - start.timestamp())

    recording = record_feed(market.ws_url, DEFAULT_SYMBOLS)

    times = [t["t"] for m in recording.trade_messages() for t in m]
    local = [datetime.fromtimestamp(t / 1000, NEW_YORK) for t in times]
    assert recording.close_codes == [1000] and len(times) > 200
    assert {d.date().isoformat() for d in local} == {"2024-03-08", "2024-03-11"}
    friday = [d for d in local if d.day == 8]
    monday = [d for d in local if d.day == 11]
    assert all((19, 40) <= (d.hour, d.minute) < (20, 0) for d in friday)
    assert all((4, 0) <= (d.hour, d.minute) < (4, 20) for d in monday)
    first_monday = min(t for t, d in zip(times, local, strict=True) if d.day == 11)
    assert datetime.fromtimestamp(first_monday / 1000, UTC).hour == 8  # 04:00 EDT
    assert datetime.fromtimestamp(times[0] / 1000, UTC).hour == 0  # 19:40 EST = 00:40 UTC


def test_symbols_in_messages_are_valid_tickers(simulator, record_feed):
    market = simulator(max_trades=500, extra_symbols=("BRK.B",), symbols=("KO",))

    recording = record_feed(market.ws_url, ["KO", "BRK.B"])

    symbols = {t["s"] for m in recording.trade_messages() for t in m}
    assert symbols == {"KO", "BRK.B"}
    assert all(SYMBOL_PATTERN.fullmatch(s) for s in symbols)
