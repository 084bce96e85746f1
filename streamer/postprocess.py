"""Model outputs → per-class decisions, peaks and boxes in source-frame pixels, uint8 maps.

Scores become probabilities by the model's activation, optionally smoothed over time (EMA) and
decided with hysteresis so a class does not flicker. Each class map is upsampled (4 grid cells
per map cell, at most the model input's size), its peak found, and the connected component above
``box_fraction`` of the peak that holds the peak gives the box; both go back to the source frame through the crop geometry.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engines.classes import is_region
from engines.localisation import grid_cells, locate_cells
from engines.ood import OodModel
from engines.scoring import probabilities
from streamer.config import PostprocessConfig
from streamer.crop import Crop
from streamer.frames import ClassResult


class Hysteresis:
    """Per-class EMA of probabilities and on/off state: on at ≥ t_on, off below t_off."""

    def __init__(self, t_on: np.ndarray, t_off: np.ndarray, smoothing: float = 0.0):
        self.t_on, self.t_off, self.smoothing = t_on, t_off, smoothing
        self.level: np.ndarray | None = None
        self.state = np.zeros(len(t_on), bool)

    def update(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(smoothed probabilities, present flags) after one frame."""
        a = self.smoothing
        self.level = p.copy() if self.level is None else a * self.level + (1 - a) * p
        self.state = np.where(self.state, self.level >= self.t_off, self.level >= self.t_on)
        return self.level, self.state.copy()


@dataclass(frozen=True)
class Localisation:
    peak: tuple[int, int] | None
    box: tuple[int, int, int, int] | None


def localise(class_map: np.ndarray, crop: Crop, fraction: float = 0.5) -> Localisation:
    """Peak and box of one map [h, w] in source pixels (no box when the map has no positive peak)."""
    return Localisation(*places(np.asarray(class_map)[None], crop, fraction)[0])


def places(maps: np.ndarray, crop: Crop, fraction: float = 0.5) -> list[tuple]:
    """(peak, box) of every map [C, h, w] in source pixels, through the crop's tables (box None
    without a positive peak; both None for a map that holds no number)."""
    cells = grid_cells(np.shape(maps), crop.size)
    grid = crop.source_grid(cells)
    return [(None, None) if f is None else (grid.peak(f[0], f[1]), f[2] and grid.box(*f[2]))
            for f in locate_cells(maps, cells, fraction)]


def maps_uint8(maps: np.ndarray) -> np.ndarray:
    """[C, h, w] float → uint8, each class scaled so its positive peak is 255 (negatives → 0)."""
    m = np.asarray(maps, np.float32)
    peak = m.reshape(len(m), -1).max(axis=1)
    scale = (255.0 / np.where(peak > 0, peak, np.inf)).astype(np.float32)  # no positive peak: 0
    return np.clip(m * scale[:, None, None] + 0.5, 0, 255).astype(np.uint8)


class Postprocessor:
    """Stage: (scores [C], maps [C,h,w], crop) → (ClassResults, uint8 maps or None)."""

    def __init__(self, classes: tuple[str, ...], activation: str, config: PostprocessConfig,
                 ood: OodModel | None = None):
        self.classes, self.activation, self.config = tuple(classes), activation, config
        self.regions = [is_region(c) for c in self.classes]  # classes that have a place
        self.ood = ood
        t_on = np.array([config.threshold_for(c) for c in self.classes])
        self.hysteresis = Hysteresis(t_on, t_on - config.hysteresis, config.smoothing)

    def process(self, scores: np.ndarray, maps: np.ndarray, crop: Crop
                ) -> tuple[tuple[ClassResult, ...], np.ndarray | None]:
        if len(scores) != len(self.classes) or len(maps) != len(self.classes):
            raise ValueError(f"expected {len(self.classes)} classes, got scores {np.shape(scores)} "
                             f"and maps {np.shape(maps)}")
        level, present = self.hysteresis.update(probabilities(scores, self.activation))
        located = places(maps, crop, self.config.box_fraction)  # Background: never a place
        results = tuple(ClassResult(name, p, on, *(place if region else (None, None)))
                        for name, p, on, region, place in zip(self.classes, level.tolist(),
                        present.tolist(), self.regions, located, strict=True))
        return results, (maps_uint8(maps) if self.config.maps else None)

    def familiarity(self, scores: np.ndarray, features: np.ndarray | None
                    ) -> tuple[float | None, bool | None]:
        """(ood, familiar) of one frame, or (None, None) when the model carries no statistics
        (or they need a features output this backend did not give)."""
        if self.ood is None or (self.ood.needs_features and features is None):
            return None, None
        ood, familiar = self.ood(np.asarray(scores)[None], None if features is None else
                                 np.asarray(features)[None])
        return float(ood[0]), bool(familiar[0])
