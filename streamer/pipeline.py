"""The running pipeline: three frame threads, a fan-search thread and the queues between them
(all threading lives here).

    source ──input queue──▶ preprocess ──prepared queue──▶ inference ────────────▶ sinks
    (grab,   (live: latest   (fan crop,    (lossless;       (micro-batch of what   (in the same
     count)   frame wins,     grey,         holds a batch)   is waiting, up to      thread: no
              dropped; non-   resample)                      max_batch; infer,      hop)
              live: lossless)     └─▶ fan search (own thread, latest request wins)  postprocess)

Preprocessing overlaps inference of the frame before (OpenCV and ONNX Runtime release the GIL).
``[pipeline] preprocess_in_source = true`` preprocesses in the source thread instead, one hop
fewer, but a source that works hard itself (decoding, rendering) then delays it; `streamer bench
--preprocess-in-source` compares the two. Postprocessing and publishing run in the inference
thread (no hop). The fan is found and the sector fitted on a thread of their own, off the served
frames; the next frames use what a search found. When frames queue up (saturation) the inference
thread takes whatever is waiting, up to ``max_batch``, as one batch; at a live frame rate one
frame waits at most, so latency mode is batch 1.

Every frame carries a stamp at each hand-off (``streamer.frames.Timing``), so the stage
latencies add up to capture→publish. Stages (Preprocessor, InferenceStage, Postprocessor,
PublishStage) know nothing of threads; :func:`build_pipeline` wires them. Every loop watches the
stop event and waits with timeouts. At shutdown ``captured == processed + dropped + invalid``
holds exactly: frames still waiting for inference when the pipeline stops are counted as
dropped, and every processed frame is published.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from engines.backends.base import BackendUnavailable
from engines.ood import load as load_ood
from streamer.config import Config
from streamer.frames import Frame, FrameResult, InvalidFrame, SourceEnded, SourceLost, Timing
from streamer.metrics import LatencyRecord, PipelineMetrics
from streamer.postprocess import Postprocessor
from streamer.preprocess import Prepared, Preprocessor

log = logging.getLogger(__name__)
POLL_S = 0.05  # the longest any loop waits before looking at the stop event again


class RateLimitedLog:
    """Logs at most once per ``interval`` seconds, saying how many messages it held back."""

    def __init__(self, interval: float = 5.0, logger: logging.Logger | None = None):
        self.interval, self._last, self._held = interval, -1e9, 0
        self._log = logger or log  # the caller's logger, so its lines carry the caller's name

    def __call__(self, level: int, msg: str, *args, exc_info=False) -> None:
        now = time.monotonic()
        if now - self._last < self.interval:
            self._held += 1
            return
        held, self._held, self._last = self._held, 0, now
        log.log(level, msg + (f" (+{held} similar)" if held else ""), *args, exc_info=exc_info)


class FrameSlot:
    """A bounded hand-over between two threads. ``lossless``: a full slot makes the writer wait;
    otherwise (latest-frame policy) a put into a full slot evicts and returns the oldest item."""

    def __init__(self, capacity: int, lossless: bool):
        self.capacity, self.lossless = capacity, lossless
        self._items: deque = deque()
        self._cond = threading.Condition()

    def put(self, item, timeout: float) -> tuple[bool, object | None]:
        """(accepted, evicted item or None); a lossless slot may refuse after ``timeout``."""
        with self._cond:
            evicted = None
            if len(self._items) >= self.capacity:
                if self.lossless:
                    if not self._cond.wait_for(lambda: len(self._items) < self.capacity, timeout):
                        return False, None
                else:
                    evicted = self._items.popleft()
            self._items.append(item)
            self._cond.notify_all()
            return True, evicted

    def get(self, timeout: float):
        with self._cond:
            if not self._cond.wait_for(lambda: self._items, timeout):
                return None
            item = self._items.popleft()
            self._cond.notify_all()
            return item

    def get_many(self, most: int, timeout: float) -> list:
        """Whatever is waiting, up to ``most`` items, oldest first; waits for the first."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._items, timeout):
                return []
            items = [self._items.popleft() for _ in range(min(most, len(self._items)))]
            self._cond.notify_all()
            return items

    def drain(self) -> list:
        with self._cond:
            items, self._items = list(self._items), deque()
            self._cond.notify_all()
            return items

    def __len__(self) -> int:
        return len(self._items)


