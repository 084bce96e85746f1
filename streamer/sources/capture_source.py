"""A capture card or camera through OpenCV (V4L2 on Linux), with the latest frame only."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

import cv2

from streamer.frames import Frame, SourceLost
from streamer.sources.base import Source


@dataclass(frozen=True)
class CaptureOptions:
    device: str  # an index ("0") or a device path ("/dev/video2")
    width: int = 0  # 0: the device's default
    height: int = 0
    fps: float = 0.0
    fourcc: str = ""  # e.g. MJPG (many USB capture cards give full rate only in MJPG)

    def __post_init__(self):
        if not (self.device.isdigit() or self.device.startswith("/dev/")):
            raise ValueError(f"capture device must be an index or /dev/videoN, got {self.device!r}")
        if min(self.width, self.height, self.fps) < 0:
            raise ValueError("capture width, height and fps must be ≥ 0")
        if self.fourcc and len(self.fourcc) != 4:
            raise ValueError(f"fourcc must be 4 characters, got {self.fourcc!r}")


class CaptureSource(Source):
    """``read`` blocks in the driver until the device delivers (OpenCV offers no timeout)."""

    kind = "capture"
    live = True
    Options = CaptureOptions

    def __init__(self, spec_options: dict | None = None, **options):
        super().__init__(spec_options, **options)
        self._cap = None
        self._seq = 0

    def _open(self) -> None:
        o = self.options
        device = int(o.device) if o.device.isdigit() else o.device
        api = cv2.CAP_V4L2 if sys.platform.startswith("linux") else cv2.CAP_ANY
        cap = cv2.VideoCapture(device, api)
        if not cap.isOpened():
            cap.release()
            raise SourceLost(f"cannot open capture device {o.device}")
        if o.fourcc:  # before the size: V4L2 picks sizes per pixel format
            cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*o.fourcc))
        for prop, value in ((cv2.CAP_PROP_FRAME_WIDTH, o.width),
                            (cv2.CAP_PROP_FRAME_HEIGHT, o.height), (cv2.CAP_PROP_FPS, o.fps)):
            if value:
                cap.set(prop, value)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # fewer queued frames: lower latency
        self._cap = cap

    def _read(self, timeout: float) -> Frame | None:
        ok, image = self._cap.read()
        if not ok or image is None:
            raise SourceLost(f"capture device {self.options.device} stopped delivering frames")
        frame = Frame(seq=self._seq, image=image, t_capture_ns=time.monotonic_ns())
        self._seq += 1
        return frame

    def _close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def _details(self) -> dict:
        cap = self._cap
        if cap is None:
            return {}
        return {"actual_width": int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
                "actual_height": int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
                "actual_fps": cap.get(cv2.CAP_PROP_FPS)}
