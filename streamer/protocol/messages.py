"""Decoders for subscribers: whatever arrives, the only exception they raise is MessageError."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from streamer.frames import ClassResult, InvalidFrame
from streamer.protocol.common import MessageError, _is_int, _json, _short
from streamer.protocol.frames import _decode_image


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
