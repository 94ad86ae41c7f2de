"""Start and stop the simulated market: the WebSocket feed and the Alpha Vantage API."""

from __future__ import annotations

import logging
import threading
from types import TracebackType

from websockets.sync.server import Server, serve

from ingest.simulator.alpha_vantage_api import AlphaVantageApi, make_http_server
from ingest.simulator.config import SimulatorConfig
from ingest.simulator.feed import Feed
from ingest.simulator.ground_truth import GroundTruthWriter
from ingest.simulator.market import Market
from ingest.simulator.stats import Counters, SimulatorStats

CLIENT_MESSAGE_LIMIT = 64 * 1024  # subscribe messages are tiny


class SimulatorError(RuntimeError):
    """The simulator could not start (for example, a port is taken)."""


class SimulatorHandle:
    """A running simulator; a context manager that stops it on exit."""

    def __init__(self, feed: Feed, ws_server: Server, http_server, counters: Counters,
                 ground_truth: GroundTruthWriter, threads: list[threading.Thread], host: str):
        self._feed = feed
        self._ws_server = ws_server
        self._http_server = http_server
        self._counters = counters
        self._ground_truth = ground_truth
        self._threads = threads
        self._stopped = False
        self.ws_url = f"ws://{host}:{ws_server.socket.getsockname()[1]}"
        self.av_url = f"http://{host}:{http_server.server_address[1]}"

    def __repr__(self) -> str:
        return f"SimulatorHandle(ws_url={self.ws_url!r}, av_url={self.av_url!r})"

    def stats(self) -> SimulatorStats:
        """What the simulator has sent and answered so far."""
        return self._counters.snapshot()

    def sent_trade_ids(self) -> set[str]:
        """Ids of every valid trade sent (only with `record_sent_ids`)."""
        return self._feed.sent_trade_ids()

    def wait_finished(self, timeout: float | None = None) -> bool:
        """Wait until max_trades or the end of the duration is reached and connections closed."""
        return self._feed.finished.wait(timeout)

    def stop(self) -> None:
        """Stop serving: cut the connections, shut both servers, close the ground-truth files."""
        if self._stopped:
            return
        self._stopped = True
        self._feed.stop()
        self._ws_server.shutdown()
        self._http_server.shutdown()
        self._http_server.server_close()
        for thread in self._threads:
            thread.join(timeout=10.0)
        self._ground_truth.close()

    def __enter__(self) -> SimulatorHandle:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


class Simulator:
    """The simulated market of one configuration."""

    def __init__(self, config: SimulatorConfig):
        self.config = config
        self.market = Market(config)

    def start(self, host: str = "127.0.0.1", ws_port: int = 0, av_port: int = 0) -> SimulatorHandle:
        """Serve on background threads and return at once; port 0 picks a free port."""
        counters = Counters()
        ground_truth = GroundTruthWriter(self.config.ground_truth_dir)
        feed = Feed(self.config, self.market, counters, ground_truth)
        api = AlphaVantageApi(self.config, self.market, counters)
        try:
            ws_server = serve(
                feed.handle, host, ws_port,
                compression=None, ping_interval=None, close_timeout=2,
                max_size=CLIENT_MESSAGE_LIMIT, logger=_quiet_logger(),
            )
        except OSError as exc:
            ground_truth.close()
            raise SimulatorError(
                f"cannot serve the WebSocket feed on {host}:{ws_port} ({exc.strerror}): "
                "choose another port (0 picks a free one)"
            ) from None
        try:
            http_server = make_http_server(api, host, av_port)
        except OSError as exc:
            ws_server.socket.close()
            ground_truth.close()
            raise SimulatorError(
                f"cannot serve the Alpha Vantage API on {host}:{av_port} ({exc.strerror}): "
                "choose another port (0 picks a free one)"
            ) from None
        threads = [
            threading.Thread(target=ws_server.serve_forever, name="simulator-ws", daemon=True),
            threading.Thread(target=http_server.serve_forever, args=(0.05,), name="simulator-av",
                             daemon=True),
            threading.Thread(target=feed.run, name="simulator-clock", daemon=True),
        ]
        for thread in threads:
            thread.start()
        return SimulatorHandle(feed, ws_server, http_server, counters, ground_truth, threads, host)


def _quiet_logger() -> logging.Logger:
    """websockets logs every handshake failure at error level; the simulator only warns."""
    logger = logging.getLogger("ingest.simulator.websockets")
    logger.setLevel(logging.CRITICAL)
    return logger
