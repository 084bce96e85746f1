"""The viewer page in a real headless Chromium (Debian's chromium + chromium-driver, selenium):
it draws the frame, a class toggle changes the overlay, and it survives the streamer restarting.
The restart test runs the real `streamer run --view-port` and takes a screenshot: to tmp, or to
docs/viewer.png (the README's) with SONOSTREAM_UPDATE_SCREENSHOT=1."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from streamer.sinks.viewer_sink import ViewerSink
from tests.streamer.test_viewer import feed, free_port
from tests.streamer.viewer_fixtures import PEAK

webdriver = pytest.importorskip("selenium.webdriver")
pytest.importorskip("aiohttp")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(CHROMEDRIVER is None or shutil.which("chromium") is None,
                                reason="needs Debian's chromium and chromium-driver")
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "docs" / "viewer.png"  # rewritten only when asked: tests leave the tree alone


@pytest.fixture(scope="module")
def browser():
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = shutil.which("chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=900,520"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def wait_for(driver, script: str, timeout: float = 30.0):
    """Poll a JS expression until it is truthy; its value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script("return " + script)
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {script}: {driver.execute_script('return window.viewer')}")


def pixel(driver, x: int, y: int) -> list[int]:
    return driver.execute_script(
        f"return Array.from(document.getElementById('frame').getContext('2d')"
        f".getImageData({x}, {y}, 1, 1).data)")


def test_page_draws_the_frame_and_a_toggle_removes_the_overlay(browser):
    stop = threading.Event()
    with ViewerSink(port=0, threshold_for=lambda name: 0.5) as sink:
        feed(sink, stop)
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
