"""`run_drift` on a small real warehouse: windows in trade time, report files, the decision.

The warehouse holds one simulated hour (served on 127.0.0.1, landed by the real collector)
and the very same trades replayed a week later: an identical market. dbt builds it once, in a
child process; each test gets its own data home pointing at that warehouse, so reports, audit
logs and alerts never leak between tests.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import orjson
import pytest
from rich.console import Console

from core.datahome import write_atomic
from flows.config import Settings, load_settings
from flows.drift import (
    DRIFT_CATEGORICAL_FEATURES,
    DRIFT_NUMERIC_FEATURES,
    ChampionUnavailable,
    DriftWindowError,
    NotEnoughHistory,
    run_drift,
)
from ingest.landing import read_landed_records, utc_date_of_ms
from ingest.simulator import SimulatorConfig
from ingest.trade_id import message_key, trade_id
from ml.audit import AuditLog
from ml.retraining import BlockedBy, RetrainReason
from tests.flows.model_support import register_champion, tamper_with
from tests.support.market import land_market
from tests.support.webhook import PROXY_VARIABLES, Webhook, webhook_server

REPO_ROOT = Path(__file__).resolve().parents[2]
SYMBOLS = ("AAPL", "MSFT", "NVDA")
HOUR_START = datetime(2024, 3, 12, 11, 0, tzinfo=ZoneInfo("America/New_York"))
WEEK = timedelta(days=7)
DRIFT_FIELDS = {
    "run_id", "run_ts", "feature", "kind", "statistic_name", "statistic", "threshold",
    "drifted", "reference_rows", "current_rows", "reference_start", "reference_end",
    "current_start", "current_end",
}
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
# Anything a browser would fetch: src/href attributes and CSS url() pointing off the page.
EXTERNAL_ASSET = re.compile(
    r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//|url\(\s*["']?(?:https?:)?//"""
)

_BUILD = """
from flows.config import load_settings
from flows.transform import run_transform
run_transform(load_settings())
"""


@dataclass(frozen=True)
class ReplayedMarket:
    """A built warehouse: one simulated hour, then the same trades a week later."""

    warehouse: Path
    first_hour_ms: tuple[int, int]  # oldest and newest trade of the simulated hour
    replay_ms: tuple[int, int]  # the same, a week later
    trades_per_copy: int


def _land_simulated_hour(home: Path) -> list[dict]:
    config = SimulatorConfig(
        seed=7, symbols=SYMBOLS, start=HOUR_START, duration_seconds=3600.0,
        trades_per_second=1.0, anomaly_rate=0.02,
    )
    sent = land_market(home, config, SYMBOLS)
    records = list(read_landed_records(home / "landing" / "trades"))
    assert len(records) == sent > 0
    return records


def _land_replay(home: Path, records: list[dict], shift: timedelta) -> None:
    """The same trades `shift` later, in the landing contract (new ids, new partitions)."""
    shift_ms = int(shift.total_seconds() * 1000)
    by_date: dict[str, list[bytes]] = {}
    for position, record in enumerate(records):
        ts = record["trade_ts_ms"] + shift_ms
        received = datetime.fromisoformat(record["received_at"].replace("Z", "+00:00")) + shift
        moved = {
            **record,
            "trade_id": trade_id(
                message_key(f"{record['symbol']}|{ts}|{record['price']!r}".encode(), 0),
                position,
            ),
            "trade_ts_ms": ts,
            "received_at": received.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        }
        by_date.setdefault(utc_date_of_ms(ts), []).append(orjson.dumps(moved) + b"\n")
    for date, lines in by_date.items():
        write_atomic(
            home / "landing" / "trades" / f"date={date}" / "replay-a-week-later.ndjson", lines
        )


@pytest.fixture(scope="module")
def replayed_market(tmp_path_factory: pytest.TempPathFactory) -> ReplayedMarket:
    home = tmp_path_factory.mktemp("replayed_market")
    records = _land_simulated_hour(home)
    _land_replay(home, records, WEEK)
    # dbt runs in a child process, as the CLI does, so this one opens the file read-only.
    built = subprocess.run(
        [sys.executable, "-c", _BUILD],
        env={**os.environ, "TRADEWATCH_HOME": str(home), "PYTHONPATH": str(REPO_ROOT)},
        cwd=home, capture_output=True, text=True, check=False,
    )
    assert built.returncode == 0, (built.stdout + built.stderr)[-3000:]
    first = [r["trade_ts_ms"] for r in records]
    week_ms = int(WEEK.total_seconds() * 1000)
    return ReplayedMarket(
        home / "warehouse.duckdb",
        (min(first), max(first)),
        (min(first) + week_ms, max(first) + week_ms),
        len(records),
    )


