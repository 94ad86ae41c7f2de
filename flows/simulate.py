"""`tradewatch simulate`: serve the simulated market until its end, SIGINT or SIGTERM."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from flows.config import Settings
from ingest.simulator import (
    Simulator,
    SimulatorConfig,
    SimulatorConfigError,
    SimulatorError,
    SimulatorStats,
)


def simulator_config(
    settings: Settings,
    *,
    seed: int | None = None,
    speed: float | None = None,
    duration: float | None = None,
    max_trades: int | None = None,
) -> SimulatorConfig:
    """The simulator's configuration from project settings, with command-line overrides."""
    sim = settings.simulator
    return SimulatorConfig(
        seed=sim.seed if seed is None else seed,
        symbols=settings.symbols,
        start=sim.start,
        speed=sim.speed if speed is None else speed,
        trades_per_second=sim.trades_per_second,
        anomaly_rate=sim.anomaly_rate,
        max_trades=max_trades,
        duration_seconds=duration,
        ground_truth_dir=settings.paths.ground_truth,
    )


def summary_line(stats: SimulatorStats) -> str:
    """The final line of counts."""
    return (
        f"simulator: sent {stats.trades_sent} trades in {stats.trade_messages_sent} messages "
        f"to {stats.connections} connection(s), {stats.anomalous_trades_sent} anomalous "
        f"({stats.events_sent} events), {stats.forced_disconnects} forced disconnects; "
        f"Alpha Vantage: {stats.av_requests} requests, {stats.av_rate_limited} rate-limited"
    )


def run_simulate(
    settings: Settings,
    *,
    seed: int | None = None,
    port: int | None = None,
    av_port: int | None = None,
    speed: float | None = None,
    duration: float | None = None,
    max_trades: int | None = None,
    out: Callable[[str], None] | None = None,
) -> int:
    """Serve the market on 127.0.0.1 until duration/max_trades is reached or a signal; exit code."""
    say = out or (lambda line: print(line, flush=True))
    try:
        config = simulator_config(
            settings, seed=seed, speed=speed, duration=duration, max_trades=max_trades
        )
        handle = Simulator(config).start(ws_port=port or 0, av_port=av_port or 0)
    except (SimulatorConfigError, SimulatorError) as exc:
        print(f"tradewatch simulate: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, SimulatorConfigError) else 1

    stop = threading.Event()
    previous: dict[signal.Signals, Any] = {}

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, on_signal)
    try:
        say(f"simulator: Finnhub WebSocket {handle.ws_url}")
        say(f"simulator: Alpha Vantage REST {handle.av_url}")
        say(
            f"simulator: seed {config.seed}, {len(config.symbols)} symbols from "
            f"{config.start.isoformat()}, speed {config.speed:g} "
            f"({'as fast as the client reads' if config.speed == 0 else 'x real time'}); "
            "Ctrl-C to stop"
        )
        while not stop.is_set() and not handle.wait_finished(0.2):
            pass
    finally:
        handle.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    say(summary_line(handle.stats()))
    return 0
