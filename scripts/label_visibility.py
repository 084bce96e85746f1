"""Is the model's miss rate on the wider styles label noise? Rendered visibility of labelled parts
against the model's per-class recall.

    python scripts/label_visibility.py [--styles classic,train,heldout,scatter] [--n 300]
        [--seed S] [--model PATH] [--low 0.5] [--thresholds 0.25,0.5,0.75] [--json OUT]

A simulated frame labels a region present when >= 40% of its footprint lies inside the fan
(engines/simulator/scanner.py, MIN_VISIBLE), whatever the rendering makes of it. Each labelled
part's rendered contrast is `ScannerSimulator.contrast` (mean |frame - frame without the part|
over its footprint in the fan, in units of the frame's grey-level std in the fan; 0: not shown at
all). Frames are those `streamer eval` scores (`sim:n=N,seed=S,style=X` in the model's
representation and input recipe, through engines.datasets; default seeds: classic and train 1000,
heldout 2000, scatter 3000, as scripts/train_default evaluates), scored by engines.evaluation's
Predictor at threshold 0.5. Per style it reports the contrast quantiles per class, recall of the
parts below and above ``--low`` (and per contrast quartile), and the mean per-class accuracy if
labels followed rendered visibility: parts below each threshold relabelled absent, or left out of
the scoring.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SEEDS = {"classic": 1000, "train": 1000, "heldout": 2000, "scatter": 3000}
QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)


def _recall(hit: np.ndarray) -> float | None:
    return float(hit.mean()) if hit.size else None


def _masked_accuracy(truth: np.ndarray, pred: np.ndarray, scored: np.ndarray) -> float:
    """Mean over classes of the accuracy on the entries still scored."""
    acc = [(truth[scored[:, c], c] == pred[scored[:, c], c]).mean() for c in range(truth.shape[1])
           if scored[:, c].any()]
    return float(np.mean(acc))


def score_style(predictor, style: str, n: int, seed: int, batch_size: int) -> dict:
    """Per-frame labels, probabilities and per-part contrast for ``n`` frames of one style."""
    from engines.datasets import for_representation, open_dataset
    from engines.evaluation import align_labels
    from engines.scoring import probabilities

    info = predictor.info
    spec = for_representation(f"sim:n={n},seed={seed},style={style}", info.representation,
                              info.recipe.name)
    data = open_dataset(spec, input_size=info.input_size)
    sim = data.sims[0]
    t0 = time.perf_counter()
    scores, labels = [], []
    for start in range(0, n, batch_size):
        samples = [data[i] for i in range(start, min(n, start + batch_size))]
        s, _ = predictor(np.stack([x.image for x in samples]))
        scores.append(s)
        labels += [x.labels for x in samples]
    prob = probabilities(np.concatenate(scores), info.activation)
    labels = align_labels(np.asarray(labels, np.float32), data.classes, info.classes)
    t1 = time.perf_counter()
    contrast = np.full(labels.shape, np.nan, np.float32)  # NaN: not labelled present
    column = {c.lower(): j for j, c in enumerate(info.classes)}
    for i in range(n):
        for name, value in sim.contrast(i).items():
            contrast[i, column[name.lower()]] = value
    t2 = time.perf_counter()
    if not np.array_equal(~np.isnan(contrast), labels > 0.5):
        raise AssertionError(f"{style}: contrast computed for parts other than the labelled ones")
    return {"spec": spec, "labels": labels, "prob": prob, "contrast": contrast,
            "seconds": {"render_and_infer": t1 - t0, "contrast": t2 - t1}}


def analyse(r: dict, classes, low: float, thresholds) -> dict:
    from engines.scoring import detection_report

    truth, prob, con = r["labels"] > 0.5, r["prob"], r["contrast"]
    pred = prob >= 0.5
    base = detection_report(truth.astype(np.float32), prob, classes)
    out = {"spec": r["spec"], "frames": len(truth), "seconds": r["seconds"],
           "mean_accuracy": base["mean_accuracy"], "per_class": {}}
    pos_c, pos_hit = con[truth], pred[truth]
    edges = np.quantile(pos_c, (0.25, 0.5, 0.75))
    quartile = np.digitize(pos_c, edges)
    out["all_parts"] = {
        "parts": int(truth.sum()), "recall": _recall(pos_hit),
        "low": {"parts": int((pos_c < low).sum()), "recall": _recall(pos_hit[pos_c < low])},
        "high": {"parts": int((pos_c >= low).sum()), "recall": _recall(pos_hit[pos_c >= low])},
        "misses": int((~pos_hit).sum()), "misses_low": int((~pos_hit & (pos_c < low)).sum()),
        "quartile_edges": edges.tolist(),
        "recall_by_quartile": [_recall(pos_hit[quartile == q]) for q in range(4)],
    }
    for c, name in enumerate(classes):
        t = truth[:, c]
        x, hit = con[t, c], pred[t, c]
        entry = {"support": int(t.sum()), "recall": base["per_class"][name]["recall"],
                 "accuracy": base["per_class"][name]["accuracy"],
                 "contrast_quantiles": dict(zip([f"q{int(100 * q)}" for q in QUANTILES],
                                                np.quantile(x, QUANTILES).tolist(), strict=True))
                 if x.size else {},
                 "low": {"parts": int((x < low).sum()), "recall": _recall(hit[x < low])},
                 "high": {"parts": int((x >= low).sum()), "recall": _recall(hit[x >= low])}}
        if x.size >= 8:
            e = np.quantile(x, (0.25, 0.5, 0.75))
            qb = np.digitize(x, e)
            entry["recall_by_quartile"] = [_recall(hit[qb == q]) for q in range(4)]
        out["per_class"][name] = entry
    out["visibility_labels"] = {}
    for th in thresholds:
        faint = truth & (con < th)
        relabelled = detection_report((truth & ~faint).astype(np.float32), prob, classes)
        out["visibility_labels"][f"{th:g}"] = {
            "faint_parts": int(faint.sum()),
            "faint_fraction": float(faint.sum() / max(truth.sum(), 1)),
            "relabelled_absent": {
                "mean_accuracy": relabelled["mean_accuracy"],
                "recall": {k: v["recall"] for k, v in relabelled["per_class"].items()}},
            "excluded": {"mean_accuracy": _masked_accuracy(truth, pred, ~faint),
                         "recall": {name: _recall(pred[truth[:, c] & ~faint[:, c], c])
                                    for c, name in enumerate(classes)}},
        }
    out["parts"] = [[int(i), classes[c], round(float(con[i, c]), 4), round(float(prob[i, c]), 4)]
                    for i, c in zip(*np.nonzero(truth), strict=True)]
    return out


def _pct(v) -> str:
    return "  –  " if v is None else f"{100 * v:5.1f}"


def print_style(style: str, a: dict, classes, low: float) -> None:
    s = a["seconds"]
    print(f"\n== {style}: {a['spec']}  ({a['frames']} frames; {s['render_and_infer']:.0f} s "
          f"render+infer, {s['contrast']:.0f} s contrast)")
    print(f"{'class':9s} {'n':>4s} {'q10':>5s} {'q25':>5s} {'q50':>5s} {'q75':>5s} {'q90':>5s}  "
          f"{'recall':>6s}  {f'<{low:g} n':>7s} {'recall':>6s}  {f'>={low:g} n':>8s} {'recall':>6s}")
    for name in classes:
        e = a["per_class"][name]
        q = e["contrast_quantiles"]
        qs = " ".join(f"{q[k]:5.2f}" for k in ("q10", "q25", "q50", "q75", "q90")) if q else ""
        print(f"{name:9s} {e['support']:4d} {qs}  {_pct(e['recall']):>6s}  {e['low']['parts']:7d} "
              f"{_pct(e['low']['recall']):>6s}  {e['high']['parts']:8d} {_pct(e['high']['recall']):>6s}")
    p = a["all_parts"]
    print(f"all parts: recall {_pct(p['recall'])}; misses {p['misses']}, of which "
          f"{p['misses_low']} below {low:g}; recall by contrast quartile "
          f"(edges {', '.join(f'{e:.2f}' for e in p['quartile_edges'])}): "
          + " / ".join(_pct(v) for v in p["recall_by_quartile"]))
    print(f"mean accuracy as labelled {_pct(a['mean_accuracy'])}; labels following contrast >= t:")
    for th, v in a["visibility_labels"].items():
        print(f"  t={th:5s} faint parts {v['faint_parts']:4d} ({_pct(v['faint_fraction'])}%): "
              f"relabelled absent {_pct(v['relabelled_absent']['mean_accuracy'])}, "
              f"left out {_pct(v['excluded']['mean_accuracy'])}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--styles", default="classic,train,heldout,scatter")
    p.add_argument("--n", type=int, default=300, help="frames per style")
    p.add_argument("--seed", type=int, default=None,
                   help="one seed for every style (default: the evaluations' seed of each style)")
    p.add_argument("--model", default=None, help="ONNX model or checkpoint (default: the bundled)")
    p.add_argument("--low", type=float, default=0.5, help="contrast splitting low from high")
    p.add_argument("--thresholds", default="0.25,0.5,0.75",
                   help="contrasts below which a part counts as not visible")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--json", default=None, help="write the results here")
    args = p.parse_args(argv)
    from engines.defaults import default_onnx
    from engines.evaluation import Predictor
    from engines.simulator.render import STYLES

    styles = [s.strip() for s in args.styles.split(",") if s.strip()]
    if not styles or not set(styles) <= set(STYLES) or args.n < 1:
        p.error(f"--styles must name some of {STYLES}, --n must be >= 1")
    thresholds = [float(t) for t in args.thresholds.split(",") if t.strip()]
    model = args.model or str(default_onnx())
    predictor = Predictor(model)
    classes = tuple(predictor.info.classes)
    start = time.perf_counter()
    results = {"model": str(model), "low": args.low, "thresholds": thresholds,
               "contrast": "ScannerSimulator.contrast: mean |frame - frame without the part| over "
                           "its footprint in the fan / std of the frame in the fan",
               "styles": {}}
    try:
        for style in styles:
            seed = SEEDS.get(style, 1000) if args.seed is None else args.seed
            r = score_style(predictor, style, args.n, seed, args.batch_size)
            a = analyse(r, classes, args.low, thresholds)
            results["styles"][style] = a
            print_style(style, a, classes, args.low)
    finally:
        predictor.close()
    results["seconds"] = time.perf_counter() - start
    print(f"\n{time.perf_counter() - start:.0f} s in all")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
