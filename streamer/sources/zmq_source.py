"""Frames from another process over ZMQ (wire format v1), newest complete message only.

ZMQ_CONFLATE keeps a single *part*, so it cannot do this for ``[topic, header, pixels]``; instead
``read`` drains everything queued and decodes only the newest message of its exact topic,
counting the older ones as dropped (messages of other topics that share the prefix are ignored).
Frames ZeroMQ itself dropped (a full queue on either side drops silently) show as holes in the
sender's ``seq``: every message's header is read for it, and the holes are counted as ``gaps``
(and in ``dropped``, so the pipeline counts them captured and dropped; see :class:`SeqGaps`).
ZMQ_MAXMSGSIZE is set from ``max_pixels``, so an oversized message never reaches memory.
Reconnecting after SourceLost is the caller's job (close(), then open()).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass

import zmq

from streamer.auth_failures import raise_if_failed
from streamer.errors import UserError
from streamer.frames import Frame, SourceLost
from streamer.protocol import (
    FRAME_TOPIC,
    MAX_JSON_BYTES,
    MAX_PIXELS,
    VERSION,
    decode_frame,
    max_frame_bytes,
)
from streamer.ratelimit import RateLimitedLog
from streamer.security import check_remote, client_keys, make_client
from streamer.sources.base import Source

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ZmqSourceOptions:
    endpoint: str  # the publisher's address, e.g. tcp://127.0.0.1:5550
    topic: str = FRAME_TOPIC.decode()  # the exact topic of frames
    timeout: float = 2.0  # no frame for this long → SourceLost
    hwm: int = 4  # receive high-water mark, in messages
    max_pixels: int = MAX_PIXELS  # larger frames are refused (and bound ZMQ_MAXMSGSIZE)
    server_key: str = ""  # the publisher's public key file: CurveZMQ on (with client_key)
    client_key: str = ""  # this side's secret key file (its public key must be allowed)
    insecure: bool = False  # allow a plaintext non-loopback endpoint (logs a warning)
    max_gap: int = 1000  # a longer jump forward in seq is a new sender, not lost frames

    def __post_init__(self):
        if not self.endpoint.startswith(("tcp://", "ipc://", "inproc://")):
            raise UserError(f"zmq endpoint must be tcp://, ipc:// or inproc://, got {self.endpoint!r}")
        if self.timeout <= 0 or self.hwm < 1 or self.max_pixels < 1 or self.max_gap < 0:
            raise UserError("zmq timeout must be > 0, hwm ≥ 1, max_pixels ≥ 1 and max_gap ≥ 0")
        if not self.topic:
            raise UserError("zmq topic must not be empty")
        keys = client_keys(self.server_key, self.client_key)
        check_remote(self.endpoint, encrypted=keys is not None, insecure=self.insecure,
                     what="frames in")


class SeqGaps:
    """Frames a sender numbered that never arrived, from the ``seq`` of the ones that did.

    The frame after ``seq`` is ``seq + 1``; a jump forward of up to ``max_gap`` frames is that many
    lost. A seq that goes back (the sender restarted, or its counter wrapped) and a jump of more than
    ``max_gap`` (a new sender with its own numbering: never millions of drops) start the count again
    and lose nothing; a repeated seq loses nothing. ``restart`` holds the last such (from, to)."""

    def __init__(self, max_gap: int):
        self.max_gap = max_gap
        self.last: int | None = None
        self.restart: tuple[int, int] | None = None

    def observe(self, seq: int) -> int:
        """How many frames are missing just before ``seq``."""
        last, self.last = self.last, seq
        self.restart = None
        if last is None or seq == last:
            return 0
        missing = seq - last - 1
        if seq < last or missing > self.max_gap:
            self.restart = (last, seq)
            return 0
        return missing


def _header_seq(parts) -> int | None:
    """The ``seq`` of a message's frame header, or None when it has none (the message is then
    invalid, or ignored)."""
    if len(parts) < 2 or len(parts[1]) > MAX_JSON_BYTES:
        return None
    try:
        header = json.loads(parts[1].bytes)
    except (ValueError, RecursionError):  # not UTF-8 or not JSON: the decoder says which
        return None
    seq = header.get("seq") if isinstance(header, dict) and header.get("v") == VERSION else None
    return seq if isinstance(seq, int) and not isinstance(seq, bool) else None


class ZmqSource(Source):
    kind = "zmq"
    live = True
    Options = ZmqSourceOptions
    max_drain = 10_000  # bound on one drain (a flood cannot keep read() busy forever)

    def __init__(self, spec_options: dict | None = None, **options):
        super().__init__(spec_options, **options)
        self._sock: zmq.Socket | None = None
        self._last_ns = 0
        self._topic = self.options.topic.encode()
        self.received = 0
        self.ignored = 0  # messages of another topic that shares the subscription prefix
        self.gaps = 0  # frames missing from the sender's seq (lost inside ZeroMQ), also in dropped
        self._seqs = SeqGaps(self.options.max_gap)
        self._restart_log = RateLimitedLog(logger=log)

    def _open(self) -> None:
        o = self.options
        sock = zmq.Context.instance().socket(zmq.SUB)
        sock.setsockopt(zmq.RCVHWM, o.hwm)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, max_frame_bytes(o.max_pixels))
        sock.setsockopt(zmq.SUBSCRIBE, self._topic)
        try:
            keys = client_keys(o.server_key, o.client_key)
            if keys is not None:
                make_client(sock, keys)
            sock.connect(o.endpoint)
        except zmq.ZMQError as exc:
            sock.close()
            raise UserError(f"cannot connect to {o.endpoint}: {exc}") from None
        except BaseException:
            sock.close()
            raise
        self._sock, self._last_ns = sock, time.monotonic_ns()
        self._seqs.last = None  # a new connection: frames sent before it are not gaps

    def _read(self, timeout: float) -> Frame | None:
        sock = self._sock
        newest = None
        if sock.poll(int(timeout * 1000), zmq.POLLIN):
            newest = self._drain(sock)
        if newest is None:
            silent = (time.monotonic_ns() - self._last_ns) / 1e9
            if silent > self.options.timeout:
                raise_if_failed(sock)  # a refused CurveZMQ handshake is no silent sender
                raise SourceLost(f"no frames from {self.options.endpoint} for {silent:.1f} s")
            return None
        self._last_ns = time.monotonic_ns()
        frame = decode_frame(newest, self._topic, self.options.max_pixels)  # InvalidFrame: one bad message
        frame.t_capture_ns = self._last_ns  # received; decoding counts as capture
        return frame

    def _drain(self, sock: zmq.Socket):
        """The newest queued message of our topic (older ones are counted dropped), or None."""
        newest, taken = None, 0
        while taken <= self.max_drain:
            try:
                parts = sock.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                break
            taken += 1
            if parts[0].bytes != self._topic:
                self.ignored += 1
                continue
            self.received += 1
            self._count_gap(parts)
            if newest is not None:
                self.dropped += 1
            newest = parts
        return newest

    def _count_gap(self, parts) -> None:
        seq = _header_seq(parts)
        if seq is None:
            return
        missing = self._seqs.observe(seq)
        self.gaps += missing
        self.dropped += missing
        if self._seqs.restart is not None:
            self._restart_log(logging.INFO, "zmq source: seq went from %d to %d (back, or more than "
                              "max_gap=%d ahead): a new or restarted sender, no frames counted lost",
                              *self._seqs.restart, self.options.max_gap)

    def _close(self) -> None:
        if self._sock is not None:
            self._sock.close(linger=0)
            self._sock = None

    def _details(self) -> dict:
        return {"received": self.received, "ignored": self.ignored, "gaps": self.gaps}
