"""`tradewatch simulate` as a user runs it: a separate process on 127.0.0.1."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import requests
import websocket

TRADEWATCH = Path(sys.executable).parent / "tradewatch"


def start_simulate(home: Path, *args: str) -> tuple[subprocess.Popen, str, str]:
    """Start the verb and read the two addresses it prints first."""
    env = {**os.environ, "TRADEWATCH_HOME": str(home)}
    process = subprocess.Popen(
        [str(TRADEWATCH), "simulate", "--port", "0", "--av-port", "0", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    ws_line, av_line = process.stdout.readline(), process.stdout.readline()
    ws_url = re.search(r"ws://127\.0\.0\.1:\d+", ws_line)
    av_url = re.search(r"http://127\.0\.0\.1:\d+", av_line)
    assert ws_url and av_url, (ws_line, av_line, process.stderr.read())
    return process, ws_url.group(0), av_url.group(0)


def read_trades(url: str) -> int:
    """Subscribe to the default symbols and count trades until the server closes."""
    ws = websocket.create_connection(url, timeout=60)
    for symbol in ("AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "TSLA", "JPM", "XOM", "KO"):
        ws.send(json.dumps({"type": "subscribe", "symbol": symbol}))
    count = 0
    while message := ws.recv():
        parsed = json.loads(message)
        if parsed["type"] == "trade":
            count += len(parsed["data"])
    ws.shutdown()
    return count


def test_simulate_serves_max_trades_then_exits_with_counts(tmp_path):
    process, ws_url, _ = start_simulate(tmp_path, "--max-trades", "500")

    received = read_trades(ws_url)
    out, err = process.communicate(timeout=60)

    assert process.returncode == 0, err
    assert received == 500
    assert "sent 500 trades" in out.strip().splitlines()[-1]
    assert (tmp_path / "simulator" / "ground_truth" / "trades.ndjson").exists()


def test_simulate_stops_cleanly_on_sigterm(tmp_path):
    process, _, av_url = start_simulate(tmp_path)
    answer = requests.get(f"{av_url}/query", params={
        "function": "TIME_SERIES_INTRADAY", "symbol": "KO", "interval": "5min", "apikey": "x",
    }, timeout=60).json()

    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)

    assert process.returncode == 0, err
    assert "Time Series (5min)" in answer
    assert "Alpha Vantage: 1 requests" in out.strip().splitlines()[-1]


def test_simulate_on_a_taken_port_fails_with_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [str(TRADEWATCH), "simulate", "--port", str(port), "--av-port", "0"],
            capture_output=True, text=True, timeout=60,
            env={**os.environ, "TRADEWATCH_HOME": str(tmp_path)},
        )

    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert f"127.0.0.1:{port}" in result.stderr and "choose another port" in result.stderr
