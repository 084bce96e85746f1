"""Evaluate a model (torch checkpoint or ONNX) on labelled frames: detection and localisation.

Localisation uses the boxes only here: pointing game (the map's peak inside the ground-truth box)
and IoU of the box derived from the map, per class, for every map variant the model can give
(CAM-style maps from any backend; the raw proposal maps M from a torch checkpoint).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

from engines import localisation
from engines.backends import BackendOptions, backend_for, create_backend
from engines.scoring import detection_report, probabilities


class Predictor:
    """Scores and map variants for a batch of uint8 frames, from any backend."""

    def __init__(self, model_path: str | Path, backend: str | None = None, threads: int = 0):
        path = Path(model_path)
        name = backend or backend_for(path)
        self.backend = create_backend(name, path, BackendOptions(threads=threads)).open()
        self.info = self.backend.info

    def __call__(self, images: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        x = images.astype(np.float32)[:, None] / 255.0
        out = self.backend.infer(x)
        variants = {"cam": out.maps}
        for name, m in self.backend.map_variants(x).items():
            variants[name] = np.broadcast_to(m, out.maps.shape)
        return out.scores, variants

    def close(self) -> None:
        self.backend.close()


def _on_sector(peak, box, sector):
    """A polar peak and box mapped onto the sector image, with that image's boxes."""
    polar_map, sector_boxes = sector
    x, y = polar_map.polar_to_image(*peak)
    return (float(x), float(y)), polar_map.box_to_image(box) if box else None, sector_boxes


def _box_key(frame_boxes, name: str):
    return next((k for k in frame_boxes or () if k.lower() == name.lower()), None)


def localise(maps: np.ndarray, boxes: list[tuple], classes, size: int) -> dict:
    """Pointing game and IoU per class over the frames where the class has a box.

    Polar samples are judged on the sector image (peak and box mapped back), as the streamer
    reports them."""
    per_class = {}
    for c, name in enumerate(classes):
        hits, ious = [], []
        for i, (frame_boxes, sector) in enumerate(boxes):  # per frame: its boxes, polar mapping
            key = _box_key(frame_boxes, name)  # the release's "Head" is the simulator's "head"
            if key is None:
                continue
            peak, box = localisation.locate(maps[i, c], size)
            if sector is not None:
                peak, box, frame_boxes = _on_sector(peak, box, sector)
            gt = frame_boxes[key]
            hits.append(localisation.inside(peak, gt))
            ious.append(localisation.iou(box, gt))
        if hits:
            per_class[name] = {"pointing_game": float(np.mean(hits)), "iou": float(np.mean(ious)),
                               "boxes": len(hits)}
    mean = lambda key: float(np.mean([v[key] for v in per_class.values()])) if per_class else 0.0  # noqa: E731
    return {"pointing_game": mean("pointing_game"), "iou": mean("iou"), "per_class": per_class}


def align_labels(labels: np.ndarray, data_classes, model_classes) -> np.ndarray:
    """Label columns in the model's class order, matched by name in any case (the release's
    "Head" is our "head"); a model class the data set never names is absent from every frame."""
    data_classes, model_classes = tuple(data_classes), tuple(model_classes)
    if data_classes == model_classes:
        return labels
    column = {c.lower(): i for i, c in enumerate(data_classes)}
    unknown = set(column) - {c.lower() for c in model_classes}
    if unknown:
        raise ValueError(f"the data set's classes {sorted(unknown)} are not among the model's "
                         f"{list(model_classes)}")
    out = np.zeros((len(labels), len(model_classes)), np.float32)
    for j, name in enumerate(model_classes):
        if name.lower() in column:
            out[:, j] = labels[:, column[name.lower()]]
    return out


def evaluate(model_path, dataset, *, backend=None, batch_size=32, progress=True,
             threshold=0.5, keep=0) -> tuple[dict, dict]:
    """Returns (report, examples) where examples holds the first ``keep`` frames and maps."""
    predictor = Predictor(model_path, backend)
    info, n = predictor.info, len(dataset)
    if n == 0:
        raise ValueError("the evaluation data set is empty")
    scores, labels, boxes, variant_maps, kept = [], [], [], {}, []
    for start in tqdm(range(0, n, batch_size), desc="evaluating", disable=not progress, unit="batch"):
        samples = [dataset[i] for i in range(start, min(n, start + batch_size))]
        images = np.stack([s.image for s in samples])
        s, variants = predictor(images)
        scores.append(s)
        labels += [s_.labels for s_ in samples]
        boxes += [(s_.boxes, getattr(s_, "sector", None)) for s_ in samples]
        for key, maps in variants.items():
            variant_maps.setdefault(key, []).append(maps.astype(np.float32))
        if len(kept) < keep:
            kept += [(img, samples[j], {k: v[j] for k, v in variants.items()})
                     for j, img in enumerate(images[: keep - len(kept)])]
    predictor.close()
    prob = probabilities(np.concatenate(scores), info.activation)
    labels = align_labels(np.asarray(labels, np.float32), getattr(dataset, "classes", info.classes),
                          info.classes)
    report = detection_report(labels, prob, info.classes, threshold)
    report.update(frames=n, model=str(model_path), activation=info.activation,
                  classes=list(info.classes), threshold=threshold)
    if any(frame_boxes for frame_boxes, _ in boxes):
        loc = {k: localise(np.concatenate(v), boxes, info.classes, info.input_size)
               for k, v in variant_maps.items()}
        report["localisation"] = loc
        report["pointing_game"] = loc["cam"]["pointing_game"]
        for name, m in report["per_class"].items():
            m.update({k: v for k, v in loc["cam"]["per_class"].get(name, {}).items() if k != "boxes"})
    return report, {"examples": kept, "probabilities": prob[: len(kept)]}


def write_report(report: dict, out: str | Path) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=1, default=float))
    (out / "report.md").write_text(markdown_table(report))
    return out


def markdown_table(report: dict) -> str:
    lines = [f"Model `{report['model']}` on {report['frames']} frames "
             f"(threshold {report['threshold']}).", "",
             "| class | accuracy | precision | recall | F1 | AP | pointing game | IoU |",
             "|---|---|---|---|---|---|---|---|"]
    fmt = lambda v: "–" if v is None or v != v else f"{100 * v:.1f}"  # noqa: E731
    for name, m in report["per_class"].items():
        lines.append(f"| {name} | " + " | ".join(fmt(m.get(k)) for k in
                     ("accuracy", "precision", "recall", "f1", "ap", "pointing_game", "iou")) + " |")
    lines.append(f"| **mean** | **{fmt(report['mean_accuracy'])}** | | | | | "
                 f"**{fmt(report.get('pointing_game'))}** | |")
    for kind, loc in report.get("localisation", {}).items():
        lines.append(f"\nMap `{kind}`: pointing game {fmt(loc['pointing_game'])}, "
                     f"mean IoU {fmt(loc['iou'])}.")
    return "\n".join(lines) + "\n"
