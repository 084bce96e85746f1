"""Recorded DICOM ultrasound (a cine loop, or a folder of .dcm files played in name order):
lossless by default, or paced by the file's own frame timing (realtime=1).

Every file is checked when the source opens, so bad input is one error before any frame plays.
A file with a 2D tissue region in its Sequence of Ultrasound Regions gives every frame its
``ScanArea`` (the crop, the sector and mm per pixel); without one the usual fan search runs.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass

from streamer.errors import UserError
from streamer.frames import Frame, InvalidFrame, SourceEnded
from streamer.sources.base import Pacer, Source

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DicomOptions:
    path: str  # a .dcm file or a folder of them
    realtime: bool = False  # paced by Frame Time (Vector) / Cine Rate and live; False: lossless
    loop: bool = False  # start again after the last frame instead of SourceEnded

    def __post_init__(self):
        if not os.path.exists(self.path):
            raise UserError(f"DICOM file or folder not found: {self.path}")


class DicomSource(Source):
    kind = "dicom"
    Options = DicomOptions

    def __init__(self, spec_options: dict | None = None, **options):
        super().__init__(spec_options, **options)
        self.live = self.options.realtime
        self._files: list[str] = []
        self._areas: dict[int, object] = {}  # per file index: its ScanArea or None
        self._loop = None
        self._file = self._index = self._seq = 0
        self._t0_ms = 0.0  # the current file's start on the source's clock
        self._pacer: Pacer | None = None
        self.frame_size: tuple[int, int] | None = None  # width, height: the smallest file's, once open

    def _open(self) -> None:
        from engines.dicom import DicomLoop, dicom_files

        self._files = dicom_files(self.options.path)
        # every file checked now, so nothing is half-played; a configured roi must fit them all
        sizes = [(loop.cols, loop.rows) for loop in map(DicomLoop, self._files[1:])]
        self._file, self._seq, self._t0_ms, self._areas = 0, 0, 0.0, {}
        self._start_file(DicomLoop(self._files[0]))
        sizes.append((self._loop.cols, self._loop.rows))
        self.frame_size = min(w for w, _ in sizes), min(h for _, h in sizes)
        self._pacer = Pacer(1000.0 / self._loop.intervals_ms[0]) if self.options.realtime else None

    def _start_file(self, loop) -> None:
        from engines.dicom import scan_area, tissue_region

        self._loop, self._index = loop, 0
        self._offsets = loop.offsets_ms()
        if self._file not in self._areas:
            region = tissue_region(loop.regions, loop.name)
            area = None if region is None else scan_area(loop, region)
            self._areas[self._file] = area
            self._log_file(loop, region, area)

    @staticmethod
    def _log_file(loop, region, area) -> None:
        d = loop.describe()
        log.info("%s: %d frame(s) %dx%d %s, %s, timing from %s", d["file"], d["frames"],
                 d["columns"], d["rows"], d["photometric"], d["transfer_syntax"], d["timing"])
        if area is None:
            log.info("%s: no tissue region; the fan is searched for on the pixels", loop.name)
            return
        mm = area.mm_per_px
        spacing = "no physical spacing" if mm is None else f"{mm[0]:.4f} x {mm[1]:.4f} mm/px"
        sector = "a plain crop" if area.sector is None else "polar fit seeded by the region"
        log.info("%s: the %s is the scan area (no fan search): %s, %s", loop.name, region,
                 spacing, sector)

    def _next_file(self) -> None:
        from engines.dicom import DicomLoop

        self._t0_ms += float(sum(self._loop.intervals_ms))
        self._file += 1
        if self._file >= len(self._files):
            if not self.options.loop:
                raise SourceEnded(f"end of {self.options.path} after {self._seq} frames")
            self._file, self._t0_ms = 0, 0.0
        self._start_file(self._loop if len(self._files) == 1 else DicomLoop(self._files[self._file]))

    def _read(self, timeout: float) -> Frame | None:
        if self._index >= self._loop.frames:
            self._next_file()
        if self._pacer is not None:
            self._pacer.period_ns = int(self._loop.intervals_ms[self._index] * 1e6)
            if not self._pacer.wait(timeout):
                return None
        i, seq = self._index, self._seq
        self._index += 1
        self._seq += 1
        try:
            image = self._loop.frame(i)
        except Exception as exc:  # a corrupt frame in a checked file: counted invalid, logged
            raise InvalidFrame(f"{self._loop.name} frame {i} cannot be decoded: "
                               f"{type(exc).__name__}: {exc}") from None
        return Frame(seq=seq, image=image, t_capture_ns=time.monotonic_ns(),
                     t_source_ns=int((self._t0_ms + self._offsets[i]) * 1e6),
                     area=self._areas[self._file])

    def _close(self) -> None:
        self._loop = None

    def _details(self) -> dict:
        return {"files": len(self._files), "file": self._file,
                "frames_in_file": 0 if self._loop is None else self._loop.frames}
