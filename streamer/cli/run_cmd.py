"""streamer run: a source through the model to ZMQ results and Prometheus metrics."""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import threading
import time
from pathlib import Path

from engines.backends import REGISTRY
from engines.model_info import REPRESENTATIONS
from streamer.cli import EXIT_OK, CommandError, inputs, live_outputs
from streamer.cli.keys_cmd import add_server_key_arguments
from streamer.cli.run_streams import (
    create_sources,
    exit_status_of,
    model_threads,
    stream_overrides,
    streams_line,
    streams_summary,
)
from streamer.protocol import DEFAULT_ENDPOINT

HELP = "run the live pipeline: source → fan crop → model → results on ZMQ, metrics over HTTP"
EXIT_RECORD = 4  # every frame ran, but results were lost on their way into the --record file


def add_arguments(p) -> None:
    p.add_argument("--source", action="append", metavar="SPEC",
                   help="sim[:key=value,...], a video file, capture:<N>, zmq:<endpoint> or "
                        "dicom:<file or folder> (default: sim); repeat it, each with its --stream "
                        "NAME, for several streams through one model (docs/many-streams.md)")
    p.add_argument("--model", help="model file, or a folder streamer adapt wrote (default: the bundled model)")
    p.add_argument("--backend", choices=sorted(REGISTRY),
                   help="inference backend (default onnxruntime; torch runs a PyTorch checkpoint "
                        "as it is)")
    p.add_argument("--device", help="cpu or cuda[:N] (default: cpu)")
    p.add_argument("--server", metavar="URL", help="with --backend remote: the v2 inference "
                   "server (no local model file), grpcs://HOST:PORT (TLS) or grpc://HOST:PORT "
                   "(plaintext: loopback, or with --insecure)")
    p.add_argument("--remote-model", metavar="NAME", help="the model's name on --server "
                                                          "(default: sonostream)")
    p.add_argument("--tls-ca", metavar="FILE", help="grpcs:// --server: the CA (PEM) that signed "
                   "its certificate (default: the system's roots)")
    p.add_argument("--tls-cert", metavar="FILE", help="mutual TLS: this client's certificate (PEM)")
    p.add_argument("--tls-key", metavar="FILE", help="mutual TLS: its private key (PEM)")
    p.add_argument("--publish", metavar="ENDPOINT", help=f"ZMQ PUB endpoint (default {DEFAULT_ENDPOINT})")
    p.add_argument("--allow-remote", action="store_true", help="allow a non-loopback publish endpoint "
                   "(needs CurveZMQ keys: --curve-secret/--curve-clients, or --insecure)")
    add_server_key_arguments(p)
    p.add_argument("--metrics-port", type=int, metavar="N", help="Prometheus port on 127.0.0.1 "
                                                                 "(default 9108; 0 disables)")
    p.add_argument("--duration", type=float, metavar="SECONDS", help="stop after this long")
    p.add_argument("--max-frames", type=int, metavar="N", help="stop after N processed frames")
    p.add_argument("--config", metavar="FILE", help="TOML config (flags override it)")
    p.add_argument("--stream", action="append", metavar="NAME",
                   help="stream name used in topics and metrics (default: main); with several "
                        "--source, one distinct name each, in the same order")
    p.add_argument("--no-maps", action="store_true", help="do not publish class maps")
    p.add_argument("--preview", action="store_true",
                   help="also publish a downscaled frame with its maps on img.<stream> (for "
                        "streamer view --connect; off by default: frames are patient data)")
    p.add_argument("--representation", choices=("model", *REPRESENTATIONS),
                   help="what the model is fed: the fan crop (sector), the sector resampled to "
                        "beam space (polar), or as the model was trained (model, the default); "
                        "peaks and boxes always come out in source pixels"),
    p.add_argument("--record", metavar="FILE", help="also append every result to FILE (JSON lines); "
                   "a result that cannot be written (FILE not keeping up, a full disk) is counted "
                   "and the run exits 4")
    p.add_argument("--control", metavar="ENDPOINT",
                   help="listen for control requests on this loopback endpoint, e.g. "
                        "tcp://127.0.0.1:5557 (streamer exam: start a new exam while running)")
    p.add_argument("--record-strict", action="store_true",
                   help="stop the run at the first result --record cannot write (exit 4)")
    live_outputs.add_arguments(p)


