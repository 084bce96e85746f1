"""docs/configuration.md and docs/cli.md are generated from the code: stale, they turn this red;
every config key says what it does; the worked example is a config the real loader accepts."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import reference_docs  # noqa: E402

from streamer.config import SECTIONS, load_config  # noqa: E402


def test_generated_references_are_current():
    for path, text in ((reference_docs.CONFIG_DOC, reference_docs.config_markdown()),
                       (reference_docs.CLI_DOC, reference_docs.cli_markdown())):
        assert path.read_text() == text, (
            f"{path.name} is stale: run python scripts/reference_docs.py")


def test_every_config_key_says_what_it_does():
    missing = [f"[{name}] {f.name}" for name, cls in SECTIONS.items()
               for f in dataclasses.fields(cls)
               if not reference_docs.field_comments(cls).get(f.name)]
    assert not missing, f"config keys without a comment in streamer/config.py: {missing}"


def test_the_worked_example_loads(tmp_path):
    path = tmp_path / "site.toml"
    path.write_text(reference_docs.EXAMPLE)
    config = load_config(path)
    assert config.preprocess.mode == "roi" and config.preprocess.roi == (560, 140, 980, 760)
    assert config.postprocess.threshold_for("placenta") == 0.65
    assert config.postprocess.hysteresis == 0.1 and config.publish.stream == "room3"


def test_every_flag_of_every_command_is_in_the_command_reference():
    import argparse

    from streamer.cli import build_parser

    text = reference_docs.CLI_DOC.read_text()
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    missing = [f"{name} {flag}" for name, command in sub.choices.items()
               for action in command._actions for flag in action.option_strings
               if flag not in ("-h", "--help") and f"`{flag}`" not in text.split(
                   f"## streamer {name}\n", 1)[1].split("\n## ", 1)[0]]
    assert not missing
