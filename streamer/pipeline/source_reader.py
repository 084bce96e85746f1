"""The source thread: read frames, count them, hand them on; a lost live source is reopened with
exponential backoff, a file that ends or fails ends the stream."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from streamer.frames import InvalidFrame, SourceEnded, SourceLost
from streamer.metrics import PipelineMetrics
from streamer.pipeline.accounting import Run

log = logging.getLogger(__name__)


@dataclass
class SourceState:
    state: str = "connecting"  # connecting | up (a frame came) | lost | ended | incomplete | failed
    retries: int = 0
    retry_in_s: float = 0.0
    error: str = ""


class SourceReader:
    """Owns the source: its loop, its state (``status.source``) and the frames it counts."""

    def __init__(self, run: Run, source, metrics: PipelineMetrics, hand_on,
                 done: threading.Event):
        self.run, self.source, self.metrics, self.hand_on = run, source, metrics, hand_on
        self.state = SourceState()
        self.done = done
        self._open = False
        self._bugs: set[type] = set()
        self._drops_seen = 0

    @property
    def kind(self) -> str:
        return getattr(self.source, "kind", "?")

    def status(self) -> dict:
        s = self.state
        return {"state": s.state, "kind": self.kind,
                "live": bool(getattr(self.source, "live", True)), "retries": s.retries,
                "retry_in_s": round(s.retry_in_s, 3), "error": s.error,
                "dropped": getattr(self.source, "dropped", 0)}  # skipped by the source

    def open(self, first: bool = False) -> bool:
        """Open (or reopen) the source. The first open failing is an error for the caller; later
        failures back off. The source counts as up only once a frame arrives (_up)."""
        try:
            self.source.open()
        except Exception as exc:
            if first:  # a file or device that is not there at start: one line, exit 2
                raise
            self._lost(exc if isinstance(exc, SourceLost) else SourceLost(f"reopen failed: {exc}"))
            return False
        self._open = True
        return True

    def loop(self) -> None:
        run = self.run
        try:
            while not run.stop.is_set() and not run.enough_frames():
                if not self._open:
                    if run.stop.wait(self.state.retry_in_s) or not self.open():
                        continue
                if not self._read_one():
                    break
        except Exception as exc:  # a bug outside read(): end the stream, and say so at exit
            log.exception("source thread failed: %s", exc)
            self.state.state, self.state.error = "failed", str(exc)
        finally:
            self._close()
            self.done.set()

    def _up(self) -> None:
        if self.state.state != "up":
            log.info("source %s is up", self.kind)
            self.state = SourceState("up", self.state.retries)
            self.metrics.set_source_up(True)

    def _lost(self, exc: Exception) -> None:
        """Down until a frame arrives again; the wait before each reopen doubles up to the max."""
        s, cfg = self.state, self.run.config.source
        first = s.state != "lost"
        delay = cfg.retry_initial_s if first else min(2 * s.retry_in_s, cfg.retry_max_s)
        self.state = SourceState("lost", s.retries + (not first), delay, str(exc))
        self.metrics.set_source_up(False)
        if first:  # one line per state change; the retries themselves log at debug level
            log.warning("source lost (%s); reconnecting with backoff from %.1f s up to %.1f s",
                        exc, delay, cfg.retry_max_s)
        else:
            log.debug("source still lost (%s); next try in %.1f s", exc, delay)

    def _read_one(self) -> bool:
        """Read and hand on one frame; False when the source has ended (or failed, not live)."""
        accounting = self.run.accounting
        try:
            frame = self.source.read(self.run.config.source.read_timeout_s)
            self._count_source_drops()
        except InvalidFrame as exc:
            self._count_source_drops()
            accounting.add("captured")
            self.run.count_invalid(exc)
            return True
        except SourceLost as exc:
            self._close()
            self._lost(exc)
            return True
        except SourceEnded as exc:
            self._ended(exc)
            return False
        except Exception as exc:  # a bug in the source: counted, logged, the source reopened
            return self._failed(exc)
        if frame is not None:
            accounting.add("captured")
            self._up()
            self.hand_on(frame)
        return True

    def _ended(self, exc: SourceEnded) -> None:
        if getattr(exc, "complete", True):
            self.state.state = "ended"
            log.info("source ended: %s", exc)
        else:
            self.state.state, self.state.error = "incomplete", str(exc)
            log.error("source ended early: %s", exc)

    def _failed(self, exc: Exception) -> bool:
        self._count_source_drops()
        self.run.accounting.add("captured")
        self.run.accounting.add("invalid")
        first = type(exc) not in self._bugs
        self._bugs.add(type(exc))
        if first:
            log.error("source %s failed reading a frame: %s", self.kind, exc, exc_info=exc)
        else:
            self.run.invalid_log(logging.ERROR, "source failed again: %r", exc)
        self._close()
        if not getattr(self.source, "live", True):  # a file cannot resume where it was
            self.state.state, self.state.error = "failed", f"{type(exc).__name__}: {exc}"
            return False
        self._lost(SourceLost(f"source failed: {type(exc).__name__}: {exc}"))
        return True

    def _count_source_drops(self) -> None:
        """Frames a live source skipped itself (stale ZMQ messages it drained) are captured and dropped."""
        total = getattr(self.source, "dropped", 0)
        new, self._drops_seen = total - self._drops_seen, total
        if new > 0:
            self.run.accounting.add("captured", new)
            self.run.accounting.add("dropped", new)

    def _close(self) -> None:
        self._open = False
        try:
            self.source.close()
        except Exception as exc:
            log.warning("error closing the source: %s", exc)
