"""The tournament: all models judged on one test window and logged; failures never ranked."""

from __future__ import annotations

import json

import pytest
from mlflow import MlflowClient

from ml.tournament import run_tournament

LATENCY_BATCHES = (1, 200)


@pytest.fixture(scope="module")
def leaderboard_and_client(module_mlflow_store, split, market, fast_models):
    mlflow_store = module_mlflow_store
    models = {
        **fast_models,
        # A real configuration error: sklearn refuses it when fitting.
        "random_forest": {**fast_models["random_forest"], "min_samples_leaf": 0},
        "catboost": {"depth": 4},
    }
    leaderboard = run_tournament(
        split,
        models,
        tracking_uri=mlflow_store.tracking_uri,
        artifact_location=mlflow_store.artifact_location,
        experiment_name="tradewatch",
        events=market.events,
        latency_batch_sizes=LATENCY_BATCHES,
    )
    return leaderboard, MlflowClient(tracking_uri=mlflow_store.tracking_uri)


def test_failing_models_are_reported_and_never_ranked(leaderboard_and_client):
    leaderboard, client = leaderboard_and_client

    ranked = [entry.model_name for entry in leaderboard.entries]
    assert sorted(ranked) == ["isolation_forest", "lightgbm", "xgboost"]
    failures = {f.model_name: f for f in leaderboard.failures}
    assert set(failures) == {"random_forest", "catboost"}
    assert failures["random_forest"].stage == "fit"
    assert "min_samples_leaf" in failures["random_forest"].message
    assert failures["catboost"].stage == "build"
    failed_run = client.get_run(failures["random_forest"].run_id)
    assert failed_run.info.status == "FAILED"
    assert "min_samples_leaf" in failed_run.data.tags["error"]
    # The printed table lists failures after the ranked models, without a rank.
    rows = leaderboard.rows()
    assert [r["rank"] for r in rows] == [1, 2, 3, None, None]


def test_leaderboard_is_ranked_by_event_average_precision_on_one_window(
    leaderboard_and_client, split
):
    leaderboard, _ = leaderboard_and_client

    assert leaderboard.ranked_by == "event_average_precision"
    ranked = [(e.event_average_precision, e.pr_auc) for e in leaderboard.entries]
    assert ranked == sorted(ranked, reverse=True)
    # every model was judged on the same events of the same window
    assert len({e.evaluation.events for e in leaderboard.entries}) == 1
    assert [e.rank for e in leaderboard.entries] == [1, 2, 3]
    assert leaderboard.winner is leaderboard.entries[0]
    assert {e.evaluation.rows for e in leaderboard.entries} == {len(split.test)}
    assert leaderboard.split_summary["test_start"] == split.windows["test"].start.isoformat()
    assert leaderboard.labels.weak is False
    assert all(e.model_uri.startswith("models:/m-") for e in leaderboard.entries)


def test_runs_carry_the_metrics_params_and_label_policy(
    leaderboard_and_client, module_mlflow_store, split, fast_models
):
    leaderboard, client = leaderboard_and_client
    experiment = client.get_experiment(leaderboard.experiment_id)
    assert experiment.artifact_location == module_mlflow_store.artifact_location

    for entry in leaderboard.entries:
        run = client.get_run(entry.run_id)
        metrics, params, tags = run.data.metrics, run.data.params, run.data.tags
        assert run.info.status == "FINISHED"
        assert {
            "pr_auc",
            "roc_auc",
            "precision",
            "recall",
            "f1",
            "event_recall",
            "event_average_precision",
            "event_recall_at_precision",
            "alert_precision",
            "false_alerts_per_day",
            "trade_precision",
            "latency_p50_ms",
            "latency_p99_ms",
            "training_seconds",
            "event_recall_price_spike",
            "event_recall_wash_cluster",
        } <= set(metrics)
        assert metrics["pr_auc"] == pytest.approx(entry.pr_auc)
        assert metrics["event_average_precision"] == pytest.approx(entry.event_average_precision)
        assert tags["ranked_by"] == "event_average_precision"
        for key, value in fast_models[entry.model_name].items():
            assert params[key] == str(value)
        assert params["data.train_rows"] == str(len(split.train))
        assert params["data.validation_rows"] == str(len(split.validation))
        assert params["data.test_rows"] == str(len(split.test))
        assert params["data.purged_rows"] == str(sum(split.purged_rows.values()))
        assert params["data.test_start"] == split.windows["test"].start.isoformat()
        assert params["data.purge_seconds"] == "3600"
        assert json.loads(tags["label_source_mix"]) == {
            "analyst": 0,
            "ground_truth": split.labels.rows,
            "rule": 0,
        }
        assert tags["weak_labels"] == "false"
        assert tags["rank"] == str(entry.rank)
    boosted = next(e for e in leaderboard.entries if e.model_name == "lightgbm")
    assert "best_iteration" in client.get_run(boosted.run_id).data.metrics
    assert "resolved.scale_pos_weight" in client.get_run(boosted.run_id).data.params


def test_a_ranking_metric_that_cannot_be_compared_is_refused_before_any_training(split):
    with pytest.raises(ValueError, match="cannot rank by 'f1'"):
        run_tournament(split, {}, tracking_uri="sqlite:///unused.db", artifact_location=None,
                       rank_by="f1")
