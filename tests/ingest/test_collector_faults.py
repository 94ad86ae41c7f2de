"""The Finnhub collector when the world misbehaves: a silent connection, a full disk, hostile
frames, huge condition lists, repeated prints. Nothing received is lost, one alert per fault."""

from __future__ import annotations

import gc
import threading
import time
import tracemalloc

import orjson
import pytest

from core.alerts import AlertKind
from ingest.finnhub import FinnhubCollector
from ingest.landing import REJECT_LINE_LIMIT, iter_landed_files
from ingest.trade_id import message_key, trade_id
from tests.ingest.hostile_server import OP_PING, Frames, Silent, hostile_server
from tests.support.collectors import landed_rejects, landed_trades, scripted_server, wait_for
from tests.support.disk_faults import small_disk

T = 1_709_908_200_000
FAST = {"reconnect_initial_seconds": 0.01, "reconnect_max_seconds": 0.05}


class Alerts(list):
    """What the collector hands to flows.alerts.AlertSender.send."""

    def __call__(self, **alert) -> None:
        self.append(alert)

    def kinds(self) -> list[str]:
        return [alert["kind"] for alert in self]


def trade_frame(*trades: dict) -> str:
    return orjson.dumps({"type": "trade", "data": list(trades)}).decode()


def print_(symbol: str = "AAPL", t: int = T, p: float = 189.5, v: float = 100.0) -> dict:
    return {"s": symbol, "t": t, "p": p, "v": v, "c": ["1"]}


def test_a_silent_connection_is_pinged_dropped_and_reconnected_with_one_alert(tmp_path):
    frames = [trade_frame(print_(t=T + i), print_(t=T + i, v=200.0)) for i in range(5)]
    alerts = Alerts()
    # Two silent connections in a row are one silent spell: one alert.
    with hostile_server([Silent(), Silent(), Frames(frames)]) as server:
        collector = FinnhubCollector(
            url=server.url, symbols=["AAPL"], landing_dir=tmp_path / "landing",
            ping_interval_seconds=0.2, read_idle_timeout_seconds=0.8, max_trades=10,
            notify=alerts, **FAST,
        )
        stats = collector.run()
        half_open = server.connections[0]

    assert OP_PING in half_open.opcodes()  # the collector asked before giving up
    assert stats.silent_disconnects == 2 and stats.reconnects == 2
    assert stats.landed == 10 == len({r["trade_id"] for r in landed_trades(tmp_path / "landing")})
    assert alerts.kinds() == [AlertKind.FEED_SILENT]
    assert "not even an answer to a ping" in alerts[0]["text"]


def test_a_quiet_but_healthy_connection_is_kept(tmp_path):
    alerts = Alerts()
    # The websockets server answers pings, as Finnhub does while its markets are closed.
    with scripted_server([], subscriptions=1) as url:
        stats = FinnhubCollector(
            url=url, symbols=["AAPL"], landing_dir=tmp_path / "landing",
            ping_interval_seconds=0.2, read_idle_timeout_seconds=0.6, duration_seconds=2.0,
            notify=alerts, **FAST,
        ).run()

    assert stats.pings_sent >= 3
    assert stats.silent_disconnects == 0 and stats.reconnects == 0
    assert alerts == []


