"""Detection metrics per class: accuracy, precision, recall, F1, average precision."""

from __future__ import annotations

import numpy as np


def probabilities(scores: np.ndarray, activation: str) -> np.ndarray:
    """Logits [..., C] → probabilities: independent sigmoids, or one softmax over the classes."""
    s = np.asarray(scores, np.float64)
    if activation == "softmax":
        e = np.exp(s - s.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)
    if activation == "sigmoid":
        return 0.5 * (1.0 + np.tanh(0.5 * s))  # overflow-free sigmoid
    raise ValueError(f"unknown activation {activation!r}")


def average_precision(truth: np.ndarray, score: np.ndarray) -> float:
    """Non-interpolated AP: mean of the precision at the rank of each positive (ties kept in order)."""
    positives = int(truth.sum())
    if positives == 0:
        return float("nan")
    order = np.argsort(-score, kind="stable")
    hits = truth[order].astype(bool)
    precision_at = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float(precision_at[hits].sum() / positives)


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den else 0.0


def class_metrics(truth: np.ndarray, prob: np.ndarray, threshold: float = 0.5) -> dict:
    pred = prob >= threshold
    truth = truth.astype(bool)
    tp, tn = int((pred & truth).sum()), int((~pred & ~truth).sum())
    fp, fn = int((pred & ~truth).sum()), int((~pred & truth).sum())
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    return {
        "accuracy": _ratio(tp + tn, len(truth)),
        "precision": precision,
        "recall": recall,
        "f1": _ratio(2 * precision * recall, precision + recall),
        "ap": average_precision(truth, prob),
        "support": int(truth.sum()),
        "tp": tp, "fp": fp, "fn": fn, "tn": tn,
    }


def detection_report(labels: np.ndarray, prob: np.ndarray, classes, threshold: float = 0.5) -> dict:
    per_class = {name: class_metrics(labels[:, i], prob[:, i], threshold) for i, name in enumerate(classes)}
    return {
        "mean_accuracy": float(np.mean([m["accuracy"] for m in per_class.values()])),
        "per_class": per_class,
    }
