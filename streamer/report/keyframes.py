"""The best frames of an exam from a keyframes folder (``DIR/<exam>/index.json`` and its images),
checked and made ready for a self-contained page: each image downscaled and embedded as a
``data:`` URI. A path in the index that leads outside its exam folder is refused; an image that
is missing or does not read is said on the page, in one line."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from engines.encoded import MAX_PIXELS, jpeg_size, png_size
from streamer.errors import UserError

INDEX = "index.json"
MAX_INDEX_BYTES = 16 << 20
MAX_IMAGE_BYTES = 32 << 20
MAX_EXAMS = 1000  # exam folders looked at when none is named
MAX_PER_REGION = 8
MAX_REGIONS = 64
WIDTH = 480  # embedded images are at most this wide (JPEG): a page of 6 regions x 3 stays small
JPEG_QUALITY = 85
ONE_SECOND_NS = 1_000_000_000


@dataclass(frozen=True)
class Keyframe:
    region: str
    seq: int | None
    t_s: float | None
    score: float | None
    ood: float | None
    image: str | None  # data: URI, None when the image could not be shown
    shown: str  # "overlay" or "crop": which of the index's images the page shows
    note: str = ""  # why there is no image
    dicom: str | None = None


@dataclass(frozen=True)
class Exam:
    id: str
    stream: str
    k: int | None
    source: str | None
    started_t_source_ns: int | None
    regions: dict[str, list[Keyframe]] = field(default_factory=dict)


def choose_exams(folder: str | Path, exam_id: str | None,
                 spans: dict[str, tuple[int, int]]) -> dict[str, Exam | str]:
    """For each stream (its record's first and last source time), its exam, or one line saying
    why there is none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"--keyframes {folder}: not a folder")
    if exam_id is not None:
        if exam_id in ("", ".", "..") or "/" in exam_id or "\\" in exam_id:
            raise UserError(f"--exam {exam_id!r}: the name of a folder in {folder}")
        exam = read_exam(folder / exam_id, exam_id)
        if exam.stream not in spans:
            raise UserError(f"--exam {exam_id} is of stream {exam.stream!r}, which is not in the "
                            f"record (its streams: {', '.join(spans)})")
        return {name: exam if name == exam.stream else f"keyframes: --exam {exam_id} is of stream "
                f"{exam.stream}" for name in spans}
    headers = _headers(folder)
    chosen: dict[str, Exam | str] = {}
    for name, (t0, t1) in spans.items():
        ids = [i for i, h in headers.items() if h.get("stream") == name]
        if len(ids) > 1:  # more than one: those that started during this record
            ids = [i for i in ids if isinstance(headers[i].get("started_t_source_ns"), int)
                   and t0 - ONE_SECOND_NS <= headers[i]["started_t_source_ns"] <= t1]
            if len(ids) != 1:
                found = [i for i, h in headers.items() if h.get("stream") == name]
                raise UserError(f"{folder} has {len(found)} exams of stream {name} "
                                f"({', '.join(found[:5])}{', ...' if len(found) > 5 else ''}): "
                                f"name one with --exam")
        chosen[name] = read_exam(folder / ids[0], ids[0], headers[ids[0]]) if ids else (
            f"keyframes: no exam of stream {name} in {folder}")
    return chosen


def _headers(folder: Path) -> dict[str, dict]:
    exams = sorted(p for p in folder.iterdir() if (p / INDEX).is_file())
    if len(exams) > MAX_EXAMS:
        raise UserError(f"{folder}: more than {MAX_EXAMS} exams: name one with --exam")
    return {p.name: _index(p / INDEX) for p in exams}


def _index(path: Path) -> dict:
    try:
        if path.stat().st_size > MAX_INDEX_BYTES:
            raise UserError(f"{path}: over {MAX_INDEX_BYTES >> 20} MB, not a keyframes index")
        data = json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: no keyframes index (index.json) there") from None
    except (ValueError, RecursionError):
        raise UserError(f"{path}: not JSON, not a keyframes index") from None
    if not isinstance(data, dict) or data.get("v") != 1:
        raise UserError(f"{path}: not a version 1 keyframes index (v: 1)")
    if not isinstance(data.get("stream"), str) or not isinstance(data.get("regions"), dict):
        raise UserError(f"{path}: a keyframes index needs stream (text) and regions (an object)")
    return data


def read_exam(exam_dir: Path, exam_id: str, data: dict | None = None) -> Exam:
    """The exam in ``exam_dir``, its images loaded (bounded, downscaled)."""
    index = exam_dir / INDEX
    data = _index(index) if data is None else data
    root = exam_dir.resolve()
    source = data.get("source")
    regions = {}
    for region, entries in list(data["regions"].items())[:MAX_REGIONS]:
        if not isinstance(entries, list):
            raise UserError(f"{index}: regions.{region} must be a list of frames")
        regions[str(region)] = [_keyframe(index, root, str(region), i, entry)
                                for i, entry in enumerate(entries[:MAX_PER_REGION])]
    started = data.get("started_t_source_ns")
    return Exam(exam_id, data["stream"], data.get("k") if isinstance(data.get("k"), int) else None,
                source.get("kind") if isinstance(source, dict) else None,
                started if isinstance(started, int) else None, regions)


def _keyframe(index: Path, root: Path, region: str, i: int, entry) -> Keyframe:
    key = f"regions.{region}[{i}]"
    if not isinstance(entry, dict):
        raise UserError(f"{index}: {key} must be an object")
    paths = {name: _inside(index, root, f"{key}.{name}", entry.get(name))
             for name in ("overlay", "crop", "dicom")}
    shown = "overlay" if paths["overlay"] is not None else "crop"
    image, note = (None, "no image in the index") if paths[shown] is None else \
        _data_uri(paths[shown], entry[shown])

    def number(name):
        value = entry.get(name)
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    seq = entry.get("seq")
    return Keyframe(region, seq if isinstance(seq, int) else None, number("t_s"), number("score"),
                    number("ood"), image, shown, note, entry.get("dicom") if paths["dicom"] else None)


def _inside(index: Path, root: Path, key: str, value) -> Path | None:
    """The file a path in the index names, which must lie inside the exam's folder."""
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise UserError(f"{index}: {key} must be a relative path or null")
    path = (root / value).resolve()
    if not path.is_relative_to(root):
        raise UserError(f"{index}: {key} {value!r} leads outside the exam folder {root}")
    return path


def _data_uri(path: Path, name: str) -> tuple[str | None, str]:
    """(data: URI of the image at most WIDTH wide, "") or (None, why it is not shown)."""
    try:
        if path.stat().st_size > MAX_IMAGE_BYTES:
            return None, f"{name}: over {MAX_IMAGE_BYTES >> 20} MB"
        data = path.read_bytes()
    except FileNotFoundError:
        return None, f"{name}: missing"
    except OSError as exc:
        return None, f"{name}: {exc.strerror or exc}"
    try:
        h, w = png_size(data) if data[:4] == b"\x89PNG" else jpeg_size(data)
    except ValueError:
        return None, f"{name}: not a PNG or JPEG image"
    if h * w > MAX_PIXELS:
        return None, f"{name}: {w}x{h}, over {MAX_PIXELS} pixels"
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        return None, f"{name}: does not decode"
    if image.shape[1] > WIDTH:
        size = (WIDTH, max(1, round(image.shape[0] * WIDTH / image.shape[1])))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    return "data:image/jpeg;base64," + base64.b64encode(jpeg.tobytes()).decode(), ""
