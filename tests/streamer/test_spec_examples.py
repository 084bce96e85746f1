"""The spec examples that the sources' and sinks' docs show are accepted as written."""

from __future__ import annotations

import re

import pytest

import streamer.sinks as sinks
import streamer.sources as sources
from streamer.errors import UserError
from streamer.sources import create_source


def _examples(doc: str) -> list[str]:
    block = doc.split("::", 1)[1].split("\n\n", 2)[1]
    return [tok for line in block.splitlines() for tok in re.split(r"\s{2,}", line.strip())
            if tok and not tok.startswith("(")]


@pytest.mark.parametrize("spec", _examples(sinks.__doc__))
def test_sink_docstring_examples_are_accepted(spec, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert sinks.create_sink(spec).kind == spec.split(":")[0]


@pytest.mark.parametrize("spec", [s for s in _examples(sources.__doc__) if s.startswith("sim")])
def test_sim_docstring_examples_are_accepted(spec):
    assert create_source(spec).options.style == "classic"


@pytest.mark.parametrize("style", ["train", "scatter"])
def test_live_sim_refuses_the_per_frame_styles_in_one_line(style):
    with pytest.raises(UserError, match=f"got '{style}'.*independent frames"):
        create_source(f"sim:style={style}")
    assert create_source("sim:style=heldout").options.style == "heldout"


def test_run_source_help_names_every_source_scheme():
    import argparse

    from streamer.cli import run_cmd

    parser = argparse.ArgumentParser()
    run_cmd.add_arguments(parser)
    help_text = next(a.help for a in parser._actions if a.dest == "source")
    missing = [s for s in sources.REGISTRY if s != "file" and f"{s}" not in help_text]
    assert not missing, f"--source help omits {missing}"
