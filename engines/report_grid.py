"""A PNG grid of frames with each class map overlaid, its ground-truth box (white) and the box
derived from the map (green), as the paper's results figure shows them. The maps of one frame
share one colour scale (so a class the model does not see stays cold), and a legend on top says
what the boxes and colours mean."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from engines import localisation

TILE = 160
LEGEND_H = 30
WHITE, GREEN = (255, 255, 255), (0, 255, 0)


def tile(image: np.ndarray, class_map: np.ndarray, title: str, gt_box=None,
         scale: tuple[float, float] | None = None) -> np.ndarray:
    """``scale``: (low, high) map values for the colour range (default: this map's own)."""
    size = image.shape[0]
    up = localisation.upsample(class_map, size, size)
    lo, hi = scale if scale is not None else (float(up.min()), float(up.max()))
    norm = (np.clip((up - lo) / max(hi - lo, 1e-12), 0, 1) * 255).astype(np.uint8)
    grey = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    out = cv2.addWeighted(grey, 0.6, cv2.applyColorMap(norm, cv2.COLORMAP_JET), 0.4, 0)
    if gt_box is not None:
        x0, y0, x1, y1 = (int(round(v)) for v in gt_box)
        cv2.rectangle(out, (x0, y0), (x1, y1), WHITE, 1)
        _, derived = localisation.locate(class_map, size)
        if derived:
            x0, y0, x1, y1 = (int(round(v)) for v in derived)
            cv2.rectangle(out, (x0, y0), (x1, y1), GREEN, 1)
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
        row_maps = np.asarray(maps[variant], np.float64)
        scale = (float(row_maps.min()), float(row_maps.max()))  # one scale for the frame's maps
        tiles = [first] + [
            tile(image, maps[variant][c], f"{name} {prob[c]:.2f}", (sample.boxes or {}).get(name),
                 scale)
            for c, name in enumerate(classes)
        ]
        rows.append(np.hstack(tiles))
    if not rows:
        raise ValueError("no examples to draw")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.vstack([legend(rows[0].shape[1]), *rows]))
    return path


def legend(width: int) -> np.ndarray:
    """White box: ground truth; green: from the map; the colour bar: one scale per row."""
    out = np.zeros((LEGEND_H, width, 3), np.uint8)
    font, y = cv2.FONT_HERSHEY_SIMPLEX, LEGEND_H // 2 + 4
    x = 6
    for colour, text in ((WHITE, "ground truth"), (GREEN, "box from the map")):
        cv2.rectangle(out, (x, y - 8), (x + 14, y + 2), colour, 1)
        cv2.putText(out, text, (x + 20, y), font, 0.4, WHITE, 1, cv2.LINE_AA)
        x += 30 + len(text) * 8
    bar = cv2.applyColorMap(np.linspace(0, 255, 120).astype(np.uint8)[None].repeat(10, 0),
                            cv2.COLORMAP_JET)
    if x + 40 + bar.shape[1] + 200 <= width:
        cv2.putText(out, "low", (x, y), font, 0.4, WHITE, 1, cv2.LINE_AA)
        out[y - 9:y + 1, x + 30:x + 30 + bar.shape[1]] = bar
        cv2.putText(out, "high (one scale per frame)", (x + 36 + bar.shape[1], y), font, 0.4,
                    WHITE, 1, cv2.LINE_AA)
    return out
