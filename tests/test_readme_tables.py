"""The README's benchmark table and the docs' backbone and precision numbers are the recorded ones: regenerated from
the JSON records they name, they must read the same (a typed or stale number turns this red)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import precision_table  # noqa: E402
import readme_table  # noqa: E402

README = (ROOT / "README.md").read_text()
DOCS = {name: (ROOT / "docs" / f"{name}.md").read_text() for name in ("benchmarks", "precision")}


def block(begin: str, end: str, text: str = README, where: str = "README") -> str:
    assert begin in text and end in text, f"{where} lost its {begin} markers"
    return text.split(begin, 1)[1].split(end, 1)[0].strip()


def test_benchmark_table_is_the_recorded_run():
    text = block(readme_table.BEGIN, readme_table.END)
    source = re.search(r"Recorded run `([^`]+\.json)`", text).group(1)
    result = json.loads((ROOT / "benchmarks" / source).read_text())
    generated = readme_table.markdown(result, source)
    for line in generated.splitlines()[1:]:  # the first line carries the run's free-text note
        assert line in text, f"README differs from {source}: {line}"
    assert generated.splitlines()[0] in text.splitlines()[0] + " "  # the note only follows it


def test_backbone_latencies_are_the_recorded_ones():
    record = json.loads(readme_table.BACKBONES.read_text())
    assert block(readme_table.BACKBONES_BEGIN, readme_table.BACKBONES_END, DOCS["benchmarks"],
                 "docs/benchmarks.md") == readme_table.backbones_markdown(record)


def test_precision_table_is_the_recorded_reports():
    assert block(precision_table.BEGIN, precision_table.END, DOCS["precision"],
                 "docs/precision.md") == precision_table.markdown()


def test_scanner_screens_table_is_the_recorded_runs():
    import real_screens

    doc = (ROOT / "docs" / "scanner-screens.md").read_text()
    assert real_screens.BEGIN in doc and real_screens.END in doc, "the docs lost the table markers"
    text = doc.split(real_screens.BEGIN, 1)[1].split(real_screens.END, 1)[0].strip()
    before, now = (json.loads((ROOT / path).read_text()) for path in real_screens.RECORDS)
    assert text == real_screens.table(before, now)


def test_a_negative_overhead_in_a_record_reads_as_noise_not_met():
    text = block(readme_table.BEGIN, readme_table.END)
    source = re.search(r"Recorded run `([^`]+\.json)`", text).group(1)
    result = json.loads((ROOT / "benchmarks" / source).read_text())
    row = result["targets"]["overhead_p50_ms"]
    row.update(value=-24.974, met=True)  # an older record: end to end faster than the model
    out = readme_table.markdown(result, source)
    assert "overhead p50 -24.97 ms (goal ≤ 1.0 ms): no verdict" in out and ": met" not in out.split(
        "overhead p50")[1].split(";")[0]
