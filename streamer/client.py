"""A small typed subscriber for a running streamer's results, maps, previews and status.

    with ResultSubscriber("tcp://127.0.0.1:5556", stream="us0") as sub:
        for msg in sub.messages(idle_timeout=5.0):
            print(msg.seq, msg.present)

A remote streamer publishes with CurveZMQ: pass ``server_key`` (its public key file) and
``client_key`` (this side's secret key file, whose public half the streamer allows).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import zmq

from streamer.errors import UserError
from streamer.protocol import (
    DEFAULT_ENDPOINT,
    DetectionMessage,
    MapMessage,
    MessageError,
    PreviewMessage,
    StatusMessage,
    check_stream_name,
    decode_message,
)
from streamer.security import check_remote, client_keys, make_client

log = logging.getLogger(__name__)
Message = DetectionMessage | MapMessage | PreviewMessage | StatusMessage
TOPIC_KINDS = ("det", "map", "img", "status")
MAX_MESSAGE_BYTES = 64 << 20  # results and maps are far smaller; a larger part drops the peer

__all__ = ["DetectionMessage", "MapMessage", "Message", "MessageError", "PreviewMessage",
           "ResultSubscriber", "StatusMessage"]


class ResultSubscriber:
    """SUB socket connected to a streamer's PUB; messages that fail to decode (whatever they
    hold) are counted in ``invalid`` and skipped. With ``stream`` given, only that stream's exact
    topics are returned. A non-loopback endpoint needs CurveZMQ keys or ``insecure=True``."""

    def __init__(self, endpoint: str = DEFAULT_ENDPOINT, stream: str | None = None,
                 topics: tuple[str, ...] = ("det",), hwm: int = 100, *,
                 server_key: str | None = None, client_key: str | None = None,
                 insecure: bool = False):
        check_remote(endpoint, encrypted=bool(server_key or client_key), insecure=insecure,
                     what="subscribing to results")  # first: a malformed endpoint is said as such
        unknown = set(topics) - set(TOPIC_KINDS)
        if unknown or not topics:
            raise UserError(f"topics must be among {TOPIC_KINDS}, got {tuple(topics)}")
        self.endpoint, self.stream, self.topics = endpoint, stream, tuple(topics)
        self._wanted = {f"{t}.{check_stream_name(stream)}".encode() for t in topics} if stream else None
        keys = client_keys(server_key, client_key)
        self.invalid = 0
        self._sock = zmq.Context.instance().socket(zmq.SUB)
        self._sock.setsockopt(zmq.RCVHWM, hwm)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
        for t in self.topics:
            self._sock.setsockopt(zmq.SUBSCRIBE, f"{t}.{stream or ''}".encode())
        try:
            if keys is not None:
                make_client(self._sock, keys)
            self._sock.connect(endpoint)
        except zmq.ZMQError as exc:
            self._sock.close()
            raise UserError(f"cannot connect to {endpoint}: {exc}") from None

    def recv(self, timeout: float | None = None) -> Message | None:
        """The next message, or None if none came within ``timeout`` seconds (None: wait)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not self._sock.poll(None if left is None else int(left * 1000)):
                return None
            parts = self._sock.recv_multipart()
            if self._wanted is not None and parts[0] not in self._wanted:
                continue  # prefix match of another stream (us1 vs us10)
            try:
                return decode_message(parts)
            except MessageError as exc:
                self.invalid += 1
                log.debug("skipping a message that does not decode: %s", exc)

    def messages(self, idle_timeout: float | None = None) -> Iterator[Message]:
        """Messages as they come; stops after ``idle_timeout`` seconds without one (None: never)."""
        while (msg := self.recv(idle_timeout)) is not None:
            yield msg

    def __iter__(self) -> Iterator[Message]:
        return self.messages()

    def close(self) -> None:
        self._sock.close(linger=0)

    def __enter__(self) -> ResultSubscriber:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
