"""Benchmark: Finnhub collector throughput and memory, the simulator in a separate process.

    .venv/bin/python bench/ingest/run.py                 # 5,000,000 trades (about two minutes)
    .venv/bin/python bench/ingest/run.py --trades 200000 # a quick run

Three runs, each against a fresh `tradewatch simulate --speed 0` process (the market replayed
as fast as the client reads, same seed, so every run sees the same trades):

1. baseline, websocket-client: `ws.recv()` + `orjson.loads` of every message, nothing else;
2. baseline, receive floor: the collector's own frame reader + `orjson.loads`, nothing else;
3. the collector: validation, trade ids, NDJSON landing with fsync, in its own process, its
   resident memory sampled from outside while it runs.

It prints trades landed per second, the ratio against both baselines, the collector's peak
RSS and its RSS over the run (first vs last quarter), and checks every trade was landed once.
Baselines read `--baseline-trades` trades (default: as many as the collector, at most 1M).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import psutil
import websocket

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from ingest.finnhub import FinnhubCollector, _FrameReader  # noqa: E402
from ingest.landing import iter_landed_files  # noqa: E402

TRADEWATCH = Path(sys.executable).parent / "tradewatch"
SYMBOLS = ("AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "TSLA", "JPM", "XOM", "KO")
TARGET_TRADES_PER_SECOND = 100_000


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _environment(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(TRADEWATCH_HOME=str(home), DBT_SEND_ANONYMOUS_USAGE_STATS="false",
               DO_NOT_TRACK="true", PREFECT_SERVER_ANALYTICS_ENABLED="false",
               MLFLOW_DISABLE_TELEMETRY="true")
    env.pop("FINNHUB_API_KEY", None)
    return env


@contextlib.contextmanager
def simulator(trades: int, seed: int, home: Path) -> Iterator[str]:
    """A `tradewatch simulate` process replaying as fast as the client reads; yields its URL."""
    port, av_port = _free_port(), _free_port()
    process = subprocess.Popen(
        [str(TRADEWATCH), "simulate", "--seed", str(seed), "--port", str(port),
         "--av-port", str(av_port), "--speed", "0", "--max-trades", str(trades)],
        env=_environment(home), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the simulator exited: {process.stderr.read().decode()[-500:]}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("the simulator did not start listening within 60 s")
            time.sleep(0.1)
        yield f"ws://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _subscribe(url: str) -> websocket.WebSocket:
    ws = websocket.create_connection(url, timeout=30, skip_utf8_validation=True)
    for symbol in SYMBOLS:
        ws.send(orjson.dumps({"type": "subscribe", "symbol": symbol}).decode())
    return ws


def baseline_websocket_client(url: str, trades: int) -> float:
    """Trades per second for websocket-client `recv()` + `orjson.loads`, nothing else."""
    ws = _subscribe(url)
    seen = 0
    started = time.perf_counter()
    while seen < trades:
        message = orjson.loads(ws.recv())
        if message.get("type") == "trade":
            seen += len(message["data"])
    elapsed = time.perf_counter() - started
    ws.shutdown()
    return seen / elapsed


def baseline_frame_reader(url: str, trades: int) -> float:
    """Trades per second for the collector's frame reader + `orjson.loads`, nothing else."""
    ws = _subscribe(url)
    reader = _FrameReader(ws.sock, ws.pong, 1 << 20)
    seen = 0
    started = time.perf_counter()
    while seen < trades:
        message = orjson.loads(reader.next_message())
        if message.get("type") == "trade":
            seen += len(message["data"])
    elapsed = time.perf_counter() - started
    ws.shutdown()
    return seen / elapsed


def collector_role(url: str, trades: int, landing: Path) -> None:
    """Run inside the child process: collect `trades` trades and print the stats as JSON."""
    collector = FinnhubCollector(url=url, symbols=SYMBOLS, landing_dir=landing,
                                 max_trades=trades, reconnect_initial_seconds=0.05)
    stats = collector.run()
    print(json.dumps({"landed": stats.landed, "received": stats.received,
                      "rejected": stats.rejected, "reconnects": stats.reconnects,
                      "elapsed": stats.elapsed_seconds, "files": stats.files}))


