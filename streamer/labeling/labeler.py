"""One labelling session: the loops, their labels and the file they go to, the model's
suggestions and the frames served; what the page's requests do (server.py only speaks HTTP).

Every edit is written at once (labels.csv whole, atomically); a write that fails keeps the edit in
memory and says so on every answer until a later write succeeds.
"""

from __future__ import annotations

import logging
import time

from streamer.errors import UserError, user_input
from streamer.labeling.loops import DataSet, FrameStore, open_data
from streamer.labeling.session import LabelFile, LabelSession, header_labels
from streamer.labeling.suggestions import Suggestions
from streamer.sinks.viewer_render import class_colour

log = logging.getLogger(__name__)
MAX_SCORES = 5000  # frames of scores in one answer (the page asks again from where it got to)
OPS = ("toggle", "accept", "undo", "save")


class Labeler:
    def __init__(self, data: DataSet, backend):
        self.data, self.backend = data, backend
        classes = tuple(backend.info.classes)
        counts = {lp.name: lp.frames for lp in data.loops}
        if data.kind == "fetalnav":
            self.file, labels = None, header_labels(classes, data.loops)
        else:
            self.file, labels = LabelFile.open(data.labels_path, classes, counts, data.whole_folder)
        self.session = LabelSession(classes, counts, labels, readonly=data.readonly)
        self.frames = FrameStore(data.loops)
        self.suggestions = Suggestions(data.loops, backend)
        self.save_error, self.saved_at = "", 0.0

    def start(self) -> Labeler:
        self.suggestions.start()
        return self

    def close(self) -> None:
        self.suggestions.stop()
        self.frames.close()
        self.backend.close()

    # -- what the page asks -------------------------------------------------------------------
    def state(self) -> dict:
        s = self.session
        return {"classes": [{"name": c, "colour": class_colour(c, i),
                             "key": str(i + 1) if i < 9 else ""} for i, c in enumerate(s.classes)],
                "thresholds": self.suggestions.thresholds,
                "loops": [{"name": lp.name, "frames": lp.frames, "fps": round(lp.fps, 3)}
                          for lp in self.data.loops],
                "kind": self.data.kind, "readonly": s.readonly,
                "labels_path": self.file.path if self.file else "",
                "model": str(getattr(self.backend, "model_path", ""))}

    def labels(self, loop: int) -> dict:
        name = self.loop_name(loop)
        self.suggestions.focus(loop)
        return {"loop": loop, "runs": [[a, b, list(v)] for a, b, v in self.session.runs(name)],
                "undo": self.session.undo_depth, "saved": not self.save_error,
                "save_error": self.save_error, "writes": self.file.writes if self.file else 0}

    def scores(self, loop: int, start: int) -> dict:
        self.loop_name(loop)
        sug = self.suggestions
        done = sug.done[loop]
        start = min(max(0, start), done)
        stop = min(done, start + MAX_SCORES)
        scores = sug.scores[loop][start:stop]
        return {"loop": loop, "from": start, "done": done, "total": self.data.loops[loop].frames,
                "failed": sug.failed[loop], "error": sug.error,
                "scores": [[None if v != v else round(v, 3) for v in row]  # NaN: not scored
                           for row in scores.tolist()],
                "present": sug.present[loop][start:stop].tolist()}

    def edit(self, op: str, loop: int, frame: int | None = None, cls: int | None = None) -> dict:
        """toggle (frame, cls), accept (frame), undo, save; the labels of the loop changed."""
        if op not in OPS:
            raise UserError(f"unknown op {op!r}; one of {', '.join(OPS)}")
        name = self.loop_name(loop)
        if op in ("toggle", "accept"):
            if frame is None or (op == "toggle" and cls is None):
                raise UserError(f"{op} needs frame" + (" and class" if op == "toggle" else ""))
            if op == "toggle":
                self.session.toggle(name, frame, cls)
            else:
                self.session.accept(name, frame, self.suggestions.vectors(loop))
        elif op == "undo":
            if self.session.readonly:
                raise UserError(self.session.readonly)
            changed = self.session.undo()
            if changed is not None:
                loop = [lp.name for lp in self.data.loops].index(changed)
        elif self.session.readonly:
            raise UserError(self.session.readonly)
        self.save()
        return self.labels(loop)

    def save(self) -> None:
        if self.file is None:
            return
        try:
            self.file.write(self.session)
        except OSError as exc:
            self.save_error = f"cannot write {self.file.path}: {exc.strerror or exc}"
            log.warning("%s", self.save_error)
        else:
            self.save_error, self.saved_at = "", time.time()

    def loop_name(self, loop: int) -> str:
        if not 0 <= loop < len(self.data.loops):
            raise UserError(f"no loop {loop}: loops are 0..{len(self.data.loops) - 1}")
        return self.data.loops[loop].name

    def check_frame(self, loop: int, frame: int) -> None:
        n = self.data.loops[loop].frames
        if not 0 <= frame < n:
            raise UserError(f"{self.loop_name(loop)} has frames 0..{n - 1}, not {frame}")


def open_labeler(data: str, model: str | None = None, threads: int = 0) -> Labeler:
    """DATA opened and checked, the model loaded, the labels read: every bad input is one line
    (UserError) before anything is served."""
    from engines.backends import BackendOptions, backend_for, create_backend
    from engines.defaults import default_onnx

    dataset = open_data(data)
    path = model or str(default_onnx())
    with user_input(f"cannot load model {path}", subject=path):
        backend = create_backend(backend_for(path), path, BackendOptions(threads=threads)).open()
    try:
        return Labeler(dataset, backend)
    except BaseException:
        backend.close()
        raise
