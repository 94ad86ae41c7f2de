"""Simulator throughput: trades per second that `tradewatch simulate` sends to one client.

The simulator runs in its own process (as in the collector bench), speed 0, and a lean client
counts trades until the server closes after --trades trades. Baseline, measured in the same
run: a replay server that sends one pre-encoded trade message over the same WebSocket stack
as fast as it can — the transport ceiling, so the ratio says what generating and encoding the
market costs. Also printed: the simulator's peak memory (RSS) and the ratio against the
100,000 trades/s target of the collector bench.

    .venv/bin/python bench/simulator/run.py [--trades 3000000]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import websocket

SYMBOLS = ("AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "TSLA", "JPM", "XOM", "KO")
TARGET = 100_000
TRADEWATCH = Path(sys.executable).parent / "tradewatch"

# A server that replays one frame `count` times, then closes: the transport ceiling.
REPLAY_SERVER = r"""
import sys
from websockets.sync.server import serve
frame = open(sys.argv[1], "rb").read()
count = int(sys.argv[2])
def handler(ws):
    for _ in range(count):
        ws.send(frame, text=True)
    ws.close()
with serve(handler, "127.0.0.1", 0, compression=None, ping_interval=None) as server:
    print(f"ws://127.0.0.1:{server.socket.getsockname()[1]}", flush=True)
    server.serve_forever()
"""


def consume(url: str, first_frame: list[bytes] | None = None) -> tuple[int, float]:
    """Subscribe to every symbol, count trades until the server closes; (trades, seconds)."""
    ws = websocket.create_connection(url, skip_utf8_validation=True, timeout=120)
    for symbol in SYMBOLS:
        ws.send(json.dumps({"type": "subscribe", "symbol": symbol}))
    trades, began = 0, None
    while True:
        opcode, frame = ws.recv_data_frame(True)
        if began is None:
            began = time.perf_counter()
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            break
        if first_frame is not None and not first_frame and frame.data.startswith(b'{"type":"tr'):
            first_frame.append(frame.data)
        trades += frame.data.count(b'"p":')
    elapsed = time.perf_counter() - (began or time.perf_counter())
    ws.shutdown()
    return trades, elapsed


def watch_peak_rss(pid: int, peak: list[int], stop: threading.Event) -> None:
    process = psutil.Process(pid)
    while not stop.is_set():
        try:
            peak[0] = max(peak[0], process.memory_info().rss)
        except psutil.Error:
            return
        stop.wait(0.05)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trades", type=int, default=3_000_000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "TRADEWATCH_HOME": home}
        simulate = subprocess.Popen(
            [str(TRADEWATCH), "simulate", "--port", "0", "--av-port", "0",
             "--max-trades", str(args.trades)],
            stdout=subprocess.PIPE, text=True, env=env,
        )
        url = re.search(r"ws://\S+", simulate.stdout.readline()).group(0)
        simulate.stdout.readline()
        peak, stop = [0], threading.Event()
        watcher = threading.Thread(target=watch_peak_rss, args=(simulate.pid, peak, stop))
        watcher.start()
        captured: list[bytes] = []
        trades, seconds = consume(url, captured)
        stop.set()
        watcher.join()
        summary = simulate.communicate(timeout=120)[0].strip().splitlines()[-1]
        if simulate.returncode != 0 or trades != args.trades:
            print(f"simulator failed: exit {simulate.returncode}, {trades} trades", file=sys.stderr)
            return 1

        frame_file = Path(home) / "frame.json"
        frame_file.write_bytes(captured[0])
        per_frame = captured[0].count(b'"p":')
        replay = subprocess.Popen(
            [sys.executable, "-c", REPLAY_SERVER, str(frame_file), str(args.trades // per_frame)],
            stdout=subprocess.PIPE, text=True,
        )
        replay_url = replay.stdout.readline().strip()
        baseline_trades, baseline_seconds = consume(replay_url)
        replay.kill()
        replay.wait()

    rate = trades / seconds
    baseline = baseline_trades / baseline_seconds
    print(summary)
    print(f"simulator throughput: {rate:,.0f} trades/s ({trades:,} trades in {seconds:.2f} s, "
          f"separate process, speed 0, {per_frame} trades per message)")
    print(f"baseline (replayed pre-encoded messages, same transport): {baseline:,.0f} trades/s")
    print(f"ratio simulator / transport ceiling: {rate / baseline:.2f}")
    print(f"ratio simulator / {TARGET:,} trades/s target: {rate / TARGET:.1f}")
    print(f"simulator peak RSS: {peak[0] / 2**20:.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
