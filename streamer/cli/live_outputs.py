"""``streamer run``'s live outputs beyond ZMQ: the viewer page, the OpenIGTLink server and the
exam's keyframes (their flags, and the sinks they ask for).

Kept apart from run_cmd so that `streamer run` without them imports none of their libraries.
"""

from __future__ import annotations


def add_arguments(p) -> None:
    p.add_argument("--view-port", type=int, metavar="N",
                   help="serve a live viewer page on http://127.0.0.1:N/ (frame, heat maps, "
                        "scores, latency); needs aiohttp (pip install 'sonostream[viewer]')")
    p.add_argument("--view-host", default="127.0.0.1", metavar="HOST",
                   help="address for the viewer (default 127.0.0.1; others need --allow-remote)")
    p.add_argument("--view-clients", type=int, default=8, metavar="N",
                   help="browsers the viewer serves at once (default 8; another gets HTTP 503)")
    p.add_argument("--igtl-port", type=int, metavar="N",
                   help="serve OpenIGTLink on 127.0.0.1:N for 3D Slicer / PLUS (18944 is the usual "
                        "port): devices SonostreamImage, SonostreamPoints, SonostreamSummary; "
                        "needs pyigtl (pip install 'sonostream[igtl]')")
    p.add_argument("--igtl-host", default="127.0.0.1", metavar="HOST",
                   help="address for OpenIGTLink (default 127.0.0.1; others need --allow-remote)")
    p.add_argument("--keyframes", metavar="DIR",
                   help="keep each region's best frames under DIR/<exam>/ while it runs: the fan "
                        "crop and an overlay (PNG) and index.json (docs/exam-summary.md)")
    p.add_argument("--keyframes-k", type=int, metavar="N",
                   help="frames kept per region with --keyframes (default 3)")
    p.add_argument("--keyframes-dicom", action="store_true",
                   help="with --keyframes and a dicom: source, also each kept frame as a DICOM "
                        "Secondary Capture in the source's study (needs pydicom)")
    p.add_argument("--exam", metavar="ID",
                   help="the exam's id: its folder under --keyframes (default: the start time, UTC)")


def sink_requests(args, config) -> list[tuple[str, dict]]:
    """(sink kind, options) for the live outputs the flags ask for; run opens them with its other
    sinks. Both are plaintext: off loopback they need --allow-remote and --insecure."""
    from streamer.security import check_remote

    allow_remote = bool(getattr(args, "allow_remote", False))
    requests = []
    if getattr(args, "view_port", None) is not None:
        requests.append(("view", "viewer (HTTP)", args.view_host, args.view_port,
                         {"threshold_for": config.postprocess.threshold_for,
                          "max_clients": getattr(args, "view_clients", 8)}))
    if getattr(args, "igtl_port", None) is not None:
        requests.append(("igtl", "OpenIGTLink", args.igtl_host, args.igtl_port, {}))
    for _, what, host, port, _ in requests:
        check_remote(f"tcp://{host}:{port}", encrypted=False, what=what, allow_remote=allow_remote,
                     insecure=bool(getattr(args, "insecure", False)))
    sinks = [(kind, {"port": port, "host": host, "allow_remote": allow_remote, **extra})
             for kind, _, host, port, extra in requests]
    from streamer.sinks.keyframes_sink import keyframes_request

    keyframes = keyframes_request(args, config)
    return sinks + ([keyframes] if keyframes else [])
