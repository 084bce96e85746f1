"""A source whose frame size changes on every frame (1920x1080, 1280x720, 800x600 in turn) against
constant-size runs of the same frames: do the results agree, what does it cost, how much is logged?

    python benchmarks/size_churn.py [--frames 300] [--seed 11] [--seconds 10]
                                    [--json benchmarks/results/size_churn.json --label after]

Offline (every frame in order, fan searches inline, the bundled model): the same sweep drawn as
a scanner screen (`tests/screens.py`, black UI, all annotations) at the three sizes. Each size's
constant run sees every frame at that size; the alternating run sees frame i at size i mod 3.
Compared at each alternating frame with the constant run of its size: the decisions (present or
not, per class), the peaks of regions present in both (pixels apart), the model input (identical
or not) against a run of that size's frames alone (every third frame: the alternating run's own
frames of that size), results flagged unsettled, preprocess CPU time per frame (thread time,
searches included) and log lines (INFO and above) per frame. Then six sizes in turn (more than
are kept) over half as many frames: the same costs, and the most sizes kept at once.

Through the pipeline (``--seconds``, 0 to skip): a live source replays pre-drawn frames at 30 fps,
all at 1080p or alternating sizes; frames dropped, process CPU time per frame, results flagged
unsettled, log lines. Run from the repository root, before and after a change (an older checkout
first on PYTHONPATH), each with its own --label.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import threading
import time

import numpy as np

from engines.backends import create_backend
from engines.defaults import default_onnx
from engines.ood import load as load_ood
from engines.simulator import LiveFeed
from streamer.config import Config, MetricsConfig, PostprocessConfig, PreprocessConfig
from streamer.frames import Frame
from streamer.postprocess import Postprocessor
from streamer.preprocess import Preprocessor
from streamer.sources.base import Pacer
from tests.screens import ANNOTATIONS, HospitalScreen, ScreenSpec  # run from the repository root

SIZES = ((1920, 1080), (1280, 720), (800, 600))
MANY = ((1920, 1080), (1600, 900), (1280, 720), (1024, 576), (960, 540), (800, 600))
WARMUP = 60  # frames after which every size's fan has had time to settle
REPLAY_FRAMES = 90  # distinct frames the pipeline's live source replays in a loop


class LineCounter(logging.Handler):
    """Counts log records at INFO and above, per chain (``chain`` names the one running)."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.chain, self.counts = "", {}

    def emit(self, record: logging.LogRecord) -> None:
        self.counts[self.chain] = self.counts.get(self.chain, 0) + 1


class Chain:
    """Preprocess → model → postprocess for one run, timing the preprocess stage's CPU."""

    def __init__(self, backend, name: str, lines: LineCounter):
        info = backend.info
        self.backend, self.name, self.lines = backend, name, lines
        self.pre = Preprocessor.for_model(PreprocessConfig(), info)
        self.post = Postprocessor(info.classes, info.activation, PostprocessConfig(),
                                  ood=load_ood(getattr(backend, "model_path", None)))
        self.cpu_ns, self.frames, self.unsettled = 0, 0, 0

    def prepare(self, seq: int, image: np.ndarray):
        self.lines.chain = self.name
        t0 = time.thread_time_ns()
        prepared = self.pre.process(Frame(seq, image))
        self.cpu_ns += time.thread_time_ns() - t0
        self.lines.chain = ""
        self.frames += 1
        self.unsettled += not prepared.fan.settled
        return prepared

    def __call__(self, seq: int, image: np.ndarray):
        prepared = self.prepare(seq, image)
        out = self.backend.infer(prepared.tensor)
        return prepared, self.post.process(out.scores[0], out.maps[0], prepared.crop)[0]


