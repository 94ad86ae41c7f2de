"""Helpers for the collector tests: reading landed files, running the CLI, a scripted server.

The simulator fixtures live in tests/support/simulator.py; these add what the collector tests
(tests/ingest, the collect flows' tests in tests/flows, the hostile landing in tests/dbt) need
on top: the landed records, a config file with test flush settings for `tradewatch collect`
subprocesses, and a tiny WebSocket server that sends exactly the frames a test scripts (for
trades the simulator never produces, e.g. unknown symbols).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import yaml
from websockets.sync.server import ServerConnection, serve

from flows.config import DEFAULT_CONFIG, Settings, load_settings
from ingest.landing import read_landed_records

TRADEWATCH = Path(sys.executable).parent / "tradewatch"


def landed_trades(landing: Path) -> list[dict]:
    """Every trade record in the landed trade files."""
    return list(read_landed_records(landing / "trades"))


def landed_rejects(landing: Path) -> list[dict]:
    """Every reject record in the landed reject files."""
    return list(read_landed_records(landing / "rejects"))


def reason_codes(rejects: list[dict]) -> dict[str, int]:
    """How many rejects carry each reason code (the part before the colon)."""
    counts: dict[str, int] = {}
    for record in rejects:
        code = record["reason"].split(":", 1)[0]
        counts[code] = counts.get(code, 0) + 1
    return counts


def wait_for(condition: Callable[[], bool], timeout: float = 60.0, what: str = "") -> None:
    """Poll `condition` until it holds; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        time.sleep(0.02)


def settings_for(home: Path, **finnhub: object) -> Settings:
    """Project settings with the data home at `home` and Finnhub overrides (flush, backoff)."""
    settings = load_settings(environ={**os.environ, "TRADEWATCH_HOME": str(home)})
    if finnhub:
        settings = settings.model_copy(
            update={"finnhub": settings.finnhub.model_copy(update=finnhub)}
        )
    return settings


def write_config(directory: Path, *, finnhub: dict | None = None,
                 alphavantage: dict | None = None) -> Path:
    """A copy of project_config.yml with overrides, for `tradewatch --config`."""
    raw = yaml.safe_load(DEFAULT_CONFIG.read_text())
    raw["finnhub"].update(finnhub or {})
    raw["alphavantage"].update(alphavantage or {})
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "project_config.yml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    """Environment for a `tradewatch` subprocess: data home in `home`, no real keys."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("FINNHUB_API_KEY", "ALPHAVANTAGE_API_KEY")}
    env.update(TRADEWATCH_HOME=str(home), DBT_SEND_ANONYMOUS_USAGE_STATS="false",
               DO_NOT_TRACK="true", PREFECT_SERVER_ANALYTICS_ENABLED="false",
               MLFLOW_DISABLE_TELEMETRY="true")
    env.update(extra)
    return env


@contextlib.contextmanager
def scripted_server(frames: list[str | bytes], subscriptions: int) -> Iterator[str]:
    """A WebSocket server that waits for `subscriptions` subscribe messages, sends `frames`
    and then holds the connection open; yields its ws:// URL."""

    def handler(ws: ServerConnection) -> None:
        for _ in range(subscriptions):
            json.loads(ws.recv())
        for frame in frames:
            ws.send(frame)
        with contextlib.suppress(Exception):
            ws.recv()  # until the client leaves

    with serve(handler, "127.0.0.1", 0, max_size=None) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"ws://127.0.0.1:{server.socket.getsockname()[1]}"
        finally:
            server.shutdown()
            thread.join(timeout=5)
