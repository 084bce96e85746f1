"""A video file through OpenCV: lossless by default, or paced at its frame rate (realtime=1)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import cv2

from streamer.errors import UserError
from streamer.frames import Frame, SourceEnded
from streamer.sources.base import Pacer, Source


@dataclass(frozen=True)
class VideoFileOptions:
    path: str
    realtime: bool = False  # pace at the file's fps and behave as a live source
    loop: bool = False  # start again at the end instead of SourceEnded
    fps: float = 0.0  # pacing rate; 0: the file's own (30 if the file does not say)

    def __post_init__(self):
        if not os.path.isfile(self.path):
            raise UserError(f"video file not found: {self.path}")
        if self.fps < 0:
            raise UserError(f"fps must be ≥ 0, got {self.fps}")


class VideoFileSource(Source):
    kind = "file"
    Options = VideoFileOptions

    def __init__(self, spec_options: dict | None = None, **options):
        super().__init__(spec_options, **options)
        self.live = self.options.realtime
        self._cap = None
        self._pacer: Pacer | None = None
        self._seq = 0

    def _open(self) -> None:
        cap = cv2.VideoCapture(self.options.path)
        if not cap.isOpened():
            cap.release()
            raise UserError(f"OpenCV cannot read video file: {self.options.path}")
        self._cap, self._seq = cap, 0
        fps = self.options.fps or cap.get(cv2.CAP_PROP_FPS) or 30.0
        self._pacer = Pacer(fps) if self.options.realtime else None

    def _read(self, timeout: float) -> Frame | None:
        if self._pacer is not None and not self._pacer.wait(timeout):
            return None
        t_ms = self._cap.get(cv2.CAP_PROP_POS_MSEC)
        ok, image = self._cap.read()
        if not ok and self.options.loop and self._seq > 0:
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            t_ms = 0.0
            ok, image = self._cap.read()
        if not ok:
            raise self._end()
        frame = Frame(seq=self._seq, image=image, t_capture_ns=time.monotonic_ns(),
                      t_source_ns=int(t_ms * 1e6))
        self._seq += 1
        return frame

    def _end(self) -> SourceEnded:
        """The end, complete only if every frame the container declares was read."""
        declared = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT))
        if declared > self._seq and not self.options.loop:
            return SourceEnded(f"{self.options.path} ended after {self._seq} of its {declared} "
                               "frames (truncated or corrupt)", complete=False)
        return SourceEnded(f"end of {self.options.path} after {self._seq} frames")

    def _close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def _details(self) -> dict:
        cap = self._cap
        return {} if cap is None else {"frame_count": int(cap.get(cv2.CAP_PROP_FRAME_COUNT)),
                                       "file_fps": cap.get(cv2.CAP_PROP_FPS)}
