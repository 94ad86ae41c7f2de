"""`tradewatch audit verify|repair`: an operator finds the damage, repairs it on record."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ml.audit import REPAIRED, AuditLog

TRADEWATCH = Path(sys.executable).parent / "tradewatch"


def tradewatch(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TRADEWATCH_HOME": str(home), "COLUMNS": "200"}
    return subprocess.run(
        [str(TRADEWATCH), *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_verify_finds_a_cut_log_and_repair_records_who_fixed_it_and_why(tmp_path):
    log = AuditLog(tmp_path / "monitoring" / "audit")
    for n in range(3):
        log.append("retrain_triggered", {"n": n})
    assert tradewatch(tmp_path, "audit", "verify").returncode == 0
    (path,) = log.directory.glob("audit-*.ndjson")
    path.write_text(path.read_text().splitlines(keepends=True)[0])  # the last two are gone

    damaged = tradewatch(tmp_path, "audit", "verify")
    no_reason = tradewatch(tmp_path, "audit", "repair")
    repaired = tradewatch(
        tmp_path, "audit", "repair", "--reason", "restored from backup", "--operator", "ana"
    )
    after = tradewatch(tmp_path, "audit", "verify")

    assert damaged.returncode == 1
    assert "DAMAGED (1 problem(s))" in damaged.stdout
    assert "the head names seq 3" in damaged.stdout and "ends at seq 1" in damaged.stdout
    assert no_reason.returncode == 2 and "--reason" in no_reason.stderr
    assert repaired.returncode == 0, repaired.stderr
    assert "repaired by ana: 1 problem(s) acknowledged" in repaired.stdout
    assert after.returncode == 0 and "audit log intact" in after.stdout
    last = json.loads(path.read_text().splitlines()[-1])
    assert last["kind"] == REPAIRED and last["payload"]["reason"] == "restored from backup"
    assert tradewatch(tmp_path, "audit", "repair", "--reason", "x").stdout.rstrip().endswith(
        "nothing to repair"
    )
