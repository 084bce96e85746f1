"""Many streams through one pipeline: N simulated 1080p scanners at 30 fps, one model, every
stream's capture→publish p50/p99 and drops once warmed up; the curve of p99 against N and the
most streams this machine holds (every stream's p99 under a frame interval, no drops).

Each scanner replays a few pre-rendered screens (``sim:replay=K``), as a capture card's frames
cost the host nothing to make: rendering (~5 ms of CPU per 1080p screen) would otherwise eat the
CPU being measured."""

from __future__ import annotations

import threading
import time

import numpy as np

from streamer.bench.plan import BenchPlan
from streamer.bench.stats import CpuMeter, summarise_ms

STREAM_FPS = 30.0
STREAM_REPLAY = 8  # screens per scanner (50 MB each at 1080p BGR)
WARMUP_S = 3.0  # start-up (every stream's first fan searches and sector fit) left out
SMOKE_WARMUP_S = 1.0  # a smoke run's (--quick): too short for a verdict anyway
BUDGET_MS = 33.0  # a stream is held while its p99 stays under this (a 30 fps frame interval)


class StreamSink:
    """Every result's capture→publish and capture time, by stream."""

    def __init__(self):
        self.latency: dict[str, list[float]] = {}
        self.captured_at: dict[str, list[int]] = {}
        self._lock = threading.Lock()

    def open(self) -> StreamSink:
        return self

    def publish(self, result) -> None:
        t = result.timing
        with self._lock:
            self.latency.setdefault(result.stream, []).append((t.publish - t.capture) / 1e9)
            self.captured_at.setdefault(result.stream, []).append(t.capture)

    def publish_status(self, status: dict) -> None:
        pass

    def close(self) -> None:
        pass

    def after(self, stream: str, since_ns: int) -> list[float]:
        with self._lock:
            return [s for s, c in zip(self.latency.get(stream, []),
                                      self.captured_at.get(stream, []), strict=True) if c >= since_ns]


def warmup_s(plan: BenchPlan) -> float:
    return SMOKE_WARMUP_S if plan.smoke else WARMUP_S


def stream_specs(plan: BenchPlan, n: int) -> dict[str, str]:
    size = f"width={plan.width},height={plan.height}"
    return {f"s{i + 1}": f"sim:seed={i},fps={STREAM_FPS:g},realtime=1,replay={STREAM_REPLAY},{size}"
            for i in range(n)}


def _config(plan: BenchPlan, first: str, threads: int, workers: int):
    from streamer.bench.end_to_end import ENDPOINT
    from streamer.config import (
        Config,
        InferenceConfig,
        MetricsConfig,
        PipelineConfig,
        PublishConfig,
    )

    return Config(publish=PublishConfig(endpoint=ENDPOINT, stream=first),
                  metrics=MetricsConfig(port=0), model=InferenceConfig(threads=threads, spin=plan.spin),
                  pipeline=PipelineConfig(max_batch=plan.max_batch, inference_workers=workers))


def run_streams(plan: BenchPlan, n: int, tick=lambda: None, threads: int = 1,
                workers: int = 0, window=lambda: None) -> dict:
    """N streams for WARMUP_S + the plan's duration; figures from the frames captured after the
    warm-up, drops counted while running (not the frames in flight at the stop). ``window`` is
    called as the measured span starts and as it ends (a benchmark's own meters)."""
    from engines.backends import BackendOptions, create_backend
    from streamer.bench.end_to_end import ENDPOINT
    from streamer.pipeline import build_pipeline
    from streamer.sinks.zmq_sink import ZmqSink
    from streamer.sources import create_source

    specs = stream_specs(plan, n)
    config = _config(plan, next(iter(specs)), threads, workers)
    backend = create_backend("onnxruntime", plan.onnx, BackendOptions(threads=threads,
                                                                      spin=plan.spin)).open()
    sink = StreamSink()
    sinks = [ZmqSink(endpoint=ENDPOINT, maps=config.postprocess.maps).open(), sink]
    pipeline = build_pipeline(config, {k: create_source(v) for k, v in specs.items()}, backend, sinks)
    with CpuMeter() as cpu:
        pipeline.start()
        try:
            warm, start_ns = _wait(pipeline, warmup_s(plan), tick)
            window()
            end, _ = _wait(pipeline, plan.duration_s, tick)
            window()
        finally:
            pipeline.close()
    per_stream = {name: _stream_row(sink.after(name, start_ns), warm[name], end[name])
                  for name in specs}
    return summarise_streams(n, per_stream, cpu.as_dict(), pipeline, threads)


