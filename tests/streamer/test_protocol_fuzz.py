"""Hostile messages: every decoder is total (only the project's own error types escape), sizes
are checked before anything is allocated, and property tests probe the rest."""

import json
import struct
import zlib

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamer import protocol as p
from streamer.frames import InvalidFrame

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def header(**fields) -> bytes:
    h = {"v": 1, "seq": 0, "t_ns": 0, "shape": [480, 640, 3], "dtype": "uint8", "fmt": "bgr"}
    h.update(fields)
    return json.dumps(h).encode()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_declaring(width: int, height: int, idat: bytes = b"") -> bytes:
    """A PNG whose IHDR declares width x height (8-bit grey); the pixel data is ``idat``."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat)
            + png_chunk(b"IEND", b""))


# The messages that stopped the engine (finding 1): each must be one invalid frame, nothing more.
KILLERS = {
    "4301-digit integer": [b"frames", b'{"v":1,"seq":' + b"9" * 4301 + b',"t_ns":0}', b""],
    "shape overflows np.prod": [b"frames", header(shape=[2**32, 2**32], fmt="gray"), b""],
    "1000 nested [": [b"frames", b"[" * 1000 + b"]" * 1000, b""],
    "100000 nested [": [b"frames", b"[" * 100000, b""],
    "empty png": [b"frames", header(fmt="png"), b""],
    "empty jpeg": [b"frames", header(fmt="jpeg"), b""],
    "png signature only": [b"frames", header(fmt="png"), b"\x89PNG\r\n\x1a\n"],
    "jpeg SOI only": [b"frames", header(fmt="jpeg"), b"\xff\xd8"],
    "jpeg garbage after SOI": [b"frames", header(fmt="jpeg"), b"\xff\xd8\xff\xc0\x00\x11" + b"\xff" * 40],
    "huge seq float": [b"frames", header(seq=1e308), b""],
    "jpeg of fill bytes": [b"frames", header(fmt="jpeg"), b"\xff\xd8" + b"\xff" * 2_000_000],
}


@pytest.mark.parametrize("name", list(KILLERS))
def test_killer_messages_are_invalid_frames(name):
    with pytest.raises(InvalidFrame):
        p.decode_frame(KILLERS[name])


def test_png_bomb_is_refused_from_its_header_before_decoding(monkeypatch):
    """A small PNG that declares 18000x18000 while the header says 480x640 (finding 2)."""
    bomb = png_declaring(18000, 18000, zlib.compress(b"\0" * 100_000))
    decoded = []
    monkeypatch.setattr(cv2, "imdecode", lambda *a: decoded.append(a))  # nothing may decode
    with pytest.raises(InvalidFrame, match="png image is 18000x18000, header says"):
        p.decode_frame([b"frames", header(fmt="png", shape=[480, 640]), bomb])
    with pytest.raises(InvalidFrame, match="more than max_pixels"):  # header agrees: still too big
        p.decode_frame([b"frames", header(fmt="png", shape=[18000, 18000]), bomb])
    assert decoded == []


def test_jpeg_size_is_read_from_its_frame_header():
    img = np.zeros((48, 80, 3), np.uint8)
    parts = p.encode_frame(img, 0, 0, fmt="jpeg")
    assert p.encoded_size(parts[2], "jpeg") == (48, 80)
    assert p.encoded_size(p.encode_frame(img, 0, 0, fmt="png")[2], "png") == (48, 80)
    with pytest.raises(InvalidFrame, match="jpeg image is 48x80, header says"):
        p.decode_frame([parts[0], header(fmt="jpeg", shape=[480, 800, 3]), parts[2]])
    with pytest.raises(InvalidFrame, match="max_pixels"):
        p.decode_frame(parts, max_pixels=48 * 80 - 1)
    assert p.decode_frame(parts, max_pixels=48 * 80).image.shape == (48, 80, 3)


def test_raw_frames_over_max_pixels_are_refused_and_bound_the_message_size():
    parts = p.encode_frame(np.zeros((20, 30), np.uint8), 0, 0, fmt="gray")
    with pytest.raises(InvalidFrame, match="more than max_pixels=599"):
        p.decode_frame(parts, max_pixels=599)
    assert p.max_frame_bytes(600) >= 3 * 600  # raw BGR fits under ZMQ_MAXMSGSIZE


def test_topic_must_match_exactly():
    parts = p.encode_frame(np.zeros((4, 4), np.uint8), 0, 0, fmt="gray", topic=b"frames2")
    with pytest.raises(InvalidFrame, match="is not b'frames'"):
        p.decode_frame(parts)
    assert p.decode_frame(parts, topic=b"frames2").image.shape == (4, 4)


def test_deeply_nested_result_is_a_message_error():
    with pytest.raises(p.MessageError, match="nested too deeply"):
        p.decode_message([b"det.x", b"[" * 100000])
    with pytest.raises(p.MessageError):
        p.decode_message([b"map.x", b'{"v":1,"stream":"x","seq":0,"shape":[2,2,2],'
                                    b'"classes":[]}', b"\0" * 7])


# -- property tests: whatever arrives, only InvalidFrame / MessageError come out ----------------
json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True),
                      st.text(max_size=8))
json_value = st.recursive(json_leaf, lambda c: st.lists(c, max_size=4)
                          | st.dictionaries(st.text(max_size=6), c, max_size=4), max_leaves=12)
shapes = st.one_of(json_value, st.lists(st.integers(-5, 2**40), min_size=0, max_size=4))
headers = st.fixed_dictionaries(
    {}, optional={"v": st.one_of(st.just(1), json_value), "seq": st.one_of(st.integers(), json_value),
                  "t_ns": st.integers(), "shape": shapes,
                  "dtype": st.sampled_from(["uint8", "float32", ""]),
                  "fmt": st.sampled_from(["gray", "bgr", "rgb", "jpeg", "png", "x"])})
PNG_HEAD = png_declaring(8, 8)[:33]


@FUZZ
@given(h=headers, pixels=st.one_of(st.binary(max_size=300), st.just(PNG_HEAD),
                                   st.binary(max_size=64).map(lambda b: b"\xff\xd8" + b),
                                   st.binary(max_size=64).map(lambda b: PNG_HEAD + b)),
       topic=st.sampled_from([b"frames", b"frames2", b""]))
def test_decode_frame_is_total_on_structured_headers(h, pixels, topic):
    try:
        frame = p.decode_frame([topic, json.dumps(h).encode(), pixels], max_pixels=4096)
    except InvalidFrame:
        return
    assert frame.image.dtype == np.uint8 and frame.image.ndim in (2, 3)


@FUZZ
@given(parts=st.lists(st.binary(max_size=200), max_size=4))
def test_decode_frame_is_total_on_arbitrary_bytes(parts):
    try:
        p.decode_frame(parts)
    except InvalidFrame:
        pass


result_bodies = st.one_of(
    st.binary(max_size=200),
    json_value.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({"v": st.just(1)}, optional={
        "seq": json_value, "frame_shape": json_value, "t_source_ns": json_value,
        "latency_ms": json_value, "classes": st.one_of(json_value, st.dictionaries(
            st.text(max_size=4), st.dictionaries(st.sampled_from(["score", "present", "peak", "box"]),
                                                 json_value), max_size=3)),
        "shape": st.one_of(json_value, st.lists(st.integers(-3, 10), max_size=3))},
    ).map(lambda d: json.dumps(d).encode()))


@FUZZ
@given(kind=st.sampled_from([b"det.s", b"map.s", b"img.s", b"status.s", b"det", b"x.s"]),
       body=result_bodies, extra=st.lists(st.binary(max_size=40), max_size=2))
def test_output_decoders_are_total(kind, body, extra):
    try:
        msg = p.decode_message([kind, body, *extra])
    except p.MessageError:
        return
    assert isinstance(msg, p.DetectionMessage | p.MapMessage | p.PreviewMessage | p.StatusMessage)


_SMALL_JPEG = bytes(cv2.imencode(".jpg", np.full((6, 8), 90, np.uint8))[1])
preview_headers = st.fixed_dictionaries({"v": st.just(1)}, optional={
    "seq": json_value, "frame_shape": json_value, "scale": json_value,
    "fmt": st.sampled_from(["jpeg", "png", 3]), "classes": st.one_of(json_value, st.lists(
        st.text(max_size=3), max_size=3)),
    "shape": st.one_of(json_value, st.just([6, 8]), st.lists(st.integers(-3, 10), max_size=3)),
    "maps_shape": st.one_of(json_value, st.lists(st.integers(-3, 4), max_size=4))},
).map(lambda d: json.dumps(d).encode())


@FUZZ
@given(header=preview_headers,
       image=st.one_of(st.just(_SMALL_JPEG), st.binary(max_size=64).map(lambda b: b"\xff\xd8" + b)),
       maps=st.binary(max_size=40))
def test_preview_decoder_is_total(header, image, maps):
    try:
        msg = p.decode_message([b"img.s", header, image, maps])
    except p.MessageError:
        return
    assert isinstance(msg, p.PreviewMessage) and msg.image.shape[:2] == (6, 8)
