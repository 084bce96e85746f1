"""Labelled DICOM exams: ``dicom:DIR[,polar=1]`` with ``labels.csv`` beside the .dcm files.

``labels.csv`` columns: ``file`` (relative to DIR), an optional ``frames`` column, then one 0/1
column per class. ``frames`` empty labels every frame of the file; ``N`` or ``A-B`` (inclusive,
counted from 0) labels a frame range, so one loop can carry several rows. Each labelled frame is
one sample, cropped as the streamer crops it: the file's tissue region (else the largest bright
area of its frames), grey, resized; ``polar=1`` resamples a sector to polar form.
"""

from __future__ import annotations

import os

import cv2
import numpy as np

from engines.datasets import Sample, _index
from engines.datasets.range_labels import read_range_labels
from engines.dicom import DicomError, DicomLoop, ScanArea, UsRegion, brightest_frame, scan_area
from engines.dicom import tissue_region as pick_tissue_region


def _bright_area(loop: DicomLoop, threshold: int = 8) -> UsRegion:
    """No regions in the file: the bounding box of the largest bright area (text opened away)."""
    brightest = brightest_frame(loop)
    mask = (brightest > float(np.median(brightest)) + threshold).astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((5, 5), np.uint8))
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count < 2:
        h, w = brightest.shape
        return UsRegion((0, 0, w, h), 1, 1, None, None)
    i = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return UsRegion(tuple(int(v) for v in stats[i, :4]), 1, 1, None, None)


class DicomDataset:
    """Frames of labelled DICOM loops (decoded when asked for; the last file is kept open)."""

    def __init__(self, root: str, input_size: int = 224, polar: int = 0,
                 csv_name: str = "labels.csv", recipe: str = "sonostream"):
        from engines.input_recipe import recipe_named

        if polar not in (0, 1):
            raise ValueError(f"dicom polar must be 0 or 1, got {polar}")
        path = os.path.join(root, csv_name)
        if not os.path.isfile(path):
            raise ValueError(f"dicom dataset {root!r} has no {csv_name}")
        self.root, self.input_size, self.polar = root, int(input_size), bool(polar)
        self.representation = "polar" if self.polar else "sector"
        self.recipe = recipe_named(recipe)  # its polar shrink is the model's
        self.classes, rows = read_range_labels(path)
        self.items: list[tuple[str, int]] = []  # (file, frame index)
        labels, self._frames, seen = [], {}, set()
        for row in rows:
            where, file = row.where(path), os.path.join(root, row.file)
            count = self._count(file, where)
            row.check_count(count, path)
            for i in row.frames(count):
                if (file, i) in seen:
                    raise ValueError(f"{where}: frame {i} of {row.file} is labelled twice")
                seen.add((file, i))
                self.items.append((file, i))
                labels.append(np.array(row.labels, np.float32))
        if not self.items:
            raise ValueError(f"{path}: no labelled frames")
        self.labels = np.array(labels, np.float32)
        self._areas: dict[str, tuple[ScanArea, object]] = {}  # file -> (area, its PolarMap)
        self._open: tuple[str, DicomLoop] | None = None

    def _count(self, file: str, where: str) -> int:
        if file not in self._frames:
            if not os.path.isfile(file):
                raise ValueError(f"{where}: DICOM file {os.path.basename(file)!r} not found")
            try:
                self._frames[file] = DicomLoop(file).frames
            except DicomError as exc:
                raise ValueError(f"{where}: {exc}") from None
        return self._frames[file]

    def __len__(self) -> int:
        return len(self.items)

    def _loop(self, file: str) -> DicomLoop:
        if self._open is None or self._open[0] != file:
            self._open = (file, DicomLoop(file))
        return self._open[1]

    def area(self, file: str) -> tuple[ScanArea, object]:
        """A file's crop and sector as the streamer finds them, with the sector's PolarMap when
        polar (computed once per file)."""
        if file not in self._areas:
            loop = self._loop(file)
            area = scan_area(loop, pick_tissue_region(loop.regions, loop.name) or _bright_area(loop))
            pmap = (self.recipe.polar_map(area.sector, self.input_size)
                    if self.polar and area.sector else None)
            self._areas[file] = (area, pmap)
        return self._areas[file]

    def __getitem__(self, i: int) -> Sample:
        i = _index(i, len(self.items))
        file, index = self.items[i]
        area, pmap = self.area(file)
        image = self._loop(file).frame(index)
        x, y, w, h = area.rect
        grey = image[y : y + h, x : x + w]
        grey = cv2.cvtColor(grey, cv2.COLOR_BGR2GRAY) if grey.ndim == 3 else grey
        if pmap is not None:
            return Sample(self.recipe.stored(pmap.to_polar(grey)), self.labels[i].copy(), None)
        small = cv2.resize(grey, (self.input_size, self.input_size), interpolation=cv2.INTER_AREA)
        return Sample(self.recipe.stored(small), self.labels[i].copy(), None)
