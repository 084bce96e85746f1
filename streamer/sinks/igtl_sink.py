"""OpenIGTLink for 3D Slicer (OpenIGTLinkIF) and PLUS: an OpenIGTLink server sending, per frame,
the screen as a downscaled grey ``IMAGE``, one ``POINT`` per present region at its peak, and a
``STRING`` summary (messages built with pyigtl). Device names: ``<prefix>Image``,
``<prefix>Points``, ``<prefix>Summary`` (prefix ``Sonostream`` by default).

World frame: the IMAGE's ijk→world matrix is diagonal (spacing, origin 0): millimetres when the
source knows its pixel spacing (DICOM regions), else source-frame pixels; POINT positions are
the peaks in that same frame. A POINT's ``group`` field carries the region's score ("0.982").

Several clients side by side (3D Slicer and PLUS), up to ``max_clients``; one more is refused
(closed at once, a rate-limited warning). Like the viewer, the pipeline only hands over its latest
result; a sender thread packs each frame's messages once, while a client is connected, and offers
them to every client's own queue of QUEUED_FRAMES: a client that has not taken them skips the
frame, and one that takes nothing for ``client_timeout`` seconds is disconnected. Each client has
its own thread, so a slow one never holds back the others or the pipeline.
Loopback unless ``allow_remote``: OpenIGTLink is unencrypted and frames are patient data.
"""

from __future__ import annotations

import logging
import selectors
import socketserver
import threading
import time
from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np

from streamer.frames import FrameResult
from streamer.ratelimit import RateLimitedLog
from streamer.security import is_local_host
from streamer.sinks.base import Sink
from streamer.sinks.viewer_render import class_colour

log = logging.getLogger(__name__)
QUEUED_FRAMES = 2  # frames waiting for one client; more and that client skips a frame


def _pyigtl():
    try:
        import pyigtl
    except ImportError:
        raise ValueError("OpenIGTLink needs pyigtl: pip install 'sonostream[igtl]'") from None
    return pyigtl


@dataclass(frozen=True)
class IgtlOptions:
    port: int = 18944  # OpenIGTLink's registered port; 0 picks a free one (read IgtlSink.port)
    host: str = "127.0.0.1"
    allow_remote: bool = False
    width: int = 320  # the IMAGE is downscaled to at most this width
    max_fps: float = 15.0
    prefix: str = "Sonostream"  # device names: <prefix>Image, <prefix>Points, <prefix>Summary
    max_clients: int = 8  # served side by side; one more is refused with a log line
    client_timeout: float = 5.0  # a client that takes no data for this long is disconnected

    def __post_init__(self):
        if not 0 <= self.port <= 65535:
            raise ValueError(f"OpenIGTLink port must be in 0..65535, got {self.port}")
        if not self.allow_remote and not is_local_host(self.host):
            raise ValueError(f"refusing to serve OpenIGTLink on {self.host}: not a loopback address "
                             "and frames are patient data; allow it explicitly (--allow-remote)")
        if not 8 <= self.width <= 4096 or self.max_fps <= 0:
            raise ValueError("OpenIGTLink width must be in 8..4096 and max_fps > 0")
        if not self.prefix.isidentifier() or len(self.prefix) > 12:
            raise ValueError(f"OpenIGTLink device prefix must be a short identifier, got {self.prefix!r}")
        if not 1 <= self.max_clients <= 64 or self.client_timeout <= 0:
            raise ValueError(f"OpenIGTLink max_clients must be in 1..64 (got {self.max_clients}) "
                             f"and client_timeout > 0 (got {self.client_timeout})")


class _Client:
    """One connected client's queue of packed frames (bytes), bounded."""

    def __init__(self, address: str):
        self.address = address
        self._queue: deque[bytes] = deque()
        self._cond = threading.Condition()

    def offer(self, data: bytes) -> bool:
        with self._cond:
            if len(self._queue) >= QUEUED_FRAMES:
                return False
            self._queue.append(data)
            self._cond.notify()
            return True

    def take(self, timeout: float) -> bytes | None:
        with self._cond:
            if not self._cond.wait_for(lambda: self._queue, timeout):
                return None
            return self._queue.popleft()


