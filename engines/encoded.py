"""The size a compressed image declares in its own header, read without decoding a pixel.

A few-kilobyte JPEG can declare 30000x30000 in its frame header and the decoder then allocates
gigabytes for it, so every compressed image from outside (a ZMQ frame, a DICOM frame) has its
header read and compared with the size it should have before any decoder sees it. Shared by
``streamer.protocol`` and ``engines.dicom``.
"""

from __future__ import annotations

MAX_PIXELS = 4096 * 2160  # the largest frame accepted (DCI 4K), as the ZMQ frame source

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers (baseline, progressive, lossless...); C4, C8 and CC are not frames
JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
JPEG_LS_SOF = frozenset([0xF7])  # SOF55, laid out as a JPEG SOF segment
_STANDALONE = frozenset([0x01, *range(0xD0, 0xD8)])
_MAX_STEPS = 4096  # markers, fill bytes or boxes looked at before the frame header

_JPEG = ("1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57",
         "1.2.840.10008.1.2.4.70")
_JPEG_LS = ("1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81")
_J2K = ("1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.92",
        "1.2.840.10008.1.2.4.93", "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202",
        "1.2.840.10008.1.2.4.203")


def frame_size(data, syntax: str) -> tuple[int, int] | None:
    """(height, width) a frame of transfer syntax ``syntax`` declares in its own header; None for
    a syntax whose frames declare none (RLE: decoded into Rows x Columns). ValueError when the
    header cannot be read."""
    syntax = str(syntax)
    if syntax in _JPEG:
        return jpeg_size(data)
    if syntax in _JPEG_LS:
        return jpeg_size(data, JPEG_LS_SOF)
    if syntax in _J2K:
        return j2k_size(data)
    return None


def png_size(data) -> tuple[int, int]:
    data = memoryview(data).cast("B")
    if len(data) < 24 or bytes(data[:8]) != _PNG_SIGNATURE or bytes(data[12:16]) != b"IHDR":
        raise ValueError("not a png image (no PNG signature and IHDR)")
    return int.from_bytes(data[20:24], "big"), int.from_bytes(data[16:20], "big")


def jpeg_size(data, sof: frozenset[int] = JPEG_SOF) -> tuple[int, int]:
    """(height, width) from a JPEG's (or JPEG-LS's) start-of-frame segment."""
    data = memoryview(data).cast("B")
    if bytes(data[:2]) != b"\xff\xd8":
        raise ValueError("not a jpeg image (no SOI marker)")
    i, steps = 2, 0
    while i + 4 <= len(data) and steps < _MAX_STEPS:  # a file of fill bytes ends here too
        steps += 1
        if data[i] != 0xFF:
            raise ValueError(f"jpeg marker expected at byte {i}")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _STANDALONE:
            i += 2
            continue
        length = int.from_bytes(data[i + 2:i + 4], "big")
        if marker in sof:
            if i + 9 > len(data) or length < 8:
                break
            return int.from_bytes(data[i + 5:i + 7], "big"), int.from_bytes(data[i + 7:i + 9], "big")
        if marker in (0xD9, 0xDA) or length < 2:  # end of image or scan data before a frame header
            break
        i += 2 + length
    raise ValueError(f"jpeg has no frame header (SOF) in its first {steps} markers")


def j2k_size(data) -> tuple[int, int]:
    """(height, width) from a JPEG 2000 codestream's SIZ segment (inside a JP2 file's jp2c box
    when the frame is wrapped)."""
    data = memoryview(data).cast("B")
    start = 0
    if bytes(data[4:8]) == b"jP  ":  # a JP2 file: walk its boxes to the codestream
        i, steps = 0, 0
        while i + 8 <= len(data) and steps < _MAX_STEPS:
            steps += 1
            size, kind = int.from_bytes(data[i:i + 4], "big"), bytes(data[i + 4:i + 8])
            header = 8
            if size == 1 and i + 16 <= len(data):
                size, header = int.from_bytes(data[i + 8:i + 16], "big"), 16
            if kind == b"jp2c":
                start = i + header
                break
            if size < header:  # 0: the last box, running to the end; not a codestream
                break
            i += size
        if start == 0:
            raise ValueError("jp2 file has no codestream (jp2c) box")
    siz = data[start:start + 24]
    if len(siz) < 24 or bytes(siz[:4]) != b"\xff\x4f\xff\x51":
        raise ValueError("not a jpeg 2000 codestream (no SOC and SIZ markers)")
    x, y, x0, y0 = (int.from_bytes(siz[k:k + 4], "big") for k in (8, 12, 16, 20))
    if x0 > x or y0 > y:
        raise ValueError(f"jpeg 2000 image origin {x0},{y0} lies beyond its size {x}x{y}")
    return y - y0, x - x0
