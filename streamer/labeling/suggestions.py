"""The model's scores for every frame of every loop, computed in a background thread as
``streamer run`` sees each loop: played in order through the streamer's own Preprocessor (the
DICOM tissue region as the crop, else the fan tracker) and Postprocessor (its thresholds and
hysteresis), one fresh pair per loop. Shown as suggestions only: nothing here is ever written.
"""

from __future__ import annotations

import logging
import threading

import numpy as np

from engines.scoring import probabilities
from streamer.config import PostprocessConfig, PreprocessConfig
from streamer.frames import Frame
from streamer.labeling.loops import LoopInfo, close_reader, open_reader
from streamer.postprocess import Postprocessor
from streamer.preprocess import Preprocessor
from streamer.ratelimit import RateLimitedLog

log = logging.getLogger(__name__)


class Suggestions:
    """Per loop: probabilities [frames, C] (NaN until scored, or where a frame failed) and the
    present flags the streamer would publish; ``done[i]`` frames of loop i scored, in order."""

    def __init__(self, loops: tuple[LoopInfo, ...], backend,
                 preprocess: PreprocessConfig | None = None,
                 postprocess: PostprocessConfig | None = None):
        info = backend.info
        self.loops, self.backend, self.classes = loops, backend, tuple(info.classes)
        self.preprocess = preprocess or PreprocessConfig()
        self.postprocess = postprocess or PostprocessConfig()
        self.thresholds = [self.postprocess.threshold_for(c) for c in self.classes]
        self.scores = [np.full((lp.frames, len(self.classes)), np.nan, np.float32) for lp in loops]
        self.present = [np.zeros((lp.frames, len(self.classes)), np.int8) for lp in loops]
        self.done = [0] * len(loops)
        self.failed = [0] * len(loops)
        self.error = ""  # why scoring stopped early, if it did
        self._focus = 0
        self._stop = threading.Event()
        self._finished = threading.Event()
        self._warn = RateLimitedLog(5.0, log)
        self._thread: threading.Thread | None = None

    def start(self) -> Suggestions:
        self._thread = threading.Thread(target=self._run, name="label-suggestions", daemon=True)
        self._thread.start()
        return self

    def focus(self, loop: int) -> None:
        """Score this loop next (after the one being scored)."""
        self._focus = loop

    def wait(self, timeout: float | None = None) -> bool:
        return self._finished.wait(timeout)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def vectors(self, loop: int) -> list[tuple[int, ...] | None]:
        """The suggestion per frame scored so far (None where the frame could not be scored)."""
        n = self.done[loop]
        ok = ~np.isnan(self.scores[loop][:n, 0])
        return [tuple(int(v) for v in row) if good else None
                for row, good in zip(self.present[loop][:n].tolist(), ok.tolist(), strict=True)]

    def _run(self) -> None:
        try:
            pending = list(range(len(self.loops)))
            while pending and not self._stop.is_set():
                loop = self._focus if self._focus in pending else pending[0]
                pending.remove(loop)
                self._score(loop)
        except Exception as exc:  # scoring is an aid: the page says it stopped, labelling goes on
            self.error = f"{type(exc).__name__}: {exc}"
            log.exception("suggestions stopped")
        finally:
            self._finished.set()

    def _score(self, index: int) -> None:
        info = self.loops[index]
        model = self.backend.info
        pre = Preprocessor.for_model(self.preprocess, model)
        post = Postprocessor(model.classes, model.activation, self.postprocess)
        reader = open_reader(info)
        try:
            area = reader.area()
            for i in range(info.frames):
                if self._stop.is_set():
                    return
                try:
                    prepared = pre.process(Frame(i, reader.image(i), 0, area=area))
                except Exception as exc:  # noqa: BLE001 - a frame the streamer would skip
                    self.failed[index] += 1
                    self._warn(logging.WARNING, "%s frame %d not scored: %s", info.name, i, exc)
                    self.done[index] = i + 1
                    continue
                out = self.backend.infer(prepared.tensor)
                level, on = post.hysteresis.update(probabilities(out.scores[0], model.activation))
                self.scores[index][i] = level
                self.present[index][i] = on
                self.done[index] = i + 1
        finally:
            close_reader(reader)

