"""A live viewer: one static page served over HTTP (aiohttp), updated by Server-Sent Events.

The pipeline only hands over a reference to its latest result (``publish`` costs microseconds);
an encoder thread renders the newest result once per tick for every browser together (the event's
bytes are built once), at most ``max_fps`` times a second and slower while the engine drops
frames (viewer_limits.PreviewPace); each browser gets the newest message when it is ready for
one, so a slow browser skips frames, and one that takes none for ``write_timeout`` is let go.
At most ``max_clients`` browsers and ``max_connections`` connections (each a file descriptor the
engine's other sockets need too); a connection that has not sent its request within
``header_timeout`` is closed. Loopback unless ``allow_remote``: frames are patient data and the
page is plain HTTP.
"""

from __future__ import annotations

import asyncio
import collections
import errno
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources

from streamer.frames import FrameResult
from streamer.ratelimit import RateLimitedLog
from streamer.security import is_local_host
from streamer.sinks.base import Sink
from streamer.sinks.viewer_limits import ConnectionGate, PreviewPace, QuietLog
from streamer.sinks.viewer_render import render

log = logging.getLogger(__name__)
HISTORY = 120  # points in the latency and fps sparklines


def _web():
    try:
        from aiohttp import web
    except ImportError:
        raise ValueError("the live viewer needs aiohttp: pip install 'sonostream[viewer]'") from None
    return web


@dataclass(frozen=True)
class ViewerOptions:
    port: int = 8090  # 0 picks a free port (read ViewerSink.url)
    host: str = "127.0.0.1"
    allow_remote: bool = False  # bind to a non-loopback address
    width: int = 480  # the frame is downscaled to at most this width
    quality: int = 70  # JPEG quality
    max_fps: float = 15.0  # the most messages a second sent to browsers
    max_clients: int = 8  # browsers watching at once; another gets HTTP 503
    max_connections: int = 64  # open connections at once; another gets a bare 503 and is closed
    header_timeout: float = 10.0  # seconds to send a whole request (and to idle between requests)
    write_timeout: float = 10.0  # a browser that takes no frame for this long is let go

    def __post_init__(self):
        if not 0 <= self.port <= 65535:
            raise ValueError(f"viewer port must be in 0..65535, got {self.port}")
        if not self.allow_remote and not is_local_host(self.host):
            raise ValueError(f"refusing to serve the viewer on {self.host}: not a loopback address "
                             "and frames are patient data; allow it explicitly (--allow-remote)")
        if not 8 <= self.width <= 4096 or not 1 <= self.quality <= 100 or self.max_fps <= 0:
            raise ValueError("viewer width must be in 8..4096, quality in 1..100, max_fps > 0")
        if not 1 <= self.max_clients <= self.max_connections:
            raise ValueError(f"viewer max_clients must be in 1..max_connections "
                             f"({self.max_connections}), got {self.max_clients}")
        if not self.header_timeout > 0 or not self.write_timeout > 0:
            raise ValueError("viewer header_timeout and write_timeout must be > 0 seconds")


