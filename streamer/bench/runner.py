"""Runs a plan: machine and peak, FLOPs, model-only runs, end-to-end runs and the baseline, into
the one result dict that the report prints, saves and plots."""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager

from streamer.bench import baseline, end_to_end, machine, model_only
from streamer.bench.flops import count_flops
from streamer.bench.plan import BenchPlan

QUIET = ("streamer.pipeline", "streamer.preprocess", "streamer.sources", "streamer.sinks")


class Progress:
    """One tqdm bar over the configurations; the current one's frame count as its postfix."""

    def __init__(self, total: int, enabled: bool = True):
        from tqdm import tqdm

        self.bar = tqdm(total=total, unit="config", disable=not enabled, leave=False,
                        bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}] {postfix}")
        self.frames, self._shown = 0, 0.0

    @contextmanager
    def step(self, label: str):
        self.bar.set_description_str(label)
        self.frames = 0
        try:
            yield self.tick
        finally:
            self.bar.update(1)

    def tick(self) -> None:
        self.frames += 1
        now = time.monotonic()
        if now - self._shown > 0.25:
            self._shown = now
            self.bar.set_postfix_str(f"{self.frames} frames")

    def close(self) -> None:
        self.bar.close()


@contextmanager
def _quiet_logs():
    """The pipeline's INFO lines (fan found, source up) would break the progress bar."""
    loggers = [logging.getLogger(name) for name in QUIET]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def run_bench(plan: BenchPlan, progress: bool = True) -> dict:
    runs = plan.model_runs()
    rates: list[float | None] = [*plan.fps, None]
    bar = Progress(2 + len(runs) + len(rates) + 1, progress)
    try:
        with _quiet_logs():
            with bar.step("machine peak"):
                host = machine.describe()
                host["peak_gflops"] = machine.peak_gflops(plan.peak_size)
            with bar.step("FLOPs"):
                flops = count_flops(plan.onnx)
            model = [_step(bar, r.label, model_only.run_model, r, plan) for r in runs]
            e2e = [_step(bar, f"pipeline {f:g} fps" if f else "pipeline saturation",
                         end_to_end.run_pipeline, plan, f) for f in rates]
            base = _step(bar, "baseline", baseline.run_baseline, plan)
    finally:
        bar.close()
    return assemble(plan, host, flops, model, e2e, base)


def _step(bar: Progress, label: str, fn, *args):
    with bar.step(label) as tick:
        return fn(*args, tick=tick)


def _ratio(a, b) -> float | None:
    return round(a / b, 3) if a and b else None


def _gflops(flops: int, fps: float, peak: float | None) -> dict:
    achieved = flops * fps / 1e9
    pct = round(100 * achieved / peak, 1) if peak else None
    return {"gflops": round(achieved, 2), "pct_of_peak": pct}


def assemble(plan: BenchPlan, host: dict, flops: dict, model: list, e2e: list, base: dict) -> dict:
    """The result dict; every headline figure also as a ratio to the baseline (> 1: better)."""
    peak = host["peak_gflops"]
    total = flops["total"]
    b_inf = base["latency_ms"]["inference"]
    b_e2e = base["latency_ms"]["capture_to_publish"]
    base.update(_gflops(total, 1000 / b_inf["mean"], peak.get("peak_1_thread") or peak["peak"]))
    base["achieved_vs"] = "one-thread peak"
    for run in model:
        run.update(_gflops(total, run["throughput_fps"], peak["peak"]))
        run["vs_baseline"] = {
            "throughput": _ratio(run["throughput_fps"], 1000 / b_inf["mean"]),
            "latency_per_frame_p50": _ratio(b_inf["p50"], run["latency_per_frame_ms_p50"]),
            "against": "the baseline's inference stage"}
    for run in e2e:
        lat = run["latency_ms"]["capture_to_sent"]
        run.update(_gflops(total, run["throughput_fps"], peak["peak"]))
        run["vs_baseline"] = {
            "throughput": _ratio(run["throughput_fps"], base["throughput_fps"]),
            "latency_p50": _ratio(b_e2e.get("p50"), lat.get("p50")),
            "latency_p99": _ratio(b_e2e.get("p99"), lat.get("p99")),
            "against": "the baseline's capture→publish (both after the ZMQ send)"}
    saturation = next(r for r in e2e if not r["realtime"])
    host["bench"] = {"duration_s": plan.duration_s, "frames": plan.frames, "warmup": plan.warmup,
                     "fps": list(plan.fps), "batches": list(plan.batches),
                     "screen": f"{plan.width}x{plan.height}"}
    return {
        "machine": host,
        "model_only": {"model": {"onnx": str(plan.onnx), "checkpoint": _str(plan.checkpoint),
                                 "extra_onnx": {k: str(v) for k, v in plan.extra_onnx.items()},
                                 "flops_per_frame": total, "flops_by_op": flops["by_op"],
                                 "flops_uncounted": flops["uncounted"]},
                       "runs": model},
        "end_to_end": {"runs": e2e},
        "baseline": base,
        "speedup_vs_baseline": _ratio(saturation["throughput_fps"], base["throughput_fps"]),
    }


def _str(path) -> str | None:
    return None if path is None else str(path)
