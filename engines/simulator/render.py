"""Probe geometry, appearance parameters, speckle and the B-mode imaging chain.

Structures are drawn at half resolution in linear echo amplitude, log-compressed there, upsampled,
and the (cached, log-domain) speckle is added in one saturating OpenCV call, so a frame costs a
handful of full-resolution operations.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from .anatomy import Placed

STYLES = ("train", "heldout", "scatter", "classic")
"""train: the wide randomisation the default model trains on; heldout: appearance ranges outside
the classic ones; scatter: a second renderer (scatterers convolved with a point-spread function,
engines/simulator/scatter.py) for testing only; classic: the narrower training style before it was
widened, kept so that old and new models are compared on the same frames."""
_STREAM = {"train": 0, "heldout": 1, "scatter": 2, "classic": 0}


def stream(style: str) -> int:
    """The random stream a style draws from (classic keeps the frames it always had)."""
    return _STREAM[style]


@dataclass(frozen=True)
class FanGeometry:
    """Field of view in native image pixels (x right, y down)."""

    size: tuple[int, int]  # (H, W)
    kind: str  # "curvilinear" | "linear"
    apex: tuple[float, float] | None  # rays' origin; None: vertical rays (rectangular linear)
    r0: float = 0.0  # curvilinear: probe face radius
    r1: float = 0.0  # curvilinear: outer radius
    half_angle: float = 0.0  # curvilinear, radians
    quad: tuple[tuple[float, float], ...] = ()  # linear: TL, TR, BR, BL

    @property
    def depth_px(self) -> float:
        return self.r1 - self.r0 if self.kind == "curvilinear" else self.quad[2][1] - self.quad[0][1]

    def mask(self, shape: tuple[int, int] | None = None) -> np.ndarray:
        """uint8 mask (255 inside), drawn at `shape` (default: native size)."""
        h, w = shape or self.size
        sx, sy = w / self.size[1], h / self.size[0]
        m = np.zeros((h, w), np.uint8)
        if self.kind == "curvilinear":
            ax, ay = self.apex
            c = (int(round(ax * sx * 16)), int(round(ay * sy * 16)))
            deg = np.degrees(self.half_angle)
            cv2.ellipse(m, c, (int(self.r1 * sx * 16), int(self.r1 * sy * 16)), 0, 90 - deg,
                        90 + deg, 255, -1, cv2.LINE_8, 4)
            cv2.ellipse(m, c, (int(self.r0 * sx * 16), int(self.r0 * sy * 16)), 0, 0, 360, 0, -1,
                        cv2.LINE_8, 4)
        else:
            q = np.round(np.array(self.quad) * [sx * 16, sy * 16]).astype(np.int32)
            cv2.fillConvexPoly(m, q, 255, cv2.LINE_8, 4)
        return m

    def depth(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Normalised depth (0 at the probe face, 1 at the bottom of the field)."""
        if self.kind == "curvilinear":
            return (np.hypot(x - self.apex[0], y - self.apex[1]) - self.r0) / (self.r1 - self.r0)
        return (y - self.quad[0][1]) / self.depth_px

    def ray(self, pts: np.ndarray) -> np.ndarray:
        if self.apex is None:
            return np.broadcast_to(np.array([0.0, 1.0]), pts.shape)
        d = pts - self.apex
        return d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-6)

    def curvature(self) -> tuple[tuple[float, float], float, float, float]:
        """(centre, radius at the face, angular half-width, depth) of the arcs that follow the face."""
        if self.kind == "curvilinear":
            return self.apex, self.r0, self.half_angle, self.depth_px
        (x0, y0), (x1, _), _, _ = self.quad
        far = 6.0 * self.depth_px
        return ((x0 + x1) / 2, y0 - far), far, np.arctan2((x1 - x0) / 2, far), self.depth_px

    def point(self, dn: float, lat: float) -> tuple[float, float]:
        """Pixel at normalised depth `dn` and lateral position `lat` in [-1, 1]."""
        if self.kind == "curvilinear":
            r, a = self.r0 + dn * self.depth_px, lat * self.half_angle
            return self.apex[0] + r * np.sin(a), self.apex[1] + r * np.cos(a)
        (x0, y0), (x1, _), (x2, y2), (x3, _) = self.quad
        lft, rgt = x0 + dn * (x3 - x0), x1 + dn * (x2 - x1)
        return (lft + rgt) / 2 + lat * (rgt - lft) / 2, y0 + dn * (y2 - y0)


