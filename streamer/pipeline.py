"""The running pipeline: four threads and the queues between them (all threading lives here).

    source ──FrameSlot──▶ preprocess ──FrameSlot(1)──▶ inference ──FrameSlot──▶ publish
    (grab,   (live: latest frame wins,  (fan crop,      (lossless,  (infer,        (sinks,
     count)   the replaced one is        grey, resize)   waits)      postprocess)   metrics,
              dropped; non-live:                                                    status)
              lossless, waits)

Preprocessing runs beside inference (OpenCV and ONNX Runtime release the GIL), so a frame is
cropped and resized while the one before it is in the model; the one-frame hand-off between them
keeps at most one prepared frame waiting, so latency stays bounded under overload.

Stages (Preprocessor, InferenceStage, Postprocessor, PublishStage) know nothing of threads;
:func:`build_pipeline` wires them. Every loop watches the stop event and waits with timeouts.
At shutdown ``captured == processed + dropped + invalid`` holds exactly: frames still waiting for
inference when the pipeline stops are counted as dropped, and every processed frame is published.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field

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

    def __init__(self, interval: float = 5.0):
        self.interval, self._last, self._held = interval, -1e9, 0

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

    def drain(self) -> list:
        with self._cond:
            items, self._items = list(self._items), deque()
            self._cond.notify_all()
            return items

    def __len__(self) -> int:
        return len(self._items)


class InferenceStage:
    """Stage: Prepared → Inference (one backend object, a batch of one)."""

    def __init__(self, backend):
        self.backend = backend

    def process(self, prepared: Prepared):
        return self.backend.infer(prepared.tensor)


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
    state: str = "connecting"  # connecting | up | lost | ended | failed
    retries: int = 0
    retry_in_s: float = 0.0
    error: str = ""


class Pipeline:
    """Owns the threads; build it with :func:`build_pipeline`, then start/stop/wait/close."""

    def __init__(self, config: Config, source, backend, stages: Stages, metrics: PipelineMetrics):
        self.config, self.source, self.backend = config, source, backend
        self.stages, self.metrics = stages, metrics
        self.stream = config.publish.stream
        self.latency = stages.publish.latency
        self.accounting = Accounting(metrics)
        live = bool(getattr(source, "live", True))
        self.frames = FrameSlot(1 if live else config.pipeline.queue_size, lossless=not live)
        self.prepared = FrameSlot(1, lossless=True)
        self.results = FrameSlot(config.pipeline.publish_queue_size, lossless=True)
        self.source_state = SourceState()
        self._source_drops_seen = 0
        self._stop = threading.Event()
        self._source_done = threading.Event()
        self._preprocess_done = threading.Event()
        self._inference_done = threading.Event()
        self._publish_done = threading.Event()
        self._threads: list[threading.Thread] = []
        self._invalid_log = RateLimitedLog()
        self._started_at = 0.0
        self._fps = 0.0
        self._closed = False

    # -- control --------------------------------------------------------------------------
    def start(self) -> Pipeline:
        """Open the source (a live source that is not there yet is retried in the background)."""
        self._started_at = time.monotonic()
        self._open_source(first=True)
        for name, target in (("source", self._source_loop), ("preprocess", self._preprocess_loop),
                             ("inference", self._inference_loop), ("publish", self._publish_loop)):
            thread = threading.Thread(target=target, name=f"streamer-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()

    def wait(self, timeout: float | None = None) -> bool:
        """True once every processed frame is published (the source ended or stop() was called)."""
        return self._publish_done.wait(timeout)

    def close(self) -> dict:
        """Stop, join the threads, settle the accounting, close sinks and backend; the counts."""
        if not self._closed:
            self._closed = True
            self.stop()
            deadline = time.monotonic() + self.config.pipeline.stop_timeout_s
            for thread in self._threads:
                thread.join(max(0.0, deadline - time.monotonic()))
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
        leftover = self.frames.drain() + self.prepared.drain()
        if leftover:
            self.accounting.add("dropped", len(leftover))
        unpublished = self.results.drain()  # only if the publish thread was stuck
        for result in unpublished:
            self.stages.publish.process(result)
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
            "queues": {"input": len(self.frames), "prepared": len(self.prepared),
                       "publish": len(self.results)},
        }

    # -- source thread --------------------------------------------------------------------
    def _open_source(self, first: bool = False) -> bool:
        try:
            self.source.open()
        except SourceLost as exc:
            if first and self.frames.lossless:  # a file that is not there is an error, not a retry
                raise
            self._source_lost(exc)
            return False
        except Exception as exc:
            if first:
                raise
            self._source_lost(SourceLost(f"reopen failed: {exc}"))
            return False
        if self.source_state.state != "up":
            log.info("source %s is up", getattr(self.source, "kind", "?"))
        self.source_state = SourceState("up", self.source_state.retries)
        self.metrics.set_source_up(True)
        return True

    def _source_lost(self, exc: Exception) -> None:
        s = self.source_state
        delay = self.config.source.retry_initial_s if s.state != "lost" else min(
            2 * s.retry_in_s, self.config.source.retry_max_s)
        self.source_state = SourceState("lost", s.retries + (s.state == "lost"), delay, str(exc))
        self.metrics.set_source_up(False)
        log.warning("source lost (%s); retrying in %.1f s", exc, delay)

    def _source_loop(self) -> None:
        try:
            while not self._stop.is_set() and not self._enough_frames():
                if self.source_state.state == "lost":
                    if self._stop.wait(self.source_state.retry_in_s) or not self._open_source():
                        continue
                if not self._read_one():
                    break
        except Exception as exc:  # a bug in a source: end the stream, never the process
            log.exception("source thread failed: %s", exc)
            self.source_state.state, self.source_state.error = "failed", str(exc)
        finally:
            self._close_source()
            self._source_done.set()

    def _read_one(self) -> bool:
        """Read and hand on one frame; False when the source has ended."""
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
        except SourceEnded:
            self.source_state.state = "ended"
            log.info("source ended")
            return False
        if frame is not None:
            self.accounting.add("captured")
            self._hand_on(frame)
        return True

    def _count_source_drops(self) -> None:
        """Frames a live source skipped itself (stale ZMQ messages it drained) are captured and dropped."""
        total = getattr(self.source, "dropped", 0)
        new, self._source_drops_seen = total - self._source_drops_seen, total
        if new > 0:
            self.accounting.add("captured", new)
            self.accounting.add("dropped", new)

    def _hand_on(self, frame: Frame) -> None:
        while True:
            accepted, evicted = self.frames.put(frame, POLL_S)
            if evicted is not None:
                self.accounting.add("dropped")
            if accepted:
                return
            if self._stop.is_set():  # lossless slot still full at stop: never processed
                self.accounting.add("dropped")
                return

    def _enough_frames(self) -> bool:
        """With max_frames: stop grabbing once that many frames are on their way to inference."""
        limit = self.config.pipeline.max_frames
        if not limit:
            return False
        c = self.accounting.snapshot()
        return c["captured"] - c["dropped"] - c["invalid"] >= limit

    def _close_source(self) -> None:
        try:
            self.source.close()
        except Exception as exc:
            log.warning("error closing the source: %s", exc)

    def _count_invalid(self, exc: Exception) -> None:
        self.accounting.add("invalid")
        self._invalid_log(logging.WARNING, "invalid frame: %s", exc)

    # -- preprocess and inference threads -------------------------------------------------
    def _consume(self, slot: FrameSlot, upstream_done: threading.Event, handle,
                 done: threading.Event) -> None:
        """handle() every item from slot until stopped, or until upstream is done and slot empty."""
        try:
            while not self._stop.is_set():
                item = slot.get(POLL_S)
                if item is not None:
                    handle(item)
                elif upstream_done.is_set() and not len(slot):
                    break
        finally:
            done.set()

    def _preprocess_loop(self) -> None:
        self._consume(self.frames, self._source_done, self._preprocess_one, self._preprocess_done)

    def _inference_loop(self) -> None:
        self._consume(self.prepared, self._preprocess_done, self._infer_one, self._inference_done)

    def _preprocess_one(self, frame: Frame) -> None:
        item = self._guarded(frame, self._preprocess)
        if item is not None:
            self._hand_on_prepared(item)

    def _preprocess(self, frame: Frame):
        timing = Timing(capture=frame.t_capture_ns)
        prepared = self.stages.preprocess.process(frame)
        timing.preprocess_end = time.monotonic_ns()
        return frame, prepared, timing

    def _hand_on_prepared(self, item) -> None:
        while not self.prepared.put(item, POLL_S)[0]:  # inference takes it or the pipeline stops
            if self._stop.is_set() or self._inference_done.is_set():
                self.accounting.add("dropped")
                return

    def _infer_one(self, item) -> None:
        result = self._guarded(item[0], self._infer, item)
        if result is not None:
            self._hand_on_result(result)
        limit = self.config.pipeline.max_frames
        if limit and self.accounting.snapshot()["processed"] >= limit:
            self._stop.set()

    def _guarded(self, frame: Frame, step, *args):
        """step(*args or frame); a frame it fails on is counted invalid and the pipeline goes on."""
        try:
            return step(*(args or (frame,)))
        except InvalidFrame as exc:
            self._count_invalid(exc)
        except Exception as exc:  # a frame the model cannot take: count it, keep going
            self.accounting.add("invalid")
            self._invalid_log(logging.ERROR, "frame %s failed in processing: %s", frame.seq, exc,
                              exc_info=True)
        return None

    def _infer(self, item) -> FrameResult:
        frame, prepared, timing = item
        timing.inference_start = time.monotonic_ns()
        out = self.stages.infer.process(prepared)
        timing.inference_end = time.monotonic_ns()
        classes, maps = self.stages.postprocess.process(out.scores[0], out.maps[0], prepared.crop)
        ood, familiar = self.stages.postprocess.familiarity(
            out.scores[0], None if out.features is None else out.features[0])
        timing.postprocess_end = time.monotonic_ns()
        return FrameResult(self.stream, frame.seq, frame.t_source_ns, tuple(frame.image.shape[:2]),
                           classes, timing, maps, ood, familiar)

    def _hand_on_result(self, result: FrameResult) -> None:
        self.accounting.add("processed")
        while not self.results.put(result, POLL_S)[0]:  # the publish thread always drains
            if self._publish_done.is_set():
                break

    # -- publish thread -------------------------------------------------------------------
    def _publish_loop(self) -> None:
        interval = self.config.publish.status_interval_s
        last_t, last_n = time.monotonic(), 0
        try:
            while True:
                result = self.results.get(POLL_S)
                if result is not None:
                    self.stages.publish.process(result)
                elif self._inference_done.is_set() and not len(self.results):
                    break
                now = time.monotonic()
                if now - last_t >= interval:
                    n = self.accounting.snapshot()["processed"]
                    self._fps = (n - last_n) / (now - last_t)
                    last_t, last_n = now, n
                    self._report()
        finally:
            self._publish_done.set()

    def _report(self) -> None:
        self.metrics.set_fps(self._fps)
        self.metrics.set_queue_depth("input", len(self.frames))
        self.metrics.set_queue_depth("prepared", len(self.prepared))
        self.metrics.set_queue_depth("publish", len(self.results))
        self.stages.publish.status(self.status())


def resolve_representation(config, info):
    """The preprocess section with "model" replaced by what the model was trained on."""
    if config.representation != "model":
        return config
    return dataclasses.replace(config, representation=info.representation)


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
        preprocess=Preprocessor(resolve_representation(config.preprocess, info), info.input_size),
        infer=InferenceStage(backend),
        postprocess=Postprocessor(info.classes, info.activation, config.postprocess,
                                  ood=load_ood(getattr(backend, "model_path", None))),
        publish=PublishStage(list(sinks), metrics, LatencyRecord()),
    )
    return Pipeline(config, source, backend, stages, metrics)
