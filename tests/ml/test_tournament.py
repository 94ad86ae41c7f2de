"""The tournament: all models judged on one test window and logged; failures never ranked."""

from __future__ import annotations

import json

import pytest
from mlflow import MlflowClient

from ml.rules import RULES_THRESHOLD
from ml.tournament import run_tournament

LATENCY_BATCHES = (1, 200)
RULE_PARAMS = {"price_spike_band_margin": 0.5, "pump_run_up_pct": 2.0}


def perfect_rule_flags(split):
    """gold_rule_flags-shaped verdicts for the test window where the rules fire on exactly the
    anomalous trades, shuffled: the baseline must line them up by trade_id."""
    test = split.test
    fired = test["is_anomaly"].astype(int)
    return (
        test[["trade_id"]]
        .assign(rules_fired=fired, rule_score=fired * RULES_THRESHOLD,
                first_rule=fired.map({1: "price_spike", 0: None}))
        .sample(frac=1.0, random_state=3)
    )


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
        rule_flags=perfect_rule_flags(split),
        rule_params=RULE_PARAMS,
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
    # The printed table lists the rules baseline after the ranked models and failures last,
    # neither with a rank.
    rows = leaderboard.rows()
    assert [r["rank"] for r in rows] == [1, 2, 3, None, None, None]
    assert [r["model"] for r in rows][3] == "rules" and rows[3]["baseline"]


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


def test_the_rules_baseline_is_judged_on_the_same_window_and_never_ranked(
    leaderboard_and_client, split
):
    leaderboard, client = leaderboard_and_client
    rules = leaderboard.baseline("rules")

    assert rules is not None and rules.baseline
    assert "rules" not in [entry.model_name for entry in leaderboard.entries]
    assert leaderboard.winner.model_name != "rules"
    # Same trades, same events as every model ...
    assert rules.evaluation.rows == len(split.test) == leaderboard.winner.evaluation.rows
    assert rules.evaluation.events == leaderboard.winner.evaluation.events > 0
    # ... and the verdicts lined up by trade_id: rules firing on exactly the anomalous trades
    # find every event with no false flag.
    assert rules.evaluation.event_recall == 1.0
    assert rules.evaluation.trade_precision == 1.0
    assert rules.evaluation.pr_auc == 1.0
    assert rules.evaluation.latency_p99_ms is None  # the rules run in the warehouse

    run = client.get_run(rules.run_id)
    winner_run = client.get_run(leaderboard.winner.run_id)
    assert run.info.run_name == "rules" and run.info.status == "FINISHED"
    assert run.data.tags["baseline"] == "true" and "rank" not in run.data.tags
    assert run.data.metrics["event_recall"] == 1.0
    assert run.data.params["pump_run_up_pct"] == "2.0"
    for window in ("test_start", "test_end", "test_rows"):
        assert run.data.params[f"data.{window}"] == winner_run.data.params[f"data.{window}"]


def test_rules_without_a_verdict_for_every_test_trade_fail_alone(
    mlflow_store, split, market, fast_models
):
    stale = perfect_rule_flags(split).iloc[10:]  # gold_rule_flags older than the features
    leaderboard = run_tournament(
        split, {"isolation_forest": fast_models["isolation_forest"]},
        tracking_uri=mlflow_store.tracking_uri,
        artifact_location=mlflow_store.artifact_location,
        events=market.events, latency_batch_sizes=(1,), rule_flags=stale,
    )

    assert [e.model_name for e in leaderboard.entries] == ["isolation_forest"]
    assert leaderboard.baselines == ()
    failure = leaderboard.failures[0]
    assert (failure.model_name, failure.error_type) == ("rules", "RuleFlagsMissing")
    assert "no verdict for 10 of" in failure.message
