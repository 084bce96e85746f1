"""Fetal anatomy as polygon primitives in part-local units, placed by a 2x3 similarity matrix.

Values are linear echo amplitudes (bone ~1, soft tissue ~0.15, fluid ~0.004); the renderer
log-compresses them. Every pixel a part's primitives touch is its footprint, which is what
visibility, labels and boxes are computed from.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

import cv2
import numpy as np

Tone = Callable[[float], float]
_SHIFT = 4
_ONE = 1 << _SHIFT


@dataclass
class Prim:
    polys: list[np.ndarray]
    value: float
    thickness: float = 0.0  # local units; 0 fills the polygons
    closed: bool = True
    shadow: float = 1.0  # transmission beneath this reflector; 1 casts no shadow


@dataclass
class Part:
    name: str
    prims: list[Prim]
    radius: float = 1.0  # local bounding radius, for placement
    cover: list[np.ndarray] = field(default_factory=list)  # polygons to clear fluid around


def similarity(scale: float, angle: float, tx: float, ty: float) -> np.ndarray:
    c, s = np.cos(angle) * scale, np.sin(angle) * scale
    return np.array([[c, -s, tx], [s, c, ty]], dtype=np.float64)


def compose(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a after b, both 2x3."""
    return a[:, :2] @ b + np.array([[0, 0, a[0, 2]], [0, 0, a[1, 2]]])


def matrix_scale(m: np.ndarray) -> float:
    return float(np.sqrt(abs(np.linalg.det(m[:, :2]))))


