"""One DICOM ultrasound file, checked when opened, its frames decoded one at a time.

Only the attributes in ``READ_TAGS`` are parsed: patient, study and institution attributes never
are, so nothing this module returns, logs or raises can carry them. A corrupt element length can
still run a value over the attributes after it (Modality over PatientName and PatientID), so an
error names the element (keyword and tag) and the problem, never the value's bytes: only a value
that is a well-formed code string or UID (which no overrun is: element headers are binary) is
shown. pydicom is an optional extra.
"""

from __future__ import annotations

import logging
import math
import os
import re

import cv2
import numpy as np

from engines.dicom.regions import read_regions
from engines.encoded import MAX_PIXELS, frame_size

log = logging.getLogger(__name__)
EXTRA = "pip install 'sonostream[dicom]'"
US_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.6.1": "US Image",
    "1.2.840.10008.5.1.4.1.1.3.1": "US Multi-frame Image",
    "1.2.840.10008.5.1.4.1.1.6": "US Image (retired)",
    "1.2.840.10008.5.1.4.1.1.3": "US Multi-frame Image (retired)",
}
PHOTOMETRIC = ("MONOCHROME1", "MONOCHROME2", "RGB", "YBR_FULL", "YBR_FULL_422", "PALETTE COLOR")
MIN_SIDE, MAX_SIDE, MAX_FRAMES = 16, 8192, 100_000
DEFAULT_FPS = 30.0
OPENCV_JPEG = ("1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51")  # JPEG baseline, extended
OPENCV_PHOTOMETRIC = ("MONOCHROME1", "MONOCHROME2", "YBR_FULL", "YBR_FULL_422")
# The only attributes read: patient, study and institution attributes are never even parsed.
READ_TAGS = [
    "SOPClassUID", "Modality", "Rows", "Columns", "NumberOfFrames", "SamplesPerPixel",
    "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation", "PhotometricInterpretation",
    "PlanarConfiguration", "FrameTime", "FrameTimeVector", "CineRate", "FrameIncrementPointer",
    "RecommendedDisplayFrameRate", "SequenceOfUltrasoundRegions", "PixelData",
    "ExtendedOffsetTable", "ExtendedOffsetTableLengths",
    *(f"{c}PaletteColorLookupTable{p}" for c in ("Red", "Green", "Blue")
      for p in ("Descriptor", "Data")),
    *(f"Segmented{c}PaletteColorLookupTableData" for c in ("Red", "Green", "Blue")),
]
_FRAME_TAGS = ("PixelData", "NumberOfFrames", "ExtendedOffsetTable", "ExtendedOffsetTableLengths",
               "FrameTimeVector", "SequenceOfUltrasoundRegions")


class DicomError(ValueError):
    """Input that cannot be played; the message is one line and names the file."""


def pydicom_module():
    try:
        import pydicom
    except ImportError:
        raise DicomError(f"DICOM input needs pydicom, an optional extra: {EXTRA}") from None
    # pydicom's own check of a value read warns and logs the value itself; this module checks the
    # values it uses and says what is wrong without them
    pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE
    return pydicom


_CODE = re.compile(r"[A-Z0-9_ ]{1,16}")  # a code string (CS): what Modality and the like hold
UID = re.compile(r"[0-9]+(\.[0-9]+)*")  # a unique identifier (UI), at most 64 characters


def tag_name(keyword: str) -> str:
    """``Modality (0008,0060)``: how errors name an element."""
    from pydicom.datadict import tag_for_keyword

    tag = tag_for_keyword(keyword)
    return keyword if tag is None else f"{keyword} ({tag >> 16:04X},{tag & 0xFFFF:04X})"


def _value(ds, keyword: str, default=None):
    """An element's value; one pydicom cannot convert is an error naming the element alone."""
    try:
        return ds.get(keyword, default)
    except Exception:  # pydicom's conversions raise many kinds for corrupt bytes
        raise DicomError(f"{tag_name(keyword)} is corrupt (its value cannot be read)") from None


def _code(ds, keyword: str, grammar=_CODE) -> str | None:
    """A code string or UID, stripped ('' when absent); None when the value is not one (corrupt:
    never shown, it may hold the bytes of the elements after it)."""
    value = _value(ds, keyword)
    text = "" if value is None else str(value).strip(" \0")
    if text and not (len(text) <= 64 and grammar.fullmatch(text)):
        return None
    return text


