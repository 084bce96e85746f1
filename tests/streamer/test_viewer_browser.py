"""The viewer page in a real headless Chromium (Debian's chromium + chromium-driver, selenium):
it draws the frame, a class toggle changes the overlay, and it survives the streamer restarting.
The restart test runs the real `streamer run --view-port` and takes a screenshot: to tmp, or to
docs/viewer.png (the README's) with SONOSTREAM_UPDATE_SCREENSHOT=1."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from streamer.sinks.viewer_sink import ViewerSink
from tests.browser import headless_chromium, needs_browser
from tests.streamer.test_viewer import (
    CROWDED,
    LABEL,
    assert_clear_labels,
    crowded_result,
    feed,
    free_port,
)
from tests.streamer.viewer_fixtures import PEAK

pytest.importorskip("selenium.webdriver")
pytest.importorskip("aiohttp")
pytestmark = needs_browser
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "docs" / "viewer.png"  # rewritten only when asked: tests leave the tree alone


@pytest.fixture(scope="module")
def browser():
    with headless_chromium(900, 520) as driver:
        yield driver


def wait_for(driver, script: str, timeout: float = 30.0):
    """Poll a JS expression until it is truthy; its value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script("return " + script)
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {script}: {driver.execute_script('return window.viewer')}")


def pixel(driver, x: float, y: float) -> list[int]:
    """The canvas pixel at (x, y) in the message's pixels (the canvas is scaled to the page)."""
    return driver.execute_script(
        f"const s = window.viewer.scale || 1; return Array.from(document.getElementById('frame')"
        f".getContext('2d').getImageData(Math.round({x} * s), Math.round({y} * s), 1, 1).data)")


def test_page_draws_the_frame_and_a_toggle_removes_the_overlay(browser):
    stop = threading.Event()
    with ViewerSink(port=0, threshold_for=lambda name: 0.5) as sink:
        feeder = feed(sink, stop)
        try:
            browser.get(sink.url)
            wait_for(browser, "window.viewer.frames > 0 && window.viewer.drawnOverlays.includes('head')")
            x, y = PEAK[0] - 8, PEAK[1] + 8  # on the head's heat map, off its peak marker and label
            r, g, b, _ = pixel(browser, x, y)
            assert r > b + 40, (r, g, b)  # tinted by the head's orange (the frame is grey 90)
            assert browser.find_element("id", "cls-spine").is_displayed()  # absent classes listed
            browser.find_element("id", "show-head").click()
            wait_for(browser, "!window.viewer.drawnOverlays.includes('head')")
            r, g, b, _ = pixel(browser, x, y)
            assert abs(r - b) <= 3 and abs(r - 90) <= 6, (r, g, b)  # the plain grey frame
            shown = browser.execute_script("return window.viewer.frames")
            wait_for(browser, f"window.viewer.frames > {shown}")  # still live, still hidden
            assert browser.execute_script("return window.viewer.drawnOverlays") == []
        finally:
            stop.set()
            feeder.join(5)  # no publish after the sink closes


def test_a_browser_past_max_clients_says_it_was_refused(browser):
    """The one place is taken: the page says why it shows nothing (HTTP 503), not "reconnecting"."""
    import urllib.request

    with ViewerSink(port=0, max_clients=1) as sink:
        holder = urllib.request.urlopen(sink.url + "events", timeout=10)
        try:
            browser.get(sink.url)
            text = wait_for(browser, "document.getElementById('conn').textContent.startsWith("
                                     "'refused') && document.getElementById('conn').textContent")
            assert "too many browsers" in text and sink.describe()["refused"] >= 1
        finally:
            holder.close()


def feed_crowd(sink, stop: threading.Event) -> threading.Thread:
    def run():
        seq = 0
        while not stop.is_set():
            sink.publish(crowded_result(seq))
            seq += 1
            time.sleep(0.05)
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


GEOMETRY = """const c = document.getElementById('frame'), r = c.getBoundingClientRect();
return {css: [r.width - 2, r.height - 2], backing: [c.width, c.height], dpr: window.devicePixelRatio,
        column: document.getElementById('view').clientWidth,
        page: document.documentElement.clientWidth, labels: window.viewer.labels};"""


