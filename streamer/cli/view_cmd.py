"""streamer view: the live viewer page for a streamer running elsewhere, from its ZMQ topics.

The streamer must publish previews (``streamer run --preview``): each ``img.<stream>`` message
carries the downscaled frame and every class's map already on the frame's grid, so this side
needs no fan geometry; it pairs a preview with the ``det`` of the same seq and serves the same
page as ``streamer run --view-port`` (one server: streamer.sinks.viewer_sink).
"""

from __future__ import annotations

import base64
import collections
import logging
import time
from dataclasses import dataclass

from streamer.cli.keys_cmd import add_client_key_arguments
from streamer.protocol import DEFAULT_ENDPOINT

HELP = "watch a running streamer in the browser (it must publish previews: run --preview)"
SILENT_S = 3.0  # status comes every second: this long without a message, the streamer is gone
log = logging.getLogger(__name__)


def add_arguments(p) -> None:
    p.add_argument("--connect", default=DEFAULT_ENDPOINT,
                   help=f"the streamer's PUB endpoint (default {DEFAULT_ENDPOINT})")
    p.add_argument("--stream", default=None,
                   help="the stream to show (default: the first one heard)")
    p.add_argument("--port", type=int, default=8090, help="serve the page on this port "
                   "(default 8090; 0 picks a free one)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address for the page (default 127.0.0.1; others need --allow-remote "
                        "and, as the page is plaintext HTTP, --insecure)")
    p.add_argument("--allow-remote", action="store_true", help="allow a non-loopback --host")
    p.add_argument("--max-clients", type=int, default=8, metavar="N",
                   help="browsers served at once (default 8; another gets HTTP 503)")
    add_client_key_arguments(p)
    p.add_argument("--duration", type=float, metavar="SECONDS", help="stop after this long")


@dataclass(frozen=True)
class Seen:
    """A result and its preview (the same seq), as the viewer's encoder thread takes them."""

    det: object  # DetectionMessage
    img: object  # PreviewMessage

    @property
    def seq(self) -> int:
        return self.det.seq


def remote_message(det, img) -> tuple[dict, bytes]:
    """The page's message (the same fields as viewer_render.render) from a det and its preview."""
    import cv2
    import numpy as np

    from streamer.sinks.viewer_render import OVERLAY_ALPHA, PNG_PARAMS, class_colour, colour_rgb

    h, w = img.image.shape[:2]
    scale = img.scale
    index = {name: i for i, name in enumerate(img.classes)}
    classes = []
    for i, (name, c) in enumerate(det.classes.items()):
        colour = class_colour(name, i)
        entry = {"name": name, "score": round(float(c.score), 4), "present": bool(c.present),
                 "threshold": img.thresholds.get(name), "colour": colour, "peak": None, "box": None, "overlay": None}
        if c.present and c.peak is not None:
            entry["peak"] = [round(c.peak[0] * scale, 1), round(c.peak[1] * scale, 1)]
            entry["peak_src"] = list(c.peak)
        if c.present and c.box is not None:
            entry["box"] = [round(v * scale, 1) for v in c.box]
        if c.present and img.maps is not None and name in index:
            grid = cv2.resize(img.maps[index[name]], (w, h), interpolation=cv2.INTER_LINEAR)
            bgra = np.empty((h, w, 4), np.uint8)
            bgra[..., :3] = colour_rgb(colour)[::-1]
            bgra[..., 3] = (grid.astype(np.float32) * OVERLAY_ALPHA).astype(np.uint8)
            ok, png = cv2.imencode(".png", bgra, PNG_PARAMS)
            entry["overlay"] = base64.b64encode(png.tobytes()).decode("ascii") if ok else None
        classes.append(entry)
    message = {"stream": det.stream, "seq": int(det.seq), "width": w, "height": h,
               "source": [int(img.frame_shape[1]), int(img.frame_shape[0])],
               "jpeg": base64.b64encode(img.jpeg).decode("ascii"), "classes": classes,
               "latency_ms": det.latency_ms}
    return message, img.jpeg


def _remote_viewer_class():
    from streamer.sinks.viewer_sink import ViewerSink

    class RemoteViewer(ViewerSink):
        """The viewer sink fed with (det, preview) pairs instead of pipeline results."""

        kind = "view"

        def _publish(self, seen: Seen) -> None:
            self._latest = seen
            self._latency.append(seen.det.latency_ms.get("capture_to_publish", 0.0))
            self._wake.set()

        def _build(self, seen: Seen) -> tuple[dict, bytes]:
            return remote_message(seen.det, seen.img)

    return RemoteViewer


def run(args) -> int:
    from streamer.client import DetectionMessage, PreviewMessage, ResultSubscriber, StatusMessage
    from streamer.errors import user_input
    from streamer.security import check_remote

    with ResultSubscriber(args.connect, stream=args.stream, topics=("det", "img", "status"),
                          server_key=args.server_key, client_key=args.client_key,
                          insecure=args.insecure) as sub:  # --connect is checked before --host
        check_remote(f"tcp://{args.host}:{args.port}", encrypted=False, what="viewer (HTTP)",
                     allow_remote=args.allow_remote, insecure=args.insecure)
        with user_input("viewer (HTTP)", (ValueError, OSError)):
            viewer = _remote_viewer_class()(port=args.port, host=args.host,
                                            allow_remote=args.allow_remote,
                                            max_clients=args.max_clients).open()
        print(f"viewer on {viewer.url} (watching {args.connect})", flush=True)
        stream, dets = args.stream, collections.OrderedDict()
        deadline = time.monotonic() + args.duration if args.duration else None
        last_heard = last_preview = time.monotonic()
        warned_silent = warned_preview = False
        try:
            while deadline is None or time.monotonic() < deadline:
                msg = sub.recv(0.25)
                now = time.monotonic()
                if msg is None:
                    if now - last_heard > SILENT_S and not warned_silent:
                        warned_silent = True
                        log.warning("nothing from %s for %.0f s: is the streamer running?",
                                    args.connect, SILENT_S)
                    continue
                if stream is None:
                    stream = msg.stream
                    log.info("showing stream %s", stream)
                if msg.stream != stream:
                    continue
                last_heard, warned_silent = now, False
                if isinstance(msg, DetectionMessage):
                    dets[msg.seq] = msg
                    while len(dets) > 64:
                        dets.popitem(last=False)
                    if now - last_preview > SILENT_S and not warned_preview:
                        warned_preview = True
                        log.warning("%s publishes results but no preview: start the streamer "
                                    "with --preview", args.connect)
                elif isinstance(msg, PreviewMessage):
                    last_preview, warned_preview = now, False
                    det = dets.get(msg.seq)
                    if det is not None:
                        viewer.publish(Seen(det, msg))
                elif isinstance(msg, StatusMessage):
                    viewer.publish_status(msg.status)
        except KeyboardInterrupt:
            pass
        finally:
            viewer.close()
    return 0
