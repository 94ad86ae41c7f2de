"""The review verbs on a local Spark session: the queue, one trade's context and a decision,
over a dozen hand-made gold trades (tests/flows/review_gold.py), all through Spark SQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from core.datahome import LABEL_DECISIONS_DIR
from tests.flows.review_gold import FLAGGED

REPO = Path(__file__).resolve().parents[2]


SPARK_REVIEW = textwrap.dedent("""
    import json, sys
    from pyspark.sql import SparkSession

    home = sys.argv[1]
    session = (
        SparkSession.builder.master("local[1]")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.sql.shuffle.partitions", "1")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.catalogImplementation", "in-memory")
        .config("spark.sql.warehouse.dir", home + "/spark-warehouse")
        .getOrCreate()
    )
    from tests.flows.review_gold import spark_gold
    spark_gold(session)

    from flows.config import load_settings
    from flows.review import record_decisions, review_queue, trade_context

    # The spark environment: the engine's reader is this (active) session's catalog.
    settings = load_settings(environ={"TRADEWATCH_HOME": home, "TRADEWATCH_ENV": "spark"})
    before = [item.trade_id for item in review_queue(settings)]
    context = trade_context(settings, "t03")
    records = record_decisions(settings, ["t03", "t04"], confirm=True, kind="price_spike",
                               reason="one spike", reviewer="ann")
    out = {
        "before": before,
        "cluster": context.cluster,
        "driver": context.drivers[0].feature,
        "method": context.drivers_method,
        "trades": context.trades["trade_id"].tolist(),
        "flagged": context.trades.loc[context.trades["flagged"], "trade_id"].tolist(),
        "bars": len(context.bars),
        "decided": [r["trade_id"] for r in records],
        "after": [item.trade_id for item in review_queue(settings)],
    }
    print("RESULT " + json.dumps(out), flush=True)
    session.stop()
""")


@pytest.mark.slow
@pytest.mark.spark
def test_on_spark_the_review_queries_run_on_spark_sql(tmp_path):
    # In a child process: a JVM started here would stay for the rest of the test session.
    script = tmp_path / "spark_review.py"
    script.write_text(SPARK_REVIEW)
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path)], cwd=tmp_path, capture_output=True,
        text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, done.stderr[-3000:]
    out = json.loads(lines[-1].removeprefix("RESULT "))

    assert out["before"] == list(FLAGGED)
    assert out["cluster"] == ["t03", "t04"]
    assert (out["method"], out["driver"]) == ("robust z fallback", "volume_zscore")
    assert out["trades"] == [f"t{n:02d}" for n in range(1, 13)]  # all within ± 10 minutes
    assert out["flagged"] == list(FLAGGED) and out["bars"] == 2
    assert out["decided"] == ["t03", "t04"] and out["after"] == ["t11"]
    stored = list((tmp_path / LABEL_DECISIONS_DIR).glob("decisions-*.ndjson"))
    assert len(stored) == 1  # the spark environment's data home is the local folder
