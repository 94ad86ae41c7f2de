"""A Slack-like webhook on 127.0.0.1 that records every alert posted to it.

    with webhook_server() as hook:
        ...  # point $TRADEWATCH_WEBHOOK_URL at hook.url (and drop PROXY_VARIABLES)
        assert hook.titles() == [...]
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

#: Proxies from the CI environment must not intercept requests to 127.0.0.1.
PROXY_VARIABLES = (
    "http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY",
)


@dataclass
class Webhook:
    """Every JSON body posted to the endpoint, in order."""

    url: str = ""
    received: list[dict] = field(default_factory=list)

    def titles(self) -> list[str]:
        """The header text of each alert (the first Slack block)."""
        return [body["blocks"][0]["text"]["text"] for body in self.received]


@contextmanager
def webhook_server(name: str = "e2e-hook") -> Iterator[Webhook]:
    """A webhook that answers 200 to every POST and records it; `name` ends its URL."""
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
    hook.url = f"http://127.0.0.1:{server.server_port}/services/T0/B0/{name}"
    try:
        yield hook
    finally:
        server.shutdown()
        server.server_close()
