"""streamer tap: print a running streamer's results live, one line per frame."""

from __future__ import annotations

import json
import sys
import time

from streamer.cli import EXIT_SOURCE
from streamer.cli.keys_cmd import add_client_key_arguments
from streamer.errors import UserError
from streamer.protocol import DEFAULT_ENDPOINT

HELP = "print results from a running streamer (one line per frame)"
SILENT_S = 3.0  # status comes every second: this long without a message, the streamer is gone


def add_arguments(p) -> None:
    p.add_argument("--connect", default=DEFAULT_ENDPOINT,
                   help=f"the streamer's PUB endpoint (default {DEFAULT_ENDPOINT})")
    p.add_argument("--stream", default=None, help="only this stream (default: all)")
    p.add_argument("--count", type=int, default=0, help="stop after N results (default: never)")
    p.add_argument("--json", action="store_true", help="print each message as its JSON")
    p.add_argument("--status", action="store_true", help="also print status messages")
    add_client_key_arguments(p)
    p.add_argument("--timeout", type=float, default=None,
                   help="give up after this many seconds without a message (exit 3: the "
                        "streamer is not there)")


def _region(name: str, c) -> str:
    where = f" at ({c.peak[0]}, {c.peak[1]})" if c.peak else ""
    box = f" box ({', '.join(str(v) for v in c.box)})" if c.box else ""
    return f"{name} {c.score:.2f}{where}{box}"


def describe(msg) -> str:
    """``us0 #42  head 0.93 at (812, 430) box (700, 300, 900, 520)  ood 0.42  | 23.4 ms
    (inference 12.1)``; an unfamiliar frame reads ``UNFAMILIAR ood 1.00``, and a screen the
    engine could not read as live says so first: ``FROZEN``, ``DOPPLER``, ``FAN UNSETTLED``."""
    present = ", ".join(_region(n, c) for n, c in msg.classes.items() if c.present) or "-"
    lat = msg.latency_ms
    ood = msg.raw.get("ood")
    flag = "" if ood is None else (
        f"  {'UNFAMILIAR ' if msg.raw.get('familiar') is False else ''}ood {ood:.2f}")
    fan = msg.raw.get("fan") or {}
    marks = [word for word, on in (("FROZEN", msg.raw.get("frozen")),
                                   ("DOPPLER", msg.raw.get("doppler")),
                                   ("FAN UNSETTLED", fan.get("settled") is False)) if on]
    present = "  ".join([*marks, present])
    return (f"{msg.stream} #{msg.seq}  {present}{flag}  | {lat.get('capture_to_publish', 0):.1f} ms "
            f"(inference {lat.get('inference', 0):.1f})")


def _ms(v) -> str:
    return "-" if v is None else f"{v:.1f}"


def describe_status(msg) -> str:
    """``us0 status: running, 29.8 fps, latency p50 7.1 ms p99 40.2 ms, processed 300 ...``."""
    s, lat = msg.status, msg.status.get("latency_ms") or {}
    src, backend = s.get("source") or {}, s.get("backend") or {}
    text = (f"{msg.stream} status: {s.get('state', '?')}, {s.get('fps', 0):.1f} fps, latency p50 "
            f"{_ms(lat.get('p50'))} ms p99 {_ms(lat.get('p99'))} ms, processed "
            f"{s.get('processed', 0)} dropped {s.get('dropped', 0)} invalid {s.get('invalid', 0)}, "
            f"source {src.get('kind', '?')} {src.get('state', '?')}")
    if src.get("error"):
        text += f" ({src['error']})"
    if backend:
        text += f", {backend.get('backend', '?')} {backend.get('precision', '')}".rstrip()
    return text


def run(args) -> int:
    from streamer.client import DetectionMessage, ResultSubscriber, StatusMessage

    if args.count < 0 or (args.timeout is not None and args.timeout <= 0):
        raise UserError("--count must be ≥ 0 and --timeout > 0")
    seen, last, quiet_said = 0, time.monotonic(), False
    with ResultSubscriber(args.connect, stream=args.stream, topics=("det", "status"),
                          server_key=args.server_key, client_key=args.client_key,
                          insecure=args.insecure) as sub:
        while True:
            msg = sub.recv(timeout=0.25)
            quiet = time.monotonic() - last
            if msg is None:
                if args.timeout is not None and quiet >= args.timeout:
                    break
                if not quiet_said and quiet >= SILENT_S:
                    quiet_said = True
                    print(f"streamer tap: nothing from {args.connect} for {quiet:.0f} s: "
                          + ("the streamer stopped or went away; waiting for it" if seen else
                             "is a streamer running there? waiting"), file=sys.stderr, flush=True)
                continue
            if quiet_said:
                print(f"streamer tap: {args.connect} is back", file=sys.stderr, flush=True)
            last, quiet_said = time.monotonic(), False
            if isinstance(msg, StatusMessage):
                if msg.status.get("state") == "stopped":
                    print(f"streamer tap: stream {msg.stream} stopped; waiting for it",
                          file=sys.stderr, flush=True)
                if not args.status:
                    continue
                text = json.dumps(msg.status) if args.json else describe_status(msg)
            else:
                text = json.dumps(msg.raw) if args.json else describe(msg)
            print(text, flush=True)
            if isinstance(msg, DetectionMessage):
                seen += 1
                if args.count and seen >= args.count:
                    return 0
    print(f"streamer tap: error: no message from {args.connect} for {args.timeout:g} s "
          f"({seen} results seen): " + ("the streamer stopped or went away" if seen else
                                         "is a streamer running there?"), file=sys.stderr)
    return EXIT_SOURCE
