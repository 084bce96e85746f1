"""benchmarks/json_record.py: a benchmark's record is printed, and written where asked, its
folder made (a first run under benchmarks/results/NEW/ must not lose its record at the end)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

from json_record import emit  # noqa: E402


def test_a_record_is_printed_and_written_into_a_folder_made_for_it(tmp_path, capsys):
    out = tmp_path / "results" / "new_benchmark" / "run.json"
    emit({"benchmark": "x", "runs": [1, 2]}, out)
    assert json.loads(capsys.readouterr().out) == {"benchmark": "x", "runs": [1, 2]}
    text = out.read_text()
    assert json.loads(text) == {"benchmark": "x", "runs": [1, 2]} and text.endswith("}\n")


def test_no_file_is_written_when_none_is_asked(tmp_path, capsys):
    emit({"benchmark": "x"}, None)
    assert json.loads(capsys.readouterr().out) == {"benchmark": "x"}
    assert list(tmp_path.iterdir()) == []
