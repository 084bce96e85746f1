"""Every frame counted once: captured = processed + dropped + invalid at shutdown. The workers
count through one Run, which also holds the stop event they all watch."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from engines.backends.base import BackendUnavailable
from streamer.config import Config
from streamer.frames import Frame, InvalidFrame
from streamer.metrics import PipelineMetrics
from streamer.pipeline.slots import POLL_S, FrameSlot
from streamer.ratelimit import RateLimitedLog

log = logging.getLogger(__name__)


@dataclass
class Accounting:
    """Frame counters, mirrored into the Prometheus counter as they change."""

    metrics: PipelineMetrics
    counts: dict = field(default_factory=lambda: dict.fromkeys(
        ("captured", "processed", "dropped", "invalid"), 0))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, outcome: str, n: int = 1) -> None:
        with self.lock:
            self.counts[outcome] += n
        self.metrics.count(outcome, n)

    def snapshot(self) -> dict:
        with self.lock:
            return dict(self.counts)

    def balanced(self) -> bool:
        c = self.snapshot()
        return c["captured"] == c["processed"] + c["dropped"] + c["invalid"]


@dataclass
class Run:
    """What the stage workers share: the config, the counters and the stop event."""

    config: Config
    accounting: Accounting
    stop: threading.Event = field(default_factory=threading.Event)
    invalid_log: RateLimitedLog = field(default_factory=lambda: RateLimitedLog(logger=log))

    def count_invalid(self, exc: Exception) -> None:
        self.accounting.add("invalid")
        self.invalid_log(logging.WARNING, "invalid frame: %s", exc)

    def guarded(self, frame: Frame, step, *args):
        """step(*args or frame); a frame it fails on is counted and the pipeline goes on."""
        try:
            return step(*(args or (frame,)))
        except Exception as exc:
            self.failed(frame, exc)
        return None

    def failed(self, frame: Frame, exc: Exception) -> None:
        if isinstance(exc, InvalidFrame):
            self.count_invalid(exc)
            return
        if isinstance(exc, BackendUnavailable):  # a remote engine that is down: like a lost source
            self.accounting.add("dropped")
            self.invalid_log(logging.WARNING, "frame %s dropped: %s", frame.seq, exc)
            return
        self.accounting.add("invalid")  # a frame the model cannot take: count it, keep going
        self.invalid_log(logging.ERROR, "frame %s failed in processing: %s", frame.seq, exc,
                         exc_info=exc)

    def put(self, slot: FrameSlot, item, downstream_done: threading.Event) -> None:
        """Into the slot (an evicted frame is dropped); at stop, a frame that never got in too."""
        while True:
            accepted, evicted = slot.put(item, POLL_S)
            if evicted is not None:
                self.accounting.add("dropped")
            if accepted:
                return
            if self.stop.is_set() or downstream_done.is_set():  # never processed
                self.accounting.add("dropped")
                return

    def enough_frames(self) -> bool:
        """With max_frames: stop grabbing once that many frames are on their way to inference."""
        limit = self.config.pipeline.max_frames
        if not limit:
            return False
        c = self.accounting.snapshot()
        return c["captured"] - c["dropped"] - c["invalid"] >= limit
