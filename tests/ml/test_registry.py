"""Registry aliases: promotion keeps the previous champion; rollback restores it and is audited."""

from __future__ import annotations

import pytest

from ml.audit import AuditLog
from ml.registry import (
    CHALLENGER,
    CHAMPION,
    PREVIOUS,
    NoChampion,
    NothingToRollBack,
    uri_for_model_alias,
    uri_for_model_version,
)


def test_uri_helpers():
    assert (
        uri_for_model_alias("tradewatch_anomaly", "champion")
        == "models:/tradewatch_anomaly@champion"
    )
    assert uri_for_model_version("tradewatch_anomaly", 3) == "models:/tradewatch_anomaly/3"


def test_promotion_moves_the_old_champion_to_previous(
    registry, register_model, fitted_models, tmp_path
):
    audit = AuditLog(tmp_path / "audit")
    first = register_model(fitted_models["lightgbm"])
    assert registry.aliases() == {CHALLENGER: first}

    registry.promote(first, audit_log=audit, reason="no champion")
    second = register_model(fitted_models["xgboost"])
    promotion = registry.promote(second, audit_log=audit, reason="better")

    assert registry.aliases() == {CHAMPION: second, PREVIOUS: first}
    assert promotion.previous_version == first
    records = [r.payload for r in audit.records("promotion")]
    assert [(p["champion_version"], p["previous_version"]) for p in records] == [
        (first, None),
        (second, first),
    ]


def test_rollback_restores_the_previous_champion_and_is_audited(
    registry, register_model, fitted_models, split, tmp_path
):
    audit = AuditLog(tmp_path / "audit")
    good = register_model(fitted_models["lightgbm"])
    registry.promote(good, audit_log=audit, reason="no champion")
    bad = register_model(fitted_models["isolation_forest"])
    registry.promote(bad, audit_log=audit, reason="promoted by mistake")

    result = registry.rollback(audit_log=audit, reason="alerts from the desk")

    assert result.champion_version == good and result.rolled_back_version == bad
    assert registry.version_for_alias(CHAMPION) == good
    assert registry.version_for_alias(PREVIOUS) is None
    assert registry.client.get_model_version(registry.name, bad).tags["rolled_back"] == "true"
    # What scores from now on is the restored model.
    loaded = registry.load_alias(CHAMPION)
    assert loaded.version == good
    assert loaded.model.metadata.metadata["algorithm"] == "lightgbm"
    (record,) = audit.records("rollback")
    assert record.payload == {
        "model_name": registry.name,
        "champion_version": good,
        "rolled_back_version": bad,
        "reason": "alerts from the desk",
    }
    # A second rollback has nowhere to go: it must not re-promote the demoted version.
    with pytest.raises(NothingToRollBack, match=f"champion is version {good}"):
        registry.rollback(audit_log=audit)
    assert registry.version_for_alias(CHAMPION) == good


def test_rollback_and_loading_without_a_champion_are_typed_errors(registry, tmp_path):
    with pytest.raises(NoChampion):
        registry.rollback(audit_log=AuditLog(tmp_path / "audit"))
    with pytest.raises(NoChampion, match="tradewatch train"):
        registry.load_alias(CHAMPION)
    assert list(AuditLog(tmp_path / "audit").records()) == []
