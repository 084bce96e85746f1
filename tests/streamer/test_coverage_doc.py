"""docs/exam-summary.md's coverage table is the recorded run's, regenerated (never typed)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import coverage_check  # noqa: E402


def test_the_coverage_table_is_the_recorded_run():
    doc = (ROOT / "docs" / "exam-summary.md").read_text()
    assert coverage_check.BEGIN in doc and coverage_check.END in doc
    text = doc.split(coverage_check.BEGIN, 1)[1].split(coverage_check.END, 1)[0].strip()
    record = json.loads((ROOT / "benchmarks/results/coverage/2026-12-05-cpu2.json").read_text())
    assert text == coverage_check.table(record)


def test_the_adapted_models_table_is_the_recorded_runs():
    import coverage_adapted

    doc = (ROOT / "docs" / "exam-summary.md").read_text()
    assert coverage_adapted.BEGIN in doc and coverage_adapted.END in doc
    text = doc.split(coverage_adapted.BEGIN, 1)[1].split(coverage_adapted.END, 1)[0].strip()
    bundled = {"coverage": json.loads(coverage_adapted.BUNDLED[0].read_text()),
               "keyframes": json.loads(coverage_adapted.BUNDLED[1].read_text())}
    runs = [json.loads((ROOT / f"benchmarks/results/coverage/2026-12-05-adapted-{name}.json")
                       .read_text()) for name in ("40-sweeps", "80-sweeps", "40-sweeps-lr0.001")]
    assert text == coverage_adapted.table(bundled, runs)
