"""The loops ``streamer label`` opens: what DATA names, each loop checked when opened (its frame
count exact, its first frame decoded), and readers that decode one frame at a time.

``dicom:DIR`` (the .dcm files in DIR), ``video:DIR`` (.mp4/.avi/.mkv/.mov in DIR), a single
DICOM or video file (its folder's labels.csv), or ``fetalnav:DIR`` (MetaImage frames, one loop per
folder, labelled in their headers: read-only). Loop names are paths relative to the folder, as
labels.csv writes them.
"""

from __future__ import annotations

import collections
import os
import re
import threading
from dataclasses import dataclass

import cv2
import numpy as np

from streamer.errors import UserError

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov")
DICOM_SUFFIXES = (".dcm", ".dicom")
LABELS_NAME = "labels.csv"
_DIGITS = re.compile(r"(\d+)")


def natural(name: str) -> list:
    """frame2 before frame10, as the dicom: source orders its files."""
    return [int(t) if t.isdigit() else t.lower() for t in _DIGITS.split(name)]


@dataclass(frozen=True)
class LoopInfo:
    """One loop as checked when opened: name (relative to the data folder), its files (one for a
    DICOM or video loop, one per frame for fetalnav) and its exact frame count."""

    kind: str  # dicom, video or fetalnav
    name: str
    paths: tuple[str, ...]
    frames: int
    fps: float
    header_labels: tuple[tuple[str, ...], ...] = ()  # fetalnav: each frame's header labels


@dataclass(frozen=True)
class DataSet:
    kind: str
    folder: str
    loops: tuple[LoopInfo, ...]
    labels_path: str  # where labels are read and written ("" for fetalnav: in the headers)
    whole_folder: bool  # every row of labels.csv must name one of these loops

    @property
    def readonly(self) -> str:
        """Why edits are not written ("" when they are)."""
        return ("fetalnav labels live in the MetaImage headers: shown read-only, corrections "
                "are not written" if self.kind == "fetalnav" else "")


def parse_data(text: str) -> tuple[str, str, bool]:
    """(kind, path, whole_folder) of DATA; one line naming it when it is none of the forms."""
    scheme, colon, rest = text.partition(":")
    if colon and scheme in ("dicom", "video", "fetalnav"):
        path = rest
        if not os.path.exists(path):
            raise UserError(f"{text}: no such file or folder {path!r}")
        if scheme == "fetalnav" and not os.path.isdir(path):
            raise UserError(f"{text}: fetalnav: needs a folder of MetaImage frames")
        return scheme, path, os.path.isdir(path)
    if os.path.isfile(text) and text.lower().endswith(DICOM_SUFFIXES):
        return "dicom", text, False
    if os.path.isfile(text) and text.lower().endswith(VIDEO_SUFFIXES):
        return "video", text, False
    if os.path.isdir(text):
        raise UserError(f"{text} is a folder: name its kind, dicom:{text}, video:{text} or "
                        f"fetalnav:{text}")
    raise UserError(f"{text}: not dicom:DIR, video:DIR, fetalnav:DIR, a .dcm file or a video "
                    f"file ({', '.join(VIDEO_SUFFIXES)})")


def open_data(text: str) -> DataSet:
    """DATA opened: every loop checked now (a loop that does not decode: one line naming it)."""
    kind, path, whole = parse_data(text)
    folder = path if os.path.isdir(path) else (os.path.dirname(path) or ".")
    if kind == "fetalnav":
        return DataSet(kind, folder, _fetalnav_loops(folder), "", True)
    if kind == "dicom":
        from engines.dicom import DicomError, dicom_files

        try:
            files = dicom_files(path)
        except DicomError as exc:
            raise UserError(str(exc)) from None
        loops = tuple(_dicom_info(f, folder) for f in files)
    else:
        files = [path] if not whole else sorted(
            (os.path.join(folder, n) for n in os.listdir(folder)
             if n.lower().endswith(VIDEO_SUFFIXES) and os.path.isfile(os.path.join(folder, n))),
            key=lambda p: natural(os.path.basename(p)))
        if not files:
            raise UserError(f"folder {folder} holds no video files ({', '.join(VIDEO_SUFFIXES)})")
        loops = tuple(_video_info(f, folder) for f in files)
    return DataSet(kind, folder, loops, os.path.join(folder, LABELS_NAME), whole)


def _relative(path: str, folder: str) -> str:
    return os.path.relpath(path, folder).replace(os.sep, "/")


def _dicom_info(path: str, folder: str) -> LoopInfo:
    reader = DicomReader(path)
    try:
        reader.image(0)
    except Exception as exc:  # noqa: BLE001 - a decoder's own error, named in one line
        raise UserError(f"{path}: frame 0 does not decode ({type(exc).__name__}: {exc})") from None
    intervals = np.asarray(reader.loop.intervals_ms, np.float64)
    median = float(np.median(intervals)) if len(intervals) else 0.0
    fps = 1000.0 / median if median > 0 else 30.0
    return LoopInfo("dicom", _relative(path, folder), (path,), reader.loop.frames, fps)