def test_the_frame_fills_the_width_beside_the_panel_and_labels_stay_clear(browser):
    """A 1280 px page: the 400 px frame was drawn 400 px wide; now it takes its column's width
    (aspect kept, a canvas as sharp as the screen), and its seven labels cover no box of theirs
    and no other label."""
    stop = threading.Event()
    browser.set_window_size(1280, 1000)
    try:
        with ViewerSink(port=0) as sink:
            feeder = feed_crowd(sink, stop)
            browser.get(sink.url)
            try:
                wait_for(browser, "window.viewer.frames > 1 && window.viewer.labels.length === 7")
                g = browser.execute_script(GEOMETRY)  # css: inside the 1 px border
            finally:
                stop.set()
                feeder.join(5)
    finally:
        browser.set_window_size(900, 520)
    (w, h), (bw, bh) = g["css"], g["backing"]
    assert w >= g["column"] - 3 and w > 0.6 * g["page"], g  # the column, not 400 px of 1280
    assert w / h == pytest.approx(400 / 300, rel=0.01)
    assert abs(bw - w * g["dpr"]) <= 1 and abs(bh - h * g["dpr"]) <= 1  # a pixel per screen pixel
    rects = [label["rect"] for label in g["labels"]]
    assert_clear_labels(rects, [label["anchor"] for label in g["labels"]], (bw, bh))


def test_the_page_places_labels_as_python_does(browser):
    """placeLabels in the page and place_labels in viewer_render: the same places."""
    from streamer.sinks.viewer_render import place_labels

    with ViewerSink(port=0) as sink:
        browser.get(sink.url)
        for scale in (1.0, 1.96, 0.75):
            anchors = [[v * scale for v in b] for b in CROWDED]
            sizes, bounds = [list(LABEL)] * len(anchors), [480 * scale, 270 * scale]
            page = browser.execute_script("return window.viewer.placeLabels(...arguments)",
                                          anchors, sizes, bounds, 2)
            python = place_labels([tuple(a) for a in anchors], [LABEL] * len(anchors), tuple(bounds))
            assert [v for p in page for v in p] == pytest.approx([v for p in python for v in p]), scale


def start_streamer(port: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "streamer", "run", "--source", "sim", "--view-port", str(port),
         "--metrics-port", "0", "--publish", f"tcp://127.0.0.1:{free_port()}", "--duration", "120"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def stop_streamer(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.mark.slow
def test_page_from_a_running_streamer_survives_its_restart(browser):
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    proc = start_streamer(port)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:  # the streamer opens its model first
            try:
                browser.get(url)
                break
            except Exception:
                assert proc.poll() is None, proc.stderr.read()
                time.sleep(1)
        wait_for(browser, "window.viewer.frames > 5 && window.viewer.drawnOverlays.length > 0", 90)
        browser.execute_script("window.sameDocument = true")
        time.sleep(2.5)  # a few more frames so the sparklines have a shape
        shot = (SCREENSHOT if os.environ.get("SONOSTREAM_UPDATE_SCREENSHOT") == "1"
                else Path(os.environ.get("TMPDIR", "/tmp")) / "sonostream-viewer.png")
        assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
        stop_streamer(proc)
        wait_for(browser, "window.viewer.connected === false", 30)
        frames = browser.execute_script("return window.viewer.frames")
        proc = start_streamer(port)
        wait_for(browser, f"window.viewer.connected && window.viewer.frames > {frames}", 120)
        assert browser.execute_script("return window.sameDocument") is True  # not reloaded
    finally:
        stop_streamer(proc)


def test_the_exam_checklist_shows_the_regions_seen(browser):
    """The status message's exam (streamer.coverage) becomes the checklist beside the picture."""
    exam = {"id": "e7", "started_by": "start", "seconds": 12.0, "regions": {
        "head": {"seconds": 4.5, "first_s": 1.0, "last_s": 9.0, "results": 135},
        "spine": {"seconds": 0.0, "first_s": None, "last_s": None, "results": 0}}}
    stop = threading.Event()
    with ViewerSink(port=0, threshold_for=lambda name: 0.5) as sink:
        sink.publish_status({"stream": "us0", "fps": 30.0, "exam": exam})
        feeder = feed(sink, stop)
        try:
            browser.get(sink.url)
            wait_for(browser, "window.viewer.exam && window.viewer.exam.id === 'e7'")
            rows = browser.execute_script(
                "return Array.from(document.querySelectorAll('#checklist .row'))"
                ".map(r => [r.className, r.textContent])")
            assert rows == [["row seen-yes", "✓ head 4.5 s · last at 9 s"],
                            ["row seen-no", "· spine 0.0 s"]]
            assert browser.find_element("id", "exam").text == "e7"
        finally:
            stop.set()
            feeder.join(5)  # no publish after the sink closes
