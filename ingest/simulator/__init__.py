"""A deterministic simulated market on 127.0.0.1 speaking the Finnhub WebSocket and Alpha
Vantage REST protocols, with labelled anomalies and switchable faults.

    from ingest.simulator import Simulator, SimulatorConfig, FaultConfig

    with Simulator(SimulatorConfig(seed=7, max_trades=10_000)).start() as market:
        ...  # connect a collector to market.ws_url / market.av_url
        market.wait_finished(timeout=60)
        print(market.stats().trades_sent)

`collect_market(market, collector)` runs a Finnhub collector against a market until every
trade it sent was received, then stops it (how the tests and benches land a market).
"""

from ingest.simulator.collect import collect_market
from ingest.simulator.config import (
    DEFAULT_START,
    DEFAULT_SYMBOLS,
    FaultConfig,
    SimulatorConfig,
    SimulatorConfigError,
)
from ingest.simulator.ground_truth import read_ground_truth
from ingest.simulator.server import Simulator, SimulatorError, SimulatorHandle
from ingest.simulator.stats import SimulatorStats

__all__ = [
    "DEFAULT_START",
    "DEFAULT_SYMBOLS",
    "FaultConfig",
    "Simulator",
    "SimulatorConfig",
    "SimulatorConfigError",
    "SimulatorError",
    "SimulatorHandle",
    "SimulatorStats",
    "collect_market",
    "read_ground_truth",
]
