"""``streamer run``'s live outputs beyond ZMQ: the viewer page (and their flags), opened as sinks.

Kept apart from run_cmd so that `streamer run` without them imports none of their libraries.
"""

from __future__ import annotations

import contextlib
import logging

log = logging.getLogger(__name__)


def add_arguments(p) -> None:
    p.add_argument("--view-port", type=int, metavar="N",
                   help="serve a live viewer page on http://127.0.0.1:N/ (frame, heat maps, "
                        "scores, latency); needs aiohttp (pip install 'sonostream[viewer]')")
    p.add_argument("--view-host", default="127.0.0.1", metavar="HOST",
                   help="address for the viewer (default 127.0.0.1; others need --allow-remote)")


def open_sinks(args, config, stack: contextlib.ExitStack) -> list:
    """The opened live-output sinks the flags ask for (closed by ``stack``)."""
    sinks = []
    if getattr(args, "view_port", None) is not None:
        from streamer.sinks.viewer_sink import ViewerSink

        viewer = ViewerSink(port=args.view_port, host=args.view_host,
                            allow_remote=bool(getattr(args, "allow_remote", False)),
                            threshold_for=config.postprocess.threshold_for)
        stack.callback(viewer.close)
        sinks.append(viewer.open())
        log.info("live viewer: %s", viewer.url)
    return sinks
