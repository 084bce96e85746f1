"""The img.<stream> preview topic: off by default; when on, a decodable downscaled JPEG of the
frame with its seq and scale, and each class's map already warped onto the preview's grid."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from streamer.client import PreviewMessage, ResultSubscriber
from streamer.protocol import MessageError, decode_message
from streamer.sinks.zmq_sink import ZmqSink, preview_message
from tests.streamer.viewer_fixtures import PEAK, SHAPE, viewer_result


def wait_connected(sink, sub):
    """Publish status probes until the subscriber sees one (ZMQ's slow joiner); bounded."""
    for _ in range(100):
        sink.publish_status({"stream": "us0", "probe": True})
        if sub.recv(0.02) is not None:
            while sub.recv(0.02) is not None:
                pass
            return
    raise AssertionError("subscriber never connected")


def test_no_preview_unless_asked():
    with ZmqSink(endpoint="tcp://127.0.0.1:*", maps=True) as sink, \
         ResultSubscriber(sink.endpoint, topics=("det", "map", "img", "status")) as sub:
        wait_connected(sink, sub)
        for seq in range(3):
            sink.publish(viewer_result(seq))
        got = list(sub.messages(idle_timeout=0.3))
    assert sorted(type(m).__name__ for m in got) == ["DetectionMessage"] * 3 + ["MapMessage"] * 3


def test_preview_round_trip_is_a_downscaled_jpeg_with_maps_on_its_grid():
    with ZmqSink(endpoint="tcp://127.0.0.1:*", preview=True, preview_width=200) as sink, \
         ResultSubscriber(sink.endpoint, stream="us0", topics=("img", "status")) as sub:
        wait_connected(sink, sub)
        sink.publish(viewer_result(41))
        msg = sub.recv(2.0)
    assert isinstance(msg, PreviewMessage) and msg.seq == 41 and msg.stream == "us0"
    assert msg.frame_shape == SHAPE and msg.scale == 0.5  # 400 px wide source → 200
    assert msg.image.shape == (150, 200)
    assert cv2.imdecode(np.frombuffer(msg.jpeg, np.uint8), cv2.IMREAD_UNCHANGED).shape == (150, 200)
    assert abs(float(msg.image.mean()) - 90) < 3  # the fixture's grey frame, not noise
    assert msg.classes == ("head", "spine") and msg.maps.shape == (2, 38, 50)
    assert msg.thresholds == {}  # this sink was given none
    head = cv2.resize(msg.maps[0], (200, 150), interpolation=cv2.INTER_LINEAR)
    y, x = np.unravel_index(np.argmax(head), head.shape)
    assert abs(x - PEAK[0] / 2) <= 4 and abs(y - PEAK[1] / 2) <= 4  # placed on its peak
    assert head[:, :40].max() == 0 and msg.maps[1].max() == 0  # outside the crop; absent class


def test_previews_are_rate_limited_and_frames_without_an_image_have_none():
    with ZmqSink(endpoint="tcp://127.0.0.1:*", preview=True, preview_fps=2.0) as sink, \
         ResultSubscriber(sink.endpoint, topics=("img", "status")) as sub:
        wait_connected(sink, sub)
        for seq in range(5):  # within half a second: only the first gets a preview
            sink.publish(viewer_result(seq))
        blind = viewer_result(9)
        blind.image = None
        sink.publish(blind)
        got = [m for m in sub.messages(idle_timeout=0.3) if isinstance(m, PreviewMessage)]
    assert [m.seq for m in got] == [0]


def test_a_preview_that_lies_about_its_size_does_not_decode():
    parts = preview_message(viewer_result(1), 200, 70)
    parts[1] = parts[1].replace(b'"shape":[150,200]', b'"shape":[150,201]')
    with pytest.raises(MessageError, match="preview image"):
        decode_message(parts)
    parts = preview_message(viewer_result(1), 200, 70)
    with pytest.raises(MessageError, match="maps shape"):
        decode_message(parts[:3] + [parts[3][:-1]])


def test_preview_is_asked_for_by_flag_config_or_spec(tmp_path):
    from streamer.cli import build_parser
    from streamer.cli.run_cmd import _sink_requests, config_from_args
    from streamer.sinks import create_sink

    def zmq_options(argv):
        config = config_from_args(build_parser().parse_args(["run", *argv]))
        return dict(_sink_requests(config))["zmq"]

    assert zmq_options([])["preview"] is False
    assert zmq_options(["--preview"])["preview"] is True
    toml = tmp_path / "c.toml"
    toml.write_text("[publish]\npreview = true\n")
    assert zmq_options(["--config", str(toml)])["preview"] is True
    assert create_sink("zmq:tcp://127.0.0.1:*,preview=1").options.preview is True
    assert create_sink("zmq").options.preview is False
