"""The data home in a Unity Catalog volume (core.volume), driven through the real databricks-sdk
client against a loopback fake of the Files API (tests/support/files_api.py)."""

from __future__ import annotations

import errno
import logging
import threading

import pytest

from core.datahome import DataHome, within
from core.volume import MissingVolumeSetting, VolumeDataHome, VolumeError, default_volume
from tests.support.files_api import FILES, FakeFilesApi

TOKEN = "dapi-fake-secret-4f3c2b1a"
VOLUME = "/Volumes/surveillance/prod/tradewatch"


@pytest.fixture
def api():
    with FakeFilesApi(token=TOKEN, volumes=[VOLUME], page_size=2) as fake:
        yield fake


def _home(api: FakeFilesApi, token: str = TOKEN, volume: str = VOLUME, **options) -> VolumeDataHome:
    options.setdefault("retry_timeout_seconds", 20)
    return VolumeDataHome(volume, host=api.url, environ={"DATABRICKS_TOKEN": token}, **options)


def test_a_file_uploads_in_one_put_under_its_final_name_and_reads_back_whole(api):
    home = _home(api)
    lines = [b'{"run_id": "r1", "success": true}\n', b'{"run_id": "r1", "success": false}\n']

    where = home.write_atomic("monitoring/quality/quality-r1.ndjson", lines)

    assert isinstance(home, DataHome)
    assert str(where) == f"{VOLUME}/monitoring/quality/quality-r1.ndjson"
    assert api.files[str(where)] == b"".join(lines)
    assert home.read("monitoring/quality/quality-r1.ndjson") == b"".join(lines)
    assert home.exists("monitoring/quality/quality-r1.ndjson")
    assert not home.exists("monitoring/quality/quality-r2.ndjson")
    # One upload, to the real name: no temporary that a reader could catch, no multipart.
    assert [path for path, _ in api.uploads()] == [
        f"{FILES}{VOLUME}/monitoring/quality/quality-r1.ndjson"]
    assert not [method for method, _, _ in api.requests if method == "POST"]
    with pytest.raises(FileNotFoundError, match="no file"):
        home.read("monitoring/quality/quality-r2.ndjson")


def test_listing_sees_what_dbt_read_files_sees_across_pages_and_partitions(api):
    home = _home(api)
    for day in ("2024-03-07", "2024-03-08"):
        for part in range(3):  # 3 files a folder: more than the fake's 2-entry page
            home.write_atomic(f"landing/trades/date={day}/trades-{part}.ndjson", b"{}\n")
    # What other writers leave beside them: hidden and underscore names read_files skips.
    api.put(f"{VOLUME}/landing/trades/date=2024-03-08/.trades-9.ndjson.1a2b.tmp", b"{")
    api.put(f"{VOLUME}/landing/trades/.staging/date=2024-03-09/trades-0.ndjson", b"{}\n")
    api.put(f"{VOLUME}/landing/trades/date=2024-03-08/notes.txt", b"hello")

    landed = home.list("landing/trades", "date=*/*.ndjson")

    assert landed == [
        f"landing/trades/date={day}/trades-{part}.ndjson"
        for day in ("2024-03-07", "2024-03-08") for part in range(3)
    ]
    assert home.list("landing", "**/*.ndjson") == landed
    assert home.list("landing/bars") == []  # a folder not made yet is empty, not an error
    # A sub-home lists relative to itself, as the quality and drift readers expect.
    assert within(home, "landing/trades").list("date=2024-03-07") == [
        f"date=2024-03-07/trades-{part}.ndjson" for part in range(3)]
    listed = f"/api/2.0/fs/directories{VOLUME}/landing/trades/date%3D2024-03-08"
    pages = [path for method, path, _ in api.requests if method == "GET" and path == listed]
    assert len(pages) >= 2  # the SDK followed next_page_token


def test_an_upload_in_flight_is_not_visible_until_its_last_byte_arrives(api):
    writer, reader = _home(api), _home(api)
    body = b"x" * 3_000_000 + b"\n"
    api.fail_next_uploads("hold")
    done: list[object] = []
    upload = threading.Thread(
        target=lambda: done.append(writer.write_atomic("scores/date=2024-03-08/s-1.parquet", body)))
    upload.start()
    try:
        assert api.upload_started.wait(20), "the upload never started"
        assert reader.list("scores", "date=*/*.parquet") == []
        assert not reader.exists("scores/date=2024-03-08/s-1.parquet")
    finally:
        api.release_upload.set()
        upload.join(30)

    assert done and reader.read("scores/date=2024-03-08/s-1.parquet") == body


def test_a_failed_upload_leaves_no_file_raises_one_line_without_the_token_and_can_be_retried(
    api, caplog,
):
    home = _home(api)
    body = b'{"trade_id": "t1"}\n' * 150_000  # ~2.8 MB: the drop cuts the body
    api.fail_next_uploads("drop", 500)
    caplog.set_level(logging.DEBUG)

    with pytest.raises(VolumeError) as failed:
        home.write_atomic("landing/trades/date=2024-03-08/trades-1.ndjson", body)

    message = str(failed.value)
    assert failed.value.errno == errno.EIO  # a server error: worth retrying
    assert "\n" not in message and TOKEN not in message
    assert f"{VOLUME}/landing/trades/date=2024-03-08/trades-1.ndjson" in message
    assert "InternalError" in message
    assert TOKEN not in caplog.text
    # The SDK resent the body after the dropped connection (rewinding it); neither attempt
    # left anything a reader could see.
    assert [status for _, status in api.uploads()] == [0, 500]
    assert api.files.get(f"{VOLUME}/landing/trades/date=2024-03-08/trades-1.ndjson") is None
    assert home.list("landing/trades", "date=*/*.ndjson") == []

    home.write_atomic("landing/trades/date=2024-03-08/trades-1.ndjson", body)  # the caller's retry

    assert home.read("landing/trades/date=2024-03-08/trades-1.ndjson") == body


