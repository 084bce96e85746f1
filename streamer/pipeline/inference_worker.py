"""The inference thread(s): a micro-batch of whatever is waiting (up to max_batch), taken in
turn from every stream with frames waiting, one model call, then each frame postprocessed and
published in its own stream, in the same thread (no hop).

With ``[pipeline] inference_workers`` above 1, that many threads do this side by side (model
calls overlap: ONNX Runtime on a CPU, one intra-op thread each); each batch's frames are
postprocessed and published only after the batch taken before it, so every stream's results stay
in order and its smoothing sees its frames in order."""

from __future__ import annotations

import logging
import threading
import time

from streamer.frames import Frame, FrameResult, Timing
from streamer.pipeline.slots import POLL_S, SlotGroup
from streamer.pipeline.stages import InferenceStage
from streamer.pipeline.stream_log import mark

log = logging.getLogger(__name__)


class Turn:
    """Tickets served in order: ``wait(t)`` returns once tickets before t have ``advance``d."""

    def __init__(self):
        self._cond = threading.Condition()
        self._turn = 0

    def wait(self, ticket: int, stop: threading.Event, patience_s: float) -> bool:
        """False when a stopping pipeline waited ``patience_s`` for an earlier ticket in vain."""
        waited = 0.0
        with self._cond:
            while self._turn != ticket:
                self._cond.wait(POLL_S)
                waited += POLL_S if stop.is_set() else 0.0
                if waited > patience_s:
                    return False
        return True

    def advance(self, ticket: int) -> None:
        with self._cond:
            self._turn = ticket + 1
            self._cond.notify_all()


class InferenceWorker:
    """Serves every lane (``streamer.pipeline.lane.Lane``) from one backend: a frame's failure
    is counted in its own stream, and a stream with nothing waiting is simply not in the batch.
    ``loop`` runs on each of the ``workers`` threads."""

    def __init__(self, lanes: list, group: SlotGroup, infer: InferenceStage, max_batch: int,
                 stop: threading.Event, done: threading.Event, on_idle, workers: int = 1):
        self.lanes, self.group, self.infer = lanes, group, infer
        self.max_batch, self.stop, self.done = max_batch, stop, done
        self.on_idle = on_idle  # between batches (status reports)
        self.batch_sizes: dict[int, int] = {}  # batch size → model calls
        self.limit = lanes[0].config.pipeline.max_frames
        self.stop_timeout_s = lanes[0].config.pipeline.stop_timeout_s
        self.tag = len(lanes) > 1  # log lines name the stream of the frame at hand
        self.workers = workers
        self._running = workers
        self._lock = threading.Lock()
        self.prepares = lanes[0].prepares_in_worker  # frames come raw: preprocessed here
        self._pre, self._post = Turn(), Turn()  # preprocess, and hand on, in the order taken

    def loop(self) -> None:
        try:
            while not self.stop.is_set():
                ticket, taken = self.group.take(self.max_batch, POLL_S)
                if taken:
                    self.serve(ticket, [(self.lanes[i], item) if self.prepares
                                        else (self.lanes[i], *item) for i, item in taken])
                elif all(lane.finished() for lane in self.lanes):
                    break
                self.on_idle()
        finally:
            with self._lock:
                self._running -= 1
                last = not self._running
            if last:
                for lane in self.lanes:
                    lane.inference_done.set()
                self.done.set()

    def serve(self, ticket: int, items: list) -> None:
        """``items``: (lane, frame, prepared, timing) each, or (lane, frame) when the frames come
        raw (preprocessed here first, in turn): inferred, then handed on in turn."""
        outputs = []
        try:
            if self.prepares:
                items = self._prepare(ticket, items)
            if items:
                start = time.monotonic_ns()
                for item in items:
                    item[3].inference_start = start
                outputs = self._model(items)
        finally:
            self._in_turn(ticket, outputs)

    def _prepare(self, ticket: int, items: list) -> list:
        if not self._pre.wait(ticket, self.stop, self.stop_timeout_s):
            for lane, _ in items:
                lane.accounting.add("dropped")
            return []
        try:
            prepared = []
            for lane, frame in items:
                self._mark(lane)
                item = lane.run.guarded(frame, lane.preprocess.prepare)
                if item is not None:
                    prepared.append((lane, *item))
            return prepared
        finally:
            self._pre.advance(ticket)

    def _model(self, items: list) -> list:
        """(item, (scores, maps, features) or the exception) for each item; a batch the model
        refuses is retried frame by frame, so only the frame it cannot take fails."""
        try:
            out = self.infer.process([prepared for _, _, prepared, _ in items])
        except Exception as exc:
            if len(items) == 1:
                return [(items[0], exc)]
            return [pair for item in items for pair in self._model([item])]
        end = time.monotonic_ns()
        with self._lock:
            self.batch_sizes[len(items)] = self.batch_sizes.get(len(items), 0) + 1
        rows = []
        for i, item in enumerate(items):
            item[3].inference_end = end
            rows.append((item, (out.scores[i], out.maps[i],
                                None if out.features is None else out.features[i])))
        return rows

    def _in_turn(self, ticket: int, outputs: list) -> None:
        """Postprocess and publish once every batch taken before this one has been (a stopping
        pipeline gives up on an earlier batch that never comes: these frames are dropped)."""
        if not self._post.wait(ticket, self.stop, self.stop_timeout_s):
            for (lane, *_), _ in outputs:
                lane.accounting.add("dropped")
            return
        try:
            self._hand_on(outputs)
        finally:
            self._post.advance(ticket)

    def _hand_on(self, outputs: list) -> None:
        for (lane, frame, prepared, timing), out in outputs:
            self._mark(lane)
            if isinstance(out, Exception):
                lane.run.failed(frame, out)
                continue
            result = lane.run.guarded(frame, self._postprocess, lane, frame, prepared, timing, *out)
            if result is not None:
                self._publish(lane, frame, result)
        if self.tag:
            mark(None)
        if self.limit and all(lane.finished() or lane.accounting.snapshot()["processed"]
                              >= self.limit for lane in self.lanes):
            self.stop.set()

    def _mark(self, lane) -> None:
        if self.tag:
            mark(lane.stream)

    @staticmethod
    def _publish(lane, frame: Frame, result: FrameResult) -> None:
        lane.accounting.add("processed")
        try:
            lane.stages.publish.process(result)
        except Exception as exc:  # the sinks guard themselves; this is the metrics
            lane.run.invalid_log(logging.ERROR, "recording frame %s failed: %s", frame.seq, exc,
                                 exc_info=True)

    @staticmethod
    def _postprocess(lane, frame: Frame, prepared, timing: Timing, scores, maps,
                     features=None) -> FrameResult:
        post = lane.stages.postprocess
        classes, maps8 = post.process(scores, maps, prepared.crop)
        ood, familiar = post.familiarity(scores, features)
        timing.postprocess_end = time.monotonic_ns()
        return FrameResult(lane.stream, frame.seq, frame.t_source_ns, tuple(frame.image.shape[:2]),
                           classes, timing, maps8,
                           mm_per_px=frame.area.mm_per_px if frame.area is not None else None,
                           image=frame.image, crop=prepared.crop, ood=ood, familiar=familiar,
                           fan=prepared.fan, frozen=prepared.frozen, doppler=prepared.doppler)
