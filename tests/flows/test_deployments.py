"""Every deployment of prefect.yaml registers with its schedule, read back from the Prefect API."""

from __future__ import annotations

import asyncio

import pytest

from flows.serve import read_deployments, runner_deployments

EXPECTED = {
    "continuous-ingestion": ("ingest", {"interval": 300.0}),
    "transform": ("transform", {"cron": "*/15 * * * *"}),
    "drift-check": ("drift", {"cron": "*/30 * * * *"}),
    "nightly-retraining": ("training", {"cron": "0 0 * * *"}),
    "full-pipeline": ("pipeline", None),
}


def test_prefect_yaml_declares_the_schedules_users_expect():
    specs = {spec.name: spec for spec in read_deployments()}
    assert set(specs) == set(EXPECTED)
    for spec in specs.values():
        assert spec.load_flow().name == EXPECTED[spec.name][0]


@pytest.mark.slow
def test_serve_registers_every_deployment_with_its_schedule(prefect_api):
    from prefect.client.orchestration import get_client

    for deployment in runner_deployments():
        deployment.apply()

    async def read_back():
        async with get_client() as client:
            found = {}
            for deployment in await client.read_deployments():
                flow = await client.read_flow(deployment.flow_id)
                found[deployment.name] = (flow.name, deployment.schedules)
            return found

    registered = asyncio.run(read_back())
    assert set(registered) == set(EXPECTED)
    for name, (flow_name, expected_schedule) in EXPECTED.items():
        got_flow, schedules = registered[name]
        assert got_flow == flow_name
        if expected_schedule is None:
            assert schedules == []
            continue
        assert len(schedules) == 1
        schedule = schedules[0].schedule
        if "cron" in expected_schedule:
            assert schedule.cron == expected_schedule["cron"]
            assert schedule.timezone == "UTC"
        else:
            assert schedule.interval.total_seconds() == expected_schedule["interval"]
