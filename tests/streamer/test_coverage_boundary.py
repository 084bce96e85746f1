"""benchmarks/coverage_boundary.py: where a region's labelled time sits against the labels' 40%
rule, and the error counted over the clear frames only (its table in docs/exam-summary.md:
tests/streamer/test_coverage_doc.py)."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import coverage_boundary  # noqa: E402


def test_a_region_seen_early_is_wrong_only_near_the_rule():
    """60 frames (2 s at 30 fps) of a part sliding in: 10 at 10% inside, 10 at 35%, 10 at 45%,
    30 at 90%. The model calls it from 35% on: 50 frames seen against 40 labelled (+25%), while
    over the clear frames (10% and 90%) it is exact."""
    shares = np.repeat([0.1, 0.35, 0.45, 0.9], [10, 10, 10, 30])
    seen = shares >= 0.3
    row = coverage_boundary.region_row("spine", shares, seen, fps=30.0)
    assert row["labelled_s"] == pytest.approx(40 / 30, abs=0.01)
    assert row["seen_s"] == pytest.approx(50 / 30, abs=0.01)
    assert row["relative"] == pytest.approx(0.25)
    assert row["just_in_share"] == pytest.approx(10 / 40)
    assert row["just_out_share"] == pytest.approx(10 / 40)
    assert row["clear_labelled_s"] == pytest.approx(1.0) and row["clear_relative"] == 0.0


def test_a_region_never_in_view_has_no_relative_error():
    row = coverage_boundary.region_row("placenta", np.zeros(30), np.ones(30, bool), fps=30.0)
    assert row["labelled_s"] == 0 and row["seen_s"] == 1.0
    assert row["relative"] is None and row["clear_relative"] is None
    assert row["just_in_share"] is None


@pytest.mark.parametrize("familiar, frozen, counted", [
    (True, False, True), (None, False, True), (False, False, False), (True, True, False)])
def test_only_a_trusted_image_counts_as_seen(familiar, frozen, counted):
    sink = coverage_boundary.SeenSink()
    head, spine = SimpleNamespace(name="head", present=True), SimpleNamespace(name="spine", present=False)
    sink.publish(SimpleNamespace(seq=4, familiar=familiar, frozen=frozen, classes=(head, spine)))
    assert sink.seen == {4: {"head": counted, "spine": False}}

