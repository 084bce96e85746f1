"""Run a model on the real fetal ultrasound frame shipped with the paper's public code.

The frame (../shared/reference/fetalnav_polar_frame.png, labelled Placenta + Limbs) is in the
polar (beam-space) form the paper trained on. It is a smoke test of preprocessing, model and maps
on real data, not a benchmark. Writes a JSON of the class probabilities and a PNG of the maps.

    python scripts/reference_frame.py [--model M.onnx] [--frame PNG] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from engines.backends import create_backend
from engines.defaults import default_onnx
from engines.report_grid import tile
from engines.scoring import probabilities

FRAME = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "fetalnav_polar_frame.png"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--frame", default=str(FRAME))
    ap.add_argument("--out", default="runs/reference_frame")
    args = ap.parse_args()
    grey = cv2.imread(args.frame, cv2.IMREAD_GRAYSCALE)
    if grey is None:
        raise SystemExit(f"cannot read {args.frame}")
    with create_backend("onnxruntime", args.model or default_onnx()) as backend:
        size, classes = backend.info.input_size, backend.info.classes
        image = cv2.resize(grey, (size, size), interpolation=cv2.INTER_AREA)
        out = backend.infer((image.astype(np.float32) / 255.0)[None, None])
        prob = probabilities(out.scores, backend.info.activation)[0]
    result = {"frame": args.frame, "labels": ["placenta", "limbs"],
              "probabilities": {c: round(float(p), 4) for c, p in zip(classes, prob, strict=True)},
              "present": [c for c, p in zip(classes, prob, strict=True) if p >= 0.5]}
    dest = Path(args.out)
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "reference_frame.json").write_text(json.dumps(result, indent=1))
    tiles = [tile(image, out.maps[0, i], f"{c} {prob[i]:.2f}") for i, c in enumerate(classes)]
    cv2.imwrite(str(dest / "reference_frame_maps.png"), np.hstack(tiles))
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
