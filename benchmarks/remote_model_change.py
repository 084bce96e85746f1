"""A `streamer serve` restarted under a live stream with another model under the same name: what
the streamer publishes afterwards, how it counts the frames, and what its metrics say.

    python benchmarks/remote_model_change.py [--after-s 20] [--out FILE.json]

Per case (a seventh class; the same shapes with two classes named the other way round; the same
model again, as the control) a real `streamer run --backend remote` on the simulated scanner at
30 fps records its results; after 30 results the server is killed (SIGKILL) and started on the
same ports with the case's model; the stream runs ``--after-s`` more seconds while its
Prometheus endpoint is sampled every second, then stops with SIGINT. Results recorded after the
new server was ready carry the class names the stream started with.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from streamer.serve_process import ServeProcess, free_ports  # noqa: E402
from tests.streamer.remote_models import reordered_model, seven_class_model  # noqa: E402


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def _sample(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out = {}
    for line in text.splitlines():
        m = re.match(r'(streamer_backend_\w+)\{stream="s"\} (\S+)', line)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


def run_case(name: str, model: Path | None, work: Path, after_s: float) -> dict:
    record, (metrics_port,) = work / f"{name}.jsonl", free_ports(1)
    srv = ServeProcess("--threads", "1", log=work / f"{name}-serve.log").start()
    cmd = [sys.executable, "-m", "streamer", "run", "--backend", "remote", "--server", srv.url,
           "--source", "sim:fps=30", "--publish", "", "--metrics-port", str(metrics_port),
           "--stream", "s", "--record", str(record)]
    streamer = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        while _lines(record) < 30:
            assert streamer.poll() is None, streamer.stdout.read()
            time.sleep(0.1)
        srv.kill()
        if model is not None:
            srv.args += ["--model", str(model)]
        srv.start()
        mark, samples = _lines(record), []
        end = time.monotonic() + after_s
        while time.monotonic() < end:
            time.sleep(1.0)
            samples.append(_sample(metrics_port))
        streamer.send_signal(signal.SIGINT)
        out = streamer.communicate(timeout=60)[0]
    finally:
        if streamer.poll() is None:
            streamer.kill()
        srv.stop()
    results = [json.loads(line) for line in record.read_text().splitlines()]
    counts = re.search(r"frames: captured (\d+), processed (\d+), dropped (\d+), invalid (\d+)", out)
    return {"case": name, "results_before": mark, "results_after_restart": len(results) - mark,
            "classes_published_after": sorted(results[-1]["classes"]) if len(results) > mark else [],
            "frames": dict(zip(("captured", "processed", "dropped", "invalid"),
                               map(int, counts.groups()), strict=True)) if counts else out[-2000:],
            "last_metrics": samples[-1] if samples else {},
            "backend_up_samples": [s.get("streamer_backend_up") for s in samples]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--after-s", type=float, default=20.0)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        cases = {"seven_classes": seven_class_model(work / "seven.onnx"),
                 "reordered": reordered_model(work / "reordered.onnx"), "same_model": None}
        for name, model in cases.items():
            row = run_case(name, model, work, args.after_s)
            print(json.dumps(row), flush=True)
            rows.append(row)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
