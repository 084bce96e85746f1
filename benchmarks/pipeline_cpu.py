"""The pipeline's own CPU cost per frame, steady state: process CPU time over a window after the
warm-up, divided by the frames processed in it. Unlike wall-clock latency this barely moves when
other jobs load the machine, so two versions of the engine can be compared on a busy host.

    python benchmarks/pipeline_cpu.py [--fps 30] [--seconds 6] [--threads 1]   (no --fps: saturation)

Uses only the pipeline's long-standing interface, so it also measures older versions (run it with
their checkout first on PYTHONPATH).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time

from engines.backends import BackendOptions, create_backend
from engines.defaults import default_onnx
from streamer.config import Config, MetricsConfig, PublishConfig, SourceConfig
from streamer.pipeline import build_pipeline
from streamer.sinks.zmq_sink import ZmqSink
from streamer.sources import create_source


def measure(fps: float | None, seconds: float, threads: int, warmup_s: float = 2.0,
            in_source: bool = False) -> dict:
    pace = f"fps={fps:g},realtime=1" if fps else "realtime=0"
    spec = f"sim:seed=0,{pace},replay=64,width=1920,height=1080"
    config = Config(source=SourceConfig(spec=spec), metrics=MetricsConfig(port=0),
                    publish=PublishConfig(endpoint="tcp://127.0.0.1:*", stream="cpu"))
    if in_source:  # newer versions only
        pipeline = dataclasses.replace(config.pipeline, preprocess_in_source=True)
        config = dataclasses.replace(config, pipeline=pipeline)
    backend = create_backend("onnxruntime", default_onnx(), BackendOptions(threads=threads)).open()
    sink = ZmqSink(endpoint="tcp://127.0.0.1:*", maps=True).open()
    pipeline = build_pipeline(config, create_source(spec), backend, [sink])
    pipeline.start()
    try:
        time.sleep(warmup_s)  # past the start-up searches and the sector fit
        n0, c0, w0 = pipeline.accounting.snapshot()["processed"], time.process_time(), time.monotonic()
        time.sleep(seconds)
        n1, c1, w1 = pipeline.accounting.snapshot()["processed"], time.process_time(), time.monotonic()
    finally:
        pipeline.stop()
        pipeline.close()
    frames = max(1, n1 - n0)
    return {"frames": n1 - n0, "cpu_ms_per_frame": (c1 - c0) / frames * 1e3,
            "frames_per_s": (n1 - n0) / (w1 - w0), "cores_busy": (c1 - c0) / (w1 - w0)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--fps", type=float)
    p.add_argument("--seconds", type=float, default=6.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--preprocess-in-source", action="store_true",
                   help="preprocess in the source thread instead of a thread of its own")
    args = p.parse_args(argv)
    r = measure(args.fps, args.seconds, args.threads, in_source=args.preprocess_in_source)
    label = f"{args.fps:g} fps" if args.fps else "saturation"
    print(f"{label}: {r['cpu_ms_per_frame']:.2f} ms CPU per frame over {r['frames']} frames "
          f"({r['frames_per_s']:.1f} frames/s, {r['cores_busy']:.2f} cores busy)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
