"""A loopback fake of the Databricks Files API (`/api/2.0/fs`), for the real databricks-sdk client.

Databricks cannot run here, so this is a real HTTP server on 127.0.0.1 that answers the
requests `WorkspaceClient(...).files` sends (read from the SDK's source, databricks-sdk 0.77):

    PUT    /api/2.0/fs/files{path}?overwrite=     upload: the body is the file (Content-Length)
    GET    /api/2.0/fs/files{path}                download: the body is the file
    HEAD   /api/2.0/fs/files{path}                metadata: content-length, last-modified
    DELETE /api/2.0/fs/files{path}
    PUT    /api/2.0/fs/directories{path}          create, with its parents (idempotent)
    HEAD   /api/2.0/fs/directories{path}          exists?
    GET    /api/2.0/fs/directories{path}?page_size=&page_token=
                                                  {"contents": [{path, is_directory, file_size,
                                                  last_modified, name}], "next_page_token"}

It behaves as the object storage under a volume does: an upload becomes visible only once its
whole body has arrived (a single PUT is one object write), and an upload whose parent folder does
not exist, or whose volume does not exist, is refused with 404. Errors are Databricks' JSON
(`{"error_code": ..., "message": ...}`); a request without `Authorization: Bearer <token>` gets 401.

Faults for the failure tests, consumed one per upload in order (`fail_next_uploads`):
`"drop"` reads half the body and closes the connection; a status code (500, 503) reads the whole
body and answers it without storing; `"hold"` reads half the body, sets `upload_started` and
waits for `release_upload` before finishing normally. `requests` records what was asked
(`uploads()` and `downloads()` pick out the file transfers).
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterable, Iterator
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FILES, DIRECTORIES = "/api/2.0/fs/files", "/api/2.0/fs/directories"
#: The volume that `prd_workspace`'s variables name (the default volume of its catalog and schema).
PRD_VOLUME = "/Volumes/surveillance/prod/tradewatch"


class FakeFilesApi:
    """The fake server; use as a context manager. `url` is its base (http://127.0.0.1:<port>)."""

    def __init__(self, *, token: str, volumes: Iterable[str] = (), page_size: int = 1000) -> None:
        self.token = token
        self.page_size = page_size
        self.files: dict[str, bytes] = {}
        self.modified: dict[str, float] = {}
        self.directories: set[str] = set()
        self.requests: list[tuple[str, str, int]] = []  # (method, path, status)
        self.faults: list[str | int] = []
        self.upload_started = threading.Event()
        self.release_upload = threading.Event()
        self.lock = threading.RLock()
        for volume in volumes:
            self.directories.add(volume.rstrip("/"))
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakeFilesApi:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.release_upload.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def fail_next_uploads(self, *faults: str | int) -> None:
        """Make the next uploads fail (or pause) in order: "drop", "hold" or a status code."""
        self.faults.extend(faults)

    def put(self, path: str, body: bytes) -> None:
        """Place a file directly (as another writer would), creating its folders."""
        with self.lock:
            self._mkdirs(path.rsplit("/", 1)[0])
            self.files[path] = body
            self.modified[path] = time.time()

    def uploads(self) -> list[tuple[str, int]]:
        """(path, status) of every upload request, in order (status 0: connection dropped)."""
        return [(path, status) for method, path, status in self.requests
                if method == "PUT" and path.startswith(FILES)]

    def downloads(self) -> list[str]:
        """The volume path of every file download (GET) asked for, in order."""
        return [urllib.parse.unquote(path[len(FILES):]) for method, path, _ in self.requests
                if method == "GET" and path.startswith(FILES + "/")]

    def _mkdirs(self, directory: str) -> None:
        parts = directory.strip("/").split("/")
        for end in range(1, len(parts) + 1):
            self.directories.add("/" + "/".join(parts[:end]))

    def _in_volume(self, path: str) -> bool:
        parts = path.strip("/").split("/")
        return len(parts) >= 4 and "/" + "/".join(parts[:4]) in self.directories


def _handler(api: FakeFilesApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return

        # ----------------------------------------------------------------- plumbing

        def _route(self) -> tuple[str, str, dict[str, list[str]]] | None:
            url = urllib.parse.urlsplit(self.path)
            query = urllib.parse.parse_qs(url.query)
            for prefix in (FILES, DIRECTORIES):
                if url.path.startswith(prefix + "/"):
                    return prefix, urllib.parse.unquote(url.path[len(prefix):]), query
            return None

        def _record(self, status: int) -> None:
            with api.lock:
                api.requests.append((self.command, urllib.parse.urlsplit(self.path).path, status))

        def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
                   content_type: str = "application/json") -> None:
            self._record(status)
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            if "Content-Length" not in (headers or {}):
                self.send_header("Content-Length", str(len(body)))
            if body:
                self.send_header("Content-Type", content_type)
            self.end_headers()
            if body and self.command != "HEAD":
                self.wfile.write(body)

        def _error(self, status: int, code: str, message: str) -> None:
            body = b"" if self.command == "HEAD" else json.dumps(
                {"error_code": code, "message": message}).encode()
            self._reply(status, body)

        def _authorised(self) -> bool:
            if self.headers.get("Authorization") == f"Bearer {api.token}":
                return True
            self._drain()
            self._error(401, "UNAUTHENTICATED", "Invalid access token.")
            return False

        def _drain(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)

        def _dispatch(self) -> None:
            route = self._route()
            if route is None:
                self._drain()
                self._error(404, "ENDPOINT_NOT_FOUND", f"No API found for {self.path}")
                return
            if not self._authorised():
                return
            prefix, path, query = route
            handler = getattr(self, f"_{self.command.lower()}_{prefix.rsplit('/', 1)[1]}", None)
            if handler is None:
                self._drain()
                self._error(405, "BAD_REQUEST", f"{self.command} is not supported here")
                return
            handler(path, query)

        def do_GET(self) -> None:
            self._dispatch()

        def do_PUT(self) -> None:
            self._dispatch()

        def do_HEAD(self) -> None:
            self._dispatch()

        def do_DELETE(self) -> None:
            self._dispatch()

        def do_POST(self) -> None:  # multipart uploads: not what VolumeDataHome may send
            self._dispatch()

        # ----------------------------------------------------------------- files

        def _put_files(self, path: str, query: dict[str, list[str]]) -> None:
            if "Content-Length" not in self.headers:
                self.close_connection = True
                self._error(411, "BAD_REQUEST", "an upload needs a Content-Length")
                return
            length = int(self.headers["Content-Length"])
            fault = api.faults.pop(0) if api.faults else None
            if fault in ("drop", "hold"):
                received = self.rfile.read(length // 2)
                if fault == "drop":
                    self._record(0)
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                api.upload_started.set()
                api.release_upload.wait(30)
                body = received + self.rfile.read(length - len(received))
            else:
                body = self.rfile.read(length)
            if len(body) < length:  # the client went away mid-body: nothing is stored
                self._record(0)
                self.close_connection = True
                return
            if isinstance(fault, int):
                self._error(fault, "INTERNAL_ERROR" if fault == 500 else "TEMPORARILY_UNAVAILABLE",
                            "the storage backend failed; retry later")
                return
            overwrite = query.get("overwrite", ["true"])[0].lower() != "false"
            parent = path.rsplit("/", 1)[0]
            with api.lock:
                if not api._in_volume(path):
                    missing = "/".join(path.split("/")[:5])
                    self._error(404, "NOT_FOUND", f"The volume {missing} does not exist.")
                    return
                if parent not in api.directories:
                    self._error(404, "NOT_FOUND", f"The parent directory {parent} does not exist.")
                    return
                if path in api.files and not overwrite:
                    self._error(409, "ALREADY_EXISTS", f"The file {path} already exists.")
                    return
                api.files[path] = body
                api.modified[path] = time.time()
            self._reply(204)

        def _file_headers(self, path: str) -> dict[str, str]:
            return {
                "Content-Length": str(len(api.files[path])),
                "Last-Modified": formatdate(api.modified[path], usegmt=True),
            }

        def _get_files(self, path: str, query: dict[str, list[str]]) -> None:
            with api.lock:
                body = api.files.get(path)
            if body is None:
                self._error(404, "NOT_FOUND", f"The file {path} does not exist.")
                return
            self._reply(200, body, self._file_headers(path), "application/octet-stream")

        def _head_files(self, path: str, query: dict[str, list[str]]) -> None:
            with api.lock:
                found = path in api.files
            if not found:
                self._error(404, "NOT_FOUND", "")
                return
            headers = {**self._file_headers(path), "Content-Type": "application/octet-stream"}
            self._reply(200, b"", headers)

        def _delete_files(self, path: str, query: dict[str, list[str]]) -> None:
            with api.lock:
                found = api.files.pop(path, None) is not None
            if not found:
                self._error(404, "NOT_FOUND", f"The file {path} does not exist.")
                return
            self._reply(204)

        # ----------------------------------------------------------------- directories

        def _put_directories(self, path: str, query: dict[str, list[str]]) -> None:
            with api.lock:
                if not api._in_volume(path):
                    self._error(404, "NOT_FOUND", f"No volume holds {path}.")
                    return
                api._mkdirs(path.rstrip("/"))
            self._reply(204)

        def _head_directories(self, path: str, query: dict[str, list[str]]) -> None:
            with api.lock:
                found = path.rstrip("/") in api.directories
            if found:
                self._reply(200)
            else:
                self._error(404, "NOT_FOUND", "")

        def _get_directories(self, path: str, query: dict[str, list[str]]) -> None:
            directory = path.rstrip("/")
            with api.lock:
                if directory not in api.directories:
                    self._error(404, "NOT_FOUND", f"The directory {directory} does not exist.")
                    return
                entries = []
                for child in sorted(api.directories):
                    if child.rsplit("/", 1)[0] == directory and child != directory:
                        entries.append({"path": child + "/", "is_directory": True,
                                        "name": child.rsplit("/", 1)[1]})
                for name in sorted(api.files):
                    if name.rsplit("/", 1)[0] == directory:
                        entries.append({
                            "path": name, "is_directory": False, "file_size": len(api.files[name]),
                            "last_modified": int(api.modified[name] * 1000),
                            "name": name.rsplit("/", 1)[1],
                        })
            start = int(query.get("page_token", ["0"])[0])
            size = min(int(query.get("page_size", [api.page_size])[0]), api.page_size)
            page: dict[str, Any] = {"contents": entries[start:start + size]}
            if start + size < len(entries):
                page["next_page_token"] = str(start + size)
            self._reply(200, json.dumps(page).encode())

    return Handler


@contextlib.contextmanager
def prd_workspace(monkeypatch: Any, token: str) -> Iterator[FakeFilesApi]:
    """A fake workspace for TRADEWATCH_ENV=prd: the Files API on loopback holding PRD_VOLUME,
    and the Databricks variables (set with pytest's `monkeypatch`) naming it."""
    with FakeFilesApi(token=token, volumes=[PRD_VOLUME]) as api:
        for name, value in {
            "DATABRICKS_HOST": api.url, "DATABRICKS_TOKEN": token,
            "DATABRICKS_HTTP_PATH": "/sql/1.0/warehouses/abc",
            "DATABRICKS_CATALOG": "surveillance", "DATABRICKS_SCHEMA": "prod",
        }.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("TRADEWATCH_VOLUME", raising=False)
        yield api
