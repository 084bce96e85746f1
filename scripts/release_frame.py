"""Run a model on the real fetal ultrasound frame shipped with the paper's public code.

The frame (tests/data/fetalnav/image.mhd: the release's fetalnav/data/image.mhd, labelled
Placenta + Limbs, spacing 0.236 × 0.413 mm) is in the polar (beam-space) form the paper trained
on. It goes through the release's input recipe (resampled to 0.5 mm, cropped to rows/columns 1.5,
224×224 bilinear, min-max) whatever the model, as a checkpoint from the paper's code expects it.
A smoke test of preprocessing, model and maps on real data, not a benchmark. Writes a JSON of the
class probabilities and a PNG of the maps.

    python scripts/release_frame.py [--model M.onnx] [--frame F.mhd] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from engines.backends import create_backend
from engines.datasets.fetalnav import FetalnavDataset
from engines.defaults import default_onnx
from engines.report_grid import tile
from engines.scoring import probabilities

ROOT = Path(__file__).resolve().parents[1]
FRAME = ROOT / "tests" / "data" / "fetalnav" / "image.mhd"


def shown(path) -> str:
    path = Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="ONNX model (default: the bundled model)")
    ap.add_argument("--frame", default=str(FRAME), help="a labelled MetaImage frame")
    ap.add_argument("--out", default="runs/reference_frame")
    args = ap.parse_args()
    model = args.model or default_onnx()
    with create_backend("onnxruntime", model) as backend:
        info = backend.info
        frame = Path(args.frame)
        data = FetalnavDataset(str(frame.parent), info.input_size)
        index = [Path(image.path).name for image in data.images].index(frame.name)
        sample = data[index]
        out = backend.infer((sample.image.astype(np.float32) / 255.0)[None, None])
        prob = probabilities(out.scores, info.activation)[0]
    recipe = data.recipe
    result = {
        "frame": shown(frame), "labels": list(data.images[index].labels),
        "model": shown(model), "model_recipe": info.recipe.name, "activation": info.activation,
        "recipe": {"spacing_mm": recipe.spacing, "aspect": recipe.aspect, "size": info.input_size,
                   "resize": recipe.resize, "scale": recipe.scale,
                   "resampled_shape": list(data.frame(index).shape)},
        "probabilities": {c: round(float(p), 4) for c, p in zip(info.classes, prob, strict=True)},
        "present": [c for c, p in zip(info.classes, prob, strict=True) if p >= 0.5],
    }
    dest = Path(args.out)
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "reference_frame.json").write_text(json.dumps(result, indent=1) + "\n")
    tiles = [tile(sample.image, out.maps[0, i], f"{c} {prob[i]:.2f}")
             for i, c in enumerate(info.classes)]
    cv2.imwrite(str(dest / "reference_frame_maps.png"), np.hstack(tiles))
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
