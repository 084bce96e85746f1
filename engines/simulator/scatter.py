"""A second, independent renderer for testing only: scatterers convolved with a point-spread function.

The training renderer (render.image_chain) blurs the echo map and adds a cached log-speckle field
in display space. This one works the way a scanner forms an image: the echo map is sampled along
the beams (depth x beam angle), random scatterers (sparse or dense, amplitude set by the echo map)
are convolved with a depth-dependent complex point-spread function (axial pulse, lateral beam that
is narrowest at a focal depth), envelope-detected, gain- and log-compressed on the beam grid and
then scan-converted to the sector by interpolation between beams. Training never sees it.
"""

from __future__ import annotations

import cv2
import numpy as np

from .render import FanGeometry, Look


def beam_grid(geom: FanGeometry, samples: int, beams: int) -> tuple[np.ndarray, np.ndarray]:
    """Native-pixel (x, y) of every (depth sample, beam) of the fan."""
    dn = np.linspace(0.0, 1.0, samples, dtype=np.float64)[:, None]
    lat = np.linspace(-1.0, 1.0, beams, dtype=np.float64)[None, :]
    x, y = geom.point(dn, lat)
    return np.broadcast_to(x, (samples, beams)), np.broadcast_to(y, (samples, beams))


def to_beams(geom: FanGeometry, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """For every native pixel, its (beam, sample) coordinate on a [samples, beams] grid of size h, w."""
    H, W = geom.size
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float64)
    dn = geom.depth(xs, ys)
    if geom.kind == "curvilinear":
        lat = np.arctan2(xs - geom.apex[0], ys - geom.apex[1]) / geom.half_angle
    else:
        (x0, y0), (x1, _), (x2, y2), (x3, _) = geom.quad
        t = (ys - y0) / (y2 - y0)
        lft, rgt = x0 + t * (x3 - x0), x1 + t * (x2 - x1)
        lat = (xs - (lft + rgt) / 2) / np.maximum((rgt - lft) / 2, 1e-6)
    return ((lat + 1) / 2 * (w - 1)).astype(np.float32), (dn * (h - 1)).astype(np.float32)


def scatter_chain(geom: FanGeometry, look: Look, echo: np.ndarray, fan: np.ndarray,
                  rng: np.random.Generator) -> np.ndarray:
    """echo: half-res linear amplitude map with parts and shadows; returns the uint8 B-mode image."""
    H, W = geom.size
    hh, hw = echo.shape
    samples = int(rng.integers(360, 520))
    beams = int(rng.integers(96, 200))
    bx, by = beam_grid(geom, samples, beams)
    ex = (bx * hw / W - 0.5).astype(np.float32)
    ey = (by * hh / H - 0.5).astype(np.float32)
    amp = cv2.remap(echo, ex, ey, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    density = rng.uniform(0.15, 1.0)  # scatterers per resolution cell: sparse is not Rayleigh
    keep = (rng.random((samples, beams)) < density).astype(np.float32)
    re = (rng.standard_normal((samples, beams), dtype=np.float32) * amp * keep)
    im = (rng.standard_normal((samples, beams), dtype=np.float32) * amp * keep)
    # point-spread function: axial pulse with a carrier (complex baseband), lateral beam profile
    # that widens away from the focus.
    ax_sigma = rng.uniform(0.8, 2.5) * samples / 360
    n = int(np.ceil(3 * ax_sigma))
    t = np.arange(-n, n + 1, dtype=np.float32)
    env = np.exp(-0.5 * (t / ax_sigma) ** 2)
    f0 = rng.uniform(0.15, 0.35)
    kr, ki = env * np.cos(2 * np.pi * f0 * t), env * np.sin(2 * np.pi * f0 * t)
    one = np.ones(1, np.float32)

    def axial(a, k):
        return cv2.sepFilter2D(a, -1, one, k.astype(np.float32), borderType=cv2.BORDER_CONSTANT)

    zr = axial(re, kr) - axial(im, ki)
    zi = axial(re, ki) + axial(im, kr)
    focus = rng.uniform(0.3, 0.8)
    near, far = rng.uniform(0.5, 1.0), rng.uniform(1.2, 2.6)
    blurred = []
    for s in (near, far):
        blurred.append((cv2.GaussianBlur(zr, (0, 0), s, sigmaY=1e-3),
                        cv2.GaussianBlur(zi, (0, 0), s, sigmaY=1e-3)))
    dn = np.linspace(0, 1, samples, dtype=np.float32)[:, None]
    wfar = np.clip(np.abs(dn - focus) / max(focus, 1 - focus), 0, 1)
    zr = (1 - wfar) * blurred[0][0] + wfar * blurred[1][0]
    zi = (1 - wfar) * blurred[0][1] + wfar * blurred[1][1]
    # the envelope a unit echo amplitude gives (the PSF's energy times the scatterer density)
    unit = np.sqrt(density * 2 * float(np.sum(kr * kr + ki * ki))
                   / (2 * np.sqrt(np.pi) * (near + far) / 2))
    envelope = np.sqrt(zr * zr + zi * zi) / unit + look.floor * rng.uniform(0.3, 1.0)
    tgc = np.interp(dn, (0, 1 / 3, 2 / 3, 1), look.tgc) - look.atten * dn
    lg = np.log(envelope) + tgc.astype(np.float32)
    dr = look.dr_db / 20 * np.log(10)
    grey = np.clip(1 + (lg + look.gain_db / 20 * np.log(10)) / dr, 0, 1)
    grey = (255 * grey**look.gamma).astype(np.float32)
    grey += rng.standard_normal(grey.shape, dtype=np.float32) * rng.uniform(0, 6)
    mx, my = to_beams(geom, samples, beams)
    img = cv2.remap(grey, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    return cv2.bitwise_and(np.clip(img, 0, 255).astype(np.uint8), fan)
