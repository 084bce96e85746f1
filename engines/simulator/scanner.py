"""Independent random frames with labels and boxes: the training/evaluation simulator."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from engines.classes import REGIONS

from . import anatomy
from .anatomy import Placed, compose, similarity
from .render import (
    STYLES,
    FanGeometry,
    Look,
    SpeckleBank,
    Wall,
    draw_wall,
    echo_map,
    image_chain,
    sample_geometry,
    sample_look,
    sample_wall,
    stream,
    tone_of,
)
from .scatter import scatter_chain

P_EMPTY = 0.1
P_CLASS = 0.42
MIN_VISIBLE = 0.4
SIZES = {"head": (0.17, 0.26), "thorax": (0.13, 0.19), "abdomen": (0.14, 0.2),
         "spine": (0.3, 0.44), "limbs": (0.12, 0.19)}
ORDER = ("placenta", "head", "spine", "thorax", "abdomen", "limbs")


@dataclass(frozen=True)
class SimConfig:
    seed: int = 0
    size: tuple[int, int] = (360, 480)  # native fan image (height, width)
    style: str = "train"  # one of render.STYLES
    speckles: int = 0  # speckle textures (cell size, statistics) to draw from; 0: the style's own
    slant: float = 0.0  # share of placentas turned to cross the fan at a slant, as a sweep shows them

    def __post_init__(self):
        if not isinstance(self.seed, (int, np.integer)) or isinstance(self.seed, bool) or self.seed < 0:
            raise ValueError(f"SimConfig.seed must be a non-negative int, got {self.seed!r}")
        try:
            h, w = (int(v) for v in self.size)
        except (TypeError, ValueError):
            raise ValueError(f"SimConfig.size must be (height, width), got {self.size!r}") from None
        if not (64 <= h <= 4096 and 64 <= w <= 4096):
            raise ValueError(f"SimConfig.size must be within 64..4096 pixels, got {self.size!r}")
        if (not isinstance(self.speckles, (int, np.integer)) or isinstance(self.speckles, bool)
                or not 0 <= self.speckles <= 1024):
            raise ValueError(f"SimConfig.speckles must be within 0..1024, got {self.speckles!r}")
        if self.style not in STYLES:
            raise ValueError(f"SimConfig.style must be one of {STYLES}, got {self.style!r}")
        if (not isinstance(self.slant, (int, float, np.integer, np.floating)) or isinstance(self.slant, bool)
                or not 0.0 <= self.slant <= 1.0):
            raise ValueError(f"SimConfig.slant must be within 0..1, got {self.slant!r}")
        object.__setattr__(self, "slant", float(self.slant))
        object.__setattr__(self, "seed", int(self.seed))
        object.__setattr__(self, "speckles", int(self.speckles))
        object.__setattr__(self, "size", (h, w))


@dataclass
class SimFrame:
    image: np.ndarray  # uint8 [H, W], black outside the fan
    labels: np.ndarray  # float32 [len(REGIONS)]
    boxes: dict[str, tuple[float, float, float, float]]  # x0, y0, x1, y1 in image pixels
    fan_mask: np.ndarray  # bool [H, W]
    geometry: FanGeometry
    index: int = 0


def half_shape(size: tuple[int, int]) -> tuple[int, int]:
    return (size[0] + 1) // 2, (size[1] + 1) // 2


def to_half(size: tuple[int, int]) -> np.ndarray:
    hh, hw = half_shape(size)
    return np.array([[hw / size[1], 0, 0], [0, hh / size[0], 0]])


def visible_pixels(p: Placed, fan: np.ndarray) -> tuple[int, int, tuple[float, float, float, float] | None]:
    """(pixels of the part's footprint inside the fan, pixels of its whole footprint, the box of
    the visible ones); (0, 0, None) for a part wholly off the image."""
    x0, y0, x1, y1 = p.bounds()
    H, W = fan.shape
    if x1 < 0 or y1 < 0 or x0 >= W or y0 >= H:
        return 0, 0, None
    mask, ox, oy = p.footprint()
    total = cv2.countNonZero(mask)
    if total == 0:
        return 0, 0, None
    ax, ay = max(ox, 0), max(oy, 0)
    bx, by = min(ox + mask.shape[1], W), min(oy + mask.shape[0], H)
    if bx <= ax or by <= ay:
        return 0, total, None
    vis = cv2.bitwise_and(mask[ay - oy:by - oy, ax - ox:bx - ox], fan[ay:by, ax:bx])
    n = cv2.countNonZero(vis)
    if n == 0:
        return 0, total, None
    x, y, w, h = cv2.boundingRect(vis)
    return n, total, (float(ax + x), float(ay + y), float(ax + x + w), float(ay + y + h))


def visibility(p: Placed, fan: np.ndarray) -> tuple[float, tuple[float, float, float, float] | None]:
    """Fraction of the part's footprint inside the fan, and the box of that visible part."""
    n, total, box = visible_pixels(p, fan)
    return (n / total if n else 0.0), box


