"""docs/precision.md's reduced-precision table, written from the recorded precision reports (never typed).

    python benchmarks/precision_table.py                      # print it
    python benchmarks/precision_table.py --readme docs/precision.md   # replace the marked block

Reads benchmarks/results/precision/default_model_<target>_target.json (``streamer calibrate
--report``) and writes, per Q/DQ placement, what each reduced precision changed against FP32.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from readme_table import replace_between_markers  # noqa: E402

REPORTS = {"TensorRT": ROOT / "benchmarks/results/precision/default_model_tensorrt_target.json",
           "CPU (ONNX Runtime)": ROOT / "benchmarks/results/precision/default_model_cpu_target.json"}
BEGIN, END = "<!-- precision-table:begin -->", "<!-- precision-table:end -->"


def _points(change: float) -> str:
    return f"{100 * change:+.3f}"


def markdown(reports: dict[str, Path] = REPORTS) -> str:
    lines = ["| Q/DQ placement | precision | decisions agreeing (held-out frames) | max abs Δprob | "
             "mean accuracy change (points) | pointing game change (points) | ORT CPU p50 |",
             "|---|---|---|---|---|---|---|"]
    sources = []
    for placement, path in reports.items():
        r = json.loads(path.read_text())
        held = r["held_out_frames"]
        for name in ("fp16", "int8"):
            res, acc = r["results"][name], r.get("accuracy", {}).get(name, {}).get("change", {})
            lines.append(
                f"| {placement} | {name.upper()} | {100 * res['decision_agreement']:.1f}% "
                f"({held} frames) | {res['max_abs_dprob']:.4f} | "
                + " | ".join(_points(acc[k]) if k in acc else "–"
                             for k in ("mean_accuracy", "pointing_game"))
                + f" | {res['p50_ms']:.2f} ms (FP32 {r['results']['fp32']['p50_ms']:.2f} ms) |")
        sources.append(f"`{path.relative_to(ROOT)}`")
    lines += ["", "Decisions are compared on the held-out calibration frames, the accuracy and "
              "pointing-game changes on the `--eval-data` set. Recorded in "
              + " and ".join(sources) + "."]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--readme", type=Path, help="rewrite the marked block of this README")
    args = p.parse_args(argv)
    table = markdown()
    if args.readme:
        args.readme.write_text(replace_between_markers(args.readme.read_text(), table, BEGIN, END))
    else:
        sys.stdout.write(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
