"""Files a report writes: whole or not at all, and never over one that exists unless asked."""

from __future__ import annotations

from pathlib import Path

from streamer.errors import UserError


def check_outputs(record: Path, outputs: dict[str, Path], force: bool) -> None:
    """Each output (by its flag) a new file in an existing folder, or an old one with --force;
    never the record itself, nor two flags naming one file."""
    seen: dict[Path, str] = {}
    for flag, path in outputs.items():
        if not path.parent.is_dir():
            raise UserError(f"{flag} {path}: the folder {path.parent} does not exist")
        if path.is_dir():
            raise UserError(f"{flag} {path}: a folder, not a file")
        real = path.resolve()
        if record.exists() and real == record.resolve():
            raise UserError(f"{flag} {path} is the record itself")
        if real in seen:
            raise UserError(f"{flag} and {seen[real]} name the same file {path}")
        seen[real] = flag
        if path.exists() and not force:
            raise UserError(f"{flag} {path} exists: pass --force to overwrite it")
