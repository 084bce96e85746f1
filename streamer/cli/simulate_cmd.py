"""streamer simulate: a fake scanner publishing simulated frames in wire format v1."""

from __future__ import annotations

import time

from streamer.cli.keys_cmd import add_server_key_arguments
from streamer.errors import UserError

HELP = "publish simulated scanner frames over ZMQ (a stand-in for a real scanner)"


def add_arguments(p) -> None:
    p.add_argument("--publish", default="tcp://127.0.0.1:5550", help="PUB endpoint to bind")
    p.add_argument("--fps", type=float, default=30.0, help="frame rate (default 30)")
    p.add_argument("--seed", type=int, default=0, help="scene seed")
    p.add_argument("--width", type=int, default=1920, help="screen width (default 1920)")
    p.add_argument("--height", type=int, default=1080, help="screen height (default 1080)")
    p.add_argument("--style", default="classic", choices=("classic", "heldout"),
                   help="the sweep's look (held-out: a look the shipped model never trained on)")
    p.add_argument("--frames", type=int, default=0, help="stop after N frames (default: never)")
    p.add_argument("--fmt", choices=("bgr", "jpeg", "png"), default="bgr", help="pixel format")
    p.add_argument("--topic", default="frames", help="topic (default frames)")
    p.add_argument("--allow-remote", action="store_true",
                   help="allow binding a non-loopback address (frames are patient data)")
    add_server_key_arguments(p)
    p.add_argument("--quiet", action="store_true", help="no progress lines")


def run(args) -> int:
    if args.fps <= 0 or args.frames < 0:
        raise UserError("--fps must be > 0 and --frames ≥ 0")
    from engines.simulator import LiveFeed
    from streamer.protocol import encode_frame
    from streamer.security import ServerKeys
    from streamer.sinks.zmq_sink import bind_publisher
    from streamer.sources.base import Pacer

    if bool(args.curve_secret) != bool(args.curve_clients):
        raise UserError("CurveZMQ needs both --curve-secret and --curve-clients")
    keys = ServerKeys(args.curve_secret, args.curve_clients) if args.curve_secret else None
    sock = bind_publisher(args.publish, allow_remote=args.allow_remote, hwm=4, keys=keys,
                          insecure=args.insecure)
    feed = LiveFeed(seed=args.seed, fps=args.fps, width=args.width, height=args.height,
                    style=args.style)
    pacer, topic = Pacer(args.fps), args.topic.encode()
    print(f"simulate: publishing {args.width}x{args.height} {args.fmt} at {args.fps:g} fps "
          f"on {args.publish} (topic {args.topic!r})", flush=True)
    seq, sent_bytes, start = 0, 0, time.monotonic()
    last_report = start
    try:
        while not args.frames or seq < args.frames:
            while not pacer.wait(0.5):
                pass
            parts = encode_frame(feed.next().image, seq, time.monotonic_ns(), fmt=args.fmt,
                                 topic=topic)
            sock.send_multipart(parts, copy=False)
            seq, sent_bytes = seq + 1, sent_bytes + len(parts[2])
            now = time.monotonic()
            if not args.quiet and now - last_report >= 1.0:
                print(f"simulate: {seq} frames, {seq / (now - start):.1f} fps, "
                      f"{sent_bytes / seq / 1e6:.2f} MB/frame", flush=True)
                last_report = now
    finally:
        sock.close(linger=0)
    print(f"simulate: published {seq} frames in {time.monotonic() - start:.1f} s", flush=True)
    return 0
