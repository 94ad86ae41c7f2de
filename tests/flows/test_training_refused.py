"""No circular training: a training window with too few trusted labels is refused, said,
alerted, and nothing is registered or promoted."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest

from flows.cli import main
from ml.audit import AuditLog

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def test_too_few_trusted_labels_refuse_training_with_an_alert_and_no_model(
    simulated_home, tmp_path, monkeypatch, capsys
):
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy2(simulated_home.warehouse, home / "warehouse.duckdb")
    with duckdb.connect(str(home / "warehouse.duckdb")) as connection:
        # A real feed's mix in this copy: the rule, not the answer key, labels a third of the
        # trades, and calls every one of them anomalous.
        connection.execute(
            "update gold.gold_anomaly_labels set label_source = 'rule', is_anomaly = true "
            "where not is_anomaly and hash(trade_id) % 3 = 0"
        )
        labels, positives, by_rule = connection.execute(
            "select count(*) filter (where label_source in ('analyst', 'ground_truth')), "
            "count(*) filter (where label_source in ('analyst', 'ground_truth') and is_anomaly), "
            "count(*) filter (where label_source = 'rule') from gold.gold_anomaly_labels"
        ).fetchone()
    assert labels > 0 and positives > 0 and by_rule > positives
    # The answer key's positives are one short of the minimum: the rule's would make up for it
    # many times over, but rule labels never count.
    config = tmp_path / "project_config.yml"
    text = (REPO / "project_config.yml").read_text()
    assert "min_trusted_positives: 30\n" in text
    config.write_text(text.replace("min_trusted_positives: 30\n",
                                   f"min_trusted_positives: {positives + 1}\n"))
    monkeypatch.setenv("TRADEWATCH_HOME", str(home))
    monkeypatch.delenv("TRADEWATCH_WEBHOOK_URL", raising=False)

    code = main(["--config", str(config), "train", "--skip-quality-gate"])

    out, err = capsys.readouterr()
    assert code == 1
    last = err.splitlines()[-1]  # after the line saying the quality gate was skipped
    assert last.startswith("tradewatch: TrainingRefused: ")
    assert f"has {labels:,} trusted labels ({positives:,} anomalous)" in last
    assert f"needs at least 500 ({positives + 1:,} anomalous)" in last
    assert "training refused" in out and f"{by_rule:,} rule-labelled trades" in " ".join(
        out.split())
    alerts = [r.payload for r in AuditLog(home / "monitoring" / "audit").records("alert")]
    refused = [a for a in alerts if a["kind"] == "training_refused"]
    assert len(refused) == 1
    assert refused[0]["fields"]["trusted_positives"] == str(positives)
    assert refused[0]["fields"]["min_trusted_positives"] == str(positives + 1)
    # nothing trained, registered or promoted: not even an MLflow store was created
    assert not (home / "mlflow.db").exists() and not (home / "mlartifacts").exists()
