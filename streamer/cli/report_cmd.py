"""streamer report: a run's --record file (and its keyframes folder) as one self-contained HTML
page, and optionally a PDF of it (docs/report.md)."""

from __future__ import annotations

import shlex
from pathlib import Path

HELP = ("one self-contained HTML page (and a PDF) of a run's --record: scores over the exam, "
        "coverage, best frames, untrusted stretches, latency")


def add_arguments(p) -> None:
    p.add_argument("record", metavar="RECORD", help="the JSON lines of streamer run --record FILE")
    p.add_argument("--out", required=True, metavar="FILE", help="the HTML page to write")
    p.add_argument("--pdf", metavar="FILE", help="also print the page to this PDF (headless Chromium)")
    p.add_argument("--keyframes", metavar="DIR",
                   help="the keyframes folder of the run (DIR/<exam>/index.json): its best frames "
                        "shown with their overlays")
    p.add_argument("--exam", metavar="ID",
                   help="the exam in --keyframes DIR (default: the one of the record's stream)")
    p.add_argument("--stream", metavar="NAME",
                   help="only this stream (default: a section for each stream in the record)")
    p.add_argument("--config", metavar="FILE",
                   help="the run's TOML config: the thresholds drawn on the timeline (default: "
                        "the default threshold)")
    p.add_argument("--chromium", metavar="PATH",
                   help="the browser that prints --pdf (default: chromium on the PATH)")
    p.add_argument("--force", action="store_true", help="overwrite --out and --pdf if they exist")


def command_line(args) -> str:
    """The command as it would be typed again (the page's footer)."""
    words = ["streamer", "report", args.record]
    for flag in ("keyframes", "exam", "stream", "config", "out", "pdf", "chromium"):
        if getattr(args, flag) is not None:
            words += [f"--{flag}", getattr(args, flag)]
    return shlex.join(words + (["--force"] if args.force else []))


def thresholds(config: str | None, classes) -> tuple[dict[str, float], str]:
    from streamer.config import PostprocessConfig, load_config

    post = load_config(config).postprocess if config else PostprocessConfig()
    said = f"from {Path(config).name}" if config else f"{post.threshold:g}, the default; --config " \
        "FILE for the run's own"
    return {c: post.threshold_for(c) for c in classes}, said


def run(args) -> int:
    from engines.atomic import write_atomic
    from streamer.cli import CommandError
    from streamer.report.coverage import summarise
    from streamer.report.keyframes import choose_exams
    from streamer.report.output import check_outputs
    from streamer.report.page import render_page
    from streamer.report.pdf import find_chromium, print_pdf
    from streamer.report.records import read_record

    if args.exam is not None and not args.keyframes:
        raise CommandError("--exam needs --keyframes DIR")
    out, pdf = Path(args.out), Path(args.pdf) if args.pdf else None
    check_outputs(Path(args.record), {"--out": out, **({"--pdf": pdf} if pdf else {})}, args.force)
    browser = find_chromium(args.chromium) if pdf else None
    record = read_record(args.record, args.stream)
    spans = {n: (int(r.t_ns[0]), int(r.t_ns[-1])) for n, r in record.streams.items()}
    exams = choose_exams(args.keyframes, args.exam, spans) if args.keyframes else {}
    classes = {c for r in record.streams.values() for c in r.classes}
    limits, said = thresholds(args.config, classes)
    parts = [(rec, summarise(rec), exams.get(name)) for name, rec in record.streams.items()]
    html = render_page(record, parts, limits, said, command_line(args), _version())
    write_atomic(out, html.encode("utf-8"))
    frames = sum(r.frames for r in record.streams.values())
    print(f"report: {out} ({len(html.encode()) / 1024:.0f} kB; {len(parts)} stream(s), "
          f"{frames} results)", flush=True)
    if pdf is not None:
        pages = print_pdf(browser, out, pdf)
        print(f"pdf: {pdf} ({pages} page(s))", flush=True)
    return 0


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("sonostream")
    except metadata.PackageNotFoundError:
        return "unknown"
