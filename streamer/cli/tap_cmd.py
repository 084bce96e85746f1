"""streamer tap: print a running streamer's results live, one line per frame."""

from __future__ import annotations

import json
import sys

HELP = "print results from a running streamer (one line per frame)"


def add_arguments(p) -> None:
    p.add_argument("--connect", default="tcp://127.0.0.1:5556", help="the streamer's PUB endpoint")
    p.add_argument("--stream", default=None, help="only this stream (default: all)")
    p.add_argument("--count", type=int, default=0, help="stop after N results (default: never)")
    p.add_argument("--json", action="store_true", help="print each message as its JSON")
    p.add_argument("--status", action="store_true", help="also print status messages")
    p.add_argument("--timeout", type=float, default=None,
                   help="give up after this many seconds without a message (exit 1)")


def describe(msg) -> str:
    """``us0 #42  head 0.93 spine 0.81  ood 0.42  | 23.4 ms (inference 12.1)``; an unfamiliar
    frame reads ``UNFAMILIAR ood 1.00``."""
    present = " ".join(f"{n} {c.score:.2f}" for n, c in msg.classes.items() if c.present) or "-"
    lat = msg.latency_ms
    ood = msg.raw.get("ood")
    flag = "" if ood is None else (
        f"  {'UNFAMILIAR ' if msg.raw.get('familiar') is False else ''}ood {ood:.2f}")
    return (f"{msg.stream} #{msg.seq}  {present}{flag}  | {lat.get('capture_to_publish', 0):.1f} ms "
            f"(inference {lat.get('inference', 0):.1f})")


def run(args) -> int:
    from streamer.client import DetectionMessage, ResultSubscriber, StatusMessage

    if args.count < 0 or (args.timeout is not None and args.timeout <= 0):
        raise ValueError("--count must be ≥ 0 and --timeout > 0")
    topics = ("det", "status") if args.status else ("det",)
    seen = 0
    with ResultSubscriber(args.connect, stream=args.stream, topics=topics) as sub:
        for msg in sub.messages(idle_timeout=args.timeout):
            if isinstance(msg, StatusMessage):
                text = json.dumps(msg.status) if args.json else f"{msg.stream} status {msg.status}"
            else:
                text = json.dumps(msg.raw) if args.json else describe(msg)
            print(text, flush=True)
            if isinstance(msg, DetectionMessage):
                seen += 1
                if args.count and seen >= args.count:
                    return 0
    print(f"streamer tap: no message from {args.connect} for {args.timeout:g} s "
          f"({seen} results seen)", file=sys.stderr)
    return 1
