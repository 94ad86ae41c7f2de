"""Helpers of the whole-pipeline tests: the simulated market landed by the real collector, and
a Slack-like webhook on 127.0.0.1.

- `land_market(home, config, symbols)`: serve `config` on 127.0.0.1 and run the real Finnhub
  collector against it until every trade sent is landed under <home>/landing.
- `webhook_server()`: a Slack-like endpoint recording every alert posted to it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from ingest.finnhub import FinnhubCollector
from ingest.simulator import Simulator, SimulatorConfig

#: Proxies from the CI environment must not intercept requests to 127.0.0.1.
PROXY_VARIABLES = (
    "http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY",
)


def land_market(home: Path, config: SimulatorConfig, symbols: tuple[str, ...]) -> int:
    """Serve the market on 127.0.0.1, collect it with the real collector; trades landed."""
    with Simulator(config).start() as market:
        collector = FinnhubCollector(
            url=market.ws_url,
            symbols=symbols,
            landing_dir=home / "landing",
            flush_trades=5_000,
            flush_seconds=0.5,
            reconnect_initial_seconds=0.05,
            reconnect_max_seconds=0.5,
        )
        worker = threading.Thread(target=collector.run, name="collector", daemon=True)
        worker.start()
        market.wait_finished()
        sent = market.stats().trades_sent
        while collector.stats.received < sent and worker.is_alive():
            worker.join(timeout=0.05)
        collector.stop()
        worker.join()
    assert collector.stats.landed == sent > 0, (collector.stats, sent)
    return sent


@dataclass
class Webhook:
    """Every JSON body posted to the endpoint, in order."""

    url: str = ""
    received: list[dict] = field(default_factory=list)

    def titles(self) -> list[str]:
        """The header text of each alert (the first Slack block)."""
        return [body["blocks"][0]["text"]["text"] for body in self.received]


@contextmanager
def webhook_server() -> Iterator[Webhook]:
    """A webhook that answers 200 to every POST and records it."""
    hook = Webhook()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server API
            hook.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    hook.url = f"http://127.0.0.1:{server.server_port}/services/T0/B0/e2e-hook"
    try:
        yield hook
    finally:
        server.shutdown()
        server.server_close()
