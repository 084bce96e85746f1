"""The least CPU a frame can cost: every stage of the hot path run to completion, one frame after
another, on one thread, with no hand-over between threads: preprocess (fan crop, polar input;
background looks off), the model (ONNX Runtime, one thread, batch 1), postprocess (probabilities,
peaks, boxes, uint8 maps, familiarity) and publish (the ZMQ det message, maps included), over N
simulated 1080p scanners taken in turn, each frame a different 6 MB buffer (cold, as captured).
With P processes, each runs N/P of the scanners this way at the same time, one per core: where
their figures match one process's, the cores do not slow each other down.

Streams at full CPU: how many 30 fps streams that cost would hold with every core busy on
nothing else (no background fan looks, no scheduling slack): what the streams and saturation
targets are measured against.

    PYTHONPATH=. python3 benchmarks/serial_floor.py --configs 1x1,1x14,2x14 \\
        --out benchmarks/results/serial_floor/2026-12-05-cpu2.json
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
from json_record import emit
from streams_processes import at_once, parse_configs

from engines.backends import BackendOptions, create_backend
from engines.defaults import default_onnx
from engines.ood import load as load_ood
from engines.simulator import LiveFeed, ReplayFeed
from streamer.bench.machine import describe
from streamer.config import PostprocessConfig, PreprocessConfig
from streamer.frames import Frame, FrameResult, Timing
from streamer.postprocess import Postprocessor
from streamer.preprocess import Preprocessor
from streamer.sinks.zmq_sink import ZmqSink

STAGES = ("preprocess", "model", "postprocess", "publish")
FPS = 30.0
SCREENS = 8  # per scanner, as the streams bench replays them
SETTLE = 70  # frames each scanner's preprocessor sees (looks inline) before the timed ones


def streams_at_full_cpu(cores: int, ms_per_frame: float, fps: float = FPS) -> float:
    """30 fps streams that ``ms_per_frame`` of CPU each frame allows on ``cores`` busy cores."""
    return cores * 1e3 / (fps * ms_per_frame)


def summarise(spent: dict[str, list[float]]) -> dict:
    """CPU ms per frame, mean by stage and their sum (every frame went through every stage)."""
    frames = {len(v) for v in spent.values()}
    if len(frames) != 1:
        raise ValueError(f"stages timed on different numbers of frames: {sorted(frames)}")
    mean = {s: round(float(np.mean(v)) * 1e3, 4) for s, v in spent.items()}
    return {"frames": frames.pop(), "cpu_ms_per_frame": mean,
            "total_ms": round(sum(mean.values()), 4)}


def settled_preprocessor(info, screens: list) -> Preprocessor:
    """A model's preprocessor past its start-up looks (SETTLE frames of ``screens``, looked at
    inline), with its background looks off: what the hot path alone costs."""
    pre = Preprocessor.for_model(PreprocessConfig(), info)
    for i in range(SETTLE):
        pre.process(Frame(i, screens[i % len(screens)]))
    pre.request_search = lambda *args: None
    return pre


def run_lanes(onnx: str, seeds: list[int], frames_per_lane: int, width: int = 1920,
              height: int = 1080) -> dict:
    """One thread: each scanner's frames in turn through every stage, each stage's thread CPU."""
    cv2.setNumThreads(1)
    backend = create_backend("onnxruntime", Path(onnx), BackendOptions(threads=1)).open()
    info = backend.info
    ood = load_ood(getattr(backend, "model_path", None))  # as the pipeline loads it
    sink = ZmqSink(endpoint="tcp://127.0.0.1:*", maps=True).open()
    lanes = []
    for seed in seeds:
        feed = ReplayFeed(LiveFeed(seed=seed, width=width, height=height), SCREENS)
        screens = [feed.next().image for _ in range(SCREENS)]
        pre = settled_preprocessor(info, screens)
        post = Postprocessor(info.classes, info.activation, PostprocessConfig(), ood=ood)
        lanes.append((f"s{seed + 1}", pre, post, screens))
    spent: dict[str, list[float]] = {s: [] for s in STAGES}
    clock = time.thread_time
    try:
        for i in range(frames_per_lane):
            for stream, pre, post, screens in lanes:
                image = screens[i % SCREENS]
                t0 = clock()
                prepared = pre.process(Frame(i, image))
                t1 = clock()
                out = backend.infer(prepared.tensor)
                t2 = clock()
                classes, maps = post.process(out.scores[0], out.maps[0], prepared.crop)
                ood, familiar = post.familiarity(out.scores[0], None if out.features is None
                                                 else out.features[0])
                result = FrameResult(stream, i, None, image.shape[:2], classes, Timing(capture=0),
                                     maps, ood=ood, familiar=familiar, fan=prepared.fan)
                t3 = clock()
                sink.publish(result)
                t4 = clock()
                for stage, a, b in zip(STAGES, (t0, t1, t2, t3), (t1, t2, t3, t4), strict=True):
                    spent[stage].append(b - a)
    finally:
        sink.close()
        backend.close()
    return {"scanners": len(seeds), **summarise(spent)}


def _in_process(onnx: str, seeds: list[int], frames_per_lane: int, results) -> None:
    results.put(run_lanes(onnx, seeds, frames_per_lane))


def run_config(onnx: Path, procs: int, scanners: int, frames_per_lane: int, cores: int) -> dict:
    """``scanners`` split over ``procs`` processes running at once (one: in this process)."""
    if procs == 1:
        parts = [run_lanes(str(onnx), list(range(scanners)), frames_per_lane)]
    else:
        parts = at_once(_in_process, [(str(onnx), list(range(scanners))[p::procs], frames_per_lane)
                                      for p in range(procs)])
    frames = sum(p["frames"] for p in parts)
    mean = {s: round(sum(p["cpu_ms_per_frame"][s] * p["frames"] for p in parts) / frames, 4)
            for s in STAGES}
    total = round(sum(mean.values()), 4)
    return {"processes": procs, "scanners": scanners, "frames": frames, "cpu_ms_per_frame": mean,
            "total_ms": total, "streams_at_full_cpu": round(streams_at_full_cpu(cores, total), 2),
            "per_process": parts}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", default="1x1,1x14,2x14",
                    help="PROCESSESxSCANNERS, comma-separated (the scanners split over the processes)")
    ap.add_argument("--frames", type=int, default=40, help="timed frames per scanner")
    ap.add_argument("--model", type=Path, default=default_onnx())
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    machine = describe()
    runs = []
    for procs, scanners in parse_configs(args.configs):
        row = run_config(args.model, procs, scanners, args.frames, machine["cores_usable"])
        print(f"{procs} x {scanners}: {row['cpu_ms_per_frame']} = {row['total_ms']} ms, "
              f"{row['streams_at_full_cpu']} streams at full CPU", flush=True)
        runs.append(row)
    emit({"benchmark": "serial_floor", "date": time.strftime("%Y-%m-%d"), "machine": machine,
          "model": args.model.name, "fps": FPS, "runs": runs}, args.out)


if __name__ == "__main__":
    main()
