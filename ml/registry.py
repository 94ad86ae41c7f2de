"""The model registry: one registered model with aliases champion, challenger and previous.

A thin layer over the MLflow 3 client. Promotion moves the replaced champion to `previous`;
rollback moves `champion` back to `previous` and records it in the audit log. On Databricks
pass `registry_uri="databricks-uc"` and a three-part name (catalog.schema.tradewatch_anomaly).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from ml.audit import AuditLog

DEFAULT_MODEL_NAME = "tradewatch_anomaly"
CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS = "previous"


class RegistryError(RuntimeError):
    """The registry cannot do what was asked."""


class NoChampion(RegistryError):
    """No version holds the champion alias yet."""


class NothingToRollBack(RegistryError):
    """There is no previous champion to return to."""


def uri_for_model_alias(name: str, alias: str) -> str:
    """models:/<name>@<alias>"""
    return f"models:/{name}@{alias}"


def uri_for_model_version(name: str, version: str | int) -> str:
    """models:/<name>/<version>"""
    return f"models:/{name}/{version}"


def use_stores(tracking_uri: str, registry_uri: str | None = None) -> None:
    """Point MLflow's fluent API (runs, log_model, load_model) at these stores."""
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(registry_uri or tracking_uri)


def _not_found(exc: MlflowException) -> bool:
    return exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND")


@dataclass(frozen=True)
class Promotion:
    """A version became champion; the one it replaced (if any) is now `previous`."""

    model_name: str
    champion_version: str
    previous_version: str | None
    audit_event_id: str


@dataclass(frozen=True)
class Rollback:
    """The champion went back to the previous version."""

    model_name: str
    champion_version: str
    rolled_back_version: str
    audit_event_id: str


@dataclass(frozen=True)
class LoadedModel:
    """A registered pyfunc loaded for scoring, with the version it came from."""

    model: Any
    name: str
    version: str
    uri: str


class ModelRegistry:
    """The registered model `name` in the registry behind `tracking_uri`/`registry_uri`."""

    def __init__(
        self, tracking_uri: str, *, name: str = DEFAULT_MODEL_NAME, registry_uri: str | None = None
    ) -> None:
        self.name = name
        self.tracking_uri = tracking_uri
        self.registry_uri = registry_uri or tracking_uri
        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=self.registry_uri)

    def __repr__(self) -> str:
        return f"ModelRegistry({self.name!r})"

    def aliases(self) -> dict[str, str]:
        """alias → version (empty when the model is not registered yet).

        Only "this model does not exist" counts as empty; any other registry failure
        propagates, so that callers deciding on it fail closed.
        """
        try:
            model = self.client.get_registered_model(self.name)
        except MlflowException as exc:
            if _not_found(exc):
                return {}
            raise
        return {alias: str(version) for alias, version in (model.aliases or {}).items()}

    def version_for_alias(self, alias: str) -> str | None:
        """The version holding `alias`, or None when the model or the alias does not exist."""
        return self.aliases().get(alias)

    def register_challenger(self, model_uri: str, *, tags: dict[str, Any] | None = None) -> str:
        """Register a logged model (models:/m-<id>) as a new version aliased `challenger`.

        Goes through mlflow.register_model, which creates the registered model on first use
        and links the version to its logged model (and, on Unity Catalog, uploads it).
        """
        use_stores(self.tracking_uri, self.registry_uri)
        version = str(
            mlflow.register_model(
                model_uri, self.name, tags={k: str(v) for k, v in (tags or {}).items()}
            ).version
        )
        self.client.set_registered_model_alias(self.name, CHALLENGER, version)
        return version

    def promote(
        self,
        version: str | int,
        *,
        audit_log: AuditLog,
        reason: str,
        details: dict[str, Any] | None = None,
    ) -> Promotion:
        """Make `version` champion, move the replaced champion to `previous`, and audit it."""
        version = str(version)
        old_champion = self.version_for_alias(CHAMPION)
        if old_champion == version:
            raise RegistryError(f"{self.name} version {version} is already the champion")
        if old_champion is not None:
            self.client.set_registered_model_alias(self.name, PREVIOUS, old_champion)
        self.client.set_registered_model_alias(self.name, CHAMPION, version)
        if self.version_for_alias(CHALLENGER) == version:
            self.client.delete_registered_model_alias(self.name, CHALLENGER)
        record = audit_log.append(
            "promotion",
            {
                "model_name": self.name,
                "champion_version": version,
                "previous_version": old_champion,
                "reason": reason,
                **(details or {}),
            },
        )
        return Promotion(self.name, version, old_champion, record.event_id)

    def rollback(self, *, audit_log: AuditLog, reason: str = "manual rollback") -> Rollback:
        """Point `champion` back at `previous`, tag the demoted version, and audit it.

        `previous` is cleared afterwards, so a second rollback cannot re-promote the version
        just demoted; it fails with NothingToRollBack instead.
        """
        champion = self.version_for_alias(CHAMPION)
        if champion is None:
            raise NoChampion(f"{self.name} has no champion: nothing to roll back")
        previous = self.version_for_alias(PREVIOUS)
        if previous is None:
            raise NothingToRollBack(
                f"{self.name} has no previous champion to return to "
                f"(the champion is version {champion})"
            )
        self.client.set_registered_model_alias(self.name, CHAMPION, previous)
        self.client.delete_registered_model_alias(self.name, PREVIOUS)
        self.client.set_model_version_tag(self.name, champion, "rolled_back", "true")
        record = audit_log.append(
            "rollback",
            {
                "model_name": self.name,
                "champion_version": previous,
                "rolled_back_version": champion,
                "reason": reason,
            },
        )
        return Rollback(self.name, previous, champion, record.event_id)

    def load_version(self, version: str | int) -> LoadedModel:
        """Load one registered version as a pyfunc."""
        uri = uri_for_model_version(self.name, version)
        use_stores(self.tracking_uri, self.registry_uri)
        return LoadedModel(mlflow.pyfunc.load_model(uri), self.name, str(version), uri)

    def load_alias(self, alias: str = CHAMPION) -> LoadedModel:
        """Load the version behind `alias`; NoChampion when the alias is not set."""
        version = self.version_for_alias(alias)
        if version is None:
            raise NoChampion(f"{self.name} has no {alias} version: run `tradewatch train` first")
        return self.load_version(version)
