"""The exam as a checklist, live: which regions have been seen this exam, for how long, when last.

A result's time is the source time to the next result per seq step (a result lost on the way is
not time seen; capped at MAX_STEP_S, so a pause never counts as seen); it counts as seen for a region that is present on a familiar
(or unscored) image that is not frozen. ``streamer report`` sums a record the same way. A new
exam starts when told (an exam id at start, the control message, :meth:`ExamCoverage.new_exam`)
or when the fan comes back after NO_FAN_S seconds without one (the probe was put down).
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass

from streamer.errors import UserError

MAX_STEP_S = 1.0  # the longest one result may stand for (a pause, a gap, a stalled source)
NO_FAN_S = 120.0  # this long with no fan in view, and the next fan starts a new exam


@dataclass
class Seen:
    seconds: float = 0.0
    first_s: float | None = None  # exam time when first and last seen
    last_s: float | None = None
    results: int = 0

    def to_dict(self) -> dict:
        r = lambda v: None if v is None else round(v, 3)  # noqa: E731
        return {"seconds": round(self.seconds, 3), "first_s": r(self.first_s),
                "last_s": r(self.last_s), "results": self.results}


EXAM_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # it names a folder: never a path


def check_exam_id(exam: str | None) -> str | None:
    """An exam id given by a person or a request (None or empty: none given)."""
    if exam and not EXAM_ID.fullmatch(exam):
        raise UserError(f"exam id {exam[:80]!r} must be 1-64 letters, digits, '.', '_' or '-', "
                        "starting with a letter or digit (it names a folder)")
    return exam


def exam_id(now: float | None = None) -> str:
    """An exam named by its start (UTC), when nobody named it: 20261204T235900Z."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))


class ExamCoverage:
    """Fed every result in the inference thread (O(classes) work); read by the status message."""

    def __init__(self, classes, exam: str | None = None, no_fan_s: float = NO_FAN_S,
                 on_seen=None, wall=time.time):
        self.classes, self.no_fan_s, self.on_seen, self._wall = tuple(classes), no_fan_s, on_seen, wall
        self._lock = threading.Lock()
        self._pending: str | None = None  # an exam id told from another thread
        self._start(exam, "start")

    def _start(self, exam: str | None, reason: str) -> None:
        self.exam, self.reason, self.exams = exam or exam_id(self._wall()), reason, getattr(
            self, "exams", 0) + 1
        self.seen = {name: Seen() for name in self.classes}
        self._t0_ns: int | None = None  # source time of the exam's first result
        self._last_ns: int | None = None
        self._last_seq = 0
        self._last_present: tuple[str, ...] = ()
        self._last_fan_ns: int | None = None

    def new_exam(self, exam: str | None = None) -> str:
        """Start a new exam at the next result (thread-safe: the control socket calls this)."""
        name = exam or exam_id(self._wall())
        with self._lock:
            self._pending = name
        return name

    def update(self, result) -> str:
        """Count ``result`` and return the exam it belongs to."""
        with self._lock:
            pending, self._pending = self._pending, None
        if pending is not None:
            self._start(pending, "told")
        t = int(result.t_source_ns if result.t_source_ns is not None else result.timing.capture)
        self._watch_fan(result, t)
        if self._t0_ns is None:
            self._t0_ns = t
        steps = result.seq - self._last_seq
        if self._last_ns is not None and t > self._last_ns and steps > 0:
            self._credit(min((t - self._last_ns) / steps / 1e9, MAX_STEP_S))
        self._last_ns, self._last_seq = max(t, self._last_ns or t), result.seq
        trusted = result.familiar is not False and not result.frozen
        self._last_present = tuple(c.name for c in result.classes if c.present) if trusted else ()
        now_s = (t - self._t0_ns) / 1e9
        for name in self._last_present:
            s = self.seen.get(name)
            if s is not None:
                s.first_s = now_s if s.first_s is None else s.first_s
                s.last_s, s.results = now_s, s.results + 1
        return self.exam

    def _watch_fan(self, result, t: int) -> None:
        """No fan for no_fan_s, then a fan: the probe was put down and picked up, a new exam."""
        has_fan = result.fan is None or result.fan.mode != "full"
        if not has_fan:
            return
        gone = self._last_fan_ns is not None and (t - self._last_fan_ns) / 1e9 >= self.no_fan_s
        self._last_fan_ns = t
        if gone:
            self._start(None, f"no fan for {self.no_fan_s:g} s")
            self._last_fan_ns = t

    def _credit(self, seconds: float) -> None:
        """The previous result's time goes to the regions it showed."""
        for name in self._last_present:
            s = self.seen.get(name)
            if s is not None:
                s.seconds += seconds
                if self.on_seen is not None:
                    self.on_seen(name, seconds)

    def status(self) -> dict:
        elapsed = 0.0 if self._t0_ns is None else (self._last_ns - self._t0_ns) / 1e9
        return {"id": self.exam, "started_by": self.reason, "seconds": round(elapsed, 3),
                "regions": {name: s.to_dict() for name, s in self.seen.items()}}
