"""The model registry: one registered model with aliases champion, challenger and previous.

A thin layer over the MLflow 3 client. Promotion moves the replaced champion to `previous`;
rollback moves `champion` back to `previous` and records it in the audit log. On Databricks
pass `registry_uri="databricks-uc"` and a three-part name (catalog.schema.tradewatch_anomaly).

Integrity. A model is a pickle: loading it runs code, so whoever can change the files of a
registered version, or point the champion alias at a version of their own, gets code run by
train, score and drift. Each version registered here carries the SHA-256 of its artifacts
(tag `tradewatch.content_sha256`), computed when it is registered; `load_version` downloads
the artifacts, hashes them and loads that very copy only when the hash matches, else it
raises ModelIntegrityError (the flows alert). A version without the tag (registered before
this check, or not by Tradewatch) is refused the same way until `trust_version` records its
hash on the operator's word (`tradewatch model trust`). With a signing key (an environment
secret, see flows) the tag is also signed (HMAC-SHA256 over name, version and hash, tag
`tradewatch.content_hmac`): then a process that can write the MLflow store but does not hold
the key cannot register or re-tag a version the flows will load.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import shutil
import tempfile
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from ml.audit import AuditLog

DEFAULT_MODEL_NAME = "tradewatch_anomaly"
CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS = "previous"
CONTENT_HASH_TAG = "tradewatch.content_sha256"
CONTENT_HMAC_TAG = "tradewatch.content_hmac"
#: Files MLflow writes into a download of a models:/ URI, not stored with the model.
_GENERATED_FILES = frozenset({"registered_model_meta"})


class RegistryError(RuntimeError):
    """The registry cannot do what was asked."""


class NoChampion(RegistryError):
    """No version holds the champion alias yet."""


class NothingToRollBack(RegistryError):
    """There is no previous champion to return to."""


class ModelIntegrityError(RegistryError):
    """A registered version's artifacts do not match what was recorded at registration."""

    def __init__(self, message: str, version: str = "", problem: str = "") -> None:
        super().__init__(message)
        self.version = version
        self.problem = problem


def content_hash(directory: Path | str) -> str:
    """SHA-256 over every file of a model directory: relative path, size and bytes, sorted."""
    root = Path(directory)
    digest = hashlib.sha256()
    files = sorted(
        path for path in root.rglob("*")
        if path.is_file() and path.relative_to(root).as_posix() not in _GENERATED_FILES
    )
    for path in files:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(str(path.stat().st_size).encode() + b"\0")
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def _quiet_downloads() -> Iterator[None]:
    """No progress bars on stderr for the downloads the integrity check makes."""
    name = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    before = os.environ.get(name)
    os.environ[name] = "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


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
class RegisteredVersion:
    """One registered version: the model kind that won its tournament, its run, when."""

    version: str
    model_name: str | None = None
    run_id: str | None = None
    created_at: datetime | None = None


