"""The data home: files appear whole or not at all, listing skips temporaries, and the file
contracts are the ones dbt's sources read."""

from __future__ import annotations

import fnmatch
import threading
from pathlib import Path, PurePosixPath

import pytest
import yaml

from core.datahome import (
    FILE_CONTRACTS,
    DataHome,
    LocalDataHome,
    as_data_home,
    within,
    write_atomic,
)
from core.schema import logical_type

MODELS = Path(__file__).resolve().parents[2] / "dbt_project" / "models"


def dbt_sources() -> dict[str, dict]:
    """Every dbt source table of the project, by `<source>.<table>`."""
    tables = {}
    for yml in MODELS.rglob("*.yml"):
        for source in (yaml.safe_load(yml.read_text()) or {}).get("sources", []):
            for table in source["tables"]:
                tables[f"{source['name']}.{table['name']}"] = table
    return tables


@pytest.mark.parametrize("contract", [c for c in FILE_CONTRACTS if c.source],
                         ids=lambda c: c.source)
def test_each_file_contract_is_what_its_dbt_source_reads(contract):
    table = dbt_sources()[contract.source]
    meta = table["config"]["meta"]

    assert meta["landed_path"] == contract.directory
    assert meta["file_format"] == contract.file_format
    file_name = PurePosixPath(contract.pattern).name.replace("*", "x")
    assert fnmatch.fnmatch(file_name, meta["file_glob"])
    assert [c["name"] for c in table["columns"]] == list(contract.columns)
    if contract.file_format == "parquet":  # typed files; NDJSON is read as text and cast later
        assert {c["name"]: logical_type(c["data_type"]) for c in table["columns"]} == dict(
            contract.columns
        )


def test_a_record_has_exactly_the_contract_columns_in_order():
    audit = next(c for c in FILE_CONTRACTS if c.directory == "monitoring/audit")
    values = {"payload": "{}", "kind": "alert", "event_ts": "2024-03-08T14:00:00Z",
              "event_id": "e1"}

    assert list(audit.record(values)) == ["event_id", "event_ts", "kind", "payload"]
    with pytest.raises(ValueError, match=r"missing \['payload'\]"):
        audit.record({k: v for k, v in values.items() if k != "payload"})
    with pytest.raises(ValueError, match=r"unexpected \['extra'\]"):
        audit.record({**values, "extra": 1})


def test_bytes_text_and_chunks_are_written_whole_with_nothing_left_beside_them(tmp_path):
    write_atomic(tmp_path / "a" / "b.bin", b"\x00\x01")
    write_atomic(tmp_path / "a" / "c.txt", "déjà vu\n")
    write_atomic(tmp_path / "a" / "d.ndjson", (line for line in [b"1\n", bytearray(b"2\n")]))

    assert (tmp_path / "a" / "b.bin").read_bytes() == b"\x00\x01"
    assert (tmp_path / "a" / "c.txt").read_text(encoding="utf-8") == "déjà vu\n"
    assert (tmp_path / "a" / "d.ndjson").read_bytes() == b"1\n2\n"
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["b.bin", "c.txt", "d.ndjson"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "scores.parquet"
    write_atomic(target, b"old")

    def chunks():
        yield b"new, half"
        raise OSError("No space left on device")

    with pytest.raises(OSError, match="No space left"):
        write_atomic(target, chunks())

    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["scores.parquet"]


def test_a_reader_sees_each_version_whole_while_a_writer_replaces_the_file(tmp_path):
    home = LocalDataHome(tmp_path)
    versions = [bytes([n]) * 2_000_000 for n in range(1, 6)]
    home.write_atomic("reports/page.html", versions[0])
    seen: set[bytes] = set()
    done = threading.Event()

    def read_until_done() -> None:
        while not done.is_set():
            for name in home.list("reports"):
                content = home.read(name)
                assert content in versions, f"a partial file of {len(content)} bytes"
                seen.add(content[:1])

    reader = threading.Thread(target=read_until_done)
    reader.start()
    try:
        for _ in range(3):
            for version in versions:
                home.write_atomic("reports/page.html", version)
    finally:
        done.set()
        reader.join()
    assert seen  # the reader did read


def test_listing_skips_hidden_names_and_gives_paths_relative_to_the_home(tmp_path):
    home = LocalDataHome(tmp_path)
    home.write_atomic("scores/date=2024-03-08/scores-b.parquet", b"b")
    home.write_atomic("scores/date=2024-03-07/scores-a.parquet", b"a")
    (tmp_path / "scores" / "date=2024-03-08" / ".scores-c.parquet.1.tmp").write_bytes(b"c")
    (tmp_path / "scores" / ".hidden").mkdir()
    (tmp_path / "scores" / ".hidden" / "scores-d.parquet").write_bytes(b"d")

    listed = home.list("scores", "*/scores-*.parquet")

    assert listed == ["scores/date=2024-03-07/scores-a.parquet",
                      "scores/date=2024-03-08/scores-b.parquet"]
    assert home.read(listed[0]) == b"a"
    assert home.exists(listed[1]) and not home.exists("scores/date=2024-03-09/x.parquet")
    assert home.list("monitoring/drift") == []


def test_paths_outside_the_home_are_refused(tmp_path):
    home = LocalDataHome(tmp_path / "home")
    for outside in ("../secrets", "/etc/passwd", "reports/../../x"):
        with pytest.raises(ValueError, match="not a path inside the data home"):
            home.write_atomic(outside, b"x")
    assert not (tmp_path / "secrets").exists()


def test_a_local_folder_is_a_data_home(tmp_path):
    assert isinstance(as_data_home(tmp_path), DataHome)
    assert as_data_home(str(tmp_path)).list() == []
    home = LocalDataHome(tmp_path)
    assert as_data_home(home) is home


def test_a_file_is_removed_and_removing_a_missing_one_is_fine(tmp_path):
    home = LocalDataHome(tmp_path)
    home.write_atomic("labels/decisions/decisions-1.ndjson", b"{}\n")
    home.write_atomic("labels/decisions/decisions-2.ndjson", b"{}\n")
    store = within(home, "labels/decisions")

    store.remove("decisions-1.ndjson")
    store.remove("decisions-1.ndjson")  # gone already: not an error
    home.remove("labels/never-written.ndjson")

    assert home.list("labels/decisions") == ["labels/decisions/decisions-2.ndjson"]
    with pytest.raises(ValueError, match="not a path inside the data home"):
        home.remove("../outside.ndjson")
