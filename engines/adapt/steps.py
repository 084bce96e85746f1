"""The steps after training, each on frames already in memory: ONNX export, evaluation, the OOD
statistics refitted on the user's frames."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from engines.adapt.data import Frames

log = logging.getLogger(__name__)


def export(model, out: Path, dynamic: bool = True) -> Path:
    """The static ONNX graph (soft proposal unrolled), a dynamic batch so servers can batch it."""
    from engines.export import export_onnx

    return export_onnx(model, out, dynamic_batch=dynamic)


def evaluate(onnx: Path, frames: Frames, classes) -> dict:
    """Mean accuracy (and pointing game where the frames have boxes), per class too."""
    from engines.evaluation import evaluate as run

    report, _ = run(onnx, frames.with_classes(classes), progress=False)
    out = {"frames": report["frames"], "mean_accuracy": report["mean_accuracy"],
           "per_class": {c: round(m["accuracy"], 6) for c, m in report["per_class"].items()}}
    if "pointing_game" in report:
        out["pointing_game"] = report["pointing_game"]
    return out


def _features(onnx: Path, images: np.ndarray, work: Path):
    """(scores, pooled features) of a model on uint8 frames; the proto with a features output."""
    from engines.ood_fit import Runner, with_features

    tmp = work / "features.onnx"
    proto = with_features(onnx, tmp)
    try:
        return Runner(tmp)(images), proto
    finally:
        tmp.unlink(missing_ok=True)


def unfamiliar(ood_model, onnx: Path, images: np.ndarray, work: Path) -> float:
    """The share of frames ``ood_model`` flags unfamiliar through ``onnx``'s features."""
    (scores, feats), _ = _features(onnx, images, work)
    return float(np.mean(~ood_model(scores, feats)[1]))


def refit_ood(onnx: Path, fit: Frames, checks: dict[str, Frames], work: Path,
              source: str) -> dict:
    """Fit the OOD statistics on ``fit``'s frames, store them in ``onnx`` (with its features
    output), and measure the share flagged unfamiliar on each of ``checks``."""
    from engines import ood
    from engines.export import set_metadata

    if len(fit) < 50:
        return {"skipped": f"{len(fit)} training frames: OOD statistics need at least 50"}
    (scores, feats), proto = _features(onnx, fit.images, work)
    model = ood.fit("mahalanobis", scores, feats, source=source)
    set_metadata(proto, {ood.META_KEY: model.to_json()})
    import onnx as onnx_lib

    onnx_lib.save(proto, str(onnx))
    flagged = {name: unfamiliar(model, onnx, f.images, work) for name, f in checks.items() if len(f)}
    return {"method": model.method, "limit": model.limit, "fit_frames": len(fit),
            "flagged": flagged}


def spread(images: np.ndarray, count: int) -> np.ndarray:
    """Up to ``count`` frames taken evenly over the set."""
    if len(images) <= count:
        return images
    return images[np.linspace(0, len(images) - 1, count).round().astype(int)]


def as_input(images: np.ndarray) -> np.ndarray:
    """uint8 frames [N, S, S] → the model's float32 input [N, 1, S, S]."""
    return (images.astype(np.float32) / 255.0)[:, None]
