"""Runs a plan: machine, FLOPs, an ONNX Runtime thread sweep, model-only runs, end-to-end runs and the baseline, into
the one result dict that the report prints, saves and plots."""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager

from streamer.bench import baseline, bounds, end_to_end, machine, model_only, streams
from streamer.bench.flops import count_flops
from streamer.bench.plan import BenchPlan, ModelRun

QUIET = ("streamer.pipeline", "streamer.preprocess", "streamer.fan", "streamer.sources", "streamer.sinks")


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


def saturation_configs(candidates: tuple[int, ...]) -> list[tuple[int, int]]:
    """(intra-op threads, inference workers) to try at saturation: one model call at a time on
    each thread count, and (where there are two threads to give) two calls side by side on one
    thread each."""
    configs = [(t, 1) for t in candidates]
    return configs + ([(1, 2)] if max(candidates) >= 2 else [])


def run_bench(plan: BenchPlan, progress: bool = True) -> dict:
    runs = plan.model_runs()
    candidates = plan.thread_candidates()
    configs = saturation_configs(candidates)
    int8 = plan.extra_onnx.get("int8")
    bar = Progress(3 + len(runs) + len(candidates) + len(configs) + len(plan.fps)
                   + 2 * bool(int8) + len(set(plan.streams)), progress)
    try:
        with _quiet_logs():
            with bar.step("machine"):
                host = machine.describe()
            with bar.step("FLOPs"):
                flops = count_flops(plan.onnx)
            model = [_step(bar, r.label, model_only.run_model, r, plan) for r in runs]
            sweep = [_step(bar, f"model b1, {t or 'default'} threads", model_only.run_model,
                           ModelRun("onnxruntime", "fp32", plan.onnx, 1), plan, threads=t)
                     for t in candidates]
            latency_threads = min(sweep, key=lambda r: r["latency_ms"]["p50"])["threads_requested"]
            paced = _step(bar, f"model b1 at {plan.fps[0]:g} fps", model_only.run_model,
                          ModelRun("onnxruntime", "fp32", plan.onnx, 1), plan,
                          threads=latency_threads, pace_fps=plan.fps[0])
            e2e = [_step(bar, f"pipeline {f:g} fps", end_to_end.run_pipeline, plan, f,
                         threads=latency_threads) for f in plan.fps]
            saturation = [_step(bar, f"pipeline saturation, {t or 'default'} threads x {w}",
                                end_to_end.run_pipeline, plan, None, threads=t, workers=w)
                          for t, w in configs]
            best = max(saturation, key=lambda r: r["throughput_fps"])
            e2e.append(best)
            if int8:  # the same pipeline on the INT8 model: live latency and saturation
                e2e += [_step(bar, f"pipeline {plan.fps[0]:g} fps int8", end_to_end.run_pipeline,
                              plan, plan.fps[0], threads=latency_threads, model=int8),
                        _step(bar, "pipeline saturation int8", end_to_end.run_pipeline, plan, None,
                              threads=_threads_of(best), workers=best["inference_workers"],
                              model=int8)]
            base = _step(bar, "baseline", baseline.run_baseline, plan)
            points = streams.curve(plan, lambda n: _step(
                bar, f"{n} streams at 30 fps", streams.run_streams, plan, n)) if plan.streams else []
    finally:
        bar.close()
    threads = {"candidates": list(candidates), "latency": latency_threads,
               "saturation": _threads_of(best), "saturation_workers": best["inference_workers"],
               "model_b1_p50_ms": {str(r["threads_requested"]): r["latency_ms"]["p50"] for r in sweep},
               "saturation_fps": {f"{r['threads']}x{r['inference_workers']}": r["throughput_fps"]
                                  for r in saturation},
               "chosen_by": "lowest model-only p50 at batch 1 (latency runs); highest pipeline "
                            "frames/s at saturation (saturation run), over intra-op threads x "
                            "inference workers"}
    standalone = next(r for r in sweep if r["threads_requested"] == latency_threads)
    result = assemble(plan, host, flops, model, e2e, base, threads, standalone, paced)
    if points:
        bound = result["targets"].get("saturation_bound") or {}
        result["streams"] = streams.streams_section(plan, points, bound.get("model_alone_fps"))
        result["targets"]["against_bounds"] = bounds.against_bounds(result, plan.smoke)
    return result


