"""streamer tap as people read it: where each present region is, a status line in words, and a
note on stderr when the streamer goes quiet instead of hanging in silence."""

from __future__ import annotations

import re
import time

import numpy as np

from streamer.cli import main, tap_cmd
from streamer.frames import Frame
from streamer.sinks.zmq_sink import ZmqSink
from tests.streamer.test_client_cli import fake_result, in_thread

STATUS = {"stream": "us0", "state": "running", "fps": 29.84, "processed": 300, "dropped": 2,
          "invalid": 0, "source": {"kind": "sim", "state": "up", "error": None},
          "backend": {"backend": "onnxruntime", "precision": "fp32"},
          "latency_ms": {"p50": 7.14, "p99": 40.2}}


def frame(seq=3):
    return Frame(seq=seq, image=np.zeros((120, 160, 3), np.uint8), t_source_ns=77)


def publish_until(sink, tap, send, capsys, needle: str | None, seconds: float = 10.0) -> str:
    """Keep publishing until the tap has printed ``needle`` (None: until it ends); its output."""
    out = ""
    deadline = time.monotonic() + seconds
    while tap.is_alive() and (needle is None or needle not in out) and time.monotonic() < deadline:
        send()
        time.sleep(0.02)
        out += capsys.readouterr().out
    return out


def test_tap_shows_peak_box_and_readable_status(capsys):
    with ZmqSink(endpoint="tcp://127.0.0.1:*") as sink:
        tap, box = in_thread(["tap", "--connect", sink.endpoint, "--status", "--count", "2",
                              "--timeout", "5"])

        def send():
            sink.publish_status(STATUS)
            sink.publish(fake_result(frame()))
        out = publish_until(sink, tap, send, capsys, None)
        tap.join(5)
        out += capsys.readouterr().out
    assert box.get("rc") == 0, out
    assert "us0 #3  head 0.88 at (80, 60) box (0, 0, 80, 60)  |" in out
    assert ("us0 status: running, 29.8 fps, latency p50 7.1 ms p99 40.2 ms, processed 300 "
            "dropped 2 invalid 0, source sim up, onnxruntime fp32") in out
    assert "{" not in out  # no dicts


def test_tap_says_when_the_streamer_is_gone(capsys, monkeypatch):
    monkeypatch.setattr(tap_cmd, "SILENT_S", 0.5)
    with ZmqSink(endpoint="tcp://127.0.0.1:*") as sink:
        tap, box = in_thread(["tap", "--connect", sink.endpoint, "--timeout", "2"])
        publish_until(sink, tap, lambda: sink.publish(fake_result(frame())), capsys, "us0 #3")
        sink.publish_status({**STATUS, "state": "stopped"})
    tap.join(5)
    err = capsys.readouterr().err
    assert box.get("rc") == 3  # the streamer went away: the source, not a bug (1) nor bad input
    assert "the streamer stopped or went away; waiting for it" in err
    assert re.fullmatch(rf"streamer tap: error: no message from {re.escape(sink.endpoint)} for 2 s "
                        r"\(\d+ results seen\): the streamer stopped or went away",
                        err.strip().splitlines()[-1]), err
    assert main(["tap", "--connect", "tcp://127.0.0.1:1", "--timeout", "0.8"]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == ("streamer tap: error: no message from tcp://127.0.0.1:1 for 0.8 s "
                       "(0 results seen): is a streamer running there?"), err