def sample_geometry(rng: np.random.Generator, size: tuple[int, int], style: str) -> FanGeometry:
    h, w = size
    m = 2.0
    wide = style in ("train", "scatter")
    if style == "heldout" or rng.random() < 0.8:
        if style == "heldout":
            sector = rng.uniform(90, 105)
        else:
            sector = rng.uniform(40, 110) if wide else rng.uniform(50, 85)
        th = np.radians(sector / 2)
        rho = rng.uniform(0.02, 0.4) if wide else rng.uniform(0.05, 0.3)
        r1 = min((w - 2 * m) / (2 * np.sin(th)), (h - 2 * m) / (1 - rho * np.cos(th)))
        r0 = rho * r1
        apex = (w / 2, m - r0 * np.cos(th))
        return FanGeometry(size, "curvilinear", apex, r0, r1, th)
    top = rng.uniform(0.55, 0.85) * w
    bottom = top if rng.random() < 0.5 else rng.uniform(top, w - 2 * m)
    y0, y1 = m, h - m
    quad = ((w / 2 - top / 2, y0), (w / 2 + top / 2, y0), (w / 2 + bottom / 2, y1),
            (w / 2 - bottom / 2, y1))
    apex = None
    if bottom - top > 1:
        apex = (w / 2, y0 - (y1 - y0) * top / (bottom - top))
    return FanGeometry(size, "linear", apex, quad=quad)


@dataclass(frozen=True)
class Look:
    """Appearance knobs of one frame (the scanner's settings and the patient's acoustics)."""

    dr_db: float  # displayed dynamic range
    gain_db: float
    gamma: float  # display gamma after log compression
    contrast: float  # exponent on echo amplitudes around soft tissue
    speckle: float  # weight of the log-speckle
    slot: int  # speckle bank entry
    atten: float  # round-trip attenuation over the full depth (nepers)
    tgc: tuple[float, ...]  # log-gain at normalised depths 0, 1/3, 2/3, 1
    shadows: bool
    reverb: bool
    floor: float  # noise floor in echo amplitude
    psf: tuple[float, float] = (0.7, 0.4)  # lateral, axial blur of the echoes (half-res pixels)
    noise: float = 0.0  # electronic noise (grey levels, growing with depth)
    haze: float = 0.0  # near-field clutter (fraction of the wall's brightness)
    size: float = 1.0  # anatomy scale (the imaged depth relative to the fetus)
    deform: float = 0.0  # outline and echogenicity variation of the anatomy
    clutter: int = 0  # extra maternal/fetal structures that are none of the regions


def sample_look(rng: np.random.Generator, style: str, slots: int) -> Look:
    if style in ("train", "scatter"):
        return _wide_look(rng, slots)
    atten = rng.uniform(0.8, 2.2)
    dn = np.array([0, 1 / 3, 2 / 3, 1])
    if style == "heldout":
        comp, err = rng.uniform(-0.1, 0.25), rng.normal(0, 0.45, 4)
        return Look(dr_db=rng.uniform(66, 74), gain_db=rng.uniform(-6, -2),
                    gamma=rng.uniform(0.85, 1.0), contrast=rng.uniform(0.68, 0.78),
                    speckle=rng.uniform(1.2, 1.35), slot=int(rng.integers(slots)), atten=atten,
                    tgc=tuple(atten * comp * dn + err), shadows=rng.random() < 0.8,
                    reverb=rng.random() < 0.8, floor=rng.uniform(1e-3, 2e-3))
    comp, err = rng.uniform(0.5, 1.0), rng.normal(0, 0.18, 4)
    return Look(dr_db=rng.uniform(45, 65), gain_db=rng.uniform(-14, -4),
                gamma=rng.uniform(0.8, 1.25), contrast=rng.uniform(0.8, 1.3),
                speckle=rng.uniform(0.85, 1.1), slot=int(rng.integers(slots)), atten=atten,
                tgc=tuple(atten * comp * dn + err), shadows=rng.random() < 0.75,
                reverb=rng.random() < 0.5, floor=rng.uniform(3e-4, 1e-3))


