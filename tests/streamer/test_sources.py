import dataclasses
import time

import cv2
import numpy as np
import pytest
import zmq

from streamer.frames import InvalidFrame, SourceEnded, SourceLost
from streamer.protocol import encode_frame
from streamer.sources import (
    REGISTRY,
    Source,
    create_source,
    open_source,
    parse_source_spec,
)


class FakeClock:
    """The monotonic clock and sleep of streamer.sources.base, advanced only by sleeping: the
    pacer's schedule is checked exactly, whatever the machine's load."""

    def __init__(self):
        self.now_ns, self.slept = 0, []

    def monotonic_ns(self) -> int:
        return self.now_ns

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now_ns += round(seconds * 1e9)


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 50.0, (64, 48))
    for i in range(10):
        writer.write(np.full((48, 64, 3), i * 20, np.uint8))
    writer.release()
    return str(path)


def _capture_from_file(video, monkeypatch):
    """capture: has no device here, so OpenCV's VideoCapture is pointed at a video file: the
    source's real grabber thread and watchdog run on real decoded frames."""
    import streamer.sources.capture_source as capture

    real = cv2.VideoCapture
    monkeypatch.setattr(capture.cv2, "VideoCapture", lambda device, api=None: real(video))
    return "capture:0", None


def _zmq_feed(publisher):
    sock, endpoint = publisher
    return f"zmq:{endpoint}", lambda: sock.send_multipart(frame_parts(0, value=9))


def _dicom_file(tmp_path):
    from engines.simulator.dicom_export import simulated_cine, write_dicom

    cine = simulated_cine(2, width=320, height=180)
    return f"dicom:{write_dicom(tmp_path / 'exam.dcm', cine.frames, regions=cine.regions)}", None


CONTRACT_CASES = {  # kind -> a working spec (and what makes a frame arrive) on this machine
    "sim": lambda **f: ("sim:width=160,height=120,realtime=0", None),
    "file": lambda video, **f: (f"file:{video}", None),
    "capture": lambda video, monkeypatch, **f: _capture_from_file(video, monkeypatch),
    "zmq": lambda publisher, **f: _zmq_feed(publisher),
    "dicom": lambda tmp_path, **f: _dicom_file(tmp_path),
}


@pytest.mark.parametrize("kind", sorted(REGISTRY))
def test_every_registered_source_opens_reads_and_closes_for_real(kind, video, publisher, tmp_path,
                                                                 monkeypatch):
    assert kind in CONTRACT_CASES, f"add a contract case for the {kind!r} source"
    spec, feed = CONTRACT_CASES[kind](video=video, publisher=publisher, tmp_path=tmp_path,
                                      monkeypatch=monkeypatch)
    src = create_source(spec)
    assert isinstance(src, Source) and src.kind == kind
    assert dataclasses.is_dataclass(src.Options) and src.Options.__dataclass_params__.frozen
    with pytest.raises(RuntimeError, match="not open"):
        src.read(0.01)
    with src:
        frame, deadline = None, time.monotonic() + 10
        while frame is None and time.monotonic() < deadline:
            if feed:
                feed()
            frame = src.read(0.05)
        assert frame is not None, f"{kind}: no frame within 10 s"
        assert frame.image.dtype == np.uint8 and frame.image.ndim in (2, 3)
        assert min(frame.image.shape[:2]) >= 8 and frame.t_capture_ns > 0
        info = src.describe()
        assert info["kind"] == kind and info["frames_read"] >= 1 and src.frames_read >= 1
    src.close()  # closing twice is harmless
    with pytest.raises(RuntimeError, match="not open"):
        src.read(0.01)


