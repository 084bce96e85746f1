"""benchmarks/floor_doc.py: the share of the cores a target needs at the serial floor, and
docs/many-streams.md's block is the recorded runs', regenerated (never typed)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import floor_doc  # noqa: E402


def test_the_share_of_the_cores_is_the_frames_cpu_plus_the_work_beside_it():
    """750 frames/s at 2.32 ms is 1.74 s of CPU a second: 87% of 2 cores, 99.5% with a quarter
    of a core of looks beside it."""
    assert floor_doc.share_of_cores(750, 2.32, 2) == pytest.approx(0.87)
    assert floor_doc.share_of_cores(750, 2.32, 2, 0.25) == pytest.approx(0.995)


def test_the_block_in_the_doc_is_the_recorded_runs():
    doc = (ROOT / "docs" / "many-streams.md").read_text()
    assert floor_doc.BEGIN in doc and floor_doc.END in doc
    text = doc.split(floor_doc.BEGIN, 1)[1].split(floor_doc.END, 1)[0].strip()
    assert text == floor_doc.block(floor_doc.load())
