"""Prometheus metrics with the names DESIGN.md fixes, one CollectorRegistry per pipeline, plus
the in-process latency record that feeds the terminal status line and the exit summary."""

from __future__ import annotations

import threading
from collections import deque

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from streamer.auth_failures import AuthFailureCollector  # the process's CurveZMQ sockets
from streamer.frames import STAGES, Timing

OUTCOMES = ("captured", "processed", "dropped", "invalid")
# 0.25 ms … 1 s: frame work is measured in milliseconds, not web-request seconds
LATENCY_BUCKETS = (0.00025, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03,
                   0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0)


class PipelineMetrics:
    """The streamer's metrics for one stream, registered in their own registry."""

    def __init__(self, stream: str, registry: CollectorRegistry | None = None):
        self.stream = stream
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.frames = Counter("streamer_frames", "Frames by outcome (captured = processed + "
                              "dropped + invalid at shutdown)", ["stream", "outcome"], registry=r)
        self.latency = Histogram("streamer_latency_seconds", "Per-frame latency by stage",
                                 ["stream", "stage"], buckets=LATENCY_BUCKETS, registry=r)
        self.fps = Gauge("streamer_fps", "Processed frames per second", ["stream"], registry=r)
        self.queue_depth = Gauge("streamer_queue_depth", "Frames waiting in a pipeline queue",
                                 ["stream", "queue"], registry=r)
        self.source_up = Gauge("streamer_source_up", "1 while the source delivers, 0 while lost",
                               ["stream"], registry=r)
        self.backend_up = Gauge("streamer_backend_up", "1 while the inference backend answers, "
                                "0 while a remote server is unreachable", ["stream"], registry=r)
        self.model_info = Gauge("streamer_model_info", "The model being served (value 1)",
                                ["model", "backend", "precision"], registry=r)
        self.ood_frames = Counter("streamer_ood_frames", "Processed frames the model flagged as "
                                  "unlike its training frames (det familiar: false)", ["stream"],
                                  registry=r)
        self.ood_frames.labels(stream)
        for outcome in OUTCOMES:  # present from the start, at 0
            self.frames.labels(stream, outcome)
        for stage in STAGES:
            self.latency.labels(stream, stage)
        self.record_lost = Counter("streamer_record_lost", "Results the recording (--record) did "
                                   "not write: reason behind (the destination did not keep up) or "
                                   "error (a write failed)", ["stream", "reason"], registry=r)
        for reason in ("behind", "error"):
            self.record_lost.labels(stream, reason)
        self.backend_model_changed = Gauge(
            "streamer_backend_model_changed", "1 while the remote server serves a model whose "
            "contract (classes in order, activation, input) differs from the stream's: inference "
            "stopped, frames dropped", ["stream"], registry=r)
        self.backend_model_changed.labels(stream)
        r.register(AuthFailureCollector(stream))  # streamer_auth_failures_total{stream,socket}
        self.region_seen = Counter("streamer_region_seen_seconds", "Seconds each region was in "
                                   "view this run (present on a familiar, unfrozen image; "
                                   "streamer.coverage)", ["stream", "region"], registry=r)

    def count(self, outcome: str, n: int = 1) -> None:
        self.frames.labels(self.stream, outcome).inc(n)

    def count_ood(self) -> None:
        self.ood_frames.labels(self.stream).inc()

    def observe(self, timing: Timing) -> None:
        for stage, seconds in timing.stage_seconds().items():
            self.latency.labels(self.stream, stage).observe(max(0.0, seconds))

    def set_fps(self, fps: float) -> None:
        self.fps.labels(self.stream).set(fps)

    def set_queue_depth(self, queue: str, depth: int) -> None:
        self.queue_depth.labels(self.stream, queue).set(depth)

    def set_source_up(self, up: bool) -> None:
        self.source_up.labels(self.stream).set(1 if up else 0)

    def set_backend_up(self, up: bool) -> None:
        self.backend_up.labels(self.stream).set(1 if up else 0)

    def set_model(self, model: str, backend: str, precision: str) -> None:
        self.model_info.labels(model, backend, precision).set(1)

    def count_record_lost(self, reason: str, n: int = 1) -> None:
        self.record_lost.labels(self.stream, reason).inc(n)

    def count_seen(self, region: str, seconds: float) -> None:
        self.region_seen.labels(self.stream, region).inc(seconds)

    def set_backend_model_changed(self, changed: bool) -> None:
        self.backend_model_changed.labels(self.stream).set(1 if changed else 0)

    def for_stream(self, stream: str) -> PipelineMetrics:
        """The same registry and metrics, labelled with another stream (several streams in one
        process, one HTTP endpoint); its series present from the start, at 0."""
        import copy

        other = copy.copy(self)
        other.stream = stream
        other.ood_frames.labels(stream)
        for outcome in OUTCOMES:
            other.frames.labels(stream, outcome)
        for stage in STAGES:
            other.latency.labels(stream, stage)
        for reason in ("behind", "error"):
            other.record_lost.labels(stream, reason)
        other.backend_model_changed.labels(stream)
        return other


class MetricsServer:
    """prometheus-client's HTTP endpoint for one registry, on loopback by default."""

    def __init__(self, registry: CollectorRegistry, port: int, host: str = "127.0.0.1"):
        self.registry, self.port, self.host = registry, port, host
        self._server = None

    def start(self) -> MetricsServer:
        try:
            self._server, _ = start_http_server(self.port, addr=self.host, registry=self.registry)
        except OSError as exc:
            raise ValueError(f"cannot serve metrics on {self.host}:{self.port} ({exc.strerror or exc}); "
                             "choose another --metrics-port or 0 to disable") from None
        self.port = self._server.server_port
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class LatencyRecord:
    """Every frame's stage latencies (capped) for the summary, and a recent window for the
    live status line; thread-safe."""

    def __init__(self, cap: int = 200_000, window: int = 300):
        self._all = {s: deque(maxlen=cap) for s in STAGES}
        self._recent = deque(maxlen=window)
        self._lock = threading.Lock()

    def add(self, timing: Timing) -> None:
        seconds = timing.stage_seconds()
        with self._lock:
            for stage, s in seconds.items():
                self._all[stage].append(s)
            self._recent.append(seconds["capture_to_publish"])

    def recent_ms(self, q: float) -> float | None:
        with self._lock:
            values = list(self._recent)
        return float(np.percentile(values, q) * 1e3) if values else None

    def summary_ms(self, quantiles=(50, 90, 99)) -> dict[str, dict[str, float]]:
        """stage → {p50, p90, p99, max, count} in milliseconds."""
        with self._lock:
            data = {s: np.asarray(v, np.float64) for s, v in self._all.items()}
        out = {}
        for stage, v in data.items():
            if len(v):
                row = {f"p{q}": float(np.percentile(v, q) * 1e3) for q in quantiles}
                out[stage] = {**row, "max": float(v.max() * 1e3), "count": len(v)}
        return out
