"""Labelled frames held in memory, each with the loop it came from.

A loop (a DICOM cine file, a screen recording) is the unit of splitting: frames of one loop are
near-copies of each other, so they never sit on both sides of a split. Frames are read once, in
loop order, before any training: a loop that does not decode stops the run there, naming it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from engines.datasets import Sample
from engines.errors import UserError


@dataclass
class Frames:
    """uint8 images [N, S, S] as the model takes them, labels [N, C], each frame's loop, and,
    where known, its boxes and polar mapping (for the pointing game)."""

    images: np.ndarray
    labels: np.ndarray
    loops: list[str]
    classes: tuple[str, ...]
    representation: str = "sector"
    recipe: object = None  # the InputRecipe the frames went through
    extras: list[tuple] = field(default_factory=list)  # per frame: (boxes, sector), or empty

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> Sample:
        boxes, sector = self.extras[i] if self.extras else (None, None)
        return Sample(self.images[i], self.labels[i].copy(), boxes, sector)

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Images and labels as they are (the trainer takes them without copying frame by frame)."""
        return self.images, self.labels

    def subset(self, index: Sequence[int]) -> Frames:
        index = np.asarray(index, int)
        return Frames(self.images[index], self.labels[index], [self.loops[i] for i in index],
                      self.classes, self.representation, self.recipe,
                      [self.extras[i] for i in index] if self.extras else [])

    def with_classes(self, classes: Sequence[str]) -> Frames:
        """The label columns of ``classes`` (matched by name in any case), in that order; a class
        these frames are not labelled for is absent from every frame."""
        column = {c.lower(): i for i, c in enumerate(self.classes)}
        labels = np.zeros((len(self), len(classes)), np.float32)
        for j, name in enumerate(classes):
            if name.lower() in column:
                labels[:, j] = self.labels[:, column[name.lower()]]
        return Frames(self.images, labels, self.loops, tuple(classes), self.representation,
                      self.recipe, self.extras)

    def joined(self, other: Frames) -> Frames:
        """These frames and ``other``'s (same classes), boxes left out."""
        other = other.with_classes(self.classes)
        return Frames(np.concatenate([self.images, other.images]),
                      np.concatenate([self.labels, other.labels]), self.loops + other.loops,
                      self.classes, self.representation, self.recipe)

    def loop_names(self) -> list[str]:
        return list(dict.fromkeys(self.loops))

    def digest(self) -> str:
        """A fingerprint of the frames and labels (a resumed run must train on the same ones)."""
        h = hashlib.sha256()
        for part in (self.images, self.labels, "\n".join(self.loops), "\n".join(self.classes)):
            h.update(part.tobytes() if isinstance(part, np.ndarray) else part.encode())
        return h.hexdigest()[:16]


def read_frames(dataset, loop_of: Callable[[int], str], progress: bool = True,
                what: str = "labelled frames", boxes: bool = True) -> Frames:
    """Every sample of ``dataset`` in order; a frame that does not decode is one UserError naming
    its loop (the data set's own errors while opening name the labels file and line). ``boxes``
    False leaves out boxes and polar mappings (about 1 MB a frame), for frames never judged."""
    n = len(dataset)
    if n == 0:
        raise UserError(f"no {what}")
    images, labels, loops, extras = [], [], [], []
    for i in tqdm(range(n), desc=f"reading {what}", unit="frame", disable=not progress):
        loop = loop_of(i)
        try:
            sample = dataset[i]
        except Exception as exc:  # a decoder's error on the user's file, of whatever kind
            reason = " ".join(str(exc).split())[:200] or type(exc).__name__
            raise UserError(f"{loop}: a frame does not decode ({reason})") from exc
        images.append(sample.image)
        labels.append(sample.labels)
        loops.append(loop)
        extras.append((sample.boxes, getattr(sample, "sector", None)) if boxes else (None, None))
    keep = extras if boxes and any(b or s for b, s in extras) else []
    return Frames(np.stack(images), np.stack(labels).astype(np.float32), loops,
                  tuple(dataset.classes), getattr(dataset, "representation", "sector"),
                  getattr(dataset, "recipe", None), keep)


def check_positives(frames: Frames, where: str) -> None:
    """Every class has at least one frame that shows it (else nothing can teach it)."""
    empty = [c for c, n in zip(frames.classes, frames.labels.sum(0), strict=True) if n == 0]
    if empty:
        raise UserError(f"{where}: no frame is labelled with {', '.join(empty)}; label a stretch "
                        "that shows it, or drop its column")
