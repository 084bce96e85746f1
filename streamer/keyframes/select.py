"""Which frames of an exam to keep: per region, the best ``k``, none a near-duplicate of another.

A frame is a candidate for a region when the screen could be read (not frozen, the fan settled,
the model familiar with what it saw) and the region is present, at or above its decision
threshold, with its peak well inside the fan rectangle. Its quality is its confidence (the
score's log-odds above the threshold's, as a fraction of CONFIDENT's: 0 at the threshold, 1 at
0.999 and above) scaled by how far inside the fan its peak lies (×1 at the centre, ×½ on the
edge): confidence first, and of two confident frames the one whose region sits in the middle of
the view. Log-odds, because a model's scores crowd near 1: 0.988 and 0.9999 differ little as
numbers but much as evidence (on the simulated sweeps, a limb taken for the spine at 0.988 beat
the spine's own frames under a linear margin).

Two frames are near-duplicates when they are less than ``min_gap_s`` apart on the source's clock
or their thumbnails (the fan crop, grey, THUMB_SIZE square) correlate above ``duplicate_corr``.
A candidate that duplicates none of the kept frames joins them while fewer than ``k`` are kept,
else replaces the worst when it is better. One that duplicates kept frames replaces them only if
it beats them all: the best moment of a stretch wins, and kept frames stay pairwise apart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from streamer.crop import Crop
from streamer.frames import ClassResult, FrameResult

MIN_GAP_S = 2.0  # kept frames of a region are at least this many seconds apart (source clock)
DUPLICATE_CORR = 0.9  # thumbnails correlating above this show the same view (frozen: 1.0)
THUMB_SIZE = 32  # the thumbnail's side: coarse anatomy, not speckle
MIN_INSET = 0.1  # the peak lies at least this fraction of the fan's half-width/height inside it
CONFIDENT = 0.999  # a score at or above this is fully confident (confidence 1)


def frame_usable(result: FrameResult) -> bool:
    """The screen was read well enough to keep anything of this frame."""
    fan = result.fan
    return (not result.frozen and result.familiar is not False
            and (fan is None or fan.settled) and result.crop is not None
            and result.image is not None)


def peak_inset(peak: tuple[int, int], crop: Crop) -> float:
    """How far inside the fan rectangle the peak lies: 0 on an edge, 1 at the centre (<0 outside)."""
    half_w, half_h = crop.w / 2, crop.h / 2
    dx = (half_w - abs(peak[0] - (crop.x + half_w))) / half_w
    dy = (half_h - abs(peak[1] - (crop.y + half_h))) / half_h
    return min(dx, dy)


def _log_odds(p: float) -> float:
    p = min(max(p, 1e-9), 1.0 - 1e-9)
    return math.log(p / (1.0 - p))


def confidence(score: float, threshold: float) -> float:
    """0 at the threshold, 1 at CONFIDENT and above, linear in log-odds between."""
    span = _log_odds(CONFIDENT) - _log_odds(threshold)
    if span <= 0:
        return 1.0
    return min(max((_log_odds(score) - _log_odds(threshold)) / span, 0.0), 1.0)


def region_quality(c: ClassResult, crop: Crop | None, threshold: float) -> float | None:
    """0..1, higher is better; None when the region is not a candidate in this frame."""
    if not c.present or c.peak is None or crop is None or c.score < threshold:
        return None
    inset = peak_inset(c.peak, crop)
    if inset < MIN_INSET:
        return None
    return confidence(c.score, threshold) * (0.5 + 0.5 * min(inset, 1.0))


def thumbnail(image: np.ndarray, crop: Crop) -> np.ndarray:
    """The fan crop as a zero-mean unit vector (THUMB_SIZE² grey), for normalised correlation."""
    h, w = image.shape[:2]
    x0, y0 = max(0, crop.x), max(0, crop.y)
    x1, y1 = min(w, crop.x + crop.w), min(h, crop.y + crop.h)
    part = image[y0:max(y1, y0 + 1), x0:max(x1, x0 + 1)]
    if part.ndim == 3:
        part = cv2.cvtColor(part, cv2.COLOR_BGR2GRAY)
    small = cv2.resize(part, (THUMB_SIZE, THUMB_SIZE), interpolation=cv2.INTER_AREA)
    v = small.astype(np.float32).ravel()
    v -= v.mean()
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 0 else v


@dataclass(frozen=True, eq=False)  # one is the same candidate only as itself (identity)
class Candidate:
    region: str
    seq: int
    t_ns: int  # on the source's clock
    quality: float
    thumb: np.ndarray  # thumbnail(): a unit vector (all zeros for a flat crop)


@dataclass(frozen=True)
class Decision:
    keep: Candidate
    drop: tuple[Candidate, ...]  # kept frames it replaces (their files go)


class RegionBest:
    """The best ``k`` frames of one region, best first."""

    def __init__(self, k: int, min_gap_s: float = MIN_GAP_S, duplicate_corr: float = DUPLICATE_CORR):
        self.k, self.min_gap_ns, self.duplicate_corr = k, int(min_gap_s * 1e9), duplicate_corr
        self.kept: list[Candidate] = []

    def close_in_time(self, a: Candidate, t_ns: int) -> bool:
        return abs(a.t_ns - t_ns) < self.min_gap_ns

    def duplicates(self, c: Candidate) -> list[Candidate]:
        return [k for k in self.kept if self.close_in_time(k, c.t_ns)
                or float(k.thumb @ c.thumb) > self.duplicate_corr]

    def decide(self, c: Candidate) -> Decision | None:
        """What keeping ``c`` means (None: refused); nothing changes until commit()."""
        dups = self.duplicates(c)
        if dups:
            return Decision(c, tuple(dups)) if c.quality > max(d.quality for d in dups) else None
        if len(self.kept) < self.k:
            return Decision(c, ())
        worst = self.kept[-1]
        return Decision(c, (worst,)) if c.quality > worst.quality else None

    def commit(self, d: Decision) -> None:
        self.kept = self.after(d)

    def after(self, d: Decision) -> list[Candidate]:
        """The kept frames, best first, once ``d`` is committed."""
        kept = [x for x in self.kept if x not in d.drop] + [d.keep]
        return sorted(kept, key=lambda x: -x.quality)

    def view(self) -> tuple[tuple[int, float], ...]:
        """(t_ns, quality) of each kept frame: what the publishing thread pre-filters with."""
        return tuple((x.t_ns, x.quality) for x in self.kept)


def worth_a_look(view: tuple[tuple[int, float], ...], k: int, t_ns: int, quality: float,
                 min_gap_ns: int) -> bool:
    """The pipeline's O(k) pre-filter on a ``RegionBest.view()``: False only where decide()
    would refuse whatever the thumbnail (worse than a kept frame close in time, or than the
    worst of a full set)."""
    if len(view) >= k and quality <= view[-1][1]:
        return False
    return not any(abs(t - t_ns) < min_gap_ns and q >= quality for t, q in view)
