"""streamer view --connect: the viewer page for a streamer running elsewhere, fed by its det and
img (preview) topics; the same page messages as the in-process viewer."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

from streamer.cli import main
from streamer.cli.view_cmd import remote_message
from streamer.protocol import decode_message, encode_result
from streamer.sinks.viewer_render import render
from streamer.sinks.zmq_sink import preview_message
from tests.streamer.test_viewer import free_port
from tests.streamer.viewer_fixtures import viewer_result

pytest.importorskip("aiohttp")
ROOT = Path(__file__).resolve().parents[2]


def _alpha(b64: str) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(base64.b64decode(b64), np.uint8), cv2.IMREAD_UNCHANGED)[..., 3]


def first_event(url: str, wanted, timeout: float = 30.0) -> dict:
    """The first message on the page's event stream for which ``wanted`` is true."""
    with urllib.request.urlopen(url + "events", timeout=timeout) as r:
        while line := r.readline():
            if line.startswith(b"data: ") and wanted(m := json.loads(line[6:])):
                return m
    raise AssertionError("the event stream ended")


def test_remote_message_matches_the_local_render():
    result = viewer_result(5)
    det = decode_message(encode_result(result))
    thresholds = {"head": 0.6, "spine": 0.4}
    img = decode_message(preview_message(result, 200, 70, thresholds.get))
    remote, jpeg = remote_message(det, img)
    local, _ = render(result, thresholds.get, max_width=200)
    for key in ("stream", "seq", "width", "height", "source"):
        assert remote[key] == local[key]
    assert jpeg == img.jpeg and base64.b64decode(remote["jpeg"]) == jpeg
    for r, c in zip(remote["classes"], local["classes"], strict=True):
        keys = ("name", "present", "colour", "peak", "box", "threshold")
        assert {k: r[k] for k in keys} == {k: c[k] for k in keys}
        assert (r["overlay"] is None) == (c["overlay"] is None)
    # the head's overlay, from the quarter-size grid, lands where the local one does
    diff = np.abs(_alpha(remote["classes"][0]["overlay"]).astype(int)
                  - _alpha(local["classes"][0]["overlay"]).astype(int))
    assert diff.mean() < 1.0 and diff.max() < 40


def test_view_serves_loopback_unless_allowed_and_insecure(capsys):
    assert main(["view", "--host", "0.0.0.0", "--port", "0", "--duration", "0.1"]) == 2
    assert "--allow-remote" in capsys.readouterr().err
    assert main(["view", "--host", "0.0.0.0", "--allow-remote", "--port", "0",
                 "--duration", "0.1"]) == 2
    assert "--insecure" in capsys.readouterr().err


def test_view_connect_shows_a_running_streamer_with_its_regions():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    pub, http = free_port(), free_port()
    run = subprocess.Popen([sys.executable, "-m", "streamer", "run", "--source", "sim:fps=20",
                            "--publish", f"tcp://127.0.0.1:{pub}", "--preview",
                            "--metrics-port", "0", "--duration", "60"],
                           env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    view = subprocess.Popen([sys.executable, "-m", "streamer", "view", "--connect",
                             f"tcp://127.0.0.1:{pub}", "--port", str(http), "--duration", "60"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{http}/"
        for _ in range(200):  # the page is up once view prints its address
            line = view.stdout.readline().decode()
            if url in line or view.poll() is not None:
                break
        assert url in line, view.stderr.read().decode()
        t0 = time.monotonic()
        m = first_event(url, lambda m: m["fps_history"] and any(c["present"] for c in m["classes"]))
        assert m["stream"] == "main" and m["source"] == [1920, 1080] and m["width"] == 480
        frame = cv2.imdecode(np.frombuffer(base64.b64decode(m["jpeg"]), np.uint8),
                             cv2.IMREAD_UNCHANGED)
        assert frame.shape[:2] == (m["height"], m["width"])
        names = [c["name"] for c in m["classes"]]
        assert "head" in names and len(names) >= 2
        present = [c for c in m["classes"] if c["present"]]
        assert present and all(c["overlay"] and c["peak"] for c in present)
        assert m["latency_history"] and m["source_state"] == "up"
        assert {c["threshold"] for c in m["classes"]} == {0.5}  # the streamer's default, sent along
        assert time.monotonic() - t0 < 30
    finally:
        for p in (view, run):
            p.terminate()
        for p in (view, run):
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def test_view_says_when_the_streamer_sends_no_preview_or_nothing(monkeypatch, caplog):
    import threading

    from streamer.cli import view_cmd
    from streamer.sinks.zmq_sink import ZmqSink

    monkeypatch.setattr(view_cmd, "SILENT_S", 0.3)
    stop = threading.Event()
    with ZmqSink(endpoint="tcp://127.0.0.1:*") as sink:  # results, no --preview
        def feed():
            seq = 0
            while not stop.is_set():
                sink.publish(viewer_result(seq))
                seq += 1
                time.sleep(0.03)
        t = threading.Thread(target=feed, daemon=True)
        t.start()
        try:
            assert main(["view", "--connect", sink.endpoint, "--port", "0", "--duration", "1.2"]) == 0
        finally:
            stop.set()
            t.join()
        assert "publishes results but no preview: start the streamer with --preview" in caplog.text
        assert "is the streamer running" not in caplog.text
        caplog.clear()
        assert main(["view", "--connect", sink.endpoint, "--port", "0", "--duration", "0.8"]) == 0
        assert "nothing from tcp://127.0.0.1" in caplog.text and "is the streamer running" in caplog.text
