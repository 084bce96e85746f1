"""Refused CurveZMQ handshakes are visible: counted (streamer_auth_failures_total{stream,socket}),
logged as "authentication failed on <socket> from <peer>" at most once per interval per socket,
and a frame source whose handshake fails says so instead of looking like a silent sender."""

from __future__ import annotations

import logging
import math
import threading
import time

import pytest
import zmq

from streamer.frames import SourceLost
from streamer.metrics import PipelineMetrics
from streamer.security import ClientKeys, make_client, make_keys
from streamer.sinks.zmq_sink import ZmqSink
from streamer.sources import open_source
from tests.streamer.test_sinks import result

LOG_INTERVAL_S = 5.0  # RateLimitedLog's default: one line per socket per interval


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    return make_keys(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="module")
def stranger(tmp_path_factory):
    """A valid key pair the publisher has never been told about."""
    return make_keys(tmp_path_factory.mktemp("other"))


def secure_sink(keys) -> ZmqSink:
    return ZmqSink(endpoint="tcp://127.0.0.1:*", curve_secret=str(keys["server_secret"]),
                   curve_clients=str(keys["allowed_clients"]))


def subscriber(endpoint: str, server_key=None, client_key=None) -> zmq.Socket:
    sock = zmq.Context.instance().socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.subscribe(b"")
    if server_key:
        make_client(sock, ClientKeys(str(server_key), str(client_key)))
    sock.connect(endpoint)
    return sock


def failures(metrics: PipelineMetrics, socket: str) -> float | None:
    return metrics.registry.get_sample_value("streamer_auth_failures_total",
                                             {"stream": metrics.stream, "socket": socket})


def wait_for(condition, timeout: float = 20.0) -> bool:
    """Polls ``condition`` until true or ``timeout`` (a did-not-hang bound)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def monitor_threads() -> int:
    return sum(t.name == "curve-monitor" for t in threading.enumerate())


def auth_lines(caplog, on: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage().startswith(f"authentication failed on {on}")]


def test_refused_subscribers_are_counted_and_logged_rate_limited(keys, stranger, caplog):
    metrics = PipelineMetrics("us0")
    bad = 20
    with caplog.at_level(logging.WARNING), secure_sink(keys) as sink:
        label = f"publisher {sink.endpoint}"
        started = time.monotonic()
        socks = [subscriber(sink.endpoint, keys["server_public"], stranger["client_secret"])
                 for _ in range(bad)]
        socks.append(subscriber(sink.endpoint))  # plaintext: not CurveZMQ at all
        try:
            assert wait_for(lambda: (failures(metrics, label) or 0) >= bad + 1), \
                failures(metrics, label)  # old code: no such metric
        finally:
            for s in socks:
                s.close(linger=0)
        elapsed = time.monotonic() - started
    lines = auth_lines(caplog, label)
    assert lines and all(r.levelno == logging.WARNING for r in lines)
    assert " from 127.0.0.1: " in lines[0].getMessage()  # the refused client's address
    # at most one line per interval (the first comes at once), however many were refused
    assert len(lines) <= 1 + math.ceil(elapsed / LOG_INTERVAL_S)


def test_an_allowed_subscriber_counts_no_failure(keys):
    metrics = PipelineMetrics("us0")
    with secure_sink(keys) as sink:
        good = subscriber(sink.endpoint, keys["server_public"], keys["client_secret"])
        try:
            got = None
            for seq in range(200):
                sink.publish(result(seq))
                if good.poll(20):
                    got = good.recv_multipart()
                    break
            assert got is not None
            for socket in (f"publisher {sink.endpoint}", f"subscriber {sink.endpoint}"):
                # shown (at 0) once the monitor has seen the socket listen or connect
                assert wait_for(lambda s=socket: failures(metrics, s) is not None)  # old: None
                assert failures(metrics, socket) == 0
        finally:
            good.close(linger=0)


@pytest.mark.parametrize("case, why", [
    ("wrong server key", "server key"),  # our --server-key is not the publisher's
    ("client key not allowed", "refused this client key"),  # the publisher does not know us
])
def test_frame_source_says_authentication_failed(keys, stranger, case, why, caplog):
    metrics = PipelineMetrics("us0")
    monitors = monitor_threads()
    server_public = stranger["server_public"] if case == "wrong server key" else keys["server_public"]
    client_secret = keys["client_secret"] if case == "wrong server key" else stranger["client_secret"]
    with caplog.at_level(logging.WARNING), secure_sink(keys) as sink:
        spec = f"zmq:{sink.endpoint},server_key={server_public},client_key={client_secret},timeout=1"
        with open_source(spec) as src:
            with pytest.raises(SourceLost) as lost:
                deadline = time.monotonic() + 20  # did not hang
                while time.monotonic() < deadline:
                    sink.publish(result(0))
                    assert src.read(0.05) is None
        message = str(lost.value)  # old code: "no frames from tcp://… for 0.5 s", a silent sender
        assert message.startswith("authentication failed") and why in message
        assert sink.endpoint in message
        assert wait_for(lambda: (failures(metrics, f"publisher {sink.endpoint}") or 0) >= 1)
    assert (failures(metrics, f"subscriber {sink.endpoint}") or 0) >= 1
    assert auth_lines(caplog, f"subscriber {sink.endpoint}")
    assert wait_for(lambda: monitor_threads() <= monitors)  # each ends with its socket
