"""An exam's keyframe folder: ``DIR/<exam>/`` with ``index.json`` (what is kept now, per region,
best first), ``keyframes.jsonl`` (every keep and replacement as it happened) and one folder per
region holding each kept frame's files, at most k per region.

Every file is written under a temporary name in its folder and renamed into place (a reader sees
the old file or the new one, never a part), and files are written before the index names them and
deleted only after it no longer does: the index never names a file that is not there.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from engines.atomic import write_atomic
from streamer.coverage import exam_id
from streamer.errors import UserError

INDEX_VERSION = 1
def exam_folder(root: Path, exam: str, now: Callable[[], float] = time.time) -> Path:
    """A new folder for the exam under ``root``; a given id already used is refused, a start time
    already used (two runs in one second) gets -2, -3 ..."""
    if exam:
        folder = root / exam
        if folder.exists() and any(folder.iterdir()):
            raise UserError(f"keyframes folder {folder} already holds an exam; choose another "
                            "exam id or folder")
        folder.mkdir(parents=True, exist_ok=True)
        return folder
    base = exam_id(now())
    for n in range(1, 1000):
        folder = root / (base if n == 1 else f"{base}-{n}")
        try:
            folder.mkdir(parents=True)
            return folder
        except FileExistsError:
            continue
    raise UserError(f"keyframes: no free exam folder for {base} under {root}")


def encode_png(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", image)
    if not ok:
        raise OSError(f"cannot encode a {image.shape} image as PNG")
    return buf.tobytes()


def write_png(path: Path, image: np.ndarray | bytes) -> None:
    """An image (or its PNG bytes, encoded once for several regions) at ``path``, atomically."""
    write_atomic(path, image if isinstance(image, bytes) else encode_png(image))


class ExamStore:
    """The files of one exam: the index, the event log and each kept frame's files."""

    def __init__(self, folder: Path, header: dict):
        self.folder = folder
        self.header = header  # v, exam, stream, k, started_t_source_ns, source
        self.regions: dict[str, list[dict]] = {}  # per region, the kept frames' records, best first
        self._events = folder / "keyframes.jsonl"

    def index(self) -> dict:
        return {**self.header, "regions": {r: list(v) for r, v in self.regions.items()}}

    def write_index(self) -> None:
        data = json.dumps(self.index(), indent=1, separators=(",", ": ")).encode() + b"\n"
        write_atomic(self.folder / "index.json", data)

    def log(self, *events: dict) -> None:
        with open(self._events, "a", encoding="utf-8") as f:
            for e in events:
                f.write(json.dumps(e, separators=(",", ":")) + "\n")

    def region_folder(self, region: str) -> Path:
        path = self.folder / region
        path.mkdir(exist_ok=True)
        return path

    def files_of(self, record: dict) -> list[Path]:
        return [self.folder / record[key] for key in ("crop", "overlay", "dicom") if record.get(key)]

    def remove_files(self, record: dict) -> None:
        for path in self.files_of(record):
            path.unlink(missing_ok=True)