def _video_info(path: str, folder: str) -> LoopInfo:
    """The exact frame count: the file is read through once (a container's declared count can be
    wrong); none decoding is one line naming it."""
    cap = cv2.VideoCapture(path)
    try:
        if not cap.isOpened():
            raise UserError(f"{path}: OpenCV cannot read this video")
        fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
        count = 0
        while cap.grab():
            count += 1
    finally:
        cap.release()
    if count == 0:
        raise UserError(f"{path}: no frame decodes")
    return LoopInfo("video", _relative(path, folder), (path,), count, float(fps))


def _fetalnav_loops(root: str) -> tuple[LoopInfo, ...]:
    from engines.datasets.fetalnav import UNSUPPORTED_SUFFIXES, find_images
    from engines.metaimage import read_header

    groups: dict[str, list] = {}
    for path in find_images(root):
        if path.lower().endswith(UNSUPPORTED_SUFFIXES):
            raise UserError(f"{path}: NIfTI is not supported; convert it to .mha")
        try:
            image = read_header(path)
        except (ValueError, OSError) as exc:
            raise UserError(str(exc) if path in str(exc) else f"{path}: {exc}") from None
        groups.setdefault(os.path.dirname(path), []).append(image)
    if not groups:
        raise UserError(f"fetalnav folder {root} holds no .mhd or .mha files")
    out = []
    for folder in sorted(groups, key=natural):
        images = sorted(groups[folder], key=lambda m: natural(os.path.basename(m.path)))
        out.append(LoopInfo("fetalnav", _relative(folder, root), tuple(m.path for m in images),
                            len(images), 10.0, tuple(m.labels for m in images)))
    return tuple(out)


# -- readers: one frame at a time, not thread-safe (each owner keeps its own) ---------------------
class DicomReader:
    def __init__(self, path: str):
        from engines.dicom import DicomError, DicomLoop

        try:
            self.loop = DicomLoop(path)
        except DicomError as exc:
            raise UserError(f"{os.path.dirname(path) or '.'}/{exc}") from None
        self._area: tuple | None = None

    def image(self, index: int) -> np.ndarray:
        return self.loop.frame(index)

    def area(self):
        """The scan area the dicom: source gives each frame (None: the fan is searched for)."""
        if self._area is None:
            from engines.dicom import scan_area, tissue_region

            region = tissue_region(self.loop.regions, self.loop.name)
            self._area = (None if region is None else scan_area(self.loop, region),)
        return self._area[0]


class VideoReader:
    """Sequential reads cost one decode; any other index seeks first."""

    def __init__(self, path: str):
        self.path = path
        self._cap = cv2.VideoCapture(path)
        self._next = 0

    def image(self, index: int) -> np.ndarray:
        if index != self._next:
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, image = self._cap.read()
        self._next = index + 1 if ok else -1
        if not ok:
            raise ValueError(f"{self.path}: frame {index} does not decode")
        return image

    def area(self):
        return None

    def close(self) -> None:
        self._cap.release()


class MetaImageReader:
    def __init__(self, paths: tuple[str, ...]):
        self.paths = paths

    def image(self, index: int) -> np.ndarray:
        from engines.input_recipe import bytescale
        from engines.metaimage import read_header

        pixels = read_header(self.paths[index]).pixels()
        return pixels if pixels.dtype == np.uint8 else bytescale(pixels)

    def area(self):
        return None


def open_reader(info: LoopInfo):
    if info.kind == "dicom":
        return DicomReader(info.paths[0])
    if info.kind == "video":
        return VideoReader(info.paths[0])
    return MetaImageReader(info.paths)


def close_reader(reader) -> None:
    close = getattr(reader, "close", None)
    if close is not None:
        close()


class FrameStore:
    """Frames served as JPEG, downscaled to ``width``: decoded on request by at most ``readers``
    open readers (the loops viewed last), kept in a least-recently-used cache of ``max_bytes``."""

    def __init__(self, loops: tuple[LoopInfo, ...], width: int = 800, quality: int = 85,
                 max_bytes: int = 64 << 20, readers: int = 2):
        self.loops, self.width, self.quality = loops, width, quality
        self.max_bytes, self.max_readers = max_bytes, readers
        self.cached_bytes = 0
        self._jpegs: collections.OrderedDict = collections.OrderedDict()
        self._readers: collections.OrderedDict = collections.OrderedDict()
        self._lock = threading.Lock()

    def jpeg(self, loop: int, frame: int) -> bytes:
        key = (loop, frame)
        with self._lock:
            if key in self._jpegs:
                self._jpegs.move_to_end(key)
                return self._jpegs[key]
            image = self._reader(loop).image(frame)
            h, w = image.shape[:2]
            if w > self.width:
                size = (self.width, max(1, round(h * self.width / w)))
                image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
            ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
            if not ok:
                raise ValueError(f"{self.loops[loop].name}: frame {frame} cannot be encoded")
            data = buf.tobytes()
            self._jpegs[key] = data
            self.cached_bytes += len(data)
            while self.cached_bytes > self.max_bytes and len(self._jpegs) > 1:
                self.cached_bytes -= len(self._jpegs.popitem(last=False)[1])
            return data

    def _reader(self, loop: int):
        if loop in self._readers:
            self._readers.move_to_end(loop)
            return self._readers[loop]
        while len(self._readers) >= self.max_readers:
            close_reader(self._readers.popitem(last=False)[1])
        reader = self._readers[loop] = open_reader(self.loops[loop])
        return reader

    def close(self) -> None:
        with self._lock:
            for reader in self._readers.values():
                close_reader(reader)
            self._readers.clear()
