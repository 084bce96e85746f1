"""The simulated scanner (engines.simulator.LiveFeed): paced at fps, or lossless as fast as possible."""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass

from streamer.errors import UserError
from streamer.frames import Frame, SourceEnded
from streamer.sources.base import Pacer, Source


@dataclass(frozen=True)
class SimOptions:
    seed: int = 0
    fps: float = 30.0
    width: int = 1920
    height: int = 1080
    style: str = "classic"  # or heldout: a sweep drawn in the held-out look
    realtime: bool = True  # paced at fps and live; False: as fast as possible, lossless
    frames: int = 0  # stop (SourceEnded) after this many; 0: never
    replay: int = 0  # render this many frames once at open and loop them (benchmarks); 0: render live

    def __post_init__(self):
        if self.fps <= 0 or self.width < 16 or self.height < 16 or self.frames < 0 or self.replay < 0:
            raise UserError("sim needs fps > 0, width and height ≥ 16, frames ≥ 0, replay ≥ 0")
        from engines.simulator.feed import LIVE_STYLES  # only when the simulator is chosen

        if self.style not in LIVE_STYLES:
            raise UserError(f"sim style must be one of {', '.join(LIVE_STYLES)}, got {self.style!r} "
                            "(train and scatter draw independent frames, for training and eval)")


class SimSource(Source):
    kind = "sim"
    Options = SimOptions

    def __init__(self, spec_options: dict | None = None, **options):
        super().__init__(spec_options, **options)
        self.live = self.options.realtime
        self._feed = None
        self._pacer: Pacer | None = None
        self._seq = 0

    @property
    def frame_size(self) -> tuple[int, int]:
        """(width, height) of every frame, known before the first (a configured roi must fit)."""
        return self.options.width, self.options.height

    def _open(self) -> None:
        simulator = importlib.import_module("engines.simulator")  # lazy: only when chosen

        o = self.options
        self._feed = simulator.LiveFeed(seed=o.seed, fps=o.fps, width=o.width, height=o.height,
                                        style=o.style)
        if o.replay:
            self._feed = simulator.ReplayFeed(self._feed, o.replay)
        self._pacer = Pacer(o.fps) if o.realtime else None
        self._seq = 0

    def _read(self, timeout: float) -> Frame | None:
        if self.options.frames and self._seq >= self.options.frames:
            raise SourceEnded(f"sim source ended after {self._seq} frames")
        if self._pacer is not None and not self._pacer.wait(timeout):
            return None
        t_due = time.monotonic_ns()
        screen = self._feed.next()
        frame = Frame(seq=self._seq, image=screen.image, t_capture_ns=time.monotonic_ns(),
                      t_source_ns=t_due)
        self._seq += 1
        return frame

    def _close(self) -> None:
        self._feed = None