class InferenceStage:
    """Stage: Prepared tensors → Inference (one backend object, one call per batch)."""

    def __init__(self, backend):
        self.backend = backend

    def process(self, prepared: Prepared | list[Prepared]):
        if isinstance(prepared, Prepared):
            return self.backend.infer(prepared.tensor)
        if len(prepared) == 1:
            return self.backend.infer(prepared[0].tensor)
        return self.backend.infer(np.concatenate([p.tensor for p in prepared]))


class PublishStage:
    """Stage: a finished FrameResult → every sink, the metrics and the latency record."""

    def __init__(self, sinks: list, metrics: PipelineMetrics, latency: LatencyRecord):
        self.sinks, self.metrics, self.latency = sinks, metrics, latency
        self._errors = RateLimitedLog()

    def process(self, result: FrameResult) -> None:
        result.timing.publish = time.monotonic_ns()
        for sink in self.sinks:
            try:
                sink.publish(result)
            except Exception as exc:
                self._errors(logging.ERROR, "sink %s failed to publish: %s", type(sink).__name__, exc)
        self.metrics.observe(result.timing)
        if result.familiar is False:
            self.metrics.count_ood()
        self.latency.add(result.timing)

    def status(self, status: dict) -> None:
        for sink in self.sinks:
            try:
                sink.publish_status(status)
            except Exception as exc:
                self._errors(logging.ERROR, "sink %s failed to publish status: %s",
                             type(sink).__name__, exc)


@dataclass
class Stages:
    preprocess: Preprocessor
    infer: InferenceStage
    postprocess: Postprocessor
    publish: PublishStage


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
class SourceState:
    state: str = "connecting"  # connecting | up (a frame came) | lost | ended | incomplete | failed
    retries: int = 0
    retry_in_s: float = 0.0
    error: str = ""


