"""Results, maps and status on a ZMQ PUB socket (wire format v1), loopback unless allowed;
remote use is CurveZMQ-encrypted and authenticated (streamer.security) or explicitly insecure.

A PUB socket never blocks: a subscriber that falls behind its high-water mark loses messages
silently, which is what a live display wants.
"""

from __future__ import annotations

import errno
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import zmq

from streamer.errors import UserError
from streamer.frames import FrameResult
from streamer.protocol import (
    DEFAULT_ENDPOINT,
    encode_map,
    encode_preview,
    encode_result,
    encode_status,
)
from streamer.security import ServerKeys, check_remote, is_local_endpoint, make_server
from streamer.sinks.base import Sink

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_ENDPOINT", "ZmqSink", "bind_publisher", "is_local_endpoint"]


def bind_publisher(endpoint: str, *, allow_remote: bool = False, hwm: int = 8,
                   keys: ServerKeys | None = None, insecure: bool = False) -> zmq.Socket:
    """A PUB socket bound to ``endpoint`` (``tcp://127.0.0.1:*`` picks a free port; read
    ``LAST_ENDPOINT``). A non-loopback address needs ``allow_remote`` and either CurveZMQ
    ``keys`` (subscribers must hold an allowed client key) or ``insecure``."""
    check_remote(endpoint, encrypted=keys is not None, insecure=insecure, what="publishing",
                 allow_remote=allow_remote)
    sock = zmq.Context.instance().socket(zmq.PUB)
    sock.setsockopt(zmq.SNDHWM, hwm)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        if keys is not None:
            make_server(sock, keys)
        sock.bind(endpoint)
    except zmq.ZMQError as exc:
        sock.close(linger=0)
        if exc.errno == errno.EADDRINUSE:
            raise UserError(f"address in use: {endpoint}") from None
        raise UserError(f"cannot bind {endpoint}: {exc}") from None
    except BaseException:
        sock.close(linger=0)
        raise
    return sock


@dataclass(frozen=True)
class ZmqSinkOptions:
    endpoint: str = DEFAULT_ENDPOINT
    maps: bool = False  # also publish class maps on map.<stream>
    allow_remote: bool = False  # bind to a non-loopback address
    hwm: int = 8  # send high-water mark per subscriber, in messages
    curve_secret: str = ""  # the publisher's secret key file (streamer keys): CurveZMQ on
    curve_clients: str = ""  # folder of client public keys allowed to subscribe
    insecure: bool = False  # allow a plaintext non-loopback bind (logs a warning)
    preview: bool = False  # also publish a downscaled JPEG (+ maps on its grid) on img.<stream>
    preview_width: int = 480  # the preview is at most this wide (never upscaled)
    preview_quality: int = 70  # its JPEG quality
    preview_fps: float = 15.0  # the most previews a second (the rest of the frames have none)

    def __post_init__(self):
        if self.hwm < 1:
            raise UserError(f"hwm must be ≥ 1, got {self.hwm}")
        if not (8 <= self.preview_width <= 4096 and 1 <= self.preview_quality <= 100
                and self.preview_fps > 0):
            raise UserError("preview_width must be in 8..4096, preview_quality in 1..100, "
                            "preview_fps > 0")
        if bool(self.curve_secret) != bool(self.curve_clients):
            raise UserError("CurveZMQ needs both curve_secret and curve_clients")

    def server_keys(self) -> ServerKeys | None:
        return ServerKeys(self.curve_secret, self.curve_clients) if self.curve_secret else None


class ZmqSink(Sink):
    """Thread-safe: the publish stage and a status timer may share it."""

    kind = "zmq"
    Options = ZmqSinkOptions

    def __init__(self, spec_options: dict | None = None, *,
                 threshold_for: Callable[[str], float] | None = None, **options):
        """``threshold_for``: a class's decision threshold, sent with previews for display."""
        super().__init__(spec_options, **options)
        self.threshold_for = threshold_for
        self._sock: zmq.Socket | None = None
        self._lock = threading.Lock()
        self._stream = "default"  # for status messages that do not name their stream
        self.endpoint = self.options.endpoint  # the bound address, once open
        self._next_preview = 0.0

    def _open(self) -> None:
        o = self.options
        self._sock = bind_publisher(o.endpoint, allow_remote=o.allow_remote, hwm=o.hwm,
                                    keys=o.server_keys(), insecure=o.insecure)
        self.endpoint = self._sock.getsockopt_string(zmq.LAST_ENDPOINT)

    def _send(self, parts: list[bytes]) -> None:
        with self._lock:
            # A PUB socket never blocks and never says it dropped: past a subscriber's HWM ZeroMQ
            # discards silently (docs/protocol.md), so there is nothing here to count.
            self._sock.send_multipart(parts, copy=False)

    def _publish(self, result: FrameResult) -> None:
        self._stream = result.stream
        self._send(encode_result(result))
        if self.options.maps and result.maps is not None:
            self._send(encode_map(result))
        if self.options.preview and result.image is not None:
            now = time.monotonic()
            if now >= self._next_preview:
                self._next_preview = now + 1.0 / self.options.preview_fps
                self._send(preview_message(result, self.options.preview_width,
                                           self.options.preview_quality, self.threshold_for))

    def _publish_status(self, status: dict) -> None:
        status = dict(status)
        self._send(encode_status(status.pop("stream", self._stream), status))

    def _close(self) -> None:
        with self._lock:
            self._sock.close(linger=0)
            self._sock = None

    def describe(self) -> dict:
        return {**super().describe(), "bound": self.endpoint}


MAP_GRID_STEP = 4  # preview maps are sent at a quarter of the preview's size (they are smooth)


def preview_message(result: FrameResult, max_width: int, quality: int,
                    threshold_for: Callable[[str], float] | None = None) -> list[bytes]:
    """The ``img.<stream>`` message of a result: its frame downscaled to at most ``max_width``
    and, when it has maps and a crop, each class's map warped (fan geometry included) onto the
    preview's grid at 1/MAP_GRID_STEP of its size, so a remote viewer needs no geometry."""
    from streamer.sinks.viewer_render import display_size, frame_jpeg, warp_tables

    w, h, scale = display_size(result.frame_shape, max_width)
    jpeg = frame_jpeg(result.image, (w, h), quality)
    maps = None
    if result.maps is not None and result.crop is not None:
        size = (max(1, -(-w // MAP_GRID_STEP)), max(1, -(-h // MAP_GRID_STEP)))
        map_scale = scale * size[0] / w
        map_x, map_y = warp_tables(result.crop, size, map_scale, result.maps.shape[1:])
        maps = np.stack([cv2.remap(m, map_x, map_y, cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_CONSTANT, borderValue=0)
                         for m in result.maps])
    shape = (h, w) if result.image.ndim == 2 else (h, w, result.image.shape[2])
    names = [c.name for c in result.classes]
    thresholds = None if threshold_for is None else {n: float(threshold_for(n)) for n in names}
    return encode_preview(result.stream, result.seq, result.frame_shape, scale, jpeg, shape,
                          names, maps, thresholds)
