"""Results, maps and status on a ZMQ PUB socket (wire format v1), loopback unless allowed;
remote use is CurveZMQ-encrypted and authenticated (streamer.security) or explicitly insecure.

A PUB socket never blocks: a subscriber that falls behind its high-water mark loses messages
silently, which is what a live display wants.
"""

from __future__ import annotations

import errno
import logging
import threading
from dataclasses import dataclass

import zmq

from streamer.errors import UserError
from streamer.frames import FrameResult
from streamer.protocol import DEFAULT_ENDPOINT, encode_map, encode_result, encode_status
from streamer.security import ServerKeys, check_remote, is_local_endpoint, make_server
from streamer.sinks.base import Sink

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_ENDPOINT", "ZmqSink", "bind_publisher", "is_local_endpoint"]


def bind_publisher(endpoint: str, *, allow_remote: bool = False, hwm: int = 8,
                   keys: ServerKeys | None = None, insecure: bool = False) -> zmq.Socket:
    """A PUB socket bound to ``endpoint`` (``tcp://127.0.0.1:*`` picks a free port; read
    ``LAST_ENDPOINT``). A non-loopback address needs ``allow_remote`` and either CurveZMQ
    ``keys`` (subscribers must hold an allowed client key) or ``insecure``."""
    if not endpoint.startswith(("tcp://", "ipc://", "inproc://")):
        raise UserError(f"endpoint must be tcp://, ipc:// or inproc://, got {endpoint!r}")
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

    def __post_init__(self):
        if self.hwm < 1:
            raise UserError(f"hwm must be ≥ 1, got {self.hwm}")
        if bool(self.curve_secret) != bool(self.curve_clients):
            raise UserError("CurveZMQ needs both curve_secret and curve_clients")

    def server_keys(self) -> ServerKeys | None:
        return ServerKeys(self.curve_secret, self.curve_clients) if self.curve_secret else None


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

    def _publish_status(self, status: dict) -> None:
        status = dict(status)
        self._send(encode_status(status.pop("stream", self._stream), status))

    def _close(self) -> None:
        with self._lock:
            self._sock.close(linger=0)
            self._sock = None

    def describe(self) -> dict:
        return {**super().describe(), "bound": self.endpoint}