class FanSearch:
    """The fan-search thread: runs the preprocessor's searches off the hot path, the latest
    request first (an older one not yet started is merged into it)."""

    def __init__(self, preprocessor: Preprocessor, stop: threading.Event):
        self.preprocessor, self._stop = preprocessor, stop
        self._slot = FrameSlot(1, lossless=False)
        self.searches = 0
        self._thread: threading.Thread | None = None

    def request(self, image, detect: bool, fit: bool) -> None:
        evicted = self._slot.put((image, detect, fit), 0)[1]
        if evicted is not None and evicted[1] and not detect:  # keep a pending detection
            self._slot.drain()
            self._slot.put((image, True, fit), 0)

    def start(self) -> FanSearch:
        self.preprocessor.request_search = self.request
        self._thread = threading.Thread(target=self._loop, name="streamer-fan-search", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.is_set():
            item = self._slot.get(POLL_S)
            if item is None:
                continue
            try:
                self.preprocessor.search(*item)
                self.searches += 1
            except Exception as exc:  # a search that fails leaves the geometry as it was
                log.warning("fan search failed: %s", exc)

    def join(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def __len__(self) -> int:
        return len(self._slot)


class Pipeline:
    """Owns the threads; build it with :func:`build_pipeline`, then start/stop/wait/close."""

    def __init__(self, config: Config, source, backend, stages: Stages, metrics: PipelineMetrics):
        self.config, self.source, self.backend = config, source, backend
        self.stages, self.metrics = stages, metrics
        self.stream = config.publish.stream
        self.latency = stages.publish.latency
        self.accounting = Accounting(metrics)
        live = bool(getattr(source, "live", True))
        self.max_batch = 1 if live else config.pipeline.max_batch
        self.inline_preprocess = config.pipeline.preprocess_in_source
        queue = 1 if live else config.pipeline.queue_size
        if self.inline_preprocess:
            self.frames = None
            self.prepared = FrameSlot(queue, lossless=not live)
        else:  # a preprocess thread of its own between two queues
            self.frames = FrameSlot(queue, lossless=not live)
            self.prepared = FrameSlot(1 if live else max(queue, self.max_batch), lossless=True)
        self.source_state = SourceState()
        self._source_open = False
        self._source_bugs: set[type] = set()
        self._source_drops_seen = 0
        self._stop = threading.Event()
        self._source_done = threading.Event()
        self._preprocess_done = threading.Event()
        self._inference_done = threading.Event()
        self._threads: list[threading.Thread] = []
        self._fan_search = FanSearch(stages.preprocess, self._stop)
        self.batch_sizes: dict[int, int] = {}  # batch size → model calls (inference thread only)
        self._invalid_log = RateLimitedLog()
        self._started_at = 0.0
        self._fps = 0.0
        self._last_report = (0.0, 0)
        self._closed = False

    # -- control --------------------------------------------------------------------------
    def start(self) -> Pipeline:
        """Open the source (a live source that is not there yet is retried in the background)."""
        self._started_at = time.monotonic()
        self._last_report = (self._started_at, 0)
        self._open_source(first=True)
        self._fan_search.start()
        threads = [("source", self._source_loop), ("inference", self._inference_loop)]
        if not self.inline_preprocess:
            threads.insert(1, ("preprocess", self._preprocess_loop))
        for name, target in threads:
            thread = threading.Thread(target=target, name=f"streamer-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()

    def wait(self, timeout: float | None = None) -> bool:
        """True once every processed frame is published (the source ended or stop() was called)."""
        return self._inference_done.wait(timeout)

    def close(self) -> dict:
        """Stop, join the threads, settle the accounting, close sinks and backend; the counts."""
        if not self._closed:
            self._closed = True
            self.stop()
            deadline = time.monotonic() + self.config.pipeline.stop_timeout_s
            for thread in self._threads:
                thread.join(max(0.0, deadline - time.monotonic()))
            self._fan_search.join(max(0.0, deadline - time.monotonic()))
            stuck = [t.name for t in self._threads if t.is_alive()]
            if stuck:
                log.error("threads still running at shutdown: %s", ", ".join(stuck))
            self._settle()
            self.stages.publish.status(self.status(state="stopped"))
            for closer in [*(s.close for s in self.stages.publish.sinks), self.backend.close]:
                try:
                    closer()
                except Exception as exc:
                    log.warning("error while closing: %s", exc)
        return self.accounting.snapshot()

    def __enter__(self) -> Pipeline:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def _settle(self) -> None:
        leftover = self.prepared.drain() + (self.frames.drain() if self.frames else [])
        if leftover:
            self.accounting.add("dropped", len(leftover))
        if not self.accounting.balanced():
            log.error("frame accounting does not balance: %s", self.accounting.snapshot())

    # -- status ---------------------------------------------------------------------------
    def status(self, state: str | None = None) -> dict:
        counts = self.accounting.snapshot()
        src = self.source_state
        return {
            "stream": self.stream,
            "state": state or ("stopping" if self._stop.is_set() else "running"),
            "uptime_s": round(time.monotonic() - self._started_at, 3),
            "fps": round(self._fps, 2),
            **counts,
            "source": {"state": src.state, "kind": getattr(self.source, "kind", "?"),
                       "live": bool(getattr(self.source, "live", True)), "retries": src.retries,
                       "retry_in_s": round(src.retry_in_s, 3), "error": src.error,
                       "dropped": getattr(self.source, "dropped", 0)},  # skipped by the source
            "backend": self.backend.describe(),
            "latency_ms": {"p50": self.latency.recent_ms(50), "p99": self.latency.recent_ms(99)},
            "queues": {**({"input": len(self.frames)} if self.frames else {}),
                       "prepared": len(self.prepared), "fan_search": len(self._fan_search)},
            "fan_searches": self._fan_search.searches,
            **self.stages.preprocess.screen_status(),
        }

    # -- source thread --------------------------------------------------------------------
    def _open_source(self, first: bool = False) -> bool:
        """Open (or reopen) the source. The first open failing is an error for the caller; later
        failures back off. The source counts as up only once a frame arrives (_source_up)."""
        try:
            self.source.open()
        except Exception as exc:
            if first:  # a file or device that is not there at start: one line, exit 2
                raise
            self._source_lost(exc if isinstance(exc, SourceLost) else SourceLost(f"reopen failed: {exc}"))
            return False
        self._source_open = True
        return True

    def _source_up(self) -> None:
        if self.source_state.state != "up":
            log.info("source %s is up", getattr(self.source, "kind", "?"))
            self.source_state = SourceState("up", self.source_state.retries)
            self.metrics.set_source_up(True)

    def _source_lost(self, exc: Exception) -> None:
        """Down until a frame arrives again; the wait before each reopen doubles up to the max."""
        s = self.source_state
        first = s.state != "lost"
        delay = self.config.source.retry_initial_s if first else min(
            2 * s.retry_in_s, self.config.source.retry_max_s)
        self.source_state = SourceState("lost", s.retries + (not first), delay, str(exc))
        self.metrics.set_source_up(False)
        if first:  # one line per state change; the retries themselves log at debug level
            log.warning("source lost (%s); reconnecting with backoff from %.1f s up to %.1f s",
                        exc, delay, self.config.source.retry_max_s)
        else:
            log.debug("source still lost (%s); next try in %.1f s", exc, delay)

    def _source_loop(self) -> None:
        try:
            while not self._stop.is_set() and not self._enough_frames():
                if not self._source_open:
                    if self._stop.wait(self.source_state.retry_in_s) or not self._open_source():
                        continue
                if not self._read_one():
                    break
        except Exception as exc:  # a bug outside read(): end the stream, and say so at exit
            log.exception("source thread failed: %s", exc)
            self.source_state.state, self.source_state.error = "failed", str(exc)
        finally:
            self._close_source()
            self._source_done.set()

    def _read_one(self) -> bool:
        """Read and hand on one frame; False when the source has ended (or failed, not live)."""
        try:
            frame = self.source.read(self.config.source.read_timeout_s)
            self._count_source_drops()
        except InvalidFrame as exc:
            self._count_source_drops()
            self.accounting.add("captured")
            self._count_invalid(exc)
            return True
        except SourceLost as exc:
            self._close_source()
            self._source_lost(exc)
            return True
        except SourceEnded as exc:
            if getattr(exc, "complete", True):
                self.source_state.state = "ended"
                log.info("source ended: %s", exc)
            else:
                self.source_state.state, self.source_state.error = "incomplete", str(exc)
                log.error("source ended early: %s", exc)
            return False
        except Exception as exc:  # a bug in the source: counted, logged, the source reopened
            return self._source_failed(exc)
        if frame is not None:
            self.accounting.add("captured")
            self._source_up()
            self._hand_on(frame)
        return True

    def _source_failed(self, exc: Exception) -> bool:
        self._count_source_drops()
        self.accounting.add("captured")
        self.accounting.add("invalid")
        first = type(exc) not in self._source_bugs
        self._source_bugs.add(type(exc))
        if first:
            log.error("source %s failed reading a frame: %s", getattr(self.source, "kind", "?"),
                      exc, exc_info=exc)
        else:
            self._invalid_log(logging.ERROR, "source failed again: %r", exc)
        self._close_source()
        if not getattr(self.source, "live", True):  # a file cannot resume where it was
            self.source_state.state, self.source_state.error = "failed", f"{type(exc).__name__}: {exc}"
            return False
        self._source_lost(SourceLost(f"source failed: {type(exc).__name__}: {exc}"))
        return True

    def _count_source_drops(self) -> None:
        """Frames a live source skipped itself (stale ZMQ messages it drained) are captured and dropped."""
        total = getattr(self.source, "dropped", 0)
        new, self._source_drops_seen = total - self._source_drops_seen, total
        if new > 0:
            self.accounting.add("captured", new)
            self.accounting.add("dropped", new)

    def _hand_on(self, frame: Frame) -> None:
        """Preprocess in this thread and queue for inference, or queue for the preprocess thread."""
        if self.frames is not None:
            self._put(self.frames, frame, self._preprocess_done)
            return
        item = self._guarded(frame, self._preprocess)
        if item is not None:
            self._put(self.prepared, item, self._inference_done)

    def _put(self, slot: FrameSlot, item, downstream_done: threading.Event) -> None:
        """Into the slot (an evicted frame is dropped); at stop, a frame that never got in too."""
        while True:
            accepted, evicted = slot.put(item, POLL_S)
            if evicted is not None:
                self.accounting.add("dropped")
            if accepted:
                return
            if self._stop.is_set() or downstream_done.is_set():  # never processed
                self.accounting.add("dropped")
                return

    def _preprocess_loop(self) -> None:
        """The preprocess thread (unless ``preprocess_in_source``)."""
        try:
            while not self._stop.is_set():
                frame = self.frames.get(POLL_S)
                if frame is not None:
                    item = self._guarded(frame, self._preprocess)
                    if item is not None:
                        self._put(self.prepared, item, self._inference_done)
                elif self._source_done.is_set() and not len(self.frames):
                    break
        finally:
            self._preprocess_done.set()

    def _preprocess(self, frame: Frame):
        timing = Timing(capture=frame.t_capture_ns, preprocess_start=time.monotonic_ns())
        prepared = self.stages.preprocess.process(frame)
        timing.preprocess_end = time.monotonic_ns()
        return frame, prepared, timing

    def _enough_frames(self) -> bool:
        """With max_frames: stop grabbing once that many frames are on their way to inference."""
        limit = self.config.pipeline.max_frames
        if not limit:
            return False
        c = self.accounting.snapshot()
        return c["captured"] - c["dropped"] - c["invalid"] >= limit

    def _close_source(self) -> None:
        self._source_open = False
        try:
            self.source.close()
        except Exception as exc:
            log.warning("error closing the source: %s", exc)

    def _count_invalid(self, exc: Exception) -> None:
        self.accounting.add("invalid")
        self._invalid_log(logging.WARNING, "invalid frame: %s", exc)

    def _guarded(self, frame: Frame, step, *args):
        """step(*args or frame); a frame it fails on is counted invalid and the pipeline goes on."""
        try:
            return step(*(args or (frame,)))
        except Exception as exc:
            self._failed(frame, exc)
        return None

    def _failed(self, frame: Frame, exc: Exception) -> None:
        if isinstance(exc, InvalidFrame):
            self._count_invalid(exc)
            return
        if isinstance(exc, BackendUnavailable):  # a remote engine that is down: like a lost source
            self.accounting.add("dropped")
            self._invalid_log(logging.WARNING, "frame %s dropped: %s", frame.seq, exc)
            return
        self.accounting.add("invalid")  # a frame the model cannot take: count it, keep going
        self._invalid_log(logging.ERROR, "frame %s failed in processing: %s", frame.seq, exc,
                          exc_info=exc)

    # -- inference thread: infer, postprocess, publish ------------------------------------
    def _inference_loop(self) -> None:
        try:
            while not self._stop.is_set():
                items = self.prepared.get_many(self.max_batch, POLL_S)
                if items:
                    self._infer_batch(items)
                elif self._upstream_done().is_set() and not len(self.prepared):
                    break
                self._maybe_report()
        finally:
            self._inference_done.set()

    def _upstream_done(self) -> threading.Event:
        return self._source_done if self.frames is None else self._preprocess_done

    def _infer_batch(self, items: list) -> None:
        start = time.monotonic_ns()
        for _, _, timing in items:
            timing.inference_start = start
        try:
            out = self.stages.infer.process([prepared for _, prepared, _ in items])
        except Exception as exc:
            if len(items) == 1:
                self._failed(items[0][0], exc)
                return
            for item in items:  # which frame the model cannot take: one at a time
                self._infer_batch([item])
            return
        end = time.monotonic_ns()
        self.batch_sizes[len(items)] = self.batch_sizes.get(len(items), 0) + 1
        for i, (frame, prepared, timing) in enumerate(items):
            timing.inference_end = end
            features = None if out.features is None else out.features[i]
            result = self._guarded(frame, self._postprocess, frame, prepared, timing,
                                   out.scores[i], out.maps[i], features)
            if result is None:
                continue
            self.accounting.add("processed")
            try:
                self.stages.publish.process(result)
            except Exception as exc:  # the sinks guard themselves; this is the metrics
                self._invalid_log(logging.ERROR, "recording frame %s failed: %s", frame.seq, exc,
                                  exc_info=True)
        limit = self.config.pipeline.max_frames
        if limit and self.accounting.snapshot()["processed"] >= limit:
            self._stop.set()

    def _postprocess(self, frame: Frame, prepared, timing: Timing, scores, maps,
                     features=None) -> FrameResult:
        classes, maps8 = self.stages.postprocess.process(scores, maps, prepared.crop)
        ood, familiar = self.stages.postprocess.familiarity(scores, features)
        timing.postprocess_end = time.monotonic_ns()
        return FrameResult(self.stream, frame.seq, frame.t_source_ns, tuple(frame.image.shape[:2]),
                           classes, timing, maps8,
                           mm_per_px=frame.area.mm_per_px if frame.area is not None else None,
                           image=frame.image, crop=prepared.crop, ood=ood, familiar=familiar,
                           fan=prepared.fan, frozen=prepared.frozen, doppler=prepared.doppler)

    def _maybe_report(self) -> None:
        now = time.monotonic()
        last_t, last_n = self._last_report
        if now - last_t < self.config.publish.status_interval_s:
            return
        n = self.accounting.snapshot()["processed"]
        self._fps = (n - last_n) / (now - last_t)
        self._last_report = (now, n)
        self.metrics.set_fps(self._fps)
        self.metrics.set_backend_up(getattr(self.backend, "up", True))
        if self.frames is not None:
            self.metrics.set_queue_depth("input", len(self.frames))
        self.metrics.set_queue_depth("prepared", len(self.prepared))
        self.metrics.set_queue_depth("fan_search", len(self._fan_search))
        self.stages.publish.status(self.status())


def build_pipeline(config: Config, source, backend, sinks: list, metrics: PipelineMetrics | None = None
                   ) -> Pipeline:
    """Wire the stages for an opened backend, a (not yet opened) source and opened sinks."""
    info = backend.info
    metrics = metrics or PipelineMetrics(config.publish.stream)
    desc = backend.describe()
    metrics.set_model(str(desc.get("model", "?")), str(desc.get("backend", "?")),
                      str(desc.get("precision", info.precision)))
    metrics.set_source_up(False)
    stages = Stages(
        preprocess=Preprocessor.for_model(config.preprocess, info),
        infer=InferenceStage(backend),
        postprocess=Postprocessor(info.classes, info.activation, config.postprocess,
                                  ood=load_ood(getattr(backend, "model_path", None))),
        publish=PublishStage(list(sinks), metrics, LatencyRecord()),
    )
    return Pipeline(config, source, backend, stages, metrics)
