"""Liveness and exit statuses a supervisor can trust: the up gauge, backoff, one log line per
state change, the capture watchdog, a bug in a source, truncated files, devices that never open."""

import logging
import threading
import time

import cv2
import numpy as np
import pytest
import zmq

from streamer.cli import main
from streamer.cli.run_cmd import exit_status
from streamer.config import Config, PreprocessConfig, PublishConfig, SourceConfig
from streamer.frames import SourceLost
from streamer.metrics import PipelineMetrics
from streamer.pipeline import build_pipeline
from streamer.protocol import encode_frame
from streamer.sinks.zmq_sink import bind_publisher
from streamer.sources import create_source
from tests.streamer.conftest import FakeBackend, FakeSink, FakeSource


def config(initial=0.05, most=0.4):
    return Config(preprocess=PreprocessConfig(mode="full"),
                  source=SourceConfig(read_timeout_s=0.05, retry_initial_s=initial, retry_max_s=most),
                  publish=PublishConfig(stream="t", status_interval_s=0.1))


def gauge(p) -> float:
    return p.metrics.source_up.labels("t")._value.get()


class Sender(threading.Thread):
    """Publishes small frames at ~50 fps while ``sending`` is set."""

    def __init__(self):
        super().__init__(daemon=True)
        self.sock = bind_publisher("tcp://127.0.0.1:*")
        self.endpoint = self.sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self.sending, self.done = threading.Event(), threading.Event()
        self.sending.set()

    def run(self):
        seq = 0
        while not self.done.is_set():
            if self.sending.is_set():
                self.sock.send_multipart(encode_frame(np.zeros((32, 48), np.uint8), seq, 0, fmt="gray"))
                seq += 1
            time.sleep(0.02)
        self.sock.close(linger=0)


def test_outage_gauge_backoff_and_one_line_per_state_change(caplog):
    """Finding 3: during an outage the gauge reads 0 in every sample once the source's timeout
    has passed, reopening a SUB socket is not 'up', and the retry delay really grows."""
    sender = Sender()
    sender.start()
    source = create_source(f"zmq:{sender.endpoint},timeout=0.3")
    p = build_pipeline(config(0.1, 0.8), source, FakeBackend(), [FakeSink()], PipelineMetrics("t"))
    try:
        with caplog.at_level(logging.INFO, logger="streamer.pipeline"):
            p.start()
            deadline = time.monotonic() + 5
            while gauge(p) != 1:
                assert time.monotonic() < deadline, "never up"
                time.sleep(0.02)
            sender.sending.clear()
            time.sleep(1.0)  # the 0.3 s timeout passes, with room for a busy machine
            samples, delays = [], set()
            for _ in range(40):  # 2 s of outage, sampled every 50 ms
                samples.append(gauge(p))
                delays.add(p.source_state.retry_in_s)
                time.sleep(0.05)
            sender.sending.set()
            deadline = time.monotonic() + 5
            while gauge(p) != 1:
                assert time.monotonic() < deadline, "never up again"
                time.sleep(0.02)
    finally:
        p.stop()
        p.close()
        sender.done.set()
    assert samples == [0] * 40
    assert max(delays) >= 0.4 and min(delays) <= 0.2  # 0.1, 0.2, 0.4 ... not 0.1 each time
    text = [r.getMessage() for r in caplog.records if r.name.startswith("streamer.pipeline")]
    assert sum("source lost" in t for t in text) == 1
    assert sum("is up" in t for t in text) == 2


class BuggySource(FakeSource):
    """read() raises a plain bug (not one of the source errors) on its second call."""

    def read(self, timeout):
        self.calls = getattr(self, "calls", 0) + 1
        if self.calls == 2:
            raise KeyError("bug in the source")
        return super().read(timeout)


def run_until_done(source, seconds=None):
    p = build_pipeline(config(), source, FakeBackend(), [FakeSink()], PipelineMetrics("t"))
    p.start()
    if seconds:
        time.sleep(seconds)
        p.stop()
    assert p.wait(5)
    return p, p.close()


