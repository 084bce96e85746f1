"""The scanner's Sequence of Ultrasound Regions (0018,6011): the tissue region as the scan area,
the seed of the sector fit, and the pixel spacing."""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

from engines.polar import SectorGeometry, estimate_geometry

log = logging.getLogger(__name__)
Rect = tuple[int, int, int, int]  # x, y, w, h
MIN_SIDE = 16  # a region narrower or lower than this is ignored
REGION_TYPES = {0: "none", 1: "tissue", 2: "colour flow", 3: "PW spectral Doppler",
                4: "CW spectral Doppler", 0xA: "ECG trace", 0xD: "grey bar", 0xE: "colour bar"}
CM = 3  # Physical Units: centimetres
FIT_FRAMES = 16  # frames of a loop the sector is fitted on (spread over the loop)


class Frames(Protocol):
    """What the sector fit reads of a loop (a DicomLoop): no import of the loop module, which
    imports this one."""

    name: str
    frames: int

    def frame(self, index: int) -> np.ndarray: ...


@dataclass(frozen=True)
class UsRegion:
    """One item of the Sequence of Ultrasound Regions, in frame pixels."""

    rect: Rect
    spatial_format: int  # 1: 2D
    data_type: int  # 1: tissue, 2: colour flow...
    reference: tuple[float, float] | None  # the reference pixel (probe face centre), absolute
    mm_per_px: tuple[float, float] | None  # when both directions are in centimetres

    @property
    def kind(self) -> str:
        return REGION_TYPES.get(self.data_type, f"type {self.data_type:#x}")

    @property
    def is_tissue(self) -> bool:
        return self.spatial_format == 1 and self.data_type == 1

    def __str__(self) -> str:
        x, y, w, h = self.rect
        return f"{self.kind} region x={x} y={y} w={w} h={h}"


@dataclass(frozen=True)
class ScanArea:
    """Where the scanner says its image lies: the crop (no fan search), the sector within it (crop
    coordinates; None: crop plainly) and millimetres per source pixel (x, y) when calibrated."""

    rect: Rect
    sector: SectorGeometry | None = None
    mm_per_px: tuple[float, float] | None = None


def _float(item, name: str) -> float | None:
    value = item.get(name)
    try:
        value = float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None
    return value if value is not None and math.isfinite(value) else None


def read_regions(ds, width: int, height: int) -> list[UsRegion]:
    """The Sequence of Ultrasound Regions, each clipped to the frame; empty when absent. A corrupt
    item is ignored (the fan search runs instead), said without its values."""
    try:
        items = list(ds.get("SequenceOfUltrasoundRegions", []) or [])
    except Exception:  # pydicom could not parse the sequence
        log.warning("ignoring a corrupt Sequence of Ultrasound Regions (0018,6011)")
        return []
    regions = []
    for item in items:
        try:
            region = _region(item, width, height)
        except Exception:  # a value that is not a number: corrupt, never shown
            log.warning("ignoring an ultrasound region whose values are corrupt")
            continue
        if region is not None:
            regions.append(region)
    return regions


def _region(item, width: int, height: int) -> UsRegion | None:
    bounds = [item.get(k) for k in ("RegionLocationMinX0", "RegionLocationMinY0",
                                    "RegionLocationMaxX1", "RegionLocationMaxY1")]
    if any(b is None for b in bounds):
        return None
    bounds = [int(b) for b in bounds]
    x0, y0 = max(0, bounds[0]), max(0, bounds[1])
    x1, y1 = min(width - 1, bounds[2]), min(height - 1, bounds[3])
    if x1 - x0 < MIN_SIDE or y1 - y0 < MIN_SIDE:
        log.warning("ignoring an ultrasound region outside the frame or too small: %s", bounds)
        return None
    ref = (item.get("ReferencePixelX0"), item.get("ReferencePixelY0"))
    reference = None if None in ref else (bounds[0] + float(ref[0]) + 0.5,
                                          bounds[1] + float(ref[1]) + 0.5)
    return UsRegion((x0, y0, x1 - x0 + 1, y1 - y0 + 1), int(item.get("RegionSpatialFormat", 0) or 0),
                    int(item.get("RegionDataType", 0) or 0), reference, _spacing_mm(item))


