"""OpenIGTLink for 3D Slicer (OpenIGTLinkIF) and PLUS: an OpenIGTLink server (pyigtl) sending,
per frame, the screen as a downscaled grey ``IMAGE``, one ``POINT`` per present region at its
peak, and a ``STRING`` summary. Device names: ``<prefix>Image``, ``<prefix>Points``,
``<prefix>Summary`` (prefix ``Sonostream`` by default).

World frame: the IMAGE's ijk→world matrix is diagonal (spacing, origin 0): millimetres when the
source knows its pixel spacing (DICOM regions), else source-frame pixels; POINT positions are
the peaks in that same frame. A POINT's ``group`` field carries the region's score ("0.982").

Like the viewer, the pipeline only hands over its latest result; a sender thread builds the
messages while a client is connected and skips frames rather than queue them for a slow one.
Loopback unless ``allow_remote``: OpenIGTLink is unencrypted and frames are patient data.
"""

from __future__ import annotations

import logging
import socketserver
import threading
import time
from dataclasses import dataclass

import cv2
import numpy as np

from streamer.frames import FrameResult
from streamer.security import is_local_host
from streamer.sinks.base import Sink
from streamer.sinks.viewer_render import class_colour

log = logging.getLogger(__name__)
MAX_QUEUED = 6  # messages waiting for the client (two frames' worth); more and a frame is skipped


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


def _server_class():
    """pyigtl's server without what its constructor adds for a stand-alone script (process-wide
    SIGINT/SIGTERM handlers, a thread polling for a client): the streamer handles both."""
    pyigtl = _pyigtl()
    from pyigtl.comm import OpenIGTLinkBase, OpenIGTLinkServer

    class Handler(socketserver.BaseRequestHandler):
        """One client: send what is queued, ignore what it sends, end quietly when it leaves."""

        def handle(self):
            server = self.server
            server._connected = True
            self.request.settimeout(0.01)
            try:
                while not server.communication_thread_stop_requested:
                    try:
                        if not self.request.recv(65536):
                            break  # the client closed the connection
                    except TimeoutError:
                        pass
                    while server._send_queued_message_from_socket(self.request):
                        pass
            except OSError as exc:
                log.info("OpenIGTLink client %s left: %s", self.client_address[0], exc)
            finally:
                server._connected = False
                with server.lock_outgoing_messages:
                    server.outgoing_messages.clear()

    class Server(OpenIGTLinkServer):
        def __init__(self, host: str, port: int):  # noqa: B042 - pyigtl's own init is bypassed
            OpenIGTLinkBase.__init__(self)
            self.host, self.port = host, port
            self.allow_reuse_address = True
            socketserver.TCPServer.__init__(self, (host, port), Handler)
            self.port = self.server_address[1]

        def start(self):
            threading.Thread(target=self.serve_forever, name="igtl-server", daemon=True).start()

        def queued(self) -> int:
            with self.lock_outgoing_messages:
                return len(self.outgoing_messages)

    return pyigtl, Server


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
        self.sent = 0  # frames handed to the server for a connected client
        self.skipped = 0  # frames skipped because the client had not taken the last ones yet
        self._latest: FrameResult | None = None
        self._wake, self._closing = threading.Event(), threading.Event()
        self._server = self._pyigtl = self._thread = None

    def _publish(self, result: FrameResult) -> None:
        self._latest = result
        self._wake.set()

    def _open(self) -> None:
        pyigtl, server_class = _server_class()
        o = self.options
        try:
            self._server = server_class(o.host, o.port)
        except OSError as exc:
            raise ValueError(f"cannot serve OpenIGTLink on {o.host}:{o.port}: "
                             f"{exc.strerror or exc}") from None
        self._pyigtl, self.port = pyigtl, self._server.port
        self._server.start()
        self._thread = threading.Thread(target=self._send_loop, name="igtl-send", daemon=True)
        self._thread.start()
        log.info("OpenIGTLink server on %s:%d (devices %sImage, %sPoints, %sSummary)", o.host,
                 self.port, o.prefix, o.prefix, o.prefix)

    def _send_loop(self) -> None:
        last_seq, next_at = None, 0.0
        while not self._closing.is_set():
            if not self._wake.wait(0.25):
                continue
            self._wake.clear()
            result = self._latest
            if result is None or result.seq == last_seq or not self._server.is_connected():
                continue
            self._closing.wait(max(0.0, next_at - time.monotonic()))
            next_at = time.monotonic() + 1.0 / self.options.max_fps
            result, last_seq = self._latest, self._latest.seq
            if self._server.queued() > MAX_QUEUED - 3:
                self.skipped += 1
                continue
            try:
                for message in messages(self._pyigtl, result, self.options):
                    self._server.send_message(message, wait=False)
                self.sent += 1
            except Exception as exc:  # a frame that cannot be sent must not stop the sender
                log.warning("OpenIGTLink: cannot send frame %s: %s", result.seq, exc)

    def _close(self) -> None:
        self._closing.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(5)
        if self._server is not None:
            self._server.communication_thread_stop_requested = True
            self._server.shutdown()
            self._server.server_close()

    def describe(self) -> dict:
        return {**super().describe(), "bound_port": self.port, "sent": self.sent,
                "skipped": self.skipped}
