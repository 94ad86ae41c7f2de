"""Registry aliases: promotion keeps the previous champion; rollback restores it and is audited."""

from __future__ import annotations

import pickle
from pathlib import Path
from urllib.parse import urlparse

import pytest

from ml.audit import AuditLog
from ml.registry import (
    CHALLENGER,
    CHAMPION,
    CONTENT_HASH_TAG,
    PREVIOUS,
    ModelIntegrityError,
    NoChampion,
    NothingToRollBack,
    content_hash,
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


# --- integrity: a registered version loads only with the artifacts it was registered with ---


class _RunsCode:
    """A pickle that runs code when loaded: what an attacker would put in the store."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _artifact_dir(registry, version: str) -> Path:
    """Where the store keeps a version's files (the logged model's artifact location)."""
    source = registry.client.get_model_version(registry.name, version).source
    model_id = source.removeprefix("models:/")
    location = registry.client.get_logged_model(model_id).artifact_location
    return Path(urlparse(location).path)


def test_a_registered_version_carries_its_content_hash_and_loads(
    registry, register_model, fitted_models
):
    version = register_model(fitted_models["lightgbm"])

    tags = registry.client.get_model_version(registry.name, version).tags
    assert tags[CONTENT_HASH_TAG] == content_hash(_artifact_dir(registry, version))
    assert registry.load_version(version).model.metadata.metadata["algorithm"] == "lightgbm"


def test_changed_artifacts_are_refused_before_anything_is_unpickled(
    registry, register_model, fitted_models, tmp_path
):
    version = register_model(fitted_models["lightgbm"])
    marker = tmp_path / "the attacker's code ran"
    (_artifact_dir(registry, version) / "python_model.pkl").write_bytes(
        pickle.dumps(_RunsCode(str(marker)))
    )

    with pytest.raises(ModelIntegrityError, match="artifacts changed since it was registered"):
        registry.load_version(version)
    assert not marker.exists()


def test_a_version_registered_around_tradewatch_is_refused_until_trusted(
    registry, register_model, fitted_models, mlflow_store, tmp_path
):
    import mlflow

    from ml.registry import use_stores

    ours = register_model(fitted_models["lightgbm"])
    use_stores(mlflow_store.tracking_uri)
    source = registry.client.get_model_version(registry.name, ours).source
    theirs = str(mlflow.register_model(source, registry.name).version)  # no hash recorded
    registry.client.set_registered_model_alias(registry.name, CHAMPION, theirs)
    audit = AuditLog(tmp_path / "audit")

    with pytest.raises(ModelIntegrityError, match=f"model trust {theirs}"):
        registry.load_alias(CHAMPION)
    registry.trust_version(theirs, audit_log=audit, reason="checked by ana", operator="ana")

    assert registry.load_alias(CHAMPION).version == theirs
    (record,) = audit.records("model_trusted")
    assert record.payload["version"] == theirs and record.payload["operator"] == "ana"


def test_with_a_signing_key_a_rewritten_hash_tag_is_refused(
    registry, register_model, fitted_models, mlflow_store, tmp_path
):
    from ml.registry import ModelRegistry

    signed = ModelRegistry(mlflow_store.tracking_uri, name=registry.name, signing_key="k3y")
    unsigned = register_model(fitted_models["lightgbm"])
    logged = registry.client.get_model_version(registry.name, unsigned).source
    version = signed.register_challenger(logged)  # the same logged model, through the key
    assert signed.load_version(version).version == version
    with pytest.raises(ModelIntegrityError, match="not signed"):
        signed.load_version(unsigned)  # registered without the key
    # Someone who can write the store swaps the pickle and rewrites the hash tag to match.
    files = _artifact_dir(registry, version)
    (files / "python_model.pkl").write_bytes(pickle.dumps(_RunsCode(str(tmp_path / "ran"))))
    registry.client.set_model_version_tag(registry.name, version, CONTENT_HASH_TAG,
                                          content_hash(files))

    with pytest.raises(ModelIntegrityError, match="not signed with this deployment's"):
        signed.load_version(version)
    with pytest.raises(ModelIntegrityError, match="not signed"):
        ModelRegistry(mlflow_store.tracking_uri, name=registry.name,
                      signing_key="another key").load_version(version)
    assert not (tmp_path / "ran").exists()