def offline(backend, frames: int, seed: int, lines: LineCounter) -> dict:
    spec = dict(ui="black", annotations=ANNOTATIONS)
    screens = [HospitalScreen(LiveFeed(seed=seed), ScreenSpec(width=w, height=h, **spec))
               for w, h in SIZES]
    constant = [Chain(backend, f"constant {w}x{h}", lines) for w, h in SIZES]
    alone = [Chain(backend, f"alone {w}x{h}", lines) for w, h in SIZES]
    churn = Chain(backend, "alternating", lines)
    agree = [0, 0, 0, 0]  # decisions agreeing, decisions (all frames); the same after warm-up
    offsets, same_input = [], 0
    for i in range(frames):
        images = [s.frame(i).image for s in screens]
        k = i % len(SIZES)
        reference = [c(i, im) for c, im in zip(constant, images, strict=True)][k]
        prepared, classes = churn(i, images[k])
        same_input += bool(np.array_equal(prepared.tensor, alone[k].prepare(i, images[k]).tensor))
        for a, b in zip(classes, reference[1], strict=True):
            agree[0] += a.present == b.present
            agree[1] += 1
            if i >= WARMUP:
                agree[2] += a.present == b.present
                agree[3] += 1
            if a.present and b.present and a.peak is not None and b.peak is not None:
                offsets.append(float(np.hypot(a.peak[0] - b.peak[0], a.peak[1] - b.peak[1])))
    cpu = lambda cs: sum(c.cpu_ns for c in cs) / max(1, sum(c.frames for c in cs)) / 1e6  # noqa: E731
    off = np.array(offsets or [0.0])
    constant_lines = sum(lines.counts.get(c.name, 0) for c in constant)
    return {
        "frames": frames, "seed": seed, "sizes": [f"{w}x{h}" for w, h in SIZES],
        "decisions_agree_pct": round(100 * agree[0] / max(1, agree[1]), 1),
        "decisions_agree_after_warmup_pct": round(100 * agree[2] / max(1, agree[3]), 1),
        "peak_offset_px": {"mean": round(float(off.mean()), 2),
                           "median": round(float(np.median(off)), 2),
                           "p95": round(float(np.percentile(off, 95)), 2),
                           "max": round(float(off.max()), 2), "peaks": len(offsets)},
        "model_input_identical_to_size_alone_pct": round(100 * same_input / frames, 1),
        "unsettled_pct": {"alternating": round(100 * churn.unsettled / frames, 1),
                          "constant": round(100 * sum(c.unsettled for c in constant)
                                            / max(1, sum(c.frames for c in constant)), 1)},
        "preprocess_cpu_ms_per_frame": {"alternating": round(cpu([churn]), 3),
                                        "constant": round(cpu(constant), 3)},
        "log_lines_per_frame": {"alternating": round(lines.counts.get("alternating", 0) / frames, 3),
                                "constant": round(constant_lines / (frames * len(SIZES)), 3)},
    }


def many_sizes(backend, frames: int, seed: int, lines: LineCounter) -> dict:
    """More sizes in turn than are kept: what it costs and logs, and how many sizes are kept."""
    spec = dict(ui="black", annotations=ANNOTATIONS)
    screens = [HospitalScreen(LiveFeed(seed=seed), ScreenSpec(width=w, height=h, **spec))
               for w, h in MANY]
    churn = Chain(backend, "many", lines)
    kept = 0
    for i in range(frames):
        churn.prepare(i, screens[i % len(MANY)].frame(i).image)
        kept = max(kept, len(getattr(churn.pre, "sizes", ())))
    return {"frames": frames, "sizes": [f"{w}x{h}" for w, h in MANY],
            "preprocess_cpu_ms_per_frame": round(churn.cpu_ns / frames / 1e6, 3),
            "unsettled_pct": round(100 * churn.unsettled / frames, 1),
            "log_lines_per_frame": round(lines.counts.get("many", 0) / frames, 3),
            "most_sizes_kept": kept or None}


