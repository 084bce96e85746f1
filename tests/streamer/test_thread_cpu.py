"""benchmarks/thread_cpu.py: threads summed by role, the budget the streams target leaves a
frame, and the span it measures handed to it by the streams run."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import thread_cpu  # noqa: E402


@pytest.mark.parametrize("name, role", [
    ("streamer-inference-1", "streamer-inference"), ("streamer-inference", "streamer-inference"),
    ("streamer-preprocess.s12", "streamer-preprocess"), ("streamer-source.s3", "streamer-source"),
    ("streamer-fan-search", "streamer-fan-search"), ("Thread-3", "other"), ("", "other")])
def test_threads_are_summed_by_role_whatever_their_stream_or_number(name, role):
    assert thread_cpu.role(name) == role


def test_the_budget_is_what_25_streams_leave_of_two_cores_beside_the_model():
    """0.8 × 913.5 / 30 = 24.36 streams: 25 must be held (24 falls short), 750 frames/s on 2
    cores = 2.667 ms of CPU per frame, 1.267 of it outside a 1.4 ms model."""
    b = thread_cpu.budget(913.5, 1.4, 2)
    assert b["target_streams"] == 25
    assert b["cpu_ms_per_frame"] == pytest.approx(2000 / 750, abs=1e-4)
    assert b["left_outside_the_model_ms"] == pytest.approx(2000 / 750 - 1.4, abs=1e-4)


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="per-thread CPU needs /proc")
def test_a_threads_cpu_is_counted_under_its_role():
    """The thread spins until its own clock says 0.2 s, then reads /proc from inside (its entry
    goes when it ends); /proc counts in 10 ms ticks, so it shows at least 0.15 s whatever the
    load, under its role."""
    seen = []

    def spin():
        start = time.thread_time()
        while time.thread_time() - start < 0.2:
            pass
        seen.append(thread_cpu.thread_cpu()[threading.get_native_id()])

    t = threading.Thread(target=spin, name="streamer-preprocess.s7")
    t.start()
    t.join()
    (role, cpu), = seen
    assert role == "streamer-preprocess" and cpu >= 0.15


def test_the_streams_run_marks_its_measured_span(compact_onnx):
    """thread_cpu reads every thread's CPU at the two marks: once the warm-up is over and once
    the measured span ends, while the pipeline's threads are all still there."""
    from streamer.bench.plan import BenchPlan
    from streamer.bench.streams import run_streams

    alive = []
    plan = BenchPlan(compact_onnx, duration_s=0.3, smoke=True)
    run_streams(plan, 1, window=lambda: alive.append(
        sum(t.name.startswith("streamer-preprocess") for t in threading.enumerate())))
    assert alive == [1, 1]