class _Handler(socketserver.BaseRequestHandler):
    """One client, in its own thread: send its queued frames, read and ignore what it sends,
    end when it leaves, when the server closes, or when it takes nothing for client_timeout."""

    def handle(self):
        server, sock = self.server, self.request
        client = server.add(self.client_address[0])
        sock.settimeout(server.options.client_timeout)  # bounds each sendall
        readable = selectors.DefaultSelector()
        readable.register(sock, selectors.EVENT_READ)
        try:
            while not server.closing.is_set():
                data = client.take(0.1)
                if data is not None:
                    sock.sendall(data)
                if readable.select(0) and not sock.recv(65536):
                    break  # the client closed the connection
        except TimeoutError:
            with server.lock:
                server.dropped += 1
            server.drops(logging.WARNING, "OpenIGTLink client %s took no data for %.1f s "
                         "(client_timeout); disconnected", client.address,
                         server.options.client_timeout)
        except OSError as exc:
            log.info("OpenIGTLink client %s left: %s", client.address, exc)
        finally:
            readable.close()
            server.remove(client)


class _Server(socketserver.ThreadingTCPServer):
    """A thread per client, at most ``max_clients`` of them."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64  # listen backlog: clients connecting at once are all seen (or refused)

    def __init__(self, options: IgtlOptions):
        self.options = options
        self.clients: list[_Client] = []
        self.active = self.refused = self.dropped = 0  # dropped: took no data for client_timeout
        self.closing = threading.Event()
        self.lock = threading.Lock()
        self.refusals, self.drops = RateLimitedLog(logger=log), RateLimitedLog(logger=log)
        super().__init__((options.host, options.port), _Handler)

    def verify_request(self, request, client_address) -> bool:
        with self.lock:
            if self.active < self.options.max_clients:
                self.active += 1  # released when its handler ends
                return True
            self.refused += 1
        self.refusals(logging.WARNING, "OpenIGTLink: refusing client %s: %d clients already "
                      "connected (max_clients=%d)", client_address[0], self.options.max_clients,
                      self.options.max_clients)
        return False

    def add(self, address: str) -> _Client:
        client = _Client(address)
        with self.lock:
            self.clients.append(client)
        log.info("OpenIGTLink client %s connected", address)
        return client

    def remove(self, client: _Client) -> None:
        with self.lock:
            self.clients.remove(client)
            self.active -= 1

    def connected(self) -> list[_Client]:
        with self.lock:
            return list(self.clients)


def summary(result: FrameResult) -> str:
    """``seq 42: head 0.98 at (812, 430), spine 0.91 at (700, 520)`` (source pixels)."""
    present = [f"{c.name} {c.score:.2f}" + (f" at ({c.peak[0]}, {c.peak[1]})" if c.peak else "")
               for c in result.classes if c.present]
    return f"seq {result.seq}: " + (", ".join(present) or "nothing in view")


def messages(pyigtl, result: FrameResult, options: IgtlOptions) -> list:
    """The IMAGE, POINT (if a region is present) and STRING messages for one result."""
    h, w = result.frame_shape
    scale = min(1.0, options.width / w)
    mm = result.mm_per_px or (1.0, 1.0)  # world units: mm when known, else source pixels
    stamp = time.time()
    out = []
    if result.image is not None:
        grey = result.image if result.image.ndim == 2 else cv2.cvtColor(result.image, cv2.COLOR_BGR2GRAY)
        small = cv2.resize(grey, (max(1, round(w * scale)), max(1, round(h * scale))),
                           interpolation=cv2.INTER_AREA)
        ijk = np.diag([mm[0] / scale, mm[1] / scale, 1.0, 1.0])
        out.append(pyigtl.ImageMessage(small[None], ijk_to_world_matrix=ijk, timestamp=stamp,
                                       device_name=options.prefix + "Image"))
    present = [(i, c) for i, c in enumerate(result.classes) if c.present and c.peak is not None]
    if present:
        rgba = [tuple(int(class_colour(c.name, i)[k:k + 2], 16) for k in (1, 3, 5)) + (255,)
                for i, c in present]
        out.append(pyigtl.PointMessage(
            positions=[[c.peak[0] * mm[0], c.peak[1] * mm[1], 0.0] for _, c in present],
            names=[c.name for _, c in present], groups=[f"{c.score:.3f}" for _, c in present],
            rgba_colors=rgba, diameters=[5.0] * len(present),
            owners=[options.prefix + "Image"] * len(present), timestamp=stamp,
            device_name=options.prefix + "Points"))
    out.append(pyigtl.StringMessage(summary(result), timestamp=stamp,
                                    device_name=options.prefix + "Summary"))
    return out


class IgtlSink(Sink):
    kind = "igtl"
    Options = IgtlOptions

    def __init__(self, spec_options: dict | None = None, **options):
        super().__init__(spec_options, **options)
        self.port = self.options.port
        self.sent = 0  # frames handed to at least one connected client
        self.skipped = 0  # (client, frame) pairs skipped: that client had not taken the last ones
        self._latest: FrameResult | None = None
        self._wake, self._closing = threading.Event(), threading.Event()
        self._server: _Server | None = None
        self._pyigtl = self._thread = None
        self._errors = RateLimitedLog(logger=log)

    def _publish(self, result: FrameResult) -> None:
        self._latest = result
        self._wake.set()

    def _open(self) -> None:
        self._pyigtl = _pyigtl()
        o = self.options
        try:
            self._server = _Server(o)
        except OSError as exc:
            raise ValueError(f"cannot serve OpenIGTLink on {o.host}:{o.port}: "
                             f"{exc.strerror or exc}") from None
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, name="igtl-server", daemon=True).start()
        self._thread = threading.Thread(target=self._send_loop, name="igtl-send", daemon=True)
        self._thread.start()
        log.info("OpenIGTLink server on %s:%d for up to %d clients (devices %sImage, %sPoints, "
                 "%sSummary)", o.host, self.port, o.max_clients, o.prefix, o.prefix, o.prefix)

    def _send_loop(self) -> None:
        last_seq, next_at = None, 0.0
        while not self._closing.is_set():
            if not self._wake.wait(0.25):
                continue
            self._wake.clear()
            result = self._latest
            if result is None or result.seq == last_seq or not self._server.connected():
                continue
            self._closing.wait(max(0.0, next_at - time.monotonic()))
            next_at = time.monotonic() + 1.0 / self.options.max_fps
            result, last_seq = self._latest, self._latest.seq
            try:  # packed once, whatever the number of clients
                data = b"".join(m.pack() for m in messages(self._pyigtl, result, self.options))
            except Exception as exc:  # a frame that cannot be sent must not stop the sender
                self._errors(logging.WARNING, "OpenIGTLink: cannot send frame %s: %s", result.seq, exc)
                continue
            taken = [client.offer(data) for client in self._server.connected()]
            self.sent += any(taken)
            self.skipped += taken.count(False)

    def _close(self) -> None:
        self._closing.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(5)
        if self._server is not None:
            self._server.closing.set()
            self._server.shutdown()
            self._server.server_close()

    def describe(self) -> dict:
        server = self._server
        clients = len(server.connected()) if server else 0
        return {**super().describe(), "bound_port": self.port, "sent": self.sent,
                "skipped": self.skipped, "clients": clients,
                "refused": server.refused if server else 0,
                "dropped_clients": server.dropped if server else 0}