class ViewerSink(Sink):
    kind = "view"
    Options = ViewerOptions

    def __init__(self, spec_options: dict | None = None, *,
                 threshold_for: Callable[[str], float] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], object] | None = None, **options):
        """``threshold_for``: a class's decision threshold, drawn on its score bar; ``clock`` and
        ``sleep`` pace the encoder thread (a test's fake clock; sleep returns early on close)."""
        super().__init__(spec_options, **options)
        self.threshold_for = threshold_for or (lambda name: None)
        self.failed = 0  # results the viewer could not draw
        self.url = ""
        self.encoded = 0  # messages rendered
        self.encode_s = 0.0  # time spent rendering them (the encoder thread, not the pipeline)
        self.skipped = 0  # messages a browser never got because a newer one was ready first
        self.refused = 0  # browsers turned away at max_clients
        self.let_go = 0  # browsers disconnected after taking no frame for write_timeout
        self._latest: FrameResult | None = None
        self._latency = collections.deque(maxlen=HISTORY)
        self._fps = collections.deque(maxlen=HISTORY)
        self._source_state = ""
        self._exam: dict | None = None
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._clients: set[asyncio.Event] = set()
        self._event = b""  # the newest rendered message as one SSE event, and its number
        self._jpeg = b""
        self._version = 0
        self._clock = clock
        self._sleep = sleep or self._closing.wait
        self._pace = PreviewPace(self.options.max_fps, clock)
        self._quiet = QuietLog(log)
        self._refusals = RateLimitedLog(logger=log)
        self._stalls = RateLimitedLog(logger=log)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner = None
        self._server: asyncio.AbstractServer | None = None
        self._gate: ConnectionGate | None = None
        self._threads: list[threading.Thread] = []

    # -- the pipeline's side: O(1), no encoding --------------------------------------------
    def _publish(self, result: FrameResult) -> None:
        self._latest = result
        t = result.timing
        self._latency.append(round((t.publish - t.capture) / 1e6, 2))
        self._wake.set()

    def _publish_status(self, status: dict) -> None:
        self._fps.append(status.get("fps", 0.0))
        self._source_state = (status.get("source") or {}).get("state", "")
        self._exam = status.get("exam")  # the exam's checklist: regions seen, how long, when last
        self._pace.engine_status(status.get("captured"), status.get("dropped"))

    # -- server ------------------------------------------------------------------------------
    def _open(self) -> None:
        web = _web()
        self._loop = asyncio.new_event_loop()
        loop_thread = threading.Thread(target=self._loop.run_forever, name="viewer-http", daemon=True)
        loop_thread.start()
        self._threads = [loop_thread]
        try:
            future = asyncio.run_coroutine_threadsafe(self._start_server(web), self._loop)
            future.result(timeout=10)
        except Exception:
            self._stop_loop()
            raise
        encoder = threading.Thread(target=self._encode_loop, name="viewer-encode", daemon=True)
        encoder.start()
        self._threads.append(encoder)
        log.info("viewer on %s", self.url)

    async def _start_server(self, web) -> None:
        app = web.Application()
        app.router.add_get("/", self._page)
        app.router.add_get("/events", self._events)
        app.router.add_get("/frame.jpg", self._frame)
        app.router.add_get("/state", self._state)
        o = self.options
        # keepalive_timeout also closes a connection that has not sent a whole request by then
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None,
                                     shutdown_timeout=1.0, keepalive_timeout=o.header_timeout,
                                     logger=self._quiet)
        await self._runner.setup()
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(self._quiet.loop_error)
        self._gate = ConnectionGate(self._runner.server, o.max_connections, log)
        try:
            self._server = await loop.create_server(self._gate, o.host, o.port,
                                                    reuse_address=True, backlog=128)
        except OSError as exc:
            await self._runner.cleanup()
            if exc.errno == errno.EADDRINUSE:
                raise ValueError(f"viewer port {o.port} on {o.host} is in use") from None
            raise ValueError(f"cannot serve the viewer on {o.host}:{o.port}: {exc}") from None
        host, port = self._server.sockets[0].getsockname()[:2]
        self.url = f"http://{'[' + host + ']' if ':' in host else host}:{port}/"

    async def _page(self, request):
        web = _web()
        page = resources.files("streamer.sinks").joinpath("viewer_page.html").read_text("utf-8")
        return web.Response(text=page, content_type="text/html")

    async def _frame(self, request):
        web = _web()
        if not self._jpeg:
            return web.Response(status=503, text="no frame yet (frames are rendered while a "
                                                 "browser watches /events)")
        return web.Response(body=self._jpeg, content_type="image/jpeg")

    async def _state(self, request):
        return _web().json_response(self.describe())

    async def _events(self, request):
        web = _web()
        most = self.options.max_clients
        if len(self._clients) >= most:
            self.refused += 1
            self._refusals(logging.WARNING, "viewer refused a browser: %d watching, its most "
                           "(max_clients; %d refused so far)", most, self.refused)
            return web.Response(status=503, headers={"Retry-After": "10"},
                                text=f"the viewer shows at most {most} browsers at once: "
                                     "close one and reload\n")
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-cache"})
        await resp.prepare(request)
        await resp.write(b"retry: 1000\n\n")  # the browser reconnects a second after we go away
        ready = asyncio.Event()
        if self._event:
            ready.set()
        self._clients.add(ready)
        self._wake.set()
        try:
            await self._stream(resp, ready)
        except asyncio.TimeoutError:  # took no frame for write_timeout: let go, its place is free
            self.let_go += 1
            self._stalls(logging.WARNING, "viewer let a browser go: it took no frame for %g s "
                         "(%d so far)", self.options.write_timeout, self.let_go)
            if request.transport is not None:
                request.transport.abort()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._clients.discard(ready)
        return resp

    async def _stream(self, resp, ready: asyncio.Event) -> None:
        """The newest event whenever this browser is ready for one (the bytes every browser gets)."""
        sent = None
        while not self._closing.is_set():
            await ready.wait()
            ready.clear()
            if self._closing.is_set() or not self._event:
                continue
            if sent is not None:
                self.skipped += max(0, self._version - sent - 1)
            sent, event = self._version, self._event
            await asyncio.wait_for(resp.write(event), self.options.write_timeout)

    def _broadcast(self, event: bytes, jpeg: bytes) -> None:
        """On the event loop: the newest event replaces the last; every browser is woken."""
        self._event, self._jpeg = event, jpeg
        self._version += 1
        for ready in self._clients:
            ready.set()

    # -- encoder thread ----------------------------------------------------------------------
    def _encode_loop(self) -> None:
        last_seq = None
        while not self._closing.is_set():
            if not self._wake.wait(0.25):
                continue
            self._wake.clear()
            result = self._latest
            if not self._clients or result is None or result.seq == last_seq:
                continue
            delay = self._pace.delay()
            if delay > 0:
                self._sleep(delay)
                if self._closing.is_set():
                    break
                result = self._latest  # the newest after the wait, not the one that woke us
            last_seq = result.seq
            started = self._clock()
            try:
                self._render(result)
            except Exception as exc:  # a frame the viewer cannot draw must not stop it
                self.failed += 1
                if self.failed in (1, 10, 100) or self.failed % 1000 == 0:
                    log.warning("viewer cannot draw frame %s (%d so far): %s", result.seq,
                                self.failed, exc)
            self._pace.rendered(started, self._clock() - started)

    def _build(self, result) -> tuple[dict, bytes]:
        """The page's message for the newest item and its frame's JPEG (a subclass that is fed
        something other than FrameResults overrides this)."""
        return render(result, self.threshold_for, max_width=self.options.width,
                      quality=self.options.quality)

    def _render(self, result) -> None:
        t0 = time.perf_counter()
        message, jpeg = self._build(result)
        message.update(latency_history=list(self._latency), fps_history=list(self._fps),
                       source_state=self._source_state, exam=self._exam,
                       preview_fps=round(1.0 / self._pace.interval(), 1),
                       preview_max_fps=self.options.max_fps)
        event = b"event: frame\ndata: " + json.dumps(message, separators=(",", ":")).encode() + b"\n\n"
        self.encode_s += time.perf_counter() - t0
        self.encoded += 1
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._broadcast, event, jpeg)

    # -- closing -------------------------------------------------------------------------------
    def _close(self) -> None:
        self._closing.set()
        self._wake.set()
        if self._loop is not None and self._runner is not None:
            def wake_all():
                for ready in self._clients:
                    ready.set()
            self._loop.call_soon_threadsafe(wake_all)
            try:
                asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(5)
            except Exception as exc:
                log.warning("viewer did not shut down cleanly: %s", exc)
        self._stop_loop()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()  # no new connections; the runner closes the open ones
        await self._runner.cleanup()

    def _stop_loop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            for t in self._threads:
                t.join(5)
            self._loop.close()
            self._loop = None

    def describe(self) -> dict:
        gate = self._gate
        return {**super().describe(), "url": self.url, "clients": len(self._clients),
                "connections": gate.open if gate else 0, "refused": self.refused,
                "refused_connections": gate.refused if gate else 0, "let_go": self.let_go,
                "preview_fps": round(1.0 / self._pace.interval(), 2),
                "encoded": self.encoded, "skipped": self.skipped, "failed": self.failed,
                "encode_ms_mean": round(1e3 * self.encode_s / self.encoded, 3) if self.encoded else None}
