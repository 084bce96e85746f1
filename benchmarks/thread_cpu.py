"""Where the CPU goes when many streams share one pipeline: N simulated 1080p 30 fps scanners run
as ``streamer bench --streams`` runs them, and over the measured span (after the warm-up) the CPU
time of every thread (Linux: /proc/self/task) is summed by role — inference (the model,
postprocess and publish), preprocess, fan search, source — and divided by the frames processed.
Beside it, in the same run: the model alone on one thread, back to back, in CPU ms per frame; and
the budget the streams target leaves: at 80% of the bound a recorded bench measured, what every
frame may spend outside the model when all cores are busy.

    PYTHONPATH=. python3 benchmarks/thread_cpu.py --streams 8,14 \\
        --bench benchmarks/results/2026-12-05-cpu2-amd-epyc.json \\
        --out benchmarks/results/2026-12-05-thread-cpu.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
from json_record import emit

from engines.backends import BackendOptions, create_backend
from engines.defaults import default_onnx
from streamer.bench.machine import describe
from streamer.bench.plan import BenchPlan
from streamer.bench.streams import STREAM_FPS, run_streams

TARGET = 0.8  # the streams target: this share of the bound's streams


def role(name: str) -> str:
    """A pipeline thread's role: its name without the stream suffix or worker number."""
    return re.sub(r"-\d+$", "", name.split(".")[0]) if name.startswith("streamer-") else "other"


def thread_cpu() -> dict[int, tuple[str, float]]:
    """Every thread of this process: native id → (role, CPU seconds so far)."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            stat = Path(f"/proc/self/task/{tid}/stat").read_text()
        except OSError:  # the thread ended meanwhile
            continue
        fields = stat.rsplit(")", 1)[1].split()
        out[int(tid)] = (role(names.get(int(tid), "")), (int(fields[11]) + int(fields[12])) / tick)
    return out


def model_alone_ms(onnx: Path, calls: int = 300) -> float:
    """The model on one ONNX Runtime thread, batch 1, back to back: CPU ms per frame (p50)."""
    with create_backend("onnxruntime", onnx, BackendOptions(threads=1)) as backend:
        x = np.random.default_rng(0).random((1, 1, *[backend.info.input_size] * 2), np.float32)
        for _ in range(20):
            backend.infer(x)
        spent = []
        for _ in range(calls):
            t0 = time.thread_time()
            backend.infer(x)
            spent.append(time.thread_time() - t0)
    return round(float(np.median(spent)) * 1e3, 4)


def measure(plan: BenchPlan, n: int) -> dict:
    snaps = []
    point = run_streams(plan, n, threads=1, window=lambda: snaps.append(thread_cpu()))
    start, end = snaps
    spent = Counter()
    for tid, (name, cpu) in end.items():
        spent[name] += cpu - start.get(tid, (name, 0.0))[1]
    frames = sum(r["counts"]["processed"] for r in point["per_stream"].values())
    return {"streams": n, "held": point["held"], "p99_worst_ms": point["p99_worst_ms"],
            "dropped": point["dropped"], "frames": frames, "seconds": plan.duration_s,
            "cores_busy": round(sum(spent.values()) / plan.duration_s, 3),
            "cpu_ms_per_frame": {k: round(v * 1e3 / max(frames, 1), 4) for k, v in spent.most_common()}}


def budget(bound_fps: float, model_ms: float, cores: int) -> dict:
    """What the streams target leaves every frame outside the model, with every core busy."""
    streams = math.ceil(TARGET * bound_fps / STREAM_FPS)
    per_frame = cores * 1e3 / (streams * STREAM_FPS)
    return {"bound_fps": bound_fps, "target_streams": streams, "cores": cores,
            "cpu_ms_per_frame": round(per_frame, 4), "model_ms_per_frame": model_ms,
            "left_outside_the_model_ms": round(per_frame - model_ms, 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--streams", default="8,14")
    ap.add_argument("--duration", type=float, default=8.0)
    ap.add_argument("--bench", type=Path, required=True, help="a recorded bench JSON (its bound)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    bound = json.loads(args.bench.read_text())["targets"]["against_bounds"]
    bound_fps = bound["saturation_x_bound"]["by_precision"]["fp32"]["bound_fps"]
    onnx = default_onnx()
    plan = BenchPlan(onnx, duration_s=args.duration)
    model_ms = model_alone_ms(onnx)
    machine = describe()
    record = {"benchmark": "thread_cpu", "date": time.strftime("%Y-%m-%d"), "machine": machine,
              "bound_from": str(args.bench), "model_alone_1_thread_ms_per_frame": model_ms,
              "budget": budget(bound_fps, model_ms, machine["cores_usable"]),
              "points": [measure(plan, int(n)) for n in args.streams.split(",")]}
    emit(record, args.out)


if __name__ == "__main__":
    main()
