"""Run a model on the real fetal ultrasound frames in tests/data/reference/ (copies of the
paper code's frames, MIT) and record what it says.

A report, never training or tuning data. For each real frame: the class probabilities, which
regions are reported present, their map peaks, and the out-of-distribution signal (``ood``,
``familiar``) the engine publishes.

- ``fetalnav_polar_frame.png`` (shipped with the paper's code, labelled Placenta + Limbs) is
  already polar (beam space): resized to the model input, as the paper's code feeds it.
- ``fetalnav_sector_frame.png`` (a scanner sector on black, cut from the paper's figure; the
  paper's model says Limbs 0.9) goes through the live path: placed on a 1280x720 black screen,
  the fan found, cropped (and resampled to polar for a polar model), inferred, post-processed,
  exactly as ``streamer run`` does.

    python scripts/reference_frame.py [--model M.onnx] [--frame PNG [--form polar|sector]]
                                      [--out DIR]

Writes DIR/reference_frames.json and a PNG of each frame's class maps; the README's table of
them is ``scripts/default_model_tables.py``'s, made from the recorded JSON.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from engines.backends import create_backend
from engines.defaults import default_onnx
from engines.ood import load as load_ood
from engines.report_grid import tile
from engines.scoring import probabilities

REFERENCE = Path(__file__).resolve().parents[1] / "tests" / "data" / "reference"  # copies, MIT
FRAME = REFERENCE / "fetalnav_polar_frame.png"
# the real frames there: how each is delivered, and what is known about its content
FRAMES = {
    "fetalnav_polar_frame.png": {"form": "polar", "labels": ["placenta", "limbs"],
                                 "truth": "label shipped with the frame"},
    "fetalnav_sector_frame.png": {"form": "sector", "labels": ["limbs"],
                                  "truth": "the paper's model: Limbs 0.9"},
}
SCREEN = (720, 1280)
LIVE_FRAMES = 8  # the same screen repeatedly: the fan is found on the first, confirmed after


def polar_result(backend, grey: np.ndarray, ood) -> dict:
    size, classes = backend.info.input_size, backend.info.classes
    image = cv2.resize(grey, (size, size), interpolation=cv2.INTER_AREA)
    out = backend.infer((image.astype(np.float32) / 255.0)[None, None])
    prob = probabilities(out.scores, backend.info.activation)[0]
    peaks = {}
    for i, c in enumerate(classes):
        y, x = np.unravel_index(int(np.argmax(out.maps[0, i])), out.maps.shape[2:])
        sy, sx = grey.shape[0] / out.maps.shape[2], grey.shape[1] / out.maps.shape[3]
        peaks[c] = [int((x + 0.5) * sx), int((y + 0.5) * sy)]
    score, familiar = (None, None)
    if ood is not None and (out.features is not None or not ood.needs_features):
        o, f = ood(out.scores, out.features)
        score, familiar = float(o[0]), bool(f[0])
    present = [c for c, p in zip(classes, prob, strict=True) if p >= 0.5]
    return {"path": "polar frame resized to the model input", "probabilities": prob,
            "present": present, "peaks": peaks, "ood": score, "familiar": familiar,
            "image": image, "maps": out.maps[0]}


def live_result(backend, grey: np.ndarray, ood) -> dict:
    """The sector on a black screen through the streamer's preprocess, model and postprocess."""
    from streamer.config import PostprocessConfig, PreprocessConfig
    from streamer.frames import Frame
    from streamer.postprocess import Postprocessor
    from streamer.preprocess import Preprocessor

    info = backend.info
    screen = np.zeros((*SCREEN, 3), np.uint8)
    h, w = grey.shape
    scale = min(1.0, 0.9 * SCREEN[0] / h, 0.9 * SCREEN[1] / w)
    img = cv2.resize(grey, (int(w * scale), int(h * scale)), interpolation=cv2.INTER_AREA)
    y0, x0 = (SCREEN[0] - img.shape[0]) // 2, (SCREEN[1] - img.shape[1]) // 2
    screen[y0:y0 + img.shape[0], x0:x0 + img.shape[1]] = img[..., None]
    pre = Preprocessor.for_model(PreprocessConfig(), info)
    post = Postprocessor(info.classes, info.activation, PostprocessConfig(), ood=ood)
    for seq in range(LIVE_FRAMES):
        prepared = pre.process(Frame(seq, screen))
        out = backend.infer(prepared.tensor)
        classes, _ = post.process(out.scores[0], out.maps[0], prepared.crop)
        score, familiar = post.familiarity(out.scores[0], None if out.features is None
                                           else out.features[0])
    model_input = (prepared.tensor[0, 0] * 255).astype(np.uint8)
    c = prepared.crop
    return {"path": f"sector on a {SCREEN[1]}x{SCREEN[0]} screen, live path "
                    f"({type(prepared.crop).__name__}, fan rect {[c.x, c.y, c.w, c.h]})",
            "probabilities": np.array([c.score for c in classes]),
            "present": [c.name for c in classes if c.present],
            "peaks": {c.name: list(c.peak) if c.peak else None for c in classes},
            "ood": score, "familiar": familiar, "image": model_input, "maps": out.maps[0]}


def run_frame(backend, ood, path: Path, form: str) -> dict:
    grey = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if grey is None:
        raise SystemExit(f"cannot read {path}")
    r = (polar_result if form == "polar" else live_result)(backend, grey, ood)
    classes = backend.info.classes
    r["probabilities"] = {c: round(float(p), 4) for c, p in zip(classes, r["probabilities"],
                                                                 strict=True)}
    if r["ood"] is not None:
        r["ood"] = round(r["ood"], 4)
    return r


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--frame", default=None, help="one frame instead of every real frame")
    ap.add_argument("--form", choices=("polar", "sector"), default=None,
                    help="with --frame: polar (fed as is) or sector (live path); default polar")
    ap.add_argument("--out", default="runs/reference_frame")
    args = ap.parse_args()
    model = args.model or default_onnx()
    if args.frame:
        name = Path(args.frame).name
        known = FRAMES.get(name, {"labels": [], "truth": "unknown"})
        frames = [(Path(args.frame), {**known, "form": args.form or known.get("form", "polar")})]
    else:
        frames = [(REFERENCE / n, meta) for n, meta in FRAMES.items() if (REFERENCE / n).is_file()]
        if not frames:
            raise SystemExit(f"no reference frames in {REFERENCE}")
    ood = load_ood(model)
    dest = Path(args.out)
    dest.mkdir(parents=True, exist_ok=True)
    results = []
    with create_backend("onnxruntime", model) as backend:
        for path, meta in frames:
            r = run_frame(backend, ood, path, meta["form"])
            image, maps = r.pop("image"), r.pop("maps")
            tiles = [tile(image, maps[i], f"{c} {p:.2f}")
                     for i, (c, p) in enumerate(r["probabilities"].items())]
            png = dest / (path.stem + "_maps.png")
            cv2.imwrite(str(png), np.hstack(tiles))
            results.append({"frame": path.name, "form": meta["form"], "labels": meta["labels"],
                            "truth": meta["truth"], **r, "maps_png": png.name})
    record = {"model": str(model), "ood_method": None if ood is None else ood.method,
              "ood_limit": None if ood is None else ood.limit, "frames": results}
    (dest / "reference_frames.json").write_text(json.dumps(record, indent=1))
    print(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
