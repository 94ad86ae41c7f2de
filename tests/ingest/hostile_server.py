"""A hostile WebSocket server on raw loopback sockets, for what well-behaved servers never do.

The `websockets` library answers pings by itself, so it cannot play a half-open connection.
This one does the HTTP upgrade by hand and then follows a script per connection:

- `Silent()`: accept the subscriptions, then send nothing and answer nothing (not even a
  ping) until the client goes away: a half-open connection as the client sees it;
- `Frames([...])`: send these text frames after the subscriptions, then stay open, answering
  pings like a healthy server.

Every frame a client sends is recorded per connection (opcode, payload), pings included.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import socket
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_TEXT, OP_CLOSE, OP_PING, OP_PONG = 0x1, 0x8, 0x9, 0xA


@dataclass
class Silent:
    """Say nothing, answer nothing."""


@dataclass
class Frames:
    """Send `frames` once the client subscribed `subscriptions` symbols."""

    frames: list[str]
    subscriptions: int = 1


@dataclass
class Connection:
    script: Silent | Frames
    received: list[tuple[int, bytes]] = field(default_factory=list)
    request_target: str = ""  #: the upgrade request's path and query, as the client sent it

    def opcodes(self) -> list[int]:
        return [opcode for opcode, _ in self.received]


def server_frame(payload: bytes, opcode: int = OP_TEXT) -> bytes:
    """An unmasked server frame."""
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", 0x80 | opcode, size)
    elif size < 1 << 16:
        header = struct.pack("!BBH", 0x80 | opcode, 126, size)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 127, size)
    return header + payload


def _read_exactly(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ConnectionError("client went away")
        data += chunk
    return data


def _read_frame(sock: socket.socket) -> tuple[int, bytes]:
    first, second = _read_exactly(sock, 2)
    size = second & 0x7F
    if size == 126:
        size = struct.unpack("!H", _read_exactly(sock, 2))[0]
    elif size == 127:
        size = struct.unpack("!Q", _read_exactly(sock, 8))[0]
    mask = _read_exactly(sock, 4) if second & 0x80 else b"\0\0\0\0"
    payload = bytes(b ^ mask[i % 4] for i, b in enumerate(_read_exactly(sock, size)))
    return first & 0x0F, payload


class HostileServer:
    """Serves one script per incoming connection, in order; see the module docstring."""

    def __init__(self, scripts: list[Silent | Frames]) -> None:
        self.connections = [Connection(script) for script in scripts]
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"ws://127.0.0.1:{self._listener.getsockname()[1]}"
        self._stopping = threading.Event()
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> HostileServer:
        thread = threading.Thread(target=self._accept, daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopping.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()
        for thread in self._threads:
            thread.join(timeout=5)

    def _accept(self) -> None:
        for connection in self.connections:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            self._sockets.append(sock)
            thread = threading.Thread(target=self._serve, args=(sock, connection), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, sock: socket.socket, connection: Connection) -> None:
        with contextlib.suppress(OSError, ConnectionError, ValueError):
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = sock.recv(4096)
                if not chunk:
                    return
                request += chunk
            connection.request_target = request.split(b"\r\n", 1)[0].split(b" ")[1].decode()
            key = next(
                line.split(b":", 1)[1].strip() for line in request.split(b"\r\n")
                if line.lower().startswith(b"sec-websocket-key:")
            )
            accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
            sock.sendall(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
            )
            script = connection.script
            subscriptions = 0
            sent = False
            while not self._stopping.is_set():
                opcode, payload = _read_frame(sock)
                connection.received.append((opcode, payload))
                if opcode == OP_CLOSE:
                    return
                if isinstance(script, Silent):
                    continue  # the other end of a half-open connection: nothing comes back
                if opcode == OP_PING:
                    sock.sendall(server_frame(payload, OP_PONG))
                elif opcode == OP_TEXT:
                    subscriptions += 1
                if not sent and subscriptions >= script.subscriptions:
                    sent = True
                    for frame in script.frames:
                        sock.sendall(server_frame(frame.encode()))


@contextlib.contextmanager
def hostile_server(scripts: list[Silent | Frames]) -> Iterator[HostileServer]:
    with HostileServer(scripts) as server:
        yield server