def _wait(pipeline, seconds: float, tick) -> tuple[dict, int]:
    """Sleep ``seconds`` (ticking per processed frame); each stream's counts, and the time."""
    deadline, seen = time.monotonic() + seconds, pipeline.counts()["processed"]
    while time.monotonic() < deadline and not pipeline.wait(0.05):
        processed = pipeline.counts()["processed"]
        for _ in range(processed - seen):
            tick()
        seen = processed
    return ({name: lane.accounting.snapshot() for name, lane in pipeline.streams.items()},
            time.monotonic_ns())


def _stream_row(latency_s: list[float], warm: dict, end: dict) -> dict:
    lat = summarise_ms(latency_s)
    lat.pop("quantiles", None)
    window = {k: end[k] - warm[k] for k in ("captured", "processed", "dropped", "invalid")}
    return {"latency_ms": lat, "counts": window}


def summarise_streams(n: int, per_stream: dict, cpu: dict, pipeline=None, threads: int = 1) -> dict:
    """One point of the curve: the worst and the median stream, and whether all are held."""
    p99 = [r["latency_ms"].get("p99") for r in per_stream.values()]
    p50 = [r["latency_ms"].get("p50") for r in per_stream.values()]
    dropped = sum(r["counts"]["dropped"] for r in per_stream.values())
    processed = sum(r["counts"]["processed"] for r in per_stream.values())
    measured = all(v is not None for v in p99)
    return {
        "streams": n,
        "p99_worst_ms": max(p99) if measured else None,
        "p99_median_ms": float(np.median(p99)) if measured else None,
        "p50_median_ms": float(np.median(p50)) if measured else None,
        "dropped": dropped, "processed": processed,
        "held": bool(measured and max(p99) < BUDGET_MS and dropped == 0),
        "cpu": cpu,
        "batches": {} if pipeline is None else {
            str(k): v for k, v in sorted(pipeline.batch_sizes.items())},
        "inference_workers": None if pipeline is None else pipeline.inference.workers,
        "threads": threads,
        "per_stream": per_stream,
    }


def curve(plan: BenchPlan, measure, refine: int = 2) -> list[dict]:
    """``measure(n)`` for each N of the plan, then up to ``refine`` more between the most held
    and the fewest not held; the points sorted by N."""
    points = {n: measure(n) for n in sorted(set(plan.streams))}
    for _ in range(refine):
        held = [n for n, p in points.items() if p["held"]]
        failed = [n for n, p in points.items() if not p["held"] and n > max(held, default=0)]
        if not held or not failed or min(failed) - max(held) < 2:
            break
        n = (max(held) + min(failed)) // 2
        points[n] = measure(n)
    return [points[n] for n in sorted(points)]


def streams_section(plan: BenchPlan, points: list[dict], bound_fps: float | None) -> dict:
    """The curve, the most streams held and its share of what the model alone allows."""
    held = max((p["streams"] for p in points if p["held"]), default=0)
    allowed = bound_fps / STREAM_FPS if bound_fps else None
    return {"fps": STREAM_FPS, "screen_replay": STREAM_REPLAY, "warmup_s": warmup_s(plan),
            "budget_ms": round(BUDGET_MS, 3), "curve": points, "held": held,
            "bound_streams": round(allowed, 2) if allowed else None,
            "held_x_bound": round(held / allowed, 3) if allowed else None,
            "why": "streams held: every stream's capture→publish p99 under one frame interval "
                   "and no frame dropped while running; bound: the model alone's frames/s (same "
                   "backend and precision, all threads, its best batch) over 30"}
