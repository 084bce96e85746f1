"""docs/many-streams.md: its before/after table is the recorded one, and its config example is
one the loader takes (two named streams)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import pipeline_before_after  # noqa: E402

DOC = ROOT / "docs" / "many-streams.md"


def test_the_before_after_table_is_the_recorded_run():
    text = DOC.read_text()
    block = text.split(pipeline_before_after.BEGIN, 1)[1].split(pipeline_before_after.END, 1)[0]
    record = pipeline_before_after.RECORD
    source = record.relative_to(ROOT).as_posix()
    assert block.strip() == pipeline_before_after.table(json.loads(record.read_text()), source)


def test_the_config_example_names_two_streams(tmp_path):
    from streamer.config import load_config

    toml = re.search(r"```toml\n(.*?)```", DOC.read_text(), re.S).group(1)
    (tmp_path / "site.toml").write_text(toml)
    config = load_config(tmp_path / "site.toml")
    assert list(config.stream_specs()) == ["bay1", "bay2"]
    assert config.stream_specs()["bay2"].startswith("capture:/dev/video2")
