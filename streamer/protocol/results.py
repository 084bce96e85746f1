"""Results out: the det, map, img (preview) and status messages a streamer publishes."""

from __future__ import annotations

import numpy as np

from streamer.frames import FrameResult
from streamer.protocol.common import VERSION, _dumps, topic


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
        "exam": result.exam,  # the exam it belongs to (streamer.coverage), null outside one
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
