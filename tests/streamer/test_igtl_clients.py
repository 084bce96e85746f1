"""OpenIGTLink with several clients: 3D Slicer and PLUS side by side each get every device; past
``max_clients`` a client is refused (closed, one log line), and a client that stops reading is
disconnected without holding back the others."""

from __future__ import annotations

import logging
import math
import socket
import struct
import threading
import time

import pytest

from tests.streamer.test_viewer import feed

pytest.importorskip("pyigtl")
from streamer.sinks.igtl_sink import IgtlSink  # noqa: E402

HEADER = struct.Struct(">H12s20sQQQ")  # version, type, device, timestamp, body size, CRC
DEVICES = {"SonostreamImage", "SonostreamPoints", "SonostreamSummary"}
LOG_INTERVAL_S = 5.0  # RateLimitedLog's default


def connect(port: int, rcvbuf: int | None = None) -> socket.socket:
    s = socket.socket()
    if rcvbuf is not None:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(15)
    s.connect(("127.0.0.1", port))
    return s


def recv_exact(s: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed by the server")
        data += chunk
    return data


def read_message(s: socket.socket) -> tuple[str, str]:
    """(type, device) of the next OpenIGTLink message."""
    _, kind, device, _, size, _ = HEADER.unpack(recv_exact(s, HEADER.size))
    recv_exact(s, size)
    return kind.rstrip(b"\0").decode(), device.rstrip(b"\0").decode()


def devices_seen(s: socket.socket, messages: int = 6) -> set[str]:
    return {read_message(s)[1] for _ in range(messages)}


def read_side_by_side(clients: list[socket.socket], n: int, timeout: float = 20.0) -> list[set]:
    """Every client reads all the time, each in its own thread, until each has ``n`` messages
    (or ``timeout``, a did-not-hang bound): the devices each one saw."""
    seen = [[] for _ in clients]
    done = threading.Event()

    def read(i):
        try:
            while not done.is_set():
                seen[i].append(read_message(clients[i])[1])
        except OSError:
            pass

    threads = [threading.Thread(target=read, args=(i,), daemon=True) for i in range(len(clients))]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and min(len(s) for s in seen) < n:
        time.sleep(0.05)
    done.set()
    for c in clients:
        c.shutdown(socket.SHUT_RDWR)
    for t in threads:
        t.join(5)
    return [set(s) if len(s) >= n else set() for s in seen]


def test_three_clients_side_by_side_each_get_every_device():
    """3D Slicer and PLUS (and a third) connected at once, all reading: old code served the
    first and left the others waiting until it left."""
    stop = threading.Event()
    with IgtlSink(port=0) as sink:
        feed(sink, stop)
        clients = [connect(sink.port) for _ in range(3)]
        try:
            seen = read_side_by_side(clients, 30)
        finally:
            stop.set()
            for c in clients:
                c.close()
    assert seen == [DEVICES] * 3


def test_clients_past_the_cap_are_refused_with_one_log_line(caplog):
    stop = threading.Event()
    with caplog.at_level(logging.INFO), IgtlSink(port=0, max_clients=2) as sink:
        feed(sink, stop)
        served = [connect(sink.port) for _ in range(2)]
        try:
            assert [devices_seen(c) for c in served] == [DEVICES] * 2
            started = time.monotonic()
            extra = [connect(sink.port) for _ in range(3)]
            for c in extra:
                with pytest.raises(ConnectionError):  # closed at once, never served
                    read_message(c)
                c.close()
            elapsed = time.monotonic() - started
            assert devices_seen(served[0]) == DEVICES  # the served ones carry on
        finally:
            stop.set()
            for c in served:
                c.close()
        assert sink.describe()["refused"] == 3
    refusals = [r for r in caplog.records if "refusing" in r.getMessage()]
    assert refusals and all(r.levelno == logging.WARNING for r in refusals)
    assert "max_clients=2" in refusals[0].getMessage()
    assert len(refusals) <= 1 + math.ceil(elapsed / LOG_INTERVAL_S)  # not one line per refusal


def test_a_client_that_stops_reading_is_dropped_and_never_holds_back_another(caplog):
    stop = threading.Event()
    with caplog.at_level(logging.INFO), IgtlSink(port=0, client_timeout=0.5, max_fps=60) as sink:
        feed(sink, stop, period=0.01)
        stalled = connect(sink.port, rcvbuf=4096)  # never reads: its socket buffers fill
        reader = connect(sink.port)
        try:
            deadline = time.monotonic() + 30  # did not hang
            while sink.describe()["dropped_clients"] == 0 and time.monotonic() < deadline:
                read_message(reader)  # times out (15 s) if the stalled client held it back
            assert sink.describe()["dropped_clients"] == 1  # the stalled one, not the reader
            assert sink.describe()["clients"] == 1
            for _ in range(30):  # and the reader goes on
                read_message(reader)
        finally:
            stop.set()
            stalled.close()
            reader.close()
    assert any("took no data" in r.getMessage() for r in caplog.records)
