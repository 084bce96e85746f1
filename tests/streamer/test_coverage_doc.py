"""docs/exam-summary.md's coverage tables are the recorded runs', regenerated (never typed)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import coverage_check  # noqa: E402


def _block(module, begin: str = "BEGIN", end: str = "END") -> str:
    """The text between ``module``'s markers (its constants named ``begin`` and ``end``) in
    docs/exam-summary.md."""
    doc = (ROOT / "docs" / "exam-summary.md").read_text()
    begin, end = getattr(module, begin), getattr(module, end)
    assert begin in doc and end in doc, "the doc lost its markers"
    return doc.split(begin, 1)[1].split(end, 1)[0].strip()


def _record(name: str) -> dict:
    return json.loads((ROOT / "benchmarks/results/coverage" / name).read_text())


def test_the_coverage_table_is_the_recorded_run():
    assert _block(coverage_check) == coverage_check.table(_record("2026-12-05-cpu2.json"))


def test_the_adapted_models_table_is_the_recorded_runs():
    import coverage_adapted

    text = _block(coverage_adapted)
    bundled = {"coverage": json.loads(coverage_adapted.BUNDLED[0].read_text()),
               "keyframes": json.loads(coverage_adapted.BUNDLED[1].read_text())}
    runs = [_record(f"2026-12-05-adapted-{name}.json")
            for name in ("40-sweeps", "80-sweeps", "40-sweeps-lr0.001")]
    assert text == coverage_adapted.table(bundled, runs)


def test_the_boundary_table_is_the_recorded_run():
    import coverage_boundary

    text = _block(coverage_boundary)
    assert text == coverage_boundary.table(_record("2026-12-05-boundary.json"))


def test_the_models_near_the_rule_are_the_recorded_runs():
    import coverage_boundary

    text = _block(coverage_boundary, "MODELS_BEGIN", "MODELS_END")
    assert text == coverage_boundary.comparison(coverage_boundary.model_records())


def test_the_observer_table_is_the_recorded_run():
    import coverage_observer

    bundled = json.loads(coverage_observer.BUNDLED.read_text())
    assert _block(coverage_observer) == coverage_observer.table(_record("2026-12-05-observer.json"), bundled)
