"""Replay speed of a recorded exam: a 1080p 30-frame DICOM cine loop of the simulated scanner
(with its tissue region), uncompressed RGB, uncompressed grey and baseline JPEG (YBR_FULL_422).

    python benchmarks/dicom_replay.py [--out benchmarks/results/dicom_replay.json]

Per format: opening the source (every check, plus the sector fit on 16 frames of the loop),
decoding one frame (median of 3 passes over the loop; for JPEG also through pydicom's plugin
instead of OpenCV), the source alone (frames/s, lossless) and
the whole pipeline with the bundled model (frames/s from the first to the last published result,
lossless, three passes over the loop).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from engines.backends import BackendOptions, create_backend
from engines.defaults import default_onnx
from engines.dicom import DicomLoop
from engines.simulator.dicom_export import simulated_cine, write_dicom
from streamer.bench.machine import describe as machine_info
from streamer.config import Config, override
from streamer.frames import SourceEnded
from streamer.pipeline import build_pipeline
from streamer.sinks.base import Sink
from streamer.sources import create_source

FORMATS = {"rgb": {}, "grey": {"grey": True}, "jpeg_ybr422": {"jpeg": True}}


class _Clock(Sink):
    """Notes when each result is published."""

    kind = "clock"

    class Options:  # no options
        pass

    def __init__(self):
        self.published, self._is_open, self.times = 0, False, []

    def _open(self) -> None:
        pass

    def _publish(self, result) -> None:
        self.times.append(time.perf_counter())


def _source_fps(spec: str) -> tuple[float, float]:
    t0 = time.perf_counter()
    src = create_source(spec).open()
    opened = time.perf_counter()
    n = 0
    try:
        while True:
            n += src.read(1.0) is not None
    except SourceEnded:
        pass
    done = time.perf_counter()
    src.close()
    return opened - t0, n / (done - opened)


def _pipeline_fps(spec: str, passes: int, frames: int) -> float:
    config = override(Config(), source={"spec": f"{spec},loop=1"},
                      pipeline={"max_frames": passes * frames})
    clock = _Clock().open()
    with create_backend("onnxruntime", default_onnx(), BackendOptions()) as backend:
        pipeline = build_pipeline(config, create_source(config.source.spec), backend, [clock])
        pipeline.start()
        while not pipeline.wait(0.1):
            pass
        pipeline.close()
    t = clock.times
    return (len(t) - 1) / (t[-1] - t[0])


def measure(folder: Path, frames: int = 30, width: int = 1920, height: int = 1080) -> dict:
    cine = simulated_cine(frames, width, height, seed=0)
    out = {}
    for name, kw in FORMATS.items():
        pixels = [f[:, :, 1].copy() for f in cine.frames] if kw.get("grey") else cine.frames
        path = write_dicom(folder / f"{name}.dcm", pixels, regions=cine.regions,
                           jpeg=kw.get("jpeg", False), frame_time_ms=1000 / 30)
        loop = DicomLoop(path)
        decode = []
        for _ in range(3):
            for i in range(loop.frames):
                t = time.perf_counter()
                loop.frame(i)
                decode.append(time.perf_counter() - t)
        row = {}
        if loop._opencv_jpeg:  # what pydicom's own plugin path costs, for comparison
            loop._opencv_jpeg = False
            slow = []
            for i in range(5):
                t = time.perf_counter()
                loop.frame(i)
                slow.append(time.perf_counter() - t)
            row["decode_ms_p50_pydicom_plugin"] = round(statistics.median(slow) * 1e3, 2)
        open_s, source_fps = _source_fps(f"dicom:{path}")
        out[name] = {"file_mb": round(path.stat().st_size / 2**20, 1),
                     "transfer_syntax": loop.syntax.name, "photometric": loop.photometric,
                     "decode_ms_p50": round(statistics.median(decode) * 1e3, 2),
                     "open_s": round(open_s, 3), "source_fps": round(source_fps, 1),
                     "pipeline_fps": round(_pipeline_fps(f"dicom:{path}", 3, frames), 1), **row}
        print(name, out[name], file=sys.stderr)
    return {"frames": frames, "size": [width, height], "machine": machine_info(), "formats": out}


def main() -> int:
    p = argparse.ArgumentParser(description="replay speed of a 1080p 30-frame DICOM cine loop")
    p.add_argument("--out", default="benchmarks/results/dicom_replay.json")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = measure(Path(tmp))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