@pytest.mark.parametrize("spec, expected", [
    ("sim", ("sim", {})),
    ("sim:seed=3,fps=25,realtime=0", ("sim", {"seed": "3", "fps": "25", "realtime": "0"})),
    ("capture:0", ("capture", {"device": "0"})),
    ("capture:/dev/video2,width=1920,fourcc=MJPG",
     ("capture", {"device": "/dev/video2", "width": "1920", "fourcc": "MJPG"})),
    ("zmq:tcp://127.0.0.1:5550", ("zmq", {"endpoint": "tcp://127.0.0.1:5550"})),
    ("zmq:tcp://127.0.0.1:5550,timeout=5", ("zmq", {"endpoint": "tcp://127.0.0.1:5550", "timeout": "5"})),
    ("file:a b.avi,realtime=1", ("file", {"path": "a b.avi", "realtime": "1"})),
    ("clips/x,y.avi", ("file", {"path": "clips/x,y.avi"})),
])
def test_parse_source_spec(spec, expected):
    assert parse_source_spec(spec) == expected


@pytest.mark.parametrize("spec, message", [
    ("", "empty source spec"),
    ("rtsp://cam/1", "unknown source 'rtsp'"),
    ("sim:foo=1", "unknown option(s) foo"),
    ("sim:fps=fast", "option fps must be float"),
    ("sim:realtime=maybe", "must be a boolean"),
    ("sim:0", "unexpected item '0'"),
    ("sim:seed=1,seed=2", "given twice"),
    ("capture:", "needs a device"),
    ("capture:cam", "capture device must be an index"),
    ("capture:0,fourcc=MJPEG", "fourcc must be 4 characters"),
    ("zmq:127.0.0.1:5550", "must be tcp://"),
    ("missing.avi", "video file not found: missing.avi"),
    ("file:missing.avi,realtime=1", "video file not found: missing.avi"),
])
def test_bad_specs_are_one_line_value_errors(spec, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        create_source(spec)
    assert "\n" not in str(info.value)


def test_video_file_is_lossless_and_ends(video):
    with open_source(video) as src:
        assert not src.live
        frames = [src.read(1.0) for _ in range(10)]
        with pytest.raises(SourceEnded):
            src.read(1.0)
    assert [f.seq for f in frames] == list(range(10)) and frames[0].image.shape == (48, 64, 3)
    assert abs(int(frames[5].image.mean()) - 100) <= 4  # MJPG is lossy
    assert src.describe()["frames_read"] == 10 and src.describe()["kind"] == "file"


def test_video_file_loop_and_realtime_pacing(video, monkeypatch):
    from streamer.sources import base

    clock = FakeClock()
    monkeypatch.setattr(base, "time", clock)
    with open_source(f"file:{video},realtime=1,loop=1,fps=100") as src:
        assert src.live
        seqs = [src.read(1.0).seq for _ in range(15)]
    assert seqs == list(range(15))
    assert clock.now_ns == 14 * 10_000_000  # 14 periods of 10 ms after the first frame


def test_paced_read_returns_none_within_the_timeout(video, monkeypatch):
    from streamer.sources import base

    clock = FakeClock()
    monkeypatch.setattr(base, "time", clock)
    with open_source(f"file:{video},realtime=1,fps=2") as src:
        assert src.read(1.0) is not None
        assert src.read(0.05) is None
        assert clock.slept[-1] == 0.05  # waited its timeout, not the 500 ms to the next frame


def test_missing_capture_device_is_source_lost():
    src = create_source("capture:/dev/video99")
    with pytest.raises(SourceLost, match="cannot open capture device /dev/video99"):
        src.open()


# -- zmq ----------------------------------------------------------------------------------------
@pytest.fixture
def publisher():
    sock = zmq.Context.instance().socket(zmq.PUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.bind("tcp://127.0.0.1:*")
    yield sock, sock.getsockopt_string(zmq.LAST_ENDPOINT)
    sock.close(linger=0)


def frame_parts(seq, value=0):
    return encode_frame(np.full((8, 12, 3), value, np.uint8), seq=seq, t_ns=seq * 1000)


def connected(sock, src):
    """Send probes until the subscription is through (ZMQ's slow joiner); bounded."""
    for _ in range(100):
        sock.send_multipart(frame_parts(-1))
        if src.read(0.02) is not None:
            while src.read(0.02) is not None:
                pass
            return
    raise AssertionError("subscriber never connected")


def test_zmq_source_keeps_only_the_newest_message(publisher):
    sock, endpoint = publisher
    with open_source(f"zmq:{endpoint},hwm=64") as src:
        connected(sock, src)
        dropped = src.dropped
        for seq in range(20):
            sock.send_multipart(frame_parts(seq, seq))
        time.sleep(0.3)
        frame = src.read(1.0)
        assert frame.seq == 19 and frame.t_source_ns == 19000 and int(frame.image[0, 0, 0]) == 19
        assert src.dropped - dropped == 19
        assert src.read(0.05) is None


def test_zmq_source_invalid_message_then_recovers(publisher):
    sock, endpoint = publisher
    with open_source(f"zmq:{endpoint}") as src:
        connected(sock, src)
        sock.send_multipart([b"frames", b"{not json", b""])
        with pytest.raises(InvalidFrame, match="not valid JSON"):
            src.read(1.0)
        sock.send_multipart(frame_parts(5))
        assert src.read(1.0).seq == 5


def test_zmq_source_topic_filter(publisher):
    sock, endpoint = publisher
    with open_source(f"zmq:{endpoint},topic=frames.b") as src:
        for _ in range(100):
            sock.send_multipart([b"frames.a"] + frame_parts(1)[1:])
            sock.send_multipart([b"frames.b"] + frame_parts(2)[1:])
            frame = src.read(0.02)
            if frame is not None:
                break
        assert frame is not None and frame.seq == 2


def test_silent_publisher_is_source_lost_and_reopen_works(publisher):
    sock, endpoint = publisher
    src = open_source(f"zmq:{endpoint},timeout=0.2")
    assert src.read(0.05) is None
    with pytest.raises(SourceLost, match="no frames from tcp://127.0.0.1"):
        src.read(0.25)
    src.close()
    src.open()
    connected(sock, src)
    src.close()


# -- sim (the real simulator: a small screen renders in milliseconds) ------------------------------
def test_sim_source_lossless_and_frames_limit():
    with open_source("sim:width=160,height=120,realtime=0,frames=3") as src:
        assert not src.live
        frames = [src.read(1.0) for _ in range(3)]
        with pytest.raises(SourceEnded):
            src.read(0.1)
    assert [f.seq for f in frames] == [0, 1, 2] and frames[0].image.shape == (120, 160, 3)
    assert not np.array_equal(frames[0].image, frames[1].image)  # a sweep, not a still


def test_sim_source_paced_at_fps(monkeypatch):
    from streamer.sources import base

    clock = FakeClock()
    monkeypatch.setattr(base, "time", clock)
    with open_source("sim:width=160,height=120,fps=50") as src:
        assert src.live
        got = [src.read(1.0) for _ in range(6)]
        assert clock.now_ns == 5 * 20_000_000  # the first at once, then one every 20 ms
        assert src.read(0.001) is None  # the next is 20 ms away: a 1 ms read waits 1 ms, no frame
        assert clock.now_ns == 5 * 20_000_000 + 1_000_000
        clock.now_ns += 200_000_000  # a reader 200 ms late gets one frame at once, not a burst
        late = [src.read(0.0) for _ in range(2)]
    assert all(f is not None for f in got)
    assert late[0] is not None and late[1] is None


def test_real_simulator():
    with open_source("sim:width=320,height=240,realtime=0,seed=1") as src:
        frame = src.read(5.0)
    assert frame.image.shape == (240, 320, 3) and frame.image.dtype == np.uint8


def test_sim_replay_loops_frames_rendered_once():
    with open_source("sim:width=320,height=240,realtime=0,seed=1,replay=3") as src:
        frames = [src.read(5.0) for _ in range(7)]
    assert [f.seq for f in frames] == list(range(7))  # sequence numbers keep counting
    assert frames[0].image is frames[3].image is frames[6].image
    assert not np.array_equal(frames[0].image, frames[1].image)
    with pytest.raises(ValueError, match="replay"):
        open_source("sim:replay=-1")
