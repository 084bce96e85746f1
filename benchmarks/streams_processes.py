"""Would lanes in processes of their own hold more streams? N simulated 1080p 30 fps scanners in
one pipeline (one process, one interpreter lock), against the same N split over P processes,
each a pipeline of its own with its own model session (as ``streamer bench --streams`` runs
them: warm-up left out, held = every stream's p99 under 33 ms and none dropped), run in turn,
each configuration twice. The CPU each process spent over its measured span (all its threads)
is summed: where processes hold no more streams at the same CPU, the interpreter lock is not
what stops the streams, the CPU is.

    PYTHONPATH=. python3 benchmarks/streams_processes.py --configs 1x14,2x7,1x16,2x8 \\
        --out benchmarks/results/streams_processes/2026-12-05-cpu2.json

Every process runs the same scanners (seeds 0..n-1): the same work, in separate memory.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time
from pathlib import Path

from json_record import emit

from engines.defaults import default_onnx
from streamer.bench.machine import describe
from streamer.bench.plan import BenchPlan
from streamer.bench.streams import run_streams


def parse_configs(text: str) -> list[tuple[int, int]]:
    """"1x14,2x7" → [(1, 14), (2, 7)]: processes × streams in each."""
    out = []
    for item in text.split(","):
        procs, _, streams = item.strip().partition("x")
        if not (procs.isdigit() and streams.isdigit()) or int(procs) < 1 or int(streams) < 1:
            raise ValueError(f"a configuration is PROCESSESxSTREAMS (like 2x7), got {item!r}")
        out.append((int(procs), int(streams)))
    return out


def _one(onnx: str, streams: int, duration_s: float, results) -> None:
    """One process's pipeline: its streams' verdict and the CPU it spent over the measured span."""
    marks = []
    point = run_streams(BenchPlan(Path(onnx), duration_s=duration_s), streams,
                        window=lambda: marks.append((time.monotonic(), sum(os.times()[:2]))))
    (t0, c0), (t1, c1) = marks
    results.put({"streams": streams, "held": point["held"], "p99_worst_ms": point["p99_worst_ms"],
                 "dropped": point["dropped"], "processed": point["processed"],
                 "cores_busy": round((c1 - c0) / (t1 - t0), 3)})


def combine(procs: int, points: list[dict]) -> dict:
    """The configuration's verdict: held only if every process held all its streams."""
    p99 = [p["p99_worst_ms"] for p in points]
    measured = all(v is not None for v in p99)
    return {"processes": procs, "streams": sum(p["streams"] for p in points),
            "held": bool(points) and all(p["held"] for p in points),
            "p99_worst_ms": max(p99) if measured and p99 else None,
            "dropped": sum(p["dropped"] for p in points),
            "processed": sum(p["processed"] for p in points),
            "cores_busy": round(sum(p["cores_busy"] for p in points), 3), "per_process": points}


def at_once(target, calls: list[tuple], timeout_s: float = 900.0) -> list:
    """``target(*args, results)`` for each args of ``calls``, each in a fresh process, all at
    once; what each put on ``results``, in the order they finished."""
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    workers = [ctx.Process(target=target, args=(*args, results)) for args in calls]
    for w in workers:
        w.start()
    out = [results.get(timeout=timeout_s) for _ in workers]
    for w in workers:
        w.join()
    return out


def run_config(onnx: Path, procs: int, streams: int, duration_s: float) -> dict:
    return combine(procs, at_once(_one, [(str(onnx), streams, duration_s)] * procs))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", default="1x14,2x7,1x16,2x8")
    ap.add_argument("--duration", type=float, default=8.0, help="measured seconds per run")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    configs = parse_configs(args.configs)
    onnx = default_onnx()
    machine = describe()
    runs = []
    for r in range(args.rounds):
        for procs, streams in configs:
            row = {"round": r + 1, **run_config(onnx, procs, streams, args.duration)}
            print(f"round {r + 1}: {procs} x {streams}: held {row['held']}, worst p99 "
                  f"{row['p99_worst_ms']} ms, dropped {row['dropped']}, cores {row['cores_busy']}",
                  flush=True)
            runs.append(row)
    emit({"benchmark": "streams_processes", "date": time.strftime("%Y-%m-%d"), "machine": machine,
          "model": onnx.name, "duration_s": args.duration, "runs": runs}, args.out)


if __name__ == "__main__":
    main()
