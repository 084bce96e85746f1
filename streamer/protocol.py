"""ZMQ wire format, version 1: frames in, results/maps/status out (see docs/protocol.md).

Every message is multipart with the topic as its own first part, so SUB sockets filter by prefix.
Encoders return ``list[bytes]`` for ``send_multipart``; decoders take what ``recv_multipart``
returns (bytes or zmq.Frame) and are total: whatever arrives, the only exception they raise is
``InvalidFrame`` (frames) or ``MessageError`` (results, maps, status; a ``ValueError``).
"""

from __future__ import annotations

import functools
import json
import math
import re
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from engines.encoded import MAX_PIXELS, jpeg_size, png_size  # the largest frame by default: DCI 4K
from streamer.errors import UserError
from streamer.frames import ClassResult, Frame, FrameResult, InvalidFrame

VERSION = 1
DEFAULT_ENDPOINT = "tcp://127.0.0.1:5556"  # where a streamer publishes results unless told
FRAME_TOPIC = b"frames"
RAW_FORMATS = ("gray", "bgr", "rgb")
ENCODED_FORMATS = ("jpeg", "png")
FORMATS = RAW_FORMATS + ENCODED_FORMATS
DTYPES = ("uint8",)
FRAME_FIELDS = ("v", "seq", "t_ns", "shape", "dtype", "fmt")
_STREAM_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class MessageError(ValueError):
    """An output message (det/map/status) that does not decode."""


_ENCODE_EXT = {"jpeg": ".jpg", "png": ".png"}
MAX_JSON_BYTES = 1 << 20  # headers and results are small; a larger JSON part is refused


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


def decode_frame(parts, topic: bytes | None = FRAME_TOPIC, max_pixels: int = MAX_PIXELS) -> Frame:
    """A Frame with a grey [h,w] or BGR [h,w,3] image (read-only when raw: no copy is made).

    Total: whatever the message holds, the only exception is InvalidFrame with the reason. The
    topic must equal ``topic`` exactly (None: any); frames over ``max_pixels`` are refused, and
    jpeg/png sizes are read from the image's own header before anything is decoded."""
    try:
        return _decode_frame(parts, topic, max_pixels)
    except InvalidFrame:
        raise
    except Exception as exc:  # anything else a hostile message provokes is still one bad frame
        raise InvalidFrame(f"frame does not decode: {type(exc).__name__}: {_short(exc)}") from None


def _short(exc: BaseException, limit: int = 200) -> str:
    text = str(exc)
    return text if len(text) <= limit else text[:limit] + "..."


def max_frame_bytes(max_pixels: int = MAX_PIXELS) -> int:
    """The largest message part a frame of at most ``max_pixels`` pixels needs (raw BGR, or an
    encoded image that compressed badly), for ZMQ_MAXMSGSIZE."""
    raw = 3 * max_pixels
    return raw + raw // 64 + 65536


def _decode_frame(parts, topic: bytes | None, max_pixels: int) -> Frame:
    if len(parts) != 3:
        raise InvalidFrame(f"expected 3 message parts [topic, header, pixels], got {len(parts)}")
    if topic is not None and bytes(parts[0]) != topic:
        raise InvalidFrame(f"topic {_short(bytes(parts[0]), 80)} is not {topic!r}")
    header = _frame_header(parts[1], max_pixels)
    shape, fmt = header["shape"], header["fmt"]
    if fmt in ENCODED_FORMATS:
        image = _decode_image(parts[2], fmt, shape, max_pixels)
    else:
        image = _raw_image(parts[2], fmt, shape)
    return Frame(seq=header["seq"], image=image, t_source_ns=header["t_ns"])


