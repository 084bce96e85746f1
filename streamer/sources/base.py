"""The one small interface every frame source implements.

The base class owns the bookkeeping (open state, frame counters, describe, context manager); a
source implements ``_open``, ``_read`` and ``_close`` and declares its ``Options`` dataclass.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import asdict
from typing import ClassVar

from engines.specs import build_options
from streamer.frames import Frame


class Source(ABC):
    kind: ClassVar[str]  # the spec scheme
    live: bool = True  # live: latest-frame semantics (drop stale); False: lossless, the reader waits
    Options: ClassVar[type]  # a frozen dataclass

    def __init__(self, spec_options: dict | None = None, **options):
        self.options = build_options(self.Options, spec_options, **options)
        self.frames_read = 0
        self.dropped = 0  # frames the source itself skipped (e.g. drained stale zmq messages)
        self._is_open = False

    # -- what a source implements ----------------------------------------------------------
    @abstractmethod
    def _open(self) -> None:
        """Acquire the device/file/socket; SourceLost if a live device is not there."""

    @abstractmethod
    def _read(self, timeout: float) -> Frame | None:
        """The next frame, or None if none came within ``timeout`` seconds."""

    def _close(self) -> None:  # noqa: B027 - optional hook
        pass

    def _details(self) -> dict:
        return {}

    # -- the interface ---------------------------------------------------------------------
    def open(self) -> Source:
        if not self._is_open:
            self._open()
            self._is_open = True
        return self

    def read(self, timeout: float) -> Frame | None:
        """None: nothing within timeout. Raises InvalidFrame, SourceLost or SourceEnded."""
        if not self._is_open:
            raise RuntimeError(f"{self.kind} source is not open")
        frame = self._read(max(0.0, timeout))
        if frame is not None:
            self.frames_read += 1
        return frame

    def close(self) -> None:
        if self._is_open:
            self._is_open = False
            self._close()

    def describe(self) -> dict:
        return {"kind": self.kind, "live": self.live, **asdict(self.options),
                "frames_read": self.frames_read, "dropped": self.dropped, **self._details()}

    def __enter__(self) -> Source:
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()


class Pacer:
    """Frame deadlines at ``fps`` on the monotonic clock; a late reader restarts the schedule
    instead of receiving a burst."""

    def __init__(self, fps: float):
        self.period_ns = int(1e9 / fps)
        self.due_ns: int | None = None

    def wait(self, timeout: float) -> bool:
        """True when the next frame is due (sleeping at most ``timeout`` for it), else False."""
        now = time.monotonic_ns()
        if self.due_ns is None or now - self.due_ns > self.period_ns:
            self.due_ns = now
        wait_s = (self.due_ns - now) / 1e9
        if wait_s > timeout:
            time.sleep(timeout)
            return False
        if wait_s > 0:
            time.sleep(wait_s)
        self.due_ns += self.period_ns
        return True
