"""README's benchmark table, written from a recorded `streamer bench` JSON (never typed by hand).

    python benchmarks/readme_table.py benchmarks/results/<run>.json            # print it
    python benchmarks/readme_table.py benchmarks/results/<run>.json --readme README.md

With ``--readme`` the text between the ``<!-- bench-table:begin -->`` and
``<!-- bench-table:end -->`` markers is replaced.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

BEGIN, END = "<!-- bench-table:begin -->", "<!-- bench-table:end -->"
PARTS = ("queue_source", "preprocess", "queue_prepared", "inference", "postprocess", "publish")


def _ms(x) -> str:
    return "–" if x is None else f"{x:.2f} ms"


def markdown(result: dict, source: str, note: str = "") -> str:
    m, t = result["machine"], result.get("targets") or {}
    alone = t.get("model_alone") or result["model_only"]["runs"][0]["latency_ms"]
    lines = [f"Recorded run `{source}`: {m['cpu']}, {m['cores_usable']} usable cores, GPU "
             f"{m['gpu'] or 'none'}, load average at start {m['load_average_at_start']}. Model alone "
             f"(ONNX Runtime FP32, batch 1): p50 {_ms(alone['p50'])}, p99 {_ms(alone['p99'])}."
             + (f" {note}" if note else ""), "",
             "| | p50 | p99 | overhead p50 | frames/s | dropped | cores busy |",
             "|---|---|---|---|---|---|---|"]
    for r in result["end_to_end"]["runs"]:
        lat = r["latency_ms"]["capture_to_publish"]
        label = f"pipeline, {m['bench']['screen']} screen, {r['label']}"
        if not r["realtime"]:
            label += f" (batches ≤ {r.get('max_batch', 1)})"
        lines.append(f"| {label}, capture→publish | {_ms(lat['p50'])} | {_ms(lat['p99'])} | "
                     f"{_ms(r.get('overhead_vs_model_ms_p50'))} | {r['throughput_fps']:.0f} | "
                     f"{r['counts']['dropped']} | {r['cpu']['cpu_cores_busy']:.2f} |")
    b = result["baseline"]
    lat = b["latency_ms"]["capture_to_publish"]
    lines.append(f"| naive baseline ({b['engine']}, one loop) | {_ms(lat['p50'])} | {_ms(lat['p99'])} | "
                 f"– | {b['throughput_fps']:.0f} | – | {b['cpu']['cpu_cores_busy']:.2f} |")
    lines += ["", "Where the time goes (mean ms per frame; the parts add up to capture→publish):", "",
              "| | " + " | ".join(PARTS) + " | capture→publish |", "|---" * (len(PARTS) + 2) + "|"]
    for r in result["end_to_end"]["runs"]:
        st = r.get("stages_ms")
        if st:
            cells = " | ".join(f"{st['mean'][p]:.3f}" for p in PARTS)
            lines.append(f"| {r['label']} | {cells} | {st['mean_capture_to_publish']:.3f} |")
    lines += ["", f"Saturation throughput: **{result['speedup_vs_baseline']:.2f}×** the baseline."]
    if t and not t.get("smoke"):
        verdicts = []
        for key, text in (("overhead_p50_ms", "overhead p50 {v:.2f} ms (goal ≤ {g} ms)"),
                          ("overhead_p99_ms", "overhead p99 {v:.2f} ms (goal ≤ {g} ms)"),
                          ("saturation_x_baseline", "saturation {v:.2f}× (goal ≥ {g}×)"),
                          ("inference_in_pipeline_ratio",
                           "inference in the pipeline {v:.2f}× alone (goal ≤ {g}×)")):
            row = t[key]
            if row["value"] is not None:
                mark = "met" if row["met"] else "not met"
                verdicts.append(text.format(v=row["value"], g=row["goal"]) + f": {mark}")
        lines.append("Targets at " + str(t["at"]) + ": " + "; ".join(verdicts) + ".")
    elif t.get("smoke"):
        lines.append("A smoke run (`--quick`): too short for a verdict.")
    return "\n".join(lines)


def replace_between_markers(text: str, table: str) -> str:
    if BEGIN not in text or END not in text:
        raise ValueError(f"the README has no {BEGIN} … {END} markers")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{table}\n{END}{tail}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("json", type=Path)
    p.add_argument("--readme", type=Path, help="rewrite the table between the markers in this file")
    p.add_argument("--note", default="", help="the conditions of the run, printed with the table")
    args = p.parse_args(argv)
    result = json.loads(args.json.read_text())
    table = markdown(result, args.json.as_posix().split("benchmarks/", 1)[-1], args.note)
    if args.readme:
        args.readme.write_text(replace_between_markers(args.readme.read_text(), table))
        print(f"wrote the table into {args.readme}")
    else:
        print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
