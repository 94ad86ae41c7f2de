"""`tradewatch serve`: every deployment of prefect.yaml, with its schedule, from one process."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from flows.transform import REPO_ROOT

PREFECT_YAML = REPO_ROOT / "prefect.yaml"


class DeploymentConfigError(ValueError):
    """prefect.yaml is missing, unreadable or names a flow that does not exist."""


@dataclass(frozen=True)
class DeploymentSpec:
    """One deployment as prefect.yaml declares it."""

    name: str
    entrypoint: str
    description: str
    parameters: dict[str, Any]
    schedules: tuple[dict[str, Any], ...]
    concurrency_limit: dict[str, Any] | None = None

    def load_flow(self) -> Any:
        """Import the flow object named by the entrypoint (`flows/pipeline.py:pipeline`)."""
        path, _, attribute = self.entrypoint.partition(":")
        module = path.removesuffix(".py").replace("/", ".")
        try:
            return getattr(importlib.import_module(module), attribute)
        except (ImportError, AttributeError) as exc:
            raise DeploymentConfigError(
                f"deployment {self.name}: cannot load {self.entrypoint} ({exc})"
            ) from exc


def read_deployments(path: Path = PREFECT_YAML) -> list[DeploymentSpec]:
    """The deployments declared in prefect.yaml."""
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise DeploymentConfigError(f"cannot read {path}: {exc}") from exc
    specs = []
    for entry in (document or {}).get("deployments") or []:
        try:
            specs.append(DeploymentSpec(
                name=entry["name"],
                entrypoint=entry["entrypoint"],
                description=entry.get("description", ""),
                parameters=dict(entry.get("parameters") or {}),
                schedules=tuple(entry.get("schedules") or ()),
                concurrency_limit=_concurrency(entry.get("concurrency_limit")),
            ))
        except (KeyError, TypeError) as exc:
            raise DeploymentConfigError(f"{path}: a deployment lacks {exc}") from exc
    if not specs:
        raise DeploymentConfigError(f"{path} declares no deployments")
    return specs


def _concurrency(value: Any) -> dict[str, Any] | None:
    """prefect.yaml's `concurrency_limit`: a number, or {limit, collision_strategy}."""
    if value is None:
        return None
    if isinstance(value, int):
        return {"limit": value}
    if isinstance(value, dict) and isinstance(value.get("limit"), int):
        return dict(value)
    raise DeploymentConfigError(f"concurrency_limit {value!r}: expected a number or {{limit: N}}")


def _schedules(spec: DeploymentSpec) -> list[Any]:
    from prefect.schedules import Cron, Interval

    schedules = []
    for entry in spec.schedules:
        if "cron" in entry:
            schedules.append(Cron(entry["cron"], timezone=entry.get("timezone", "UTC")))
        elif "interval" in entry:
            schedules.append(Interval(timedelta(seconds=float(entry["interval"]))))
        else:
            raise DeploymentConfigError(
                f"deployment {spec.name}: schedule {entry} needs cron or interval"
            )
    return schedules


def runner_deployments(path: Path = PREFECT_YAML) -> list[Any]:
    """prefect.yaml's deployments as RunnerDeployments for `prefect.serve`."""
    from prefect.client.schemas.objects import ConcurrencyLimitConfig

    return [
        spec.load_flow().to_deployment(
            name=spec.name,
            description=" ".join(spec.description.split()) or None,
            parameters=spec.parameters or None,
            schedules=_schedules(spec),
            concurrency_limit=(
                ConcurrencyLimitConfig(**spec.concurrency_limit)
                if spec.concurrency_limit else None
            ),
        )
        for spec in read_deployments(path)
    ]


def run_serve() -> int:
    """Register every deployment and run their schedules until interrupted."""
    from prefect import serve

    from flows.warehouse import WAREHOUSE_LIMIT, ensure_warehouse_limit

    ensure_warehouse_limit()
    print(f"global concurrency limit {WAREHOUSE_LIMIT}: 1 slot", flush=True)
    deployments = runner_deployments()
    print(f"serving {len(deployments)} deployments: "
          + ", ".join(d.name for d in deployments), flush=True)
    serve(*deployments)
    return 0
