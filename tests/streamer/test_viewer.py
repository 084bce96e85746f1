"""The live viewer: what it renders, how it binds, that a stalled browser never slows the
pipeline's publish call, and (in headless Chromium) that the page draws, toggles and survives a
restart of the streamer behind it."""

from __future__ import annotations

import base64
import json
import socket
import statistics
import threading
import time
import urllib.request

import cv2
import numpy as np
import pytest

from streamer.sinks import create_sink
from streamer.sinks.viewer_render import CLASS_COLOURS, render
from streamer.sinks.viewer_sink import ViewerOptions, ViewerSink
from tests.streamer.viewer_fixtures import PEAK, viewer_result

pytest.importorskip("aiohttp")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_events(url: str, n: int, timeout: float = 20.0) -> list[dict]:
    """The first ``n`` frame messages from the page's event stream."""
    messages = []
    with urllib.request.urlopen(url + "events", timeout=timeout) as r:
        while len(messages) < n:
            line = r.readline()
            if not line:
                break
            if line.startswith(b"data: "):
                messages.append(json.loads(line[6:]))
    return messages


def feed(sink, stop: threading.Event, period: float = 0.03, first_seq: int = 0) -> threading.Thread:
    def run():
        seq = first_seq
        while not stop.is_set():
            sink.publish(viewer_result(seq))
            seq += 1
            time.sleep(period)
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_render_puts_the_present_class_overlay_on_its_peak():
    message, jpeg = render(viewer_result(), lambda name: {"head": 0.6}.get(name, 0.5), max_width=200)
    assert message["width"] == 200 and message["height"] == 150  # 400×300 halved, never upscaled
    assert cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_UNCHANGED).shape[:2] == (150, 200)
    head, spine = message["classes"]
    assert head["threshold"] == 0.6 and spine["threshold"] == 0.5
    assert head["peak"] == [PEAK[0] / 2, PEAK[1] / 2] and head["box"] == [62.5, 37.5, 87.5, 62.5]
    assert spine["overlay"] is None and spine["peak"] is None  # absent: nothing drawn
    assert head["colour"] == CLASS_COLOURS["head"] != spine["colour"]
    png = cv2.imdecode(np.frombuffer(base64.b64decode(head["overlay"]), np.uint8),
                       cv2.IMREAD_UNCHANGED)
    alpha = png[..., 3]
    y, x = np.unravel_index(np.argmax(alpha), alpha.shape)
    assert abs(x - PEAK[0] / 2) <= 2 and abs(y - PEAK[1] / 2) <= 2  # the map lands on its peak
    assert alpha[:, :45].max() == 0  # nothing left of the crop (x < 100 source px)
    assert tuple(png[y, x, 2::-1]) == tuple(int(CLASS_COLOURS["head"][i:i + 2], 16) for i in (1, 3, 5))


def test_viewer_binds_loopback_unless_allowed():
    with pytest.raises(ValueError, match="not a loopback address"):
        ViewerOptions(host="0.0.0.0")
    assert ViewerOptions(host="0.0.0.0", allow_remote=True).host == "0.0.0.0"
    assert create_sink("view:0").options.port == 0
    port = free_port()
    with ViewerSink(port=port), pytest.raises(ValueError, match="in use"):
        ViewerSink(port=port).open()


def test_page_events_and_frame_from_a_publishing_sink():
    stop = threading.Event()
    with ViewerSink(port=0, threshold_for=lambda name: 0.5) as sink:
        assert urllib.request.urlopen(sink.url).read().startswith(b"<!doctype html>")
        feed(sink, stop)
        try:
            messages = read_events(sink.url, 3)
        finally:
            stop.set()
        assert [m["seq"] for m in messages] == sorted({m["seq"] for m in messages})  # newer only
        assert messages[-1]["classes"][0]["overlay"] and messages[-1]["latency_history"]
        jpeg = urllib.request.urlopen(sink.url + "frame.jpg").read()
        assert cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_UNCHANGED).shape == (300, 400)


def test_a_stalled_browser_never_slows_publish():
    """A client that never reads: the server's writes back up, the pipeline's call does not."""
    with ViewerSink(port=0, max_fps=1000) as sink:
        host, port = sink.url[7:-1].rsplit(":", 1)
        stalled = socket.create_connection((host, int(port)))
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.sendall(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            results = [viewer_result(i) for i in range(300)]
            costs = []
            for r in results:
                t0 = time.perf_counter()
                sink.publish(r)
                costs.append(time.perf_counter() - t0)
                time.sleep(0.002)
            time.sleep(0.5)
            assert sink.describe()["clients"] == 1 and sink.encoded > 1
        finally:
            stalled.close()
    assert statistics.median(costs) < 1e-3, costs  # a reference handed over, nothing encoded


def test_polar_maps_are_warped_back_onto_the_sector():
    """A polar model's map (angle across, depth down) lands where its peak lies on the screen."""
    import dataclasses

    from engines.polar import PolarMap, SectorGeometry
    from streamer.preprocess import PolarCrop

    polar = PolarMap(SectorGeometry(apex=(100.0, -20.0), r_min=40.0, r_max=220.0,
                                    angle_min=-0.6, angle_max=0.6), 224)
    crop = PolarCrop(x=100, y=50, w=200, h=200, size=224, polar=polar)
    u, v = 168.0, 112.0  # three quarters across, half way down, on the model's 224 grid
    gy, gx = np.mgrid[0:28, 0:28]
    maps = np.zeros((2, 28, 28), np.uint8)
    maps[0] = (255 * np.exp(-((gx + 0.5 - u / 8) ** 2 + (gy + 0.5 - v / 8) ** 2) / 2.0)).astype(np.uint8)
    x, y = (float(c) for c in polar.polar_to_image(u, v))
    result = dataclasses.replace(viewer_result(), maps=maps, crop=crop)
    message, _ = render(result, lambda name: 0.5, max_width=400)
    png = cv2.imdecode(np.frombuffer(base64.b64decode(message["classes"][0]["overlay"]), np.uint8),
                       cv2.IMREAD_UNCHANGED)
    alpha = png[..., 3].astype(int)
    assert alpha[round(crop.y + y), round(crop.x + x)] >= 0.9 * alpha.max() > 0  # on its peak
    mx, my = (float(c) for c in polar.polar_to_image(224 - u, v))  # the mirror image across the beam
    assert alpha[round(crop.y + my), round(crop.x + mx)] == 0


def test_bad_or_busy_viewer_port_is_one_line(capsys):
    """A live output that cannot start is the user's input: exit 2 with one line, no traceback."""
    import socket

    from streamer.cli import main

    base = ["run", "--max-frames", "1", "--metrics-port", "0", "--publish", "tcp://127.0.0.1:*"]
    assert main(base + ["--view-port", "70000"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "view sink" in err[0] and "70000" in err[0], err
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        assert main(base + ["--view-port", str(busy.getsockname()[1])]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "view sink" in err[0], err
