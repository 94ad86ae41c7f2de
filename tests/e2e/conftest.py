"""Whole-pipeline fixtures: a real Prefect API (a temporary local server), started once."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def prefect_api():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
