import json
import re

import cv2
import numpy as np
import pytest

from streamer import protocol as p
from streamer.frames import ClassResult, FrameResult, InvalidFrame, Timing


def image(h=24, w=32, c=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (h, w, c) if c else (h, w), dtype=np.uint8)


def with_header(parts, **changes):
    header = json.loads(parts[1])
    for key, value in changes.items():
        if value is ...:
            header.pop(key)
        else:
            header[key] = value
    return [parts[0], json.dumps(header).encode(), parts[2]]


@pytest.mark.parametrize("fmt", ["bgr", "gray"])
def test_raw_round_trip_is_exact(fmt):
    img = image(c=3 if fmt == "bgr" else 0)
    frame = p.decode_frame(p.encode_frame(img, seq=7, t_ns=123, fmt=fmt))
    assert frame.seq == 7 and frame.t_source_ns == 123
    np.testing.assert_array_equal(frame.image, img)


def test_rgb_is_converted_to_bgr_and_gray_with_channel_axis_is_squeezed():
    img = image()
    frame = p.decode_frame(p.encode_frame(img, 0, 0, fmt="rgb"))
    np.testing.assert_array_equal(frame.image, img[:, :, ::-1])
    grey = image(c=1)
    assert p.decode_frame(p.encode_frame(grey, 0, 0, fmt="gray")).image.shape == (24, 32)


def test_encoded_formats():
    img = np.full((24, 32, 3), 100, np.uint8)
    png = p.decode_frame(p.encode_frame(img, 1, 2, fmt="png"))
    np.testing.assert_array_equal(png.image, img)
    jpg = p.decode_frame(p.encode_frame(img, 1, 2, fmt="jpeg"))
    assert jpg.image.shape == img.shape and np.abs(jpg.image.astype(int) - 100).max() <= 2
    gray = p.decode_frame(p.encode_frame(img[:, :, 0], 1, 2, fmt="png"))
    assert gray.image.shape == (24, 32)


def test_header_layout_and_topic():
    parts = p.encode_frame(image(), 5, 99, topic=b"frames.us")
    assert parts[0] == b"frames.us"
    assert json.loads(parts[1]) == {"v": 1, "seq": 5, "t_ns": 99, "shape": [24, 32, 3],
                                    "dtype": "uint8", "fmt": "bgr"}


