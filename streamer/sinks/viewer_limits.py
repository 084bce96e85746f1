"""What keeps the live viewer from costing the engine: the pace of its frames (one render per tick
for every browser together, slower while the engine drops frames or while rendering would take
more than its share of a core), a cap on open connections that is applied before a byte is
parsed, and quiet logging (one rate-limited line, no traceback) of bad requests and of accept()
failures such as running out of file descriptors."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from streamer.ratelimit import RateLimitedLog

MIN_FPS = 1.0  # the preview never goes slower than this while someone watches
RENDER_SHARE = 0.25  # rendering may take at most this much of one core
DROP_NOISE = 0.02  # drops above this fraction of captured frames (and above one) mean "slow down"


class PreviewPace:
    """When the next frame may be rendered. At most ``max_fps``; halved (down to MIN_FPS) after
    each status report in which the engine dropped frames, one frame per second faster after each
    report without drops; and never so often that rendering takes more than RENDER_SHARE."""

    def __init__(self, max_fps: float, clock: Callable[[], float] = time.monotonic):
        self.max_fps = self.fps = max_fps
        self.clock = clock
        self.render_s = 0.0  # a running mean of one render's time
        self._next = 0.0
        self._counts: tuple[int, int] | None = None  # (captured, dropped) at the last report

    def interval(self) -> float:
        return max(1.0 / self.fps, self.render_s / RENDER_SHARE)

    def delay(self) -> float:
        """Seconds until the next render may start (0: now)."""
        return max(0.0, self._next - self.clock())

    def rendered(self, started: float, seconds: float) -> None:
        self.render_s = seconds if not self.render_s else 0.8 * self.render_s + 0.2 * seconds
        self._next = started + self.interval()

    def engine_status(self, captured, dropped) -> None:
        """The engine's frame counters from a status report (running totals)."""
        if not isinstance(captured, int) or not isinstance(dropped, int):
            return
        last, self._counts = self._counts, (captured, dropped)
        if last is None:
            return
        new_frames, new_drops = captured - last[0], dropped - last[1]
        if new_drops > max(1.0, DROP_NOISE * new_frames):
            self.fps = max(MIN_FPS, min(self.max_fps, self.fps / 2))
        elif new_drops <= 0:
            self.fps = min(self.max_fps, self.fps + 1.0)


class _Refuse(asyncio.Protocol):
    """A connection past the cap: a bare 503 and close, before anything is read."""

    def __init__(self, text: bytes):
        self.text = text

    def connection_made(self, transport) -> None:
        transport.write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
                        b"Connection: close\r\nRetry-After: 10\r\nContent-Length: "
                        + str(len(self.text)).encode() + b"\r\n\r\n" + self.text)
        transport.close()


class _Counted(asyncio.Protocol):
    """aiohttp's request handler for one admitted connection, counted while it is open."""

    def __init__(self, gate: ConnectionGate):
        self.gate, self.inner = gate, None

    def connection_made(self, transport) -> None:
        gate = self.gate
        if gate.open >= gate.limit:
            gate.refuse()
            _Refuse(gate.refusal).connection_made(transport)
            return
        gate.open += 1
        self.inner = gate.factory()
        self.inner.connection_made(transport)

    def connection_lost(self, exc) -> None:
        if self.inner is not None:
            self.gate.open -= 1
            self.inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.inner is not None:
            self.inner.data_received(data)

    def eof_received(self):
        return self.inner.eof_received() if self.inner is not None else None

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()


class ConnectionGate:
    """The listening socket's protocol factory: aiohttp's handler for each connection while fewer
    than ``limit`` are open (counted on the event loop, so exact), a 503 and close past it."""

    def __init__(self, factory: Callable[[], asyncio.Protocol], limit: int, log: logging.Logger):
        self.factory, self.limit = factory, limit
        self.open = 0
        self.refused = 0
        self.refusal = f"the viewer has {limit} connections open, its most; try again later\n".encode()
        self._log = RateLimitedLog(logger=log)

    def __call__(self) -> asyncio.Protocol:
        return _Counted(self)

    def refuse(self) -> None:
        self.refused += 1
        self._log(logging.WARNING, "viewer refused a connection: %d open, its most (%d refused "
                  "so far)", self.limit, self.refused)


class QuietLog:
    """aiohttp's server logger and the event loop's error handler for the viewer: a malformed
    request or a failed accept() is one rate-limited line without a traceback (they come from
    outside and may come thousands a second); any other error keeps its traceback, rate-limited."""

    def __init__(self, log: logging.Logger):
        self.log = log
        self._requests = RateLimitedLog(logger=log)
        self._loop_errors = RateLimitedLog(logger=log)
        self._bugs = RateLimitedLog(logger=log)

    # -- the aiohttp side (RequestHandler's ``logger``) -------------------------------------------
    def debug(self, msg: str, *args, exc_info=None, **kwargs) -> None:
        if exc_info is not None and not isinstance(exc_info, bool):
            msg, args = msg + ": %s", (*args, _one_line(exc_info))
        self.log.debug(msg, *args, **kwargs)

    def exception(self, msg: str, *args, exc_info=None, **kwargs) -> None:
        from aiohttp.http_exceptions import HttpProcessingError

        if isinstance(exc_info, HttpProcessingError):  # aiohttp: "... from %s", remote
            self._requests(logging.WARNING, "viewer: malformed request from %s: %s",
                           args[0] if args else "?", _one_line(exc_info))
        else:
            self._bugs(logging.ERROR, "viewer: " + msg, *args, exc_info=exc_info or True)

    def __getattr__(self, name: str):  # warning, error, ...: the viewer's own logger
        return getattr(self.log, name)

    # -- the event loop's handler (loop.set_exception_handler) ---------------------------------
    def loop_error(self, loop, context: dict) -> None:
        exc = context.get("exception")
        if exc is None or isinstance(exc, OSError):
            self._loop_errors(logging.WARNING, "viewer: %s: %s", context.get("message", "error"),
                              _one_line(exc) if exc is not None else "-")
        else:
            self._bugs(logging.ERROR, "viewer: %s", context.get("message", "error"), exc_info=exc)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
