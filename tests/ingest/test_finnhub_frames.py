"""The collector's WebSocket frame reader, fed real bytes over a real socket pair.

The simulator sends whole frames; a real server may fragment messages and interleave pings,
so those paths are exercised here byte for byte.
"""

from __future__ import annotations

import socket
import struct
import threading

import pytest

from ingest.finnhub import _ConnectionClosed, _FrameReader, _Oversized, _ProtocolError
from ingest.landing import REJECT_RAW_LIMIT


def frame(opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
    head = bytes([(0x80 if fin else 0) | opcode])
    if len(payload) < 126:
        head += bytes([len(payload)])
    elif len(payload) < 65536:
        head += bytes([126]) + struct.pack("!H", len(payload))
    else:
        head += bytes([127]) + struct.pack("!Q", len(payload))
    return head + payload


@pytest.fixture
def pair():
    server, client = socket.socketpair()
    client.settimeout(2)
    yield server, client
    server.close()
    client.close()


def _send_later(sock: socket.socket, data: bytes) -> threading.Thread:
    # A thread, so frames larger than the socket buffer do not block the test.
    thread = threading.Thread(target=sock.sendall, args=(data,), daemon=True)
    thread.start()
    return thread


def test_fragmented_message_is_reassembled_and_pings_answered_in_between(pair):
    server, client = pair
    pongs: list[bytes] = []
    reader = _FrameReader(client, pongs.append, limit=1024)
    server.sendall(
        frame(0x1, b'{"type":', fin=False)
        + frame(0x9, b"hello")
        + frame(0x0, b'"ping"', fin=False)
        + frame(0x0, b"}")
        + frame(0x1, b'{"type":"trade"}')
    )
    assert bytes(reader.next_message()) == b'{"type":"ping"}'
    assert pongs == [b"hello"]
    assert bytes(reader.next_message()) == b'{"type":"trade"}'


def test_byte_by_byte_delivery_still_yields_whole_messages(pair):
    server, client = pair
    reader = _FrameReader(client, lambda _: None, limit=1 << 20)
    data = frame(0x1, b"x" * 70_000) + frame(0x1, b"y" * 200)
    for start in range(0, len(data), 997):
        server.sendall(data[start : start + 997])
    assert bytes(reader.next_message()) == b"x" * 70_000
    assert bytes(reader.next_message()) == b"y" * 200


def test_oversized_frame_is_skipped_keeping_its_head_and_size(pair):
    server, client = pair
    reader = _FrameReader(client, lambda _: None, limit=100_000)
    big = b"z" * 300_000
    sender = _send_later(server, frame(0x1, big) + frame(0x1, b"after"))
    message = reader.next_message()
    assert isinstance(message, _Oversized)
    assert message.total_bytes == 300_000
    assert message.head == big[:REJECT_RAW_LIMIT]
    assert bytes(reader.next_message()) == b"after"
    sender.join()


def test_oversized_fragmented_message_is_skipped_as_one(pair):
    server, client = pair
    reader = _FrameReader(client, lambda _: None, limit=1000)
    sender = _send_later(server, frame(0x1, b"a" * 600, fin=False)
                         + frame(0x0, b"b" * 600, fin=False)
                         + frame(0x0, b"c" * 600) + frame(0x1, b"ok"))
    message = reader.next_message()
    assert isinstance(message, _Oversized)
    assert message.total_bytes == 1800
    assert message.head == b"a" * 600 + b"b" * 600 + b"c" * 600
    assert bytes(reader.next_message()) == b"ok"
    sender.join()


def test_close_frame_and_end_of_stream_end_the_connection(pair):
    server, client = pair
    reader = _FrameReader(client, lambda _: None, limit=1000)
    server.sendall(frame(0x8, struct.pack("!H", 1001)))
    with pytest.raises(_ConnectionClosed, match="1001"):
        reader.next_message()
    server.shutdown(socket.SHUT_WR)
    with pytest.raises(_ConnectionClosed):
        reader.next_message()


def test_a_stray_continuation_frame_is_a_protocol_error(pair):
    server, client = pair
    reader = _FrameReader(client, lambda _: None, limit=1000)
    server.sendall(frame(0x0, b"orphan continuation"))
    with pytest.raises(_ProtocolError, match="continuation"):
        reader.next_message()


def test_no_data_times_out_so_the_caller_can_flush(pair):
    _, client = pair
    client.settimeout(0.05)
    reader = _FrameReader(client, lambda _: None, limit=1000)
    with pytest.raises(TimeoutError):
        reader.next_message()
