"""The command line rejects bad input with one clear line and a non-zero exit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from flows.cli import main

TRADEWATCH = Path(sys.executable).parent / "tradewatch"


def test_path_traversal_symbol_is_rejected_before_anything_runs(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["collect", "finnhub", "--symbols", "AAPL,../../etc"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "invalid symbol '../../etc'" in err
    assert err.count("\n") == 1


def test_negative_duration_is_rejected(capsys):
    with pytest.raises(SystemExit):
        main(["collect", "finnhub", "--duration", "-3"])
    assert "must be positive" in capsys.readouterr().err


def test_bad_config_file_exits_non_zero_with_one_line(tmp_path):
    bad = tmp_path / "project_config.yml"
    bad.write_text("symbols: [AAPL]\ngate: {min_primary_metric: 7}\n")
    result = subprocess.run(
        [str(TRADEWATCH), "--config", str(bad), "collect", "finnhub", "--max-trades", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert result.stderr.startswith("tradewatch: ConfigError:")
    assert result.stderr.strip().count("\n") == 0


def test_skipping_the_quality_gate_is_explicit_and_written_to_the_audit_log(tmp_path):
    from ml.audit import AuditLog

    env = {**os.environ, "TRADEWATCH_HOME": str(tmp_path)}
    gated = subprocess.run([str(TRADEWATCH), "score"], capture_output=True, text=True,
                           timeout=300, env=env)
    # Without the override the gate runs first: no warehouse, nothing scored.
    assert gated.returncode == 1
    assert gated.stderr.startswith("tradewatch: WarehouseNotFound:")  # core.warehouse
    skipped = subprocess.run([str(TRADEWATCH), "score", "--skip-quality-gate"],
                             capture_output=True, text=True, timeout=300, env=env)
    assert "quality gate skipped before scoring" in skipped.stderr
    assert skipped.returncode == 1 and "NoChampion" in skipped.stderr  # nothing trained yet
    records = list(AuditLog(tmp_path / "monitoring" / "audit").records("quality_gate_skipped"))
    assert [r.payload["stage"] for r in records] == ["scoring"]
