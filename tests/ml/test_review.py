"""Analyst review, the pure parts: checking a decision, the label store's files, clusters of
flags and what drove a score."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from core.datahome import LABEL_DECISIONS, LABEL_DECISIONS_DIR, within
from core.volume import VolumeDataHome, VolumeError
from ml.review import (
    ReviewError,
    assign_clusters,
    check_decision,
    decision_records,
    model_contributions,
    read_decisions,
    reviewer_name,
    robust_z_drivers,
    write_decisions,
)
from tests.support.files_api import FakeFilesApi

KNOWN = ["t1", "t2", "t3"]
FLAGGED = ["t1", "t2"]


@pytest.mark.parametrize(("ids", "confirm", "kind", "reason", "message"), [
    (["t9"], False, None, "fine", r"unknown trade id\(s\) t9"),
    (["t1", "t3"], True, "price_spike", "spike", r"t3 never flagged by the champion"),
    (["t1"], False, None, "  ", r"needs a reason"),
    (["t1"], True, None, "spike", r"confirmation needs a kind"),
    (["t1"], True, "rug_pull", "spike", r"unknown kind 'rug_pull'"),
    (["t1"], False, "price_spike", "fine", r"dismissal takes no kind"),
    ([], False, None, "fine", r"at least one trade id"),
])
def test_a_bad_decision_is_refused_in_one_line(ids, confirm, kind, reason, message):
    with pytest.raises(ReviewError, match=message) as refused:
        check_decision(ids, confirm=confirm, kind=kind, reason=reason, known=KNOWN,
                       flagged=FLAGGED)
    assert "\n" not in str(refused.value)


def test_decisions_are_written_whole_in_the_contract_and_read_back_latest_first(tmp_path):
    ids = check_decision(["t1", "t2", "t1"], confirm=True, kind="wash_cluster", reason=" same ",
                         known=KNOWN, flagged=FLAGGED)
    assert ids == ["t1", "t2"]
    early = datetime(2024, 3, 8, 15, tzinfo=UTC)
    first = write_decisions(tmp_path, decision_records(
        ids, confirm=True, kind="wash_cluster", reason=" same ", reviewer="ann", now=early))
    second = write_decisions(tmp_path, decision_records(
        ["t1"], confirm=False, kind=None, reason="ordinary", reviewer="bob"))

    lines = [json.loads(line) for line in first.read_text().splitlines()]
    assert [list(line) for line in lines] == [list(LABEL_DECISIONS.columns)] * 2
    assert lines[0]["decided_at"] == "2024-03-08T15:00:00.000Z"
    assert (lines[0]["reason"], lines[0]["is_anomaly"]) == ("same", True)
    assert first.name != second.name and not list(tmp_path.glob(".*"))  # no temporaries left
    latest = read_decisions(tmp_path).latest().set_index("trade_id")
    assert latest.loc["t1", ["decision", "reviewer", "anomaly_kind"]].tolist() == [
        "dismiss", "bob", None]
    assert latest.loc["t2", "decision"] == "confirm"


def test_a_malformed_store_file_is_rejected_whole(tmp_path):
    good = write_decisions(tmp_path, decision_records(
        ["t1"], confirm=False, kind=None, reason="ok", reviewer="ann"))
    torn = tmp_path / "decisions-torn.ndjson"
    torn.write_text(good.read_text().replace("t1", "t2") + '{"decision_id": "cut')
    wrong = tmp_path / "decisions-wrong.ndjson"
    wrong.write_text(json.dumps({**json.loads(good.read_text()), "decision": "maybe"}) + "\n")

    store = read_decisions(tmp_path)

    assert sorted(store.rejected) == ["decisions-torn.ndjson", "decisions-wrong.ndjson"]
    assert store.decisions["trade_id"].tolist() == ["t1"]


def test_the_label_store_in_a_unity_catalog_volume_is_written_and_read_like_a_folder():
    volume, token = "/Volumes/surveillance/prod/tradewatch", "dapi-fake-label-token"
    with FakeFilesApi(token=token, volumes=[volume]) as api:
        home = VolumeDataHome(volume, host=api.url, environ={"DATABRICKS_TOKEN": token},
                              retry_timeout_seconds=5)
        store = within(home, LABEL_DECISIONS_DIR)
        early = datetime(2024, 3, 8, 15, tzinfo=UTC)
        first = write_decisions(store, decision_records(
            ["t1", "t2"], confirm=True, kind="wash_cluster", reason="same", reviewer="ann",
            now=early))
        write_decisions(store, decision_records(
            ["t1"], confirm=False, kind=None, reason="ordinary", reviewer="bob"))
        api.put(f"{volume}/{LABEL_DECISIONS_DIR}/decisions-torn.ndjson", b'{"decision_id": "cut')
        api.put(f"{volume}/{LABEL_DECISIONS_DIR}/.decisions-x.ndjson.1.tmp", b"{")  # hidden

        read = read_decisions(store)

        assert str(first) == f"{volume}/{LABEL_DECISIONS_DIR}/{first.name}"
        assert api.files[str(first)].decode().count("\n") == 2
        assert read.rejected == ("decisions-torn.ndjson",)
        latest = read.latest().set_index("trade_id")
        assert latest.loc["t1", ["decision", "reviewer"]].tolist() == ["dismiss", "bob"]
        assert latest.loc["t2", "anomaly_kind"] == "wash_cluster"

        store.remove(first.name)  # what a withdrawal does

        assert read_decisions(store).decisions["trade_id"].tolist() == ["t1"]
        # A volume that refuses the reader is an error, not an empty or malformed store.
        refused = VolumeDataHome(volume, host=api.url,
                                 environ={"DATABRICKS_TOKEN": "dapi-wrong"})
        with pytest.raises(VolumeError, match="Unauthenticated"):
            read_decisions(within(refused, LABEL_DECISIONS_DIR))


def test_flags_close_in_time_on_one_symbol_form_a_cluster():
    flags = pd.DataFrame({
        "trade_id": ["a", "b", "c", "d", "e"],
        "symbol": ["X", "X", "X", "Y", "X"],
        "trade_ts": pd.to_datetime(["2024-03-08 15:00:00", "2024-03-08 15:00:50",
                                    "2024-03-08 15:01:40", "2024-03-08 15:00:10",
                                    "2024-03-08 15:10:00"]),
    })
    clustered = assign_clusters(flags, gap_seconds=60).set_index("trade_id")
    assert clustered.loc[["a", "b", "c"], "cluster_id"].nunique() == 1  # chained gaps ≤ 60 s
    assert clustered.loc["a", "cluster_size"] == 3
    assert clustered.loc["d", "cluster_id"] != clustered.loc["a", "cluster_id"]
    assert clustered.loc["e", "cluster_size"] == 1


def test_reviewer_is_the_argument_then_the_environment_then_the_login():
    assert reviewer_name("ann", {"TRADEWATCH_REVIEWER": "bob"}) == "ann"
    assert reviewer_name(None, {"TRADEWATCH_REVIEWER": "bob"}) == "bob"
    assert reviewer_name(None, {}) != ""


def test_boosted_models_explain_a_score_with_their_own_contributions(fitted_models, split):
    flagged = split.test.loc[split.test["is_anomaly"]].head(1)
    for name in ("lightgbm", "xgboost"):
        model = fitted_models[name]
        drivers = model_contributions(model, flagged)
        assert drivers is not None and {d.feature for d in drivers} == set(model.features)
        assert [d.weight for d in drivers] == sorted((d.weight for d in drivers), reverse=True)
        assert drivers[0].weight > 0
    assert model_contributions(fitted_models["random_forest"], flagged) is None


def test_the_fallback_ranks_features_by_robust_distance_from_the_median():
    rng = np.random.default_rng(1)
    history = pd.DataFrame({"volume_zscore": rng.normal(0, 1, 500),
                            "rsi_14": rng.normal(50, 5, 500)})
    row = pd.Series({"volume_zscore": 0.1, "rsi_14": 95.0})
    drivers = robust_z_drivers(row, history, ["volume_zscore", "rsi_14", "session_type"])
    assert [d.feature for d in drivers] == ["rsi_14", "volume_zscore"]
    assert drivers[0].weight == pytest.approx(9, rel=0.15)