def _json(part, what: str, error=ValueError) -> dict:
    data = bytes(part)
    if len(data) > MAX_JSON_BYTES:
        raise error(f"{what} is {len(data)} bytes, more than {MAX_JSON_BYTES}")
    try:
        obj = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise error(f"{what} is not UTF-8: {exc}") from None
    except json.JSONDecodeError as exc:
        raise error(f"{what} is not valid JSON: {exc}") from None
    except RecursionError:
        raise error(f"{what} is nested too deeply") from None
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        raise error(f"{what} is not usable JSON: {_short(exc)}") from None
    if not isinstance(obj, dict):
        raise error(f"{what} must be a JSON object, got {type(obj).__name__}")
    if obj.get("v") != VERSION:
        raise error(f"unsupported protocol version {_short(repr(obj.get('v')), 40)} "
                    f"(this side speaks v{VERSION})")
    return obj


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _frame_header(part, max_pixels: int) -> dict:
    h = _json(part, "frame header", InvalidFrame)
    missing = [f for f in FRAME_FIELDS if f not in h]
    if missing:
        raise InvalidFrame(f"frame header lacks field(s): {', '.join(missing)}")
    if not _is_int(h["seq"]) or not _is_int(h["t_ns"]):
        raise InvalidFrame(f"seq and t_ns must be integers, got {_short(repr(h['seq']), 40)}, "
                           f"{_short(repr(h['t_ns']), 40)}")
    if h["dtype"] not in DTYPES:
        raise InvalidFrame(f"unknown dtype {_short(repr(h['dtype']), 40)} (supported: {', '.join(DTYPES)})")
    if h["fmt"] not in FORMATS:
        raise InvalidFrame(f"unknown fmt {_short(repr(h['fmt']), 40)} (supported: {', '.join(FORMATS)})")
    shape = h["shape"]
    if (not isinstance(shape, list) or len(shape) not in (2, 3)
            or not all(_is_int(n) and n > 0 for n in shape)):
        raise InvalidFrame(f"shape must be [h,w] or [h,w,c] of positive integers, "
                           f"got {_short(repr(shape), 80)}")
    channels = shape[2] if len(shape) == 3 else 1
    if channels not in (1, 3):
        raise InvalidFrame(f"channel count must be 1 or 3, got {channels}")
    _check_size(shape[0], shape[1], max_pixels, "shape")
    return h


def _check_size(height: int, width: int, max_pixels: int, what: str) -> None:
    if height * width > max_pixels:  # Python ints: no overflow whatever the header says
        raise InvalidFrame(f"{what} {height}x{width} is more than max_pixels={max_pixels}")


def _raw_image(part, fmt: str, shape: list[int]) -> np.ndarray:
    channels = shape[2] if len(shape) == 3 else 1
    if (fmt == "gray") != (channels == 1):
        raise InvalidFrame(f"fmt {fmt!r} does not match shape {shape} ({channels} channel(s))")
    buf = np.frombuffer(part, dtype=np.uint8)
    need = math.prod(shape)
    if buf.size != need:
        raise InvalidFrame(f"pixel buffer has {buf.size} bytes, shape {shape} needs {need}")
    image = buf.reshape(shape[:2] if channels == 1 else shape)
    return cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if fmt == "rgb" else image


def _decode_image(part, fmt: str, shape: list[int], max_pixels: int) -> np.ndarray:
    data = memoryview(part).cast("B")
    height, width = encoded_size(data, fmt)  # before decoding: a small file may declare a huge image
    if [height, width] != list(shape[:2]):
        raise InvalidFrame(f"{fmt} image is {height}x{width}, header says {shape}")
    _check_size(height, width, max_pixels, f"{fmt} image")
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise InvalidFrame(f"pixels are not a decodable {fmt} image ({len(data)} bytes)")
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


def encoded_size(data, fmt: str) -> tuple[int, int]:
    """(height, width) from a PNG's IHDR or a JPEG's SOF segment, without decoding pixels."""
    try:
        return png_size(data) if fmt == "png" else jpeg_size(data)
    except ValueError as exc:
        text = str(exc)
        raise InvalidFrame(f"pixels are {text}" if text.startswith("not ") else text) from None


