"""Fit a model's OOD statistics on a data set, measure them on outliers, store them in the model.

    store(model.onnx, fit data, out.onnx, tests=...) adds the ``features`` output, runs the model
    on the fitting frames, fits every method, measures each method's AUROC (in-style test frames
    against each kind of outlier), keeps the method the measurements favour and writes the
    statistics into the ONNX metadata. Works for any sonostream ONNX model, including imported
    release checkpoints, with whatever representative data set the user gives.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from engines import ood, ood_outliers
from engines.model_info import ModelInfo

log = logging.getLogger(__name__)


def with_features(src: str | Path, dst: str | Path):
    """Write a copy of the model that also outputs its pooled features; return the onnx proto."""
    import onnx

    model = onnx.load(str(src))
    ood.add_feature_output(model)
    onnx.save(model, str(dst))
    return model


class Runner:
    """ONNX Runtime on uint8 images [N, S, S] → (scores [N, C], features [N, D])."""

    def __init__(self, path: str | Path):
        import onnxruntime as ort

        self.info = ModelInfo.from_onnx(path)
        self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0]
        batch = self.input.shape[0]
        self.batch = batch if isinstance(batch, int) else 32

    def __call__(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = images.astype(np.float32)[:, None] / 255.0
        pad = -len(x) % self.batch
        if pad:
            x = np.concatenate([x, np.zeros((pad, *x.shape[1:]), np.float32)])
        scores, feats = [], []
        for i in range(0, len(x), self.batch):
            s, f = self.session.run(["scores", ood.FEATURES], {self.input.name: x[i:i + self.batch]})
            scores.append(s)
            feats.append(f)
        n = len(images)
        return np.concatenate(scores)[:n], np.concatenate(feats)[:n]


def dataset_images(spec: str, info: ModelInfo, limit: int | None = None) -> np.ndarray:
    from engines.datasets import for_representation, open_dataset

    data = open_dataset(for_representation(spec, info.representation, info.recipe.name),
                        info.input_size)
    n = len(data) if limit is None else min(limit, len(data))
    return np.stack([data[i].image for i in range(n)])


def outlier_sets(info: ModelInfo, kinds: list[str], n: int, specs: dict[str, str]) -> dict:
    """name → images: built-in kinds (engines.ood_outliers) and named dataset specs."""
    polar = info.representation == "polar"
    sets = {}
    for name, spec in specs.items():
        sets[name] = dataset_images(spec, info, n)
    for kind in kinds:
        if not ood_outliers.available(kind):
            log.warning("outlier kind %s is not available here; skipped", kind)
            continue
        images = ood_outliers.images(kind, n, info.input_size, polar, seed=17)
        sets[kind] = np.stack([info.recipe.stored(i) for i in images])  # as data sets hold frames
    return sets


def measure(models: dict[str, ood.OodModel], run: Runner, inliers: np.ndarray,
            outliers: dict[str, np.ndarray]) -> dict:
    """Per method: AUROC per outlier kind, the share of each kind flagged unfamiliar, and the
    share of in-style test frames flagged (false alarms)."""
    s_in, f_in = run(inliers)
    outs = {k: run(v) for k, v in outliers.items()}
    report = {}
    for method, m in models.items():
        raw_in = m.raw(s_in, f_in)
        rows = {}
        for kind, (s, f) in outs.items():
            raw = m.raw(s, f)
            rows[kind] = {"auroc": round(ood.auroc(raw_in, raw), 4),
                          "flagged": round(float(np.mean(m.calibrate(raw) >= m.limit)), 4),
                          "n": len(raw)}
        report[method] = {
            "false_alarms": round(float(np.mean(m.calibrate(raw_in) >= m.limit)), 4),
            "mean_auroc": round(float(np.mean([r["auroc"] for r in rows.values()])), 4) if rows else None,
            "kinds": rows,
        }
    return report


def store(model_path: str | Path, data: str, out: str | Path, *, n: int | None = None,
          method: str = "auto", limit: float = ood.DEFAULT_LIMIT, test: str | None = None,
          kinds: tuple[str, ...] = (), specs: dict[str, str] | None = None,
          test_n: int = 500) -> dict:
    """Fit, measure, choose and store; returns the report (also what --report writes)."""
    import onnx

    if method not in ("auto", *ood.METHODS):
        raise ValueError(f"method must be auto or one of {ood.METHODS}, got {method!r}")
    if method == "auto" and not test:
        method = "mahalanobis"  # nothing to measure against: the standard choice
    start = time.perf_counter()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".features.onnx")
    proto = with_features(model_path, tmp)
    try:
        run = Runner(tmp)
        info = run.info
        fit_images = dataset_images(data, info, n)
        scores, feats = run(fit_images)
        methods = ood.METHODS if method == "auto" else (method,)
        models = {m: ood.fit(m, scores, feats, limit=limit, source=data) for m in methods}
        report: dict = {"model": str(model_path), "fit": {"data": data, "n": len(fit_images)},
                        "limit": limit}
        if test:
            inliers = dataset_images(test, info, test_n)
            sets = outlier_sets(info, list(kinds), test_n, specs or {})
            report["test"] = {"data": test, "n": len(inliers)}
            report["methods"] = measure(models, run, inliers, sets)
        if method == "auto":
            method = max(report["methods"], key=lambda k: report["methods"][k]["mean_auroc"] or 0)
        report["method"] = method
    finally:
        run = None
        tmp.unlink(missing_ok=True)
    keep = [p for p in proto.metadata_props if p.key != ood.META_KEY]
    del proto.metadata_props[:]
    proto.metadata_props.extend(keep)
    proto.metadata_props.add(key=ood.META_KEY, value=models[method].to_json())
    onnx.save(proto, str(out))
    report["seconds"] = round(time.perf_counter() - start, 1)
    return report
