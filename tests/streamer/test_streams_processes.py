"""benchmarks/streams_processes.py: configurations read as PROCESSESxSTREAMS, and a split run is
held only when every process held all of its streams."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import streams_processes  # noqa: E402


def test_configurations_are_processes_by_streams():
    assert streams_processes.parse_configs("1x14, 2x7") == [(1, 14), (2, 7)]
    for bad in ("14", "2x", "x7", "0x7", "2x0", "2*7"):
        with pytest.raises(ValueError, match="PROCESSESxSTREAMS"):
            streams_processes.parse_configs(bad)


def _point(held: bool, p99: float | None, dropped: int = 0) -> dict:
    return {"streams": 7, "held": held, "p99_worst_ms": p99, "dropped": dropped,
            "processed": 1680, "cores_busy": 0.8}


def test_a_split_run_is_held_only_when_every_process_held():
    both = streams_processes.combine(2, [_point(True, 21.0), _point(True, 27.0)])
    assert both["held"] and both["streams"] == 14 and both["p99_worst_ms"] == 27.0
    assert both["cores_busy"] == pytest.approx(1.6) and both["processed"] == 3360
    one = streams_processes.combine(2, [_point(True, 21.0), _point(False, 40.0, dropped=3)])
    assert not one["held"] and one["p99_worst_ms"] == 40.0 and one["dropped"] == 3
    unmeasured = streams_processes.combine(2, [_point(True, 21.0), _point(False, None)])
    assert not unmeasured["held"] and unmeasured["p99_worst_ms"] is None
