"""The pipeline before and after the many-streams work, side by side, rounds interleaved: each
stage of capture→publish at 30 fps, saturation, and N streams at 30 fps (before: N processes,
one stream and one model each, as the project ran several scanners until then; after: one
process, one model, N streams).

    python benchmarks/pipeline_before_after.py --before /path/to/old/checkout \\
        [--seconds 8] [--rounds 2] [--streams 8] [--json benchmarks/results/NAME.json]

``--before`` is a checkout of the earlier code (e.g. ``git worktree add /tmp/before <commit>``).
Every measurement runs in a fresh process of its own (``--child``) against its tree, and records
the load average: on a shared machine, compare the two sides within one round.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve()
AFTER = HERE.parents[1]
PARTS = ("queue_source", "preprocess", "queue_prepared", "inference", "postprocess", "publish")
SCREEN = "replay=8,width=1920,height=1080"


class Sink:
    """Every result's stream and stage seconds."""

    def __init__(self):
        self.rows = []

    def open(self):
        return self

    def publish(self, result):
        self.rows.append((result.stream, result.timing.stage_seconds()))

    def publish_status(self, status):
        pass

    def close(self):
        pass


def _child(tree: str, kind: str, seconds: float, streams: int) -> dict:
    """One measurement against ``tree``'s streamer package (run in a fresh process)."""
    sys.path.insert(0, tree)
    import dataclasses

    import numpy as np

    from engines.backends import BackendOptions, create_backend
    from engines.defaults import default_onnx
    from streamer.config import Config, MetricsConfig, PipelineConfig, PublishConfig
    from streamer.pipeline import build_pipeline
    from streamer.sources import create_source

    known = {f.name for f in dataclasses.fields(PipelineConfig)}
    threads, options = (1, {"inference_workers": 2}) if "inference_workers" in known else (2, {})
    if kind == "live":  # one stream at 30 fps: the live path's threads as configured by default
        threads, options = 0, {}
    rt = "realtime=0" if kind == "saturation" else "realtime=1,fps=30"
    specs = {f"s{i + 1}": f"sim:seed={i},{rt},{SCREEN}" for i in range(streams)}
    config = Config(publish=PublishConfig(endpoint="", stream="s1"), metrics=MetricsConfig(port=0),
                    pipeline=PipelineConfig(max_batch=4, queue_size=4, **options))
    backend = create_backend("onnxruntime", default_onnx(), BackendOptions(threads=threads)).open()
    sink = Sink()
    sources = {k: create_source(v) for k, v in specs.items()}
    pipeline = build_pipeline(config, sources if streams > 1 else sources["s1"], backend, [sink])
    pipeline.start()
    time.sleep(3.0)  # start-up: the first fan searches and the sector fit
    skip, c0, w0 = len(sink.rows), time.process_time(), time.monotonic()
    counts0 = _counts(pipeline)
    time.sleep(seconds)
    cpu, wall, counts1 = time.process_time() - c0, time.monotonic() - w0, _counts(pipeline)
    pipeline.stop()
    pipeline.close()
    rows = sink.rows[skip:]
    parts = {p: round(float(np.mean([r[p] for _, r in rows])) * 1e3, 4) for p in PARTS}
    e2e = np.array([r["capture_to_publish"] for _, r in rows]) * 1e3
    by_stream = {}
    for name, r in rows:
        by_stream.setdefault(name, []).append(r["capture_to_publish"] * 1e3)
    frames = counts1["processed"] - counts0["processed"]
    return {"kind": kind, "streams": streams, "threads": threads, **options,
            "frames_per_s": round(frames / wall, 2), "cores_busy": round(cpu / wall, 3),
            "cpu_ms_per_frame": round(1e3 * cpu / max(frames, 1), 3),
            "dropped": counts1["dropped"] - counts0["dropped"],
            "p50_ms": round(float(np.percentile(e2e, 50)), 3),
            "p99_ms": round(float(np.percentile(e2e, 99)), 3),
            "p99_worst_stream_ms": round(max(float(np.percentile(v, 99))
                                             for v in by_stream.values()), 3),
            "stages_mean_ms": parts, "load": [round(v, 2) for v in os.getloadavg()]}


def _counts(pipeline) -> dict:
    if hasattr(pipeline, "counts"):
        return pipeline.counts()
    return pipeline.accounting.snapshot()


def _run(tree: Path, kind: str, seconds: float, streams: int = 1) -> dict:
    out = subprocess.run([sys.executable, str(HERE), "--child", str(tree), kind, str(seconds),
                          str(streams)], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(tree)})
    return json.loads(out.stdout.strip().splitlines()[-1])


