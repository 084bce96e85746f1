"""What the live viewer costs the pipeline: the same simulated feed run three ways side by side —
no viewer, the viewer with no browser, the viewer with a client reading its event stream (curl, in
its own process, like a browser) — recording the viewer's publish() call per frame, the pipeline's
publish stage and capture→publish latency, the fps, and the viewer's own render time.

    PYTHONPATH=. python3 benchmarks/viewer_cost.py --seconds 20 --out benchmarks/results/viewer_cost.json
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import time
from pathlib import Path

import numpy as np
from json_record import emit
from timed_sink import TimedSink

from engines.backends import BackendOptions, create_backend
from engines.defaults import default_onnx
from streamer.config import Config
from streamer.pipeline import build_pipeline
from streamer.sinks.viewer_sink import ViewerSink
from streamer.sources import create_source


def run_once(mode: str, seconds: float, source_spec: str) -> dict:
    backend = create_backend("onnxruntime", default_onnx(), BackendOptions())
    backend.open()
    sinks, viewer, client = [], None, None
    if mode != "no viewer":
        viewer = ViewerSink(port=0).open()
        sinks.append(TimedSink(viewer))
    if mode == "viewer + client":
        client = subprocess.Popen(["curl", "-sN", viewer.url + "events", "-o", "/dev/null"])
        time.sleep(0.5)
    pipeline = build_pipeline(Config(), create_source(source_spec), backend, sinks)
    pipeline.start()
    pipeline.wait(seconds)
    pipeline.stop()
    counts = pipeline.close()
    latency = pipeline.latency.summary_ms()
    row = {"mode": mode, "counts": counts,
           "fps": round(counts["processed"] / seconds, 2),
           "capture_to_publish_ms": latency.get("capture_to_publish"),
           "publish_stage_ms": latency.get("publish")}
    if viewer is not None:
        calls = np.asarray(sinks[0].calls, np.float64) / 1e3
        row["viewer_publish_us"] = {"p50": round(float(np.percentile(calls, 50)), 2),
                                    "p99": round(float(np.percentile(calls, 99)), 2),
                                    "max": round(float(calls.max()), 2), "calls": len(calls)}
        row["viewer"] = {k: v for k, v in viewer.describe().items()
                         if k in ("encoded", "skipped", "failed", "encode_ms_mean")}
    if client is not None:
        client.terminate()
        client.wait()
    backend.close()
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--source", default="sim")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    rows = [run_once(mode, args.seconds, args.source)
            for mode in ("no viewer", "viewer, no client", "viewer + client")]
    record = {"benchmark": "viewer_cost", "source": args.source, "seconds": args.seconds,
              "machine": platform.processor() or platform.machine(),
              "date": time.strftime("%Y-%m-%d"), "rows": rows}
    emit(record, args.out)


if __name__ == "__main__":
    main()
