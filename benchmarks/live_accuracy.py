"""Accuracy through the live path: simulated 1080p screens → fan found on the screen →
preprocess (sector or polar, as the model says) → model → postprocess, against the feed's labels
and screen-pixel boxes.

    python benchmarks/live_accuracy.py [MODEL.onnx ...] [--json OUT] [--names A,B]
                                           (default: the bundled model)

300 frames: every 4th of the first 600 of two live sweeps (seeds 11 and 12), so that the
probe has moved between frames. Prints decision accuracy and pointing game.
"""

from __future__ import annotations

import argparse
import json

from engines.backends import create_backend
from engines.defaults import default_onnx
from engines.localisation import inside
from engines.simulator import LiveFeed
from streamer.config import PostprocessConfig, PreprocessConfig
from streamer.frames import Frame
from streamer.postprocess import Postprocessor
from streamer.preprocess import Preprocessor


def live_accuracy(model, seeds=(11, 12), frames=600, step=4) -> dict:
    correct = total = hits = boxes = 0
    with create_backend("onnxruntime", model) as backend:
        info = backend.info
        for seed in seeds:  # a fresh preprocessor per sweep: the fan is found anew
            pre = Preprocessor.for_model(PreprocessConfig(), info)
            post = Postprocessor(info.classes, info.activation, PostprocessConfig())
            feed = LiveFeed(seed=seed)
            for i in range(0, frames, step):
                screen = feed.frame_at(i)
                prepared = pre.process(Frame(i, screen.image))
                out = backend.infer(prepared.tensor)
                classes, _ = post.process(out.scores[0], out.maps[0], prepared.crop)
                for result, label in zip(classes, screen.labels, strict=True):
                    correct += int(result.present == bool(label))
                    total += 1
                    if label and result.name in screen.boxes:
                        boxes += 1
                        hits += inside(result.peak, screen.boxes[result.name])
    return {"model": str(model), "representation": info.representation,
            "accuracy": correct / total, "pointing_game": hits / boxes, "boxes": boxes,
            "frames": total // len(info.classes)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="*")
    ap.add_argument("--json", help="write the results here (the README table is made from it)")
    ap.add_argument("--names", help="comma-separated names of the models for the record")
    args = ap.parse_args(argv)
    models = args.models or [str(default_onnx())]
    names = args.names.split(",") if args.names else models
    if len(names) != len(models):
        ap.error(f"--names gives {len(names)} names for {len(models)} models")
    results = []
    for name, path in zip(names, models, strict=True):
        r = {"name": name, **live_accuracy(path)}
        results.append(r)
        print(f"{name} ({r['representation']}): accuracy {100 * r['accuracy']:.1f}%, "
              f"pointing game {100 * r['pointing_game']:.1f}% ({r['boxes']} boxes, {r['frames']} frames)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"what": "simulated 1080p sweeps (seeds 11, 12) through the live path",
                       "results": results}, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
