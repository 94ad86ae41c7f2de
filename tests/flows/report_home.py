"""A realistic data home for the monitoring report: three days of gate decisions, tournaments
in a real MLflow SQLite store, drift and quality runs, champion scores (one trade re-scored by
a newer version) and the other reports' pages, all written the way the platform writes them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ml.audit import AuditLog

T0 = datetime(2024, 3, 8, 14, 0, tzinfo=UTC)


def write_ndjson(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def metrics(pr_auc, roc_auc, precision, recall, f1, event_recall, trade_precision, p99,
            **event_level):
    return {
        "pr_auc": pr_auc, "roc_auc": roc_auc, "precision": precision, "recall": recall,
        "f1": f1, "event_recall": event_recall, "trade_precision": trade_precision,
        "latency_p50_ms": p99 / 3, "latency_p99_ms": p99, "threshold": 0.5, "rows": 1200.0,
        "positives": 36.0, **event_level,
    }


CHALLENGER_V3 = metrics(
    0.7412, 0.951, 0.62, 0.71, 0.662, 0.80, 0.58, 0.0121, event_average_precision=0.912,
    false_alerts_per_day=412.5, median_time_to_detect_s=2.0, events=240.0,
)
CHAMPION_V2 = metrics(
    0.7600, 0.958, 0.66, 0.73, 0.693, 0.85, 0.61, 0.0150, event_average_precision=0.905,
    false_alerts_per_day=480.0, median_time_to_detect_s=0.0, events=240.0,
)
COMPARISON_V3 = {
    "metric": "event_average_precision", "champion": 0.905, "challenger": 0.912,
    "difference": 0.007, "low": -0.011, "high": 0.026, "confidence": 0.9, "resamples": 1000,
    "blocks": 30, "block_minutes": 60.0,
}


def write_audit(home: Path) -> None:
    log = AuditLog(home / "monitoring" / "audit")
    window = {"test_window_start": "2024-03-10T12:00:00+00:00",
              "test_window_end": "2024-03-10T15:00:00+00:00"}
    log.append("gate_decision", {
        "decision": "promote", "reason": "no champion yet", "champion_version": None,
        "challenger_version": "1", "champion_metrics": {},
        "challenger_metrics": metrics(0.70, 0.94, 0.6, 0.7, 0.65, 0.8, 0.55, 0.02), **window,
    }, now=T0 + timedelta(minutes=55))
    log.append("promotion", {"champion_version": "1"}, now=T0 + timedelta(minutes=56))
    log.append("gate_decision", {
        "decision": "promote", "reason": "challenger PR-AUC 0.7600 beats champion 0.7000",
        "champion_version": "1", "challenger_version": "2",
        "champion_metrics": metrics(0.70, 0.94, 0.6, 0.7, 0.65, 0.8, 0.55, 0.02),
        "challenger_metrics": CHAMPION_V2, **window,
    }, now=T0 + timedelta(days=1, minutes=55))
    log.append("gate_decision", {
        "decision": "reject",
        "reason": "the interval's lower bound -0.011 does not clear +0.01",
        "champion_version": "2", "challenger_version": "3",
        "champion_metrics": CHAMPION_V2, "challenger_metrics": CHALLENGER_V3, **window,
        "primary_metric": "event_average_precision", "comparison": COMPARISON_V3,
        "events": 240,
    }, now=T0 + timedelta(days=2, minutes=55))


# tournament start, then (model, test PR-AUC or None for a failed run)
TOURNAMENTS = [
    (T0 + timedelta(minutes=50), [("random_forest", 0.70), ("lightgbm", 0.65)]),
    (T0 + timedelta(days=1, minutes=50), [("random_forest", 0.71), ("lightgbm", 0.76)]),
    (T0 + timedelta(days=2, minutes=50),
     [("xgboost", 0.7412), ("lightgbm", 0.7330), ("isolation_forest", None)]),
]


def write_mlflow(home: Path) -> None:
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param, RunTag

    uri = f"sqlite:///{home / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.create_experiment(
        "tradewatch", artifact_location=(home / "mlartifacts").as_uri()
    )
    run_of_version = {}
    for number, (start, models) in enumerate(TOURNAMENTS, 1):
        ranked = sorted((p, m) for m, p in models if p is not None)[::-1]
        for offset, (model, pr_auc) in enumerate(models):
            ms = int((start + timedelta(seconds=20 * offset)).timestamp() * 1000)
            run = client.create_run(experiment, start_time=ms, run_name=model,
                                    tags={"model": model})
            params = [Param("data.test_end", f"2024-03-{9 + number}T15:00:00+00:00")]
            tags = []
            logged = []
            if pr_auc is None:
                tags.append(RunTag("error", "ValueError: the training set has one class"))
            else:
                rank = [m for _, m in ranked].index(model) + 1
                tags.append(RunTag("rank", str(rank)))
                logged = [Metric(name, value, ms, 0) for name, value in {
                    "event_average_precision": pr_auc + 0.1, "false_alerts_per_day": 300.0,
                    "median_time_to_detect_s": 1.5,
                    "pr_auc": pr_auc, "roc_auc": 0.9 + pr_auc / 20, "precision": 0.6,
                    "recall": 0.7, "f1": 0.646, "event_recall": 0.8, "trade_precision": 0.55,
                    "training_seconds": 12.5, "latency_p99_ms": 0.0121,
                }.items()]
            client.log_batch(run.info.run_id, metrics=logged, params=params, tags=tags)
            client.set_terminated(run.info.run_id, "FINISHED" if pr_auc is not None else "FAILED",
                                  end_time=ms + 10_000)
            if pr_auc is not None and model == ranked[0][1]:
                run_of_version[str(number)] = (model, run.info.run_id)
    client.create_registered_model("tradewatch_anomaly")
    for _, (model, run_id) in sorted(run_of_version.items()):  # versions 1, 2, 3 in order
        client.create_model_version(
            "tradewatch_anomaly", f"runs:/{run_id}/model", run_id=run_id,
            tags={"model_name": model, "run_id": run_id},
        )
    for alias, version in {"champion": "2", "previous": "1", "challenger": "3"}.items():
        client.set_registered_model_alias("tradewatch_anomaly", alias, version)


DRIFT_RUNS = [
    ("20240309T160000Z-aaaa", T0 + timedelta(days=1, hours=2),
     {"volume_zscore": 0.05, "price_change_pct": 0.10, "session_type": 0.02, "score": 0.01}),
    ("20240310T160000Z-bbbb", T0 + timedelta(days=2, hours=2),
     {"volume_zscore": 0.35, "price_change_pct": 0.12, "session_type": 0.15, "score": 0.25}),
]
FEATURE_KINDS = {
    "volume_zscore": ("numeric", "psi", 0.2), "price_change_pct": ("numeric", "psi", 0.2),
    "session_type": ("categorical", "js_distance", 0.1), "score": ("prediction", "psi", 0.2),
}


def write_drift(home: Path) -> None:
    for run_id, run_ts, values in DRIFT_RUNS:
        write_ndjson(home / "monitoring" / "drift" / f"drift-{run_id}.ndjson", [
            {"run_id": run_id, "run_ts": iso(run_ts), "feature": feature,
             "kind": FEATURE_KINDS[feature][0], "statistic_name": FEATURE_KINDS[feature][1],
             "statistic": value, "threshold": FEATURE_KINDS[feature][2],
             "drifted": value > FEATURE_KINDS[feature][2], "reference_rows": 5000,
             "current_rows": 800, "reference_start": iso(run_ts - timedelta(days=7)),
             "reference_end": iso(run_ts - timedelta(hours=24)),
             "current_start": iso(run_ts - timedelta(hours=24)), "current_end": iso(run_ts)}
            for feature, value in values.items()
        ])
    # A report still being written: a reader must not see it.
    (home / "monitoring" / "drift" / ".drift-half.ndjson.tmp").write_text('{"run_id": "hal')


QUALITY_RUNS = [
    ("20240309T150000000000Z-q1", T0 + timedelta(days=1, hours=1), {}),
    ("20240310T150000000000Z-q2", T0 + timedelta(days=2, hours=1),
     {("silver_trades", "expect_column_values_to_be_between"): "3 of 1000 rows below 0",
      ("gold_trade_features", "expect_table_row_count_to_be_between"): "12 rows"}),
]
EXPECTATIONS = [
    ("silver_trades", "expect_column_values_to_not_be_null", "trade_id", "critical"),
    ("silver_trades", "expect_column_values_to_be_between", "price", "critical"),
    ("silver_trades", "expect_column_values_to_be_unique", "trade_id", "critical"),
    ("gold_trade_features", "expect_column_values_to_not_be_null", "rsi_14", "critical"),
    ("gold_trade_features", "expect_table_row_count_to_be_between", None, "warning"),
]


def write_quality(home: Path) -> None:
    for run_id, run_ts, failures in QUALITY_RUNS:
        write_ndjson(home / "monitoring" / "quality" / f"quality-{run_id}.ndjson", [
            {"run_id": run_id, "run_ts": iso(run_ts), "suite": suite, "expectation": name,
             "column": column, "severity": severity, "success": (suite, name) not in failures,
             "observed_value": failures.get((suite, name), "ok"), "details": ""}
            for suite, name, column, severity in EXPECTATIONS
        ])


SCORES_SCHEMA = pa.schema([
    ("trade_id", pa.string()), ("symbol", pa.string()), ("trade_ts", pa.timestamp("us", tz="UTC")),
    ("score", pa.float64()), ("flag", pa.bool_()), ("risk_level", pa.string()),
    ("model_name", pa.string()), ("model_version", pa.string()),
    ("scored_at", pa.timestamp("us", tz="UTC")),
])


def score_rows(symbol, hour: datetime, scores: list[float], version="2", prefix=None):
    prefix = prefix or f"{symbol}-{hour:%d%H}"
    return [{
        "trade_id": f"{prefix}-{i}", "symbol": symbol,
        "trade_ts": hour + timedelta(minutes=i), "score": s, "flag": s >= 0.5,
        "risk_level": "critical" if s >= 0.8 else "high" if s >= 0.5 else "low",
        "model_name": "tradewatch_anomaly", "model_version": version,
    } for i, s in enumerate(scores)]


def write_scores(home: Path) -> None:
    day = T0 + timedelta(days=2)                   # 2024-03-10 14:00
    first = (
        score_rows("AAPL", day, [0.1] * 7 + [0.6, 0.6, 0.97])          # AAPL-1014-0 … -9
        + score_rows("AAPL", day + timedelta(hours=1), [0.2] * 4 + [0.85])  # AAPL-1015-4
        + score_rows("MSFT", day + timedelta(hours=1), [0.1, 0.2, 0.3, 0.05])
        # Four days before the newest hour: outside the 48-hour window.
        + score_rows("NVDA", day - timedelta(days=4), [0.99])
    )
    # A newer champion re-scored AAPL-1014-8 (flagged at 0.6 by version 2) as normal.
    rescored = [dict(first[8], score=0.1, flag=False, risk_level="low", model_version="3")]
    for name, rows, scored_at in (("scores-run1", first, day + timedelta(hours=3)),
                                  ("scores-run2", rescored, day + timedelta(hours=4))):
        frame = pd.DataFrame(rows).assign(scored_at=scored_at)
        for date, part in frame.groupby(frame["trade_ts"].map(lambda t: f"{t:%Y-%m-%d}")):
            path = home / "scores" / f"date={date}" / f"{name}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            table = pa.Table.from_pandas(part.reset_index(drop=True), schema=SCORES_SCHEMA,
                                         preserve_index=False)
            pq.write_table(table, path)


def write_other_reports(home: Path) -> None:
    drift_page = home / "reports" / "drift" / "drift-20240310T160000Z-bbbb.html"
    drift_page.parent.mkdir(parents=True, exist_ok=True)
    drift_page.write_text("<html></html>")
    docs = home / "reports" / "data_docs" / "index.html"
    docs.parent.mkdir(parents=True, exist_ok=True)
    docs.write_text("<html></html>")


def write_realistic_home(home: Path) -> None:
    """Every file the report's sources are built from."""
    write_audit(home)
    write_mlflow(home)
    write_drift(home)
    write_quality(home)
    write_scores(home)
    write_other_reports(home)