# -- results out --------------------------------------------------------------------------------
def check_stream_name(stream: str) -> str:
    """Stream names go into topics, so they are kept to letters, digits, '_' and '-'."""
    if not isinstance(stream, str) or not _STREAM_NAME.match(stream):
        raise UserError(f"stream name must be 1-64 of [A-Za-z0-9_-], got {stream!r}")
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
        **({} if result.mm_per_px is None else {"mm_per_px": [float(v) for v in result.mm_per_px]}),
        # out-of-distribution score (engines.ood): null when the model carries no statistics
        "ood": None if result.ood is None else round(float(result.ood), 4),
        "familiar": result.familiar,
        # how the crop was found: a wrong or unsettled fan is said, never silent
        "fan": None if result.fan is None else {
            **result.fan.to_dict(),  # and the source rectangle (the view) the result describes
            "rect": None if result.crop is None else _ints((result.crop.x, result.crop.y,
                                                            result.crop.w, result.crop.h))},
        "frozen": bool(result.frozen),  # the screen shows the same image (Freeze): not live
        "doppler": bool(result.doppler),  # colour Doppler inside the fan
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


def encode_preview(stream: str, seq: int, frame_shape, scale: float, jpeg: bytes,
                   jpeg_shape, classes=(), maps: np.ndarray | None = None,
                   thresholds: dict[str, float] | None = None) -> list[bytes]:
    """``[img.<stream>, header, JPEG, uint8 C×h×w]``: a downscaled frame and, when the result
    has maps, each class's map already warped onto the preview's grid (the last part is empty
    when there are none)."""
    if maps is not None and (maps.dtype != np.uint8 or maps.ndim != 3):
        raise ValueError("preview maps must be uint8 [C, h, w]")
    header = {"v": VERSION, "stream": stream, "seq": int(seq),
              "frame_shape": [int(n) for n in frame_shape[:2]], "scale": float(scale),
              "fmt": "jpeg", "shape": [int(n) for n in jpeg_shape],
              "maps_shape": None if maps is None else list(maps.shape), "classes": list(classes),
              **({} if thresholds is None else {"thresholds": thresholds})}
    body = b"" if maps is None else np.ascontiguousarray(maps).tobytes()
    return [topic("img", stream), _dumps(header), bytes(jpeg), body]


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
    def mm_per_px(self) -> tuple[float, float] | None:
        """(x, y) millimetres per source pixel, when the source is calibrated (DICOM regions)."""
        v = self.raw.get("mm_per_px")
        return None if v is None else (float(v[0]), float(v[1]))

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
class PreviewMessage:
    stream: str
    seq: int
    frame_shape: tuple[int, int]  # the source frame (height, width)
    scale: float  # preview pixels per source pixel
    jpeg: bytes  # the downscaled frame, as sent
    image: np.ndarray  # that JPEG decoded: uint8 grey [h, w] or BGR [h, w, 3]
    classes: tuple[str, ...]
    maps: np.ndarray | None  # uint8 [C, h', w'] on the preview's grid (h'/h = w'/w), or None
    thresholds: dict[str, float]  # each class's decision threshold, when the streamer sent them


@dataclass(frozen=True)
class StatusMessage:
    stream: str
    status: dict[str, Any]


def _total(kind: str):
    """Decorator: any exception a decoder meets on a hostile message becomes MessageError."""
    def wrap(decoder):
        @functools.wraps(decoder)
        def decode(parts):
            try:
                return decoder(parts)
            except MessageError:
                raise
            except Exception as exc:
                raise MessageError(f"malformed {kind} message: {type(exc).__name__}: "
                                   f"{_short(exc)}") from None
        return decode
    return wrap


def _stream_of(parts, kind: str, count: int) -> str:
    if len(parts) != count:
        raise MessageError(f"{kind} message must have {count} parts, got {len(parts)}")
    t = bytes(parts[0]).decode("utf-8", "replace")
    if not t.startswith(kind + "."):
        raise MessageError(f"topic {_short(t, 80)!r} is not a {kind} topic")
    return t[len(kind) + 1:]


