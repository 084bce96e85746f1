"""Many scanners, one inference server: 1, 2, 4 simulated scanners at 30 fps, each sending its
prepared frames to one `streamer serve` (v2 gRPC, adaptive batching), against the status quo of
each scanner running its own in-process model, in the same run.

    python benchmarks/remote_scanners.py [--scanners 1,2,4] [--seconds 8] [--fps 30]
        [--max-batch 16] [--max-queue-delay-ms 1] [--model dynamic.onnx] [--out FILE.json]

Each scanner is a thread with its own backend (its own gRPC channel, or its own ONNX Runtime
session) calling it on a 30 fps clock with real preprocessed frames from the simulated scanner; a
frame whose slot passed while the previous call was running is skipped and counted, as a live
source would. Per scanner: p50/p99 of the inference call (the stage the server replaces); per run:
the batch sizes the server formed (its sonostream_server_batch_size histogram). The served model
is the bundled checkpoint exported with a dynamic batch axis, so a batch shares one model call.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from engines.backends import create_backend
from streamer.serve_process import ServeProcess


def prepared_frames(input_size: int, count: int = 8) -> list[np.ndarray]:
    """Real model inputs: simulated scanner screens through the live preprocessing."""
    from streamer.config import PreprocessConfig
    from streamer.preprocess import Preprocessor
    from streamer.sources import create_source

    source = create_source("sim:realtime=false").open()
    pre = Preprocessor(PreprocessConfig(representation="polar"), input_size)
    out = []
    while len(out) < count:
        frame = source.read(1.0)
        if frame is not None:
            out.append(pre.process(frame).tensor.copy())
    source.close()
    return out[-count:]


def scanner(backend, frames, fps: float, seconds: float, start: float, out: dict) -> None:
    period, lat, skipped, k = 1.0 / fps, [], 0, 0
    total = int(seconds * fps)
    while k < total:
        due = start + k * period
        now = time.perf_counter()
        if now < due:
            time.sleep(due - now)
        t0 = time.perf_counter()
        backend.infer(frames[k % len(frames)])
        lat.append(time.perf_counter() - t0)
        k += 1
        late = int((time.perf_counter() - (start + k * period)) / period)
        if late > 0:  # slots that passed during the call: a live source drops those frames
            skipped += min(late, total - k)
            k += late
    out["latency_ms"] = np.asarray(lat) * 1e3
    out["skipped"] = skipped
    out["frames"] = len(lat)


def closed_loop(backend, frames, seconds: float, out: dict) -> None:
    """As fast as the backend answers: throughput, not latency."""
    k, end = 0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        backend.infer(frames[k % len(frames)])
        k += 1
    out["frames"] = k


def saturate(make_backend, n: int, frames, seconds: float) -> float:
    """Frames per second that n clients calling back to back get through, all together."""
    backends = [make_backend() for _ in range(n)]
    results = [{} for _ in range(n)]
    threads = [threading.Thread(target=closed_loop, args=(b, frames, seconds, r))
               for b, r in zip(backends, results, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for b in backends:
        b.close()
    return round(sum(r["frames"] for r in results) / seconds, 1)


def run_scanners(make_backend, n: int, frames, fps: float, seconds: float) -> list[dict]:
    """Scanners are not in step: each starts at a random phase of the frame interval."""
    backends = [make_backend() for _ in range(n)]
    results = [{} for _ in range(n)]
    start = time.perf_counter() + 0.2
    phases = np.random.default_rng(n).uniform(0, 1 / fps, n)
    threads = [threading.Thread(target=scanner, args=(b, frames, fps, seconds, start + phase, r))
               for phase, b, r in zip(phases, backends, results, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for b in backends:
        b.close()
    return [{"frames": r["frames"], "skipped": r["skipped"],
             "p50_ms": round(float(np.percentile(r["latency_ms"], 50)), 2),
             "p99_ms": round(float(np.percentile(r["latency_ms"], 99)), 2)} for r in results]


def batch_histogram(before: dict, after: dict) -> dict:
    """Model calls by batch size (from the cumulative buckets), their count and mean."""
    edges = sorted(float(k[3:]) for k in after if k.startswith("le=") and k != "le=+Inf")
    calls, below = {}, 0.0
    for edge in edges:
        key = f"le={edge}"
        cumulative = after[key] - before.get(key, 0.0)
        if cumulative - below:
            calls[f"<={edge:g}"] = int(cumulative - below)
        below = cumulative
    count = after["count"] - before.get("count", 0.0)
    total = after["sum"] - before.get("sum", 0.0)
    return {"calls": int(count), "frames": int(total), "mean_batch": round(total / max(count, 1), 2),
            "by_size": calls}


def payload_round_trips(url: str, frames, calls: int = 200) -> dict:
    """One client, back to back: the round trip sending UINT8 (scaled on the server) against
    sending the FP32 tensor itself, alternating call by call so both see the same load."""
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(url.removeprefix("grpc://"))
    outputs = [grpcclient.InferRequestedOutput(n) for n in ("scores", "maps")]
    times = {"UINT8": [], "FP32": []}
    for k in range(2 * calls):
        kind = "UINT8" if k % 2 else "FP32"
        x = frames[k % len(frames)]
        data = np.rint(x * 255).astype(np.uint8) if kind == "UINT8" else x
        start = time.perf_counter()
        inp = grpcclient.InferInput("frames", list(data.shape), kind)
        inp.set_data_from_numpy(data)
        client.infer("sonostream", [inp], outputs=outputs)
        times[kind].append(time.perf_counter() - start)
    client.close()
    return {kind: {"bytes": int(frames[0].size * (1 if kind == "UINT8" else 4)),
                   "p50_ms": round(float(np.percentile(t, 50) * 1e3), 2),
                   "p99_ms": round(float(np.percentile(t, 99) * 1e3), 2)} for kind, t in times.items()}


def export_dynamic(tmp: Path) -> Path:
    from engines.checkpoint import load_checkpoint
    from engines.defaults import default_checkpoint
    from engines.export import export_onnx

    return export_onnx(load_checkpoint(default_checkpoint()), tmp / "dynamic.onnx", dynamic_batch=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--scanners", default="1,2,4")
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--max-batch", type=int, default=16)
    p.add_argument("--max-queue-delay-ms", type=float, default=1.0)
    p.add_argument("--model", help="ONNX model (default: the bundled one with a dynamic batch)")
    p.add_argument("--out", help="write the record here (.json, and .md beside it)")
    args = p.parse_args(argv)
    counts = [int(n) for n in args.scanners.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(args.model) if args.model else export_dynamic(Path(tmp))
        started = time.perf_counter()
        server = ServeProcess("--model", str(model), "--max-batch", str(args.max_batch),
                              "--max-queue-delay-ms", str(args.max_queue_delay_ms),
                              log=Path(tmp) / "serve.log").start()
        start_s = time.perf_counter() - started
        try:
            local = create_backend("onnxruntime", model).open()
            frames = prepared_frames(local.info.input_size)
            local.close()
            rows = []
            for n in counts:
                inproc = run_scanners(lambda: create_backend("onnxruntime", model).open(), n,
                                      frames, args.fps, args.seconds)
                before = server.batch_sizes()
                remote = run_scanners(lambda: create_backend("remote", f"{server.url}/sonostream").open(),
                                      n, frames, args.fps, args.seconds)
                rows.append({"scanners": n, "in_process": inproc, "remote": remote,
                             "server_batches": batch_histogram(before, server.batch_sizes())})
                print(json.dumps(rows[-1]), flush=True)
            n = max(counts)
            before = server.batch_sizes()
            saturation = {
                "clients": n,
                "in_process_fps": saturate(lambda: create_backend("onnxruntime", model).open(), n,
                                           frames, args.seconds / 2),
                "remote_fps": saturate(lambda: create_backend("remote", f"{server.url}/sonostream").open(),
                                       n, frames, args.seconds / 2),
            }
            saturation["server_batches"] = batch_histogram(before, server.batch_sizes())
            print(json.dumps(saturation), flush=True)
            payload = payload_round_trips(server.url, frames)
            print(json.dumps(payload), flush=True)
        finally:
            server.stop()
    record = {"benchmark": "remote_scanners",
              "model": args.model or "the bundled checkpoint exported with a dynamic batch axis",
              "fps": args.fps, "seconds": args.seconds,
              "max_batch": args.max_batch, "max_queue_delay_ms": args.max_queue_delay_ms,
              "server": "streamer serve (MLServer 1.7.1, parallel_workers 0, ONNX Runtime CPU)",
              "server_start_s": round(start_s, 1), "payload": payload,
              "machine": _machine(), "rows": rows, "saturation": saturation}
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(record, indent=2) + "\n")
        out.with_suffix(".md").write_text(markdown(record))
        print(f"wrote {out} and {out.with_suffix('.md')}")
    return 0


def _machine() -> dict:
    try:
        from streamer.bench.machine import describe

        return describe()
    except Exception as exc:  # the record is still worth keeping
        return {"error": str(exc)}


def markdown(record: dict) -> str:
    lines = [f"# Many scanners, one server: inference call latency at {record['fps']:g} fps",
             "", f"Generated by `python benchmarks/remote_scanners.py --out ...`; server: "
             f"{record['server']}, max batch {record['max_batch']}, queue delay "
             f"{record['max_queue_delay_ms']} ms; {record['seconds']:g} s per run.", "",
             "| scanners | in-process p50 / p99 ms (each scanner) | remote p50 / p99 ms (each scanner) "
             "| skipped in-proc / remote | server calls | mean batch | batches |",
             "|---|---|---|---|---|---|---|"]
    for row in record["rows"]:
        def cell(runs):
            return ", ".join(f"{r['p50_ms']:.1f} / {r['p99_ms']:.1f}" for r in runs)

        b = row["server_batches"]
        skipped = (sum(r["skipped"] for r in row["in_process"]), sum(r["skipped"] for r in row["remote"]))
        lines.append(f"| {row['scanners']} | {cell(row['in_process'])} | {cell(row['remote'])} | "
                     f"{skipped[0]} / {skipped[1]} | {b['calls']} | {b['mean_batch']} | "
                     f"{', '.join(f'{k}: {v}' for k, v in b['by_size'].items())} |")
    sat = record["saturation"]
    lines += ["", f"Saturation ({sat['clients']} clients calling back to back, each with its own "
              f"model in-process or all on the server): in-process {sat['in_process_fps']} frames/s, "
              f"remote {sat['remote_fps']} frames/s, mean server batch "
              f"{sat['server_batches']['mean_batch']}."]
    pay = record["payload"]
    lines += ["", "Round trip of one frame, one client, back to back (p50 / p99): "
              + ", ".join(f"{k} ({v['bytes'] // 1000} KB) {v['p50_ms']} / {v['p99_ms']} ms"
                          for k, v in pay.items()) + "."]
    m = record.get("machine", {})
    lines += ["", f"Machine: {m.get('cpu', m)}, {m.get('cores_usable', '?')} cores, load average "
              f"at start {m.get('load_average_at_start')} (other work shared the cores: compare "
              "the columns of one row, not rows of different runs)."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