def _processes(tree: Path, seconds: float, n: int) -> dict:
    """Before: N streams as N processes, each one stream and one model, side by side."""
    procs = [subprocess.Popen([sys.executable, str(HERE), "--child", str(tree), "live",
                               str(seconds), "1"], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(tree)}) for _ in range(n)]
    rows = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    return {"kind": "streams", "streams": n, "processes": n,
            "frames_per_s": round(sum(r["frames_per_s"] for r in rows), 2),
            "cores_busy": round(sum(r["cores_busy"] for r in rows), 3),
            "cpu_ms_per_frame": round(1e3 * sum(r["cores_busy"] for r in rows)
                                      / max(sum(r["frames_per_s"] for r in rows), 1e-9), 3),
            "dropped": sum(r["dropped"] for r in rows),
            "p50_ms": round(float(sorted(r["p50_ms"] for r in rows)[n // 2]), 3),
            "p99_worst_stream_ms": max(r["p99_ms"] for r in rows),
            "load": [round(v, 2) for v in os.getloadavg()]}


BEGIN, END = "<!-- before-after:begin -->", "<!-- before-after:end -->"
DOC = AFTER / "docs" / "many-streams.md"
RECORD = AFTER / "benchmarks" / "results" / "2026-12-05-cpu2-amd-epyc-before-after.json"


def _cell(run: dict, key: str, spec: str = ".2f") -> str:
    value = run.get(key)
    if value is None and key == "cpu_ms_per_frame" and run.get("frames_per_s"):
        value = 1e3 * run["cores_busy"] / run["frames_per_s"]  # N processes: their sum
    return "–" if value is None else format(value, spec)


def table(record: dict, source: str) -> str:
    """The record as Markdown: per round, each case before → after, and the stages at 30 fps
    and at saturation (mean ms per frame)."""
    before = record.get("before_commit") or "the earlier code"
    lines = [f"Before (`{before}`) and after, rounds interleaved on the same machine "
             f"(`{source}`; {record['seconds']:g} s per case after a 3 s warm-up; "
             f"{record['streams']} streams: before as {record['streams']} processes of one stream "
             "and one model each, after as one process):", "",
             "| round | case | frames/s | cores busy | CPU ms per frame | dropped | p50 | "
             "p99 (worst stream) | load average |", "|---|---|---|---|---|---|---|---|---|"]
    for i, row in enumerate(record["rounds"], 1):
        for case in ("live", "saturation", "streams"):
            b, a = row["before"][case], row["after"][case]
            name = {"live": "1 stream, 30 fps", "saturation": "1 stream, saturation",
                    "streams": f"{record['streams']} streams, 30 fps"}[case]
            lines.append(
                f"| {i} | {name} | {_cell(b, 'frames_per_s', '.0f')} → "
                f"{_cell(a, 'frames_per_s', '.0f')} | {_cell(b, 'cores_busy')} → "
                f"{_cell(a, 'cores_busy')} | {_cell(b, 'cpu_ms_per_frame')} → "
                f"{_cell(a, 'cpu_ms_per_frame')} | {b['dropped']} → {a['dropped']} | "
                f"{_cell(b, 'p50_ms')} → {_cell(a, 'p50_ms')} ms | "
                f"{_cell(b, 'p99_worst_stream_ms')} → {_cell(a, 'p99_worst_stream_ms')} ms | "
                f"{b['load'][0]:.1f} / {a['load'][0]:.1f} |")
    lines += ["", "Where the time goes, mean ms per frame, before → after (round 1):", "",
              "| case | " + " | ".join(PARTS) + " |", "|---" * (len(PARTS) + 1) + "|"]
    first = record["rounds"][0]
    for case in ("live", "saturation"):
        b, a = first["before"][case]["stages_mean_ms"], first["after"][case]["stages_mean_ms"]
        lines.append(f"| {case} | " + " | ".join(f"{b[p]:.2f} → {a[p]:.2f}" for p in PARTS) + " |")
    return "\n".join(lines)


def write_doc(record: dict, source: str, doc: Path = DOC) -> None:
    from readme_table import replace_between_markers

    doc.write_text(replace_between_markers(doc.read_text(), table(record, source), BEGIN, END))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--before", type=Path, help="a checkout of the earlier code")
    p.add_argument("--before-commit", default="", help="its commit, recorded with the figures")
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--streams", type=int, default=8)
    p.add_argument("--json", type=Path)
    p.add_argument("--doc", type=Path, help="write the table from --json's record into this "
                   "doc, between its before-after markers (no measuring when --before is absent)")
    p.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.doc and args.json and args.before is None:
        write_doc(json.loads(args.json.read_text()),
                  args.json.resolve().relative_to(AFTER).as_posix(), args.doc)
        print(f"wrote the table into {args.doc}")
        return 0
    if args.child:
        tree, kind, seconds, streams = args.child
        print(json.dumps(_child(tree, kind, float(seconds), int(streams))))
        return 0
    if args.before is None:
        p.error("--before PATH is required")
    rounds = []
    for i in range(args.rounds):
        row = {}
        for side, tree in (("before", args.before.resolve()), ("after", AFTER)):
            row[side] = {kind: _run(tree, kind, args.seconds) for kind in ("live", "saturation")}
        row["before"]["streams"] = _processes(args.before.resolve(), args.seconds, args.streams)
        row["after"]["streams"] = _run(AFTER, "streams", args.seconds, args.streams)
        rounds.append(row)
        print(f"round {i + 1}: " + json.dumps(row, indent=1), flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"before_commit": args.before_commit,
                                         "seconds": args.seconds, "streams": args.streams,
                                         "rounds": rounds}, indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