def _threads_of(run: dict) -> int:
    return run["threads"] if run["threads"] != "onnxruntime default" else 0


def _step(bar: Progress, label: str, fn, *args, **kwargs):
    with bar.step(label) as tick:
        return fn(*args, tick=tick, **kwargs)


def _ratio(a, b) -> float | None:
    return round(a / b, 3) if a and b else None


def _gflops(flops: int, fps: float) -> dict:
    return {"gflops": round(flops * fps / 1e9, 2)}


TARGETS = {"overhead_p50_ms": 1.0, "overhead_p99_ms": 3.0, "saturation_x_baseline": 3.0,
           "inference_in_pipeline_ratio": 1.15}


def targets(plan: BenchPlan, e2e: list, standalone: dict, speedup: float | None,
            paced: dict | None = None, model_runs: list | None = None, base: dict | None = None) -> dict:
    """The engine's goals, judged within this one run: overhead over the model alone at the
    first live frame rate (p50 and p99), saturation over the baseline, and the model's own time
    in the pipeline against alone. A smoke run is too short to judge and says so."""
    live = next((r for r in e2e if r["realtime"]), None)
    model = standalone["latency_ms"]
    figures = {"saturation_x_baseline": speedup}
    if live is not None:
        lat = live["latency_ms"]
        figures["overhead_p50_ms"] = round(lat["capture_to_publish"]["p50"] - model["p50"], 4)
        figures["overhead_p99_ms"] = round(lat["capture_to_publish"]["p99"] - model["p99"], 4)
        figures["inference_in_pipeline_ratio"] = _ratio(lat["inference"]["p50"], model["p50"])
    out = {"smoke": plan.smoke, "at": live["label"] if live else None,
           "model_alone": {"p50": model["p50"], "p99": model["p99"],
                           "threads": standalone["threads_requested"]}}
    for name, goal in TARGETS.items():
        out[name] = judge(name, figures.get(name), goal, plan.smoke)
    if paced is not None:  # the model alone run once per frame interval (at the first live rate)
        out["model_alone_paced"] = {
            "fps": paced["paced_fps"], "p50": paced["latency_ms"]["p50"],
            "p99": paced["latency_ms"]["p99"],
            "inference_in_pipeline_ratio": None if live is None else _ratio(
                live["latency_ms"]["inference"]["p50"], paced["latency_ms"]["p50"]),
            "why": "the model alone called once per frame interval, as the pipeline calls it: "
                   "context for the targets, which are judged against back-to-back calls"}
    bound = saturation_bound(model_runs or [], e2e, base)
    if bound is not None:
        out["saturation_bound"] = bound
    return out


OVERHEADS = ("overhead_p50_ms", "overhead_p99_ms")
NOISE = ("below zero: the end-to-end run came out faster than the model alone, which cannot be; "
         "measurement noise (a loaded or noisy machine), no verdict")


def judge(name: str, value: float | None, goal: float, smoke: bool = False) -> dict:
    """One target's row. ``met`` is None (no verdict) in a smoke run, without a figure, and for an
    overhead below zero: that is noise, never a goal met."""
    row = {"value": value, "goal": goal, "met": None}
    if name in OVERHEADS and value is not None and value < 0:
        row["noise"] = NOISE
    elif not smoke and value is not None:
        row["met"] = value >= goal if name == "saturation_x_baseline" else value <= goal
    return row


