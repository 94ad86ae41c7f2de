"""The ingest deployment's flow on a real Prefect API: a collector that fails fails the run."""

from __future__ import annotations

import os
import socket

import pytest

from flows.config import load_settings
from flows.pipeline import ingest_flow
from ingest.landing import read_landed_records
from ingest.simulator import Simulator, SimulatorConfig


def _dead_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


@pytest.mark.slow
def test_a_failed_bar_collection_fails_the_ingest_flow_run(prefect_api, tmp_path, monkeypatch):
    monkeypatch.delenv("ALPHAVANTAGE_API_KEY", raising=False)
    monkeypatch.delenv("FINNHUB_API_KEY", raising=False)
    home = tmp_path / "home"
    settings = load_settings(environ={**os.environ, "TRADEWATCH_HOME": str(home)})
    settings = settings.model_copy(update={"alphavantage": settings.alphavantage.model_copy(
        update={"retries": 0, "timeout_seconds": 1.0})})
    market = Simulator(SimulatorConfig(seed=3, max_trades=200,
                                       ground_truth_dir=tmp_path / "truth")).start()
    try:
        state = ingest_flow(url=market.ws_url, duration_seconds=60, max_trades=200,
                            bars_url=_dead_url(), settings=settings, return_state=True)
    finally:
        market.stop()

    assert state.is_failed()  # it used to show Completed with exit code 1 inside
    with pytest.raises(Exception, match="the Alpha Vantage collector exited with code 1"):
        state.result()
    assert len(list(read_landed_records(home / "landing" / "trades"))) == 200
