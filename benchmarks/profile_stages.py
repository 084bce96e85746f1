"""Where a frame's time goes: every pipeline stage run in one thread on replayed 1080p simulated
screens, timed per stage and profiled with cProfile (the pipeline's threads hide from cProfile).

    python benchmarks/profile_stages.py [--frames 300] [--out benchmarks/results/profile/NAME.txt]

OpenCV and ONNX Runtime run on one thread here, so the thread's own CPU time is all of a stage's
work: that figure holds on a busy machine, where wall times swell with other processes' load.
Prints wall and CPU mean/p50/p99 per stage and the functions that take the most time in each.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from engines.backends import BackendOptions, create_backend
from engines.defaults import default_onnx
from engines.simulator import LiveFeed, ReplayFeed
from streamer.config import PostprocessConfig, PreprocessConfig
from streamer.frames import Frame, FrameResult, Timing
from streamer.postprocess import Postprocessor
from streamer.preprocess import Preprocessor
from streamer.sinks.zmq_sink import ZmqSink


def profile(frames: int, model, width: int = 1920, height: int = 1080, top: int = 14) -> str:
    feed = ReplayFeed(LiveFeed(seed=0, width=width, height=height), 64)
    screens = [feed.next().image for _ in range(64)]
    out = io.StringIO()
    cv2.setNumThreads(1)
    with create_backend("onnxruntime", model, BackendOptions(threads=1)) as backend:
        info = backend.info
        pre = Preprocessor.for_model(PreprocessConfig(), info)
        post = Postprocessor(info.classes, info.activation, PostprocessConfig())
        sink = ZmqSink(endpoint="tcp://127.0.0.1:*", maps=True).open()
        for i in range(70):  # past the start-up fan searches and the sector fit
            p = pre.process(Frame(i, screens[i % 64].copy()))
        times = {s: [] for s in ("copy", "preprocess", "inference", "postprocess", "publish")}
        cpu = {s: [] for s in times}
        profiles = {s: cProfile.Profile() for s in times}

        profiling = False

        def timed(stage, fn, *args):
            if profiling:  # the second pass: profiled, not timed
                profiles[stage].enable()
                value = fn(*args)
                profiles[stage].disable()
                return value
            t0, c0 = time.perf_counter(), time.thread_time()
            value = fn(*args)
            cpu[stage].append(time.thread_time() - c0)
            times[stage].append(time.perf_counter() - t0)
            return value

        for i in range(2 * frames):
            profiling = i >= frames
            image = timed("copy", np.copy, screens[i % 64])  # what a source's own copy costs
            frame = Frame(i, image)
            p = timed("preprocess", pre.process, frame)
            o = timed("inference", backend.infer, p.tensor)
            classes, maps = timed("postprocess", post.process, o.scores[0], o.maps[0], p.crop)
            result = FrameResult("main", i, None, image.shape[:2], classes, Timing(capture=0), maps)
            timed("publish", sink.publish, result)
        sink.close()
    print(f"{frames} frames, {width}x{height}, {model}; OpenCV and ONNX Runtime on 1 thread; "
          f"load average {os.getloadavg()}", file=out)
    for kind, table in (("wall", times), ("cpu", cpu)):
        for stage, v in table.items():
            ms = np.asarray(v) * 1e3
            print(f"{kind:<5}{stage:<12} mean {ms.mean():7.3f} ms  p50 {np.median(ms):7.3f}  "
                  f"p99 {np.percentile(ms, 99):7.3f}", file=out)
    for stage, prof in profiles.items():
        print(f"\n=== {stage} (cProfile, cumulative; includes cProfile's own overhead) ===", file=out)
        stats = pstats.Stats(prof, stream=out)
        stats.sort_stats("cumulative").print_stats(top)
    return out.getvalue()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--model", default=None)
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    text = profile(args.frames, args.model or default_onnx())
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