def test_a_wrong_token_or_a_missing_volume_is_one_line_that_retrying_cannot_fix(api):
    with pytest.raises(VolumeError) as denied:
        _home(api, token="dapi-wrong-token").write_atomic("a/b.ndjson", b"{}\n")
    with pytest.raises(VolumeError) as missing:
        _home(api, volume="/Volumes/surveillance/prod/absent").write_atomic("a/b.ndjson", b"{}\n")

    assert denied.value.errno == errno.EACCES
    assert "Unauthenticated" in str(denied.value) and "dapi-wrong-token" not in str(denied.value)
    assert missing.value.errno == errno.ENOENT
    assert "tradewatch_setup" in str(missing.value)
    assert "\n" not in str(denied.value) + str(missing.value)


def test_an_unreachable_workspace_fails_within_the_retry_budget_as_a_timeout():
    home = VolumeDataHome(VOLUME, host="http://127.0.0.1:9", environ={"DATABRICKS_TOKEN": TOKEN},
                          retry_timeout_seconds=1)

    with pytest.raises(VolumeError) as failed:
        home.write_atomic("a/b.ndjson", b"{}\n")

    assert failed.value.errno == errno.ETIMEDOUT  # the collector retries this with backoff
    assert "127.0.0.1:9" in str(failed.value) and TOKEN not in str(failed.value)


def test_settings_come_from_the_environment_like_the_dbt_macro():
    env = {"DATABRICKS_HOST": "adb-1.azuredatabricks.net", "DATABRICKS_TOKEN": TOKEN,
           "DATABRICKS_CATALOG": "surveillance", "DATABRICKS_SCHEMA": "prod"}

    home = VolumeDataHome.from_env(env)

    assert home.volume == "/Volumes/surveillance/prod/tradewatch" == default_volume(env)
    assert default_volume({**env, "TRADEWATCH_VOLUME": "/Volumes/c/s/v/tw"}) == "/Volumes/c/s/v/tw"
    assert TOKEN not in repr(home)
    with pytest.raises(MissingVolumeSetting, match="DATABRICKS_HOST, DATABRICKS_TOKEN"):
        VolumeDataHome.from_env({})
    with pytest.raises(MissingVolumeSetting, match="not a volume path"):
        VolumeDataHome("/mnt/data")
    with pytest.raises(ValueError, match="not a path inside"):
        home.remote("../other")


def test_the_landing_writer_keeps_every_trade_through_a_failed_upload_and_lands_each_once(api):
    from ingest.landing import PartitionedNdjsonWriter

    home = _home(api)
    writer = PartitionedNdjsonWriter(within(home, "landing/trades"), "trades")
    lines = [b'{"trade_id": "t%06d"}\n' % n for n in range(120_000)]  # ~2.6 MB in one partition
    writer.add("2024-03-08", b"".join(lines), lines=len(lines))
    api.fail_next_uploads("drop", 500)  # (a 503 the SDK itself retries)

    with pytest.raises(OSError) as failed:
        writer.flush()

    # EIO is one of the errors the Finnhub collector retries with back-pressure (a full disk's
    # path): it keeps the trades in memory and stops reading the feed until a flush succeeds.
    assert failed.value.errno == errno.EIO
    assert writer.pending == len(lines)
    assert home.list("landing/trades", "date=*/*.ndjson") == []

    landed = writer.flush()

    assert writer.pending == 0 and len(landed) == 1
    names = home.list("landing/trades", "date=*/*.ndjson")
    assert len(names) == 1 and str(landed[0]).endswith(names[0])
    assert home.read(names[0]).splitlines(keepends=True) == lines


def test_a_file_is_removed_with_one_delete_and_removing_it_again_is_fine(api):
    home = _home(api)
    home.write_atomic("labels/decisions/decisions-1.ndjson", b"{}\n")
    home.write_atomic("labels/decisions/decisions-2.ndjson", b"{}\n")
    store = within(home, "labels/decisions")

    store.remove("decisions-1.ndjson")
    store.remove("decisions-1.ndjson")  # gone already: not an error

    assert home.list("labels/decisions") == ["labels/decisions/decisions-2.ndjson"]
    assert not store.exists("decisions-1.ndjson")
    deletes = [(path, status) for method, path, status in api.requests if method == "DELETE"]
    assert deletes == [(f"{FILES}{VOLUME}/labels/decisions/decisions-1.ndjson", 204),
                       (f"{FILES}{VOLUME}/labels/decisions/decisions-1.ndjson", 404)]


def test_a_refused_removal_is_one_line_without_the_token_and_keeps_the_file(api):
    _home(api).write_atomic("labels/decisions/decisions-1.ndjson", b"{}\n")

    with pytest.raises(VolumeError) as refused:
        _home(api, token="dapi-wrong-token").remove("labels/decisions/decisions-1.ndjson")

    message = str(refused.value)
    assert refused.value.errno == errno.EACCES
    assert f"cannot remove {VOLUME}/labels/decisions/decisions-1.ndjson" in message
    assert "\n" not in message and "dapi-wrong-token" not in message
    assert _home(api).exists("labels/decisions/decisions-1.ndjson")
