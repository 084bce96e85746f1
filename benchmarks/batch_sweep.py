"""How large a micro-batch the pipeline should take at saturation: the saturation run repeated
for each ``max_batch``, interleaved (1, 2, 4, 8, 1, 2, ...) so that a busy machine's drift falls
on every setting alike; frames/s and capture→publish p50 per setting, median over the rounds.

    python benchmarks/batch_sweep.py [--sizes 1,2,4,8] [--rounds 3] [--duration 4] [--threads 0]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys

import numpy as np

from engines.defaults import default_onnx
from streamer.bench.end_to_end import run_pipeline
from streamer.bench.plan import BenchPlan


def sweep(sizes, rounds: int, duration: float, threads: int) -> dict:
    plan = BenchPlan(default_onnx(), duration_s=duration)
    runs = {n: [] for n in sizes}
    for _ in range(rounds):
        for n in sizes:
            r = run_pipeline(dataclasses.replace(plan, max_batch=n), None, threads=threads)
            runs[n].append({"fps": r["throughput_fps"], "batches": r["batches"],
                            "p50_ms": r["latency_ms"]["capture_to_publish"]["p50"]})
    return {"load_average": os.getloadavg(), "threads": threads, "duration_s": duration,
            "median_fps": {n: float(np.median([r["fps"] for r in v])) for n, v in runs.items()},
            "median_p50_ms": {n: float(np.median([r["p50_ms"] for r in v])) for n, v in runs.items()},
            "runs": runs}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="1,2,4,8")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=float, default=4.0)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--json")
    args = p.parse_args(argv)
    result = sweep([int(v) for v in args.sizes.split(",")], args.rounds, args.duration, args.threads)
    for n, fps in result["median_fps"].items():
        print(f"max_batch {n}: {fps:.1f} frames/s, capture→publish p50 "
              f"{result['median_p50_ms'][n]:.2f} ms")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
