"""The Python subscriber samples in README.md and docs/, run as written (only the
endpoint changed to a free one) against a publishing ZMQ sink: a sample that crashes or prints
nothing turns this red."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from streamer.sinks.zmq_sink import ZmqSink
from tests.streamer.test_client_cli import free_endpoint
from tests.streamer.test_sinks import result

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = "tcp://127.0.0.1:5556"


def subscriber_blocks() -> list[tuple[str, str]]:
    blocks = []
    for doc in ("README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))):
        text = (ROOT / doc).read_text(encoding="utf-8")
        for i, code in enumerate(re.findall(r"```python\n(.*?)```", text, re.S)):
            if "ResultSubscriber(" in code:
                blocks.append((f"{doc}#{i}", code))
    return blocks


@pytest.mark.parametrize("name, code", subscriber_blocks(), ids=lambda v: v.split("\n")[0][:30])
def test_subscriber_sample_runs_and_prints_detections(name, code):
    assert DEFAULT in code, f"{name}: the sample should use the default endpoint"
    endpoint = free_endpoint()
    stop = threading.Event()
    with ZmqSink(endpoint=endpoint) as sink:
        def publish():
            seq = 0
            while not stop.is_set():
                sink.publish(result(seq))  # stream us0: head present at (5, 6), spine absent
                sink.publish_status({"stream": "us0", "fps": 30.0})
                seq += 1
                time.sleep(0.02)
        threading.Thread(target=publish, daemon=True).start()
        proc = subprocess.Popen([sys.executable, "-c", code.replace(DEFAULT, endpoint)],
                                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        watchdog = threading.Timer(60, proc.kill)  # a sample that hangs fails, not the suite
        watchdog.start()
        try:
            lines = [proc.stdout.readline() for _ in range(3)]
        finally:
            watchdog.cancel()
            stop.set()
            proc.kill()
            _, err = proc.communicate()
    assert all(lines) and all(" " in line for line in lines), f"{name} printed {lines}: {err}"
    assert any("(1, 2, 10, 12)" in line for line in lines), lines  # the head's box, as printed