def _corrupt(keyword: str, kind: str = "code string") -> str:
    return f"{tag_name(keyword)} is corrupt (not a {kind}; its bytes are not shown)"


def _int(ds, name: str, default=None):
    value = _value(ds, name, default)
    try:
        return int(value) if value not in (None, "") else default
    except (TypeError, ValueError, OverflowError):
        raise DicomError(f"{tag_name(name)} is corrupt (not a number; its bytes are not shown)"
                         ) from None


class DicomLoop:
    """One DICOM file, checked when opened: frames come out as uint8 grey [H, W] or BGR [H, W, 3]."""

    def __init__(self, path: str):
        self.path, self.name = str(path), os.path.basename(str(path))
        try:
            self._check()
        except DicomError as exc:
            raise DicomError(f"{self.name}: {exc}") from None

    def _check(self) -> None:
        pydicom = pydicom_module()
        try:
            ds = pydicom.dcmread(self.path, specific_tags=READ_TAGS)
        except pydicom.errors.InvalidDicomError:
            raise DicomError("not a DICOM file (no DICM preamble)") from None
        except (OSError, ValueError, EOFError) as exc:
            raise DicomError(f"unreadable DICOM file ({type(exc).__name__})") from None
        self.ds = ds
        sop, modality = _code(ds, "SOPClassUID", UID), _code(ds, "Modality")
        if sop not in US_SOP_CLASSES and modality != "US":
            said = [_corrupt(k, kind) if v is None else f"{label} {v or 'missing'}"
                    for k, v, label, kind in (("Modality", modality, "Modality", "code string"),
                                              ("SOPClassUID", sop, "SOP class", "UID"))]
            raise DicomError(f"not ultrasound ({', '.join(said)}); only US Image and US "
                             "Multi-frame Image play")
        if "PixelData" not in ds:
            raise DicomError("has no pixel data")
        self.rows, self.cols = _int(ds, "Rows", 0), _int(ds, "Columns", 0)
        self.frames = _int(ds, "NumberOfFrames", 1)
        self.samples, self.bits = _int(ds, "SamplesPerPixel", 1), _int(ds, "BitsAllocated", 8)
        if not (MIN_SIDE <= self.rows <= MAX_SIDE and MIN_SIDE <= self.cols <= MAX_SIDE
                and 1 <= self.frames <= MAX_FRAMES):
            raise DicomError(f"absurd dimensions {self.rows}x{self.cols} x {self.frames} frames "
                             f"(rows and columns {MIN_SIDE}..{MAX_SIDE}, 1..{MAX_FRAMES} frames)")
        if self.rows * self.cols > MAX_PIXELS:
            raise DicomError(f"frames of {self.rows}x{self.cols} are larger than the "
                             f"{MAX_PIXELS} pixels a frame may have")
        if self.samples not in (1, 3) or self.bits not in (8, 16):
            raise DicomError(f"unsupported pixels: {self.samples} samples of {self.bits} bits")
        self.photometric = _code(ds, "PhotometricInterpretation")
        if self.photometric is None:
            raise DicomError(_corrupt("PhotometricInterpretation"))
        if self.photometric not in PHOTOMETRIC:
            raise DicomError(f"unsupported Photometric Interpretation {self.photometric!r}")
        self.syntax = ds.file_meta.get("TransferSyntaxUID")
        if self.syntax is None:
            raise DicomError("has no Transfer Syntax UID in its file meta information")
        if _code(ds.file_meta, "TransferSyntaxUID", UID) is None:
            raise DicomError(_corrupt("TransferSyntaxUID", "UID"))
        self._check_decoder(pydicom)
        self._check_length(pydicom)
        self.intervals_ms, self.timing = frame_intervals(ds, self.frames)
        self.regions = read_regions(ds, self.cols, self.rows)

    def _check_decoder(self, pydicom) -> None:
        from pydicom.pixels import get_decoder

        self._opencv_jpeg = (self.syntax in OPENCV_JPEG and self.bits == 8
                             and self.photometric in OPENCV_PHOTOMETRIC)
        if self._opencv_jpeg or not self.syntax.is_compressed:
            return
        label = f"{self.syntax.name} ({self.syntax})"
        try:
            decoder = get_decoder(self.syntax)
        except NotImplementedError:
            raise DicomError(f"pixel data are {label}, which pydicom cannot decode; convert the "
                             "file to JPEG or uncompressed") from None
        if not decoder.is_available:
            need = "; ".join(decoder.missing_dependencies)
            raise DicomError(f"pixel data are {label} and no decoder for it is installed: {EXTRA}"
                             f" (or install one of: {need})")

    def _check_length(self, pydicom) -> None:
        self._encoded: list[bytes] | None = None  # compressed frames, split once
        self._refused: dict[int, str] = {}  # frame index: why it is never decoded
        if self.syntax.is_encapsulated:
            from pydicom.encaps import generate_frames

            try:
                self._encoded = list(generate_frames(self.ds.PixelData,
                                                     number_of_frames=self.frames))
            except (ValueError, KeyError, EOFError) as exc:
                raise DicomError(f"broken encapsulated pixel data ({exc})") from None
            if len(self._encoded) < self.frames:
                raise DicomError(f"pixel data hold {len(self._encoded)} compressed frame(s), "
                                 f"NumberOfFrames says {self.frames}")
            self._check_frame_headers()
            return
        from pydicom.pixels.utils import get_expected_length

        need, have = get_expected_length(self.ds, "bytes"), len(self.ds.PixelData)
        if have < need:
            raise DicomError(f"pixel data are {have} bytes, shorter than Rows x Columns x Frames "
                             f"({self.rows}x{self.cols}x{self.frames}, {self.samples} sample(s) "
                             f"of {self.bits} bits) = {need}")
        self._native8 = (self.bits == 8 and self.photometric in ("MONOCHROME1", "MONOCHROME2", "RGB")
                         and _int(self.ds, "PlanarConfiguration", 0) == 0)

    def _check_frame_headers(self) -> None:
        """Each compressed frame's own header read before any decoder sees it: a small frame may
        declare a huge image (a decompression bomb). Every frame refused: the file is refused;
        some: those frames are (``frame`` raises for them, the source counts them invalid)."""
        for index, data in enumerate(self._encoded[: self.frames]):
            try:
                size = frame_size(data, self.syntax)
            except ValueError as exc:
                self._refused[index] = f"unreadable frame header ({exc})"
                continue
            if size is not None and size != (self.rows, self.cols):
                self._refused[index] = (f"its header declares {size[0]}x{size[1]}, Rows x "
                                        f"Columns say {self.rows}x{self.cols}")
        if not self._refused:
            return
        first = min(self._refused)
        if len(self._refused) == self.frames:
            raise DicomError(f"every compressed frame is refused before decoding, frame {first}: "
                             f"{self._refused[first]}")
        log.warning("%s: %d of %d compressed frame(s) refused before decoding (frame %d: %s)",
                    self.name, len(self._refused), self.frames, first, self._refused[first])

    def frame(self, index: int) -> np.ndarray:
        """Frame ``index`` decoded to uint8 grey or BGR; DicomError for a frame refused when the
        file was opened (never decoded)."""
        if index in self._refused:
            raise DicomError(f"{self.name} frame {index} refused, not decoded: "
                             f"{self._refused[index]}")
        arr = None
        if self._opencv_jpeg:  # OpenCV's libjpeg-turbo: ~10 ms a 1080p frame, pydicom's ~20x that
            arr = cv2.imdecode(np.frombuffer(self._encoded[index], np.uint8), cv2.IMREAD_UNCHANGED)
            if arr is not None and arr.shape[:2] != (self.rows, self.cols):
                arr = None
            if arr is not None and arr.ndim == 3:  # already BGR
                return arr
        elif self._encoded is None and self._native8:  # a view of the frame's bytes
            shape = (self.rows, self.cols) + ((3,) if self.samples == 3 else ())
            size = int(np.prod(shape))
            arr = np.frombuffer(self.ds.PixelData, np.uint8, size, index * size).reshape(shape)
        if arr is None:
            arr = self._pydicom_frame(index)
        if self.photometric == "MONOCHROME1":
            arr = 255 - arr
        if arr.ndim == 3:
            arr = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR)
        return arr

    def _pydicom_frame(self, index: int) -> np.ndarray:
        """Grey or RGB uint8 through pydicom's decoders (YBR converted here: faster)."""
        from pydicom.pixels import apply_color_lut, pixel_array

        ybr = self.photometric.startswith("YBR")
        if self._encoded is None:
            arr = pixel_array(self.ds, index=index, raw=ybr)
        else:  # exactly the frame whose header was checked, whatever the offset tables say
            arr = pixel_array(self._single_frame(index), index=0, raw=ybr)
        if self.photometric == "PALETTE COLOR":
            arr = apply_color_lut(arr, self.ds)
        if arr.dtype != np.uint8:
            top = float(arr.max()) if self.photometric == "PALETTE COLOR" else None
            arr = _to_uint8(arr, _int(self.ds, "BitsStored", self.bits), top)
        if ybr:  # Y Cb Cr (full range, as JPEG) → RGB
            arr = cv2.cvtColor(np.ascontiguousarray(arr[..., [0, 2, 1]]), cv2.COLOR_YCrCb2RGB)
        return arr

    def _single_frame(self, index: int):
        """A dataset of the pixel attributes and compressed frame ``index`` alone."""
        from pydicom import Dataset
        from pydicom.encaps import encapsulate

        ds = Dataset()
        ds.file_meta = self.ds.file_meta
        for name in READ_TAGS:
            if name in self.ds and name not in _FRAME_TAGS:
                ds[name] = self.ds[name]
        ds.NumberOfFrames = 1
        ds.PixelData = encapsulate([self._encoded[index]])
        ds["PixelData"].VR = "OB"
        return ds

    def offsets_ms(self) -> np.ndarray:
        """Each frame's time from the first one."""
        return np.concatenate([[0.0], np.cumsum(self.intervals_ms[:-1])])

    def describe(self) -> dict:
        """What the logs may say about the file (no patient attribute)."""
        return {"file": self.name, "rows": self.rows, "columns": self.cols, "frames": self.frames,
                "photometric": self.photometric, "transfer_syntax": self.syntax.name,
                "timing": self.timing, "regions": [str(r) for r in self.regions]}