@dataclass(frozen=True)
class LoggedRun:
    """One run logged to an MLflow experiment (a tournament entry), as the report reads it."""

    run_id: str
    model: str
    started_at: datetime
    status: str
    rank: int | None
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    #: the `tournament_id` tag (runs logged before it was tagged have none)
    tournament_tag: str | None = None
    #: the `data.test_end` parameter: runs of one tournament share their test window
    test_window: str | None = None


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
        self,
        tracking_uri: str,
        *,
        name: str = DEFAULT_MODEL_NAME,
        registry_uri: str | None = None,
        signing_key: str | bytes | None = None,
    ) -> None:
        self.name = name
        self.tracking_uri = tracking_uri
        self.registry_uri = registry_uri or tracking_uri
        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=self.registry_uri)
        if isinstance(signing_key, str):
            signing_key = signing_key.encode()
        self._signing_key = signing_key or None

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

    def versions(self) -> dict[str, RegisteredVersion]:
        """version → its registration record (empty when the model is not registered yet)."""
        try:
            found = self.client.search_model_versions(f"name = '{self.name}'")
        except MlflowException as exc:
            if _not_found(exc):
                return {}
            raise
        versions = {}
        for version in found:
            tags = version.tags or {}
            created = (
                datetime.fromtimestamp(version.creation_timestamp / 1000, UTC)
                if version.creation_timestamp else None
            )
            versions[str(version.version)] = RegisteredVersion(
                str(version.version), tags.get("model_name"),
                tags.get("run_id") or version.run_id, created,
            )
        return versions

    def logged_runs(self, experiment: str, *, max_results: int = 1000) -> list[LoggedRun]:
        """The newest `max_results` active runs of `experiment`, newest first (empty when the
        experiment does not exist)."""
        from mlflow.entities import ViewType

        found = self.client.get_experiment_by_name(experiment)
        if found is None or found.lifecycle_stage == "deleted":
            return []
        runs = self.client.search_runs(
            [found.experiment_id], run_view_type=ViewType.ACTIVE_ONLY,
            max_results=max_results, order_by=["attributes.start_time DESC"],
        )
        logged = []
        for run in runs:
            tags, rank = run.data.tags, run.data.tags.get("rank")
            logged.append(LoggedRun(
                run_id=run.info.run_id,
                model=tags.get("model") or run.info.run_name or "?",
                started_at=datetime.fromtimestamp(run.info.start_time / 1000, UTC),
                status=run.info.status,
                rank=int(rank) if rank and rank.isdigit() else None,
                metrics=dict(run.data.metrics),
                error=tags.get("error"),
                tournament_tag=tags.get("tournament_id") or None,
                test_window=run.data.params.get("data.test_end"),
            ))
        return logged

    def version_for_alias(self, alias: str) -> str | None:
        """The version holding `alias`, or None when the model or the alias does not exist."""
        return self.aliases().get(alias)

    def register_challenger(self, model_uri: str, *, tags: dict[str, Any] | None = None) -> str:
        """Register a logged model (models:/m-<id>) as a new version aliased `challenger`.

        Goes through mlflow.register_model, which creates the registered model on first use
        and links the version to its logged model (and, on Unity Catalog, uploads it).
        """
        use_stores(self.tracking_uri, self.registry_uri)
        with tempfile.TemporaryDirectory(prefix="tradewatch-model-") as scratch:
            digest = content_hash(self._download(model_uri, Path(scratch)))
        version = str(
            mlflow.register_model(
                model_uri, self.name,
                tags={**{k: str(v) for k, v in (tags or {}).items()}, CONTENT_HASH_TAG: digest},
            ).version
        )
        self._sign(version, digest)
        self.client.set_registered_model_alias(self.name, CHALLENGER, version)
        return version

    def _download(self, uri: str, into: Path) -> Path:
        with _quiet_downloads():
            return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(into)))

    def _signature(self, version: str, digest: str) -> str | None:
        if self._signing_key is None:
            return None
        message = f"{self.name}\n{version}\n{digest}".encode()
        return hmac.new(self._signing_key, message, hashlib.sha256).hexdigest()

    def _sign(self, version: str, digest: str) -> None:
        signature = self._signature(version, digest)
        if signature is not None:
            self.client.set_model_version_tag(self.name, version, CONTENT_HMAC_TAG, signature)

    def _integrity_problem(self, version: str, tags: dict[str, str], actual: str) -> str | None:
        expected = tags.get(CONTENT_HASH_TAG)
        if not expected:
            return (
                "it carries no content hash (registered before Tradewatch recorded one, or not "
                f"by Tradewatch); check it, then `tradewatch model trust {version} --reason ...`"
            )
        if not hmac.compare_digest(expected, actual):
            return (
                f"its artifacts changed since it was registered (sha256 {actual[:12]}..., "
                f"registered {expected[:12]}...)"
            )
        signature = self._signature(version, actual)
        if signature is not None and not hmac.compare_digest(
            tags.get(CONTENT_HMAC_TAG) or "", signature
        ):
            return (
                "its content hash is not signed with this deployment's signing key (registered "
                "without it, or its tags were rewritten)"
            )
        return None

    def trust_version(
        self, version: str | int, *, audit_log: AuditLog, reason: str, operator: str
    ) -> str:
        """Record the current artifacts' hash for `version` on an operator's word; audit it.

        For versions registered before the hash existed, or whose change was checked and is
        accepted. Returns the recorded hash.
        """
        version = str(version)
        if not reason.strip():
            raise RegistryError("trusting a model version needs a reason")
        tags = self.client.get_model_version(self.name, version).tags or {}
        with tempfile.TemporaryDirectory(prefix="tradewatch-model-") as scratch:
            digest = content_hash(
                self._download(uri_for_model_version(self.name, version), Path(scratch))
            )
        self.client.set_model_version_tag(self.name, version, CONTENT_HASH_TAG, digest)
        self._sign(version, digest)
        audit_log.append("model_trusted", {
            "model_name": self.name,
            "version": version,
            "content_sha256": digest,
            "previous_content_sha256": tags.get(CONTENT_HASH_TAG),
            "signed": self._signing_key is not None,
            "reason": reason.strip(),
            "operator": operator,
        })
        return digest

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
        """Load one registered version as a pyfunc, after checking its artifacts' hash.

        Raises ModelIntegrityError, loading nothing, when the artifacts do not match the hash
        recorded at registration (or carry none, or its signature does not verify).
        """
        version = str(version)
        uri = uri_for_model_version(self.name, version)
        use_stores(self.tracking_uri, self.registry_uri)
        tags = self.client.get_model_version(self.name, version).tags or {}
        scratch = tempfile.mkdtemp(prefix="tradewatch-model-")
        try:
            local = self._download(uri, Path(scratch))
            problem = self._integrity_problem(version, tags, content_hash(local))
            if problem is not None:
                raise ModelIntegrityError(
                    f"refusing to load {self.name} version {version}: {problem}",
                    version, problem,
                )
            # Load the copy that was checked, not the store again (it could change meanwhile).
            model = mlflow.pyfunc.load_model(str(local))
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        weakref.finalize(model, shutil.rmtree, scratch, True)
        return LoadedModel(model, self.name, version, uri)

    def load_alias(self, alias: str = CHAMPION) -> LoadedModel:
        """Load the version behind `alias`; NoChampion when the alias is not set."""
        version = self.version_for_alias(alias)
        if version is None:
            raise NoChampion(f"{self.name} has no {alias} version: run `tradewatch train` first")
        return self.load_version(version)
