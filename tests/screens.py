"""Realistic obstetric scanner screens around a simulated probe sweep, for testing the streamer.

Drawn independently of the project's own screen (engines/simulator/screen.py): the live B-mode
sector of a :class:`engines.simulator.LiveFeed` sits in a black image area of a scanner UI (grey
panels or all black), with what real machines' video outputs show around and on it: typed
parameter text, a clock, a depth scale, an orientation mark, a grey-scale bar, a body mark, a
measurement results box, calipers, typed words, an arrow, a colour Doppler box, a dual view with
a frozen image, freezes, depth changes and zooms, and MJPG capture (JPEG) artefacts. Every frame
comes with the truth: the sector geometry in screen pixels, the visible rectangle, the feed's
labels and boxes in screen pixels, and the pixels the on-fan annotations overwrote.

Coordinates are continuous with pixel edges at integers (pixel (i, j) covers [j, j+1) x
[i, i+1)), as in engines.polar; the simulator draws with pixel centres at integers, so a native
fan point p lies at p + 0.5 in these coordinates.

    python -m tests.screens OUT.mp4 --frames 300 --seed 11 --ui black \
        --annotations bodymark,resultbox,calipers --doppler --dual --freeze 100:250 \
        --change 150:0.8:0:0 --jpeg 12 --width 1280 --height 720
"""

from __future__ import annotations

import argparse
import datetime
import math
import sys
from dataclasses import dataclass, field

import cv2
import numpy as np

from engines.classes import REGIONS
from engines.polar import SectorGeometry
from engines.simulator import LiveFeed

ANNOTATIONS = ("bodymark", "resultbox", "calipers", "text", "arrow")
ON_FAN = ("calipers", "text", "arrow")  # drawn on the image: recorded in Shown.annotation_mask
UIS = ("grey", "black")
SIZE_MIN, SIZE_MAX = (320, 240), (3840, 2160)
MIN_VISIBLE_BOX = 0.4  # a box clipped by a zoom to less than this share of its area is dropped

_FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX)
_WORDS = ("HEAD", "PLAC ANT", "PLAC POST", "LT KIDNEY", "RT KIDNEY", "SPINE", "STOMACH",
          "BLADDER", "CORD", "FEMUR", "4CH", "LVOT")
_SITES = ("ST ELSEWHERE MATERNITY", "NORTHGATE WOMENS UNIT", "RIVERBANK HOSP OB",
          "FETAL MEDICINE 3", "WESTFIELD ANTENATAL")
_PROBES = ("C1-6", "C2-9", "RAB6", "C5-1", "AC2-8", "CA1-7")
_PRESETS = ("OB 2/3", "OB 1", "OB Detail", "Fetal Echo", "OB Early")
_MACHINES = ("US-E8", "OBSCAN 7", "SONO X10", "ECHO 900", "MX-70")
_MEASURES = (("BPD", 4.5, 9.5, 2), ("HC", 16.0, 34.0, 1), ("AC", 15.0, 35.0, 1),
             ("FL", 3.0, 7.8, 2), ("CRL", 3.0, 8.0, 2), ("NT", 0.11, 0.32, 2))


def _int(name: str, v, lo: int | None = None, hi: int | None = None) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {v!r}")
    v = int(v)
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise ValueError(f"{name} must be within {lo}..{hi}, got {v}")
    return v


def _num(name: str, v) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a number, got {v!r}")
    if not math.isfinite(float(v)):
        raise ValueError(f"{name} must be finite, got {v!r}")
    return float(v)


