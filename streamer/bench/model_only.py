"""Model only: one backend × precision × batch size, timed call by call after a warm-up."""

from __future__ import annotations

import time

import numpy as np

from streamer.bench.plan import BenchPlan, ModelRun
from streamer.bench.stats import CpuMeter, RssMeter, rate, summarise_ms


def _input(batch: int, size: int) -> np.ndarray:
    """Speckle-like frames in [0, 1] (constant input can take fast paths real frames do not)."""
    rng = np.random.default_rng(0)
    return rng.rayleigh(0.25, (batch, 1, size, size)).clip(0, 1).astype(np.float32)


def _thread_settings(backend) -> dict:
    desc = backend.describe()
    out = {"configured": backend.options.threads or "library default"}
    if "threads" in desc:
        out["onnxruntime_intra_op"] = desc["threads"] or "default (physical cores)"
    if backend.name == "torch":
        out["torch_threads"] = backend.torch.get_num_threads()
    return out


def run_model(run: ModelRun, plan: BenchPlan, tick=lambda: None, threads: int = 0,
              pace_fps: float | None = None) -> dict:
    """Latency per call (p50/p90/p99/max), frames/s, peak RSS and thread settings. Calls follow
    each other at once, or with ``pace_fps`` one per frame interval, as a live feed gives them
    (an idle machine between calls: colder caches, sleeping threads)."""
    from engines.backends import BackendOptions, create_backend

    rss = RssMeter()
    options = BackendOptions(precision=run.precision, threads=threads, spin=plan.spin)
    backend = create_backend(run.backend, run.path, options).open()
    try:
        x = _input(run.batch, backend.info.input_size)
        for _ in range(plan.warmup):
            backend.infer(x)
        seconds, done = [], []
        with CpuMeter() as cpu:
            start = time.perf_counter()
            due = start
            while not plan.enough(len(seconds) * run.batch, time.perf_counter() - start):
                if pace_fps:  # a late call is followed by one at once, never by a catch-up burst
                    due = max(due + 1.0 / pace_fps, time.perf_counter())
                    time.sleep(max(0.0, due - time.perf_counter()))
                backend.infer(x)
                seconds.append(backend.last_inference_s)
                done.append(time.perf_counter())
                tick()
        desc = backend.describe()
        settings = _thread_settings(backend)
    finally:
        backend.close()
    calls = len(seconds)
    throughput = run.batch * calls / sum(seconds) if calls else 0.0
    return {
        "label": run.label, "backend": run.backend, "precision": desc.get("precision", run.precision),
        "model": str(run.path), "batch": run.batch, "calls": calls,
        "latency_ms": summarise_ms(seconds),  # per call (a whole batch)
        "latency_per_frame_ms_p50": round(float(np.median(seconds)) * 1e3 / run.batch, 4),
        "throughput_fps": round(throughput, 2),
        "wall_throughput_fps": round(run.batch * rate(done), 2),
        **rss.as_dict(), "threads": settings, "threads_requested": threads, "cpu": cpu.as_dict(),
        "fixed_batch": desc.get("fixed_batch"), "paced_fps": pace_fps, "spin": desc.get("spin"),
    }