def config_from_args(args):
    from streamer.config import Config, load_config, override

    base = load_config(args.config) if args.config else Config()
    streams = stream_overrides(args.source, args.stream, base.source.streams)
    return override(
        base,
        source=streams["source"],
        model={"path": args.model, "backend": args.backend, "device": args.device,
               "server": args.server, "remote_model": args.remote_model,
               "tls_ca": args.tls_ca, "tls_cert": args.tls_cert, "tls_key": args.tls_key},
        publish={"endpoint": args.publish, "allow_remote": True if args.allow_remote else None,
                 **streams["publish"], "record": args.record, "curve_secret": args.curve_secret,
                 "curve_clients": args.curve_clients, "insecure": True if args.insecure else None,
                 "preview": True if args.preview else None,
                 "exam": getattr(args, "exam", None), "control": args.control},
        metrics={"port": args.metrics_port},
        pipeline={"duration_s": args.duration, "max_frames": args.max_frames},
        postprocess={"maps": False if args.no_maps else None},
        preprocess={"representation": args.representation},
    )


def _model_path(config) -> Path | str:

    if config.model.backend == "remote":  # the model lives on an inference server
        from engines.backends.remote_target import remote_target, require_client

        target = remote_target(config.model.server, config.model.remote_model)
        require_client()  # a missing extra is one line naming it, not "cannot load model"
        return target

    path = inputs.model_file(config.model.path)
    if not path.is_file():
        raise CommandError(f"model file not found: {path}")
    return path


@contextlib.contextmanager
def _signals(stop):
    """SIGINT/SIGTERM ask the pipeline to stop (only the main thread may install handlers)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, lambda *_: stop()) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _sink_requests(config) -> list[tuple[str, dict]]:
    """(sink kind in the sink registry, its options) for each sink the config asks for."""
    p = config.publish
    requests = []
    if p.endpoint:
        requests.append(("zmq", dict(endpoint=p.endpoint, maps=config.postprocess.maps,
                                     allow_remote=p.allow_remote, curve_secret=p.curve_secret,
                                     curve_clients=p.curve_clients, insecure=p.insecure,
                                     preview=p.preview,
                                     threshold_for=config.postprocess.threshold_for)))
    if p.record:
        requests.append(("record", dict(path=p.record)))
    return requests


def open_sinks(requests: list[tuple[str, dict]], stack: contextlib.ExitStack) -> list:
    """Each (kind, options) built through the sink registry and opened (closed by ``stack``); a
    bad option, a missing library or a busy port is one line."""
    from streamer.errors import user_input
    from streamer.sinks import sink_class

    sinks = []
    for kind, options in requests:
        with user_input(f"{kind} sink", (ValueError, OSError)):
            sink = sink_class(kind)(**options)
            stack.callback(sink.close)
            sinks.append(sink.open())
    return sinks


def _open_parts(config, stack: contextlib.ExitStack):
    """Sources by stream (validated, unopened), opened backend and sinks, metrics (one registry
    for every stream) and the URL they are served on (None: not served)."""
    from engines.backends import BackendOptions, create_backend
    from streamer.errors import user_input
    from streamer.metrics import MetricsServer, PipelineMetrics
    from streamer.security import check_remote

    sources = create_sources(config)
    m = config.model
    path = _model_path(config)
    remote = (dict(tls_ca=m.tls_ca, tls_cert=m.tls_cert, tls_key=m.tls_key,
                   insecure=config.publish.insecure) if m.backend == "remote" else {})
    with user_input(f"cannot load model {path}", subject=path):
        options = BackendOptions(device=m.device, precision=m.precision, spin=m.spin,
                                 threads=model_threads(config, len(sources)))
        backend = create_backend(m.backend, path, options,
                                 **remote)
        stack.callback(backend.close)
        backend.open()
    config.postprocess.check_classes(backend.info.classes, str(path))
    sinks = open_sinks(_sink_requests(config), stack)
    metrics, url = PipelineMetrics(next(iter(sources))), None
    if config.metrics.port:
        check_remote(f"tcp://{config.metrics.host}:{config.metrics.port}", encrypted=False,
                     insecure=config.publish.insecure, what="metrics (HTTP)",
                     allow_remote=config.publish.allow_remote)
        with user_input("metrics", (ValueError, OSError)):
            server = MetricsServer(metrics.registry, config.metrics.port, config.metrics.host).start()
        stack.callback(server.stop)
        host = config.metrics.host
        url = f"http://{f'[{host}]' if ':' in host else host}:{server.port}/metrics"
    return sources, backend, sinks, metrics, url


def check_roi(config, source) -> None:
    """A configured roi must fit the frames of a source that knows their size before the first
    (sim; DICOM, once its files are checked): opened here for it, the pipeline finds it open.
    Other sources' frames are checked as they come (a frame it does not fit is counted invalid)."""
    if config.preprocess.roi is None:
        return
    source.open()
    try:
        config.preprocess.check_frame(getattr(source, "frame_size", None))
    except ValueError:
        source.close()
        raise


