"""The ``streamer`` command: one module per subcommand, looked up in COMMANDS.

Exit status: 0 done (or a requested stop); 1 an internal error (with its traceback); 2 bad input
(one line: a flag, config, file, model, data set, a device that does not open); 3 the source
failed or ended early at run time (one line); 130 interrupted before the pipeline ran.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from streamer.errors import UserError

COMMANDS: dict[str, str] = {
    # name: module (each has HELP, add_arguments(parser) and run(args) -> int)
    "run": "streamer.cli.run_cmd",
    "bench": "streamer.cli.bench_cmd",
    "export": "streamer.cli.export_cmd",
    "build": "streamer.cli.build_cmd",
    "calibrate": "streamer.cli.calibrate_cmd",
    "train": "streamer.cli.train_cmd",
    "eval": "streamer.cli.eval_cmd",
    "simulate": "streamer.cli.simulate_cmd",
    "tap": "streamer.cli.tap_cmd",
    "view": "streamer.cli.view_cmd",
    "serve": "streamer.cli.serve_cmd",
    "keys": "streamer.cli.keys_cmd",
    "ood-fit": "streamer.cli.ood_cmd",
    "fit-screen": "streamer.cli.fit_screen_cmd",
    "adapt": "streamer.cli.adapt_cmd",
    "label": "streamer.cli.label_cmd",
    "report": "streamer.cli.report_cmd",
    "exam": "streamer.cli.exam_cmd",
}
EXIT_OK, EXIT_INTERNAL, EXIT_USAGE, EXIT_SOURCE = 0, 1, 2, 3


class CommandError(UserError):
    """Bad input to a command: printed as one line, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="streamer",
        description="Real-time detection and localisation of fetal anatomy in ultrasound video.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, path in COMMANDS.items():
        module = importlib.import_module(path)  # commands import their heavy libraries in run()
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(handler=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    from engines.backends.base import BackendError

    try:
        return int(args.handler(args) or 0)
    except (UserError, FileNotFoundError, BackendError) as exc:
        print(f"streamer {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except Exception:  # a bug: say so, with the traceback, and never look like bad input
        logging.getLogger("streamer").exception("internal error in streamer %s", args.command)
        return EXIT_INTERNAL


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 500 else text[:500] + "..."


if __name__ == "__main__":
    sys.exit(main())