def _wide_look(rng: np.random.Generator, slots: int) -> Look:
    """What scanners and patients vary, each over a range wider than the classic style's."""
    atten = rng.uniform(0.4, 2.6)
    dn = np.array([0, 1 / 3, 2 / 3, 1])
    comp, err = rng.uniform(-0.1, 1.05), rng.normal(0, 0.3, 4)
    lat = rng.uniform(0.5, 3.2)
    return Look(dr_db=rng.uniform(40, 80), gain_db=rng.uniform(-16, 0),
                gamma=rng.uniform(0.7, 1.4), contrast=rng.uniform(0.6, 1.35),
                speckle=rng.uniform(0.55, 1.4), slot=int(rng.integers(slots)), atten=atten,
                tgc=tuple(atten * comp * dn + err), shadows=rng.random() < 0.8,
                reverb=rng.random() < 0.6, floor=float(np.exp(rng.uniform(np.log(2e-4), np.log(3e-3)))),
                psf=(lat, lat * rng.uniform(0.25, 0.8)), noise=float(rng.choice([0.0, rng.uniform(2, 14)])),
                haze=float(rng.choice([0.0, rng.uniform(0.05, 0.5)])), size=rng.uniform(0.75, 1.3),
                deform=rng.uniform(0.0, 1.0), clutter=int(rng.integers(0, 7)))


def tone_of(look: Look):
    ref, c = 0.15, look.contrast
    return lambda v: float(ref * (v / ref) ** c)


class SpeckleBank:
    """Periodic log-Rayleigh speckle fields, tiled 2x2 so any wrapped crop is a view, not a copy."""

    def __init__(self, seed: int, size: tuple[int, int], style: str, slots: int = 0):
        slots = slots or (12 if style == "train" else 6)
        self.seed, self.size, self.style, self.slots = seed, size, style, slots
        self._fields: dict[int, np.ndarray] = {}

    def field(self, slot: int) -> np.ndarray:
        f = self._fields.get(slot)
        if f is None:
            rng = np.random.default_rng([self.seed, 7919, stream(self.style), slot])
            h, w = self.size
            coherent = 0.0
            if self.style == "heldout":
                sy = rng.uniform(1.6, 2.2)
                sx = sy * rng.uniform(1.8, 2.8)
            elif self.style == "train":  # cell size and statistics (Rayleigh to Rician)
                sy = rng.uniform(0.5, 2.6)
                sx = sy * rng.uniform(1.1, 3.2)
                coherent = rng.choice([0.0, rng.uniform(0.3, 1.5)])
            else:
                sy = rng.uniform(0.5, 1.2)
                sx = sy * rng.uniform(1.2, 2.5)
            z = rng.standard_normal((h, w)) + 1j * rng.standard_normal((h, w))
            fy, fx = np.fft.fftfreq(h)[:, None], np.fft.fftfreq(w)[None, :]
            tf = np.exp(-2 * np.pi**2 * ((sy * fy) ** 2 + (sx * fx) ** 2))
            a = np.fft.ifft2(np.fft.fft2(z) * tf)
            if coherent:
                a = a / np.sqrt(np.mean(np.abs(a) ** 2)) + coherent
            a = np.abs(a)
            a /= a.mean()
            lg = np.log(np.maximum(a, np.exp(-5.0))).astype(np.float32)
            f = self._fields[slot] = np.tile(lg, (2, 2))
        return f

    def crop(self, slot: int, dy: int, dx: int) -> np.ndarray:
        h, w = self.size
        dy, dx = dy % h, dx % w
        return self.field(slot)[dy:dy + h, dx:dx + w]


@dataclass(frozen=True)
class Wall:
    """Maternal abdominal wall and uterine wall under the probe face: (d0, d1, value) layers."""

    layers: tuple[tuple[float, float, float], ...]
    reverb: tuple[tuple[float, float, float], ...]
    thickness: float  # normalised depth of the wall's far side


def sample_wall(rng: np.random.Generator, tone) -> Wall:
    tw = rng.uniform(0.07, 0.17)
    cuts = np.cumsum(rng.dirichlet([1.0, 3.0, 4.0, 1.0, 3.0])) * tw
    d = np.concatenate([[0.0], cuts])
    vals = (rng.uniform(0.45, 0.7), rng.uniform(0.03, 0.08), rng.uniform(0.2, 0.35),
            rng.uniform(0.4, 0.6), rng.uniform(0.12, 0.2))
    layers = tuple((float(d[i]), float(d[i + 1]), tone(v)) for i, v in enumerate(vals))
    step = float(d[4])
    reverb = tuple((step * j, step * j + 0.008, rng.uniform(0.012, 0.03) / j) for j in (2, 3, 4))
    return Wall(layers, reverb, tw)


