"""Preprocessing off the source thread (fan crop, grey, resample; stamped); the fan is searched
for off the served frames by the fan-search thread (``fan_search.py``)."""

from __future__ import annotations

import logging
import threading
import time

from streamer.frames import Frame, Timing
from streamer.pipeline.accounting import Run
from streamer.pipeline.slots import POLL_S, FrameSlot
from streamer.preprocess import Preprocessor

log = logging.getLogger(__name__)


class PreprocessWorker:
    """Frames → (frame, Prepared, Timing) into the prepared slot: on its own thread between two
    slots, or called from the source thread (``[pipeline] preprocess_in_source``)."""

    def __init__(self, run: Run, preprocessor: Preprocessor, frames: FrameSlot | None,
                 prepared: FrameSlot, upstream_done: threading.Event,
                 downstream_done: threading.Event, done: threading.Event):
        self.run, self.preprocessor = run, preprocessor
        self.frames, self.prepared = frames, prepared
        self.upstream_done, self.downstream_done, self.done = upstream_done, downstream_done, done

    def prepare(self, frame: Frame):
        timing = Timing(capture=frame.t_capture_ns, preprocess_start=time.monotonic_ns())
        prepared = self.preprocessor.process(frame)
        timing.preprocess_end = time.monotonic_ns()
        return frame, prepared, timing

    def hand_on(self, frame: Frame) -> None:
        """The source thread's hand-off: into the input slot, or preprocessed here."""
        if self.frames is not None:
            self.run.put(self.frames, frame, self.done)
            return
        self._prepare_and_put(frame)

    def _prepare_and_put(self, frame: Frame) -> None:
        item = self.run.guarded(frame, self.prepare)
        if item is not None:
            self.run.put(self.prepared, item, self.downstream_done)

    def loop(self) -> None:
        """The preprocess thread (unless ``preprocess_in_source``)."""
        try:
            while not self.run.stop.is_set():
                frame = self.frames.get(POLL_S)
                if frame is not None:
                    self._prepare_and_put(frame)
                elif self.upstream_done.is_set() and not len(self.frames):
                    break
        finally:
            self.done.set()