@_total("result")
def decode_result(parts) -> DetectionMessage:
    stream = _stream_of(parts, "det", 2)
    d = _json(parts[1], "result", MessageError)
    classes = {str(name): ClassResult(str(name), float(c["score"]), bool(c["present"]),
                                      _tuple(c.get("peak")), _tuple(c.get("box")))
               for name, c in d["classes"].items()}
    shape = tuple(int(n) for n in d["frame_shape"])
    latency = {str(k): float(v) for k, v in dict(d.get("latency_ms", {})).items()}
    t_source = d.get("t_source_ns")
    if t_source is not None and not _is_int(t_source):
        raise MessageError(f"t_source_ns must be an integer or null, got {_short(repr(t_source), 40)}")
    return DetectionMessage(stream, int(d["seq"]), t_source, shape, classes, latency, d)


def _tuple(xs):
    return None if xs is None else tuple(int(x) for x in xs)


@_total("map")
def decode_map(parts) -> MapMessage:
    stream = _stream_of(parts, "map", 3)
    h = _json(parts[1], "map header", MessageError)
    shape = [int(n) for n in h["shape"]]
    if len(shape) != 3 or min(shape) < 0 or math.prod(shape) != len(parts[2]):
        raise MessageError(f"map shape {shape} does not match its {len(parts[2])}-byte buffer")
    maps = np.frombuffer(parts[2], dtype=np.uint8).reshape(shape)
    return MapMessage(stream, int(h["seq"]), tuple(str(c) for c in h["classes"]), maps)


MAX_PREVIEW_PIXELS = 4096 * 4096  # far above the 480-px-wide preview a streamer sends


@_total("img")
def decode_preview(parts) -> PreviewMessage:
    stream = _stream_of(parts, "img", 4)
    h = _json(parts[1], "preview header", MessageError)
    if h.get("fmt") != "jpeg":
        raise MessageError(f"preview fmt must be jpeg, got {_short(repr(h.get('fmt')), 40)}")
    shape = [int(n) for n in h["shape"]]
    try:
        image = _decode_image(parts[2], "jpeg", shape, MAX_PREVIEW_PIXELS)
    except InvalidFrame as exc:
        raise MessageError(f"preview image: {exc}") from None
    classes = tuple(str(c) for c in h["classes"])
    maps = None
    if h.get("maps_shape") is not None:
        ms = [int(n) for n in h["maps_shape"]]
        if len(ms) != 3 or min(ms) < 1 or math.prod(ms) != len(parts[3]) or ms[0] != len(classes):
            raise MessageError(f"preview maps shape {ms} does not match its {len(parts[3])}-byte "
                               f"buffer and {len(classes)} classes")
        maps = np.frombuffer(parts[3], dtype=np.uint8).reshape(ms)
    frame_shape = tuple(int(n) for n in h["frame_shape"])
    scale = float(h["scale"])
    if len(frame_shape) != 2 or min(frame_shape) < 1 or not 0 < scale <= 1:
        raise MessageError(f"preview frame_shape {_short(repr(h['frame_shape']), 40)} must be "
                           f"[h, w] and scale {scale} in (0, 1]")
    thresholds = {str(k): float(v) for k, v in dict(h.get("thresholds") or {}).items()}
    return PreviewMessage(stream, int(h["seq"]), frame_shape, scale, bytes(parts[2]),
                          image, classes, maps, thresholds)


@_total("status")
def decode_status(parts) -> StatusMessage:
    stream = _stream_of(parts, "status", 2)
    return StatusMessage(stream, _json(parts[1], "status", MessageError))


DECODERS = {b"det": decode_result, b"map": decode_map, b"img": decode_preview,
            b"status": decode_status}


def decode_message(parts) -> DetectionMessage | MapMessage | PreviewMessage | StatusMessage:
    """Any output message, by its topic's kind (``det``, ``map``, ``img``, ``status``); total: anything
    that does not decode raises MessageError."""
    if not isinstance(parts, list | tuple) or not parts:
        raise MessageError("empty message")
    kind = bytes(parts[0]).split(b".", 1)[0]
    if kind not in DECODERS:
        raise MessageError(f"unknown topic {_short(bytes(parts[0]), 80)}")
    return DECODERS[kind](parts)
