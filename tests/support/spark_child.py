"""Run a script that starts a local Spark session in a child process, and read what it found.

A JVM started in the test process would stay for the rest of the test session; a child's ends
with it. The script gets the test's temporary folder as its argument and prints one line
`RESULT <json>`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def run_spark_script(folder: Path, name: str, text: str) -> dict[str, Any]:
    """Write `text` to `folder/name`, run it with `folder` as its argument and working
    directory, and return its RESULT (the test fails with the child's stderr when none)."""
    script = folder / name
    script.write_text(text)
    done = subprocess.run(
        [sys.executable, str(script), str(folder)], cwd=folder, capture_output=True,
        text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, done.stderr[-3000:]
    return json.loads(lines[-1].removeprefix("RESULT "))


def local_session(folder: str) -> Any:
    """The child's Spark session: one core, no UI, loopback only, UTC, an in-memory catalog
    and its tables under `folder`."""
    from pyspark.sql import SparkSession

    return (
        SparkSession.builder.master("local[1]")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.sql.shuffle.partitions", "1")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.catalogImplementation", "in-memory")
        .config("spark.sql.warehouse.dir", folder + "/spark-warehouse")
        .getOrCreate()
    )