def where(sinks, metrics_url: str | None) -> list[str]:
    """Where a run's outputs are, one line each, with the addresses actually bound (as
    scripts/demo prints them)."""
    lines = []
    for sink in sinks:
        if sink.kind == "zmq":
            tap = "" if sink.endpoint == DEFAULT_ENDPOINT else f" --connect {sink.endpoint}"
            lines.append(f"results  {sink.endpoint}   (another terminal: streamer tap{tap})")
    if metrics_url:
        lines.append(f"metrics  {metrics_url}")
    return (lines + [f"viewer   {sink.url}" for sink in sinks if sink.kind == "view"]
            + [f"keyframes {sink.folder}" for sink in sinks if sink.kind == "keyframes"])


def _fmt(ms) -> str:
    return "-" if ms is None else f"{ms:.1f}"


def status_line(status: dict) -> str:
    lat = status["latency_ms"]
    return (f"{status['fps']:5.1f} fps | latency p50 {_fmt(lat['p50'])} ms p99 {_fmt(lat['p99'])} ms | "
            f"processed {status['processed']} dropped {status['dropped']} invalid {status['invalid']} | "
            f"source {status['source']['state']}")


def summary(counts: dict, latency: dict, seconds: float, gaps: int = 0) -> str:
    lines = [f"frames: captured {counts['captured']}, processed {counts['processed']}, "
             f"dropped {counts['dropped']}, invalid {counts['invalid']} in {seconds:.1f} s"]
    if gaps:
        lines.append(f"        {gaps} of the dropped never arrived (holes in the sender's seq)")
    lines.append(f"{'latency ms':<20}{'p50':>9}{'p90':>9}{'p99':>9}{'max':>9}")
    for stage, row in latency.items():
        lines.append(f"{stage:<20}" + "".join(f"{row[k]:9.2f}" for k in ("p50", "p90", "p99", "max")))
    return "\n".join(lines)


class _ClearStatusLine(logging.Filter):
    """Before a log record is written, blank the in-place status line (``\r``) on the terminal."""

    def filter(self, record) -> bool:
        print("\r" + " " * 100 + "\r", end="", file=sys.stderr, flush=True)
        return True


def _watch_records(sinks, metrics, pipeline, strict: bool) -> list:
    """The record sinks, their lost results counted in the metrics; strict: the first loss stops
    the run."""
    def lost(reason: str, n: int) -> None:
        metrics.count_record_lost(reason, n)
        if strict:
            pipeline.stop()

    records = [sink for sink in sinks if sink.kind == "record"]
    for sink in records:
        sink.on_lost = lost
    return records


def record_report(records, strict: bool) -> int:
    """A line per recording (how many results it lost, and why); EXIT_RECORD and one error line
    when any were lost."""
    status = EXIT_OK
    for sink in records:
        path, lost = sink.options.path, sink.lost_total
        if not lost:
            print(f"record: all {sink.recorded} results written to {path}")
            continue
        print(f"record: {lost} of {sink.published} results not recorded in {path} "
              f"({sink.lost['behind']} behind: the destination did not keep up; "
              f"{sink.lost['error']} write errors)")
        why = (f"stopped (--record-strict): {sink.first_loss} could not be recorded in {path}"
               if strict else f"{lost} results were not recorded in {path}; first: {sink.first_loss}")
        print(f"streamer run: error: {why}", file=sys.stderr)
        status = EXIT_RECORD
    return status


