"""Fixtures of the flow tests: a real Prefect API (a temporary local server) started once, the
simulated market (tests/support/simulator.py) and the quality tests' warehouse
(tests/support/quality_home.py)."""

from __future__ import annotations

import pytest

from tests.support.quality_home import corrupted, simulated_home  # noqa: F401 (fixtures)
from tests.support.simulator import ground_truth_dir, simulator  # noqa: F401 (fixtures)


@pytest.fixture(scope="session")
def prefect_api():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
