"""scripts/demo as a newcomer runs it (installation skipped): it says where results, metrics and
the viewer are, prints what is in view as "region score at (x, y)", and ends with the summary."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.streamer.test_viewer import free_port

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_demo_prints_where_things_are_and_detections(tmp_path):
    pytest.importorskip("aiohttp")
    publish, view, metrics = free_port(), free_port(), free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DEMO_SKIP_SETUP": "1", "VIEW_PORT": str(view),
           "PYTHON": sys.executable,  # this interpreter, not the checkout's .venv
           "METRICS_PORT": str(metrics), "PUBLISH": f"tcp://127.0.0.1:{publish}",
           "LOG": str(tmp_path / "demo.log")}
    out = subprocess.run([str(ROOT / "scripts" / "demo"), "6"], env=env, capture_output=True,
                         text=True, timeout=180).stdout
    assert f"results  tcp://127.0.0.1:{publish}" in out, out
    assert f"metrics  http://127.0.0.1:{metrics}/metrics" in out
    assert f"viewer   http://127.0.0.1:{view}/" in out
    region = r"(head|spine|thorax|abdomen|limbs|placenta) [01]\.\d\d at \(\d+, \d+\)"
    assert re.search(r"frame \d+ +" + region, out), out
    assert re.search(r"^frames: captured \d+, processed \d+", out, re.M), out


def test_demo_logs_each_run_to_its_own_file_and_says_where(tmp_path):
    """Not one shared /tmp/sonostream-demo.log for every user and run: a new file per run, its
    path printed. (A stand-in interpreter that does nothing keeps this quick.)"""
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("LOG", "VIRTUAL_ENV")}
    env.update(DEMO_SKIP_SETUP="1", PYTHON=str(fake), TMPDIR=str(tmp_path))
    logs = []
    for _ in range(2):
        out = subprocess.run([str(ROOT / "scripts" / "demo"), "1"], env=env, capture_output=True,
                             text=True, timeout=60).stdout
        found = re.search(r"^streamer starting \(pid \d+, log (\S+)\)$", out, re.M)
        assert found, out
        logs.append(Path(found.group(1)))
    assert logs[0] != logs[1] and all(p.parent == tmp_path and p.is_file() for p in logs), logs
    assert all(p.name.startswith("sonostream-demo.") for p in logs)