def test_a_bug_in_a_live_source_is_counted_logged_once_and_the_source_reopened(caplog):
    source = BuggySource(live=True, forever=True, period=0.01)
    with caplog.at_level(logging.ERROR):
        p, c = run_until_done(source, seconds=0.5)
    assert c["invalid"] == 1 and c["processed"] > 5
    assert len(source.open_times) == 2 and p.source_state.state == "up"
    errors = [r for r in caplog.records if "failed reading a frame" in r.getMessage()]
    assert len(errors) == 1 and errors[0].exc_info is not None  # with its traceback
    assert exit_status(p.source_state) == 0


def test_a_bug_in_a_file_source_ends_with_an_internal_error_status(capsys):
    p, c = run_until_done(BuggySource(live=False, count=5))
    assert c["invalid"] == 1 and p.source_state.state == "failed"
    assert exit_status(p.source_state) == 1
    assert "KeyError" in capsys.readouterr().err


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """A 90-frame MJPG video and the same file cut at 45 %: 41 frames still decode."""
    d = tmp_path_factory.mktemp("video")
    w = cv2.VideoWriter(str(d / "full.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 30, (96, 64))
    rng = np.random.default_rng(0)
    for _ in range(90):
        w.write(rng.integers(0, 255, (64, 96, 3), dtype=np.uint8))
    w.release()
    data = (d / "full.avi").read_bytes()
    (d / "cut.avi").write_bytes(data[: int(len(data) * 0.45)])
    return d


def run_args(model, source):
    return ["run", "--model", str(model), "--source", source, "--metrics-port", "0",
            "--publish", "tcp://127.0.0.1:*"]


def test_truncated_video_exits_non_zero_with_one_line(videos, random_onnx, capsys):
    assert main(run_args(random_onnx, str(videos / "cut.avi"))) == 3
    err = capsys.readouterr().err
    assert "source ended early" in err and "of its 90 frames" in err
    assert main(run_args(random_onnx, str(videos / "full.avi"))) == 0


def test_capture_device_that_never_opens_is_exit_2_at_start(random_onnx, capfd):
    t0 = time.monotonic()
    assert main(run_args(random_onnx, "capture:/dev/video99")) == 2
    err = capfd.readouterr().err
    assert time.monotonic() - t0 < 10
    assert "cannot open capture device /dev/video99" in err and "WARN" not in err


class StallingCapture:
    """cv2.VideoCapture stand-in: delivers ``frames`` frames, then blocks in read() (a stalled
    card) until released by the test."""

    frames = 3
    instances: list = []

    def __init__(self, *args):
        self.n, self.released = 0, False
        self.unblock = threading.Event()
        StallingCapture.instances.append(self)

    def isOpened(self):
        return True

    def set(self, *args):
        return True

    def get(self, prop):
        return 0.0

    def read(self):
        if self.n >= self.frames:
            self.unblock.wait(10)
            return False, None
        self.n += 1
        return True, np.full((8, 8, 3), self.n, np.uint8)

    def release(self):
        self.released = True


def test_capture_watchdog_reports_a_stalled_device_and_close_does_not_hang(monkeypatch):
    from streamer.sources import capture_source

    monkeypatch.setattr(capture_source.cv2, "VideoCapture", StallingCapture)
    StallingCapture.instances.clear()
    src = create_source("capture:0,timeout=0.3").open()
    frames = []
    with pytest.raises(SourceLost, match="stalled: no frame for"):
        for _ in range(100):
            if (frame := src.read(0.05)) is not None:
                frames.append(frame)
    assert 1 <= len(frames) <= 3 and src.frames_read + src.dropped == 3
    t0 = time.monotonic()
    src.close()
    assert time.monotonic() - t0 < 1.0  # the grabber is stuck in the driver; not waited for
    cap = StallingCapture.instances[0]
    assert not cap.released
    cap.unblock.set()  # the driver returns: the grabber releases its device
    for _ in range(100):
        if cap.released:
            break
        time.sleep(0.01)
    assert cap.released


def test_internal_errors_exit_1_with_traceback_user_errors_exit_2(monkeypatch, capsys, caplog):
    from streamer.cli import tap_cmd

    def bug(args):
        raise ValueError("an internal ValueError is not bad input")

    monkeypatch.setattr(tap_cmd, "run", bug)
    with caplog.at_level(logging.ERROR):
        assert main(["tap"]) == 1
    assert "internal error in streamer tap" in caplog.text
    assert caplog.records[-1].exc_info is not None
    assert main(["simulate", "--fps", "0"]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0
