"""``streamer run``'s live outputs beyond ZMQ: the viewer page and the OpenIGTLink server (their
flags, and the sinks they open).

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
    p.add_argument("--igtl-port", type=int, metavar="N",
                   help="serve OpenIGTLink on 127.0.0.1:N for 3D Slicer / PLUS (18944 is the usual "
                        "port): devices SonostreamImage, SonostreamPoints, SonostreamSummary; "
                        "needs pyigtl (pip install 'sonostream[igtl]')")
    p.add_argument("--igtl-host", default="127.0.0.1", metavar="HOST",
                   help="address for OpenIGTLink (default 127.0.0.1; others need --allow-remote)")


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
    if getattr(args, "igtl_port", None) is not None:
        from streamer.sinks.igtl_sink import IgtlSink

        igtl = IgtlSink(port=args.igtl_port, host=args.igtl_host,
                        allow_remote=bool(getattr(args, "allow_remote", False)))
        stack.callback(igtl.close)
        sinks.append(igtl.open())
    return sinks