class Replay:
    """A live source replaying pre-drawn frames at ``fps`` (a capture card's pace)."""

    kind, live = "replay", True

    def __init__(self, images: list[np.ndarray], fps: float = 30.0):
        self.images, self.pacer, self.seq = images, Pacer(fps), 0

    def open(self):
        return self

    def read(self, timeout: float):
        if not self.pacer.wait(timeout):
            return None
        image = self.images[self.seq % len(self.images)]
        self.seq += 1
        return Frame(self.seq, image)

    def close(self) -> None:
        pass

    def describe(self) -> dict:
        return {"kind": self.kind, "live": True}


class Flags:
    """A sink that counts the results published and those flagged unsettled."""

    def __init__(self):
        self.results = self.unsettled = 0

    def open(self):
        return self

    def publish(self, result) -> None:
        self.results += 1
        self.unsettled += result.fan is not None and not result.fan.settled

    def close(self) -> None:
        pass


def through_pipeline(images: list[np.ndarray], seconds: float, lines: LineCounter) -> dict:
    """One run of ``seconds`` (the pipeline closes its backend: one of its own)."""
    from streamer.pipeline import build_pipeline

    config = Config(metrics=MetricsConfig(port=0))
    backend = create_backend("onnxruntime", str(default_onnx())).open()
    flags = Flags()
    pipeline = build_pipeline(config, Replay(images), backend, [flags])
    lines.chain = "pipeline"  # every thread's lines count for it (the chain is global)
    before = lines.counts.get("pipeline", 0)
    pipeline.start()
    c0, t0 = time.process_time(), time.monotonic()
    threading.Event().wait(seconds)
    c1, t1 = time.process_time(), time.monotonic()
    pipeline.stop()
    counts = pipeline.close()
    lines.chain = ""
    n = max(1, counts["captured"])
    return {"captured": counts["captured"], "processed": counts["processed"],
            "dropped_pct": round(100 * counts["dropped"] / n, 1),
            "cpu_ms_per_frame": round((c1 - c0) / max(1, counts["processed"]) * 1e3, 2),
            "invalid": counts["invalid"], "cores_busy": round((c1 - c0) / (t1 - t0), 2),
            "unsettled_pct": round(100 * flags.unsettled / max(1, flags.results), 1),
            "log_lines_per_frame": round((lines.counts.get("pipeline", 0) - before) / n, 3)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--seconds", type=float, default=10.0, help="pipeline run per case (0: skip)")
    ap.add_argument("--json", help="add the record to this file (JSON), under --label")
    ap.add_argument("--label", default="now", help="the record's key in --json (before, after)")
    args = ap.parse_args(argv)
    lines = LineCounter()
    logging.getLogger("streamer").addHandler(lines)
    logging.getLogger("streamer").setLevel(logging.INFO)
    record = {"what": __doc__.split("\n\n")[0].replace("\n", " "),
              "host": f"{platform.machine()}, {os.cpu_count()} cores, load average "
                      f"{os.getloadavg()[0]:.1f} at start"}
    with create_backend("onnxruntime", str(default_onnx())) as backend:
        record["offline"] = r = offline(backend, args.frames, args.seed, lines)
        print(json.dumps(r, indent=1), flush=True)
        record["more_sizes_than_kept"] = m = many_sizes(backend, args.frames // 2, args.seed, lines)
        print(json.dumps(m, indent=1), flush=True)
    if args.seconds > 0:
        spec = dict(ui="black", annotations=ANNOTATIONS)
        screens = [HospitalScreen(LiveFeed(seed=args.seed), ScreenSpec(width=w, height=h, **spec))
                   for w, h in SIZES]
        n = REPLAY_FRAMES
        runs = {"constant 1920x1080": [screens[0].frame(i).image for i in range(n)],
                "alternating": [screens[i % 3].frame(i).image for i in range(n)]}
        record["pipeline_30fps"] = p = {name: through_pipeline(images, args.seconds, lines)
                                        for name, images in runs.items()}
        print(json.dumps(p, indent=1), flush=True)
    if args.json:
        try:
            with open(args.json) as fh:
                records = json.load(fh)
        except FileNotFoundError:
            records = {}
        records[args.label] = record
        with open(args.json, "w") as fh:
            json.dump(records, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
