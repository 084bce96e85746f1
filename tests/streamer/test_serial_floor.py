"""benchmarks/serial_floor.py: every frame goes through every stage once and is timed there, and
the streams a per-frame cost allows are the cores' milliseconds over the frames' needs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from engines.defaults import default_onnx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import serial_floor  # noqa: E402


def test_streams_at_full_cpu_are_the_cores_milliseconds_over_a_streams_needs():
    """2 cores give 2000 ms of CPU a second; a 30 fps stream at 2.4 ms a frame needs 72."""
    assert serial_floor.streams_at_full_cpu(2, 2.4) == pytest.approx(2000 / 72)
    assert serial_floor.streams_at_full_cpu(4, 2.4) == pytest.approx(2 * 2000 / 72)


def test_stages_timed_on_different_frames_are_refused():
    with pytest.raises(ValueError, match="different numbers of frames"):
        serial_floor.summarise({"preprocess": [0.001, 0.001], "model": [0.002]})
    s = serial_floor.summarise({"preprocess": [0.001, 0.003], "model": [0.002, 0.002]})
    assert s["frames"] == 2 and s["cpu_ms_per_frame"] == {"preprocess": 2.0, "model": 2.0}
    assert s["total_ms"] == 4.0


def test_two_scanners_in_turn_time_every_stage_of_every_frame():
    row = serial_floor.run_lanes(str(default_onnx()), [0, 1], 3, width=480, height=360)
    assert row["scanners"] == 2 and row["frames"] == 2 * 3
    assert set(row["cpu_ms_per_frame"]) == set(serial_floor.STAGES)
    assert all(v > 0 for v in row["cpu_ms_per_frame"].values())
    assert row["total_ms"] == pytest.approx(sum(row["cpu_ms_per_frame"].values()), abs=1e-3)
