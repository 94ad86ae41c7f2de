"""Landing files appear whole or not at all, and a killed writer's leftovers are cleaned up."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time

import orjson
import pytest

from core.datahome import remove_stale_temp_files
from ingest.landing import (
    REJECT_LINE_LIMIT,
    REJECT_RAW_LIMIT,
    LandingError,
    PartitionedNdjsonWriter,
    bars_path,
    iter_landed_files,
    read_landed_records,
    reject_record,
    utc_date_of_ms,
    utc_iso,
    write_bars,
)
from ingest.symbols import InvalidSymbol


def _line(record: dict) -> bytes:
    return orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)


def test_utc_formats_have_milliseconds_and_z():
    assert utc_iso(1709908200.123) == "2024-03-08T14:30:00.123Z"
    assert utc_iso(1709908200.9996) == "2024-03-08T14:30:01.000Z"
    assert utc_date_of_ms(1709942399999) == "2024-03-08"
    assert utc_date_of_ms(1709942400000) == "2024-03-09"


def test_flush_lands_one_file_per_partition_and_nothing_hidden_remains(tmp_path):
    writer = PartitionedNdjsonWriter(tmp_path / "trades", "trades")
    writer.add("2024-03-08", _line({"n": 1}) + _line({"n": 2}), lines=2)
    writer.add("2024-03-09", _line({"n": 3}))
    assert writer.pending == 3

    files = writer.flush()

    assert writer.pending == 0
    assert sorted(path.parent.name for path in files) == ["date=2024-03-08", "date=2024-03-09"]
    assert sorted(record["n"] for record in read_landed_records(tmp_path / "trades")) == [1, 2, 3]
    assert [p for p in (tmp_path / "trades").rglob("*") if p.name.startswith(".")] == []
    assert writer.flush() == []


def test_two_writers_and_repeated_flushes_never_overwrite_each_other(tmp_path):
    first = PartitionedNdjsonWriter(tmp_path, "trades")
    second = PartitionedNdjsonWriter(tmp_path, "trades")
    for n in range(3):
        first.add("2024-03-08", _line({"n": n}))
        second.add("2024-03-08", _line({"n": 10 + n}))
        first.flush()
        second.flush()
    assert len(list(iter_landed_files(tmp_path))) == 6
    assert sorted(r["n"] for r in read_landed_records(tmp_path)) == [0, 1, 2, 10, 11, 12]


def test_failed_write_leaves_no_file_and_keeps_the_lines_for_a_retry(tmp_path):
    writer = PartitionedNdjsonWriter(tmp_path, "trades")
    writer.add("2024-03-08", _line({"n": 1}))
    writer.add("2024-03-08", "not bytes")  # type: ignore[arg-type]  # the write will fail

    with pytest.raises(TypeError):
        writer.flush()

    assert list(tmp_path.rglob("*.ndjson")) == []
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []  # no temporary either
    assert writer.pending == 2


def test_bad_partition_date_is_refused(tmp_path):
    writer = PartitionedNdjsonWriter(tmp_path, "trades")
    with pytest.raises(LandingError, match="invalid partition date"):
        writer.add("../../etc", b"{}\n")


def test_stale_temporary_of_a_dead_writer_is_removed_and_a_live_ones_kept(tmp_path):
    partition = tmp_path / "trades" / "date=2024-03-08"
    partition.mkdir(parents=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead_pid = int(dead.stdout)
    host = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:48]
    stale = partition / f".trades-x.ndjson.{dead_pid}@{host}.tmp"
    stale.write_bytes(b'{"trade_id": "half')  # what a kill -9 mid-write leaves
    # The same pid is dead here, but another host on a shared volume is writing these.
    elsewhere = partition / f".trades-w.ndjson.{dead_pid}@another-host.tmp"
    elsewhere.write_bytes(b'{"trade_id": "being written')
    abandoned = partition / f".trades-v.ndjson.{dead_pid}@another-host.tmp"
    abandoned.write_bytes(b'{"trade_id": "long gone')
    an_hour_ago = time.time() - 3600
    os.utime(abandoned, (an_hour_ago, an_hour_ago))
    live = partition / f".trades-y.ndjson.{os.getpid()}@{host}.tmp"
    live.write_bytes(b"{}\n")
    landed = partition / "trades-z.ndjson"
    landed.write_bytes(b'{"n": 1}\n')

    removed = remove_stale_temp_files(tmp_path / "trades")

    assert sorted(removed) == sorted([stale, abandoned])
    assert not stale.exists() and not abandoned.exists()
    assert live.exists() and elsewhere.exists()
    assert list(iter_landed_files(tmp_path / "trades")) == [landed]
    assert list(read_landed_records(tmp_path / "trades")) == [{"n": 1}]


def test_reject_record_truncates_raw_but_keeps_the_full_size():
    raw = b"x" * (REJECT_RAW_LIMIT + 1000)
    record = orjson.loads(
        reject_record(received_at="2024-03-08T14:30:00.000Z", source="finnhub",
                      reason="oversized_frame: too big", raw=raw, raw_bytes=len(raw))
    )
    assert len(record["raw"]) == REJECT_RAW_LIMIT
    assert record["raw_bytes"] == REJECT_RAW_LIMIT + 1000
    assert record["reason"] == "oversized_frame: too big"


def test_a_reject_of_control_bytes_cannot_grow_past_the_line_limit():
    raw = b"\x01\x02\x03" * 100_000  # each byte becomes six characters of JSON

    line = reject_record(received_at="2024-03-08T14:30:00.000Z", source="finnhub",
                         reason="malformed_json: no", raw=raw, raw_bytes=len(raw))

    record = orjson.loads(line)
    assert len(line) <= REJECT_LINE_LIMIT
    assert len(record["raw"]) > 10_000 and ("\x01\x02\x03" * 100_000).startswith(record["raw"])
    assert record["raw_bytes"] == 300_000


def _bar(ts: str, local: str, close: float) -> dict:
    return {"symbol": "AAPL", "interval": "5min", "bar_ts_utc": ts, "bar_local": local,
            "time_zone": "US/Eastern", "open": close, "high": close, "low": close,
            "close": close, "volume": 100.0, "source": "alphavantage",
            "fetched_at": "2024-04-01T00:00:00.000Z"}


def test_bars_rerun_replaces_the_month_file_newest_fetch_winning(tmp_path):
    write_bars(tmp_path, symbol="AAPL", interval="5min", bars=[
        _bar("2024-03-08T14:30:00Z", "2024-03-08 09:30:00", 1.0),
        _bar("2024-03-08T14:35:00Z", "2024-03-08 09:35:00", 2.0),
    ])
    files = write_bars(tmp_path, symbol="AAPL", interval="5min", bars=[
        _bar("2024-03-08T14:35:00Z", "2024-03-08 09:35:00", 20.0),
        _bar("2024-03-08T14:40:00Z", "2024-03-08 09:40:00", 3.0),
        _bar("2024-04-01T13:30:00Z", "2024-04-01 09:30:00", 4.0),
    ])

    march = bars_path(tmp_path, "5min", "AAPL", "2024-03")
    assert march in files
    closes = [orjson.loads(line)["close"] for line in march.read_bytes().splitlines()]
    assert closes == [1.0, 20.0, 3.0]
    assert len(list(iter_landed_files(tmp_path / "bars"))) == 2


def test_a_bars_file_line_that_does_not_parse_survives_the_next_merge(tmp_path):
    write_bars(tmp_path, symbol="AAPL", interval="5min",
               bars=[_bar("2024-03-08T14:30:00Z", "2024-03-08 09:30:00", 1.0)])
    march = bars_path(tmp_path, "5min", "AAPL", "2024-03")
    with march.open("ab") as handle:
        handle.write(b'{"symbol": "AAPL", "bar_ts_utc": "2024-03-08T14:3\n')  # damaged

    write_bars(tmp_path, symbol="AAPL", interval="5min",
               bars=[_bar("2024-03-08T14:35:00Z", "2024-03-08 09:35:00", 2.0)])

    lines = march.read_bytes().splitlines()
    assert [orjson.loads(line)["close"] for line in lines[:2]] == [1.0, 2.0]
    assert lines[2] == b'{"symbol": "AAPL", "bar_ts_utc": "2024-03-08T14:3'  # kept for silver


def test_bars_paths_refuse_traversal(tmp_path):
    with pytest.raises(InvalidSymbol):
        bars_path(tmp_path, "5min", "../../etc", "2024-03")
    with pytest.raises(LandingError):
        bars_path(tmp_path, "../5min", "AAPL", "2024-03")
    with pytest.raises(LandingError):
        write_bars(tmp_path, symbol="AAPL", interval="5min",
                   bars=[dict(_bar("2024-03-08T14:30:00Z", "2024-03-08 09:30:00", 1.0),
                              symbol="MSFT")])
    assert not (tmp_path / "bars").exists()
