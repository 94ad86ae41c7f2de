"""`dbt docs` offline, documentation completeness, and the transform entry point's contract."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flows.config import load_settings
from flows.transform import TransformFailed, run_transform
from tests.dbt.warehouse_data import REPO_ROOT, query

_DOCS_SCRIPT = """
import os
from flows.config import load_settings
from flows.transform import run_dbt_docs
settings = load_settings(environ={**os.environ, "TRADEWATCH_HOME": os.getcwd()})
print("INDEX " + str(run_dbt_docs(settings)))
"""


@pytest.mark.slow
def test_docs_generate_offline_and_every_built_column_is_described(warehouse_story):
    completed = subprocess.run(
        [sys.executable, "-c", _DOCS_SCRIPT],
        cwd=warehouse_story.home,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        check=False,
    )
    index_lines = [line for line in completed.stdout.splitlines() if line.startswith("INDEX ")]
    assert index_lines, completed.stdout[-2000:] + completed.stderr[-2000:]
    index = index_lines[0].removeprefix("INDEX ")
    target = warehouse_story.home / "dbt" / "target"
    assert index == str(target / "index.html")
    assert "<html" in (target / "index.html").read_text()[:2000].lower()

    manifest = json.loads((target / "manifest.json").read_text())
    catalog = json.loads((target / "catalog.json").read_text())
    built = catalog["nodes"]
    assert {"model.tradewatch.silver_trades", "model.tradewatch.gold_minute_bars"} <= set(built)
    undescribed = []
    for unique_id, entry in built.items():
        node = manifest["nodes"][unique_id]
        if not node["description"].strip():
            undescribed.append(unique_id)
        for column in entry["columns"]:
            described = node["columns"].get(column, {}).get("description", "").strip()
            if not described:
                undescribed.append(f"{unique_id}.{column}")
    assert undescribed == []
    # Formulas are written once, in docs blocks, and shown wherever they are used.
    session = manifest["nodes"]["model.tradewatch.silver_trades"]["columns"]["session_type"]
    assert "pre_market` 04:00–09:30" in session["description"]
    assert {e["name"] for e in manifest["exposures"].values()} >= {
        "training_flow", "scoring_flow", "drift_flow", "pipeline_report",
    }


def test_unknown_target_is_refused_before_dbt_runs(tmp_path):
    settings = load_settings(environ={**os.environ, "TRADEWATCH_HOME": str(tmp_path)})
    with pytest.raises(TransformFailed, match="unknown dbt target 'snowflake'"):
        run_transform(settings, target="snowflake")
    assert not (tmp_path / "dbt").exists()


@pytest.mark.slow
def test_a_fresh_home_builds_the_whole_project_with_the_cli(tmp_path):
    """A fresh clone: nothing landed yet, every model builds empty and every test passes; the
    checkpoint that follows the build says there is nothing to train or score on."""
    tradewatch = Path(sys.executable).parent / "tradewatch"
    completed = subprocess.run(
        [str(tradewatch), "transform"],
        cwd=tmp_path,
        env={**os.environ, "TRADEWATCH_HOME": str(tmp_path / "home")},
        capture_output=True,
        text=True,
        check=False,
    )
    assert "dbt build on target local" in completed.stdout
    # Every model and test built (a failed node prints a "failed <kind> <name>" line).
    assert not [line for line in completed.stdout.splitlines() if line.startswith("failed ")]
    # transform = dbt build, then the data-quality checkpoint: no trades is critical.
    assert completed.returncode == 1, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert completed.stderr.startswith("tradewatch: DataQualityFailed:")
    assert "critical data-quality failure" in completed.stderr
    assert "silver.aggregates" in completed.stderr  # no silver rows to validate
    assert completed.stderr.strip().count("\n") == 0
    summary_layers = {line.split()[1] for line in completed.stdout.splitlines()
                      if line.startswith("│") and len(line.split()) > 2}
    assert {"bronze", "silver", "gold", "monitoring", "seeds"} <= summary_layers
    counts = query(
        tmp_path / "home",
        "select table_name, estimated_size from duckdb_tables() "
        "where schema_name in ('main', 'gold', 'monitoring')",
    )
    tables = dict(counts)
    assert {"bronze_trades", "silver_trades", "gold_trade_features", "gold_anomaly_labels",
            "monitoring_gate_decisions", "gold_anomaly_scores"} <= set(tables)
    assert query(tmp_path / "home", "select count(*) from silver_trades") == [(0,)]
