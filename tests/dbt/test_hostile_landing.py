"""Landed files a real feed and a real disk produce: genuine repeated prints, a replayed
message, and lines that do not parse. The build goes on, silver keeps every genuine trade
once, the unparseable lines are quarantined with file, line number and reason, and the
quality checkpoint counts them."""

from __future__ import annotations

import io
import os
from pathlib import Path

import orjson
import pytest
from rich.console import Console

from flows.config import load_settings
from flows.validate import run_validate
from ingest.finnhub import FinnhubCollector
from ingest.landing import iter_landed_files
from tests.dbt.warehouse_data import ny_ms, query, run_build
from tests.support.collectors import scripted_server

pytestmark = pytest.mark.slow

BAD_LINES = [
    (b'{"trade_id": "cut short by a full disk", "symbol": "AAPL", "pri', "not valid JSON"),
    (b"\x00\x00\x00\x00 a block of zeros", "not valid JSON"),
    (b'["AAPL", 189.5]', "a JSON array, not an object"),
    (b'{"trade_id": "latin-1 \xe9t\xe9"}', "not valid UTF-8"),
]


def _collect(landing: Path, frames: list[str], trades: int) -> None:
    with scripted_server(frames, subscriptions=1) as url:
        FinnhubCollector(url=url, symbols=["AAPL"], landing_dir=landing, max_trades=trades,
                         reconnect_initial_seconds=0.01, reconnect_max_seconds=0.05).run()


def test_repeated_prints_replays_and_unparseable_lines_through_dbt_and_the_checkpoint(tmp_path):
    home = tmp_path / "home"
    landing = home / "landing"
    t = ny_ms("2024-03-08", "10:00:00.000")

    def frame(*prices: float, at: int = t) -> str:
        trades = [{"s": "AAPL", "t": at, "p": p, "v": 100, "c": ["1"]} for p in prices]
        return orjson.dumps({"type": "trade", "data": trades}).decode()

    # Three genuine prints of 189.5 x 100 in one millisecond, in three messages (two of them
    # byte-identical), one 190.0 print, then a quiet minute of ordinary trades.
    live = [frame(189.5), frame(189.5, 190.0), frame(189.5)]
    live += [frame(180.0 + i / 100, at=t + 1000 * i) for i in range(1, 60)]
    _collect(landing, live, 63)
    _collect(landing, [frame(189.5, 190.0)], 2)  # the second message replayed on a reconnect
    # A landed file damaged on disk: good lines around bad ones.
    (first_file,) = [p for p in iter_landed_files(landing / "trades")
                     if p.read_bytes().count(b"\n") == 63]
    good = first_file.read_bytes().splitlines(keepends=True)
    damaged = first_file.with_name("damaged-copy.ndjson")
    body = [good[60], BAD_LINES[0][0] + b"\n", good[61], BAD_LINES[1][0] + b"\n",
            BAD_LINES[2][0] + b"\n", b"\n", BAD_LINES[3][0] + b"\n", good[62]]
    damaged.write_bytes(b"".join(body))

    outcome = run_build(home, select=None)

    assert outcome.ok, outcome.error or outcome.output[-3000:]
    assert set(outcome.statuses("test").values()) == {"pass"}
    prints = query(home, "select count(*) from silver_trades where price = 189.5")
    assert prints == [(3,)]  # the three genuine prints, the replay and the copies de-duplicated
    assert query(home, "select count(*) from silver_trades") == [(63,)]
    quarantined = query(home, """
        select line_number, parse_error, raw_line, _source_file from silver_trades_quarantine
        where quarantine_rule = 'unparseable_line' order by line_number""")
    assert [(row[0], row[3]) for row in quarantined] == [
        (2, str(damaged)), (4, str(damaged)), (5, str(damaged)), (7, str(damaged))
    ]
    for (line, reason), row in zip(BAD_LINES, quarantined, strict=True):
        assert row[1].startswith(reason)
        if reason != "not valid UTF-8":
            assert row[2] == line.decode()
    assert "\\xE9" in quarantined[3][2]  # bytes that are not UTF-8, shown as escapes
    assert query(home, "select count(*) from gold_trade_features") == [(63,)]

    settings = load_settings(environ={**os.environ, "TRADEWATCH_HOME": str(home)})
    settings = settings.model_copy(update={"symbols": ("AAPL",)})
    output = io.StringIO()
    summary = run_validate(settings, data_docs=False, console=Console(file=output, width=200))

    assert summary.success  # nothing lost or invented: bronze = silver + quarantine + copies
    (counted,) = [o for o in summary.warning_failures if o.column == "unparseable_lines"]
    assert counted.observed_value == "unparseable_lines=4"