def test_a_full_disk_stops_reading_keeps_every_trade_and_alerts_once(simulator, monkeypatch):
    market = simulator(seed=17, max_trades=30_000)
    alerts = Alerts()
    with small_disk(monkeypatch, size="32m") as disk:
        print(f"full disk: {'a real tmpfs' if disk.real else 'injected ENOSPC'}")
        landing = disk.path / "landing"
        collector = FinnhubCollector(
            url=market.ws_url, symbols=("AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "TSLA",
                                        "JPM", "XOM", "KO"),
            landing_dir=landing, flush_trades=1_000, flush_seconds=0.1,
            landing_retry_initial_seconds=0.05, landing_retry_max_seconds=0.2,
            notify=alerts, **FAST,
        )
        runner = threading.Thread(target=collector.run)
        runner.start()
        try:
            wait_for(lambda: collector.stats.landed >= 3_000, what="the first files")
            disk.fill()
            wait_for(lambda: collector.stats.landing_stalls == 1, what="the landing to fail")
            wait_for(lambda: collector.stats.landing_retries >= 4, what="retries")
            held = collector.stats.accepted
            time.sleep(0.5)
            assert collector.stats.accepted == held  # back-pressure: nothing more was read
            assert collector.stats.accepted > collector.stats.landed  # still in memory
            disk.free()
            assert market.wait_finished(timeout=120)
            wait_for(lambda: collector.stats.landed == 30_000, what="everything to land")
        finally:
            collector.stop()
            runner.join(timeout=60)
        assert not runner.is_alive()
        stats = collector.stats
        ids = [r["trade_id"] for r in landed_trades(landing)]

    assert len(ids) == len(set(ids)) == 30_000
    assert set(ids) == market.sent_trade_ids()  # nothing the collector received was lost
    assert stats.landing_stalls == 1 and stats.landing_stalled_seconds > 0
    assert alerts.kinds() == [AlertKind.LANDING_FAILED]
    assert alerts[0]["severity"] == "critical"
    assert "No space left on device" in alerts[0]["text"]


def test_a_failed_upload_to_a_volume_loses_no_trade_and_leaves_no_partial_file(simulator):
    """The collector landing in a Unity Catalog volume through the Files API (the real
    databricks-sdk client, a loopback fake server): a dropped connection (the SDK resends) then
    a 500 stalls the landing; the collector holds the trades, retries, and lands each once."""
    from core.datahome import within
    from core.volume import VolumeDataHome
    from tests.support.files_api import FakeFilesApi

    volume = "/Volumes/surveillance/prod/tradewatch"
    market = simulator(seed=23, max_trades=3_000)
    alerts = Alerts()
    with FakeFilesApi(token="dapi-fake-collector", volumes=[volume]) as api:
        home = VolumeDataHome(volume, host=api.url,
                              environ={"DATABRICKS_TOKEN": "dapi-fake-collector"})
        landing = within(home, "landing")
        collector = FinnhubCollector(
            url=market.ws_url, symbols=("AAPL", "MSFT", "NVDA"), landing_dir=landing,
            flush_trades=500, flush_seconds=0.1, landing_retry_initial_seconds=0.05,
            landing_retry_max_seconds=0.2, notify=alerts, **FAST,
        )
        api.fail_next_uploads("drop", 500)
        runner = threading.Thread(target=collector.run)
        runner.start()
        try:
            assert market.wait_finished(timeout=120)
            wait_for(lambda: collector.stats.landed == 3_000, what="everything to land")
        finally:
            collector.stop()
            runner.join(timeout=60)
        assert not runner.is_alive()
        stats = collector.stats
        names = landing.list("trades", "date=*/*.ndjson")
        ids = [orjson.loads(line)["trade_id"] for name in names
               for line in landing.read(name).splitlines() if line]
        statuses = [status for _, status in api.uploads()]

    assert statuses[:2] == [0, 500] and set(statuses[2:]) == {204}
    assert len(ids) == len(set(ids)) == 3_000
    assert set(ids) == market.sent_trade_ids()  # nothing the collector received was lost
    assert stats.landing_stalls == 1
    assert alerts.kinds() == [AlertKind.LANDING_FAILED]
    assert "InternalError" in alerts[0]["text"] and "dapi-fake-collector" not in alerts[0]["text"]


def test_a_landing_failure_that_outlasts_the_run_fails_it_with_the_count(
    simulator, monkeypatch
):
    market = simulator(seed=4, max_trades=2_000)
    alerts = Alerts()
    with small_disk(monkeypatch, size="8m") as disk:
        disk.fill()
        collector = FinnhubCollector(
            url=market.ws_url, symbols=("AAPL", "MSFT"), landing_dir=disk.path / "landing",
            flush_trades=500, landing_retry_initial_seconds=0.05,
            # A trade count, not a duration, ends the run: on a loaded machine one second
            # may pass before the first trade arrives, and then there is nothing to lose.
            landing_retry_max_seconds=0.1, landing_grace_seconds=0.5, max_trades=50,
            notify=alerts, **FAST,
        )
        with pytest.raises(Exception, match=r"trades received in this run were not landed"):
            collector.run()

    stats = collector.stats
    assert stats.accepted > 0 and stats.landed == 0
    assert alerts.kinds() == [AlertKind.LANDING_FAILED]


