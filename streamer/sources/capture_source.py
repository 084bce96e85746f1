"""A capture card or camera through OpenCV (V4L2 on Linux), with the latest frame only.

OpenCV's ``read`` blocks in the driver and takes no timeout, so a grabber thread reads the
device and keeps only the newest frame; ``read`` waits for it with a timeout. A watchdog (as in
frigate's camera watchdog) declares the device stalled when no frame has come for ``timeout``
seconds: ``SourceLost``, and the pipeline reopens it. A grabber stuck in the driver is left to
finish on its own: it owns its VideoCapture and releases it when the driver returns.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from dataclasses import dataclass

import cv2

from streamer.errors import UserError
from streamer.frames import Frame, SourceLost
from streamer.sources.base import Source

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CaptureOptions:
    device: str  # an index ("0") or a device path ("/dev/video2")
    width: int = 0  # 0: the device's default
    height: int = 0
    fps: float = 0.0
    fourcc: str = ""  # e.g. MJPG (many USB capture cards give full rate only in MJPG)
    timeout: float = 2.0  # watchdog: no frame for this long → stalled, reopen

    def __post_init__(self):
        if not (self.device.isdigit() or self.device.startswith("/dev/")):
            raise UserError(f"capture device must be an index or /dev/videoN, got {self.device!r}")
        if min(self.width, self.height, self.fps) < 0:
            raise UserError("capture width, height and fps must be ≥ 0")
        if self.fourcc and len(self.fourcc) != 4:
            raise UserError(f"fourcc must be 4 characters, got {self.fourcc!r}")
        if self.timeout <= 0:
            raise UserError(f"capture timeout must be > 0, got {self.timeout}")


@contextlib.contextmanager
def _quiet_opencv():
    """OpenCV prints a WARN line per backend it tries on a missing device; we say it once."""
    logging_ = cv2.utils.logging
    level = logging_.getLogLevel()
    logging_.setLogLevel(logging_.LOG_LEVEL_ERROR)
    try:
        yield
    finally:
        logging_.setLogLevel(level)


class _Grabber(threading.Thread):
    """Reads the device as fast as it delivers, keeping the newest frame; owns ``cap``."""

    def __init__(self, cap, name: str):
        super().__init__(name=f"capture-grabber-{name}", daemon=True)
        self.cap = cap
        self.cond = threading.Condition()
        self.latest: tuple | None = None  # (image, t_capture_ns)
        self.overwritten = 0  # frames replaced before anyone read them
        self.last_ns = time.monotonic_ns()
        self.error = ""
        self.stopping = threading.Event()

    def run(self) -> None:
        try:
            while not self.stopping.is_set():
                ok, image = self.cap.read()
                now = time.monotonic_ns()
                if not ok or image is None:
                    with self.cond:
                        self.error = "the device stopped delivering frames"
                        self.cond.notify_all()
                    return
                with self.cond:
                    self.overwritten += self.latest is not None
                    self.latest, self.last_ns = (image, now), now
                    self.cond.notify_all()
        except Exception as exc:  # a driver error: reported to the reader as a lost device
            with self.cond:
                self.error = f"{type(exc).__name__}: {exc}"
                self.cond.notify_all()
        finally:
            self.cap.release()

    def take(self, timeout: float):
        """(image, t_ns) or None after ``timeout``; the error text if the grabber ended."""
        with self.cond:
            self.cond.wait_for(lambda: self.latest is not None or self.error, timeout)
            item, self.latest = self.latest, None
            return item, self.error, self.last_ns


class CaptureSource(Source):
    """Reads on a grabber thread; a stalled or failed device raises SourceLost."""

    kind = "capture"
    live = True
    Options = CaptureOptions
    join_s = 0.5  # how long close() waits for the grabber before leaving it to finish alone

    def __init__(self, spec_options: dict | None = None, **options):
        super().__init__(spec_options, **options)
        self._grabber: _Grabber | None = None
        self._props: dict = {}
        self._seq = 0

    def _open(self) -> None:
        o = self.options
        device = int(o.device) if o.device.isdigit() else o.device
        api = cv2.CAP_V4L2 if sys.platform.startswith("linux") else cv2.CAP_ANY
        with _quiet_opencv():
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
        self._props = {"actual_width": int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
                       "actual_height": int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
                       "actual_fps": cap.get(cv2.CAP_PROP_FPS)}
        self._grabber = _Grabber(cap, o.device)
        self._grabber.start()

    def _read(self, timeout: float) -> Frame | None:
        grabber = self._grabber
        item, error, last_ns = grabber.take(timeout)
        with grabber.cond:
            self.dropped += grabber.overwritten
            grabber.overwritten = 0
        if item is None:
            if error:
                raise SourceLost(f"capture device {self.options.device}: {error}")
            stalled = (time.monotonic_ns() - last_ns) / 1e9
            if stalled > self.options.timeout:  # the watchdog
                raise SourceLost(f"capture device {self.options.device} stalled: no frame for "
                                 f"{stalled:.1f} s")
            return None
        image, t_ns = item
        frame = Frame(seq=self._seq, image=image, t_capture_ns=t_ns)
        self._seq += 1
        return frame

    def _close(self) -> None:
        grabber, self._grabber = self._grabber, None
        if grabber is not None:
            grabber.stopping.set()
            grabber.join(self.join_s)
            if grabber.is_alive():
                log.warning("capture device %s: the grabber is stuck in the driver; it releases "
                            "the device when the driver returns", self.options.device)

    def _details(self) -> dict:
        return dict(self._props) if self._grabber is not None else {}