def draw_wall(canvas: np.ndarray, geom: FanGeometry, wall: Wall, reverb: bool) -> None:
    """Draw the layered wall (overwrite) and its reverberation copies (add) onto a canvas."""
    h, w = canvas.shape
    sx, sy = w / geom.size[1], h / geom.size[0]
    (cx, cy), r0, _, depth = geom.curvature()
    curved = geom.kind == "curvilinear"

    def band(img, d0, d1, v):
        if curved:
            r = (r0 + (d0 + d1) / 2 * depth) * sx
            t = max(1, int(round((d1 - d0) * depth * sx)))
            cv2.circle(img, (int(round(cx * sx * 16)), int(round(cy * sy * 16))),
                       int(round(r * 16)), v, t, cv2.LINE_8, 4)
        else:
            y0 = geom.quad[0][1] * sy
            a, b = int(round(y0 + d0 * depth * sy)), max(int(round(y0 + d1 * depth * sy)), 1)
            img[a:max(b, a + 1)] = v

    for d0, d1, v in wall.layers:
        band(canvas, d0, d1, v)
    if reverb:
        add = np.zeros_like(canvas)
        for d0, d1, v in wall.reverb:
            band(add, d0, d1, v)
        canvas += add


def log_gain(geom: FanGeometry, look: Look, shape: tuple[int, int]) -> np.ndarray:
    h, w = shape
    ys = (np.arange(h, dtype=np.float32) + 0.5) * (geom.size[0] / h)
    xs = (np.arange(w, dtype=np.float32) + 0.5) * (geom.size[1] / w)
    dn = np.clip(geom.depth(xs[None, :], ys[:, None]), 0.0, 1.0)
    g = np.interp(dn, (0, 1 / 3, 2 / 3, 1), look.tgc) - look.atten * dn
    return g.astype(np.float32)


def echo_map(geom: FanGeometry, look: Look, echo: np.ndarray, parts: Sequence[Placed]) -> np.ndarray:
    """The half-res echo amplitudes with the parts drawn and the shadows they cast."""
    for p in parts:
        p.draw(echo)
    hh, hw = echo.shape
    H, W = geom.size
    if look.shadows and any(pr.shadow < 1 for p in parts for pr in p.part.prims):
        sh = np.ones_like(echo)
        scale = np.array([W / hw, H / hh])

        def ray(pts):
            return geom.ray(pts * scale)

        for p in parts:
            p.shadows(sh, ray, 2.5 * max(hh, hw))
        for p in parts:
            p.draw(sh, 1.0, only_casters=True)
        echo *= cv2.GaussianBlur(sh, (5, 5), 1.0)
    return echo


def image_chain(geom: FanGeometry, look: Look, echo: np.ndarray, parts: Sequence[Placed],
                speckle_log: np.ndarray, fan: np.ndarray, gain: np.ndarray | None = None,
                rng: np.random.Generator | None = None) -> np.ndarray:
    """echo: half-res linear amplitude canvas (background drawn); parts in half-res pixels."""
    echo = echo_map(geom, look, echo, parts)
    H, W = geom.size
    lat, ax = look.psf
    echo = cv2.GaussianBlur(echo, (_ksize(lat), _ksize(ax)), lat, sigmaY=ax)
    lg = np.log(echo + look.floor)
    lg += log_gain(geom, look, echo.shape) if gain is None else gain
    full = cv2.resize(lg, (W, H), interpolation=cv2.INTER_LINEAR)
    dr = look.dr_db / 20 * np.log(10)
    alpha = 255.0 / dr
    beta = 255.0 + alpha * (look.gain_db / 20 * np.log(10))
    img = cv2.addWeighted(full, alpha, speckle_log, alpha * look.speckle, beta, dtype=cv2.CV_8U)
    lut = np.clip(255 * (np.arange(256) / 255.0) ** look.gamma + 0.5, 0, 255).astype(np.uint8)
    img = cv2.LUT(img, lut)
    if look.noise > 0:
        img = _add_noise(img, look.noise, rng or np.random.default_rng(look.slot))
    return cv2.bitwise_and(img, fan)


def _ksize(sigma: float) -> int:
    """Odd Gaussian kernel size covering about two sigmas (3 for the classic chain's 0.7/0.4)."""
    return 2 * max(1, int(round(2 * sigma - 0.5))) + 1


def _add_noise(img: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Electronic noise, stronger where the TGC amplifies most (deep)."""
    h, w = img.shape
    ys = np.linspace(0.4, 1.4, h, dtype=np.float32)[:, None]
    n = rng.standard_normal((h, w), dtype=np.float32) * (sigma * ys)
    return cv2.add(img.astype(np.float32), n, dtype=cv2.CV_8U)
