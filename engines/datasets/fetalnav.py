"""The paper's data set layout: MetaImage frames under a folder, labelled in their headers.

As the release's ``ITKMetaDataClassification``: every ``.mhd``/``.mha`` under the folder (links
followed, sorted by path), classes = the sorted set of label strings found, a frame may carry
several (``Labels = Placenta, Limbs``); each frame goes through the release's input recipe
(resampled to 0.5 mm, cropped to the aspect ratio, 224×224 bilinear, min-max scaled). Unlike the
release (which warns and goes on), a frame without a label, or one that cannot be read, stops the
data set with one line naming the first bad files, each with its reason, and counting the rest.
"""

from __future__ import annotations

import os

import numpy as np

from engines.input_recipe import FETALNAV, InputRecipe, release_input
from engines.metaimage import read_header, resample

IMAGE_SUFFIXES = (".mhd", ".mha")
UNSUPPORTED_SUFFIXES = (".nii", ".nii.gz")
MAX_LISTED = 3
"""Bad files named, each with its reason, in the one error line; the rest are counted."""


def find_images(root: str) -> list[str]:
    files = []
    for folder, _, names in os.walk(root, followlinks=True):
        files += [os.path.join(folder, n) for n in names
                  if n.lower().endswith(IMAGE_SUFFIXES + UNSUPPORTED_SUFFIXES)]
    return sorted(files)


def _labelled(path: str):
    """The header of a labelled MetaImage frame; ValueError says what is wrong with it."""
    if path.lower().endswith(UNSUPPORTED_SUFFIXES):
        raise ValueError("NIfTI is not supported; convert it to .mha")
    image = read_header(path)
    if not image.labels:
        raise ValueError("no 'Label = X' or 'Labels = A, B' header line")
    return image


def _reason(exc: Exception, path: str) -> str:
    """What is wrong with the file, without its path (the error line names it once)."""
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    return str(exc).removeprefix(f"{path}: ").strip() or type(exc).__name__


class FetalnavDataset:
    """MetaImage frames labelled by ``Label``/``Labels`` header lines, through the release's recipe."""

    representation = "polar"

    def __init__(self, root: str, input_size: int = 224, aspect: float = FETALNAV.aspect,
                 spacing: float = FETALNAV.spacing):
        self.recipe = InputRecipe("fetalnav", aspect, spacing, FETALNAV.resize, FETALNAV.scale)
        self.root, self.input_size = root, int(input_size)
        paths = find_images(root)
        if not paths:
            raise ValueError(f"fetalnav dataset {root!r} holds no .mhd or .mha files")
        self.images, bad = [], []
        for path in paths:
            try:
                self.images.append(_labelled(path))
            except (ValueError, OSError) as exc:
                bad.append(f"{os.path.relpath(path, root)}: {_reason(exc, path)}")
        if bad:
            more = f"; and {len(bad) - MAX_LISTED} more" if len(bad) > MAX_LISTED else ""
            raise ValueError(f"{len(bad)} bad MetaImage file(s) in {root}: "
                             + "; ".join(bad[:MAX_LISTED]) + more)
        self.classes = tuple(sorted({c for image in self.images for c in image.labels}))
        self.labels = np.zeros((len(self.images), len(self.classes)), np.float32)
        for i, image in enumerate(self.images):
            self.labels[i, [self.classes.index(c) for c in image.labels]] = 1.0

    def __len__(self) -> int:
        return len(self.images)

    def frame(self, i: int) -> np.ndarray:
        """The frame at the recipe's spacing, before the crop (rows: the header's y)."""
        image = self.images[i]
        pixels = image.pixels()
        return resample(pixels, image.spacing, self.recipe.spacing) if self.recipe.spacing else pixels

    def __getitem__(self, i: int):
        from engines.datasets import Sample, _index

        i = _index(i, len(self.images))
        return Sample(release_input(self.frame(i), self.recipe, self.input_size),
                      self.labels[i].copy(), None)
