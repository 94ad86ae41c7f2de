"""`tradewatch ui` serves three UIs, the review page and the documentation site on 127.0.0.1,
and Ctrl-C stops every process it started."""

from __future__ import annotations

import html
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

TRADEWATCH = Path(sys.executable).parent / "tradewatch"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_ui_serves_prefect_mlflow_dbt_docs_review_and_this_site_then_stops_them_all(tmp_path):
    ports = [_free_port() for _ in range(5)]
    process = subprocess.Popen(
        [str(TRADEWATCH), "ui", "--prefect-port", str(ports[0]), "--mlflow-port",
         str(ports[1]), "--docs-port", str(ports[2]), "--site-port", str(ports[3]),
         "--review-port", str(ports[4])],
        env={**os.environ, "TRADEWATCH_HOME": str(tmp_path)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = []
    try:
        deadline = time.monotonic() + 240
        while len(lines) < 6 and time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
        addresses = re.findall(r"http://127\.0\.0\.1:(\d+)", "".join(lines))
        assert sorted(map(int, addresses)) == sorted(ports), "".join(lines)
        # The Prefect UI's browser code must call the API on the port it was given.
        settings_url = f"http://127.0.0.1:{ports[0]}/ui-settings"
        with urllib.request.urlopen(settings_url, timeout=10) as answer:
            assert f"127.0.0.1:{ports[0]}/api" in answer.read().decode()
        children = psutil.Process(process.pid).children(recursive=True)
        assert len(children) >= 5
        for port, path in zip(ports, ("/api/health", "/health", "/index.html", "/index.html",
                                      "/health"), strict=True):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as answer:
                assert answer.status == 200
        # The documentation site, built for this run, with its runbook.
        assert re.search(rf"Documentation\s+http://127\.0\.0\.1:{ports[3]}", "".join(lines))
        with urllib.request.urlopen(f"http://127.0.0.1:{ports[3]}/runbook.html") as answer:
            assert "How alerts reach you" in answer.read().decode()
        assert (tmp_path / "site" / "reference" / "cli.html").is_file()
        # The review page, on a home with nothing built yet: it says so, in one line.
        assert re.search(rf"Review\s+http://127\.0\.0\.1:{ports[4]}", "".join(lines))
        with urllib.request.urlopen(f"http://127.0.0.1:{ports[4]}/") as answer:
            queue = answer.read().decode()
        assert "Review queue" in queue and "no analysts' database" in html.unescape(queue)
    finally:
        process.send_signal(signal.SIGINT)
        remaining, _ = process.communicate(timeout=60)
    assert process.returncode == 0
    assert "stopped" in remaining
    time.sleep(1)
    assert not [child for child in children if child.is_running() and
                child.status() != psutil.STATUS_ZOMBIE]
