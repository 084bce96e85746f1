"""End to end through the real pipeline: the simulated scanner → streamer.pipeline → ZMQ PUB on
loopback, paced at a frame rate (live: latest frame wins, drops counted) or at saturation
(non-realtime, lossless)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np

from streamer.bench.plan import BenchPlan
from streamer.bench.stats import CpuMeter, RssMeter, rate, summarise_ms
from streamer.frames import PARTS, STAGES

ENDPOINT = "tcp://127.0.0.1:*"


class TimingSink:
    """Keeps every result's stage latencies, plus its own stamp once the sinks before it (the
    ZMQ publisher) have sent it: the pipeline stamps ``publish`` just before the sinks run."""

    def __init__(self):
        self.stages: dict[str, list[float]] = {s: [] for s in STAGES}
        self.to_sent: list[float] = []
        self.sent_at: list[float] = []
        self._lock = threading.Lock()

    def open(self) -> TimingSink:
        return self

    def publish(self, result) -> None:
        now = time.monotonic_ns()
        with self._lock:
            for stage, s in result.timing.stage_seconds().items():
                self.stages[stage].append(s)
            self.to_sent.append((now - result.timing.capture) / 1e9)
            self.sent_at.append(now / 1e9)

    def publish_status(self, status: dict) -> None:
        pass

    def close(self) -> None:
        pass


REPLAY_FRAMES = 64


def source_spec(plan: BenchPlan, fps: float | None) -> str:
    """Frames pre-rendered, as a capture card's cost the host nothing to make, so that the engine
    is measured and not the simulator's renderer (5 ms of CPU per 1080p screen, its working set
    evicting the model's from the caches between frames): paced at a live rate, or lossless as
    fast as the engine goes (saturation)."""
    size = f"width={plan.width},height={plan.height}"
    if fps is None:
        return f"sim:seed=0,realtime=0,replay={REPLAY_FRAMES},{size}"
    return f"sim:seed=0,fps={fps:g},realtime=1,replay={REPLAY_FRAMES},{size}"


def _config(plan: BenchPlan, spec: str, threads: int, workers: int = 1):
    from streamer.config import (
        Config,
        InferenceConfig,
        MetricsConfig,
        PipelineConfig,
        PublishConfig,
        SourceConfig,
    )

    limit = plan.warmup + plan.frames if plan.frames else 0
    queue = max(2, plan.max_batch)  # room for a full batch to wait
    return Config(source=SourceConfig(spec=spec), publish=PublishConfig(endpoint=ENDPOINT, stream="bench"),
                  metrics=MetricsConfig(port=0), model=InferenceConfig(threads=threads, spin=plan.spin),
                  pipeline=PipelineConfig(max_frames=limit, max_batch=plan.max_batch, queue_size=queue,
                                          preprocess_in_source=plan.preprocess_in_source,
                                          inference_workers=workers))


def stage_breakdown(stages: dict[str, list[float]], skip: int) -> dict:
    """Per part of capture→publish: p50 and mean in ms. The means add up to the mean
    capture→publish exactly (every frame's parts do); medians need not."""
    out = {"p50": {}, "mean": {}}
    for part in PARTS:
        v = np.asarray(stages[part][skip:], np.float64) * 1e3
        out["p50"][part] = round(float(np.median(v)), 4) if len(v) else None
        out["mean"][part] = round(float(v.mean()), 4) if len(v) else None
    total = np.asarray(stages["capture_to_publish"][skip:], np.float64) * 1e3
    out["mean_capture_to_publish"] = round(float(total.mean()), 4) if len(total) else None
    return out


def _drive(pipeline, plan: BenchPlan, tick) -> dict:
    """Run until the duration (after warm-up) or the frame limit; the counts just before stop."""
    deadline = time.monotonic() + plan.duration_s + 0.5  # + a little for the warm-up frames
    seen = 0
    while not pipeline.wait(0.05) and time.monotonic() < deadline:
        processed = pipeline.accounting.snapshot()["processed"]
        for _ in range(processed - seen):
            tick()
        seen = processed
    running = pipeline.accounting.snapshot()
    pipeline.stop()
    return running


def run_pipeline(plan: BenchPlan, fps: float | None, tick=lambda: None, threads: int = 0,
                 workers: int = 1, model: Path | None = None) -> dict:
    """fps None: saturation. Latency figures leave out the first ``plan.warmup`` frames.
    ``threads``: ONNX Runtime's intra-op threads (0: its default); ``workers``: threads calling
    the model side by side; ``model``: another ONNX file than the plan's (INT8)."""
    from engines.backends import BackendOptions, create_backend
    from streamer.pipeline import build_pipeline
    from streamer.sinks.zmq_sink import ZmqSink
    from streamer.sources import create_source

    spec = source_spec(plan, fps)
    config = _config(plan, spec, threads, workers)
    rss = RssMeter()
    backend = create_backend("onnxruntime", model or plan.onnx, BackendOptions(
        threads=threads, spin=plan.spin)).open()
    described = backend.describe()
    zmq_sink = ZmqSink(endpoint=ENDPOINT, maps=config.postprocess.maps).open()
    timings = TimingSink()
    pipeline = build_pipeline(config, create_source(spec), backend, [zmq_sink, timings])
    with CpuMeter() as cpu:
        pipeline.start()
        try:
            running = _drive(pipeline, plan, tick)
        finally:
            counts = pipeline.close()
    w = plan.warmup
    latency = {s: summarise_ms(v[w:]) for s, v in timings.stages.items()}
    latency["capture_to_sent"] = summarise_ms(timings.to_sent[w:])
    inference_p50 = latency["inference"].get("p50", 0.0)
    label = f"{fps:g} fps" if fps else "saturation"
    precision = described.get("precision", "fp32")
    return {
        "label": label if precision == "fp32" else f"{label} {precision}", "fps": fps,
        "realtime": fps is not None,
        "source": spec, "backend": described, "publish_maps": config.postprocess.maps,
        "counts": counts, "dropped_while_running": running["dropped"],
        "latency_ms": latency, "latency_excludes_first": w,
        "pipeline_overhead_ms_p50": round(latency["capture_to_publish"].get("p50", 0.0) - inference_p50, 4),
        "stages_ms": stage_breakdown(timings.stages, w),
        "threads": threads or "onnxruntime default", "max_batch": pipeline.max_batch,
        "inference_workers": pipeline.inference.workers,
        "preprocess": "source thread" if plan.preprocess_in_source else "own thread",
        "batches": {str(k): v for k, v in sorted(pipeline.batch_sizes.items())},
        "throughput_fps": round(rate(timings.sent_at[w:]), 2),
        "cpu": cpu.as_dict(), **rss.as_dict(),
    }
