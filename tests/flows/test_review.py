"""The review verbs on the configured engine: gold from the engine's reader for analysts, and
decisions in the label store of the engine's data home (a local folder, or the Unity Catalog
volume through the real databricks-sdk client and a loopback fake of the Files API), withdrawn
when the audit log cannot record them. Gold is a dozen hand-made trades (tests/flows/
review_gold.py), not a build."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from rich.console import Console

from core.datahome import LABEL_DECISIONS_DIR
from core.warehouse import DuckDBWarehouse
from flows import engine
from flows.analysts import analysts_database
from flows.config import load_settings
from flows.review import ReviewError, record_decisions, review_queue, run_review_decide
from ml.audit import AuditLog
from tests.flows.review_gold import FLAGGED, duckdb_gold
from tests.support.files_api import FILES, PRD_VOLUME, prd_workspace

TOKEN = "dapi-fake-review-5a4b3c2d"
VOLUME = PRD_VOLUME
STORE = f"{VOLUME}/{LABEL_DECISIONS_DIR}"
REPO = Path(__file__).resolve().parents[2]


def _settings(tmp_path, environment: str):
    return load_settings(environ={"TRADEWATCH_HOME": str(tmp_path), "TRADEWATCH_ENV": environment})


@pytest.fixture
def local(tmp_path):
    """The dev environment with the hand-made gold as the analysts' database."""
    settings = _settings(tmp_path, "dev")
    duckdb_gold(analysts_database(settings))
    return settings


@pytest.fixture
def workspace(monkeypatch):
    """A fake workspace whose volume the prd environment's variables name."""
    with prd_workspace(monkeypatch, TOKEN) as api:
        yield api


def _queue(settings) -> list[str]:
    return [item.trade_id for item in review_queue(settings)]


def _break_audit_log(settings) -> None:
    """A file where the audit log's folder should be: every append fails."""
    shutil.rmtree(settings.paths.audit, ignore_errors=True)
    settings.paths.audit.parent.mkdir(parents=True, exist_ok=True)
    settings.paths.audit.write_text("not a folder\n")


def test_on_duckdb_decisions_go_to_the_local_store_and_leave_the_queue(local):
    console = Console(record=True, width=300)
    assert _queue(local) == list(FLAGGED)  # highest score first

    run_review_decide(local, ["t03", "t04"], confirm=True, kind="price_spike",
                      reason="one spike, two prints", reviewer="ann", console=console)

    files = sorted(p.name for p in local.paths.label_decisions.iterdir())
    assert len(files) == 1 and files[0].startswith("decisions-")
    assert f"→ {local.paths.label_decisions} (audited" in console.export_text()
    audited = [r.payload for r in AuditLog(local.paths.audit).records("review_decision")]
    assert [(r["trade_id"], r["file"]) for r in audited] == [("t03", files[0]), ("t04", files[0])]
    assert _queue(local) == ["t11"]


def test_on_duckdb_a_decision_the_audit_log_cannot_record_is_withdrawn(local):
    _break_audit_log(local)

    with pytest.raises(ReviewError, match="withdrawn from the label store") as refused:
        record_decisions(local, ["t03"], confirm=False, kind=None, reason="ordinary")

    assert "\n" not in str(refused.value)
    assert list(local.paths.label_decisions.iterdir()) == []
    assert _queue(local) == list(FLAGGED)


def test_on_databricks_decisions_go_to_the_volume_and_a_withdrawal_deletes_them(
    tmp_path, workspace, monkeypatch,
):
    # A Databricks SQL warehouse cannot run here: a DuckDB file of the same gold stands in for
    # the reader the engine opens. The engine's choice, the settings, and the label store in
    # the volume through the real SDK client are the real ones.
    gold = duckdb_gold(tmp_path / "sql_warehouse" / "warehouse.duckdb")
    monkeypatch.setattr(engine, "open_warehouse",
                        lambda settings, target=None, environ=None: DuckDBWarehouse(gold))
    settings = _settings(tmp_path, "prd")
    console = Console(record=True, width=300)

    run_review_decide(settings, ["t11"], confirm=False, kind=None, reason="a block trade",
                      reviewer="bob", console=console)

    stored = [path for path in workspace.files if path.startswith(STORE + "/")]
    assert len(stored) == 1 and workspace.files[stored[0]].count(b'"decision": "dismiss"') == 1
    assert f"→ {STORE} (audited" in console.export_text()
    assert not settings.paths.label_decisions.exists()  # nothing went to the local folder
    assert _queue(settings) == ["t03", "t04"]

    _break_audit_log(settings)
    with pytest.raises(ReviewError, match="withdrawn from the label store"):
        record_decisions(settings, ["t03"], confirm=True, kind="price_spike", reason="spike")

    assert [path for path in workspace.files if path.startswith(STORE + "/")] == stored
    deleted = [path for method, path, status in workspace.requests
               if method == "DELETE" and status == 204]
    assert len(deleted) == 1 and deleted[0].startswith(f"{FILES}{STORE}/decisions-")
    assert _queue(settings) == ["t03", "t04"]


def test_on_databricks_an_unreadable_label_store_is_one_line(tmp_path, workspace, monkeypatch):
    monkeypatch.setenv("DATABRICKS_TOKEN", "dapi-revoked")
    settings = _settings(tmp_path, "prd")

    with pytest.raises(ReviewError, match="cannot read the label store") as refused:
        review_queue(settings)

    assert "\n" not in str(refused.value) and "dapi-revoked" not in str(refused.value)
    assert "Unauthenticated" in str(refused.value)


def test_the_review_pages_decisions_come_from_the_volume_or_say_why_not(
    tmp_path, workspace, monkeypatch,
):
    import html

    from fastapi.testclient import TestClient

    from flows.review_page import create_app

    gold = duckdb_gold(tmp_path / "sql_warehouse" / "warehouse.duckdb")
    monkeypatch.setattr(engine, "open_warehouse",
                        lambda settings, target=None, environ=None: DuckDBWarehouse(gold))
    settings = _settings(tmp_path, "prd")
    record_decisions(settings, ["t04"], confirm=True, kind="price_spike", reason="a spike",
                     reviewer="cleo")
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        mine = client.get("/decisions", params={"reviewer": "cleo"})
        monkeypatch.setenv("DATABRICKS_TOKEN", "dapi-revoked")
        refused = client.get("/decisions", params={"reviewer": "cleo"})

    assert mine.status_code == 200 and "t04" in mine.text and "a spike" in mine.text
    assert refused.status_code == 503 and "t04" not in refused.text
    assert "cannot read the label store" in html.unescape(refused.text)
    assert "dapi-revoked" not in refused.text