def footprint_mask(p: Placed, shape: tuple[int, int]) -> np.ndarray:
    """bool [H, W]: the pixels the part's primitives touch, clipped to the image."""
    H, W = shape
    out = np.zeros((H, W), bool)
    mask, ox, oy = p.footprint()
    ax, ay = max(ox, 0), max(oy, 0)
    bx, by = min(ox + mask.shape[1], W), min(oy + mask.shape[0], H)
    if bx > ax and by > ay:
        out[ay:by, ax:bx] = mask[ay - oy:by - oy, ax - ox:bx - ox] > 0
    return out


def build_part(name: str, rng: np.random.Generator, tone, px: float) -> anatomy.Part:
    return anatomy.BUILDERS[name](rng, tone, px)


class ScannerSimulator:
    """`frame(i)` is a pure function of (config, i): every frame draws from its own generator."""

    def __init__(self, config: SimConfig | None = None):
        self.config = config or SimConfig()
        self.bank = SpeckleBank(self.config.seed, self.config.size, self.config.style,
                                self.config.speckles)

    def frame(self, index: int) -> SimFrame:
        return self._render(int(index), frozenset())

    def training_image(self, index: int, input_size: int = 224):
        f = self.frame(index)
        img = cv2.resize(f.image, (input_size, input_size), interpolation=cv2.INTER_AREA)
        H, W = self.config.size
        sx, sy = input_size / W, input_size / H
        boxes = {k: (b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy) for k, b in f.boxes.items()}
        return img, f.labels, boxes

    def contrast(self, index: int) -> dict[str, float]:
        """Per labelled part: mean |frame - frame without it| over its footprint in the fan / std of the fan.

        "Without it" is `_render(index, {part})`: the same draws, the part's echoes and shadows
        left out, so a fetal part gives way to the fluid around it (the placenta, which clears
        none, to the tissue beneath). 0: the rendered frame does not show the part at all."""
        f, placed = self._draw(int(index), frozenset())
        img = f.image.astype(np.float32)
        sigma = max(float(img[f.fan_mask].std()), 1.0)
        out: dict[str, float] = {}
        for p in placed:
            inside = footprint_mask(p, f.fan_mask.shape) & f.fan_mask
            if not inside.any():
                out[p.part.name] = 0.0
                continue
            without = self._render(f.index, frozenset({p.part.name})).image
            out[p.part.name] = float(np.abs(img - without)[inside].mean() / sigma)
        return out

    # ------------------------------------------------------------------------------------------
    def _render(self, index: int, hide: frozenset[str]) -> SimFrame:
        return self._draw(index, hide)[0]

    def _draw(self, index: int, hide: frozenset[str]) -> tuple[SimFrame, list[Placed]]:
        """The frame with the parts in ``hide`` left out (every random draw is made all the same,
        so only their pixels and shadows change), and every placed part (native pixels)."""
        cfg = self.config
        if index < 0:
            raise ValueError(f"frame index must be >= 0, got {index}")
        rng = np.random.default_rng([cfg.seed, index, stream(cfg.style)])
        geom = sample_geometry(rng, cfg.size, cfg.style)
        look = sample_look(rng, cfg.style, self.bank.slots)
        tone = tone_of(look)
        wall = sample_wall(rng, tone)
        fan = geom.mask()
        placed, boxes = self._place(rng, geom, wall, tone, fan, look)
        hs = to_half(cfg.size)
        echo = self._background(rng, geom, look, wall, tone, placed, hs)
        speck = self.bank.crop(look.slot, int(rng.integers(1 << 30)), int(rng.integers(1 << 30)))
        half = [Placed(p.part, compose(hs, p.m)) for p in placed if p.part.name not in hide]
        if cfg.style == "scatter":
            img = scatter_chain(geom, look, echo_map(geom, look, echo, half), fan, rng)
        else:
            img = image_chain(geom, look, echo, half, speck, fan, rng=rng)
        labels = np.array([c in boxes for c in REGIONS], dtype=np.float32)
        return SimFrame(img, labels, boxes, fan > 0, geom, index), placed

    def _place(self, rng, geom: FanGeometry, wall: Wall, tone, fan, look: Look):
        if rng.random() < P_EMPTY:
            chosen: list[str] = []
        else:
            chosen = [c for c in REGIONS if rng.random() < P_CLASS] or [str(rng.choice(REGIONS))]
        chosen.sort(key=ORDER.index)
        H, W = geom.size
        D = geom.depth_px
        occ = np.zeros((H, W), np.uint8)
        shrink = 1.0 / (1.0 + 0.12 * max(len(chosen) - 1, 0))
        placed: list[Placed] = []
        boxes: dict[str, tuple[float, float, float, float]] = {}
        for name in chosen:
            for _ in range(8):
                if name == "placenta":
                    p = self._placenta(rng, geom, wall, tone, self.config.slant)
                    r = None
                else:
                    lo, hi = SIZES[name]
                    px = rng.uniform(lo, hi) * D * shrink * look.size
                    part = anatomy.vary(build_part(name, rng, tone, px), rng, look.deform)
                    r = part.radius * px
                    dmin = wall.thickness + 0.5 * r / D
                    dn = rng.uniform(dmin, max(dmin, 1 - 0.45 * r / D))
                    x, y = geom.point(dn, rng.uniform(-0.9, 0.9))
                    ang = rng.uniform(-0.6, 0.6) if name == "spine" else rng.uniform(0, 2 * np.pi)
                    p = Placed(part, similarity(px, ang, x, y))
                    if _overlap(occ, x, y, r) > 0.04:
                        continue
                vis, box = visibility(p, fan)
                if vis < MIN_VISIBLE:
                    continue
                placed.append(p)
                boxes[name] = box
                if r is None:
                    p.draw(occ, 255)
                else:
                    cv2.circle(occ, (int(x), int(y)), int(r * 1.1), 255, -1)
                break
        return placed, boxes

    @staticmethod
    def _placenta(rng, geom: FanGeometry, wall: Wall, tone, slant: float = 0.0) -> Placed:
        """A band concentric with the probe, as a still frame centred on it shows it; with
        probability ``slant`` turned about its middle by 0.2-0.8 rad, as a sweep shows a placenta
        concentric with the uterus crossing the fan. No draw is made for the turn when ``slant`` is
        0, so the frames are as they always were."""
        (cx, cy), r_face, half, depth = geom.curvature()
        thick = rng.uniform(0.08, 0.16) * depth
        anterior = rng.random() < 0.5
        if anterior:
            r_in = r_face + (wall.thickness + rng.uniform(0.0, 0.03)) * depth
        else:
            r_in = r_face + rng.uniform(0.8, 0.93) * depth - thick
        span = rng.uniform(0.45, 1.1) * half
        mid = rng.uniform(-0.6, 0.6) * half
        part = anatomy.placenta(rng, tone, (cx, cy), r_in, thick, mid - span, mid + span,
                                fluid_side_inner=not anterior)
        m = np.array([[1.0, 0, 0], [0, 1.0, 0]])
        if slant > 0 and rng.random() < slant:
            turn = rng.uniform(0.2, 0.8) * rng.choice((-1.0, 1.0))
            r_mid = r_in + thick / 2
            x, y = cx + r_mid * np.sin(mid), cy + r_mid * np.cos(mid)
            m = compose(similarity(1.0, turn, x, y), similarity(1.0, 0.0, -x, -y))
        return Placed(part, m)

    @staticmethod
    def _background(rng, geom: FanGeometry, look: Look, wall: Wall, tone, placed, hs):
        hh, hw = half_shape(geom.size)
        tissue = tone(rng.uniform(0.08, 0.2))
        low = cv2.resize(rng.standard_normal((5, 7)).astype(np.float32), (hw, hh),
                         interpolation=cv2.INTER_CUBIC)
        echo = (tissue * np.exp(0.35 * low)).astype(np.float32)
        for _ in range(int(rng.integers(0, 4))):
            c = (int(rng.uniform(0, hw)), int(rng.uniform(0, hh)))
            ax = (int(rng.uniform(0.04, 0.15) * hw), int(rng.uniform(0.03, 0.1) * hh))
            cv2.ellipse(echo, c, ax, rng.uniform(0, 180), 0, 360, tissue * rng.uniform(0.5, 2.2), -1)
        fluid = tone(rng.uniform(0.002, 0.006))
        if rng.random() < 0.85:
            x, y = geom.point(rng.uniform(0.35, 0.7), rng.uniform(-0.5, 0.5))
            c = (int(x * hw / geom.size[1]), int(y * hh / geom.size[0]))
            ax = (int(rng.uniform(0.2, 0.5) * hw), int(rng.uniform(0.15, 0.4) * hh))
            cv2.ellipse(echo, c, ax, rng.uniform(0, 180), 0, 360, fluid, -1)
        for p in placed:
            Placed(p.part, compose(hs, p.m)).cover(echo, fluid, 1.0)
        ScannerSimulator._clutter(rng, echo, tone, look.clutter)
        draw_wall(echo, geom, wall, look.reverb)
        if look.haze > 0:  # near-field clutter fading with depth
            ys = (np.arange(hh, dtype=np.float32) + 0.5) * (geom.size[0] / hh)
            xs = (np.arange(hw, dtype=np.float32) + 0.5) * (geom.size[1] / hw)
            dn = np.clip(geom.depth(xs[None, :], ys[:, None]), 0.0, 1.0)
            echo += (look.haze * wall.layers[0][2] * np.exp(-dn / rng.uniform(0.1, 0.4))
                     ).astype(np.float32)
        return echo

    @staticmethod
    def _clutter(rng, echo: np.ndarray, tone, n: int) -> None:
        """Structures that are none of the regions: fascia lines, vessels and cysts, bowel-like blobs."""
        hh, hw = echo.shape
        for _ in range(n):
            kind = rng.integers(3)
            c = np.array([rng.uniform(0, hw), rng.uniform(0, hh)])
            if kind == 0:
                t = np.linspace(-1, 1, 12)[:, None]
                d = np.array([np.cos(a := rng.uniform(-0.6, 0.6)), np.sin(a)])
                bend = rng.uniform(-0.15, 0.15) * (t**2)
                pts = c + t * d * rng.uniform(0.1, 0.4) * hw + bend * hw * np.array([-d[1], d[0]])
                cv2.polylines(echo, [np.round(pts * 16).astype(np.int32)], False,
                              tone(rng.uniform(0.25, 0.7)), int(rng.integers(1, 3)), cv2.LINE_8, 4)
            else:
                ax = (int(rng.uniform(0.01, 0.06) * hw) + 1, int(rng.uniform(0.01, 0.05) * hh) + 1)
                v = tone(rng.uniform(0.002, 0.01)) if kind == 1 else tone(rng.uniform(0.2, 0.5))
                cv2.ellipse(echo, (int(c[0]), int(c[1])), ax, rng.uniform(0, 180), 0, 360, v, -1)


def _overlap(occ: np.ndarray, x: float, y: float, r: float) -> float:
    H, W = occ.shape
    x0, y0 = max(int(x - r), 0), max(int(y - r), 0)
    x1, y1 = min(int(x + r) + 1, W), min(int(y + r) + 1, H)
    if x1 <= x0 or y1 <= y0:
        return 0.0
    disc = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.circle(disc, (int(x) - x0, int(y) - y0), int(r), 255, -1)
    area = max(cv2.countNonZero(disc), 1)
    return cv2.countNonZero(cv2.bitwise_and(disc, occ[y0:y1, x0:x1])) / area
