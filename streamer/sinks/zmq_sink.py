"""Results, maps and status on a ZMQ PUB socket (wire format v1), loopback unless allowed.

A PUB socket never blocks: a subscriber that falls behind its high-water mark loses messages
silently, which is what a live display wants.
"""

from __future__ import annotations

import errno
import logging
import threading
from dataclasses import dataclass

import zmq

from streamer.frames import FrameResult
from streamer.protocol import encode_map, encode_result, encode_status
from streamer.sinks.base import Sink

log = logging.getLogger(__name__)
DEFAULT_ENDPOINT = "tcp://127.0.0.1:5556"
LOOPBACK_HOSTS = ("localhost", "::1", "[::1]", "lo")


def is_local_endpoint(endpoint: str) -> bool:
    """ipc/inproc, or tcp on a loopback address or interface."""
    scheme, _, rest = endpoint.partition("://")
    if scheme in ("ipc", "inproc"):
        return True
    host = rest.rpartition(":")[0]
    return scheme == "tcp" and (host in LOOPBACK_HOSTS or host.startswith("127."))


def bind_publisher(endpoint: str, *, allow_remote: bool = False, hwm: int = 8) -> zmq.Socket:
    """A PUB socket bound to ``endpoint`` (``tcp://127.0.0.1:*`` picks a free port; read
    ``LAST_ENDPOINT``). Refuses non-loopback addresses unless ``allow_remote``."""
    if not endpoint.startswith(("tcp://", "ipc://", "inproc://")):
        raise ValueError(f"endpoint must be tcp://, ipc:// or inproc://, got {endpoint!r}")
    if not allow_remote and not is_local_endpoint(endpoint):
        raise ValueError(f"refusing to bind {endpoint}: not a loopback address and frames are "
                         "patient data; allow it explicitly (allow_remote / --allow-remote)")
    sock = zmq.Context.instance().socket(zmq.PUB)
    sock.setsockopt(zmq.SNDHWM, hwm)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.bind(endpoint)
    except zmq.ZMQError as exc:
        sock.close(linger=0)
        if exc.errno == errno.EADDRINUSE:
            raise ValueError(f"address in use: {endpoint}") from None
        raise ValueError(f"cannot bind {endpoint}: {exc}") from None
    return sock


@dataclass(frozen=True)
class ZmqSinkOptions:
    endpoint: str = DEFAULT_ENDPOINT
    maps: bool = False  # also publish class maps on map.<stream>
    allow_remote: bool = False  # bind to a non-loopback address
    hwm: int = 8  # send high-water mark per subscriber, in messages

    def __post_init__(self):
        if self.hwm < 1:
            raise ValueError(f"hwm must be ≥ 1, got {self.hwm}")


class ZmqSink(Sink):
    """Thread-safe: the publish stage and a status timer may share it."""

    kind = "zmq"
    Options = ZmqSinkOptions

    def __init__(self, spec_options: dict | None = None, **options):
        super().__init__(spec_options, **options)
        self._sock: zmq.Socket | None = None
        self._lock = threading.Lock()
        self._stream = "default"  # for status messages that do not name their stream
        self.endpoint = self.options.endpoint  # the bound address, once open
        self.dropped = 0

    def _open(self) -> None:
        o = self.options
        self._sock = bind_publisher(o.endpoint, allow_remote=o.allow_remote, hwm=o.hwm)
        self.endpoint = self._sock.getsockopt_string(zmq.LAST_ENDPOINT)

    def _send(self, parts: list[bytes]) -> None:
        with self._lock:
            try:
                self._sock.send_multipart(parts, flags=zmq.NOBLOCK, copy=False)
            except zmq.Again:
                self.dropped += 1

    def _publish(self, result: FrameResult) -> None:
        self._stream = result.stream
        self._send(encode_result(result))
        if self.options.maps and result.maps is not None:
            self._send(encode_map(result))

    def _publish_status(self, status: dict) -> None:
        status = dict(status)
        self._send(encode_status(status.pop("stream", self._stream), status))

    def _close(self) -> None:
        with self._lock:
            self._sock.close(linger=0)
            self._sock = None

    def describe(self) -> dict:
        return {**super().describe(), "bound": self.endpoint, "dropped": self.dropped}
