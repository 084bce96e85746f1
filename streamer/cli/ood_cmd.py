"""streamer ood-fit: store out-of-distribution statistics in an ONNX model (any model, any data)."""

from __future__ import annotations

import json

HELP = "fit and store a model's out-of-distribution statistics (pooled features over a data set)"


def add_arguments(p) -> None:
    p.add_argument("--model", required=True, help="ONNX model (sonostream export)")
    p.add_argument("--data", required=True,
                   help="representative in-distribution data spec (e.g. its training frames)")
    p.add_argument("--out", default=None, help="output .onnx (default: overwrite --model)")
    p.add_argument("-n", type=int, default=None, help="use at most N frames of --data")
    p.add_argument("--method", default="auto", choices=("auto", "mahalanobis", "log_mahalanobis", "energy"),
                   help="auto: the method with the highest mean AUROC on the outliers "
                        "(mahalanobis when there is no --test)")
    p.add_argument("--limit", type=float, default=0.99,
                   help="calibrated score from which a frame is unfamiliar (0.99: 1%% of "
                        "fitting frames)")
    p.add_argument("--test", default=None,
                   help="in-style test data spec: measure AUROC against the outliers")
    p.add_argument("--test-n", type=int, default=500, help="frames per test set")
    p.add_argument("--outliers", default="noise,blank,scene,photo,doppler",
                   help="built-in outlier kinds (comma-separated; '' for none)")
    p.add_argument("--outlier", action="append", default=[], metavar="NAME=SPEC",
                   help="a data set to measure as outliers (repeatable), e.g. "
                        "heldout=sim:seed=2000,style=heldout")
    p.add_argument("--report", default=None, help="write the measurements as JSON here")


def run(args) -> int:
    from pathlib import Path

    from engines.ood_fit import store
    from engines.ood_outliers import KINDS

    if not Path(args.model).is_file():
        raise ValueError(f"model file not found: {args.model}")
    if args.n is not None and args.n < 50:
        raise ValueError("-n must be ≥ 50")
    if not 0 < args.limit <= 1:
        raise ValueError("--limit must be in (0, 1]")
    kinds = tuple(k for k in (t.strip() for t in args.outliers.split(",")) if k)
    bad = set(kinds) - set(KINDS)
    if bad:
        raise ValueError(f"unknown outlier kinds {sorted(bad)}; choose from {KINDS}")
    specs = {}
    for item in args.outlier:
        name, eq, spec = item.partition("=")
        if not eq or not name.strip() or not spec.strip():
            raise ValueError(f"--outlier must be NAME=SPEC, got {item!r}")
        specs[name.strip()] = spec.strip()
    report = store(args.model, args.data, args.out or args.model, n=args.n, method=args.method,
                   limit=args.limit, test=args.test, kinds=kinds, specs=specs, test_n=args.test_n)
    if args.report:
        Path(args.report).parent.mkdir(parents=True, exist_ok=True)
        Path(args.report).write_text(json.dumps(report, indent=1))
    for method, m in report.get("methods", {}).items():
        kinds_txt = "  ".join(f"{k} {v['auroc']:.3f}" for k, v in m["kinds"].items())
        print(f"{method:12s} AUROC {kinds_txt}  (false alarms {m['false_alarms']:.3f})")
    print(f"stored {report['method']} statistics from {report['fit']['n']} frames in "
          f"{args.out or args.model} ({report['seconds']} s)")
    return 0
