"""`tradewatch collect` sends an API key only over TLS to its provider, or to a URL an operator
listed (and says so); a plain-text or foreign URL gets no key, whatever `--url` says."""

from __future__ import annotations

import http.server
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import orjson

from tests.ingest.hostile_server import Frames, hostile_server
from tests.support.collectors import TRADEWATCH, cli_env, write_config

KEY = "tw-finnhub-SECRET-4711"
AV_KEY = "tw-alphav-SECRET-0815"
TRADE = orjson.dumps(
    {"type": "trade", "data": [{"s": "AAPL", "t": 1_709_908_200_000, "p": 1.0, "v": 1}]}
).decode()


def _collect(home, config, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(TRADEWATCH), "--config", str(config), "collect", *args],
        env=cli_env(home, **env), capture_output=True, text=True, timeout=120,
    )


@contextmanager
def recording_http_server() -> Iterator[tuple[str, list[str]]]:
    """An HTTP server that records each request's path and query, and answers 503."""
    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server interface
            seen.append(self.path)
            self.send_response(503)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        thread.join(timeout=5)


def test_a_foreign_plain_text_url_gets_no_finnhub_key_unless_listed(tmp_path):
    home = tmp_path / "home"
    with hostile_server([Frames([TRADE]), Frames([TRADE])]) as server:
        plain = write_config(tmp_path / "plain")
        unlisted = _collect(home, plain, "finnhub", "--url", server.url, "--symbols", "AAPL",
                            "--max-trades", "1", FINNHUB_API_KEY=KEY)
        listed_config = write_config(tmp_path / "listed", finnhub={"key_urls": [server.url]})
        listed = _collect(home, listed_config, "finnhub", "--url", server.url,
                          "--symbols", "AAPL", "--max-trades", "1", FINNHUB_API_KEY=KEY)
        targets = [connection.request_target for connection in server.connections]

    assert unlisted.returncode == 0 and listed.returncode == 0, unlisted.stderr + listed.stderr
    assert "token" not in targets[0] and KEY not in targets[0]
    assert f"is set but not sent to {server.url}" in unlisted.stderr
    assert targets[1].endswith(f"token={KEY}")  # the explicit opt-in
    assert f"sending FINNHUB_API_KEY to {server.url}: " in listed.stderr
    assert "is listed in key_urls" in listed.stderr
    assert KEY not in unlisted.stderr + unlisted.stdout + listed.stderr + listed.stdout


def test_the_provider_in_clear_text_is_refused_before_any_connection(tmp_path):
    config = write_config(tmp_path / "config")

    finnhub = _collect(tmp_path, config, "finnhub", "--url", "ws://ws.finnhub.io",
                       "--max-trades", "1", FINNHUB_API_KEY=KEY)
    alpha = _collect(tmp_path, config, "alphavantage", "--url", "http://www.alphavantage.co",
                     "--symbols", "AAPL", ALPHAVANTAGE_API_KEY=AV_KEY)

    assert finnhub.returncode == 2
    assert finnhub.stderr.strip() == (
        "tradewatch: KeyNotAllowed: refusing to send FINNHUB_API_KEY in clear text to "
        "ws://ws.finnhub.io: use wss://"
    )
    assert alpha.returncode == 2 and "use https://" in alpha.stderr
    assert not (tmp_path / "landing").exists()


def test_a_foreign_url_gets_no_alpha_vantage_key(tmp_path):
    config = write_config(tmp_path / "config", alphavantage={"retries": 0})
    with recording_http_server() as (url, seen):
        result = _collect(tmp_path, config, "alphavantage", "--url", url, "--symbols", "AAPL",
                          ALPHAVANTAGE_API_KEY=AV_KEY)

    assert result.returncode == 1  # the server answered 503: the request was made
    (request,) = seen
    assert AV_KEY not in request and "apikey=keyless" in request
    assert f"ALPHAVANTAGE_API_KEY is set but not sent to {url}" in result.stderr
