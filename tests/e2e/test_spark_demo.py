"""`TRADEWATCH_ENV=spark tradewatch demo`: the whole main job on a local Spark session.

dbt builds the project on Spark, the quality checkpoint validates through Spark SQL, training
and scoring read gold through Spark SQL, the scores land as files and dbt reads them back on
Spark. Every query the flows send runs on Spark SQL, which is what Databricks executes.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.slow, pytest.mark.spark]

REPO = Path(__file__).resolve().parents[2]


def test_the_demo_runs_end_to_end_on_a_local_spark_session(tmp_path):
    home, scratch = tmp_path / "home", tmp_path / "cwd"
    scratch.mkdir()
    config = yaml.safe_load((REPO / "project_config.yml").read_text())
    # Two simulated hours cannot afford the production one-hour purge gap, and latency is
    # judged by its own tests (on two shared cores it is noise here).
    config["training"]["purge_seconds"] = 120
    config["training"]["min_trusted_positives"] = 5  # two hours hold a few dozen anomalies
    config["gate"]["max_latency_p99_ms"] = 10_000
    changed = tmp_path / "project_config.yml"
    changed.write_text(yaml.safe_dump(config))
    env = {
        **os.environ, "TRADEWATCH_ENV": "spark", "TRADEWATCH_HOME": str(home),
        "PYTHONPATH": str(REPO), "COLUMNS": "200",
    }
    env.pop("PREFECT_API_URL", None)

    demo = subprocess.run(
        [sys.executable, "-m", "flows.cli", "--config", str(changed), "demo", "--minutes", "120"],
        cwd=scratch, env=env, capture_output=True, text=True, timeout=1500, check=False,
    )

    out = demo.stdout
    assert demo.returncode == 0, (out + demo.stderr)[-4000:]
    assert "dbt build on target spark" in out
    trades = int(re.search(r"gold_trade_features ([\d,]+)", out).group(1).replace(",", ""))
    assert trades > 1000
    # The champion scored every trade, and dbt read the score files back on Spark.
    assert re.search(r"gate on version 1: .*promote", out), out[-3000:]
    assert f"current champion scores, one for each of the {trades:,} gold trades" in out, \
        out[-3000:]
    assert "rules (gold_rule_flags) on the same test window" in out
    assert list((home / "scores").rglob("*.parquet"))
    assert list((home / "monitoring" / "quality").glob("quality-*.ndjson"))
    # Spark's tables and metastore live in the data home, and nothing in the working directory.
    assert (home / "spark" / "metastore_db").is_dir()
    assert not (scratch / "metastore_db").exists() and not (scratch / "spark-warehouse").exists()
    assert (home / "spark" / "derby.log").is_file() and not (scratch / "derby.log").exists()
