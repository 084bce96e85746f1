"""The viewer under load and abuse: browsers past ``max_clients`` get 503, connections past
``max_connections`` are refused before they are read, half-sent requests are closed after
``header_timeout``, a stalled browser is let go after ``write_timeout``; malformed requests and
failed accept() calls are one rate-limited line without a traceback; the preview slows down while
the engine drops frames, and what it draws after its rate-limit wait is the newest result."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from streamer.ratelimit import RateLimitedLog
from streamer.sinks.viewer_limits import MIN_FPS, RENDER_SHARE, PreviewPace
from streamer.sinks.viewer_sink import ViewerSink
from tests.streamer.viewer_fixtures import viewer_result

pytest.importorskip("aiohttp")
ROOT = Path(__file__).resolve().parents[2]
WINDOW = RateLimitedLog().interval  # seconds between two lines of one rate-limited log


def address(sink) -> tuple[str, int]:
    host, port = sink.url[7:-1].rsplit(":", 1)
    return host, int(port)


def connect(sink, request: bytes = b"") -> socket.socket:
    s = socket.create_connection(address(sink), timeout=10)
    if request:
        s.sendall(request)
    return s


def read_until_closed(s: socket.socket) -> bytes:
    """Everything the server sends until it closes (socket timeout: it never did)."""
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    return data


def until(condition, timeout: float = 20.0) -> None:
    """A did-not-hang bound on something that happens on the server's own threads."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.01)


def allowed_lines(elapsed: float) -> int:
    """A rate-limited log writes at most one line per WINDOW seconds."""
    return 1 + int(elapsed / WINDOW)


