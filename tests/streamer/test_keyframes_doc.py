"""docs/exam-summary.md's keyframe check and cost figures are the recorded run: regenerated from
the JSON it names, the table must read the same (a typed or stale number turns this red)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import keyframes_check  # noqa: E402

DOC = ROOT / "docs" / "exam-summary.md"


def test_the_keyframes_table_is_the_recorded_run():
    doc = DOC.read_text()
    assert keyframes_check.BEGIN in doc and keyframes_check.END in doc, "the doc lost its markers"
    text = doc.split(keyframes_check.BEGIN, 1)[1].split(keyframes_check.END, 1)[0].strip()
    source = re.search(r"Recorded run `([^`]+\.json)`", text).group(1)
    record = json.loads((ROOT / source).read_text())
    assert text == keyframes_check.table(record, source)


def test_the_doc_names_the_selection_constants_as_the_code_has_them():
    from streamer.keyframes import select

    doc = " ".join(DOC.read_text().split())
    assert f"`MIN_GAP_S` = {select.MIN_GAP_S:g} s" in doc
    assert f"`DUPLICATE_CORR` = {select.DUPLICATE_CORR:g}" in doc
    assert f"`MIN_INSET` = {select.MIN_INSET:.0%}" in doc
    assert f"{select.THUMB_SIZE}×{select.THUMB_SIZE}" in doc
