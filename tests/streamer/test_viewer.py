"""The live viewer: what it renders and how it binds (limits, stalled browsers and the preview's
pace: test_viewer_limits.py; the page in headless Chromium: test_viewer_browser.py)."""

from __future__ import annotations

import base64
import json
import socket
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
    assert main(base + ["--view-port", "0", "--view-clients", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "max_clients" in err[0] and "got 0" in err[0], err


# -- where the page puts region labels (place_labels, the twin of the page's placeLabels) ---------
# A user found the labels drawn at the peak, on top of the boxes and of each other: unreadable.

CROWDED = [(120, 70, 200, 140), (130, 80, 210, 150), (140, 0, 260, 60), (100, 200, 220, 270),
           (150, 90, 190, 130), (400, 120, 480, 200), (135, 75, 205, 145)]  # on a 480×270 frame
LABEL = (88.0, 19.0)


def _rect(corner, size):
    return (corner[0], corner[1], corner[0] + size[0], corner[1] + size[1])


def _overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def assert_clear_labels(rects, anchors, bounds):
    """Every label on the canvas, off its own box and off every other label."""
    for i, r in enumerate(rects):
        assert 0 <= r[0] and 0 <= r[1] and r[2] <= bounds[0] and r[3] <= bounds[1], (i, r)
        assert not _overlap(r, anchors[i]), (i, r, anchors[i])
        assert not [j for j in range(i) if _overlap(r, rects[j])], (i, r)


@pytest.mark.parametrize("scale", [1.0, 1.96, 0.75])
def test_labels_of_a_crowded_frame_cover_neither_their_box_nor_each_other(scale):
    from streamer.sinks.viewer_render import place_labels

    anchors = [tuple(v * scale for v in b) for b in CROWDED]
    bounds = (480 * scale, 270 * scale)
    places = place_labels(anchors, [LABEL] * len(anchors), bounds)
    assert_clear_labels([_rect(p, LABEL) for p in places], anchors, bounds)


def test_random_crowds_of_boxes_get_clear_labels():
    from streamer.sinks.viewer_render import place_labels

    rng = np.random.default_rng(0)
    for bounds in [(480, 270)] * 40 + [(938, 528)] * 40:
        w, h = bounds
        centre = rng.uniform((0.3 * w, 0.2 * h), (0.7 * w, 0.8 * h), (7, 2))
        half = rng.uniform((10, 10), (0.2 * w, 0.3 * h), (7, 2))
        anchors = [(max(0, x - a), max(0, y - b), min(w, x + a), min(h, y + b))
                   for (x, y), (a, b) in zip(centre, half, strict=True)]
        sizes = [(float(rng.uniform(50, 100)), 19.0) for _ in anchors]
        places = place_labels(anchors, sizes, bounds)
        assert_clear_labels([_rect(p, s) for p, s in zip(places, sizes, strict=True)], anchors, bounds)


def test_a_label_sits_on_its_boxs_top_edge_or_below_it_when_there_is_no_room():
    from streamer.sinks.viewer_render import place_labels

    lone, at_top = (100, 100, 200, 180), (300, 5, 400, 80)
    assert place_labels([lone, at_top], [LABEL, LABEL], (480, 270)) == [
        (100, 100 - 2 - 19), (300, 80 + 2)]
    right_edge = (440, 100, 480, 150)  # the label moves left to stay on the canvas
    assert place_labels([right_edge], [LABEL], (480, 270)) == [(480 - 88, 100 - 2 - 19)]
    twins = [(100, 100, 200, 180), (100, 100, 200, 180)]  # the second moves beside the first
    assert place_labels(twins, [LABEL, LABEL], (480, 270)) == [(100, 79), (100, 182)]


CROWDED_SOURCE = [(120, 70, 200, 140), (130, 80, 210, 150), (140, 0, 260, 60), (100, 200, 220, 300),
                  (150, 90, 190, 130), (320, 120, 400, 200), (135, 75, 205, 145)]  # on the 400×300 frame


def crowded_result(seq: int = 0):
    """The fixture's frame with seven present regions whose boxes overlap."""
    import dataclasses

    from streamer.frames import ClassResult

    names = ("head", "spine", "thorax", "abdomen", "limbs", "placenta", "background")
    classes = tuple(ClassResult(n, 0.95 - 0.05 * i, True, ((b[0] + b[2]) // 2, (b[1] + b[3]) // 2), b)
                    for i, (n, b) in enumerate(zip(names, CROWDED_SOURCE, strict=True)))
    r = viewer_result(seq)
    maps = np.concatenate([r.maps, np.zeros((len(names) - 2, *r.maps.shape[1:]), np.uint8)])
    return dataclasses.replace(r, classes=classes, maps=maps)
