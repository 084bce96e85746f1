"""streamer label: a browser page to label recorded loops with the regions in view, over frame
ranges, written to the data set's own labels.csv after every change (docs/labeling.md)."""

from __future__ import annotations

import logging
import threading

HELP = "label recorded loops in the browser: regions in view over frame ranges, into labels.csv"
log = logging.getLogger(__name__)


def add_arguments(p) -> None:
    p.add_argument("data", metavar="DATA",
                   help="dicom:DIR, video:DIR (.mp4/.avi/.mkv/.mov), a .dcm or video file (labels "
                        "in its folder's labels.csv), or fetalnav:DIR (read-only)")
    p.add_argument("--model", help="model whose classes are labelled and whose scores are "
                                   "suggested (default: the bundled model)")
    p.add_argument("--port", type=int, default=8095, help="serve the page on this port "
                                                          "(default 8095; 0 picks a free one)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address for the page (default 127.0.0.1; others need --allow-remote "
                        "and, as the page is plaintext HTTP, --insecure)")
    p.add_argument("--allow-remote", action="store_true", help="allow a non-loopback --host")
    p.add_argument("--insecure", action="store_true",
                   help="serve frames (patient data) over plaintext HTTP to a non-loopback --host")
    p.add_argument("--duration", type=float, metavar="SECONDS", help="stop after this long")


def run(args) -> int:
    from streamer.labeling.labeler import open_labeler
    from streamer.labeling.server import LabelServer
    from streamer.security import check_remote

    check_remote(f"tcp://{args.host}:{args.port}", encrypted=False, what="labelling page (HTTP)",
                 allow_remote=args.allow_remote, insecure=args.insecure)
    labeler = open_labeler(args.data, args.model)
    try:
        with LabelServer(labeler, args.port, args.host, args.allow_remote) as server:
            labeler.start()
            frames = sum(lp.frames for lp in labeler.data.loops)
            print(f"labelling on {server.url} ({len(labeler.data.loops)} loop(s), {frames} frames)",
                  flush=True)
            if labeler.session.readonly:
                print(f"note: {labeler.session.readonly}", flush=True)
            else:
                print(f"labels: {labeler.file.path} (written after every change)", flush=True)
            try:
                threading.Event().wait(args.duration)
            except KeyboardInterrupt:
                pass
    finally:
        labeler.close()
    return 0
