"""Frames from another process over ZMQ (wire format v1), newest complete message only.

ZMQ_CONFLATE keeps a single *part*, so it cannot do this for ``[topic, header, pixels]``; instead
``read`` drains everything queued and decodes only the newest message, counting the rest as
dropped. Reconnecting after SourceLost is the caller's job (close(), then open()).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import zmq

from streamer.frames import Frame, SourceLost
from streamer.protocol import FRAME_TOPIC, decode_frame
from streamer.sources.base import Source


@dataclass(frozen=True)
class ZmqSourceOptions:
    endpoint: str  # the publisher's address, e.g. tcp://127.0.0.1:5550
    topic: str = FRAME_TOPIC.decode()  # subscription prefix
    timeout: float = 2.0  # publisher silent this long → SourceLost
    hwm: int = 4  # receive high-water mark, in messages

    def __post_init__(self):
        if not self.endpoint.startswith(("tcp://", "ipc://", "inproc://")):
            raise ValueError(f"zmq endpoint must be tcp://, ipc:// or inproc://, got {self.endpoint!r}")
        if self.timeout <= 0 or self.hwm < 1:
            raise ValueError("zmq timeout must be > 0 and hwm ≥ 1")


class ZmqSource(Source):
    kind = "zmq"
    live = True
    Options = ZmqSourceOptions
    max_drain = 10_000  # bound on one drain (a flood cannot keep read() busy forever)

    def __init__(self, spec_options: dict | None = None, **options):
        super().__init__(spec_options, **options)
        self._sock: zmq.Socket | None = None
        self._last_ns = 0
        self.received = 0

    def _open(self) -> None:
        sock = zmq.Context.instance().socket(zmq.SUB)
        sock.setsockopt(zmq.RCVHWM, self.options.hwm)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SUBSCRIBE, self.options.topic.encode())
        try:
            sock.connect(self.options.endpoint)
        except zmq.ZMQError as exc:
            sock.close()
            raise ValueError(f"cannot connect to {self.options.endpoint}: {exc}") from None
        self._sock, self._last_ns = sock, time.monotonic_ns()

    def _read(self, timeout: float) -> Frame | None:
        sock = self._sock
        if not sock.poll(int(timeout * 1000), zmq.POLLIN):
            silent = (time.monotonic_ns() - self._last_ns) / 1e9
            if silent > self.options.timeout:
                raise SourceLost(f"no frames from {self.options.endpoint} for {silent:.1f} s")
            return None
        newest = sock.recv_multipart(copy=False)
        drained = 0
        while drained < self.max_drain:
            try:
                newest = sock.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                break
            drained += 1
        self.received += drained + 1
        self.dropped += drained
        self._last_ns = time.monotonic_ns()
        frame = decode_frame(newest)  # InvalidFrame propagates: one bad message
        frame.t_capture_ns = self._last_ns  # received; decoding counts as capture
        return frame

    def _close(self) -> None:
        if self._sock is not None:
            self._sock.close(linger=0)
            self._sock = None

    def _details(self) -> dict:
        return {"received": self.received}
