"""The review verbs on a local Spark session: the queue, one trade's context and a decision,
over a dozen hand-made gold trades (tests/flows/review_gold.py), all through Spark SQL."""

from __future__ import annotations

import textwrap

import pytest

from core.datahome import LABEL_DECISIONS_DIR
from tests.flows.review_gold import FLAGGED
from tests.support.spark_child import run_spark_script

SPARK_REVIEW = textwrap.dedent("""
    import json, sys
    from tests.support.spark_child import local_session

    home = sys.argv[1]
    session = local_session(home)
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
    out = run_spark_script(tmp_path, "spark_review.py", SPARK_REVIEW)

    assert out["before"] == list(FLAGGED)
    assert out["cluster"] == ["t03", "t04"]
    assert (out["method"], out["driver"]) == ("robust z fallback", "volume_zscore")
    assert out["trades"] == [f"t{n:02d}" for n in range(1, 13)]  # all within ± 10 minutes
    assert out["flagged"] == list(FLAGGED) and out["bars"] == 2
    assert out["decided"] == ["t03", "t04"] and out["after"] == ["t11"]
    stored = list((tmp_path / LABEL_DECISIONS_DIR).glob("decisions-*.ndjson"))
    assert len(stored) == 1  # the spark environment's data home is the local folder
