"""Every deployment of prefect.yaml registers with its schedule, read back from the Prefect API."""

from __future__ import annotations

import asyncio

import pytest

from flows.serve import read_deployments, runner_deployments
from flows.warehouse import WAREHOUSE_LIMIT, ensure_warehouse_limit

EXPECTED = {
    "continuous-ingestion": ("ingest", {"interval": 300.0}),
    "scoring-cycle": ("cycle", {"interval": 300.0}),
    "drift-check": ("drift", {"cron": "7,37 * * * *"}),
    "nightly-retraining": ("training", {"cron": "0 0 * * *"}),
    "daily-bars": ("bars", {"cron": "30 22 * * 1-5"}),
    "transform": ("transform", None),
    "full-pipeline": ("pipeline", None),
}
#: At most one run at a time; a run due while one is running is cancelled.
ONE_AT_A_TIME = {"continuous-ingestion", "scoring-cycle"}


def test_prefect_yaml_declares_the_schedules_users_expect():
    specs = {spec.name: spec for spec in read_deployments()}
    assert set(specs) == set(EXPECTED)
    for spec in specs.values():
        assert spec.load_flow().name == EXPECTED[spec.name][0]
    # The collector runs until stopped; the cycle takes what it lands.
    assert specs["continuous-ingestion"].parameters == {"duration_seconds": None, "bars": False}


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
                found[deployment.name] = (flow.name, deployment.schedules, deployment)
            limits = {limit.name: limit.limit
                      for limit in await client.read_global_concurrency_limits()}
            return found, limits

    ensure_warehouse_limit()
    registered, limits = asyncio.run(read_back())
    assert set(registered) == set(EXPECTED)
    # The warehouse's one slot, shared by every flow step that opens it (shown in the UI).
    assert limits[WAREHOUSE_LIMIT] == 1
    for name, (flow_name, expected_schedule) in EXPECTED.items():
        got_flow, schedules, deployment = registered[name]
        assert got_flow == flow_name
        if name in ONE_AT_A_TIME:
            assert deployment.global_concurrency_limit.limit == 1
            assert deployment.concurrency_options.collision_strategy == "CANCEL_NEW"
        else:
            assert deployment.global_concurrency_limit is None
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
