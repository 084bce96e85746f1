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
    alone_rows = [r for r in result["model_only"]["runs"] if r["batch"] == 1]
    if alone_rows:
        lines += ["", "Model alone at batch 1 (p50): " + ", ".join(
            f"{'ONNX Runtime' if r['backend'] == 'onnxruntime' else r['backend']} "
            f"{r['precision'].upper()} {_ms(r['latency_ms']['p50'])}" for r in alone_rows) + "."]
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
                noise = row.get("noise") or row["value"] < 0 and key.startswith("overhead")
                mark = "no verdict (below zero: measurement noise)" if noise else (
                    "met" if row["met"] else "not met")
                verdicts.append(text.format(v=row["value"], g=row["goal"]) + f": {mark}")
        lines.append("Targets at " + str(t["at"]) + ": " + "; ".join(verdicts) + ".")
        paced = t.get("model_alone_paced")
        if paced:
            lines.append(f"The model alone called once per frame at {paced['fps']:g} fps, as the "
                         f"pipeline calls it: p50 {_ms(paced['p50'])}, p99 {_ms(paced['p99'])}; "
                         f"inference in the pipeline {paced['inference_in_pipeline_ratio']:.2f}× that.")
        bound = t.get("saturation_bound")
        if bound:
            lines.append(f"No pipeline of this model passes the model alone on every thread here "
                         f"({bound['run']}): {bound['model_alone_fps']:.0f} frames/s, "
                         f"{bound['x_baseline']:.2f}× the baseline.")
    elif t.get("smoke"):
        lines.append("A smoke run (`--quick`): too short for a verdict.")
    return "\n".join(lines + bound_lines(result) + streams_lines(result, source))


def _verdict(row: dict) -> str:
    if row.get("noise"):
        return "no verdict (below zero: measurement noise)"
    return {True: "met", False: "not met", None: "no verdict (smoke run)"}[row["met"]]


def bound_lines(result: dict) -> list[str]:
    """The goals judged against the bounds the same run measured, one sentence each."""
    rows = (result.get("targets") or {}).get("against_bounds")
    if not rows:
        return []
    out = []
    sat = rows["saturation_x_bound"]
    for precision, r in sat["by_precision"].items():
        if r["x_bound"] is not None:
            out.append(f"{precision.upper()} saturation {r['fps']:.0f} frames/s = "
                       f"{100 * r['x_bound']:.0f}% of the model alone's {r['bound_fps']:.0f} "
                       f"({r['bound_run']})")
    text = "; ".join(out) + (f" (goal ≥ {100 * sat['goal']:.0f}% for FP32): {_verdict(sat)}"
                             if out else "")
    lines = [f"Against the bounds this run measured: {text}."] if text else []
    over, tail = rows.get("overhead_vs_paced_p50_ms"), rows.get("p99_x_p50")
    if over and over["value"] is not None:
        lines.append(f"At {over['at']}: p50 {over['e2e_p50']:.2f} ms − the paced model alone's "
                     f"{over['paced_model_p50']:.2f} ms = {over['value']:.2f} ms (goal ≤ "
                     f"{over['goal']} ms): {_verdict(over)}; p99 {tail['e2e_p99']:.2f} ms = "
                     f"{tail['value']:.2f}× p50 (goal ≤ {tail['goal']:g}×): {_verdict(tail)}.")
    streams = rows.get("streams_x_bound")
    if streams and streams["value"] is not None:
        lines.append(f"Streams held: {streams['held']} of the {streams['bound_streams']:.1f} the "
                     f"model alone allows at 30 fps ({100 * streams['value']:.0f}%; goal ≥ "
                     f"{100 * streams['goal']:.0f}%): {_verdict(streams)}.")
    return ["", *lines] if lines else []


def streams_lines(result: dict, source: str = "") -> list[str]:
    """The streams curve as a table, and its plot beside the recorded JSON (run_suite's)."""
    section = result.get("streams")
    if not section:
        return []
    lines = ["", f"Streams of 1080p at {section['fps']:g} fps through one process and one model "
             f"(simulated scanners replaying {section['screen_replay']} screens each; after a "
             f"{section['warmup_s']:g} s warm-up; held: every stream's p99 < "
             f"{section['budget_ms']:g} ms and none dropped):", "",
             "| streams | p50 (median stream) | p99 (median stream) | p99 (worst stream) | "
             "dropped | cores busy | held |", "|---|---|---|---|---|---|---|"]
    for p in section["curve"]:
        lines.append(f"| {p['streams']} | {_ms(p['p50_median_ms'])} | {_ms(p['p99_median_ms'])} | "
                     f"{_ms(p['p99_worst_ms'])} | {p['dropped']} | "
                     f"{p['cpu']['cpu_cores_busy']:.2f} | {'yes' if p['held'] else 'no'} |")
    plot = Path(__file__).resolve().parent / source.replace(".json", "-streams.png")
    if source and plot.is_file():
        lines += ["", f"![capture→publish p99 against the number of streams]"
                      f"(benchmarks/{source.replace('.json', '-streams.png')})"]
    return lines


BACKBONES = Path(__file__).resolve().parent / "results" / "model_latency.json"
BACKBONES_BEGIN, BACKBONES_END = "<!-- backbones:begin -->", "<!-- backbones:end -->"


def backbones_markdown(record: dict) -> str:
    """The backbone-latency sentence from `benchmarks/model_latency.py --json`'s record."""
    by_arch: dict[str, dict[str, float]] = {}
    for row in record["rows"]:
        by_arch.setdefault(row["arch"], {})[row["backend"]] = row["p50_ms"]
    parts = [f"`{arch}` {t.get('onnxruntime', float('nan')):.2f} / {t.get('torch', float('nan')):.2f} ms"
             for arch, t in by_arch.items()]
    return ("Backbones at 224×224, batch 1, p50 through ONNX Runtime / torch eager "
            f"(`python benchmarks/model_latency.py --json benchmarks/results/model_latency.json`, "
            f"{record['cpu']}): " + ", ".join(parts) + ".")


def replace_between_markers(text: str, table: str, begin: str = BEGIN, end: str = END) -> str:
    if begin not in text or end not in text:
        raise ValueError(f"the file has no {begin} … {end} markers")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{begin}\n{table}\n{end}{tail}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("json", type=Path)
    p.add_argument("--readme", type=Path, help="rewrite the table between the markers in this file")
    p.add_argument("--note", default="", help="the conditions of the run, printed with the table")
    args = p.parse_args(argv)
    result = json.loads(args.json.read_text())
    table = markdown(result, args.json.as_posix().split("benchmarks/", 1)[-1], args.note)
    if args.readme:
        text = replace_between_markers(args.readme.read_text(), table)
        if BACKBONES.is_file() and BACKBONES_BEGIN in text:
            text = replace_between_markers(text, backbones_markdown(json.loads(BACKBONES.read_text())),
                                           BACKBONES_BEGIN, BACKBONES_END)
        args.readme.write_text(text)
        print(f"wrote the table into {args.readme}")
    else:
        print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