def _supervise(pipeline, config) -> None:
    """Wait for the end (source ended, max frames, duration, signal), refreshing the status line
    every second on a terminal (in place), every 10 s as plain lines otherwise (logs)."""
    live = sys.stderr.isatty()
    if live:  # a log line first clears the status line it would otherwise run into
        clear = _ClearStatusLine()
        for handler in logging.getLogger().handlers:
            handler.addFilter(clear)
    duration = config.pipeline.duration_s
    deadline = time.monotonic() + duration if duration else None
    next_line = time.monotonic() + 1.0
    while not pipeline.wait(0.1):
        now = time.monotonic()
        if deadline and now >= deadline:
            pipeline.stop()
        if now >= next_line:
            next_line = now + (1.0 if live else 10.0)
            line = (status_line(pipeline.status()) if len(pipeline.lanes) == 1
                    else streams_line(pipeline.statuses()))
            print("\r" + line.ljust(100) if live else line, end="" if live else "\n",
                  file=sys.stderr, flush=True)
    if live:
        print(file=sys.stderr)
        for handler in logging.getLogger().handlers:
            handler.removeFilter(clear)


def run(args) -> int:
    from streamer.pipeline import build_pipeline

    config = config_from_args(args)
    strict = bool(getattr(args, "record_strict", False))
    if strict and not config.publish.record:
        raise CommandError("--record-strict needs --record FILE (or [publish] record)")
    with contextlib.ExitStack() as stack:
        sources, backend, sinks, metrics, metrics_url = _open_parts(config, stack)
        shown = open_sinks(live_outputs.sink_requests(args, config), stack)  # the first stream's
        first = next(iter(sources))
        pipeline = build_pipeline(config, sources, backend, sinks, metrics, {first: shown})
        sinks += shown
        records = _watch_records(sinks, metrics, pipeline, strict)
        if config.publish.control:  # streamer exam: a new exam while it runs
            from streamer.control import ControlServer

            control = ControlServer(config.publish.control, {
                name: lane.stages.publish.coverage for name, lane in pipeline.streams.items()})
            stack.callback(control.close)
        started = time.monotonic()
        if len(sources) > 1:  # log lines say which stream they are about
            _tag_streams(stack)
        with _signals(pipeline.stop):
            _start(pipeline, config, sources)
            for line in where(sinks, metrics_url):
                print(line, flush=True)
            try:
                _supervise(pipeline, config)
            finally:
                counts = pipeline.close()
    print(summary(counts, pipeline.latency.summary_ms(), time.monotonic() - started,
                  sum(getattr(source, "gaps", 0) for source in sources.values())))
    if len(sources) > 1:
        print(streams_summary(pipeline))
    recorded = record_report(records, strict)
    return exit_status_of({name: lane.reader.state for name, lane in pipeline.streams.items()}) \
        or recorded


def _tag_streams(stack: contextlib.ExitStack) -> None:
    from streamer.pipeline.stream_log import StreamTag

    tag = StreamTag()
    for handler in logging.getLogger().handlers:
        handler.addFilter(tag)
        stack.callback(handler.removeFilter, tag)


def _start(pipeline, config, sources: dict) -> None:
    """Check each roi and start; a source that does not open is one line naming it (and its
    stream, with several)."""
    name = next(iter(sources))
    try:
        for name in sources:  # the stream whose roi is refused is named below
            check_roi(config, sources[name])
        pipeline.start()
    except Exception as exc:
        pipeline.close()
        name = getattr(exc, "stream", name)
        spec = config.stream_specs()[name]
        which = f" of stream {name}" if len(sources) > 1 else ""
        raise CommandError(f"cannot open source {spec!r}{which}: {exc}") from None


def exit_status(source_state) -> int:
    """0 for a requested stop or a source that ended as expected; otherwise one line and 3 (the
    source ended early) or 1 (a bug stopped the source; its traceback is in the log)."""
    return exit_status_of({"main": source_state})
