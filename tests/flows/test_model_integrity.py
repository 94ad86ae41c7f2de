"""Scoring refuses a champion whose artifacts changed, with one alert; an operator's audited
`tradewatch model trust` is the way back."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.alerts import AlertKind
from flows.config import load_settings
from flows.training import run_score
from ml.audit import AuditLog
from ml.registry import ModelIntegrityError
from tests.flows.model_support import register_champion, tamper_with

TRADEWATCH = Path(sys.executable).parent / "tradewatch"


@pytest.mark.slow
def test_scoring_refuses_a_changed_champion_alerts_once_and_trust_is_audited(
    tmp_path, monkeypatch
):
    monkeypatch.delenv("TRADEWATCH_WEBHOOK_URL", raising=False)
    home = tmp_path / "home"
    settings = load_settings(environ={**os.environ, "TRADEWATCH_HOME": str(home)})
    version = register_champion(settings)
    tamper_with(settings, version)

    with pytest.raises(ModelIntegrityError, match="artifacts changed since it was registered"):
        run_score(settings)

    audit = AuditLog(settings.paths.monitoring / "audit")
    alerts = [r.payload for r in audit.records("alert")]
    assert [(a["kind"], a["severity"]) for a in alerts] == [
        (AlertKind.MODEL_INTEGRITY, "critical")
    ]
    assert alerts[0]["fields"]["version"] == version
    assert not list(settings.paths.scores.rglob("*.parquet"))  # nothing scored

    trusted = subprocess.run(
        [str(TRADEWATCH), "model", "trust", version, "--reason", "rebuilt by the ML team"],
        env={**os.environ, "TRADEWATCH_HOME": str(home)}, capture_output=True, text=True,
        timeout=300,
    )
    assert trusted.returncode == 0, trusted.stderr
    assert f"version {version} trusted with content sha256" in trusted.stdout
    (record,) = audit.records("model_trusted")
    assert record.payload["reason"] == "rebuilt by the ML team"
    from flows.training import registry

    assert registry(settings).load_alias("champion").version == version
