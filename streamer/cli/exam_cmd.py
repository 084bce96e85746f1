"""streamer exam: start a new exam on a running streamer (its --control socket)."""

from __future__ import annotations

from streamer.errors import UserError

HELP = "start a new exam on a running streamer (streamer run --control ENDPOINT)"
DEFAULT_CONTROL = "tcp://127.0.0.1:5557"


def add_arguments(p) -> None:
    p.add_argument("exam", nargs="?", metavar="ID",
                   help="the new exam's id (default: its start time, UTC)")
    p.add_argument("--control", default=DEFAULT_CONTROL, metavar="ENDPOINT",
                   help=f"the streamer's control socket (default {DEFAULT_CONTROL})")
    p.add_argument("--stream", metavar="NAME", help="only this stream (default: every stream)")
    p.add_argument("--timeout", type=float, default=5.0, metavar="SECONDS",
                   help="give up after this long without an answer (default 5)")


def run(args) -> int:
    from streamer.control import request_new_exam

    reply = request_new_exam(args.control, args.exam, args.stream, args.timeout)
    if not reply.get("ok"):
        raise UserError(f"the streamer refused: {reply.get('error', 'no reason given')}")
    for stream, exam in reply["exams"].items():
        print(f"stream {stream}: new exam {exam}")
    return 0
