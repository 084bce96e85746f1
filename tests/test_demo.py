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