def run_collector(url: str, trades: int, landing: Path) -> tuple[dict, list[tuple[float, int]]]:
    """The collector in its own process; returns its stats and (seconds, RSS bytes) samples."""
    process = subprocess.Popen(
        [sys.executable, __file__, "--role", "collector", "--url", url,
         "--trades", str(trades), "--landing", str(landing)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    watched = psutil.Process(process.pid)
    samples: list[tuple[float, int]] = []
    started = time.monotonic()
    while process.poll() is None:
        with contextlib.suppress(psutil.Error):
            samples.append((time.monotonic() - started, watched.memory_info().rss))
        time.sleep(0.2)
    out, err = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"the collector failed: {err.decode()[-1000:]}")
    return json.loads(out.decode().strip().splitlines()[-1]), samples


def _count_landed(landing: Path) -> tuple[int, int]:
    lines, ids = 0, set()
    for path in iter_landed_files(landing / "trades"):
        with path.open("rb") as handle:
            for line in handle:
                lines += 1
                ids.add(line[13:45])  # the trade_id value: records start {"trade_id":"
    return lines, len(ids)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trades", type=int, default=5_000_000)
    parser.add_argument("--baseline-trades", type=int)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--role", choices=["collector"], help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--landing", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "collector":
        collector_role(args.url, args.trades, args.landing)
        return 0

    baseline_trades = args.baseline_trades or min(args.trades, 1_000_000)
    with tempfile.TemporaryDirectory(prefix="tradewatch-bench-") as scratch:
        home = Path(scratch)
        print(f"bench/ingest: {args.trades:,} trades, baselines on {baseline_trades:,}, "
              f"{len(SYMBOLS)} symbols, simulator --speed 0 in its own process, "
              f"{os.cpu_count()} cores")
        with simulator(baseline_trades, args.seed, home / "sim1") as url:
            ws_client_rate = baseline_websocket_client(url, baseline_trades)
        print(f"  baseline websocket-client recv + parse : {ws_client_rate:>12,.0f} trades/s")
        with simulator(baseline_trades, args.seed, home / "sim2") as url:
            reader_rate = baseline_frame_reader(url, baseline_trades)
        print(f"  baseline frame reader + parse          : {reader_rate:>12,.0f} trades/s")
        landing = home / "landing"
        with simulator(args.trades, args.seed, home / "sim3") as url:
            stats, samples = run_collector(url, args.trades, landing)
        rate = stats["landed"] / stats["elapsed"]
        lines, unique = _count_landed(landing)
        print(f"  collector (validate, id, land, fsync)  : {rate:>12,.0f} trades/s landed "
              f"({stats['landed']:,} trades in {stats['elapsed']:.1f} s, {stats['files']} files)")
        print(f"  ratio collector / websocket-client baseline: {rate / ws_client_rate:.2f}")
        print(f"  ratio collector / receive-floor baseline   : {rate / reader_rate:.2f}")

        rss = [value for _, value in samples]
        quarter = max(1, len(rss) // 4)
        first, last = statistics.median(rss[:quarter]), statistics.median(rss[-quarter:])
        print(f"  collector peak RSS: {max(rss) / 2**20:.1f} MiB; median RSS first quarter "
              f"{first / 2**20:.1f} MiB, last quarter {last / 2**20:.1f} MiB "
              f"(last/first {last / first:.2f})")
        step = max(1, len(samples) // 8)
        trail = ", ".join(f"{t:.0f}s {v / 2**20:.0f}" for t, v in samples[::step])
        print(f"  RSS over the run (MiB): {trail}")
        ok = lines == unique == stats["landed"] >= args.trades
        print(f"  landed lines {lines:,}, unique trade ids {unique:,}: "
              f"{'every trade landed once' if ok else 'MISMATCH'}")
        verdict = "meets" if rate >= TARGET_TRADES_PER_SECOND else "below"
        print(f"  target {TARGET_TRADES_PER_SECOND:,} trades/s on one core: {verdict}")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
