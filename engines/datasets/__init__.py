"""Datasets as plain numpy samples, opened from a spec string (the trainer wraps them for torch).

Specs:
  ``sim[:n=1000,seed=0,style=train,polar=0]``  simulated scanner frames, with ground-truth boxes;
      ``polar=1`` resamples curvilinear sectors to polar form (depth down, beam angle across),
      each box becoming the polar bounding box of its region (linear-probe frames stay plain).
      ``style=A+B`` mixes styles: frame i has style i mod k (each style its own frames).
      ``speckles=N`` draws the speckle from N textures (cell size, statistics) instead of the
      style's own few (widened 12, others 6); without it the frames are as they always were.
      ``slant=P`` turns a share P of the placentas to cross the fan at a slant (0.2-0.8 rad), as
      a live sweep shows them; without it (0) the frames are as they always were.
  ``folder:/dir`` (or a bare directory holding ``labels.csv``)  images plus a CSV whose columns
      are ``image`` (file name relative to the directory) then one 0/1 column per class.
  ``fetal_planes:/dir[,split=train|test]``  the public FETAL_PLANES_DB layout:
      ``FETAL_PLANES_DB_data.csv`` (``;``-separated) and ``Images/<Image_name>.png``. Its planes
      map onto our regions as brain->head, abdomen->abdomen, thorax->thorax, femur->limbs;
      maternal cervix and "Other" are all-zero rows. It has no spine or placenta plane, so
      those two columns are always 0 (it cannot train or evaluate them).
  ``fetalnav:/dir[,aspect=1.5,spacing=0.5]``  the paper's layout: MetaImage frames labelled in
      their headers, through the release's input recipe (`engines.datasets.fetalnav`).
  ``dicom:DIR[,polar=0|1][,recipe=NAME]``  labelled DICOM exams: ``labels.csv`` (``file``, optional ``frames``
      range, one 0/1 column per class) beside the .dcm files (``engines.datasets.dicom``).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from engines.classes import REGIONS
from engines.specs import spec_options

Box = tuple[float, float, float, float]


@dataclass
class Sample:
    image: np.ndarray  # uint8 [H, W] grey at the input size
    labels: np.ndarray  # float32 [C]
    boxes: dict[str, Box] | None = None  # x0, y0, x1, y1 in image pixels, where known
    # polar samples: the PolarMap and the boxes on the sector image it came from, so that
    # localisation can be judged where the streamer reports it (on the sector image)
    sector: tuple | None = None


@runtime_checkable
class Dataset(Protocol):
    classes: tuple[str, ...]

    def __len__(self) -> int: ...

    def __getitem__(self, i: int) -> Sample: ...


def _index(i: int, n: int) -> int:
    i = int(i)
    if i < 0:
        i += n
    if not 0 <= i < n:
        raise IndexError(f"index {i} out of range for a dataset of {n}")
    return i


def _read_grey(path: str, size: int) -> np.ndarray:
    img = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise ValueError(f"cannot read image {path!r}")
    if img.shape != (size, size):
        img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
    return img


class SimDataset:
    """Simulated frames, generated on demand (deterministic per seed and index)."""

    classes = REGIONS

    def __init__(self, n: int = 1000, seed: int = 0, style: str = "train", input_size: int = 224,
                 polar: bool = False, recipe: str = "sonostream", speckles: int = 0,
                 slant: float = 0.0):
        from engines.input_recipe import recipe_named
        from engines.simulator import ScannerSimulator, SimConfig

        if n < 1:
            raise ValueError(f"sim dataset size n must be >= 1, got {n}")
        self.n, self.input_size, self.polar = int(n), int(input_size), bool(polar)
        self.representation = "polar" if self.polar else "sector"
        self.sims = [ScannerSimulator(SimConfig(seed=seed, style=s, speckles=speckles, slant=slant))
                     for s in style.split("+")]
        self.recipe = recipe_named(recipe)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> Sample:
        i = _index(i, self.n)
        sim, index = self.sims[i % len(self.sims)], i // len(self.sims)
        if self.polar:
            from engines.polar import estimate_geometry

            f = sim.frame(index)
            geometry = estimate_geometry(f.fan_mask)  # as the streamer fits it, on the exact fan
            if geometry is not None:
                pm = self.recipe.polar_map(geometry, self.input_size)
                boxes = {k: pm.box_to_polar(b) for k, b in f.boxes.items()}
                return Sample(self.recipe.stored(pm.to_polar(f.image)), f.labels, boxes, (pm, f.boxes))
        img, labels, boxes = sim.training_image(index, self.input_size)
        return Sample(self.recipe.stored(img), labels, boxes)


def _inside(path: str, root: str) -> bool:
    """``path`` resolves (symbolic links followed) to somewhere under ``root``."""
    real, base = os.path.realpath(path), os.path.realpath(root)
    return os.path.commonpath([real, base]) == base


class FolderDataset:
    """Images in a directory labelled by ``labels.csv`` (``image`` column, then one per class)."""

    def __init__(self, root: str, input_size: int = 224, csv_name: str = "labels.csv"):
        path = os.path.join(root, csv_name)
        if not os.path.isfile(path):
            raise ValueError(f"folder dataset {root!r} has no {csv_name}")
        with open(path, newline="") as fh:
            rows = list(csv.reader(fh))
        if not rows or len(rows[0]) < 2 or rows[0][0].strip() != "image":
            raise ValueError(f"{path}: header must be 'image' followed by one column per class")
        self.classes = tuple(c.strip() for c in rows[0][1:])
        self.root, self.input_size = root, int(input_size)
        self.files: list[str] = []
        labels = []
        for ln, row in enumerate(rows[1:], start=2):
            if not row or not "".join(row).strip():
                continue
            if len(row) != len(self.classes) + 1:
                raise ValueError(f"{path}:{ln}: expected {len(self.classes) + 1} columns, "
                                 f"got {len(row)}")
            try:
                vals = [float(v) for v in row[1:]]
            except ValueError:
                raise ValueError(f"{path}:{ln}: labels must be 0 or 1, got {row[1:]}") from None
            if any(v not in (0.0, 1.0) for v in vals):
                raise ValueError(f"{path}:{ln}: labels must be 0 or 1, got {row[1:]}")
            f = os.path.join(root, row[0].strip())
            if not _inside(f, root):
                raise ValueError(f"{path}:{ln}: image {row[0].strip()!r} is outside the data folder")
            if not os.path.isfile(f):
                raise ValueError(f"{path}:{ln}: image file {row[0].strip()!r} not found")
            self.files.append(f)
            labels.append(vals)
        if not self.files:
            raise ValueError(f"{path}: no labelled images")
        self.labels = np.array(labels, dtype=np.float32)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> Sample:
        i = _index(i, len(self.files))
        return Sample(_read_grey(self.files[i], self.input_size), self.labels[i].copy(), None)


PLANE_TO_REGION = {"Fetal brain": "head", "Fetal abdomen": "abdomen", "Fetal thorax": "thorax",
                   "Fetal femur": "limbs", "Maternal cervix": None, "Other": None}
FETAL_PLANES_CSV = "FETAL_PLANES_DB_data.csv"


class FetalPlanesDataset:
    """FETAL_PLANES_DB (Burgos-Artizzu et al. 2020) mapped onto our six regions."""

    classes = REGIONS

    def __init__(self, root: str, input_size: int = 224, split: str | None = None):
        if split not in (None, "train", "test"):
            raise ValueError(f"fetal_planes split must be 'train' or 'test', got {split!r}")
        path = os.path.join(root, FETAL_PLANES_CSV)
        if not os.path.isfile(path):
            raise ValueError(f"fetal_planes dataset {root!r} has no {FETAL_PLANES_CSV}")
        images = os.path.join(root, "Images")
        if not os.path.isdir(images):
            raise ValueError(f"fetal_planes dataset {root!r} has no Images/ folder")
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh, delimiter=";")
            reader.fieldnames = [c.strip() for c in reader.fieldnames or []]
            missing = {"Image_name", "Plane", "Train"} - set(reader.fieldnames)
            if missing:
                raise ValueError(f"{path}: missing column(s) {sorted(missing)}")
            rows = list(reader)
        self.root, self.input_size = root, int(input_size)
        self.files: list[str] = []
        self.planes: list[str] = []
        labels = []
        for ln, row in enumerate(rows, start=2):
            plane = (row["Plane"] or "").strip()
            if plane not in PLANE_TO_REGION:
                raise ValueError(f"{path}:{ln}: unknown Plane {plane!r}")
            train = (row["Train"] or "").strip()
            if train not in ("0", "1"):
                raise ValueError(f"{path}:{ln}: Train must be 0 or 1, got {train!r}")
            if split is not None and (train == "1") != (split == "train"):
                continue
            f = os.path.join(images, row["Image_name"].strip() + ".png")
            if not os.path.isfile(f):
                raise ValueError(f"{path}:{ln}: image Images/{row['Image_name'].strip()}.png "
                                 "not found")
            y = np.zeros(len(REGIONS), np.float32)
            region = PLANE_TO_REGION[plane]
            if region is not None:
                y[REGIONS.index(region)] = 1.0
            self.files.append(f)
            self.planes.append(plane)
            labels.append(y)
        if not self.files:
            raise ValueError(f"{path}: no images{'' if split is None else f' in split {split!r}'}")
        self.labels = np.stack(labels)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> Sample:
        i = _index(i, len(self.files))
        return Sample(_read_grey(self.files[i], self.input_size), self.labels[i].copy(), None)


def for_representation(spec: str, representation: str, recipe: str = "sonostream") -> str:
    """The spec with simulated frames in the model's representation (``polar=1`` added for a
    polar model) and input recipe (``recipe=fetalnav``: the release's crop and scaling); other
    specs are returned unchanged: their images are what they are."""
    scheme = spec.split(":", 1)[0]
    if representation == "polar" and scheme in ("sim", "dicom") and "polar=" not in spec:
        spec = spec + ("," if ":" in spec else ":") + "polar=1"
    if recipe != "sonostream" and scheme in ("sim", "dicom") and "recipe=" not in spec:
        spec = spec + ("," if ":" in spec else ":") + f"recipe={recipe}"
    return spec


def open_dataset(spec: str, input_size: int = 224) -> Dataset:
    """Open a dataset from its spec string (see the module docstring); ValueError on bad specs."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError("empty dataset spec")
    if int(input_size) < 8:
        raise ValueError(f"input_size must be >= 8, got {input_size}")
    spec = spec.strip()
    kind, colon, rest = spec.partition(":")
    if kind == "sim":
        opts = spec_options(spec, rest, {"n": int, "seed": int, "style": str, "polar": bool,
                                         "recipe": str, "speckles": int, "slant": float})
        from engines.simulator.render import STYLES

        if not set(opts.get("style", "train").split("+")) <= set(STYLES):
            raise ValueError(f"sim style must be one of {STYLES} (or several joined by +), "
                             f"got {opts['style']!r}")
        if opts.get("seed", 0) < 0:
            raise ValueError(f"sim seed must be >= 0, got {opts['seed']}")
        return SimDataset(input_size=input_size, **opts)
    if kind == "folder" and colon:
        if not os.path.isdir(rest):
            raise ValueError(f"folder dataset: {rest!r} is not a directory")
        return FolderDataset(rest, input_size)
    if kind == "dicom" and colon:
        from engines.datasets.dicom import DicomDataset

        opts = spec_options(spec, rest, {"polar": bool, "recipe": str}, target="path")
        return DicomDataset(opts.pop("path", ""), input_size, polar=int(opts.get("polar", 0)),
                            recipe=opts.get("recipe", "sonostream"))
    if kind == "fetal_planes" and colon:
        opts = spec_options(spec, rest, {"split": str}, target="path")
        path = opts.pop("path", "")
        if not os.path.isdir(path):
            raise ValueError(f"fetal_planes dataset: {path!r} is not a directory")
        return FetalPlanesDataset(path, input_size, **opts)
    if kind == "fetalnav" and colon:
        from engines.datasets.fetalnav import FetalnavDataset

        opts = spec_options(spec, rest, {"aspect": float, "spacing": float}, target="path")
        path = opts.pop("path", "")
        if not os.path.isdir(path):
            raise ValueError(f"fetalnav dataset: {path!r} is not a directory")
        return FetalnavDataset(path, input_size, **opts)
    if os.path.isdir(spec):
        if os.path.isfile(os.path.join(spec, "labels.csv")):
            return FolderDataset(spec, input_size)
        if os.path.isfile(os.path.join(spec, FETAL_PLANES_CSV)):
            return FetalPlanesDataset(spec, input_size)
        raise ValueError(f"directory {spec!r} has neither labels.csv nor {FETAL_PLANES_CSV}")
    raise ValueError(f"unknown dataset spec {spec!r}; expected sim[:k=v,...], folder:<dir>, "
                     "fetal_planes:<dir>[,split=train|test], fetalnav:<dir>, "
                     "dicom:<dir>[,polar=1] or a directory with labels.csv")


__all__ = ["Dataset", "FetalPlanesDataset", "FolderDataset", "PLANE_TO_REGION", "Sample",
           "SimDataset", "open_dataset"]
