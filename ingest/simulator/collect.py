"""Collect a whole simulated market with a real collector, the way the demo and tests land it."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ingest.finnhub import FinnhubCollector
    from ingest.simulator.server import SimulatorHandle


def collect_market(
    market: SimulatorHandle, collector: FinnhubCollector, *, poll_seconds: float = 0.05
) -> int:
    """Run `collector` until `market` has finished and every trade it sent was received.

    The collector runs on a thread of its own while the market plays out; once the market has
    sent its last trade the collector is stopped, which lands what it still holds. Returns
    the number of trades the market sent (compare it with `collector.stats.landed`). If the
    collector fails (a refused token, a landing that cannot be written), its exception is
    raised here, once the collector has stopped.
    """
    failure: list[BaseException] = []

    def run() -> None:
        try:
            collector.run()
        except BaseException as exc:  # re-raised in the caller's thread below
            failure.append(exc)

    worker = threading.Thread(target=run, name="finnhub-collector", daemon=True)
    worker.start()
    # A collector that died (a refused token) would leave the market waiting for it forever.
    while not market.wait_finished(timeout=poll_seconds) and worker.is_alive():
        pass
    sent = market.stats().trades_sent
    while collector.stats.received < sent and worker.is_alive():
        worker.join(timeout=poll_seconds)
    collector.stop()
    worker.join()
    if failure:
        raise failure[0]
    return sent