GOOD = p.encode_frame(image(), 1, 2)
PNG = p.encode_frame(image(), 1, 2, fmt="png")
BAD = {
    "part count": (GOOD[:2], "expected 3 message parts"),
    "too many parts": (GOOD + [b""], "expected 3 message parts"),
    "bad utf-8": ([GOOD[0], b"\xff\xfe", GOOD[2]], "not UTF-8"),
    "bad json": ([GOOD[0], b"{seq:", GOOD[2]], "not valid JSON"),
    "not an object": ([GOOD[0], b"[1]", GOOD[2]], "must be a JSON object"),
    "version": (with_header(GOOD, v=2), "unsupported protocol version 2"),
    "no version": (with_header(GOOD, v=...), "unsupported protocol version None"),
    "missing field": (with_header(GOOD, t_ns=...), "lacks field(s): t_ns"),
    "seq type": (with_header(GOOD, seq="1"), "must be integers"),
    "dtype": (with_header(GOOD, dtype="float32"), "unknown dtype 'float32'"),
    "fmt": (with_header(GOOD, fmt="yuv"), "unknown fmt 'yuv'"),
    "shape type": (with_header(GOOD, shape=[24]), "shape must be"),
    "shape negative": (with_header(GOOD, shape=[-24, 32, 3]), "shape must be"),
    "size": (with_header(GOOD, shape=[24, 31, 3]), "pixel buffer has 2304 bytes"),
    "short buffer": ([GOOD[0], GOOD[1], GOOD[2][:-1]], "pixel buffer has 2303 bytes"),
    "channels": (with_header(GOOD, shape=[24, 8, 4]), "channel count must be 1 or 3, got 4"),
    "fmt vs channels": (with_header(GOOD, fmt="gray"), "does not match shape"),
    "not a png": ([PNG[0], with_header(PNG)[1], b"not a png"], "not a png image"),
    "undecodable": ([PNG[0], PNG[1], PNG[2][:40]], "not a decodable png"),
    "decoded shape": (with_header(PNG, shape=[10, 10, 3]), "header says [10, 10, 3]"),
    "decoded channels": (with_header(PNG, shape=[24, 32]), "header says [24, 32]"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_malformed_frames_raise_invalid_frame_with_reason(case):
    parts, reason = BAD[case]
    with pytest.raises(InvalidFrame, match=re.escape(reason)):
        p.decode_frame(parts)


def test_png_with_alpha_is_refused():
    ok, buf = cv2.imencode(".png", np.zeros((4, 4, 4), np.uint8))
    parts = [b"frames", json.dumps({"v": 1, "seq": 0, "t_ns": 0, "shape": [4, 4, 3],
                                    "dtype": "uint8", "fmt": "png"}).encode(), buf.tobytes()]
    with pytest.raises(InvalidFrame, match="4 channels"):
        p.decode_frame(parts)


def result(maps=True):
    classes = (ClassResult("head", 0.91234567, True, (10, 20), (1, 2, 30, 40)),
               ClassResult("spine", 0.1, False, None, None))
    timing = Timing(capture=1_000_000, preprocess_end=2_000_000, inference_start=2_000_000,
                    inference_end=7_000_000, postprocess_end=7_500_000, publish=8_000_000)
    m = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4) if maps else None
    return FrameResult("us0", 42, 555, (1080, 1920), classes, timing, m)


def test_result_message():
    topic, body = p.encode_result(result())
    assert topic == b"det.us0"
    d = json.loads(body)
    assert d["v"] == 1 and d["seq"] == 42 and d["t_source_ns"] == 555
    assert d["frame_shape"] == [1080, 1920]
    assert d["classes"]["head"] == {"score": 0.91235, "present": True, "peak": [10, 20],
                                    "box": [1, 2, 30, 40]}
    assert d["classes"]["spine"]["peak"] is None and d["classes"]["spine"]["box"] is None
    assert d["latency_ms"]["capture_to_publish"] == 7.0 and d["latency_ms"]["inference"] == 5.0
    msg = p.decode_message([topic, body])
    assert isinstance(msg, p.DetectionMessage) and msg.present == ["head"]
    assert msg.classes["head"].box == (1, 2, 30, 40) and msg.frame_shape == (1080, 1920)


def test_map_and_status_messages():
    parts = p.encode_map(result())
    assert parts[0] == b"map.us0"
    assert json.loads(parts[1]) == {"v": 1, "stream": "us0", "seq": 42, "shape": [2, 3, 4],
                                    "dtype": "uint8", "classes": ["head", "spine"]}
    msg = p.decode_message(parts)
    assert isinstance(msg, p.MapMessage) and msg.classes == ("head", "spine")
    np.testing.assert_array_equal(msg.maps, result().maps)
    with pytest.raises(ValueError, match="needs result.maps"):
        p.encode_map(result(maps=False))
    status = p.decode_message(p.encode_status("us0", {"fps": 29.5, "source": "up"}))
    assert isinstance(status, p.StatusMessage) and status.status["fps"] == 29.5


def test_bad_stream_names_and_output_messages():
    with pytest.raises(ValueError, match="stream name"):
        p.topic("det", "a.b")
    with pytest.raises(ValueError, match="unknown topic"):
        p.decode_message([b"foo.x", b"{}"])
    with pytest.raises(ValueError, match="malformed result"):
        p.decode_message([b"det.x", b'{"v": 1}'])
    with pytest.raises(ValueError, match="version"):
        p.decode_message([b"status.x", b'{"v": 9}'])


def _documented_det() -> dict:
    """The `det` example of docs/protocol.md, its elided entries (``, ...``) left out."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()
    block = text.split("### `det.<stream>`", 1)[1].split("```", 2)[1]
    return json.loads(re.sub(r",\s*\.\.\.", "", block[block.index("{"):]))


def test_the_documented_det_message_is_what_the_streamer_sends():
    """Every field a real message has, and a peak and box for every region class, present or
    not (the docs once showed an absent class with nulls, which real messages never carry)."""
    from engines.classes import is_region

    doc = _documented_det()
    assert set(doc) == set(p.result_dict(result())) - {"mm_per_px"}  # mm_per_px: optional
    assert any(not c["present"] for c in doc["classes"].values())  # an absent class is shown
    for name, c in doc["classes"].items():
        assert set(c) == {"score", "present", "peak", "box"}
        if is_region(name):
            assert len(c["peak"]) == 2 and len(c["box"]) == 4, name
    assert set(doc["fan"]) == {"mode", "fit", "settled", "rect"}
    msg = p.decode_message([b"det.us0", json.dumps(doc).encode()])
    assert isinstance(msg, p.DetectionMessage) and msg.present == ["head"]
