"""The engine on scanner screens drawn like real machines' output (`tests/screens.py`: a body
mark, measurement boxes, calipers, text, arrows, grey-scale bar, black or grey UI, depth and zoom
changes, dual and frozen views, colour Doppler), each around a simulated sweep whose labels and
boxes are known, through the live path: preprocess (fan search inline, every frame in order) →
model → postprocess.

    python benchmarks/real_screens.py [--model M.onnx] [--frames 240] [--seeds 11,12,13]
                                      [--only NAME,...] [--json OUT]
    python benchmarks/real_screens.py --table BEFORE.json NOW.json   (the docs' table)

Per screen, over every frame of every sweep: the fan right (the crop's fitted sector covers the
live view's true sector with IoU ≥ 0.9), decision accuracy against the live view's labels,
confident (score ≥ 0.9) false positives per frame, peaks of present regions inside the live view, results
flagged (unfamiliar, not settled, frozen, Doppler), frames until the fan is right again after a
layout change, and the preprocess stage's time per frame (median, 95th percentile).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field

import numpy as np

from engines.backends import create_backend
from engines.defaults import default_onnx
from engines.ood import load as load_ood
from streamer.config import PostprocessConfig, PreprocessConfig
from streamer.frames import Frame
from streamer.postprocess import Postprocessor
from streamer.preprocess import PolarCrop, Preprocessor
from tests.screens import HospitalScreen, ScreenSpec  # run from the repository root

ALL = ("bodymark", "resultbox", "calipers", "text", "arrow")
SCREENS = {
    "clean, grey UI (control)": ScreenSpec(),
    "all annotations": ScreenSpec(annotations=ALL),
    "body mark alone": ScreenSpec(annotations=("bodymark",)),
    "result box alone": ScreenSpec(annotations=("resultbox",)),
    "calipers + text on the image": ScreenSpec(annotations=("calipers", "text")),
    "clean, black UI": ScreenSpec(ui="black"),
    "black UI + JPEG q12": ScreenSpec(ui="black", jpeg=12),
    "black UI + all annotations": ScreenSpec(ui="black", annotations=ALL),
    "depth change (fan shrinks)": ScreenSpec(changes=((60, 0.8, 0.0, 0.0),)),
    "zoom (grows, moves)": ScreenSpec(changes=((60, 1.25, 0.0, 0.04),)),
    "dual view (live left, frozen right)": ScreenSpec(dual=True, frozen_at=40),
    "frozen 5 s": ScreenSpec(freeze=(60, 210)),
    "colour Doppler box": ScreenSpec(doppler=True),
    "720p, all annotations": ScreenSpec(width=1280, height=720, annotations=ALL),
}
RIGHT_IOU = 0.9  # a crop's sector this close to the truth is the fan "right"
STEP = 4  # the IoU is measured on a grid of every 4th screen pixel


def _sector_on_grid(apex, r_min, r_max, a_min, a_max, grid) -> np.ndarray:
    ys, xs = np.mgrid[0 : grid[0], 0 : grid[1]]
    dx, dy = (xs + 0.5) * STEP - apex[0], (ys + 0.5) * STEP - apex[1]
    r, a = np.hypot(dx, dy), np.arctan2(dx, dy)
    return (r >= r_min) & (r <= r_max) & (a >= a_min) & (a <= a_max)


def sector_iou(crop, truth, shape) -> float:
    """IoU of the crop's fitted sector and the true one, on a STEP-subsampled screen grid (the
    part of a zoomed sector beyond the screen does not count). No sector fitted: 0."""
    if not isinstance(crop, PolarCrop):
        return 0.0
    g, grid = crop.polar.geometry, (shape[0] // STEP, shape[1] // STEP)
    a = _sector_on_grid((g.apex[0] + crop.x, g.apex[1] + crop.y), g.r_min, g.r_max,
                        g.angle_min, g.angle_max, grid)
    b = _sector_on_grid(truth.apex, truth.r_min, truth.r_max, truth.angle_min, truth.angle_max,
                        grid)
    union = np.count_nonzero(a | b)
    return np.count_nonzero(a & b) / union if union else 0.0


@dataclass
class Tally:
    frames: int = 0
    right: int = 0
    correct: int = 0
    decisions: int = 0
    false_pos: int = 0
    peaks_in: int = 0
    peaks: int = 0
    unfamiliar: int = 0
    unsettled: int = 0
    frozen_frames: int = 0
    frozen_flagged: int = 0
    live_flagged_frozen: int = 0
    doppler_flagged: int = 0
    recover: list = field(default_factory=list)  # frames from a layout change to the fan right
    preprocess_ms: list = field(default_factory=list)

    def row(self) -> dict:
        n = max(self.frames, 1)
        pct = lambda a, b: round(100 * a / b, 1) if b else None  # noqa: E731
        ms = np.array(self.preprocess_ms) if self.preprocess_ms else np.zeros(1)
        return {"frames": self.frames, "fan_right": pct(self.right, n),
                "accuracy": pct(self.correct, self.decisions),
                "false_positives_per_frame": round(self.false_pos / n, 3),
                "peaks_in_live_view": pct(self.peaks_in, self.peaks),
                "unfamiliar": pct(self.unfamiliar, n), "unsettled": pct(self.unsettled, n),
                "frozen_flagged": pct(self.frozen_flagged, self.frozen_frames),
                "live_flagged_frozen": pct(self.live_flagged_frozen, n - self.frozen_frames),
                "doppler_flagged": pct(self.doppler_flagged, n),
                "frames_to_right_after_change": self.recover or None,
                "preprocess_ms_p50": round(float(np.percentile(ms, 50)), 3),
                "preprocess_ms_p95": round(float(np.percentile(ms, 95)), 3)}


def run_screen(backend, spec: ScreenSpec, seeds, frames: int) -> dict:
    from engines.simulator import LiveFeed

    info, tally = backend.info, Tally()
    post = Postprocessor(info.classes, info.activation, PostprocessConfig(),
                         ood=load_ood(getattr(backend, "model_path", None)))
    for seed in seeds:
        screen = HospitalScreen(LiveFeed(seed=seed), spec)
        pre = Preprocessor.for_model(PreprocessConfig(), info)
        changes = [c[0] for c in spec.changes]
        pending = None
        for i in range(frames):
            shown = screen.frame(i)
            t0 = time.perf_counter()
            prepared = pre.process(Frame(i, shown.image))
            tally.preprocess_ms.append(1e3 * (time.perf_counter() - t0))
            out = backend.infer(prepared.tensor)
            classes, _ = post.process(out.scores[0], out.maps[0], prepared.crop)
            ood, familiar = post.familiarity(out.scores[0], None if out.features is None
                                             else out.features[0])
            live = shown.views[0]
            right = sector_iou(prepared.crop, live.sector, shown.image.shape[:2]) >= RIGHT_IOU
            if i in changes:
                pending = i
            if pending is not None and right:
                tally.recover.append(i - pending)
                pending = None
            tally.frames += 1
            tally.right += right
            tally.unfamiliar += familiar is False
            fan = getattr(prepared, "fan", None)  # what the engine says of the screen, if anything
            frozen, doppler = getattr(prepared, "frozen", False), getattr(prepared, "doppler", False)
            tally.unsettled += fan is not None and not fan.settled
            tally.doppler_flagged += doppler
            if shown.frozen:
                tally.frozen_frames += 1
                tally.frozen_flagged += frozen
            else:
                tally.live_flagged_frozen += frozen
            x, y, w, h = live.rect
            for c, label in zip(classes, live.labels, strict=True):
                tally.decisions += 1
                tally.correct += c.present == bool(label)
                tally.false_pos += c.present and not label and c.score >= 0.9
                if c.present and c.peak is not None:
                    tally.peaks += 1
                    tally.peaks_in += x <= c.peak[0] < x + w and y <= c.peak[1] < y + h
        if pending is not None:
            tally.recover.append(None)  # never right again within the run
    return tally.row()


BEGIN, END = "<!-- real-screens table: begin -->", "<!-- real-screens table: end -->"
RECORDS = ("benchmarks/results/screens/before.json", "benchmarks/results/screens/now.json")


def _cell(before, now, unit: str = "") -> str:
    return f"{'-' if before is None else before}{unit} → **{'-' if now is None else now}{unit}**"


def table(before: dict, now: dict) -> str:
    """The docs' table (docs/scanner-screens.md) from the two records, screen by screen."""
    lines = ["| screen | fan right | accuracy | confident false positives / frame | unfamiliar "
             "| flagged now | preprocess p50 ms (searches inline) |",
             "|---|---|---|---|---|---|---|"]
    for name, n in now["rows"].items():
        b = before["rows"][name]
        flags = [f"unsettled {n['unsettled']}%"]
        if n["frozen_flagged"] is not None:
            flags.append(f"frozen: {n['frozen_flagged']}% of frozen frames")
        if n["doppler_flagged"]:
            flags.append(f"Doppler: {n['doppler_flagged']}%")
        if n["frames_to_right_after_change"]:
            flags.append(f"fan right again after {n['frames_to_right_after_change']} frames "
                         f"(before: {b['frames_to_right_after_change']})")
        lines.append(f"| {name} | {_cell(b['fan_right'], n['fan_right'], '%')} | "
                     f"{_cell(b['accuracy'], n['accuracy'], '%')} | "
                     f"{_cell(b['false_positives_per_frame'], n['false_positives_per_frame'])} | "
                     f"{_cell(b['unfamiliar'], n['unfamiliar'], '%')} | {'; '.join(flags)} | "
                     f"{_cell(b['preprocess_ms_p50'], n['preprocess_ms_p50'])} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="ONNX model (default: the bundled one)")
    ap.add_argument("--frames", type=int, default=240)
    ap.add_argument("--seeds", default="11,12,13")
    ap.add_argument("--only", default="", help="comma-separated screen names (substrings)")
    ap.add_argument("--json", help="write the rows here")
    ap.add_argument("--table", nargs=2, metavar=("BEFORE", "NOW"),
                    help="print the docs' table from two records and stop")
    args = ap.parse_args(argv)
    if args.table:
        before, now = (json.loads(open(path).read()) for path in args.table)
        print(table(before, now))
        return 0
    seeds = [int(s) for s in args.seeds.split(",")]
    wanted = [w.strip() for w in args.only.split(",") if w.strip()]
    rows = {}
    with create_backend("onnxruntime", args.model or str(default_onnx())) as backend:
        for name, spec in SCREENS.items():
            if wanted and not any(w in name for w in wanted):
                continue
            t0 = time.perf_counter()
            rows[name] = r = run_screen(backend, spec, seeds, args.frames)
            print(f"{name}: fan right {r['fan_right']}%, accuracy {r['accuracy']}%, "
                  f"false pos/frame {r['false_positives_per_frame']}, unfamiliar {r['unfamiliar']}%, "
                  f"unsettled {r['unsettled']}%, frozen flagged {r['frozen_flagged']}%, "
                  f"doppler {r['doppler_flagged']}%, recover {r['frames_to_right_after_change']}, "
                  f"preprocess p50 {r['preprocess_ms_p50']} ms ({time.perf_counter() - t0:.0f} s)",
                  flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"what": "scanner screens drawn like real machines' (tests/screens.py) "
                               "around simulated sweeps, through the live path",
                       "seeds": seeds, "frames": args.frames, "rows": rows}, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