def apply(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return pts @ m[:, :2].T + m[:, 2]


@lru_cache(maxsize=64)
def _circle(n: int) -> tuple[np.ndarray, np.ndarray]:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.cos(t), np.sin(t)


def ellipse(cx, cy, ax, ay, angle=0.0, t0=0.0, t1=2 * np.pi, n=40) -> np.ndarray:
    if t1 - t0 >= 2 * np.pi - 1e-9:
        ct, st = _circle(n)
    else:
        t = np.linspace(t0, t1, n)
        ct, st = np.cos(t), np.sin(t)
    x, y = ax * ct, ay * st
    c, s = np.cos(angle), np.sin(angle)
    return np.stack([cx + c * x - s * y, cy + s * x + c * y], axis=1)


class Placed:
    """A part with its local->canvas matrix; caches the transformed integer polygons."""

    def __init__(self, part: Part, m: np.ndarray):
        self.part, self.m = part, m
        self.scale = matrix_scale(m)
        flat = [p for prim in part.prims for p in prim.polys]
        pts = apply(m, np.concatenate(flat))
        ipts = np.round(pts * _ONE).astype(np.int32)
        ends = np.cumsum([len(p) for p in flat]).tolist()
        starts = [0, *ends[:-1]]
        fs = [pts[a:b] for a, b in zip(starts, ends, strict=True)]
        is_ = [ipts[a:b] for a, b in zip(starts, ends, strict=True)]
        self._pts, self._ipts, k = [], [], 0
        for prim in part.prims:
            n = len(prim.polys)
            self._pts.append(fs[k:k + n])
            self._ipts.append(is_[k:k + n])
            k += n
        self._all = pts

    def bounds(self) -> tuple[float, float, float, float]:
        pts = self._all
        pad = max((pr.thickness * self.scale for pr in self.part.prims), default=0.0) / 2 + 1
        return (pts[:, 0].min() - pad, pts[:, 1].min() - pad,
                pts[:, 0].max() + pad, pts[:, 1].max() + pad)

    def draw(self, canvas: np.ndarray, value: float | None = None,
             offset: tuple[int, int] = (0, 0), only_casters: bool = False) -> None:
        shift = np.array(offset, np.int32) * _ONE
        for prim, ipts in zip(self.part.prims, self._ipts, strict=True):
            if only_casters and prim.shadow >= 1.0:
                continue
            if offset != (0, 0):
                ipts = [p - shift for p in ipts]
            v = prim.value if value is None else value
            if prim.thickness <= 0:
                cv2.fillPoly(canvas, ipts, v, cv2.LINE_8, _SHIFT)
            else:
                th = max(1, int(round(prim.thickness * self.scale)))
                cv2.polylines(canvas, ipts, prim.closed, v, th, cv2.LINE_8, _SHIFT)

    def footprint(self) -> tuple[np.ndarray, int, int]:
        """(uint8 mask of every touched pixel, x offset, y offset), unclipped."""
        x0, y0, x1, y1 = self.bounds()
        ox, oy = int(np.floor(x0)) - 1, int(np.floor(y0)) - 1
        w, h = int(np.ceil(x1)) - ox + 2, int(np.ceil(y1)) - oy + 2
        mask = np.zeros((h, w), np.uint8)
        self.draw(mask, 255, (ox, oy))
        return mask, ox, oy

    def shadows(self, canvas: np.ndarray, ray: Callable[[np.ndarray], np.ndarray],
                length: float) -> None:
        for prim, pts in zip(self.part.prims, self._pts, strict=True):
            if prim.shadow >= 1.0:
                continue
            for p in pts:
                far = p + ray(p) * length
                hull = cv2.convexHull(np.round(np.concatenate([p, far]) * _ONE).astype(np.int32))
                cv2.fillConvexPoly(canvas, hull, prim.shadow, cv2.LINE_8, _SHIFT)

    def cover(self, canvas: np.ndarray, value: float, grow: float) -> None:
        for c in self.part.cover:
            cv2.fillPoly(canvas, [np.round(apply(self.m, c * grow) * _ONE).astype(np.int32)],
                         value, cv2.LINE_8, _SHIFT)


# --- builders: each returns a Part in local units (main radius or half-length = 1) -------------

def head(rng: np.random.Generator, tone: Tone, px: float) -> Part:
    """Axial head: bright elliptical skull ring, hypoechoic brain, midline echo, CSP, thalami."""
    b = rng.uniform(0.78, 0.88)
    ring = ellipse(0, 0, 1.0, b, n=56)
    brain = tone(rng.uniform(0.03, 0.07))
    prims = [
        Prim([ring], brain),
        Prim([ellipse(s * 0.12, 0.0, 0.16, 0.11) for s in (-1, 1)], tone(0.015)),  # thalami
        Prim([ellipse(0.48, s * 0.33, 0.16, 0.07, s * 0.3) for s in (-1, 1)], tone(0.28)),  # plexus
        Prim([np.array([[-0.9, 0.0], [0.9, 0.0]])], tone(rng.uniform(0.35, 0.55)),
             thickness=max(0.018, 1.2 / px), closed=False),  # falx / midline echo
        Prim([np.array([[-0.52, -0.06], [-0.26, -0.06], [-0.26, 0.06], [-0.52, 0.06]])],
             tone(0.3), thickness=max(0.015, 1.0 / px)),  # cavum septi pellucidi
        Prim([ring], tone(rng.uniform(0.8, 1.0)), thickness=rng.uniform(0.06, 0.1),
             shadow=rng.uniform(0.45, 0.7)),
    ]
    return Part("head", prims, radius=1.08, cover=[ellipse(0, 0, 1.15, b + 0.15)])


def spine(rng: np.random.Generator, tone: Tone, px: float) -> Part:
    """Sagittal spine: paired rows of bright vertebral echoes along a gently curved line."""
    k = rng.uniform(-0.18, 0.18)
    xs = np.linspace(-1, 1, 24)
    ys = k * (xs**2 - 0.5)
    normal = np.stack([2 * k * xs, -np.ones_like(xs)], 1)
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    centre = np.stack([xs, ys], 1)
    hw = rng.uniform(0.16, 0.22)
    band = np.concatenate([centre + normal * hw, (centre - normal * hw)[::-1]])
    n = int(rng.integers(11, 17))
    t = np.linspace(-0.92, 0.92, n)
    cy = k * (t**2 - 0.5)
    ang = np.arctan(2 * k * t)
    gap = rng.uniform(0.06, 0.09)
    size = rng.uniform(0.03, 0.045)
    bright = tone(rng.uniform(0.8, 1.0))
    shadow = rng.uniform(0.15, 0.35)
    paired = rng.random() < 0.75
    prims = [
        Prim([band], tone(rng.uniform(0.1, 0.2))),
        Prim([centre - normal * (hw - 0.02)], tone(0.45), thickness=max(0.02, 1.0 / px),
             closed=False),  # skin line
        Prim([centre], tone(0.02), thickness=gap * 1.4, closed=False),  # canal
    ]
    for sgn in (1, -1) if paired else (1,):
        blobs = [ellipse(x + sgn * gap * np.sin(a), y - sgn * gap * np.cos(a),
                         size * 1.2, size, a, n=12) for x, y, a in zip(t, cy, ang, strict=True)]
        for blob in blobs:
            prims.append(Prim([blob], bright, shadow=shadow))
    return Part("spine", prims, radius=1.05, cover=[ellipse(0, 0, 1.1, 0.35 + abs(k))])


def thorax(rng: np.random.Generator, tone: Tone, px: float) -> Part:
    """Transverse thorax: round section, four-chamber heart, ribs casting shadows."""
    hx, hy = rng.uniform(-0.2, 0.2), rng.uniform(-0.15, 0.2)
    ha = rng.uniform(-0.6, 0.6)
    rot = np.array([[np.cos(ha), -np.sin(ha)], [np.sin(ha), np.cos(ha)]])
    chambers = [np.array([hx, hy]) + ellipse(0, 0, rng.uniform(0.1, 0.15), rng.uniform(0.08, 0.12),
                                             n=16) @ rot.T + rot @ np.array([sx * 0.14, sy * 0.12])
                for sx in (-1, 1) for sy in (-1, 1)]
    prims = [
        Prim([ellipse(0, 0, 1.0, 1.0)], tone(rng.uniform(0.12, 0.2))),
        Prim([ellipse(hx, hy, 0.44, 0.38, ha)], tone(rng.uniform(0.3, 0.45))),
        Prim(chambers, tone(0.008)),
        Prim([ellipse(0, 0, 1.0, 1.0)], tone(0.35), thickness=max(0.03, 1.0 / px)),
    ]
    n = int(rng.integers(4, 7))
    start = rng.uniform(0, 2 * np.pi)
    for a in start + np.arange(n) * (2 * np.pi / n) + rng.uniform(-0.2, 0.2, n):
        prims.append(Prim([ellipse(0, 0, 0.97, 0.97, t0=a, t1=a + 0.35, n=6)],
                          tone(rng.uniform(0.75, 1.0)), thickness=rng.uniform(0.06, 0.09),
                          closed=False, shadow=rng.uniform(0.2, 0.4)))
    return Part("thorax", prims, radius=1.05, cover=[ellipse(0, 0, 1.2, 1.2)])


def abdomen(rng: np.random.Generator, tone: Tone, px: float) -> Part:
    """Transverse abdomen: round section with an anechoic stomach bubble and umbilical vein."""
    sx, sy = rng.uniform(-0.35, 0.35), rng.uniform(-0.35, 0.35)
    b = rng.uniform(0.85, 1.0)
    uv = ellipse(-sx * 0.3, -sy * 0.3, 0.45, 0.3, rng.uniform(0, 6.3), t0=0, t1=1.6, n=10)
    prims = [
        Prim([ellipse(0, 0, 1.0, b)], tone(rng.uniform(0.14, 0.24))),
        Prim([uv], tone(0.01), thickness=rng.uniform(0.05, 0.08), closed=False),
        Prim([ellipse(sx, sy, rng.uniform(0.2, 0.32), rng.uniform(0.14, 0.22),
                      rng.uniform(0, np.pi))], tone(0.003)),
        Prim([ellipse(0, 0, 1.0, b)], tone(rng.uniform(0.3, 0.45)),
             thickness=max(0.025, 1.0 / px)),
    ]
    return Part("abdomen", prims, radius=1.05, cover=[ellipse(0, 0, 1.2, b + 0.2)])


def limbs(rng: np.random.Generator, tone: Tone, px: float) -> Part:
    """Long bone (femur, or a tibia/fibula pair) in soft tissue, shadowing beneath."""
    k = rng.uniform(-0.08, 0.08)
    xs = np.linspace(-1, 1, 9)
    bone = np.stack([xs, k * xs**2], 1)
    pair = rng.random() < 0.3
    bright = tone(rng.uniform(0.85, 1.0))
    th = rng.uniform(0.07, 0.11) * (0.7 if pair else 1.0)
    shadow = rng.uniform(0.08, 0.25)
    prims = [Prim([ellipse(0, 0.02, 1.12, rng.uniform(0.22, 0.32))], tone(rng.uniform(0.1, 0.18)))]
    for dy in (-0.09, 0.09) if pair else (0.0,):
        prims.append(Prim([bone + [0, dy]], bright, thickness=th, closed=False, shadow=shadow))
        prims.append(Prim([ellipse(e, k + dy, th * 0.9, th * 0.8, n=10) for e in (-0.98, 0.98)],
                          bright, shadow=shadow))
    return Part("limbs", prims, radius=1.15, cover=[ellipse(0, 0.02, 1.3, 0.45)])


def placenta(rng: np.random.Generator, tone: Tone, apex: tuple[float, float], r_in: float,
             thick: float, phi0: float, phi1: float, fluid_side_inner: bool) -> Part:
    """Thick granular band concentric with the probe; built directly in canvas pixels."""
    ax, ay = apex
    phi = np.linspace(phi0, phi1, 40)
    wob = 1 + 0.04 * np.sin(phi * rng.uniform(5, 12) + rng.uniform(0, 6))
    inner = np.stack([ax + r_in * np.sin(phi), ay + r_in * np.cos(phi)], 1)
    ro = r_in + thick * wob
    outer = np.stack([ax + ro * np.sin(phi), ay + ro * np.cos(phi)], 1)
    band = np.concatenate([inner, outer[::-1]])
    base = rng.uniform(0.18, 0.3)
    prims = [Prim([band], tone(base))]
    n = int(60 + (phi1 - phi0) * r_in * thick / 60)
    rr = r_in + rng.uniform(0.05, 0.95, n) * thick
    pp = rng.uniform(phi0, phi1, n)
    sz = rng.uniform(1.0, 3.0, n)
    grp = rng.integers(0, 4, n)
    t = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    ca, sa = np.cos(t), np.sin(t)
    cx, cy = ax + rr * np.sin(pp), ay + rr * np.cos(pp)
    c, s = np.cos(-pp)[:, None], np.sin(-pp)[:, None]
    ex, ey = 1.5 * sz[:, None] * ca, sz[:, None] * sa
    blobs = np.stack([cx[:, None] + c * ex - s * ey, cy[:, None] + s * ex + c * ey], axis=2)
    for g, v in enumerate((0.45, 1.7, 2.4, 0.15)):
        sel = grp == g
        if sel.any():
            prims.append(Prim(list(blobs[sel]), tone(min(0.8, base * v))))
    plate = inner if fluid_side_inner else outer
    prims.append(Prim([plate], tone(rng.uniform(0.45, 0.7)), thickness=1.5, closed=False))
    return Part("placenta", prims, radius=r_in + thick)


def vary(part: Part, rng: np.random.Generator, strength: float) -> Part:
    """The part with a random shear/stretch, a smooth wobble of its outlines and echogenicities
    varied: shapes and textures beyond the builders' own ranges (strength 0: unchanged)."""
    if strength <= 0:
        return part
    a, sh = rng.uniform(-0.18, 0.18, 2) * strength
    m = np.array([[1 + a, sh], [0.0, 1 - a]])
    f = rng.uniform(1.5, 4.0, 2)
    ph = rng.uniform(0, 2 * np.pi, 2)
    amp = 0.06 * strength

    def warp(p: np.ndarray) -> np.ndarray:
        q = p @ m.T
        return q + amp * np.stack([np.sin(f[0] * p[:, 1] + ph[0]), np.sin(f[1] * p[:, 0] + ph[1])], 1)

    prims = [Prim([warp(p) for p in pr.polys],
                 float(min(1.2, pr.value * np.exp(rng.normal(0, 0.35 * strength)))),
                 pr.thickness * float(np.exp(rng.normal(0, 0.2 * strength))), pr.closed, pr.shadow)
             for pr in part.prims]
    return Part(part.name, prims, part.radius * (1 + abs(a) + abs(sh) + amp),
                [warp(c) for c in part.cover])


BUILDERS = {"head": head, "spine": spine, "thorax": thorax, "abdomen": abdomen, "limbs": limbs}
