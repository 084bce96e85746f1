"""A small reader for 2-D MetaImage files (``.mhd`` + ``.raw``/``.zraw``, or ``.mha``), the format
of the paper's data set, and ITK-style resampling to a pixel spacing.

Handled: ``ElementDataFile`` = a file beside the header (or below it: never outside) or ``LOCAL``; ``CompressedData``
(zlib); the byte order keys; the element types below; ``NDims`` 2, or 3 with one slice;
``ElementSpacing``; ``Label = X`` and ``Labels = A, B`` lines (the release's labels). Anything
else (several channels, file lists, volumes) is refused with the file named, and so is anything
larger than MAX_PIXELS, before or after resampling, and zlib data that inflates past its size.
"""

from __future__ import annotations

import math
import os
import zlib
from dataclasses import dataclass

import numpy as np

MAX_PIXELS = 8192 * 8192  # a frame (and its resampled copy) larger than this is refused unread
ELEMENT_TYPES = {
    "MET_UCHAR": "u1", "MET_CHAR": "i1", "MET_USHORT": "u2", "MET_SHORT": "i2",
    "MET_UINT": "u4", "MET_INT": "i4", "MET_FLOAT": "f4", "MET_DOUBLE": "f8",
}
_TRUE = ("true", "1", "yes")


@dataclass(frozen=True)
class MetaImage:
    path: str
    header: dict[str, str]
    shape: tuple[int, int]  # rows (y), columns (x)
    spacing: tuple[float, float]  # mm per pixel along x, y (ElementSpacing order)
    dtype: np.dtype
    labels: tuple[str, ...]

    def pixels(self) -> np.ndarray:
        """The image [rows, cols] in its stored type (rows: y, as MetaImage stores x fastest)."""
        data = _read_data(self)
        return np.frombuffer(data, self.dtype, count=self.shape[0] * self.shape[1]).reshape(self.shape)


def _header_lines(path: str) -> tuple[dict[str, str], int]:
    """Key = value lines up to ElementDataFile (the last header line), and the header's length."""
    header, length = {}, 0
    with open(path, "rb") as f:
        for raw in f:
            length += len(raw)
            line = raw.decode("latin-1").strip()
            if not line:
                continue
            key, eq, value = line.partition("=")
            if not eq:
                raise ValueError(f"{path}: not a MetaImage header line: {line[:60]!r}")
            header[key.strip()] = value.strip()
            if key.strip() == "ElementDataFile":
                return header, length
            if length > 1 << 16:
                break
    raise ValueError(f"{path}: no ElementDataFile line (not a MetaImage header)")


def labels_of(header: dict[str, str]) -> tuple[str, ...]:
    """``Labels = A, B`` (the release's multi-label line) or ``Label = X``; names stripped."""
    text = header.get("Labels", header.get("Label", ""))
    return tuple(dict.fromkeys(s.strip() for s in text.split(",") if s.strip()))


def read_header(path: str) -> MetaImage:
    """Parse and check a header (and that its pixel data is there, of the right size)."""
    header, _ = _header_lines(path)
    ndims = (_numbers(path, header, "NDims", "0") or [0])[0]
    dims = _numbers(path, header, "DimSize", "")
    if ndims not in (2, 3) or len(dims) != ndims or (ndims == 3 and dims[2] != 1):
        raise ValueError(f"{path}: only 2-D images (or 3-D with one slice) are supported, "
                         f"got NDims={ndims} DimSize={dims}")
    if min(dims) < 1:
        raise ValueError(f"{path}: DimSize must be positive, got {dims}")
    if dims[0] * dims[1] > MAX_PIXELS:
        raise ValueError(f"{path}: {dims[0]}x{dims[1]} pixels is more than this reader takes "
                         f"({MAX_PIXELS} pixels)")
    if _numbers(path, header, "ElementNumberOfChannels", "1") != [1]:
        raise ValueError(f"{path}: only single-channel (grey) images are supported")
    etype = header.get("ElementType", "")
    if etype not in ELEMENT_TYPES:
        raise ValueError(f"{path}: unsupported ElementType {etype!r}; expected one of "
                         f"{sorted(ELEMENT_TYPES)}")
    msb = header.get("BinaryDataByteOrderMSB", header.get("ElementByteOrderMSB", "False"))
    dtype = np.dtype(ELEMENT_TYPES[etype]).newbyteorder(">" if msb.lower() in _TRUE else "<")
    key = "ElementSpacing" if "ElementSpacing" in header else "ElementSize"
    spacing = _numbers(path, header, key, "1 1", float)
    if len(spacing) < 2 or not all(s > 0 and math.isfinite(s) for s in spacing[:2]):
        raise ValueError(f"{path}: ElementSpacing must hold two positive numbers, got {spacing}")
    image = MetaImage(path, header, (dims[1], dims[0]), (spacing[0], spacing[1]), dtype,
                      labels_of(header))
    _check_data(image)
    return image


