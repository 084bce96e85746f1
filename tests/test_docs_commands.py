"""Every `streamer ...` command line in the README and docs/ parses with the real CLI: a renamed
or removed flag turns this red instead of leaving the docs wrong."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

from streamer.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```.*?\n(.*?)^```", re.S | re.M)
INLINE = re.compile(r"`(streamer [^`\n]+ --[^`\n]*)`")  # a fragment in the text, with a flag


def _fenced_commands(text: str) -> list[str]:
    lines = []
    for block in FENCE.findall(text):
        joined = re.sub(r"\\\n\s*", " ", block)  # continuation lines
        lines += [line.strip().removeprefix("$ ") for line in joined.splitlines()]
    return [line for line in lines if line.startswith("streamer ")]


def commands() -> list[tuple[str, str, bool]]:
    """(document, command line, whole): a fenced line is a whole command; an inline fragment
    may leave out required arguments, but every flag it names must exist."""
    found = []
    for doc in DOCS:
        text = doc.read_text()
        lines = [(line, True) for line in _fenced_commands(text)]
        lines += [(line, False) for line in INLINE.findall(text)]
        for line, whole in lines:
            line = line.split(" #", 1)[0].strip()
            found += [(doc.name, form, whole and complete) for form, complete in _forms(line)]
    return found


def _forms(line: str) -> list[tuple[str, bool]]:
    """A usage line as the commands it stands for: ``<name>`` and a flag's ``...`` become a value,
    ``[optional]`` parts are included, ``a|b`` alternatives each give a form; an elision that is
    not a flag's value (``streamer calibrate ... --target cpu``) leaves out arguments, so that form
    is checked as a fragment (every flag it names must exist)."""
    line = re.sub(r"<[^<>]+>", "VALUE", line.replace("…", "..."))
    line = re.sub(r"\[([^\[\]]+)\]", r"\1", line)
    line = re.sub(r"(--\S+) \.\.\.", r"\1 VALUE", line)
    complete = "..." not in line
    line = re.sub(r"\s*\.\.\.", "", line)
    alternatives = re.search(r"(?<!\S)([^\s|]+(?:\|[^\s|]+)+)(?!\S)", line)
    if alternatives is None:
        return [(line, complete)]
    head, tail = line[: alternatives.start()], line[alternatives.end():]
    return [form for choice in alternatives.group(1).split("|")
            for form in _forms(head + choice + tail)]


def test_the_docs_show_commands():
    names = {line.split()[1] for _, line, _ in commands()}
    assert {"run", "export", "eval", "train", "build", "calibrate"} <= names


@pytest.mark.parametrize("doc, line, whole", commands(),
                         ids=lambda v: str(v) if len(str(v)) < 60 else str(v)[:60])
def test_documented_command_parses(doc, line, whole):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            args = build_parser().parse_args(shlex.split(line)[1:])
        except SystemExit as exc:
            message = err.getvalue().strip().splitlines()[-1] if err.getvalue().strip() else ""
            if exc.code and (whole or "arguments are required" not in message):
                pytest.fail(f"{doc}: `{line}` does not parse: {message}")
            return
    assert args.command == line.split()[1]
