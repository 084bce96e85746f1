"""What browsers watching the live viewer cost the engine: one pipeline on a 1080p 30 fps ZMQ feed
(`streamer simulate` in its own process), the viewer open, and phases of 0, 1, 50 HTTP clients
reading its event stream (one reader process, like browsers elsewhere on the machine; `browser`:
one headless Chromium showing the page), side by side in one run. Per phase: frames captured and
dropped, p50/p90 of capture→publish and p50 of each engine stage, what the viewer rendered and
sent, the CPU its threads, the engine's threads and the clients used, and how many clients it
served or refused. ``--burn N`` adds N busy processes (a loaded machine); ``--flood`` also runs
`streamer run` at 1,024 file descriptors against 1,100 idle connections, 3,000 half-sent and 1,000
malformed requests (can a metrics scrape and a new result subscriber get through; what is logged).

    PYTHONPATH=. python3 benchmarks/viewer_load.py --seconds 20 --clients 0,browser,1,50,0 \
        --flood --out benchmarks/results/viewer_load.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from json_record import emit

STAGES = ("capture_to_publish", "preprocess", "inference", "postprocess", "publish")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- the reader process: N event-stream clients that read and discard --------------------------
async def _client(host: str, port: int, stats: dict, stop: asyncio.Event) -> None:
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError:
        stats["failed"] += 1
        return
    writer.write(b"GET /events HTTP/1.1\r\nHost: bench\r\n\r\n")
    status = (await reader.readline()).split(b" ")
    if len(status) < 2 or status[1] != b"200":
        stats["refused"] += 1
        writer.close()
        return
    stats["served"] += 1
    try:
        while not stop.is_set():
            chunk = await reader.read(1 << 16)
            if not chunk:
                break
            stats["bytes"] += len(chunk)
            stats["frames"] += chunk.count(b"event: frame")
    except OSError:
        pass
    writer.close()


async def _read_all(url: str, n: int) -> dict:
    host, port = url[7:].rstrip("/").rsplit(":", 1)
    stats = dict.fromkeys(("served", "refused", "failed", "bytes", "frames"), 0)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_reader(sys.stdin.fileno(), stop.set)  # parent closes stdin
    tasks = [asyncio.create_task(_client(host, int(port), stats, stop)) for _ in range(n)]
    await stop.wait()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return stats


def reader_main(url: str, n: int) -> None:
    print(json.dumps(asyncio.run(_read_all(url, n))), flush=True)


# -- the engine side ---------------------------------------------------------------------------
class Recorder:
    """Wraps the viewer sink: every result's stage times, and how long the viewer's publish took."""

    def __init__(self, sink):
        self.sink, self.rows, self.calls = sink, [], []
        self.lock = threading.Lock()

    def publish(self, result):
        t0 = time.perf_counter_ns()
        self.sink.publish(result)
        dt = time.perf_counter_ns() - t0
        with self.lock:
            self.rows.append(result.timing.stage_seconds())
            self.calls.append(dt)

    def publish_status(self, status):
        self.sink.publish_status(status)

    def close(self):
        self.sink.close()

    def take(self) -> tuple[list, list]:
        with self.lock:
            rows, calls, self.rows, self.calls = self.rows, self.calls, [], []
        return rows, calls


def thread_cpu_s(prefix: str) -> float:
    """CPU seconds used so far by this process's threads whose names start with ``prefix``."""
    total = 0
    for t in threading.enumerate():
        if t.name.startswith(prefix) and t.native_id is not None:
            try:
                fields = Path(f"/proc/self/task/{t.native_id}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def children_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _p(values, q) -> float | None:
    return round(float(np.percentile(values, q)), 3) if len(values) else None


def start_browser(url: str, profile: str) -> subprocess.Popen:
    """Headless Chromium showing the page (decoding and drawing every frame, as a user's would)."""
    return subprocess.Popen(["chromium", "--headless=new", "--no-sandbox", "--disable-gpu",
                             "--disable-dev-shm-usage", f"--user-data-dir={profile}",
                             "--window-size=900,520", url],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def phase(pipeline, viewer, recorder, spec: str, seconds: float) -> dict:
    reader = browser = None
    n = 1 if spec == "browser" else int(spec)
    profile = tempfile.mkdtemp(prefix="viewer-load-")
    if spec == "browser":
        browser = start_browser(viewer.url, profile)
    elif n:
        reader = subprocess.Popen([sys.executable, __file__, "--read", viewer.url, str(n)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    if n:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and viewer.describe()["clients"] < min(
                n, getattr(viewer.options, "max_clients", n)):
            time.sleep(0.1)
        time.sleep(3)  # past the clients' start (a browser's is heavy)
    before, v0 = pipeline.accounting.snapshot(), dict(viewer.describe())
    cpu0 = {k: thread_cpu_s(k) for k in ("viewer", "streamer")}
    kids0 = children_cpu_s()
    recorder.take()
    time.sleep(seconds)
    rows, calls = recorder.take()
    after, v1 = pipeline.accounting.snapshot(), dict(viewer.describe())
    cpu = {k: round((thread_cpu_s(k) - v) / seconds, 3) for k, v in cpu0.items()}
    clients = {}
    if reader is not None:
        out, _ = reader.communicate("", timeout=30)
        clients = json.loads(out.strip().splitlines()[-1])
    if browser is not None:
        browser.terminate()
        browser.wait()
    shutil.rmtree(profile, ignore_errors=True)
    cpu["clients"] = round((children_cpu_s() - kids0) / seconds, 3)
    captured = after["captured"] - before["captured"]
    dropped = after["dropped"] - before["dropped"]
    ms = {s: [r[s] * 1e3 for r in rows] for s in STAGES}
    return {
        "clients": spec, "seconds": seconds, "captured": captured, "dropped": dropped,
        "dropped_pct": round(100 * dropped / captured, 2) if captured else None,
        "capture_to_publish_ms": {"p50": _p(ms["capture_to_publish"], 50),
                                  "p90": _p(ms["capture_to_publish"], 90)},
        "stage_p50_ms": {s: _p(ms[s], 50) for s in STAGES[1:]},
        "viewer_publish_us": {"p50": _p(np.asarray(calls) / 1e3, 50),
                              "max": _p(np.asarray(calls) / 1e3, 100)},
        "viewer": {k: v1.get(k, 0) - v0.get(k, 0) for k in ("encoded", "skipped", "refused")
                   if isinstance(v1.get(k), int)},
        "served": v1.get("clients"), "preview_fps_at_end": v1.get("preview_fps"),
        "encode_ms_mean": v1.get("encode_ms_mean"),
        "cpu_cores": cpu,  # CPU seconds per second: viewer threads, engine threads, clients
        "reader": clients,
    }


def run(args) -> dict:
    from engines.backends import BackendOptions, create_backend
    from engines.defaults import default_onnx
    from streamer.config import Config
    from streamer.pipeline import build_pipeline
    from streamer.sinks.viewer_sink import ViewerSink
    from streamer.sources import create_source

    endpoint = f"tcp://127.0.0.1:{free_port()}"
    sim = subprocess.Popen([sys.executable, "-m", "streamer", "simulate", "--publish", endpoint,
                            "--fps", str(args.fps), "--quiet"], stdout=subprocess.DEVNULL)
    backend = create_backend("onnxruntime", default_onnx(), BackendOptions())
    backend.open()
    viewer = ViewerSink(port=0).open()
    recorder = Recorder(viewer)
    pipeline = build_pipeline(Config(), create_source(f"zmq:{endpoint}"), backend, [recorder])
    pipeline.start()
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.burn)]
    try:
        time.sleep(args.warmup)
        rows = [phase(pipeline, viewer, recorder, n, args.seconds) for n in args.clients]
    finally:
        for b in burners:
            b.kill()
            b.wait()
        pipeline.stop()
        pipeline.close()
        backend.close()
        sim.terminate()
        sim.wait()
    return {"benchmark": "viewer_load", "source": f"zmq 1920x1080 bgr at {args.fps:g} fps "
            "(streamer simulate)", "seconds_per_phase": args.seconds,
            "viewer": {k: v for k, v in viewer.describe().items()
                       if k in ("width", "quality", "max_fps", "max_clients", "header_timeout")},
            "burners": args.burn, "machine": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "load_at_start": os.getloadavg()[0], "date": time.strftime("%Y-%m-%d"), "rows": rows}


# -- abuse: idle and half-sent connections, malformed requests, at 1,024 file descriptors ---------
def _probe(metrics_url: str, results: str) -> dict:
    """Can a metrics scrape and a new result subscriber still get through? (seconds, or None)"""
    import urllib.request

    from streamer.client import DetectionMessage, ResultSubscriber

    t0 = time.monotonic()
    try:
        urllib.request.urlopen(metrics_url, timeout=5).read()
        scrape = round(time.monotonic() - t0, 3)
    except OSError:
        scrape = None
    t0, first = time.monotonic(), None
    with ResultSubscriber(results, topics=("det",)) as sub:
        while first is None and time.monotonic() - t0 < 10:
            if isinstance(sub.recv(0.5), DetectionMessage):
                first = round(time.monotonic() - t0, 3)
    return {"metrics_scrape_s": scrape, "new_subscriber_first_result_s": first}


def _still_open(socks: list) -> int:
    """How many the viewer still holds: not closed, nothing (more) to read."""
    n = 0
    for s in socks:
        s.setblocking(False)
        try:
            while s.recv(1 << 16):  # a refusal's 503, then its close
                pass
        except BlockingIOError:
            n += 1
        except OSError:
            pass
    return n


def _connect_many(port: int, n: int, request: bytes) -> list:
    socks = []
    for _ in range(n):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=2)
            if request:
                s.sendall(request)
            socks.append(s)
        except OSError:
            break
    return socks


def flood(args) -> dict:
    """`streamer run` at 1,024 file descriptors: 1,100 idle viewer connections, then 3,000
    half-sent requests, then 1,000 malformed requests; what gets through, what the log says."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)
    view, metrics, pub = free_port(), free_port(), free_port()
    log_path = Path(tempfile.mkdtemp(prefix="viewer-flood-")) / "streamer.log"
    results = f"tcp://127.0.0.1:{pub}"
    cmd = (f"ulimit -n 1024; exec {sys.executable} -m streamer run --source sim --view-port {view} "
           f"--metrics-port {metrics} --publish {results}")
    with open(log_path, "w") as log:
        proc = subprocess.Popen(["bash", "-c", cmd], stdout=subprocess.DEVNULL, stderr=log)
    metrics_url, out = f"http://127.0.0.1:{metrics}/metrics", {}
    try:
        deadline = time.monotonic() + 60
        while _probe(metrics_url, results)["metrics_scrape_s"] is None:
            assert time.monotonic() < deadline and proc.poll() is None, log_path.read_text()[-2000:]
        out["quiet"] = _probe(metrics_url, results)
        idle = _connect_many(view, 1100, b"")
        time.sleep(3)
        out["idle_1100"] = {"connected": len(idle), "held_by_viewer": _still_open(idle),
                            **_probe(metrics_url, results)}
        for s in idle:
            s.close()
        time.sleep(2)
        half = _connect_many(view, 3000, b"GET /events HTTP/1.1\r\nHost: x\r\n")
        time.sleep(15)  # past the header timeout (10 s)
        out["half_sent_3000"] = {"connected": len(half), "still_open_after_15s": _still_open(half)}
        for s in half:
            s.close()
        time.sleep(2)
        size = log_path.stat().st_size
        for s in _connect_many(view, 1000, b"GET / HTTP/1.1\r\nHost: x\r\nno colon\r\n\r\n"):
            s.close()
        time.sleep(2)
        out["malformed_1000_log_bytes"] = log_path.stat().st_size - size
    finally:
        proc.terminate()
        proc.wait(30)
    text = log_path.read_text(errors="replace")
    out["log"] = {"bytes": len(text.encode()), "lines": text.count("\n"),
                  "tracebacks": text.count("Traceback"),
                  "accept_lines": sum("accept" in line for line in text.splitlines())}
    return out


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--read":
        return reader_main(sys.argv[2], int(sys.argv[3]))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0, help="length of each phase")
    ap.add_argument("--warmup", type=float, default=5.0)
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--clients", type=lambda s: [v for v in s.split(",") if v], default=["0", "1", "50"],
                    help="clients in each phase, in order (default 0,1,50; 'browser': one "
                         "headless Chromium showing the page)")
    ap.add_argument("--burn", type=int, default=0, metavar="N", help="N busy processes all run "
                    "long, a loaded machine's other work (default 0)")
    ap.add_argument("--flood", action="store_true", help="also the abuse run (file descriptors, "
                    "half-sent and malformed requests) against `streamer run`")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    record = run(args) if args.clients else {"benchmark": "viewer_load", "date": time.strftime("%Y-%m-%d")}
    if args.flood:
        record["flood"] = flood(args)
    emit(record, args.out)


if __name__ == "__main__":
    main()
