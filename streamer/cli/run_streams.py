"""``streamer run`` with several streams: the repeated --source/--stream flags, one source per
stream, and the status line, summary and exit status over all of them."""

from __future__ import annotations

import sys

from streamer.cli import EXIT_INTERNAL, EXIT_OK, EXIT_SOURCE, CommandError
from streamer.errors import UserError


def stream_overrides(sources: list[str] | None, names: list[str] | None, configured: dict) -> dict:
    """The ``[source]`` and ``[publish]`` values that --source and --stream (each repeatable) ask
    for; several sources need one distinct --stream NAME each, in the same order. Given flags
    replace the config's ``[source] streams``."""
    from streamer.protocol import check_stream_name

    sources, names = list(sources or ()), list(names or ())
    if len(sources) > 1 or len(names) > 1:
        if len(names) != len(sources):
            raise CommandError(f"{len(sources)} --source but {len(names)} --stream: with several "
                               "sources give each its --stream NAME, in the same order")
        twice = next((n for i, n in enumerate(names) if n in names[:i]), None)
        if twice is not None:
            raise CommandError(f"--stream {twice} is given twice: stream names must be distinct")
        for name in names:
            try:
                check_stream_name(name)
            except UserError as exc:
                raise CommandError(f"--stream: {exc}") from None
        return {"source": {"streams": dict(zip(names, sources, strict=True))}, "publish": {}}
    if configured and names and not sources:
        raise CommandError(f"--stream alone cannot name the config's {len(configured)} streams "
                           "([source] streams); give --source SPEC --stream NAME for each")
    source = {"spec": sources[0] if sources else None}
    if sources and configured:
        source["streams"] = {}  # the flag's one source replaces the config's streams
    return {"source": source, "publish": {"stream": names[0] if names else None}}


def create_sources(config) -> dict:
    """Stream name → its source, validated, not opened; a bad spec is one line naming its stream."""
    from streamer.sources import create_source

    specs = config.stream_specs()
    sources = {}
    for name, spec in specs.items():
        try:
            sources[name] = create_source(spec)
        except (UserError, ValueError, FileNotFoundError) as exc:
            if len(specs) == 1:
                raise
            raise CommandError(f"stream {name}: {exc}") from None
    return sources


def model_threads(config, streams: int) -> int:
    """ONNX Runtime's intra-op threads: as configured; unset (0), one for several streams on a
    CPU, where two inference workers each run a call of their own (``[pipeline]
    inference_workers``), instead of two calls sharing two threads."""
    m, workers = config.model, config.pipeline.inference_workers
    if m.threads or streams < 2 or m.backend != "onnxruntime" or m.device != "cpu":
        return m.threads
    return 1 if workers != 1 else 0


def _fmt(ms) -> str:
    return "-" if ms is None else f"{ms:.1f}"


def streams_line(statuses: dict[str, dict]) -> str:
    """One status line for several streams: their frames/s, the worst recent p99, the counts
    summed, and how many sources are up."""
    rows = list(statuses.values())
    p99s = [s["latency_ms"]["p99"] for s in rows if s["latency_ms"]["p99"] is not None]
    up = sum(s["source"]["state"] == "up" for s in rows)
    total = {k: sum(s[k] for s in rows) for k in ("processed", "dropped", "invalid")}
    return (f"{len(rows)} streams {sum(s['fps'] for s in rows):6.1f} fps | worst p99 "
            f"{_fmt(max(p99s) if p99s else None)} ms | processed {total['processed']} dropped "
            f"{total['dropped']} invalid {total['invalid']} | sources up {up}/{len(rows)}")


def streams_summary(pipeline) -> str:
    """A line per stream at exit: its counts and capture→publish p50/p99."""
    lines = []
    for name, lane in pipeline.streams.items():
        c = lane.accounting.snapshot()
        e2e = lane.latency.summary_ms().get("capture_to_publish", {})
        lines.append(f"stream {name}: captured {c['captured']}, processed {c['processed']}, "
                     f"dropped {c['dropped']}, invalid {c['invalid']}; capture→publish p50 "
                     f"{_fmt(e2e.get('p50'))} ms p99 {_fmt(e2e.get('p99'))} ms; source "
                     f"{lane.reader.state.state}")
    return "\n".join(lines)


def exit_status_of(states: dict) -> int:
    """0 when every stream stopped as asked or ended as expected; else one line per stream that
    did not and the worst status: 1 (a bug stopped a source) over 3 (a source ended early)."""
    status = EXIT_OK
    several = len(states) > 1
    for name, state in states.items():
        where = f" (stream {name})" if several else ""
        if state.state == "incomplete":
            print(f"streamer run: error: source ended early{where}: {state.error}", file=sys.stderr)
            status = status or EXIT_SOURCE
        elif state.state == "failed":
            print(f"streamer run: internal error: the source failed{where}: {state.error}",
                  file=sys.stderr)
            status = EXIT_INTERNAL
    return status
