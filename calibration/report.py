"""INT8/FP16 against FP32 on held-out frames: decisions, score change, CPU latency; JSON + Markdown."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import onnx

from engines.model_info import ModelInfo
from engines.precision import run_frames, session
from engines.scoring import probabilities


def cpu_latency_ms(sess, frames: np.ndarray, repeats: int = 30) -> float:
    """p50 ONNX Runtime CPU latency per frame at batch 1."""
    name = sess.get_inputs()[0].name
    times = []
    for i in range(repeats + 3):
        x = frames[i % len(frames)][None]
        start = time.perf_counter()
        sess.run(None, {name: x})
        times.append(time.perf_counter() - start)
    return float(np.median(times[3:]) * 1e3)


def compare(reference: str | Path, candidates: dict[str, str | Path], frames: np.ndarray, *,
            threshold: float = 0.5, latency: bool = True) -> dict:
    """{name: {decision_agreement, max_abs_dprob, max_rel_dmap, p50_ms}} for fp32 and each candidate."""
    info = ModelInfo.from_onnx(reference)
    ref_sess = session(onnx.load(str(reference)))
    ref_scores, ref_maps = run_frames(ref_sess, frames)[:2]  # (a features output may follow)
    ref_p = probabilities(ref_scores, info.activation)
    result = {"fp32": {"p50_ms": cpu_latency_ms(ref_sess, frames)} if latency else {}}
    for name, path in candidates.items():
        sess = session(onnx.load(str(path)))
        scores, maps = run_frames(sess, frames)[:2]
        p = probabilities(scores, info.activation)
        result[name] = {
            "decision_agreement": float(((p > threshold) == (ref_p > threshold)).mean()),
            "max_abs_dprob": float(np.abs(p - ref_p).max()),
            "max_rel_dmap": float(np.abs(maps - ref_maps).max() / (np.abs(ref_maps).max() + 1e-30)),
            "finite": bool(np.isfinite(scores).all() and np.isfinite(maps).all()),
        }
        if latency:
            result[name]["p50_ms"] = cpu_latency_ms(sess, frames)
    return result


def evaluate_pair(reference_onnx, candidate_onnx, dataset) -> dict:
    """Mean accuracy and pointing game of both models on a labelled data set, and the change."""
    from engines.evaluation import evaluate

    out = {}
    for name, path in (("reference", reference_onnx), ("candidate", candidate_onnx)):
        report, _ = evaluate(path, dataset, progress=False)
        out[name] = {k: report.get(k) for k in ("mean_accuracy", "pointing_game")}
    out["change"] = {k: (out["candidate"][k] or 0.0) - (out["reference"][k] or 0.0)
                     for k in ("mean_accuracy", "pointing_game")}
    return out


def write_report(report: dict, out_dir: str | Path) -> tuple[Path, Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    js, md = out_dir / "precision_report.json", out_dir / "precision_report.md"
    js.write_text(json.dumps(report, indent=2))
    rows = ["| precision | decision agreement | max abs Δprob | max rel Δmap | ORT CPU p50 ms (batch 1) |",
            "|---|---|---|---|---|"]
    for name, r in report["results"].items():
        cells = [r.get(k) for k in ("decision_agreement", "max_abs_dprob", "max_rel_dmap", "p50_ms")]
        rows.append(f"| {name} | " + " | ".join("—" if c is None else f"{c:.4g}" for c in cells) + " |")
    for name, acc in report.get("accuracy", {}).items():
        ref, cand = acc["reference"], acc["candidate"]
        rows.append(f"\n{name} vs fp32: mean accuracy {100 * ref['mean_accuracy']:.2f}% → "
                    f"{100 * cand['mean_accuracy']:.2f}%, pointing game "
                    f"{100 * (ref['pointing_game'] or 0):.2f}% → {100 * (cand['pointing_game'] or 0):.2f}%")
    plain = {k: v for k, v in report.items() if k not in ("results", "accuracy")}
    meta = "\n".join(f"- {k}: {v}" for k, v in plain.items() if not isinstance(v, dict))
    tables = "".join(f"\n\n### {k.replace('_', ' ')}\n\n" + _table(v)
                     for k, v in plain.items() if isinstance(v, dict) and v)
    md.write_text("# Precision report\n\n" + meta + "\n\n" + "\n".join(rows) + tables + "\n")
    return js, md


def _cell(v) -> str:
    return "—" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)


def _table(d: dict) -> str:
    """A dict as a Markdown table: one row per key; a dict of dicts gets a column per inner key."""
    if all(isinstance(v, dict) for v in d.values()):
        cols = list(dict.fromkeys(c for v in d.values() for c in v))
        head = "| | " + " | ".join(c.replace("_", " ") for c in cols) + " |"
        lines = [head, "|---" * (len(cols) + 1) + "|"]
        lines += [f"| {k} | " + " | ".join(_cell(v.get(c)) for c in cols) + " |" for k, v in d.items()]
    else:
        lines = ["| | |", "|---|---|"] + [f"| {k} | {_cell(v)} |" for k, v in d.items()]
    return "\n".join(lines)
