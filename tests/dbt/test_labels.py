"""gold_anomaly_labels: one row per trade, decided by the most trusted source with an opinion.

A copy of the dbt project carries this test's own analyst seed (labels for trades of the
landed data); the simulator's answer key is written with the simulator's own writer. The
warehouse is built first without an answer key (a real feed: the rule decides everything),
then again once the simulator's key exists.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.datahome import LABEL_DECISIONS_DIR
from ingest.simulator.ground_truth import GroundTruthWriter
from ml.review import decision_records, write_decisions
from tests.dbt.feature_reference import reference_features
from tests.dbt.features_support import read_gold, read_table
from tests.dbt.synthetic_trades import land_trades, make_trades
from tests.dbt.warehouse_data import REPO_ROOT

pytestmark = pytest.mark.slow

DBT = Path(sys.executable).parent / "dbt"
MONDAY_MS = int(pd.Timestamp("2024-03-11", tz="America/New_York").value // 1_000_000)


def _build(project: Path, home: Path) -> None:
    env = {
        **os.environ,
        "TRADEWATCH_HOME": str(home),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DO_NOT_TRACK": "true",
    }
    done = subprocess.run(
        [
            str(DBT), "build",
            "--project-dir", str(project),
            "--profiles-dir", str(REPO_ROOT),
            "--target", "local",
            "--select", "+gold_anomaly_labels",
            "--indirect-selection", "cautious",
        ],
        cwd=project, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def _rule(features: pd.DataFrame) -> pd.Series:
    """The rule heuristic of gold_anomaly_labels, written again from its documented definition."""
    return (
        ((features["volume_zscore"].abs() > 3) & (features["price_change_pct"].abs() > 2))
        | (features["rsi_14"] < 15)
        | (features["rsi_14"] > 85)
        | (features["bollinger_pct_b"] < 0)
        | (features["bollinger_pct_b"] > 1)
    )


def test_each_trade_is_labelled_by_the_most_trusted_source(tmp_path: Path) -> None:
    home, project = tmp_path / "home", tmp_path / "dbt_project"
    shutil.copytree(
        REPO_ROOT / "dbt_project", project, ignore=shutil.ignore_patterns("target", "logs")
    )
    trades = make_trades()
    land_trades(home, trades, "all")
    reference = reference_features(trades)
    friday = reference[reference["trade_ts_ms"] < MONDAY_MS]
    monday = reference[reference["trade_ts_ms"] >= MONDAY_MS]

    # Analyst verdicts: clear a trade the simulator lists, clear one the rule flags (far from
    # its thresholds), and flag one nothing else would.
    rng = np.random.default_rng(5)
    listed = monday.loc[rng.choice(monday.index, 12, replace=False)]
    rule_flagged = friday[friday["rsi_14"] > 95].index[0]
    quiet = friday[
        friday["rsi_14"].between(40, 60)
        & friday["bollinger_pct_b"].between(0.2, 0.8)
        & (friday["volume_zscore"].abs() < 1)
    ].index[0]
    analyst = {
        listed.index[0]: ("false", ""),
        rule_flagged: ("false", ""),
        quiet: ("true", "wash_cluster"),
    }
    with (project / "seeds" / "analyst_labels.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["trade_id", "is_anomaly", "anomaly_kind", "labelled_by", "labelled_at", "note"]
        )
        for trade_id, (verdict, kind) in analyst.items():
            writer.writerow([trade_id, verdict, kind, "tester", "2024-03-12T09:00:00Z", "test"])

    # 1. No answer key (a real feed): the rule decides every trade the analyst did not.
    _build(project, home)
    gold = read_gold(home)
    labels = read_table(home, "select * from gold_anomaly_labels").set_index("trade_id")
    assert labels.index.is_unique and sorted(labels.index) == sorted(gold.index)
    by_rule = labels.drop(index=list(analyst))
    assert set(by_rule["label_source"]) == {"rule"}
    expected = _rule(gold.loc[by_rule.index])
    assert by_rule["is_anomaly"].tolist() == expected.tolist()
    assert 0 < expected.sum() < len(expected)

    # 2. The simulator's answer key for Monday, as the simulator writes it (a re-run appends
    #    the same lines again; a writer killed mid-line leaves a torn last line).
    key = GroundTruthWriter(home / "simulator" / "ground_truth")
    records = [
        {
            "trade_id": trade_id,
            "event_id": f"event-{i // 4}",
            "kind": "volume_burst" if i < 4 else "price_spike",
            "symbol": row["symbol"],
            "trade_ts_ms": int(row["trade_ts_ms"]),
        }
        for i, (trade_id, row) in enumerate(listed.iterrows())
    ]
    key.write([], records)
    key.write([], records[:3])
    key.close()
    with (home / "simulator" / "ground_truth" / "trades.ndjson").open("ab") as torn:
        torn.write(b'{"trade_id": "0123')

    # 3. Review decisions in the label store (ml.review's writer, one file per call): an analyst
    #    clears a trade the answer key lists; decides another twice (the later one wins);
    #    overrides the seed's older verdict; and a file torn by hand is refused as a whole.
    store = home / LABEL_DECISIONS_DIR
    early, late = pd.Timestamp("2024-03-13T10:00Z"), pd.Timestamp("2024-03-13T11:00Z")
    cleared, twice, torn_file = listed.index[1], listed.index[2], listed.index[3]
    for ids, confirm, kind, when in (
        ([cleared], False, None, early),
        ([twice], True, "price_spike", early),
        ([twice, quiet], False, None, late),
    ):
        write_decisions(store, decision_records(
            ids, confirm=confirm, kind=kind, reason="test", reviewer="tester", now=when))
    bad = decision_records([torn_file], confirm=False, kind=None, reason="x", reviewer="tester")
    with write_decisions(store, bad).open("a") as handle:
        handle.write('{"decision_id": "cut sh')
    analyst[cleared] = analyst[twice] = analyst[quiet] = ("false", "")
    _build(project, home)
    labels = read_table(home, "select * from gold_anomaly_labels").set_index("trade_id")

    assert labels.index.is_unique and sorted(labels.index) == sorted(gold.index)
    for trade_id, (verdict, kind) in analyst.items():
        row = labels.loc[trade_id]
        assert (row["label_source"], bool(row["is_anomaly"])) == ("analyst", verdict == "true")
        assert (row["anomaly_kind"] or "") == kind
    for record in records[1:]:
        if record["trade_id"] in analyst:
            continue
        row = labels.loc[record["trade_id"]]
        assert (row["label_source"], bool(row["is_anomaly"])) == ("ground_truth", True)
        assert (row["anomaly_kind"], row["event_id"]) == (record["kind"], record["event_id"])
    unlisted_monday = labels.loc[labels.index.isin(monday.index) & ~labels.index.isin(listed.index)]
    assert set(unlisted_monday["label_source"]) == {"ground_truth"}
    assert not unlisted_monday["is_anomaly"].any()
    assert unlisted_monday["anomaly_kind"].isna().all()
    # the refused file changed nothing: the answer key still decides its trade
    row = labels.loc[torn_file]
    assert (row["label_source"], bool(row["is_anomaly"])) == ("ground_truth", True)
    friday_by_rule = labels.loc[labels.index.isin(friday.index) & ~labels.index.isin(list(analyst))]
    assert set(friday_by_rule["label_source"]) == {"rule"}
    assert friday_by_rule["is_anomaly"].tolist() == _rule(gold.loc[friday_by_rule.index]).tolist()