def _to_uint8(arr: np.ndarray, bits_stored: int, top: float | None) -> np.ndarray:
    scale = 255.0 / (top or (2 ** min(bits_stored, 16) - 1) or 1)
    return np.clip(arr.astype(np.float32) * scale + 0.5, 0, 255).astype(np.uint8)


def frame_intervals(ds, frames: int) -> tuple[np.ndarray, str]:
    """(ms from each frame to the next, looping back after the last; which attribute said so):
    Frame Time Vector, Frame Time, Cine Rate, Recommended Display Frame Rate, else 30 fps."""
    try:
        vector = ds.get("FrameTimeVector")
        v = None if vector is None else np.atleast_1d(np.asarray(vector, dtype=np.float64))
    except Exception:  # corrupt: never shown (see the module's docstring)
        v = None
        log.warning("ignoring a corrupt %s", tag_name("FrameTimeVector"))
    if v is not None and frames > 1:
        if len(v) == frames and np.all(np.isfinite(v[1:])) and np.all(v[1:] > 0):
            steps = v[1:]  # v[0] is 0: the first frame's increment
            return np.append(steps, np.median(steps)), "FrameTimeVector"
        log.warning("ignoring a Frame Time Vector of %d value(s) for %d frames", len(v), frames)
    for name, to_ms in (("FrameTime", float), ("CineRate", lambda r: 1000.0 / float(r)),
                        ("RecommendedDisplayFrameRate", lambda r: 1000.0 / float(r))):
        try:
            value = ds.get(name)
            ms = to_ms(value) if value not in (None, "") else None
        except Exception:  # corrupt or not a number: the next attribute says, or 30 fps
            ms = None
        if ms is not None and math.isfinite(ms) and 0 < ms <= 60_000:
            return np.full(frames, ms), name
    return np.full(frames, 1000.0 / DEFAULT_FPS), f"none given, {DEFAULT_FPS:g} fps assumed"


_DIGITS = re.compile(r"(\d+)")


def dicom_files(path: str) -> list[str]:
    """A file, or a folder's ``.dcm`` files in natural name order (frame2 before frame10)."""
    if os.path.isfile(path):
        return [path]
    if not os.path.isdir(path):
        raise DicomError(f"no DICOM file or folder at {path}")
    names = [n for n in os.listdir(path) if n.lower().endswith((".dcm", ".dicom"))
             and os.path.isfile(os.path.join(path, n))]
    if not names:
        raise DicomError(f"folder {path} holds no .dcm files")
    key = lambda n: [int(t) if t.isdigit() else t.lower() for t in _DIGITS.split(n)]  # noqa: E731
    return [os.path.join(path, n) for n in sorted(names, key=key)]
