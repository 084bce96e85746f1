"""A benchmark's record: printed, and written (indented JSON, one trailing newline, its folder
made if need be) when asked."""

from __future__ import annotations

import json
from pathlib import Path


def emit(record: dict, out: Path | None) -> None:
    text = json.dumps(record, indent=1)
    print(text)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