@dataclass(frozen=True)
class ScreenSpec:
    """What a screen shows besides the sweep. ``changes``: the latest change at or before frame
    i applies, each relative to the initial layout ((f, 1, 0, 0) restores it)."""

    width: int = 1920
    height: int = 1080
    ui: str = "grey"
    annotations: tuple[str, ...] = ()
    greybar: bool = True
    doppler: bool = False
    dual: bool = False
    frozen_at: int = 0
    freeze: tuple[int, int] | None = None
    changes: tuple[tuple[int, float, float, float], ...] = ()
    jpeg: int = 0
    seed: int = 0

    def __post_init__(self):
        put = object.__setattr__
        put(self, "width", _int("width", self.width, SIZE_MIN[0], SIZE_MAX[0]))
        put(self, "height", _int("height", self.height, SIZE_MIN[1], SIZE_MAX[1]))
        if self.ui not in UIS:
            raise ValueError(f"ui must be one of {UIS}, got {self.ui!r}")
        if isinstance(self.annotations, str):
            raise ValueError(f"annotations must be a tuple of names from {ANNOTATIONS}, got a "
                             f"string {self.annotations!r}")
        names = tuple(dict.fromkeys(self.annotations))
        bad = [a for a in names if a not in ANNOTATIONS]
        if bad:
            raise ValueError(f"unknown annotation(s) {bad}; choose from {ANNOTATIONS}")
        put(self, "annotations", names)
        for name in ("greybar", "doppler", "dual"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
            put(self, name, bool(getattr(self, name)))
        put(self, "frozen_at", _int("frozen_at", self.frozen_at, 0))
        if self.freeze is not None:
            if len(tuple(self.freeze)) != 2:
                raise ValueError(f"freeze must be (first, end) frames, got {self.freeze!r}")
            a, b = (_int("freeze start", self.freeze[0], 0), _int("freeze end", self.freeze[1], 0))
            if b <= a:
                raise ValueError(f"freeze must satisfy start < end, got {a}:{b}")
            put(self, "freeze", (a, b))
        changes = []
        for c in self.changes:
            if len(tuple(c)) != 4:
                raise ValueError(f"a change is (from_frame, scale, dx, dy), got {c!r}")
            f, s = _int("change frame", c[0], 0), _num("change scale", c[1])
            dx, dy = _num("change dx", c[2]), _num("change dy", c[3])
            if not 0.3 < s <= 3.0:
                raise ValueError(f"a change's scale must lie in (0.3, 3], got {s}")
            if abs(dx) > 1 or abs(dy) > 1:
                raise ValueError(f"a change's move (dx, dy) is in screen heights, within "
                                 f"[-1, 1], got ({dx}, {dy})")
            changes.append((f, s, dx, dy))
        frames = [c[0] for c in changes]
        if len(set(frames)) != len(frames):
            raise ValueError(f"two changes start at the same frame: {sorted(frames)}")
        put(self, "changes", tuple(sorted(changes)))
        put(self, "jpeg", _int("jpeg", self.jpeg, 0, 100))
        put(self, "seed", _int("seed", self.seed))


@dataclass(frozen=True)
class View:
    sector: SectorGeometry  # screen pixels, the full (unclipped) sector
    rect: tuple[int, int, int, int]  # x, y, w, h of the visible sector's bounding rectangle
    labels: np.ndarray  # float32 [len(REGIONS)]
    boxes: dict[str, tuple[float, float, float, float]]  # x0, y0, x1, y1 screen pixels
    live: bool
    source_frame: int


@dataclass(frozen=True)
class Shown:
    image: np.ndarray  # uint8 [H, W, 3] BGR
    views: tuple[View, ...]  # the live view first
    frozen: bool
    doppler: bool
    annotation_mask: np.ndarray | None  # bool [H, W]


# -- geometry helpers --------------------------------------------------------------------------

def sector_mask(g: SectorGeometry, region: tuple[int, int, int, int]) -> np.ndarray:
    """bool [h, w]: pixels of region (x, y, w, h) whose centres lie in the sector."""
    x, y, w, h = region
    dx = (np.arange(x, x + w, dtype=np.float32) + 0.5 - np.float32(g.apex[0]))[None, :]
    dy = (np.arange(y, y + h, dtype=np.float32) + 0.5 - np.float32(g.apex[1]))[:, None]
    r = np.hypot(dx, dy)
    a = np.arctan2(dx, dy)
    return (r >= g.r_min) & (r <= g.r_max) & (a >= g.angle_min) & (a <= g.angle_max)


def _polar_point(g: SectorGeometry, u: float, v: float) -> tuple[float, float]:
    """Screen point at lateral u in [-1, 1] (of the half angle) and depth v in [0, 1]."""
    a = g.angle_min + (u + 1) / 2 * (g.angle_max - g.angle_min)
    r = g.r_min + v * (g.r_max - g.r_min)
    return g.apex[0] + r * math.sin(a), g.apex[1] + r * math.cos(a)


def _to_polar(g: SectorGeometry, x: float, y: float) -> tuple[float, float]:
    a = math.atan2(x - g.apex[0], y - g.apex[1])
    r = math.hypot(x - g.apex[0], y - g.apex[1])
    return ((a - g.angle_min) / (g.angle_max - g.angle_min) * 2 - 1,
            (r - g.r_min) / (g.r_max - g.r_min))


def _disk(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def _bbox(mask: np.ndarray, ox: int = 0, oy: int = 0) -> tuple[int, int, int, int] | None:
    pts = cv2.findNonZero(mask.astype(np.uint8))
    if pts is None:
        return None
    x, y, w, h = cv2.boundingRect(pts)
    return x + ox, y + oy, w, h


def _font_scale(height: float, font: int, thick: int) -> float:
    return height / cv2.getTextSize("H0", font, 1.0, thick)[0][1]


# -- the per-layout state ----------------------------------------------------------------------

@dataclass
class _Place:
    """One view's placement: native edge point p -> scale * p + offset."""

    scale: float
    offset: tuple[float, float]
    area: tuple[int, int, int, int]  # where it is clipped (its image area)
    sector: SectorGeometry
    rect: tuple[int, int, int, int]
    visible: np.ndarray  # bool over area: sector pixels on screen
    warp: tuple[int, int, int, int]  # region the fan is warped into

    def matrix(self) -> np.ndarray:
        """warpAffine matrix (pixel-centre indices) from the native image into self.warp."""
        s, (ox, oy), (wx, wy) = self.scale, self.offset, self.warp[:2]
        return np.array([[s, 0, ox + 0.5 * s - 0.5 - wx], [0, s, oy + 0.5 * s - 0.5 - wy]])

    def boxes(self, native: dict) -> tuple[dict, np.ndarray]:
        s, (ox, oy) = self.scale, self.offset
        rx, ry, rw, rh = self.rect
        out = {}
        for k, (x0, y0, x1, y1) in native.items():
            b = (x0 * s + ox, y0 * s + oy, x1 * s + ox, y1 * s + oy)
            c = (max(b[0], rx), max(b[1], ry), min(b[2], rx + rw), min(b[3], ry + rh))
            full = (b[2] - b[0]) * (b[3] - b[1])
            kept = max(c[2] - c[0], 0) * max(c[3] - c[1], 0)
            if full > 0 and kept >= MIN_VISIBLE_BOX * full:
                out[k] = tuple(float(v) for v in c)
        labels = np.array([r in out for r in REGIONS], dtype=np.float32)
        return out, labels


@dataclass
class _Overlay:
    """Alpha-blended pixels: flat indices, alpha [n, 1], colour [n, 3]."""

    idx: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    alpha: np.ndarray = field(default_factory=lambda: np.zeros((0, 1), np.float32))
    colour: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.float32))

    def add(self, canvas: np.ndarray, colour) -> None:
        idx = np.flatnonzero(canvas)
        self.idx = np.concatenate([self.idx, idx])
        a = canvas.reshape(-1)[idx].astype(np.float32)[:, None] / 255.0
        self.alpha = np.concatenate([self.alpha, a])
        c = np.broadcast_to(np.asarray(colour, np.float32), (len(idx), 3))
        self.colour = np.concatenate([self.colour, c])

    def apply(self, img: np.ndarray) -> None:
        if not len(self.idx):
            return
        flat = img.reshape(-1, 3)
        px = flat[self.idx].astype(np.float32)
        flat[self.idx] = (px + (self.colour - px) * self.alpha + 0.5).astype(np.uint8)


@dataclass
class _Layout:
    bg: np.ndarray
    live: _Place
    overlay: _Overlay
    annotation_mask: np.ndarray | None
    doppler: tuple | None  # (x, y, w, h, inbox, |n1|, sign, outline overlay)
    furniture: dict
    anchors: dict  # on-fan annotation name -> screen anchor


# -- the screen --------------------------------------------------------------------------------