class EventReader:
    """One browser's event stream over a plain socket: the seq of each frame message."""

    def __init__(self, sink):
        self.s = connect(sink, b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
        self.f = self.s.makefile("rb")
        assert self.f.readline().startswith(b"HTTP/1.1 200")

    def next_seq(self) -> int:
        while line := self.f.readline():
            if line.startswith(b"data: "):
                return json.loads(line[6:])["seq"]
        raise AssertionError("the stream ended")

    def close(self) -> None:
        self.f.close()
        self.s.close()


def test_browsers_past_max_clients_get_503_and_one_log_line(caplog):
    caplog.set_level(logging.INFO)
    with ViewerSink(port=0, max_clients=2) as sink:
        served = [EventReader(sink), EventReader(sink)]
        until(lambda: sink.describe()["clients"] == 2)
        t0 = time.monotonic()
        for _ in range(20):
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(sink.url + "events", timeout=10)
            assert refused.value.code == 503 and b"at most 2 browsers" in refused.value.read()
        elapsed = time.monotonic() - t0
        for seq in range(3):  # the two served browsers share each render, one per result
            sink.publish(viewer_result(seq))
            assert [r.next_seq() for r in served] == [seq, seq]
        until(lambda: sink.encoded == 3)
        assert sink.describe()["refused"] == 20
        for r in served:
            r.close()
    lines = [r for r in caplog.records if "refused a browser" in r.getMessage()]
    assert 1 <= len(lines) <= allowed_lines(elapsed), [r.getMessage() for r in lines]


def test_half_sent_and_silent_connections_are_closed_after_header_timeout():
    with ViewerSink(port=0, header_timeout=0.5) as sink:
        half = connect(sink, b"GET /events HTTP/1.1\r\nHost: x\r\n")  # never the blank line
        silent = connect(sink)
        assert read_until_closed(half) == b"" and read_until_closed(silent) == b""
        until(lambda: sink.describe()["connections"] == 0)
        half.close()
        silent.close()


def test_connections_past_max_connections_are_refused_before_they_are_read():
    """Idle connections hold file descriptors the engine's other sockets need: past the cap a new
    one gets a 503 at once and is closed, and the viewer never holds more than the cap."""
    with ViewerSink(port=0, max_clients=2, max_connections=4) as sink:
        idle = [connect(sink) for _ in range(4)]  # accepted first: the listen queue is in order
        extra = [connect(sink) for _ in range(20)]
        for s in extra:
            assert read_until_closed(s).startswith(b"HTTP/1.1 503 ")
        assert sink.describe()["connections"] == 4 and sink.describe()["refused_connections"] == 20
        for s in idle + extra:
            s.close()
        until(lambda: sink.describe()["connections"] == 0)
        assert urllib.request.urlopen(sink.url, timeout=10).read().startswith(b"<!doctype html>")


def test_malformed_requests_are_one_rate_limited_line_without_a_traceback(caplog):
    caplog.set_level(logging.INFO)
    with ViewerSink(port=0) as sink:
        t0 = time.monotonic()
        for _ in range(200):
            s = connect(sink, b"GET / HTTP/1.1\r\nHost: x\r\nno colon in this header\r\n\r\n")
            assert read_until_closed(s).split(b" ", 2)[1] == b"400"
            s.close()
        elapsed = time.monotonic() - t0
    noisy = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert 1 <= len(noisy) <= allowed_lines(elapsed), [r.getMessage() for r in noisy]
    assert not any(r.exc_info for r in noisy) and "+" not in noisy[0].getMessage()


ACCEPT_CHILD = textwrap.dedent("""
    import json, logging, os, resource, sys, time
    from streamer.sinks.viewer_sink import ViewerSink

    records = []
    class Keep(logging.Handler):
        def emit(self, record):
            records.append((record.getMessage(), bool(record.exc_info)))
    logging.getLogger().addHandler(Keep())
    logging.getLogger().setLevel(logging.INFO)
    sink = ViewerSink(port=0).open()
    hog = []
    resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 8,
                                                resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    try:
        while True:
            hog.append(os.open(os.devnull, os.O_RDONLY))
    except OSError:
        pass
    print(sink.url, flush=True)
    sys.stdin.readline()  # the test has connected: accept() now fails with EMFILE
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any("accept" in m for m, _ in records):
        time.sleep(0.01)
    t0 = time.monotonic()
    time.sleep(0.5)  # let more failures come, if they do
    print(json.dumps({"records": records, "elapsed": time.monotonic() - t0}), flush=True)
    os._exit(0)
""")


def test_accept_failing_for_want_of_file_descriptors_is_one_line_without_a_traceback():
    """A process out of file descriptors: asyncio retries accept() for every queued connection
    and logged each failure with its traceback (33,009 in 40 s on the issue's machine)."""
    child = subprocess.Popen([sys.executable, "-c", ACCEPT_CHILD], cwd=ROOT, text=True,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        url = child.stdout.readline().strip()
        assert url.startswith("http://"), url
        host, port = url[7:-1].rsplit(":", 1)
        clients = [socket.create_connection((host, int(port)), timeout=10) for _ in range(5)]
        child.stdin.write("go\n")
        child.stdin.flush()
        report = json.loads(child.stdout.readline())
        for c in clients:
            c.close()
    finally:
        child.kill()
        child.wait()
    accept = [(m, tb) for m, tb in report["records"] if "accept" in m]
    assert 1 <= len(accept) <= allowed_lines(report["elapsed"] + 10), accept[:3]
    assert not any(tb for _, tb in report["records"]), report["records"][:3]


class FakeTime:
    """The encoder thread's clock and sleep: sleeping moves the clock, and may run a callback
    first (as if the pipeline published while the encoder waited)."""

    def __init__(self):
        self.now, self.during_sleep = 0.0, None

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        callback, self.during_sleep = self.during_sleep, None
        if callback is not None:
            callback()
        self.now += seconds


def test_after_its_rate_limit_wait_the_viewer_draws_the_newest_result():
    """A result that woke the encoder during the wait between two frames is stale by the end of
    it: the browser must get what the pipeline published meanwhile."""
    fake = FakeTime()
    with ViewerSink(port=0, max_fps=1.0, clock=fake.clock, sleep=fake.sleep) as sink:
        browser = EventReader(sink)
        until(lambda: sink.describe()["clients"] == 1)
        sink.publish(viewer_result(1))
        assert browser.next_seq() == 1  # drawn at once; the next frame may come 1 s later
        fake.during_sleep = lambda: sink.publish(viewer_result(3))
        sink.publish(viewer_result(2))  # wakes the encoder, which waits out its second...
        assert browser.next_seq() == 3  # ...and then draws what is newest
        assert fake.now == 1.0 and sink.encoded == 2
        browser.close()


def test_preview_rate_halves_while_the_engine_drops_frames_and_recovers_after():
    pace = PreviewPace(15.0, clock=lambda: 0.0)
    pace.engine_status(0, 0)  # the first report is the baseline
    pace.engine_status(30, 3)  # 3 of 30 dropped in a report: half the rate
    assert pace.fps == 7.5
    pace.engine_status(60, 4)  # a lone drop is noise: held
    assert pace.fps == 7.5
    pace.engine_status(90, 4)  # none: one frame a second faster
    assert pace.fps == 8.5
    for n in range(2, 8):
        pace.engine_status(90 + 30 * n, 4 + 10 * n)
    assert pace.fps == MIN_FPS and pace.interval() == 1 / MIN_FPS  # never below
    for n in range(20):
        pace.engine_status(400 + 30 * n, 74)
    assert pace.fps == 15.0


def test_preview_rate_keeps_rendering_within_its_share_of_a_core():
    pace = PreviewPace(15.0, clock=lambda: 10.0)
    pace.rendered(started=10.0, seconds=0.01)  # 10 ms a render: 15 fps is 15% of a core
    assert pace.interval() == pytest.approx(1 / 15) and pace.delay() == pytest.approx(1 / 15)
    pace.rendered(started=10.0, seconds=0.01 + 0.09 / 0.2)  # the mean moves to 100 ms
    assert pace.render_s == pytest.approx(0.1) and pace.interval() == pytest.approx(0.1 / RENDER_SHARE)


def test_the_viewer_slows_down_when_the_engine_it_watches_drops_frames():
    with ViewerSink(port=0) as sink:
        assert sink.describe()["preview_fps"] == 15.0
        for n in range(4):
            sink.publish_status({"fps": 30.0, "captured": 30 * n, "dropped": 10 * n})
        assert sink.describe()["preview_fps"] == pytest.approx(15.0 / 8, abs=0.01)  # halved 3 times
        browser = EventReader(sink)
        sink.publish(viewer_result(0))
        line = next(line for line in browser.f if line.startswith(b"data: "))
        message = json.loads(line[6:])  # the page says how slow it was made, and why
        assert message["preview_fps"] == 1.9 and message["preview_max_fps"] == 15.0
        browser.close()


def publish_noise(sink, image, stop: threading.Event) -> None:
    seq = 0
    while not stop.is_set():
        sink.publish(dataclasses.replace(viewer_result(seq), image=image, frame_shape=image.shape))
        seq += 1
        time.sleep(0.001)


def test_a_stalled_browser_never_slows_publish_and_is_let_go(caplog):
    """A client that never reads: its writes back up on the server, never into publish(); after
    ``write_timeout`` without taking a frame it is disconnected and its place is free."""
    caplog.set_level(logging.INFO)
    built_on = set()

    class Recording(ViewerSink):
        def _build(self, result):
            built_on.add(threading.get_ident())
            return super()._build(result)

    noise = np.random.default_rng(0).integers(0, 256, (1080, 1920), np.uint8)  # ~2 MB JPEGs
    stop = threading.Event()
    with Recording(port=0, width=1920, quality=95, max_fps=1000, max_clients=1,
                   write_timeout=0.5) as sink:
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.connect(address(sink))
        stalled.sendall(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
        until(lambda: sink.describe()["clients"] == 1)
        publisher = threading.Thread(target=publish_noise, args=(sink, noise, stop), daemon=True)
        publisher.start()
        try:
            until(lambda: sink.let_go == 1, timeout=60)
            reader = EventReader(sink)  # the freed place
            assert reader.next_seq() >= 0
            reader.close()
        finally:
            stop.set()
            publisher.join(10)
            stalled.close()
    assert not publisher.is_alive() and sink.published > 0
    assert publisher.ident not in built_on and len(built_on) == 1  # rendered on the encoder only
    assert any("let a browser go" in r.getMessage() for r in caplog.records)
