"""The labelling page's HTTP server: the viewer's stack (aiohttp on its own event-loop thread),
loopback unless allowed. Frames are JPEGs decoded on request; a JSON API answers for state,
labels, scores and edits. Every request is checked: an unknown loop, frame, class or op is a 400
with one line, never a traceback.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import threading
from importlib import resources

from streamer.errors import UserError
from streamer.labeling.labeler import Labeler
from streamer.ratelimit import RateLimitedLog
from streamer.security import is_local_host
from streamer.sinks.viewer_sink import _web

log = logging.getLogger(__name__)
MAX_BODY = 4096  # an edit is a few dozen bytes of JSON
STATIC = {"/": ("page.html", "text/html"), "/page.js": ("page.js", "text/javascript")}


def _int(request, name: str) -> int:
    text = request.query.get(name)
    if text is None:
        raise UserError(f"missing ?{name}=")
    try:
        return int(text)
    except ValueError:
        raise UserError(f"{name} must be an integer, got {text[:20]!r}") from None


class LabelServer:
    def __init__(self, labeler: Labeler, port: int = 8095, host: str = "127.0.0.1",
                 allow_remote: bool = False):
        if not 0 <= port <= 65535:
            raise UserError(f"port must be in 0..65535, got {port}")
        if not allow_remote and not is_local_host(host):
            raise UserError(f"refusing to serve the labelling page on {host}: not a loopback "
                            "address and frames are patient data; allow it explicitly "
                            "(--allow-remote)")
        self.labeler, self.port, self.host = labeler, port, host
        self.url = ""
        self.refused = 0  # requests answered 400
        self._warn = RateLimitedLog(5.0, log)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner = None
        self._thread: threading.Thread | None = None

    # -- start and stop -------------------------------------------------------------------------
    def open(self) -> LabelServer:
        web = _web()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="label-http",
                                        daemon=True)
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._start(web), self._loop).result(timeout=10)
        except BaseException:
            self._stop_loop()
            raise
        return self

    async def _start(self, web) -> None:
        app = web.Application(client_max_size=MAX_BODY, middlewares=[self._one_line_errors])
        for path in STATIC:
            app.router.add_get(path, self._static)
        app.router.add_get("/api/state", self._state)
        app.router.add_get("/api/labels", self._labels)
        app.router.add_get("/api/scores", self._scores)
        app.router.add_get("/frame.jpg", self._frame)
        app.router.add_post("/api/edit", self._edit)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None,
                                     shutdown_timeout=1.0)
        await self._runner.setup()
        try:
            await web.TCPSite(self._runner, self.host, self.port, reuse_address=True).start()
        except OSError as exc:
            await self._runner.cleanup()
            if exc.errno == errno.EADDRINUSE:
                raise UserError(f"port {self.port} on {self.host} is in use (--port)") from None
            raise UserError(f"cannot serve on {self.host}:{self.port}: {exc}") from None
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{'[' + host + ']' if ':' in host else host}:{port}/"

    def close(self) -> None:
        if self._loop is not None and self._runner is not None:
            try:
                asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(5)
            except Exception as exc:  # noqa: BLE001 - closing: say so and go on
                log.warning("labelling page did not shut down cleanly: %s", exc)
        self._stop_loop()

    def _stop_loop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            if self._thread is not None:
                self._thread.join(5)
            self._loop.close()
            self._loop = None

    def __enter__(self) -> LabelServer:
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    # -- requests -------------------------------------------------------------------------------
    @property
    def _one_line_errors(self):
        web = _web()

        @web.middleware
        async def middleware(request, handler):
            try:
                return await handler(request)
            except (UserError, ValueError) as exc:
                self.refused += 1
                text = " ".join(str(exc).split())[:300]
                self._warn(logging.INFO, "refused %s %s: %s", request.method, request.path, text)
                return web.Response(status=400, text=text + "\n")
        return middleware

    async def _static(self, request):
        name, kind = STATIC[request.path]
        text = resources.files("streamer.labeling").joinpath(name).read_text("utf-8")
        return _web().Response(text=text, content_type=kind, headers={"Cache-Control": "no-cache"})

    async def _state(self, request):
        return _web().json_response(self.labeler.state())

    async def _labels(self, request):
        return _web().json_response(self.labeler.labels(_int(request, "loop")))

    async def _scores(self, request):
        start = _int(request, "from") if "from" in request.query else 0
        return _web().json_response(self.labeler.scores(_int(request, "loop"), start))

    async def _frame(self, request):
        loop, frame = _int(request, "loop"), _int(request, "frame")
        self.labeler.loop_name(loop)
        self.labeler.check_frame(loop, frame)
        try:
            data = await asyncio.get_running_loop().run_in_executor(
                None, self.labeler.frames.jpeg, loop, frame)
        except Exception as exc:  # noqa: BLE001 - a frame that does not decode, said in one line
            if isinstance(exc, UserError):
                raise
            raise UserError(f"{self.labeler.loop_name(loop)} frame {frame} does not decode: "
                            f"{type(exc).__name__}: {exc}") from None
        return _web().Response(body=data, content_type="image/jpeg",
                               headers={"Cache-Control": "private, max-age=3600"})

    async def _edit(self, request):
        try:
            body = json.loads(await request.text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise UserError("an edit is a JSON object: {op, loop, frame, class}") from None
        if not isinstance(body, dict):
            raise UserError("an edit is a JSON object: {op, loop, frame, class}")
        values = {}
        for key in ("loop", "frame", "class"):
            v = body.get(key)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool)):
                raise UserError(f"{key} must be an integer, got {json.dumps(v)[:20]}")
            values[key] = v
        if values["loop"] is None:
            raise UserError("an edit needs loop")
        return _web().json_response(self.labeler.edit(str(body.get("op")), values["loop"],
                                                      values["frame"], values["class"]))