@pytest.fixture
def settings(replayed_market: ReplayedMarket, tmp_path: Path) -> Settings:
    """A data home of this test's own, on the shared warehouse."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "warehouse.duckdb").symlink_to(replayed_market.warehouse)
    return load_settings(environ={**os.environ, "TRADEWATCH_HOME": str(home)})


@pytest.fixture
def webhook(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> Iterator[Webhook]:
    """A Slack-like endpoint on 127.0.0.1, configured through $TRADEWATCH_WEBHOOK_URL."""
    with webhook_server("drift-flow") as hook:
        for name in PROXY_VARIABLES:
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv(settings.alerts.webhook_url_env, hook.url)
        yield hook


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def _audit(settings: Settings) -> AuditLog:
    return AuditLog(settings.paths.monitoring / "audit")


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow
def test_the_same_market_a_week_later_is_no_drift_and_starts_no_retraining(
    settings, replayed_market
):
    console = Console(record=True, width=220)

    outcome = run_drift(settings, current_hours=1.5, reference_hours=7 * 24, console=console)

    report = outcome.report
    assert [f.feature for f in report.input_features] == [
        *DRIFT_NUMERIC_FEATURES, *DRIFT_CATEGORICAL_FEATURES
    ]
    assert report.drifted_features == ()
    assert {f.reference_rows for f in report.input_features} == {replayed_market.trades_per_copy}
    assert {f.current_rows for f in report.input_features} == {replayed_market.trades_per_copy}
    # Trade time: the current window ends just after the newest trade, the reference is the
    # week before it, and the one simulated hour is all it holds.
    newest = _at(replayed_market.replay_ms[1])
    assert report.current_window.end == newest + timedelta(milliseconds=1)
    assert report.current_window.start == report.current_window.end - timedelta(hours=1.5)
    assert report.reference_window.end == report.current_window.start
    assert report.reference_window.start == report.current_window.start - WEEK
    assert outcome.reference_basis == "the 7 days before the current window"
    assert outcome.champion_version is None

    decision = outcome.decision
    assert not decision.retrain and decision.reasons == () and decision.blocked_by == ()
    audit = _audit(settings)
    assert [r.payload["detail"] for r in audit.records("retrain_skipped")] == [
        "no reason to retrain"
    ]
    assert list(audit.records("retrain_triggered")) == []
    assert list(audit.records("alert")) == []  # nothing drifted, nothing to alert

    printed = console.export_text()
    for feature in report.features:
        assert re.search(rf"│ {feature.feature} +│ {feature.kind} +│", printed), feature.feature
    assert "retraining: no — no reason to retrain" in printed


@pytest.mark.slow
def test_the_report_files_follow_the_drift_contract(settings, replayed_market):
    outcome = run_drift(settings, current_hours=1.5, reference_hours=7 * 24, console=Console())

    assert outcome.ndjson == settings.paths.monitoring / "drift" / (
        f"drift-{outcome.report.run_id}.ndjson"
    )
    rows = _rows(outcome.ndjson)
    assert [row["feature"] for row in rows] == [f.feature for f in outcome.report.features]
    for row in rows:
        assert set(row) == DRIFT_FIELDS
        assert row["run_id"] == outcome.report.run_id
        for name in ("run_ts", "reference_start", "reference_end", "current_start",
                     "current_end"):
            assert ISO_UTC.match(row[name]), (name, row[name])
        expected = "psi" if row["kind"] == "numeric" else "js_distance"
        assert (row["statistic_name"], row["drifted"]) == (expected, False)
    # dbt's monitoring model reads the file as JSON lines with the contract's types.
    con = duckdb.connect()
    typed = con.execute(
        "select count(*), count(distinct feature), bool_or(drifted), min(reference_rows) "
        f"from read_json_auto('{outcome.ndjson}', format='newline_delimited')"
    ).fetchone()
    assert typed == (len(rows), len(rows), False, replayed_market.trades_per_copy)


@pytest.mark.slow
def test_drift_is_reported_in_an_html_page_that_needs_no_network(settings):
    # The newest half hour against the week before it: the reference then holds the first
    # half of a copy, whose one-hour volatility windows are not yet full, so they differ.
    outcome = run_drift(settings, current_hours=0.5, reference_hours=7 * 24, console=Console())

    drifted = outcome.report.drifted_features
    assert drifted
    page = outcome.html.read_text()
    assert outcome.html.parent == settings.paths.reports / "drift"
    assert not EXTERNAL_ASSET.search(page)
    # One plot per drifted feature, each embedded in the page itself.
    assert page.count('src="data:image/png;base64,') == len(
        [f for f in drifted if f.histogram is not None]
    ) > 0
    for feature in outcome.report.features:
        assert feature.feature in page


@pytest.mark.slow
def test_an_empty_reference_window_is_not_enough_history(settings, replayed_market):
    with pytest.raises(NotEnoughHistory, match="no trades in the reference window"):
        run_drift(settings, current_hours=1.5, reference_hours=24, console=Console())

    # Nothing half-done: no report, no decision.
    assert not (settings.paths.monitoring / "drift").exists()
    assert not (settings.paths.reports / "drift").exists()
    assert list(_audit(settings).records()) == []


@pytest.mark.slow
def test_a_window_too_large_to_hold_is_sampled_and_says_so(settings, replayed_market,
                                                          monkeypatch):
    monkeypatch.setattr("flows.drift.MAX_WINDOW_ROWS", 2_000)

    outcome = run_drift(settings, current_hours=1.5, reference_hours=7 * 24, console=Console())

    assert {(f.reference_rows, f.current_rows) for f in outcome.report.input_features} == {
        (2_000, 2_000)
    }
    total = replayed_market.trades_per_copy
    assert f"reference window sampled: 2,000 of {total:,} trades" in outcome.report.notes
    assert f"current window sampled: 2,000 of {total:,} trades" in outcome.report.notes
    # A uniform sample of the same market is still the same market.
    assert outcome.report.drifted_features == ()


@pytest.mark.parametrize(
    ("hours", "name"),
    [({"current_hours": 0}, "current_hours"), ({"reference_hours": -1.0}, "reference_hours"),
     ({"current_hours": float("nan")}, "current_hours")],
)
def test_a_window_of_no_length_is_refused(tmp_path, hours, name):
    settings = load_settings(environ={**os.environ, "TRADEWATCH_HOME": str(tmp_path)})

    with pytest.raises(DriftWindowError, match=f"{name} must be a positive number of hours"):
        run_drift(settings, **hours, console=Console())
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_a_damaged_audit_log_blocks_retraining_and_alerts(settings, webhook):
    audit_dir = settings.paths.monitoring / "audit"
    audit_dir.mkdir(parents=True)
    damaged = audit_dir / "audit-2024-03-01.ndjson"
    garbage = b"\x00\x17 not an audit record\n{\"event_id\": \"e1\"}\n"
    damaged.write_bytes(garbage)

    outcome = run_drift(settings, current_hours=0.5, reference_hours=7 * 24, console=Console())

    decision = outcome.decision
    assert outcome.report.data_drift and RetrainReason.DATA_DRIFT in decision.reasons
    assert not decision.retrain
    assert decision.blocked_by == (BlockedBy.AUDIT_LOG_UNREADABLE,)
    assert webhook.titles() == [
        "[WARNING] Drift detected",
        "[CRITICAL] Retraining blocked: audit log damaged",
    ]
    assert damaged.name in webhook.received[1]["text"]
    # The report is still written and the damaged file is left as it was for a human.
    assert outcome.ndjson.exists() and outcome.html.exists()
    assert damaged.read_bytes() == garbage


@pytest.mark.slow
def test_the_same_drift_on_the_same_trades_alerts_once(settings, webhook):
    first = run_drift(settings, current_hours=0.5, reference_hours=7 * 24, console=Console())
    # No trade arrives before the next scheduled check (a weekend, a feed outage).
    again = run_drift(settings, current_hours=0.5, reference_hours=7 * 24, console=Console())

    assert first.report.drifted_features and again.report.drifted_features
    assert webhook.titles() == ["[WARNING] Drift detected", "[INFO] Retraining triggered"]
    assert (
        f"same windows and verdicts as run {first.report.run_id} (no new trades): "
        "drift alert not repeated"
    ) in again.report.notes
    # Both checks are on record, and the trigger still judged the second one.
    assert again.ndjson.exists() and again.ndjson != first.ndjson
    assert len(list(_audit(settings).records("retrain_triggered"))) == 1
    assert again.decision.blocked_by == (BlockedBy.COOLDOWN,)


@pytest.mark.slow
def test_a_champion_that_fails_its_integrity_check_fails_the_check_closed(settings, webhook):
    version = register_champion(settings)
    tamper_with(settings, version)

    with pytest.raises(ChampionUnavailable, match="artifacts changed") as caught:
        run_drift(settings, current_hours=1.5, reference_hours=7 * 24, console=Console())

    assert caught.value.integrity and caught.value.version == version
    # The data-drift report is still written, and says what it could not check.
    (ndjson,) = (settings.paths.monitoring / "drift").glob("drift-*.ndjson")
    assert list((settings.paths.reports / "drift").glob("drift-*.html"))
    assert {row["feature"] for row in _rows(ndjson)} >= set(DRIFT_NUMERIC_FEATURES)
    assert webhook.titles() == ["[CRITICAL] Model refused: integrity check failed"]
    # No retraining decision on half the evidence.
    kinds = [record.kind for record in _audit(settings).records()]
    assert "retrain_triggered" not in kinds and "retrain_skipped" not in kinds