def _numbers(path: str, header: dict[str, str], key: str, default: str, kind=int) -> list:
    """The numbers of header line ``key`` (``default`` when absent); ValueError naming the key."""
    text = header.get(key, default)
    try:
        return [kind(v) for v in text.split()]
    except ValueError:
        what = "integers" if kind is int else "numbers"
        raise ValueError(f"{path}: {key} must hold {what}, got {text[:40]!r}") from None


def _data_file(image: MetaImage) -> str | None:
    name = image.header["ElementDataFile"]
    if name == "LOCAL":
        return None
    if name.startswith("LIST") or len(name.split()) > 1:
        raise ValueError(f"{image.path}: ElementDataFile lists ({name!r}) are not supported")
    folder = os.path.realpath(os.path.dirname(image.path) or ".")
    target = os.path.realpath(os.path.join(folder, name))
    if os.path.isabs(name) or os.path.commonpath([folder, target]) != folder:
        raise ValueError(f"{image.path}: its ElementDataFile {name!r} lies outside the header's "
                         "folder (a data file must sit beside its header or below it)")
    return target


def _compressed(image: MetaImage) -> bool:
    return image.header.get("CompressedData", "False").lower() in _TRUE


def _expected(image: MetaImage) -> int:
    return image.shape[0] * image.shape[1] * image.dtype.itemsize


def _check_data(image: MetaImage) -> None:
    data_file = _data_file(image)
    if data_file is not None and not os.path.isfile(data_file):
        raise ValueError(f"{image.path}: its pixel data {os.path.basename(data_file)!r} is missing")
    if _compressed(image):
        return  # its size is known only once inflated: checked on reading
    if data_file is None:
        size = os.path.getsize(image.path) - _header_lines(image.path)[1]
    else:
        size = os.path.getsize(data_file)
    if size != _expected(image):
        raise ValueError(f"{image.path}: pixel data holds {size} bytes, the header says "
                         f"{_expected(image)} ({image.shape[1]}x{image.shape[0]} "
                         f"{image.header['ElementType']})")


def _read_data(image: MetaImage) -> bytes:
    data_file = _data_file(image)
    if data_file is None:
        with open(image.path, "rb") as f:
            f.seek(_header_lines(image.path)[1])
            data = f.read()
    else:
        with open(data_file, "rb") as f:
            data = f.read()
    if _compressed(image):
        data = _inflate(image, data)
    if len(data) != _expected(image):
        raise ValueError(f"{image.path}: pixel data holds {len(data)} bytes, the header says "
                         f"{_expected(image)}")
    return data


def _inflate(image: MetaImage, data: bytes) -> bytes:
    """zlib data inflated to at most one byte more than the header's size: a small file that
    inflates to gigabytes stops there, refused, before it is held in memory."""
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, _expected(image) + 1)
    except zlib.error as exc:
        raise ValueError(f"{image.path}: compressed pixel data is corrupt ({exc})") from None
    if len(out) > _expected(image) or inflater.unconsumed_tail:
        raise ValueError(f"{image.path}: compressed pixel data inflates past the {_expected(image)} "
                         f"bytes the header says")
    return out


def resample(pixels: np.ndarray, spacing: tuple[float, float], new: float) -> np.ndarray:
    """As the release's ``Resample(new_spacing)`` (SimpleITK, linear): the same origin, size
    ceil(size · spacing / new) per axis, linear interpolation with the border pixels repeated
    out to half a pixel, 0 beyond; integer images stay integer (ITK truncates)."""
    rows, cols = pixels.shape
    sx, sy = spacing
    if not (new > 0 and math.isfinite(new)):
        raise ValueError(f"resampling spacing must be a positive number of mm, got {new}")
    out_cols, out_rows = cols * sx / new, rows * sy / new
    if out_cols * out_rows > MAX_PIXELS:  # checked before any array is made
        raise ValueError(f"resampling {cols}x{rows} pixels of {sx}x{sy} mm to {new} mm would "
                         f"make {out_cols:.0f}x{out_rows:.0f} pixels, more than {MAX_PIXELS}")
    out_cols, out_rows = math.ceil(out_cols), math.ceil(out_rows)
    x = np.arange(out_cols) * (new / sx)  # continuous input index of each output pixel
    y = np.arange(out_rows) * (new / sy)
    src = pixels.astype(np.float64)
    out = _linear(_linear(src, y, axis=0), x, axis=1)
    inside = (y < rows - 0.5)[:, None] & (x < cols - 0.5)[None, :]
    out = np.where(inside, out, 0.0)
    if np.issubdtype(pixels.dtype, np.integer):
        info = np.iinfo(pixels.dtype)
        out = np.trunc(np.clip(out, info.min, info.max)).astype(pixels.dtype)
    return out


def _linear(a: np.ndarray, t: np.ndarray, axis: int) -> np.ndarray:
    n = a.shape[axis]
    i0 = np.clip(np.floor(t).astype(np.int64), 0, n - 1)
    i1 = np.clip(i0 + 1, 0, n - 1)
    shape = [1, 1]
    shape[axis] = -1
    w = (t - np.floor(t)).reshape(shape)
    return np.take(a, i0, axis=axis) * (1 - w) + np.take(a, i1, axis=axis) * w
