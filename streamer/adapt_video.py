"""Labelled screen recordings (``video:DIR``) as the frames ``streamer run`` feeds the model.

Each video named in DIR/labels.csv is played in order through the streamer's own Preprocessor (the
fan found and tracked where the screen moves, the sector fitted, annotations filled), exactly as
``streamer run --source FILE`` would meet it, and the labelled frames' model inputs are kept. It
lives on the streamer's side because the fan tracker does (engines never import the streamer).
"""

from __future__ import annotations

import os
from types import SimpleNamespace

import cv2
import numpy as np

from engines.datasets import Sample
from engines.datasets.range_labels import read_range_labels
from engines.input_recipe import InputRecipe


class VideoLoops:
    """A data set of the labelled frames of a folder's videos, one loop read whole at a time."""

    def __init__(self, root: str, model_cfg, csv_name: str = "labels.csv"):
        self.path = os.path.join(root, csv_name)
        classes, rows = read_range_labels(self.path)
        self.root, self.classes = root, classes
        self.input_size = model_cfg.input_size
        self.representation = model_cfg.representation
        self.recipe = InputRecipe.from_json(model_cfg.extra.get("recipe"))
        self.rows: dict[str, list] = {}
        for r in rows:
            file = os.path.join(root, r.file)
            if not os.path.isfile(file):
                raise ValueError(f"{r.where(self.path)}: video {r.file!r} not found")
            self.rows.setdefault(file, []).append(r)
        self.items: list[tuple[str, int]] = []  # (file, frame), known once its loop is read
        self._cache: dict[tuple[str, int], np.ndarray] = {}
        labels = []
        for file in self.rows:
            for index, y in self._labelled(file):
                self.items.append((file, index))
                labels.append(y)
        self.labels = np.asarray(labels, np.float32)

    def _labelled(self, file: str) -> list[tuple[int, np.ndarray]]:
        """(frame, labels) of every labelled frame of the loop, read now (its length decides what
        an open range covers); a range past the loop's end is one line."""
        played = self._play(file)
        count = len(played)
        out, seen = [], set()
        for r in self.rows[file]:
            r.check_count(count, self.path)  # a range past the loop's end: file and line
            for i in r.frames(count):
                if i in seen:
                    raise ValueError(f"{r.where(self.path)}: frame {i} of {r.file} is labelled "
                                     "twice")
                seen.add(i)
                self._cache[(file, i)] = played[i]
                out.append((i, np.asarray(r.labels, np.float32)))
        return sorted(out, key=lambda t: t[0])

    def _play(self, file: str) -> list[np.ndarray]:
        """Play the loop through a fresh Preprocessor: every frame's model input, in order."""
        from streamer.config import PreprocessConfig
        from streamer.frames import Frame
        from streamer.preprocess import Preprocessor

        info = SimpleNamespace(representation=self.representation, input_size=self.input_size,
                               recipe=self.recipe)
        pre = Preprocessor.for_model(PreprocessConfig(), info)
        cap = cv2.VideoCapture(file)
        if not cap.isOpened():
            raise ValueError(f"{file}: OpenCV cannot read this video")
        played = []
        try:
            while True:
                ok, image = cap.read()
                if not ok:
                    break
                tensor = pre.process(Frame(len(played), image)).tensor[0, 0]
                played.append(np.clip(np.rint(tensor * 255), 0, 255).astype(np.uint8))
        finally:
            cap.release()
        if not played:
            raise ValueError(f"{file}: no frame decodes")
        return played

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> Sample:
        file, index = self.items[i]
        return Sample(self._cache[(file, index)], self.labels[i].copy(), None)
