"""A PNG grid of frames with each class map overlaid, its ground-truth box (white) and the box
derived from the map (green), as the paper's results figure shows them."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from engines import localisation

TILE = 160


def tile(image: np.ndarray, class_map: np.ndarray, title: str, gt_box=None) -> np.ndarray:
    size = image.shape[0]
    up = localisation.upsample(class_map, size, size)
    norm = ((up - up.min()) / max(float(np.ptp(up)), 1e-12) * 255).astype(np.uint8)
    grey = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    out = cv2.addWeighted(grey, 0.6, cv2.applyColorMap(norm, cv2.COLORMAP_JET), 0.4, 0)
    if gt_box is not None:
        x0, y0, x1, y1 = (int(round(v)) for v in gt_box)
        cv2.rectangle(out, (x0, y0), (x1, y1), (255, 255, 255), 1)
        _, derived = localisation.locate(class_map, size)
        if derived:
            x0, y0, x1, y1 = (int(round(v)) for v in derived)
            cv2.rectangle(out, (x0, y0), (x1, y1), (0, 255, 0), 1)
    out = cv2.resize(out, (TILE, TILE), interpolation=cv2.INTER_AREA)
    cv2.putText(out, title, (3, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def write_grid(path: str | Path, examples, probabilities: np.ndarray, classes, variant="cam") -> Path:
    """One row per frame: the frame, then each class's map with its probability."""
    rows = []
    for (image, sample, maps), prob in zip(examples, probabilities, strict=False):
        truth = {c for c, v in zip(classes, sample.labels, strict=False) if v > 0.5}
        first = cv2.resize(cv2.cvtColor(image, cv2.COLOR_GRAY2BGR), (TILE, TILE))
        cv2.putText(first, ",".join(sorted(truth)) or "none", (3, 12), cv2.FONT_HERSHEY_SIMPLEX,
                    0.33, (0, 255, 255), 1, cv2.LINE_AA)
        tiles = [first] + [
            tile(image, maps[variant][c], f"{name} {prob[c]:.2f}", (sample.boxes or {}).get(name))
            for c, name in enumerate(classes)
        ]
        rows.append(np.hstack(tiles))
    if not rows:
        raise ValueError("no examples to draw")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.vstack(rows))
    return path