def _spacing_mm(item) -> tuple[float, float] | None:
    if item.get("PhysicalUnitsXDirection") != CM or item.get("PhysicalUnitsYDirection") != CM:
        return None
    dx, dy = _float(item, "PhysicalDeltaX"), _float(item, "PhysicalDeltaY")
    if dx is None or dy is None or dx <= 0 or dy <= 0:
        return None
    return round(abs(dx) * 10, 6), round(abs(dy) * 10, 6)


def tissue_region(regions: list[UsRegion], name: str = "") -> UsRegion | None:
    """The 2D tissue region (the largest if several), saying in the log which one and why."""
    tissue = [r for r in regions if r.is_tissue]
    if not tissue:
        if regions:
            log.info("%s: no 2D tissue region among %s; searching the fan on the pixels", name,
                     ", ".join(map(str, regions)))
        return None
    best = max(tissue, key=lambda r: r.rect[2] * r.rect[3])
    others = [r for r in regions if r is not best]
    if others:
        log.info("%s: %d ultrasound regions; using the %s (ignoring %s)", name, len(regions), best,
                 ", ".join(map(str, others)))
    return best


def brightest_frame(loop: Frames) -> np.ndarray:
    """The per-pixel maximum (grey) of up to FIT_FRAMES frames spread through the loop."""
    out = None
    for i in np.unique(np.linspace(0, loop.frames - 1, min(FIT_FRAMES, loop.frames)).astype(int)):
        frame = loop.frame(int(i))
        grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
        out = grey.copy() if out is None else np.maximum(out, grey, out=out)
    return out


def scan_area(loop: Frames, region: UsRegion, threshold: int = 8) -> ScanArea:
    """The region as the crop and its sector fitted inside it: on the brightest of frames spread
    through the loop (one frame's shadows can hide much of a fan), median-filtered (codec noise),
    then aligned on the reference pixel (the probe face's centre, on the sector's axis)."""
    x, y, w, h = region.rect
    brightest = brightest_frame(loop)[y : y + h, x : x + w]
    bg = float(np.median(brightest[[0, 0, -1, -1], [0, -1, 0, -1]]))  # corners lie outside
    k = max(1, int(np.ceil(max(w, h) / 400)))  # fitted on about 400 px, as the live fitter does
    g = estimate_geometry((cv2.medianBlur(brightest, 3) > bg + threshold)[::k, ::k])
    if g is not None:
        g = dataclasses.replace(g, apex=(g.apex[0] * k, g.apex[1] * k), r_min=g.r_min * k,
                                r_max=g.r_max * k)
        g = _seed_reference(g, region, loop.name)
    return ScanArea(region.rect, g, region.mm_per_px)


def _seed_reference(g: SectorGeometry, region: UsRegion, name: str) -> SectorGeometry | None:
    """The sector's axis moved onto the reference pixel (the probe face's centre, or the apex of a
    phased array); a fit that misses it by more than a few pixels is not the scanner's sector."""
    if region.reference is None:
        return g
    mid = (g.angle_min + g.angle_max) / 2
    ax, ay = region.rect[0] + g.apex[0], region.rect[1] + g.apex[1]
    face = (ax + g.r_min * math.sin(mid), ay + g.r_min * math.cos(mid))
    off = min(math.dist(face, region.reference), math.dist((ax, ay), region.reference))
    if off > max(8.0, 0.05 * g.r_max):
        log.warning("%s: the sector fitted in the tissue region misses its reference pixel by "
                    "%.0f px; cropping without polar resampling", name, off)
        return None
    return dataclasses.replace(g, apex=(g.apex[0] + region.reference[0] - face[0], g.apex[1]))


