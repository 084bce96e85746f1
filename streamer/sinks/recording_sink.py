"""An optional recording: one JSON line per result (the ``det`` message plus its topic).

``publish`` only queues the line; a writer thread of its own writes it, so a slow, stalled or
full destination (a FIFO whose reader stopped, a full disk) never holds up the pipeline. A result
that cannot be recorded is lost, never silently: counted per result in ``lost`` (by reason, and
through ``on_lost`` in ``streamer_record_lost_total``) and logged, rate-limited. Reasons: ``behind``
(the destination did not take lines as fast as they came: the queue was full, or lines were still
waiting ``close_timeout`` after the run stopped) and ``error`` (a write failed: ENOSPC, EPIPE, EIO).
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import queue
import select
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from streamer.frames import FrameResult
from streamer.pipeline.slots import POLL_S
from streamer.protocol import VERSION, result_dict
from streamer.ratelimit import RateLimitedLog
from streamer.sinks.base import Sink

REASONS = ("behind", "error")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecordingOptions:
    path: str
    status: bool = False  # also record status messages (lines with "topic": "status.<stream>")
    queue: int = 1024  # lines waiting for the writer; a result that finds the queue full is lost
    close_timeout: float = 2.0  # at close, how long the writer may take for the lines waiting

    def __post_init__(self):
        parent = Path(self.path).parent
        if not parent.is_dir():
            raise ValueError(f"recording directory does not exist: {parent}")
        if self.queue < 1 or self.close_timeout < 0:
            raise ValueError("record queue must be ≥ 1 and close_timeout ≥ 0")


def open_for_append(path: str) -> int:
    """A descriptor that never blocks on a FIFO or device (O_NONBLOCK; a regular file ignores
    it); a FIFO nobody reads is refused at once rather than waited for."""
    try:
        return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK | os.O_CLOEXEC,
                       0o666)
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            raise ValueError(f"nothing reads the FIFO {path}: start its reader first") from None
        raise


class RecordingSink(Sink):
    """Appends to the file from its own thread; a result it cannot write is counted, not waited for."""

    kind = "record"
    Options = RecordingOptions

    def __init__(self, spec_options: dict | None = None, **options):
        super().__init__(spec_options, **options)
        self._fd: int | None = None
        self._regular = True
        self._queue: queue.Queue = queue.Queue(self.options.queue)
        self._thread: threading.Thread | None = None
        self._closing = threading.Event()
        self._deadline = 0.0
        self._lock = threading.Lock()
        self._log = RateLimitedLog(logger=log)
        self._stream = "default"
        self.recorded = 0  # results written whole
        self.lost = dict.fromkeys(REASONS, 0)  # results not recorded, by reason
        self.status_lost = 0  # status lines not recorded (status=1)
        self.first_loss = ""  # the first lost result and why, for a one-line error
        self.on_lost: Callable[[str, int], None] | None = None  # (reason, results), any thread

    @property
    def lost_total(self) -> int:
        return sum(self.lost.values())

    def _open(self) -> None:
        self._fd = open_for_append(self.options.path)
        self._regular = stat.S_ISREG(os.fstat(self._fd).st_mode)
        self._closing.clear()
        self._thread = threading.Thread(target=self._write_loop, name="streamer-record", daemon=True)
        self._thread.start()

    def _publish(self, result: FrameResult) -> None:
        self._stream = result.stream
        self._enqueue(result.seq, {"topic": f"det.{result.stream}", **result_dict(result)})

    def _publish_status(self, status: dict) -> None:
        if self.options.status:
            stream = status.get("stream", self._stream)
            self._enqueue(None, {"topic": f"status.{stream}", "v": VERSION, "stream": stream, **status})

    def _enqueue(self, seq: int | None, obj: dict) -> None:
        line = (json.dumps(obj, separators=(",", ":")) + "\n").encode()
        try:
            self._queue.put_nowait((seq, line))
        except queue.Full:
            self._lose(seq, "behind", f"{self.options.queue} lines already wait for the writer")

    def _lose(self, seq: int | None, reason: str, why: str) -> None:
        with self._lock:
            if seq is None:
                self.status_lost += 1
            else:
                self.lost[reason] += 1
                self.first_loss = self.first_loss or f"result seq {seq} ({why})"
        what = "status line" if seq is None else f"result seq {seq}"
        self._log(logging.ERROR, "record %s: %s not recorded: %s", self.options.path, what, why)
        if seq is not None and self.on_lost is not None:
            self.on_lost(reason, 1)

    # -- writer thread --------------------------------------------------------------------
    def _write_loop(self) -> None:
        while True:
            try:
                seq, line = self._queue.get(timeout=POLL_S)
            except queue.Empty:
                if self._closing.is_set():
                    return
                continue
            try:
                failure = self._write(line)
            except Exception as exc:  # a bug must not end the writer: this line is lost
                failure = ("error", f"{type(exc).__name__}: {exc}")
            if failure is None:
                if seq is not None:
                    self.recorded += 1
            else:
                self._lose(seq, *failure)

    def _write(self, data: bytes) -> tuple[str, str] | None:
        """Write the whole line, or (reason, why) it is lost (any part of it written taken back)."""
        done, view = 0, memoryview(data)
        while done < len(data):
            try:
                done += os.write(self._fd, view[done:])
            except BlockingIOError:  # a pipe or FIFO that is full: wait for its reader
                if not self._writable():
                    return self._cut(done, "behind", "the reader took nothing before the stop")
            except OSError as exc:
                return self._cut(done, "error", exc.strerror or str(exc))
        return None

    def _writable(self) -> bool:
        """Wait until the descriptor takes more; False once closing has waited its timeout."""
        poller = select.poll()
        poller.register(self._fd, select.POLLOUT)
        while not (self._closing.is_set() and time.monotonic() > self._deadline):
            if poller.poll(POLL_S * 1000):
                return True
        return False

    def _cut(self, done: int, reason: str, why: str) -> tuple[str, str]:
        if done and self._regular:  # no half line in the file (a full disk writes what fits)
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, os.fstat(self._fd).st_size - done)
        return reason, why

    def _close(self) -> None:
        self._deadline = time.monotonic() + self.options.close_timeout
        self._closing.set()
        self._thread.join(self.options.close_timeout + 1.0)
        while True:  # what the writer could not reach in time is lost
            try:
                seq, _ = self._queue.get_nowait()
            except queue.Empty:
                break
            self._lose(seq, "behind", f"still waiting {self.options.close_timeout:g} s after the stop")
        if self._thread.is_alive():
            log.error("record %s: the writer is still blocked in a write", self.options.path)
            return
        os.close(self._fd)
        self._fd = None

    def describe(self) -> dict:
        return {**super().describe(), "recorded": self.recorded, "lost": dict(self.lost),
                "status_lost": self.status_lost}