def test_rejects_are_bounded_in_bytes_per_line_and_per_day_and_the_rest_counted(tmp_path):
    # Control bytes grow six-fold when a reject keeps them as JSON text.
    hostile = ["\x01" * 200_000 for _ in range(30)]
    landing = tmp_path / "landing"
    budget = 1024 * 1024

    def run() -> FinnhubCollector:
        with scripted_server([*hostile, trade_frame(print_())], subscriptions=1) as url:
            collector = FinnhubCollector(
                url=url, symbols=["AAPL"], landing_dir=landing, max_trades=1,
                max_reject_bytes_per_day=budget, **FAST,
            )
            collector.run()
        return collector

    first = run().stats

    files = list(iter_landed_files(landing / "rejects"))
    sizes = [len(line) for path in files for line in path.read_bytes().splitlines(True)]
    assert max(sizes) <= REJECT_LINE_LIMIT
    summary = [r for r in landed_rejects(landing) if r["reason"].startswith("rejects_dropped")]
    assert first.rejected == 30 and 0 < first.rejects_dropped < 30
    assert sum(sizes) - len(orjson.dumps(summary[0])) - 1 <= budget
    (line,) = summary
    assert line["reason"].startswith(f"rejects_dropped: {first.rejects_dropped} reject(s)")
    # The day's budget holds across runs: a second run keeps none of its rejects.
    second = run().stats
    assert second.rejects_dropped == second.rejected == 30
    assert len(landed_trades(landing)) == 2


def test_huge_condition_lists_are_landed_but_not_cached(tmp_path):
    frames = [
        trade_frame(*({"s": "AAPL", "t": T + m * 5 + k, "p": 10.0, "v": 1.0,
                       "c": [f"{m}.{k}.{n}" for n in range(4000)]} for k in range(5)))
        for m in range(30)
    ]
    tracemalloc.start()
    try:
        with scripted_server(frames, subscriptions=1) as url:
            collector = FinnhubCollector(url=url, symbols=["AAPL"], landing_dir=tmp_path,
                                         max_trades=150, **FAST)
            stats = collector.run()
        gc.collect()
        retained, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert stats.landed == 150 and stats.uncached_conditions == 150
    assert retained < 4 * 1024 * 1024  # 150 cached lists would hold about 20 MiB
    records = landed_trades(tmp_path)
    assert all(len(r["conditions"]) == 4000 for r in records)


def test_the_same_print_in_two_messages_is_two_trades_and_a_replayed_message_one(tmp_path):
    x, y = print_(), print_(p=190.0)
    first, second, third = trade_frame(x), trade_frame(x, y), trade_frame(x)  # third == first
    landing = tmp_path / "landing"

    def collect(frames: list[str], trades: int) -> list[str]:
        before = {r["trade_id"] for r in landed_trades(landing)}
        with scripted_server(frames, subscriptions=1) as url:
            FinnhubCollector(url=url, symbols=["AAPL"], landing_dir=landing,
                             max_trades=trades, **FAST).run()
        return [r["trade_id"] for r in landed_trades(landing) if r["trade_id"] not in before]

    live = collect([first, second, third], 4)
    replayed = collect([first], 1)  # the first message again, on a new connection

    # Four genuine prints of x or y: four ids, although three are identical in every field.
    assert len(set(live)) == 4
    assert set(live) == {
        trade_id(message_key(first.encode(), 0), 0),
        trade_id(message_key(second.encode(), 0), 0),
        trade_id(message_key(second.encode(), 0), 1),
        trade_id(message_key(third.encode(), 1), 0),  # the second identical message
    }
    # The replay lands again, with the id it had (so nothing new): silver keeps one copy.
    assert replayed == []
    all_ids = [r["trade_id"] for r in landed_trades(landing)]
    assert len(all_ids) == 5 and len(set(all_ids)) == 4
