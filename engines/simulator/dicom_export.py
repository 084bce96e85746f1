"""Simulated cine loops written as DICOM US Multi-frame Image files (needs the ``dicom`` extra):
recorded exams for tests, demos and benchmarks, with the scanner's Sequence of Ultrasound Regions.

    python -m engines.simulator.dicom_export loop.dcm --frames 30 --width 1920 --height 1080
    python -m engines.simulator.dicom_export other.dcm --style heldout --fps 2   # a slow sweep, another look

Without --width/--height the loop is 640x360 (30 frames uncompressed: about 21 MB; 1080p is
about 187 MB, or 3 MB with --jpeg). DICOM files are patient data: .gitignore keeps *.dcm out of git.
"""

from __future__ import annotations

import argparse
import math
import os
from dataclasses import dataclass, field

import cv2
import numpy as np

from engines.simulator.feed import LIVE_STYLES

US_MULTIFRAME = "1.2.840.10008.5.1.4.1.1.3.1"
US_IMAGE = "1.2.840.10008.5.1.4.1.1.6.1"
FORMATS = ("MONOCHROME2", "MONOCHROME1", "RGB", "YBR_FULL_422")


@dataclass
class Region:
    """An item of the Sequence of Ultrasound Regions: inclusive bounds, reference pixel relative to
    the region's top-left corner, centimetres per pixel."""

    bounds: tuple[int, int, int, int]  # x0, y0, x1, y1
    data_type: int = 1  # 1 tissue, 2 colour flow, 3 PW Doppler
    spatial_format: int = 1  # 1: 2D, 3: spectral
    reference: tuple[int, int] | None = None
    cm_per_px: tuple[float, float] | None = (0.02, 0.02)


@dataclass
class Cine:
    frames: list[np.ndarray]  # uint8 grey [H, W] or BGR [H, W, 3]
    regions: list[Region] = field(default_factory=list)
    boxes: list[dict] = field(default_factory=list)  # per frame: class -> screen box
    labels: list[np.ndarray] = field(default_factory=list)


def simulated_cine(frames: int, width: int = 640, height: int = 360, seed: int = 0,
                   depth_cm: float = 15.0, style: str = "classic", fps: float = 30.0) -> Cine:
    """Frames of the simulated scanner's screen and the tissue region its fan lies in (reference
    pixel at the probe face's centre, spacing from the imaged depth). ``style``: the sweep's look
    (a live style: classic, or heldout, which no shipped model trained on); ``fps``: the sweep's
    frame rate (frame i shows the sweep at i/fps s)."""
    from engines.simulator import LiveFeed

    feed = LiveFeed(seed=seed, fps=fps, width=width, height=height, style=style)
    shots = [feed.frame_at(i) for i in range(frames)]
    x, y, w, h = shots[0].fan_roi
    g = feed.geom
    sx, sy = w / g.size[1], h / g.size[0]
    face = (g.apex[0] * sx, (g.apex[1] + g.r0) * sy)
    cm = depth_cm / ((g.r1 - g.r0) * sy)
    region = Region((x, y, x + w - 1, y + h - 1), reference=(round(face[0]), round(face[1])),
                    cm_per_px=(cm * sy / sx, cm))
    return Cine([s.image for s in shots], [region], [s.boxes for s in shots],
                [s.labels for s in shots])


def write_labelled_loops(folder, seeds, frames: int, *, width: int = 640, height: int = 360,
                         style: str = "classic", fps: float = 30.0, jpeg: bool = False) -> dict:
    """One simulated loop per seed (``loop_<seed>.dcm``) and a labels.csv of the simulator's own
    labels over frame ranges, as ``streamer label`` writes it; {file name: its Cine}."""
    from engines.classes import REGIONS
    from engines.datasets.range_labels import RangeLabel, runs, write_range_labels

    os.makedirs(folder, exist_ok=True)
    cines, rows = {}, []
    for seed in seeds:
        name = f"loop_{seed}.dcm"
        cine = cines[name] = simulated_cine(frames, width, height, seed, style=style, fps=fps)
        write_dicom(os.path.join(folder, name), cine.frames, regions=cine.regions, jpeg=jpeg,
                    frame_time_ms=round(1000 / fps, 3))
        per_frame = {i: y.astype(int) for i, y in enumerate(cine.labels)}
        rows += [RangeLabel(name, a, b, y) for a, b, y in runs(per_frame)]
    write_range_labels(os.path.join(folder, "labels.csv"), REGIONS, rows)
    return cines


