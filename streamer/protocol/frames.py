"""Frames in: the frame message (topic, JSON header, pixels raw or JPEG/PNG), checked before any
decoder sees the pixels; decoding raises only InvalidFrame."""

from __future__ import annotations

import math

import cv2
import numpy as np

from engines.encoded import MAX_PIXELS, jpeg_size, png_size  # the largest frame by default: DCI 4K
from streamer.frames import Frame, InvalidFrame
from streamer.protocol.common import VERSION, _dumps, _is_int, _json, _short

FRAME_TOPIC = b"frames"
RAW_FORMATS = ("gray", "bgr", "rgb")
ENCODED_FORMATS = ("jpeg", "png")
FORMATS = RAW_FORMATS + ENCODED_FORMATS
DTYPES = ("uint8",)
FRAME_FIELDS = ("v", "seq", "t_ns", "shape", "dtype", "fmt")
_ENCODE_EXT = {"jpeg": ".jpg", "png": ".png"}


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
    return [bytes(topic), _dumps(header), pixels]


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
