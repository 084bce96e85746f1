"""ZMQ wire format, version 1: frames in, results/maps/status out (see docs/protocol.md).

Every message is multipart with the topic as its own first part, so SUB sockets filter by prefix.
Encoders return ``list[bytes]`` for ``send_multipart``; decoders take what ``recv_multipart``
returns (bytes or zmq.Frame) and raise ``InvalidFrame`` (frames) or ``ValueError`` (results).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from streamer.frames import ClassResult, Frame, FrameResult, InvalidFrame

VERSION = 1
FRAME_TOPIC = b"frames"
RAW_FORMATS = ("gray", "bgr", "rgb")
ENCODED_FORMATS = ("jpeg", "png")
FORMATS = RAW_FORMATS + ENCODED_FORMATS
DTYPES = ("uint8",)
FRAME_FIELDS = ("v", "seq", "t_ns", "shape", "dtype", "fmt")
_STREAM_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_ENCODE_EXT = {"jpeg": ".jpg", "png": ".png"}


# -- frames in ----------------------------------------------------------------------------------
def encode_frame(image: np.ndarray, seq: int, t_ns: int, fmt: str = "bgr",
                 topic: bytes = FRAME_TOPIC, quality: int = 90) -> list[bytes]:
    """``[topic, header, pixels]``; ``image`` is uint8 [h,w] or [h,w,c] in the layout ``fmt`` names
    (for jpeg/png: a grey or BGR image, compressed here)."""
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {', '.join(FORMATS)}, got {fmt!r}")
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ValueError(f"image must be uint8 [h,w] or [h,w,c], got {image.dtype} {image.shape}")
    if fmt in ENCODED_FORMATS:
        params = [cv2.IMWRITE_JPEG_QUALITY, quality] if fmt == "jpeg" else []
        ok, buf = cv2.imencode(_ENCODE_EXT[fmt], image, params)
        if not ok:
            raise ValueError(f"could not encode the image as {fmt}")
        pixels = buf.tobytes()
    else:
        pixels = np.ascontiguousarray(image).tobytes()
    header = {"v": VERSION, "seq": int(seq), "t_ns": int(t_ns), "shape": list(image.shape),
              "dtype": "uint8", "fmt": fmt}
    return [bytes(topic), json.dumps(header, separators=(",", ":")).encode(), pixels]


def decode_frame(parts) -> Frame:
    """A Frame with a grey [h,w] or BGR [h,w,3] image (read-only when raw: no copy is made)."""
    if len(parts) != 3:
        raise InvalidFrame(f"expected 3 message parts [topic, header, pixels], got {len(parts)}")
    header = _frame_header(parts[1])
    shape, fmt = header["shape"], header["fmt"]
    if fmt in ENCODED_FORMATS:
        image = _decode_image(parts[2], fmt, shape)
    else:
        image = _raw_image(parts[2], fmt, shape)
    return Frame(seq=header["seq"], image=image, t_source_ns=header["t_ns"])


def _json(part, what: str, error=ValueError) -> dict:
    try:
        obj = json.loads(bytes(part).decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise error(f"{what} is not UTF-8: {exc}") from None
    except json.JSONDecodeError as exc:
        raise error(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise error(f"{what} must be a JSON object, got {type(obj).__name__}")
    if obj.get("v") != VERSION:
        raise error(f"unsupported protocol version {obj.get('v')!r} (this side speaks v{VERSION})")
    return obj


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _frame_header(part) -> dict:
    h = _json(part, "frame header", InvalidFrame)
    missing = [f for f in FRAME_FIELDS if f not in h]
    if missing:
        raise InvalidFrame(f"frame header lacks field(s): {', '.join(missing)}")
    if not _is_int(h["seq"]) or not _is_int(h["t_ns"]):
        raise InvalidFrame(f"seq and t_ns must be integers, got {h['seq']!r}, {h['t_ns']!r}")
    if h["dtype"] not in DTYPES:
        raise InvalidFrame(f"unknown dtype {h['dtype']!r} (supported: {', '.join(DTYPES)})")
    if h["fmt"] not in FORMATS:
        raise InvalidFrame(f"unknown fmt {h['fmt']!r} (supported: {', '.join(FORMATS)})")
    shape = h["shape"]
    if (not isinstance(shape, list) or len(shape) not in (2, 3)
            or not all(_is_int(n) and n > 0 for n in shape)):
        raise InvalidFrame(f"shape must be [h,w] or [h,w,c] of positive integers, got {shape!r}")
    channels = shape[2] if len(shape) == 3 else 1
    if channels not in (1, 3):
        raise InvalidFrame(f"channel count must be 1 or 3, got {channels}")
    return h


def _raw_image(part, fmt: str, shape: list[int]) -> np.ndarray:
    channels = shape[2] if len(shape) == 3 else 1
    if (fmt == "gray") != (channels == 1):
        raise InvalidFrame(f"fmt {fmt!r} does not match shape {shape} ({channels} channel(s))")
    buf = np.frombuffer(part, dtype=np.uint8)
    if buf.size != int(np.prod(shape)):
        raise InvalidFrame(f"pixel buffer has {buf.size} bytes, shape {shape} needs {int(np.prod(shape))}")
    image = buf.reshape(shape[:2] if channels == 1 else shape)
    return cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if fmt == "rgb" else image


def _decode_image(part, fmt: str, shape: list[int]) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(part, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise InvalidFrame(f"pixels are not a decodable {fmt} image ({len(part)} bytes)")
    if image.dtype != np.uint8:
        raise InvalidFrame(f"decoded {fmt} image is {image.dtype}, expected uint8")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    channels = image.shape[2] if image.ndim == 3 else 1
    if channels not in (1, 3):
        raise InvalidFrame(f"decoded {fmt} image has {channels} channels, expected 1 or 3")
    want = list(shape[:2]) if (len(shape) == 2 or shape[2] == 1) else list(shape)
    if list(image.shape) != want:
        raise InvalidFrame(f"decoded {fmt} image has shape {list(image.shape)}, header says {shape}")
    return image


# -- results out --------------------------------------------------------------------------------
def check_stream_name(stream: str) -> str:
    """Stream names go into topics, so they are kept to letters, digits, '_' and '-'."""
    if not isinstance(stream, str) or not _STREAM_NAME.match(stream):
        raise ValueError(f"stream name must be 1-64 of [A-Za-z0-9_-], got {stream!r}")
    return stream


def topic(kind: str, stream: str) -> bytes:
    return f"{kind}.{check_stream_name(stream)}".encode()


def _dumps(obj: dict) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def result_dict(result: FrameResult) -> dict:
    """The JSON object of a ``det.<stream>`` message (also what a recording stores)."""
    return {
        "v": VERSION,
        "stream": result.stream,
        "seq": int(result.seq),
        "t_source_ns": result.t_source_ns,
        "t_capture_ns": int(result.timing.capture),
        "frame_shape": [int(n) for n in result.frame_shape[:2]],
        "classes": {c.name: {"score": round(float(c.score), 5), "present": bool(c.present),
                             "peak": _ints(c.peak), "box": _ints(c.box)} for c in result.classes},
        "latency_ms": result.timing.latency_ms(),
        # out-of-distribution score (engines.ood): null when the model carries no statistics
        "ood": None if result.ood is None else round(float(result.ood), 4),
        "familiar": result.familiar,
    }


def _ints(xs) -> list[int] | None:
    return None if xs is None else [int(x) for x in xs]


def encode_result(result: FrameResult) -> list[bytes]:
    return [topic("det", result.stream), _dumps(result_dict(result))]


def encode_map(result: FrameResult) -> list[bytes]:
    """``[map.<stream>, header, uint8 C×h×w]``; the result must carry maps."""
    maps = result.maps
    if maps is None or maps.dtype != np.uint8 or maps.ndim != 3:
        raise ValueError("encode_map needs result.maps as uint8 [C, h, w]")
    header = {"v": VERSION, "stream": result.stream, "seq": int(result.seq),
              "shape": list(maps.shape), "dtype": "uint8",
              "classes": [c.name for c in result.classes]}
    return [topic("map", result.stream), _dumps(header), np.ascontiguousarray(maps).tobytes()]


def encode_status(stream: str, status: dict) -> list[bytes]:
    return [topic("status", stream), _dumps({"v": VERSION, "stream": stream, **status})]


# -- decoders for subscribers -------------------------------------------------------------------
@dataclass(frozen=True)
class DetectionMessage:
    stream: str
    seq: int
    t_source_ns: int | None
    frame_shape: tuple[int, int]
    classes: dict[str, ClassResult]
    latency_ms: dict[str, float]
    raw: dict[str, Any]

    @property
    def present(self) -> list[str]:
        return [name for name, c in self.classes.items() if c.present]

    @property
    def ood(self) -> float | None:
        return self.raw.get("ood")

    @property
    def familiar(self) -> bool | None:
        return self.raw.get("familiar")


@dataclass(frozen=True)
class MapMessage:
    stream: str
    seq: int
    classes: tuple[str, ...]
    maps: np.ndarray  # uint8 [C, h, w]


@dataclass(frozen=True)
class StatusMessage:
    stream: str
    status: dict[str, Any]


def _stream_of(parts, kind: str, count: int) -> str:
    if len(parts) != count:
        raise ValueError(f"{kind} message must have {count} parts, got {len(parts)}")
    t = bytes(parts[0]).decode("utf-8", "replace")
    if not t.startswith(kind + "."):
        raise ValueError(f"topic {t!r} is not a {kind} topic")
    return t[len(kind) + 1:]


def decode_result(parts) -> DetectionMessage:
    stream = _stream_of(parts, "det", 2)
    d = _json(parts[1], "result")
    try:
        classes = {name: ClassResult(name, float(c["score"]), bool(c["present"]),
                                     _tuple(c.get("peak")), _tuple(c.get("box")))
                   for name, c in d["classes"].items()}
        return DetectionMessage(stream, int(d["seq"]), d.get("t_source_ns"),
                                tuple(d["frame_shape"]), classes, dict(d.get("latency_ms", {})), d)
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"malformed result message: {exc!r}") from None


def _tuple(xs):
    return None if xs is None else tuple(int(x) for x in xs)


def decode_map(parts) -> MapMessage:
    stream = _stream_of(parts, "map", 3)
    h = _json(parts[1], "map header")
    try:
        maps = np.frombuffer(parts[2], dtype=np.uint8).reshape(h["shape"])
        return MapMessage(stream, int(h["seq"]), tuple(h["classes"]), maps)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"malformed map message: {exc}") from None


def decode_status(parts) -> StatusMessage:
    stream = _stream_of(parts, "status", 2)
    return StatusMessage(stream, _json(parts[1], "status"))


DECODERS = {b"det": decode_result, b"map": decode_map, b"status": decode_status}


def decode_message(parts) -> DetectionMessage | MapMessage | StatusMessage:
    """Any output message, by its topic's kind (``det``, ``map``, ``status``)."""
    if not parts:
        raise ValueError("empty message")
    kind = bytes(parts[0]).split(b".", 1)[0]
    if kind not in DECODERS:
        raise ValueError(f"unknown topic {bytes(parts[0])!r}")
    return DECODERS[kind](parts)