def write_dicom(path, frames: list[np.ndarray], *, regions: list[Region] = (),
                photometric: str | None = None, jpeg: bool = False, frame_time_ms: float | None = 33.3,
                frame_time_vector: list[float] | None = None, cine_rate: float | None = None,
                patient: dict | None = None, modality: str = "US", sop_class: str | None = None):
    """A US (Multi-frame) Image file; colour frames are BGR. ``jpeg``: baseline JPEG frames
    (YBR_FULL_422 for colour), encoded by OpenCV and encapsulated."""
    from pydicom import FileDataset
    from pydicom.dataset import FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.uid import (
        PYDICOM_IMPLEMENTATION_UID,
        ExplicitVRLittleEndian,
        JPEGBaseline8Bit,
        generate_uid,
    )

    colour = frames[0].ndim == 3
    photometric = photometric or (("YBR_FULL_422" if jpeg else "RGB") if colour else "MONOCHROME2")
    multi = len(frames) > 1
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class or (US_MULTIFRAME if multi else US_IMAGE)
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = JPEGBaseline8Bit if jpeg else ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality = modality
    for key, value in (patient or {}).items():
        setattr(ds, key, value)
    ds.Rows, ds.Columns = frames[0].shape[:2]
    ds.SamplesPerPixel = 3 if colour else 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    if colour:
        ds.PlanarConfiguration = 0
    if multi:
        ds.NumberOfFrames = len(frames)
        ds.FrameIncrementPointer = 0x00181065 if frame_time_vector else 0x00181063
    if frame_time_ms is not None and frame_time_vector is None:
        ds.FrameTime = f"{frame_time_ms:g}"
    if frame_time_vector is not None:
        ds.FrameTimeVector = [f"{v:g}" for v in frame_time_vector]
    if cine_rate is not None:
        ds.CineRate = int(cine_rate)
    if regions:
        ds.SequenceOfUltrasoundRegions = [_region_item(r) for r in regions]
    if jpeg:
        ds.PixelData = encapsulate([_jpeg(f) for f in frames])
        ds["PixelData"].VR = "OB"
        ds.LossyImageCompression = "01"
    else:
        ds.PixelData = b"".join(_native(f, photometric) for f in frames)
        ds["PixelData"].VR = "OB"
    ds.save_as(str(path), enforce_file_format=True)
    return path


def _region_item(r: Region):
    from pydicom import Dataset

    item = Dataset()
    (item.RegionLocationMinX0, item.RegionLocationMinY0, item.RegionLocationMaxX1,
     item.RegionLocationMaxY1) = r.bounds
    item.RegionSpatialFormat, item.RegionDataType, item.RegionFlags = r.spatial_format, r.data_type, 0
    if r.reference is not None:
        item.ReferencePixelX0, item.ReferencePixelY0 = r.reference
    units = 3 if r.cm_per_px else 0
    item.PhysicalUnitsXDirection = item.PhysicalUnitsYDirection = units
    item.PhysicalDeltaX, item.PhysicalDeltaY = r.cm_per_px or (0.0, 0.0)
    return item


def _jpeg(frame: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise ValueError("OpenCV could not encode a JPEG frame")
    return buf.tobytes()


def _native(frame: np.ndarray, photometric: str) -> bytes:
    if photometric == "MONOCHROME1":
        return (255 - frame).tobytes()
    if photometric == "RGB":
        return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB).tobytes()
    if photometric == "YBR_FULL_422":  # per pixel pair: Y0 Y1 Cb Cr (chroma averaged)
        if frame.shape[1] % 2:
            raise ValueError("YBR_FULL_422 needs an even width")
        ycc = cv2.cvtColor(frame, cv2.COLOR_BGR2YCrCb).astype(np.float32)
        pairs = ycc.reshape(frame.shape[0], -1, 2, 3)  # [H, W/2, pixel of the pair, Y Cr Cb]
        out = np.empty(pairs.shape[:2] + (4,), np.float32)
        out[..., 0], out[..., 1] = pairs[:, :, 0, 0], pairs[:, :, 1, 0]
        out[..., 2], out[..., 3] = pairs[..., 2].mean(axis=2), pairs[..., 1].mean(axis=2)
        out = np.clip(np.round(out), 0, 255).astype(np.uint8)
        return out.tobytes()
    return np.ascontiguousarray(frame).tobytes()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", help="the .dcm file to write")
    p.add_argument("--frames", type=int, default=30, help="default 30")
    p.add_argument("--width", type=int, default=640, help="default 640 (a scanner's screen: 1920)")
    p.add_argument("--height", type=int, default=360, help="default 360 (a scanner's: 1080)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--style", choices=LIVE_STYLES, default="classic",
                   help="the sweep's look (heldout: one no shipped model trained on)")
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--jpeg", action="store_true", help="baseline JPEG frames (YBR_FULL_422)")
    p.add_argument("--no-regions", action="store_true", help="leave out the ultrasound regions")
    a = p.parse_args(argv)
    if not (math.isfinite(a.fps) and a.fps > 0):
        p.error(f"--fps must be a positive number, got {a.fps}")
    cine = simulated_cine(a.frames, a.width, a.height, a.seed, style=a.style, fps=a.fps)
    write_dicom(a.out, cine.frames, regions=[] if a.no_regions else cine.regions, jpeg=a.jpeg,
                frame_time_ms=round(1000 / a.fps, 3))
    size = os.path.getsize(a.out) / 1e6
    print(f"wrote {a.out}: {a.frames} frames {a.width}x{a.height}, {size:.1f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