def saturation_bound(model: list, e2e: list, base: dict | None) -> dict | None:
    """The most frames/s any pipeline of this model could reach here: the model alone at the
    pipeline's backend and precision, every batch size measured, all threads (preprocessing and
    postprocessing free). A saturation goal above it cannot be met on this machine."""
    saturation = next((r for r in e2e if not r["realtime"]), None)
    if saturation is None or base is None:
        return None
    want = (saturation["backend"]["backend"], saturation["backend"]["precision"])
    runs = [r for r in model if (r["backend"], r["precision"]) == want]
    if not runs:
        return None
    best = max(runs, key=lambda r: r["throughput_fps"])
    return {"model_alone_fps": best["throughput_fps"], "run": best["label"],
            "x_baseline": _ratio(best["throughput_fps"], base["throughput_fps"]),
            "why": "the model alone on all threads, at the pipeline's precision and its best "
                   "batch: no pipeline of this model passes it on this machine"}


def assemble(plan: BenchPlan, host: dict, flops: dict, model: list, e2e: list, base: dict,
             threads: dict | None = None, standalone: dict | None = None,
             paced: dict | None = None) -> dict:
    """The result dict; every headline figure also as a ratio to the baseline (> 1: better)."""
    total = flops["total"]
    b_inf = base["latency_ms"]["inference"]
    b_e2e = base["latency_ms"]["capture_to_publish"]
    base.update(_gflops(total, 1000 / b_inf["mean"]))
    for run in model:
        run.update(_gflops(total, run["throughput_fps"]))
        run["vs_baseline"] = {
            "throughput": _ratio(run["throughput_fps"], 1000 / b_inf["mean"]),
            "latency_per_frame_p50": _ratio(b_inf["p50"], run["latency_per_frame_ms_p50"]),
            "against": "the baseline's inference stage"}
    alone = (standalone or model[0])["latency_ms"]
    for run in e2e:
        lat = run["latency_ms"]["capture_to_sent"]
        run.update(_gflops(total, run["throughput_fps"]))
        run["overhead_vs_model_ms_p50"] = round(
            run["latency_ms"]["capture_to_publish"].get("p50", 0.0) - alone["p50"], 4)
        run["vs_baseline"] = {
            "throughput": None if run["realtime"] else _ratio(run["throughput_fps"], base["throughput_fps"]),
            "latency_p50": _ratio(b_e2e.get("p50"), lat.get("p50")),
            "latency_p99": _ratio(b_e2e.get("p99"), lat.get("p99")),
            "against": "the baseline's capture→publish (both after the ZMQ send); throughput only "
                       "at saturation: a paced run's frames/s is its source's frame rate"}
    saturation = next(r for r in e2e if not r["realtime"])
    speedup = _ratio(saturation["throughput_fps"], base["throughput_fps"])
    host["bench"] = {"duration_s": plan.duration_s, "streams": list(plan.streams), "frames": plan.frames, "warmup": plan.warmup,
                     "fps": list(plan.fps), "batches": list(plan.batches),
                     "screen": f"{plan.width}x{plan.height}", "max_batch": plan.max_batch,
                     "smoke": plan.smoke, "onnxruntime_threads": threads}
    result = {
        "machine": host,
        "model_only": {"model": {"onnx": str(plan.onnx), "checkpoint": _str(plan.checkpoint),
                                 "extra_onnx": {k: str(v) for k, v in plan.extra_onnx.items()},
                                 "flops_per_frame": total, "flops_by_op": flops["by_op"],
                                 "flops_uncounted": flops["uncounted"]},
                       "runs": model, "standalone_for_overhead": standalone,
                       **({"paced_at_live_rate": paced} if paced is not None else {})},
        "end_to_end": {"runs": e2e},
        "baseline": base,
        "speedup_vs_baseline": speedup,
        "targets": targets(plan, e2e, standalone or model[0], speedup, paced, model, base),
    }
    result["targets"]["against_bounds"] = bounds.against_bounds(result, plan.smoke)
    return result


def _str(path) -> str | None:
    return None if path is None else str(path)