class HospitalScreen:
    """A scanner's video output around a live feed; ``frame(i)`` renders frame i on demand."""

    def __init__(self, feed: LiveFeed, spec: ScreenSpec | None = None):
        spec = ScreenSpec() if spec is None else spec
        if not isinstance(spec, ScreenSpec):
            raise TypeError(f"spec must be a ScreenSpec, got {type(spec).__name__}")
        g = feed.geom
        if g.kind != "curvilinear":
            raise ValueError(f"the feed's probe must be curvilinear, got {g.kind}")
        self.feed, self.spec = feed, spec
        self.width, self.height = spec.width, spec.height
        self.s = spec.height / 1080
        self._native = tuple(feed.size)
        self._apex_n = (float(g.apex[0]) + 0.5, float(g.apex[1]) + 0.5)
        self._r0, self._r1, self._half = float(g.r0), float(g.r1), float(g.half_angle)
        self._ui_layout()
        self._base_places()
        for c in spec.changes:  # fail early on a change that moves the sector off the area
            if self._visible_share(self._state_geometry(c)) < 0.05:
                raise ValueError(f"change {c} moves the sector (almost) out of the image area")
        self._layouts: dict[int, _Layout] = {}
        self._ui_bg: np.ndarray | None = None
        self._frozen_view: tuple[View, np.ndarray] | None = None
        self._held: tuple[int, Shown] | None = None
        rng = np.random.default_rng([spec.seed, 77])
        self._t0 = datetime.datetime(2024, 1, 1, 8) + datetime.timedelta(
            days=int(rng.integers(0, 700)), seconds=int(rng.integers(0, 9 * 3600)))

    # -- public ----------------------------------------------------------------------------------
    @property
    def image_area(self) -> tuple[int, int, int, int]:
        """x, y, w, h of the black image area (both views' areas for a dual view)."""
        return self._area

    def furniture(self, i: int = 0) -> dict[str, tuple[int, int, int, int]]:
        """Rectangles (x, y, w, h) of what frame i shows besides the sectors and on-fan
        annotations: image_area, greybar, colourbar, depth0/depth1, mark0/mark1, bodymark,
        resultbox (only those drawn)."""
        i = self._source(i)[0]
        return dict(self._layout(self._state(i)).furniture)

    def frame(self, i: int) -> Shown:
        i = _int("frame index", i, 0)
        src, frozen = self._source(i)
        if frozen:
            if self._held is None or self._held[0] != src:
                self._held = (src, self._render(src))
            shown = self._held[1]
            views = tuple(View(v.sector, v.rect, v.labels.copy(), dict(v.boxes), False,
                               v.source_frame) for v in shown.views)
            mask = None if shown.annotation_mask is None else shown.annotation_mask.copy()
            return Shown(shown.image.copy(), views, True, shown.doppler, mask)
        return self._render(i)

    # -- layout ----------------------------------------------------------------------------------
    def _source(self, i: int) -> tuple[int, bool]:
        f = self.spec.freeze
        if f is not None and f[0] < i < f[1]:
            return f[0], True
        return i, False

    def _state(self, i: int) -> int:
        state = -1
        for k, c in enumerate(self.spec.changes):
            if c[0] <= i:
                state = k
        return state

    def _ui_layout(self) -> None:
        W, H = self.width, self.height
        rng = np.random.default_rng([self.spec.seed, 101])
        self._top = int(round(H * rng.uniform(0.065, 0.085)))
        self._bottom = int(round(H * rng.uniform(0.045, 0.065)))
        self._left = int(round(W * rng.uniform(0.11, 0.15)))
        self._right = int(round(W * rng.uniform(0.075, 0.10)))
        ax, ay = self._left, self._top
        aw, ah = W - self._left - self._right, H - self._top - self._bottom
        self._area = (ax, ay, aw, ah)
        if self.spec.dual:
            half = aw // 2
            self._areas = [(ax, ay, half, ah), (ax + half, ay, aw - half, ah)]
        else:
            self._areas = [self._area]
        self._fill = rng.uniform(0.75, 0.80)
        self._drop = rng.uniform(0.012, 0.03) * H
        self._jitter = rng.uniform(-1, 1)

    def _base_places(self) -> None:
        h0, w0 = self._native
        s = self.s
        m = 8 * s
        scale = min(self._fill * self.height / h0,
                    min((a[2] - 2 * m) / w0 for a in self._areas),
                    min((a[3] - self._drop - m) / h0 for a in self._areas))
        self._scale0 = scale
        self._offsets = []
        for ax, ay, aw, _ in self._areas:
            free = (aw - w0 * scale) / 2
            ox = round(ax + free + self._jitter * max(min(20 * s, free - m), 0))
            oy = round(ay + self._drop)
            self._offsets.append((float(ox), float(oy)))

    def _geometry(self, scale: float, offset) -> SectorGeometry:
        ax, ay = self._apex_n
        return SectorGeometry((scale * ax + offset[0], scale * ay + offset[1]),
                              scale * self._r0, scale * self._r1, -self._half, self._half)

    def _state_geometry(self, change) -> tuple[float, tuple[float, float]]:
        """(scale, offset) of the live view under a change: scaled about the apex, moved."""
        _, c, dx, dy = change
        s0, (ox, oy) = self._scale0, self._offsets[0]
        ax, ay = s0 * self._apex_n[0] + ox, s0 * self._apex_n[1] + oy
        s = s0 * c
        apex = (ax + dx * self.height, ay + dy * self.height)
        return s, (apex[0] - s * self._apex_n[0], apex[1] - s * self._apex_n[1])

    def _visible_share(self, place) -> float:
        g = self._geometry(*place)
        x, y, w, h = self._areas[0]
        u, v = np.meshgrid(np.linspace(-1, 1, 25), np.linspace(0, 1, 25))
        pts = [_polar_point(g, a, b) for a, b in zip(u.ravel(), v.ravel(), strict=True)]
        return float(np.mean([x <= px < x + w and y <= py < y + h for px, py in pts]))

    def _place(self, view: int, scale: float, offset) -> _Place:
        g = self._geometry(scale, offset)
        area = self._areas[view]
        vis = sector_mask(g, area)
        rect = _bbox(vis, area[0], area[1])
        if rect is None:
            raise ValueError("the sector lies outside the image area")
        x, y, w, h = rect
        ax, ay, aw, ah = area
        x0, y0 = max(x - 2, ax), max(y - 2, ay)
        x1, y1 = min(x + w + 2, ax + aw), min(y + h + 2, ay + ah)
        return _Place(scale, offset, area, g, rect, vis, (x0, y0, x1 - x0, y1 - y0))

    def _layout(self, state: int) -> _Layout:
        hit = self._layouts.get(state)
        if hit is not None:
            return hit
        base = None if state < 0 else self._layout(-1)
        if state < 0:
            live = self._place(0, self._scale0, self._offsets[0])
        else:
            live = self._place(0, *self._state_geometry(self.spec.changes[state]))
        places = [live]
        if self.spec.dual:
            places.append(self._place(1, self._scale0, self._offsets[1]))
        W, H = self.width, self.height
        bg = self._background().copy()
        furniture = {"image_area": self._area, **self._ui_furniture}
        occupied = np.zeros((H, W), bool)  # inside the image area: sectors and furniture
        m = max(2, round(4 * self.s))
        for k, p in enumerate(places):
            ax, ay, aw, ah = p.area
            grown = cv2.dilate(p.visible.astype(np.uint8), _disk(m)) > 0
            occupied[ay:ay + ah, ax:ax + aw] |= grown
            for name, rect in self._view_marks(bg, p, k).items():
                furniture[name] = rect
                x, y, w, h = rect
                occupied[max(y - m, 0):y + h + m, max(x - m, 0):x + w + m] = True
        wanted = self.spec.annotations
        for name in ("resultbox", "bodymark"):
            if name in wanted:
                rect = self._place_box(bg, name, live.area, occupied, m)
                if rect is not None:
                    furniture[name] = rect
                    x, y, w, h = rect
                    occupied[max(y - m, 0):y + h + m, max(x - m, 0):x + w + m] = True
        for p in places:  # the image under the fans stays black, whatever was drawn near them
            ax, ay, aw, ah = p.area
            under = cv2.dilate(p.visible.astype(np.uint8), _disk(1)) > 0
            bg[ay:ay + ah, ax:ax + aw][under] = 0
        if self.spec.dual:
            view, fan = self._frozen(places[1])
            x, y, w, h = places[1].warp
            cv2.max(bg[y:y + h, x:x + w], fan, dst=bg[y:y + h, x:x + w])
        overlay, mask, anchors = self._annotations(live, base)
        doppler = self._doppler(live) if self.spec.doppler else None
        lay = _Layout(bg, live, overlay, mask, doppler, furniture, anchors)
        self._layouts[state] = lay
        return lay

    # -- UI --------------------------------------------------------------------------------------
    def _background(self) -> np.ndarray:
        if self._ui_bg is not None:
            return self._ui_bg
        W, H, s = self.width, self.height, self.s
        spec = self.spec
        rng = np.random.default_rng([spec.seed, 202])
        grey = spec.ui == "grey"
        g = int(rng.integers(44, 63))
        self._font = font = _FONTS[int(rng.integers(len(_FONTS)))]
        self._aa = aa = cv2.LINE_AA if rng.random() < 0.6 else cv2.LINE_8
        self._ink = ink = [(235, 235, 235), (225, 232, 238), (215, 235, 240)][int(rng.integers(3))]
        self._thin = thin = max(1, round(s))
        img = np.zeros((H, W, 3), np.uint8)
        T, B, L, R = self._top, self._bottom, self._left, self._right
        ax, ay, aw, ah = self._area
        light = (g + 45,) * 3
        if grey:
            img[:] = g
            img[0:T] = g - 6
            cv2.line(img, (0, T - 2), (W, T - 2), light, max(1, round(2 * s)))
            cv2.rectangle(img, (0, T), (L - 3, H - B - 3), (g + 5,) * 3, -1)
            cv2.rectangle(img, (0, T), (L - 3, H - B - 3), light, thin)
            cv2.rectangle(img, (W - R + 2, T), (W - 1, H - B - 3), (g + 5,) * 3, -1)
            cv2.rectangle(img, (W - R + 2, T), (W - 1, H - B - 3), light, thin)
            img[ay:ay + ah, ax:ax + aw] = 0
            cv2.rectangle(img, (ax - 1, ay - 1), (ax + aw, ay + ah), (g + 28,) * 3, 1)
        # top bar
        fs = _font_scale(20 * s, font, thin)
        ty = int(T * 0.62)
        site = str(rng.choice(_SITES))
        probe, preset = str(rng.choice(_PROBES)), str(rng.choice(_PRESETS))
        machine = str(rng.choice(_MACHINES))
        mi, tis = rng.uniform(0.6, 1.3), rng.uniform(0.1, 0.6)
        cv2.putText(img, site, (round(14 * s), ty), font, fs, ink, thin, aa)
        cv2.putText(img, f"{machine}  {probe}  {preset}", (round(W * 0.30), ty), font, fs, ink,
                    thin, aa)
        cv2.putText(img, f"MI {mi:.1f}  TIs {tis:.1f}", (round(W * 0.56), ty), font, fs, ink,
                    thin, aa)
        self._clock_org = (round(W * 0.74), ty)
        self._clock_scale = fs
        # left column: parameters
        self._depth_cm = float(rng.choice([10.0, 12.0, 13.5, 14.0, 15.0, 16.0, 18.0]))
        lines = ["2D", f"Frq {rng.choice(['Gen', 'Res', 'Pen', 'H', 'M'])}",
                 f"Gn {int(rng.integers(35, 70))}", f"DR {int(rng.integers(50, 80))}",
                 f"FR {int(rng.integers(18, 60))}Hz", f"D {self._depth_cm:.1f}cm",
                 "THI" if rng.random() < 0.7 else "FUND", f"SRI {int(rng.integers(1, 5))}",
                 f"CRI {int(rng.integers(0, 4))}", "Pwr 100%"]
        if spec.doppler:
            lines += ["", "CF", f"Gn {int(rng.integers(30, 60))}",
                      f"PRF {rng.uniform(0.6, 3.5):.1f}kHz", f"WF {int(rng.integers(60, 200))}Hz"]
        ps = _font_scale(17 * s, font, thin)
        step = 32 * s
        if grey:
            gh = round(step * 10 + 14 * s)
            cv2.rectangle(img, (round(8 * s), T + round(10 * s)),
                          (L - round(12 * s), min(T + round(10 * s) + gh, H - B - 8)),
                          (g + 12,) * 3, -1)
        for k, t in enumerate(lines):
            y = T + round((40 + step / s * k) * s)
            if t and y < H - B - 4:
                cv2.putText(img, t, (round(18 * s), y), font, ps, ink, thin, aa)
        # bottom bar: soft keys
        keys = ["Freeze", "Cine", "Measure", "Annotate", "Body Mark", "Report", "Store"]
        kw = (W - 2 * 14 * s) / len(keys)
        ks = _font_scale(15 * s, font, thin)
        for k, t in enumerate(keys):
            x0 = round(14 * s + k * kw)
            y0, y1 = H - B + round(6 * s), H - round(6 * s)
            if grey:
                cv2.rectangle(img, (x0 + 3, y0), (round(x0 + kw) - 3, y1), (g + 14,) * 3, -1)
                cv2.rectangle(img, (x0 + 3, y0), (round(x0 + kw) - 3, y1), light, 1)
            tw = cv2.getTextSize(t, font, ks, thin)[0][0]
            cv2.putText(img, t, (round(x0 + (kw - tw) / 2), round((y0 + y1) / 2 + 7 * s)),
                        font, ks, ink, thin, aa)
        # right column: grey-scale bar (and the colour Doppler scale)
        self._ui_furniture = {}
        bw, bh = max(3, round(26 * s)), max(16, round(256 * s))
        bx, by = W - R + round(14 * s), T + round(0.1 * H)
        if spec.greybar and by + bh < H - B:
            ramp = np.linspace(255, 0, bh).round().astype(np.uint8)
            img[by:by + bh, bx:bx + bw] = ramp[:, None, None]
            if grey:
                cv2.rectangle(img, (bx - 1, by - 1), (bx + bw, by + bh), light, 1)
            self._ui_furniture["greybar"] = (bx, by, bw, bh)
        if spec.doppler:
            cw, ch = max(3, round(16 * s)), max(16, round(180 * s))
            cx = bx + bw + round(24 * s)
            if by + ch < H - B:
                t = np.abs(np.linspace(1, -1, ch))[:, None]
                top = np.linspace(1, -1, ch)[:, None] > 0
                red = np.concatenate([0 * t, 60 * t ** 2, 60 + 195 * t], axis=1)
                blue = np.concatenate([60 + 195 * t, 90 * t ** 2, 0 * t], axis=1)
                bar = np.where(top, red, blue).round().astype(np.uint8)
                img[by:by + ch, cx:cx + cw] = bar[:, None, :]
                vs = _font_scale(12 * s, font, 1)
                v = rng.uniform(15, 60)
                lx = cx + cw + round(4 * s)
                for text, y in ((f"+{v:.1f}", by + round(10 * s)), (f"-{v:.1f}", by + ch),
                                ("cm/s", by + ch + round(20 * s))):
                    cv2.putText(img, text, (lx, y), font, vs, ink, 1, aa)
                self._ui_furniture["colourbar"] = (cx, by, cw, ch)
        self._ui_bg = img
        return img

    def _view_marks(self, bg: np.ndarray, p: _Place, k: int) -> dict:
        """A depth scale (a tick per cm, numbers every 5) beside the sector and an orientation
        mark by the probe face's left end, inside the view's area and outside its sector."""
        s, g = self.s, p.sector
        ax, ay, aw, ah = p.area
        rx, ry, rw, rh = p.rect
        out = {}
        thin = self._thin
        ns = _font_scale(13 * s, self._font, 1)
        width = round(44 * s)
        gap = round(14 * s)
        if rx + rw + gap + width <= ax + aw:
            x, side = rx + rw + gap, 1
        elif rx - gap - width >= ax:
            x, side = rx - gap, -1
        else:
            x = side = None
        if x is not None:
            face, far = g.apex[1] + g.r_min, g.apex[1] + g.r_max
            per_cm = (far - face) / self._depth_cm
            x0 = x - width if side < 0 else x
            canvas = np.zeros((ah, width + 1), np.uint8)  # over the area's rows, x0..x0+width
            for cm in range(int(self._depth_cm) + 1):
                y = round(face + cm * per_cm) - ay
                if not 2 <= y < ah - 2:
                    continue
                long = cm % 5 == 0
                ln = round((12 if long else 6) * s) + 1
                cv2.line(canvas, (x - x0, y), (x - x0 + side * ln, y), 255, thin)
                if long and cm:
                    tw = cv2.getTextSize(str(cm), self._font, ns, 1)[0][0]
                    tx = x - x0 + ln + round(4 * s) if side > 0 else x - x0 - ln - round(4 * s) - tw
                    cv2.putText(canvas, str(cm), (tx, y + round(6 * s)), self._font, ns, 255, 1,
                                self._aa)
            rect = _bbox(canvas, x0, ay)
            if rect is not None:
                roi = bg[ay:ay + ah, x0:x0 + width + 1]
                a = canvas.astype(np.float32)[..., None] / 255.0
                roi[:] = (roi * (1 - a) + np.float32(200) * a + 0.5).astype(np.uint8)
                out[f"depth{k}"] = rect
        # orientation mark: a small filled dot left of the probe face's left end
        fx, fy = _polar_point(g, -1.0, 0.0)
        r = max(2, round(5 * s))
        cx, cy = round(fx - 14 * s - r), round(fy + r)
        if ax + r + 2 <= cx < ax + aw - r - 2 and ay + r + 2 <= cy < ay + ah - r - 2:
            cv2.circle(bg, (cx, cy), r, (220, 220, 220), -1, cv2.LINE_AA)
            out[f"mark{k}"] = (cx - r - 1, cy - r - 1, 2 * r + 3, 2 * r + 3)
        return out

    def _place_box(self, bg, name: str, area, occupied: np.ndarray, m: int):
        """Draw the body mark or results box at the first free spot near the preferred corner
        (sliding along the area's edges), outside the sectors and other furniture."""
        s = self.s
        rng = np.random.default_rng([self.spec.seed, 300 + ANNOTATIONS.index(name)])
        if name == "bodymark":
            size = max(16, round(rng.uniform(70, 110) * s))
            w = h = size
            corners = ["LL", "LR"] if rng.random() < 0.5 else ["LR", "LL"]
            corners += ["UL", "UR"]
            draw = self._bodymark(rng, size)
        else:
            draw, w, h = self._resultbox(rng)
            corners = [str(rng.choice(["UL", "UR", "LL", "LR"]))]
            corners += [c for c in ("UL", "UR", "LR", "LL") if c not in corners]
        ax, ay, aw, ah = area
        pad = max(4, round(12 * s))
        step = max(2, round(8 * s))
        for corner in corners:
            x0 = ax + pad if corner[1] == "L" else ax + aw - pad - w
            y0 = ay + pad if corner[0] == "U" else ay + ah - pad - h
            sx = 1 if corner[1] == "L" else -1
            sy = 1 if corner[0] == "U" else -1
            for t in range(0, max(aw, ah) // step):
                for x, y in ((x0 + sx * t * step, y0), (x0, y0 + sy * t * step)):
                    if not (ax + pad <= x and x + w <= ax + aw - pad and ay + pad <= y
                            and y + h <= ay + ah - pad):
                        continue
                    if not occupied[y:y + h, x:x + w].any():
                        draw(bg, x, y)
                        return (x, y, w, h)
        return None

    def _bodymark(self, rng, b: int):
        """A pregnant abdomen's outline with a curled fetus and a thick probe bar."""
        col = (225, 225, 225) if rng.random() < 0.5 else (200, 200, 200)
        lw = max(1, round(1.6 * self.s))
        phi = rng.uniform(200, 340)
        fetus_left = rng.random() < 0.5

        def draw(img, x, y):
            def P(u, v):
                return round(x + u * b), round(y + v * b)

            base = 0.80
            cv2.ellipse(img, P(0.5, base), (round(0.40 * b), round(0.50 * b)), 0, 180, 360, col,
                        lw, cv2.LINE_AA)
            cv2.line(img, P(0.06, base), P(0.94, base), col, lw, cv2.LINE_AA)
            hx = 0.36 if fetus_left else 0.64
            cv2.circle(img, P(hx, 0.56), round(0.09 * b), col, lw, cv2.LINE_AA)
            cv2.ellipse(img, P(1 - hx + (0.04 if fetus_left else -0.04), 0.60),
                        (round(0.15 * b), round(0.10 * b)), 15 if fetus_left else -15,
                        200 if fetus_left else -20, 520 if fetus_left else 300, col, lw,
                        cv2.LINE_AA)  # the curled body: an open C
            a = math.radians(phi)
            cx, cy = 0.5 + 0.46 * math.cos(a), base + 0.56 * math.sin(a)  # just off the dome
            tx, ty = -math.sin(a) * 0.13, math.cos(a) * 0.13 * 0.5 / 0.4
            n = math.hypot(tx, ty) / 0.13
            tx, ty = tx / n, ty / n
            cv2.line(img, P(cx - tx, cy - ty), P(cx + tx, cy + ty), (245, 245, 245),
                     max(3, round(6 * self.s)), cv2.LINE_AA)

        return draw

    def _resultbox(self, rng):
        s, font = self.s, self._font
        k = int(rng.integers(1, 4))
        names = rng.choice(len(_MEASURES), size=k, replace=False)
        lines = []
        for n, j in enumerate(names, 1):
            name, lo, hi, dec = _MEASURES[int(j)]
            lines.append(f"{n} {name} {rng.uniform(lo, hi):.{dec}f} cm")
        if rng.random() < 0.5 or k == 1:
            lines.append(f"GA {int(rng.integers(11, 38))}w{int(rng.integers(0, 7))}d")
        lines = lines[:4]
        fs = _font_scale(15 * s, font, 1)
        lh = round(24 * s)
        pad = max(3, round(8 * s))
        tw = max(cv2.getTextSize(t, font, fs, 1)[0][0] for t in lines)
        w, h = tw + 2 * pad, lh * len(lines) + pad
        fill = (int(rng.integers(22, 40)),) * 3
        ink = (235, 235, 235) if rng.random() < 0.6 else (120, 235, 245)

        def draw(img, x, y):
            cv2.rectangle(img, (x, y), (x + w - 1, y + h - 1), fill, -1)
            cv2.rectangle(img, (x, y), (x + w - 1, y + h - 1), (190, 190, 190), 1)
            for n, t in enumerate(lines):
                cv2.putText(img, t, (x + pad, y + pad // 2 + lh * (n + 1) - round(6 * s)), font,
                            fs, ink, 1, self._aa)

        return draw, w, h

    # -- on-fan annotations --------------------------------------------------------------------
    def _annotation_items(self, size: float = 1.0):
        """(name, colour, draw(canvas, x, y), candidates (u, v), extent) per on-fan annotation;
        draw paints 255 (anti-aliased) around (x, y), within `extent` pixels of it. ``size``
        shortens the calipers' span and the arrow's shaft (for a sector too small for them)."""
        s = self.s
        items = []
        span = self._scale0 * (self._r1 - self._r0)
        for name in ON_FAN:
            if name not in self.spec.annotations:
                continue
            rng = np.random.default_rng([self.spec.seed, 500 + ANNOTATIONS.index(name)])
            cands = [(rng.uniform(-0.65, 0.65), rng.uniform(0.25, 0.8)) for _ in range(60)]
            if name == "calipers":
                colour = (0, 230, 255) if rng.random() < 0.5 else (70, 235, 70)
                length = rng.uniform(0.18, 0.32) * span * size
                phi = rng.uniform(0, math.pi)
                cross = rng.random() < 0.5
                arm = max(3, round(rng.uniform(6, 8) * s))
                thick = max(1, round(2 * s))
                gap = rng.uniform(6, 8) * s
                ls = _font_scale(12 * s, cv2.FONT_HERSHEY_SIMPLEX, 1)
                extent = length / 2 + arm + 30 * s

                def draw(c, x, y, length=length, phi=phi, cross=cross, arm=arm, thick=thick,
                         gap=gap, ls=ls):
                    d = np.array([math.cos(phi), math.sin(phi)])
                    p1 = np.array([x, y]) - d * length / 2
                    p2 = np.array([x, y]) + d * length / 2
                    for p in (p1, p2):
                        px, py = round(p[0]), round(p[1])
                        if cross:
                            k = round(arm * 0.75)
                            cv2.line(c, (px - k, py - k), (px + k, py + k), 255, thick)
                            cv2.line(c, (px - k, py + k), (px + k, py - k), 255, thick)
                        else:
                            cv2.line(c, (px - arm, py), (px + arm, py), 255, thick)
                            cv2.line(c, (px, py - arm), (px, py + arm), 255, thick)
                    clear = arm + 4 * s
                    t = clear
                    r = max(1, round(1.1 * s))
                    while t <= length - clear:
                        q = p1 + d * t
                        cv2.circle(c, (round(q[0]), round(q[1])), r, 255, -1)
                        t += gap
                    cv2.putText(c, "1", (round(p2[0] + arm + 4 * s), round(p2[1] - arm)),
                                cv2.FONT_HERSHEY_SIMPLEX, ls, 255, 1, cv2.LINE_AA)

            elif name == "text":
                colour = (245, 245, 245) if rng.random() < 0.5 else (0, 230, 255)
                word = str(rng.choice(_WORDS))
                font = _FONTS[int(rng.integers(len(_FONTS)))]
                thick = max(1, round(2 * s))
                fs = _font_scale(rng.uniform(20, 28) * s, font, thick)
                (tw, th), base = cv2.getTextSize(word, font, fs, thick)
                extent = tw / 2 + th + base + 4

                def draw(c, x, y, word=word, font=font, fs=fs, thick=thick, tw=tw, th=th):
                    cv2.putText(c, word, (round(x - tw / 2), round(y + th / 2)), font, fs, 255,
                                thick, cv2.LINE_AA)

            else:  # arrow
                colour = (250, 250, 250)
                psi = rng.uniform(0, 2 * math.pi)
                shaft, head, width = 60 * s * size, 18 * s, 16 * s
                thick = max(1, round(3 * s))
                extent = shaft + head + width

                def draw(c, x, y, psi=psi, shaft=shaft, head=head, width=width, thick=thick):
                    d = np.array([math.cos(psi), math.sin(psi)])
                    n = np.array([-d[1], d[0]])
                    tip = np.array([x, y])
                    base = tip - d * head
                    tail = base - d * shaft
                    cv2.line(c, tuple(int(v) for v in np.round(tail)),
                             tuple(int(v) for v in np.round(base + d)), 255, thick, cv2.LINE_AA)
                    tri = np.array([tip, base + n * width / 2, base - n * width / 2])
                    cv2.fillConvexPoly(c, np.round(tri * 16).astype(np.int32), 255,
                                       cv2.LINE_AA, 4)

            items.append((name, colour, draw, cands, int(math.ceil(extent)) + 4))
        return items

    def _annotations(self, live: _Place, base: _Layout | None):
        """Place the on-fan annotations where they lie wholly inside the visible sector (eroded)
        and clear of each other: first where the initial layout had them, else at the same
        place relative to the sector, else at the first free candidate; calipers and arrow
        that fit nowhere are tried shorter (0.7, 0.5); what still fits nowhere is left out.
        Returns the overlay, the mask and the anchors."""
        overlay = _Overlay()
        items = self._annotation_items()
        if not items:
            return overlay, None, {}
        H, W = self.height, self.width
        m = max(2, round(4 * self.s))
        ax, ay, aw, ah = live.area
        inside = np.zeros((H, W), np.uint8)
        inside[ay:ay + ah, ax:ax + aw] = live.visible
        inside = cv2.erode(inside, _disk(m), borderType=cv2.BORDER_CONSTANT, borderValue=0) > 0
        taken = np.zeros((H, W), bool)
        mask = np.zeros((H, W), bool)
        anchors = {}
        g = live.sector
        smaller = {f: self._annotation_items(f) for f in (0.7, 0.5)}
        for k, (name, *_) in enumerate(items):
            tries = []
            if base is not None and name in base.anchors:
                bx, by = base.anchors[name]
                tries.append((bx, by))
                tries.append(_polar_point(g, *_to_polar(base.live.sector, bx, by)))
            for version in (items, smaller[0.7], smaller[0.5]):  # full size first
                _, colour, draw, cands, e = version[k]
                found = None
                for x, y in tries + [_polar_point(g, u, v) for u, v in cands]:
                    x0, y0 = int(math.floor(x)) - e, int(math.floor(y)) - e
                    if x0 < 0 or y0 < 0 or x0 + 2 * e + 2 > W or y0 + 2 * e + 2 > H:
                        continue  # (near the screen's edge: never inside the eroded sector)
                    win = (slice(y0, y0 + 2 * e + 2), slice(x0, x0 + 2 * e + 2))
                    if not inside[win].any():
                        continue
                    canvas = np.zeros((2 * e + 2, 2 * e + 2), np.uint8)
                    draw(canvas, x - x0, y - y0)
                    on = canvas > 0
                    if on.any() and inside[win][on].all() and not taken[win][on].any():
                        found = (x, y, win, canvas, on)
                        break
                if found is not None:
                    x, y, win, canvas, on = found
                    full = np.zeros((H, W), np.uint8)
                    full[win] = canvas
                    overlay.add(full, colour)
                    mask[win] |= on
                    taken[win] |= cv2.dilate(on.astype(np.uint8), _disk(m)) > 0
                    anchors[name] = (x, y)
                    break
        return overlay, (mask if mask.any() else None), anchors

    # -- colour Doppler ----------------------------------------------------------------------------
    def _doppler(self, live: _Place):
        rng = np.random.default_rng([self.spec.seed, 600])
        u0 = rng.uniform(-0.65, 0.15)
        u1 = min(u0 + rng.uniform(0.4, 0.6), 0.75)
        v0 = rng.uniform(0.15, 0.4)
        v1 = min(v0 + rng.uniform(0.3, 0.45), 0.85)
        colour = (190, 190, 190) if rng.random() < 0.5 else (0, 215, 235)
        n1 = rng.standard_normal((7, 7)).astype(np.float32)
        n2 = rng.standard_normal((5, 5)).astype(np.float32)
        g = live.sector
        H, W = self.height, self.width
        a0 = g.angle_min + (u0 + 1) / 2 * (g.angle_max - g.angle_min)
        a1 = g.angle_min + (u1 + 1) / 2 * (g.angle_max - g.angle_min)
        r0 = g.r_min + v0 * (g.r_max - g.r_min)
        r1 = g.r_min + v1 * (g.r_max - g.r_min)
        ax, ay, aw, ah = live.area
        visible = np.zeros((H, W), np.uint8)
        visible[ay:ay + ah, ax:ax + aw] = live.visible
        # outline: two arcs and two radial edges
        canvas = np.zeros((H, W), np.uint8)
        c = (round(g.apex[0] * 16), round(g.apex[1] * 16))
        lw = max(1, round(1.4 * self.s))
        for r in (r0, r1):
            cv2.ellipse(canvas, c, (round(r * 16), round(r * 16)), 0,
                        90 - math.degrees(a1), 90 - math.degrees(a0), 255, lw, cv2.LINE_AA, 4)
        for a in (a0, a1):
            p, q = ((g.apex[0] + r * math.sin(a), g.apex[1] + r * math.cos(a)) for r in (r0, r1))
            cv2.line(canvas, (round(p[0] * 16), round(p[1] * 16)),
                     (round(q[0] * 16), round(q[1] * 16)), 255, lw, cv2.LINE_AA, 4)
        canvas[visible == 0] = 0
        outline = _Overlay()
        outline.add(canvas, colour)
        inner = SectorGeometry(g.apex, r0 + 3 * lw, max(r1 - 3 * lw, r0 + 3 * lw + 1),
                               a0 + 3 * lw / r1, a1 - 3 * lw / r1)
        rect = _bbox(sector_mask(inner, live.area) & live.visible, ax, ay)
        if rect is None:
            return None, outline
        x, y, w, h = rect
        inbox = sector_mask(inner, rect) & live.visible[y - ay:y - ay + h, x - ax:x - ax + w]
        f1 = cv2.resize(n1, (w, h), interpolation=cv2.INTER_CUBIC)
        f1 = (f1 - f1.mean()) / (f1.std() + 1e-6)
        f2 = cv2.resize(n2, (w, h), interpolation=cv2.INTER_CUBIC)
        return (x, y, w, h, inbox, np.abs(f1), f2 > 0), outline

    def _flow(self, img: np.ndarray, blobs, i: int) -> None:
        """Red/blue flow along the zero lines of a smooth field, pulsing at a fetal heart rate."""
        x, y, w, h, inbox, dist, towards = blobs
        t = i / self.feed.fps
        thr = np.float32(0.3 + 0.2 * (0.5 + 0.5 * math.sin(2 * math.pi * 2.3 * t)))
        sel = inbox & (dist < thr)
        if not sel.any():
            return
        v = 1 - dist[sel] / thr
        warm = towards[sel]
        hot = 110 + 145 * v
        mid = 90 * v * v
        zero = np.zeros_like(v)
        b = np.where(warm, zero, hot)
        r = np.where(warm, hot, zero)
        roi = img[y:y + h, x:x + w]
        roi[sel] = np.stack([b, mid, r], axis=1).round().astype(np.uint8)

    # -- frames ----------------------------------------------------------------------------------
    def _frozen(self, p: _Place) -> tuple[View, np.ndarray]:
        if self._frozen_view is None:
            fr = self.feed.fan_frame_at(self.spec.frozen_at)
            x, y, w, h = p.warp
            fan = cv2.warpAffine(fr.image, p.matrix(), (w, h), flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_CONSTANT, borderValue=0)
            boxes, labels = p.boxes(fr.boxes)
            view = View(p.sector, p.rect, labels, boxes, False, self.spec.frozen_at)
            self._frozen_view = (view, cv2.cvtColor(fan, cv2.COLOR_GRAY2BGR))
        return self._frozen_view

    def _render(self, i: int) -> Shown:
        lay = self._layout(self._state(i))
        p = lay.live
        fr = self.feed.fan_frame_at(i)
        out = lay.bg.copy()
        x, y, w, h = p.warp
        fan = cv2.warpAffine(fr.image, p.matrix(), (w, h), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        roi = out[y:y + h, x:x + w]
        cv2.max(roi, cv2.cvtColor(fan, cv2.COLOR_GRAY2BGR), dst=roi)
        if lay.doppler is not None:
            blobs, outline = lay.doppler
            if blobs is not None:
                self._flow(out, blobs, i)
            outline.apply(out)
        lay.overlay.apply(out)
        when = self._t0 + datetime.timedelta(seconds=int(i / self.feed.fps))
        cv2.putText(out, when.strftime("%Y/%m/%d  %H:%M:%S"), self._clock_org, self._font,
                    self._clock_scale, self._ink, self._thin, self._aa)
        if self.spec.jpeg:
            ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, self.spec.jpeg])
            out = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        boxes, labels = p.boxes(fr.boxes)
        views = [View(p.sector, p.rect, labels, boxes, True, i)]
        if self.spec.dual:
            views.append(self._frozen_view[0])
        mask = None if lay.annotation_mask is None else lay.annotation_mask.copy()
        return Shown(out, tuple(views), False, self.spec.doppler, mask)


# -- video and CLI -----------------------------------------------------------------------------

def write_video(screen: HospitalScreen, frames: range, path: str, fps: float = 30.0) -> None:
    """Write screen frames to an .mp4 (OpenCV VideoWriter, 'mp4v')."""
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps!r}")
    size = (screen.width, screen.height)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), size)
    if not writer.isOpened():
        raise OSError(f"cannot open a video writer for {path}")
    try:
        for i in frames:
            writer.write(screen.frame(i).image)
    finally:
        writer.release()


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def _pair(text: str) -> tuple[int, int]:
    try:
        a, b = (int(v) for v in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected FIRST:END frames, got {text!r}") from None
    return a, b


def _change(text: str) -> tuple[int, float, float, float]:
    try:
        f, s, dx, dy = text.split(":")
        return int(f), float(s), float(dx), float(dy)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected FRAME:SCALE:DX:DY, got {text!r}") from None


def main(argv: list[str] | None = None) -> int:
    ap = _Parser(prog="python -m tests.screens",
                 description="Write a video of a realistic scanner screen around a simulated sweep.")
    ap.add_argument("out", help="output .mp4")
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0, help="the feed's seed")
    ap.add_argument("--layout-seed", type=int, default=None,
                    help="the furniture's seed (default: --seed)")
    ap.add_argument("--ui", default="grey")
    ap.add_argument("--annotations", default="", help=f"comma list of {','.join(ANNOTATIONS)}")
    ap.add_argument("--no-greybar", action="store_true")
    ap.add_argument("--doppler", action="store_true")
    ap.add_argument("--dual", action="store_true")
    ap.add_argument("--frozen-at", type=int, default=0)
    ap.add_argument("--freeze", type=_pair, default=None, metavar="FIRST:END")
    ap.add_argument("--change", type=_change, action="append", default=[],
                    metavar="FRAME:SCALE:DX:DY")
    ap.add_argument("--jpeg", type=int, default=0)
    ap.add_argument("--width", type=int, default=1920)
    ap.add_argument("--height", type=int, default=1080)
    ap.add_argument("--fps", type=float, default=30.0)
    args = ap.parse_args(argv)
    if args.frames < 1:
        ap.error(f"--frames must be >= 1, got {args.frames}")
    if not args.fps > 0:
        ap.error(f"--fps must be positive, got {args.fps}")
    if not str(args.out).lower().endswith(".mp4"):
        ap.error(f"the output must be an .mp4, got {args.out!r}")
    names = tuple(a.strip() for a in args.annotations.split(",") if a.strip())
    try:
        spec = ScreenSpec(width=args.width, height=args.height, ui=args.ui, annotations=names,
                          greybar=not args.no_greybar, doppler=args.doppler, dual=args.dual,
                          frozen_at=args.frozen_at, freeze=args.freeze,
                          changes=tuple(args.change), jpeg=args.jpeg,
                          seed=args.seed if args.layout_seed is None else args.layout_seed)
        screen = HospitalScreen(LiveFeed(seed=args.seed, fps=args.fps), spec)
    except ValueError as e:
        ap.error(str(e))
    write_video(screen, range(args.frames), args.out, args.fps)
    print(f"wrote {args.frames} frames ({spec.width}x{spec.height}) to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
