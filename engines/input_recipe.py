"""Input recipes: how a frame becomes a model's input, carried by the model (ONNX metadata).

``sonostream`` (our models): the fan's crop (resized, INTER_AREA) or polar frame (its anti-aliasing
shrink: 2×2 halvings; ``sonostream-area``, the models trained before: INTER_AREA), divided by 255.
``fetalnav`` (the paper's release: ntoussaint/fetalnav, experiments/train.py ``define_transforms``
and fetalnav/api_cpp.py): MetaImage frames resampled to 0.5 mm spacing, cropped to an aspect
ratio (its ``CropToRatio``: aspect = rows / columns; the side in excess is cut to
``int(size · target / actual)`` about its centre), resized to 224×224 bilinear (scipy's
``imresize``: the crop byte-scaled to 0..255, then Pillow's BILINEAR filter) and min-max scaled to
[0, 1]. Its maps go back through the inverse (``PaddToRatio``), as peaks and boxes do here.
No torch here: the streamer imports it.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass

import cv2
import numpy as np

from engines.polar import SHRINKS

RESIZES = ("area", "bilinear")
SCALES = ("unit", "minmax", "equalise")


MAX_ASPECT = 100.0  # rows / columns of a crop: beyond this a crop is a line of pixels


@dataclass(frozen=True)
class InputRecipe:
    name: str = "sonostream"
    aspect: float = 0.0  # rows / columns after the crop; 0: no crop
    spacing: float = 0.0  # mm per pixel that MetaImage frames are resampled to; 0: as stored
    resize: str = "area"  # "area" (INTER_AREA) or "bilinear" (Pillow's filter, as the release)
    scale: str = "unit"  # "unit": v / 255; "minmax": (v - min) / (max - min); "equalise":
    # histogram-equalised, then / 255 (the same input for any monotone change of gain or contrast)
    shrink: str = "area"  # how polar resampling anti-aliases (engines.polar.SHRINKS)

    def __post_init__(self):
        object.__setattr__(self, "aspect", float(self.aspect))
        object.__setattr__(self, "spacing", float(self.spacing))
        if not (0 <= self.aspect <= MAX_ASPECT):  # NaN fails too
            raise ValueError(f"recipe aspect must be in [0, {MAX_ASPECT:g}] (0: no crop), "
                             f"got {self.aspect}")
        if not (self.spacing >= 0 and math.isfinite(self.spacing)):
            raise ValueError(f"recipe spacing must be >= 0 (0: as stored), got {self.spacing}")
        if self.resize not in RESIZES or self.scale not in SCALES:
            raise ValueError(f"recipe resize must be one of {RESIZES} and scale one of {SCALES}")
        if self.shrink not in SHRINKS:
            raise ValueError(f"recipe shrink must be one of {SHRINKS}, got {self.shrink!r}")

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> InputRecipe:
        """A model's recipe; a record from before ``shrink`` existed is the INTER_AREA one it was
        trained with (our older models: the named recipe ``sonostream-area``)."""
        if not text:
            return SONOSTREAM_AREA
        d = json.loads(text) if isinstance(text, str) else dict(text)
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"input recipe has unknown keys {sorted(unknown)}")
        if "shrink" not in d and d.get("name", "sonostream") == "sonostream":
            return dataclasses.replace(cls(**d), name=SONOSTREAM_AREA.name)
        return cls(**d)

    def to_input(self, image: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """uint8 [h, w] at the input size → float32 [0, 1] (written into ``out`` if given)."""
        out = np.empty(image.shape, np.float32) if out is None else out
        if self.scale == "minmax":  # exact, not through the byte-scaled stored image
            return minmax(image, out)
        return np.multiply(self.stored(image), np.float32(1 / 255), out=out, casting="unsafe")

    def stored(self, image: np.ndarray) -> np.ndarray:
        """uint8 [h, w] at the input size → the uint8 image training data sets hold, whose v / 255
        is this recipe's input (min-max: stretched to 0..255; equalise: equalised)."""
        if self.scale == "minmax":
            return bytescale(image)
        if self.scale == "equalise":
            return equalise(image)
        return image

    def polar_geometry(self, geometry):
        """A sector's geometry narrowed to the recipe's aspect (the release's crop of a polar frame)."""
        return crop_geometry(geometry, self.aspect) if self.aspect else geometry

    def polar_map(self, geometry, size):
        """The sector → polar resampling this recipe's model was trained with."""
        from engines.polar import PolarMap

        return PolarMap(self.polar_geometry(geometry), size, shrink=self.shrink)

    def crop_rect(self, rect: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        """A crop rectangle (x, y, w, h) cut to the recipe's aspect about its centre."""
        if not self.aspect:
            return rect
        x, y, w, h = rect
        y0, x0, ch, cw = ratio_window(h, w, self.aspect)
        return x + x0, y + y0, cw, ch


SONOSTREAM = InputRecipe(shrink="halving")
SONOSTREAM_AREA = InputRecipe("sonostream-area")  # our models trained before the halving shrink
SONOSTREAM_EQUALISED = InputRecipe("sonostream-equalised", shrink="halving", scale="equalise")
FETALNAV = InputRecipe("fetalnav", aspect=1.5, spacing=0.5, resize="bilinear", scale="minmax")
RECIPES = {r.name: r for r in (SONOSTREAM, SONOSTREAM_AREA, SONOSTREAM_EQUALISED, FETALNAV)}


def recipe_named(name: str) -> InputRecipe:
    if name not in RECIPES:
        raise ValueError(f"unknown input recipe {name!r}; expected one of {sorted(RECIPES)}")
    return RECIPES[name]


def equalise(image: np.ndarray) -> np.ndarray:
    """OpenCV's histogram equalisation of a uint8 image (its darkest level stays 0): each level
    becomes its rank, so a frame looks the same under any monotone gain or contrast curve."""
    return cv2.equalizeHist(np.ascontiguousarray(image, np.uint8))


def minmax(image: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """The release's ``Rescale((0, 1))``: (v - min) / (max - min); a flat image becomes 0, or 1
    where it is one non-zero value (its rule: divide by max when the range is under 1e-5)."""
    x = np.asarray(image, np.float32)
    lo, hi = float(x.min()), float(x.max())
    den = hi - lo if abs(hi - lo) >= 1e-5 else hi
    out = np.empty(x.shape, np.float32) if out is None else out
    if abs(den) < 1e-5:
        out[...] = 0.0
        return out
    np.subtract(x, np.float32(lo), out=out)
    return np.multiply(out, np.float32(1 / den), out=out)


def ratio_window(h: int, w: int, aspect: float) -> tuple[int, int, int, int]:
    """(y0, x0, rows, cols) that the release's ``CropToRatio(aspect)`` keeps of an h×w image."""
    actual = h / float(w)
    rows, cols = h, w
    if actual > aspect:
        rows = int(h * aspect / actual)
    else:
        cols = int(w * actual / aspect)
    return h // 2 - rows // 2, w // 2 - cols // 2, rows, cols  # its CropTo: centre - size // 2


def crop_to_ratio(image: np.ndarray, aspect: float) -> np.ndarray:
    y0, x0, rows, cols = ratio_window(*image.shape[:2], aspect)
    return image[y0 : y0 + rows, x0 : x0 + cols]


def crop_geometry(g, aspect: float):
    """The central part of a sector whose polar frame has rows / columns = ``aspect``.

    A polar frame's rows span the depth (r_max - r_min) and its columns the beam angle; its
    width is taken as the arc length at mid-depth (the release does not say how its polar
    frames were scaled across). Deep frames lose depth at both ends, wide ones angle at both
    sides, as ``CropToRatio`` cuts the centre."""
    depth = g.r_max - g.r_min
    span = g.angle_max - g.angle_min
    arc = 0.5 * (g.r_min + g.r_max) * span
    if depth / arc > aspect:
        keep = aspect * arc / depth
        cut = 0.5 * depth * (1 - keep)
        return dataclasses.replace(g, r_min=g.r_min + cut, r_max=g.r_max - cut)
    keep = depth / (aspect * arc)
    cut = 0.5 * span * (1 - keep)
    return dataclasses.replace(g, angle_min=g.angle_min + cut, angle_max=g.angle_max - cut)


_BITS = 22  # Pillow's PRECISION_BITS for 8-bit images (32 - 8 - 2)


def _pillow_weights(n_in: int, n_out: int) -> np.ndarray:
    """Pillow's BILINEAR coefficients (precompute_coeffs + normalize_coeffs_8bpc) as a matrix."""
    scale = n_in / n_out
    support = max(scale, 1.0)  # the triangle's support widens when shrinking (antialiasing)
    k = np.zeros((n_out, n_in))
    for i in range(n_out):
        centre = (i + 0.5) * scale
        lo, hi = max(int(centre - support + 0.5), 0), min(int(centre + support + 0.5), n_in)
        w = np.maximum(1.0 - np.abs((np.arange(lo, hi) - centre + 0.5) / support), 0.0)
        k[i, lo:hi] = w / w.sum() if w.sum() else w
    return np.trunc(k * (1 << _BITS) + np.where(k < 0, -0.5, 0.5)).astype(np.int64)


def _pass(image: np.ndarray, weights: np.ndarray) -> np.ndarray:
    acc = image.astype(np.int64) @ weights.T + (1 << (_BITS - 1))
    return np.clip(acc >> _BITS, 0, 255).astype(np.uint8)


def resize_bilinear(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 [h, w] → [rows, cols] as Pillow resizes an 8-bit image with BILINEAR: a triangle
    filter widened when shrinking, fixed-point weights, the horizontal pass first."""
    rows, cols = size
    out = np.ascontiguousarray(image, np.uint8)
    if out.shape[1] != cols:
        out = _pass(out, _pillow_weights(out.shape[1], cols))
    if out.shape[0] != rows:
        out = _pass(out.T, _pillow_weights(out.shape[0], rows)).T
    return np.ascontiguousarray(out)


def bytescale(image: np.ndarray) -> np.ndarray:
    """scipy's ``bytescale`` as ``imresize`` applies it to float data: min..max → 0..255."""
    x = np.asarray(image, np.float64)
    lo, hi = float(x.min()), float(x.max())
    scale = 255.0 / ((hi - lo) or 1.0)
    return (np.clip((x - lo) * scale, 0, 255) + 0.5).astype(np.uint8)


def release_input(image: np.ndarray, recipe: InputRecipe, size: int) -> np.ndarray:
    """A frame at its resampled spacing → the release's input, as uint8 (its imresize output,
    stretched to 0..255 so that v / 255 is its min-max scaling)."""
    crop = crop_to_ratio(image, recipe.aspect) if recipe.aspect else image
    if recipe.resize == "bilinear":
        small = resize_bilinear(bytescale(crop), (size, size))
    else:
        import cv2

        small = cv2.resize(bytescale(crop), (size, size), interpolation=cv2.INTER_AREA)
    if recipe.scale == "minmax":
        small = bytescale(small)
    return small
