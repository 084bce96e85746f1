"""Image-level labels over frame ranges of recorded loops: the ``labels.csv`` that ``dicom:DIR``
and ``video:DIR`` read and that ``streamer label`` writes.

Columns: ``file`` (relative to the folder), ``frames`` (optional; empty: every frame of the file;
``N`` or ``A-B``, inclusive, counted from 0), then one 0/1 column per class. One loop may carry several
rows; a frame is labelled at most once. Frames that no row names are not labelled (not
"nothing in view"): they take no part in training or evaluation.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from engines.atomic import write_atomic

MAX_ROWS = 1_000_000  # a labels.csv is written by people and by streamer label, never this long
MAX_BYTES = 64 << 20


@dataclass(frozen=True)
class RangeLabel:
    file: str  # relative to the folder, as written
    first: int | None  # None: every frame of the file
    last: int | None
    labels: tuple[int, ...]  # 0/1 per class
    line: int = field(default=0, compare=False)  # where it was read (0: not read from a file)

    def where(self, path: str) -> str:
        return f"{path}:{self.line}" if self.line else path

    def check_count(self, count: int, path: str) -> None:
        """A range past the loop's end is one line naming file and line."""
        if self.last is not None and self.last >= count:
            raise ValueError(f"{self.where(path)}: frames {self.text()} outside {self.file}'s "
                             f"0-{count - 1}")

    def frames(self, count: int) -> range:
        return range(count) if self.first is None else range(self.first, self.last + 1)

    def text(self) -> str:
        if self.first is None:
            return ""
        return str(self.first) if self.first == self.last else f"{self.first}-{self.last}"


def parse_frames(text: str, where: str) -> tuple[int | None, int | None]:
    text = text.strip()
    if not text:
        return None, None
    first, dash, last = text.partition("-")
    try:
        a, b = int(first), int(last) if dash else int(first)
    except ValueError:
        raise ValueError(f"{where}: frames must be empty, N or A-B, got {text[:40]!r}") from None
    if a < 0 or b < a:
        raise ValueError(f"{where}: frames {text[:40]} is not a range A-B with 0 ≤ A ≤ B")
    return a, b


def read_range_labels(path: str) -> tuple[tuple[str, ...], list[RangeLabel]]:
    """(classes, rows) of a labels.csv; ValueError naming the file and line."""
    if os.path.getsize(path) > MAX_BYTES:
        raise ValueError(f"{path}: over {MAX_BYTES >> 20} MB, not a labels file")
    with open(path, newline="", encoding="utf-8") as fh:
        try:
            rows = list(csv.reader(fh))
        except (UnicodeDecodeError, csv.Error) as exc:
            raise ValueError(f"{path}: not a UTF-8 CSV ({type(exc).__name__})") from None
    if len(rows) > MAX_ROWS:
        raise ValueError(f"{path}: over {MAX_ROWS} rows")
    header = [c.strip() for c in rows[0]] if rows else []
    ranged = len(header) > 1 and header[1] == "frames"
    if not header or header[0] != "file" or len(header) < 2 + ranged:
        raise ValueError(f"{path}: header must be 'file', optionally 'frames', then one column "
                         "per class")
    classes = tuple(header[1 + ranged:])
    if len(set(classes)) != len(classes) or not all(classes):
        raise ValueError(f"{path}: class columns must be named and distinct, got {list(classes)}")
    out = []
    for ln, row in enumerate(rows[1:], start=2):
        if not row or not "".join(row).strip():
            continue
        where = f"{path}:{ln}"
        if len(row) != len(header):
            raise ValueError(f"{where}: expected {len(header)} columns, got {len(row)}")
        values = [v.strip() for v in row[1 + ranged:]]
        if any(v not in ("0", "1") for v in values):
            raise ValueError(f"{where}: labels must be 0 or 1")
        file = row[0].strip()
        if not file or os.path.isabs(file) or ".." in file.replace("\\", "/").split("/"):
            raise ValueError(f"{where}: file must be a path inside the folder")
        first_last = parse_frames(row[1], where) if ranged else (None, None)
        out.append(RangeLabel(file, *first_last, tuple(int(v) for v in values), ln))
    return classes, out


def runs(per_frame: Mapping[int, Iterable[int]]) -> list[tuple[int, int, tuple[int, ...]]]:
    """Consecutive frames with the same labels as (first, last, labels), in frame order."""
    out: list[tuple[int, int, tuple[int, ...]]] = []
    for i in sorted(per_frame):
        y = tuple(int(v) for v in per_frame[i])
        if out and out[-1][1] == i - 1 and out[-1][2] == y:
            out[-1] = (out[-1][0], i, y)
        else:
            out.append((i, i, y))
    return out


def write_range_labels(path: str, classes: Iterable[str], rows: Iterable[RangeLabel]) -> None:
    """Written whole to a temporary file beside ``path`` and renamed over it: a reader (or a crash)
    sees the old file or the new one, never half of one."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["file", "frames", *classes])
    for r in rows:
        writer.writerow([r.file, r.text(), *r.labels])
    write_atomic(path, buf.getvalue().encode("utf-8"))
