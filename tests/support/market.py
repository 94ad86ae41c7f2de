"""A simulated market landed into a data home by the real collector.

`land_market(home, config, symbols)` serves `config` on 127.0.0.1 (the simulator speaks the
Finnhub protocol) and runs the real Finnhub collector against it until every trade sent is
landed under <home>/landing, as `tradewatch demo` does. The whole-pipeline tests, the quality
tests' warehouse, the drift flow's warehouse and the dbt simulator build all land their
markets with it.
"""

from __future__ import annotations

from pathlib import Path

from ingest.finnhub import FinnhubCollector
from ingest.simulator import Simulator, SimulatorConfig, collect_market


def land_market(
    home: Path,
    config: SimulatorConfig,
    symbols: tuple[str, ...],
    *,
    flush_trades: int = 5_000,
) -> int:
    """Serve the market on 127.0.0.1, collect it with the real collector; trades landed."""
    with Simulator(config).start() as market:
        collector = FinnhubCollector(
            url=market.ws_url,
            symbols=symbols,
            landing_dir=home / "landing",
            flush_trades=flush_trades,
            flush_seconds=0.5,
            reconnect_initial_seconds=0.05,
            reconnect_max_seconds=0.5,
        )
        sent = collect_market(market, collector)
    assert collector.stats.landed == sent > 0, (collector.stats, sent)
    return sent
