"""The fan-search thread: one for every stream of a pipeline, running each stream's searches
(find the fan, fit its sector, confirm the fitted arc) off the served frames, within a share of
one core.

Each stream's requests wait in a slot of their own where the latest wins (an older request not
yet started is merged into it); the thread serves the streams in turn, a stream at most once
every MIN_SEARCH_GAP_S (a feed faster than 30 fps asks for a look every few frames), and rests
after each search so that searches take at most ``share`` of one core: a search costs ~5 ms of
CPU at 1080p, so many streams, or one saturated stream, would otherwise spend a core looking.
With many streams each one's background looks come less often; a layout change is still seen at
once by the hot path's edge watch, which asks for a look itself."""

from __future__ import annotations

import logging
import threading
import time

from streamer.pipeline.slots import POLL_S, FrameSlot
from streamer.pipeline.stream_log import mark
from streamer.preprocess import Preprocessor

log = logging.getLogger(__name__)

MIN_SEARCH_GAP_S = 1 / 30
"""A stream's search starts at least this long after its last one started."""


class FanSearch:
    """One stream's searches: its preprocessor, its pending request and its count."""

    def __init__(self, preprocessor: Preprocessor, cond: threading.Condition,
                 stream: str | None = None):
        self.preprocessor, self.stream = preprocessor, stream
        self.slot = FrameSlot(1, lossless=False, cond=cond)
        self.searches = 0
        self.last_start = float("-inf")

    def request(self, image, detect: bool, fit: bool) -> None:
        evicted = self.slot.put((image, detect, fit), 0)[1]
        if evicted is not None and evicted[1] and not detect:  # keep a pending detection
            self.slot.drain()
            self.slot.put((image, True, fit), 0)

    def __len__(self) -> int:
        return len(self.slot)


class FanSearches:
    """The thread serving every stream's :class:`FanSearch`, in turn, within ``share`` of a core."""

    def __init__(self, stop: threading.Event, share: float = 1.0, cpu_clock=time.thread_time):
        self._stop, self.share, self._cpu_clock = stop, share, cpu_clock
        self._cond = threading.Condition()
        self.searches: list[FanSearch] = []
        self._next = 0
        self.busy_s = 0.0  # CPU time spent searching
        self._thread: threading.Thread | None = None

    def add(self, preprocessor: Preprocessor, stream: str | None = None) -> FanSearch:
        search = FanSearch(preprocessor, self._cond, stream)
        self.searches.append(search)
        return search

    def start(self) -> FanSearches:
        for search in self.searches:
            search.preprocessor.request_search = search.request
        self._thread = threading.Thread(target=self._loop, name="streamer-fan-search", daemon=True)
        self._thread.start()
        return self

    def _take(self):
        """The next stream (in turn) with a request whose gap has passed, and its request; None
        after POLL_S (or sooner, when the next gap ends) without one."""
        with self._cond:
            deadline = time.monotonic() + POLL_S
            while not self._stop.is_set():
                now, n = time.monotonic(), len(self.searches)
                soonest = deadline
                for k in range(n):
                    search = self.searches[(self._next + k) % n]
                    if not len(search.slot):
                        continue
                    ready = search.last_start + MIN_SEARCH_GAP_S
                    if ready <= now:
                        self._next = (self._next + k + 1) % n
                        return search, search.slot.pop_locked()
                    soonest = min(soonest, ready)
                if now >= deadline:
                    return None
                self._cond.wait(max(0.0, soonest - now))
        return None

    def _loop(self) -> None:
        while not self._stop.is_set():
            taken = self._take()
            if taken is None:
                continue
            search, item = taken
            mark(search.stream)
            search.last_start = time.monotonic()
            started = self._cpu_clock()
            try:
                search.preprocessor.search(*item)
                search.searches += 1
            except Exception as exc:  # a search that fails leaves the geometry as it was
                log.warning("fan search failed: %s", exc)
            took = self._cpu_clock() - started  # CPU time: a loaded machine's waits are not cost
            self.busy_s += took
            mark(None)
            if self.share < 1.0:  # rest so that searching takes at most `share` of a core
                self.rest(took * (1.0 / self.share - 1.0))

    def rest(self, seconds: float) -> None:
        self._stop.wait(seconds)

    def join(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout)
