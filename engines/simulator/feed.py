"""A live scanner feed: the probe sweeps smoothly over one fixed fetal layout.

The fetus, placenta, uterus and speckle live in a world plane fixed per seed; each frame is the
fan's view of it at time seq/fps, so structures enter and leave over seconds. Parts that are
less than 40% inside the fan are still drawn (they slide in and out) but are not labelled.
"""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np

from engines.classes import REGIONS

from . import anatomy
from .anatomy import Placed, compose, similarity
from .render import (
    SpeckleBank,
    draw_wall,
    image_chain,
    log_gain,
    sample_geometry,
    sample_look,
    sample_wall,
    stream,
    tone_of,
)
from .scanner import MIN_VISIBLE, SimFrame, half_shape, to_half, visibility
from .screen import ScreenFrame, ScreenRenderer

LIVE_STYLES = ("classic", "heldout")  # a sweep's looks; the wide randomisation is per frame


class LiveFeed:
    def __init__(self, seed: int = 0, fps: float = 30.0, width: int = 1920, height: int = 1080,
                 style: str = "classic", size: tuple[int, int] = (360, 480)):
        if style not in LIVE_STYLES:
            raise ValueError(f"a live feed's style must be one of {LIVE_STYLES}, got {style!r} "
                             "(style=train's wide randomisation and the scatter renderer draw "
                             "independent frames only, for training and evaluation)")
        if not fps > 0:
            raise ValueError(f"fps must be positive, got {fps!r}")
        self.seed, self.fps, self.style, self.size = int(seed), float(fps), style, tuple(size)
        self.renderer = ScreenRenderer(width, height, seed)
        self._seq = 0
        rng = np.random.default_rng([self.seed, 4242, stream(style)])
        while True:  # a sector probe; linear probes are rare in obstetrics
            self.geom = sample_geometry(rng, self.size, style)
            if self.geom.kind == "curvilinear":
                break
        look = sample_look(rng, style, 6)
        self.look = replace(look, shadows=True)
        tone = tone_of(self.look)
        self.wall = sample_wall(rng, tone)
        self.bank = SpeckleBank(self.seed, self.size, style)
        self.fan = self.geom.mask()
        self._hs = to_half(self.size)
        self._gain = log_gain(self.geom, self.look, half_shape(self.size))
        self._build_world(rng, tone)

    # -- world ---------------------------------------------------------------------------------
    def _build_world(self, rng: np.random.Generator, tone) -> None:
        H, W = self.size
        D = self.geom.depth_px
        ru = 1.12 * D
        side = 2 * ru + 0.6 * D
        self.world_size = side
        c = np.array([side / 2, side / 2])
        self._ru, self._centre = ru, c
        a = rng.uniform(-0.5, 0.5) + (np.pi if rng.random() < 0.5 else 0.0)
        u, v = np.array([np.cos(a), np.sin(a)]), np.array([-np.sin(a), np.cos(a)])
        flip = 1.0 if rng.random() < 0.5 else -1.0
        self._axes = (u * D, v * D * flip)
        layout = {  # (along, across) offsets in units of D, size in units of D, angle
            "head": ((-0.78, 0.0), rng.uniform(0.19, 0.24), rng.uniform(0, 6.3)),
            "thorax": ((-0.27, 0.05), rng.uniform(0.14, 0.17), rng.uniform(0, 6.3)),
            "abdomen": ((0.2, 0.05), rng.uniform(0.15, 0.18), rng.uniform(0, 6.3)),
            "spine": ((-0.05, 0.45), rng.uniform(0.36, 0.42), a),
            "limbs": ((0.62, -0.25), rng.uniform(0.14, 0.18), a + rng.uniform(0.4, 1.1)),
        }
        self.parts: list[tuple[anatomy.Part, np.ndarray]] = []
        for name, ((al, ac), sz, ang) in layout.items():
            px = sz * D
            pos = c + u * al * D + v * ac * D * flip
            self.parts.append((anatomy.BUILDERS[name](rng, tone, px), similarity(px, ang, *pos)))
        thick = rng.uniform(0.1, 0.16) * D
        mid = np.arctan2(*(v * -flip)) + rng.uniform(-0.5, 0.5)  # the side away from the spine
        span = rng.uniform(0.3, 0.42)
        plac = anatomy.placenta(rng, tone, tuple(c), ru - thick, thick, mid - span, mid + span,
                                fluid_side_inner=True)
        self.parts.insert(0, (plac, np.array([[1.0, 0, 0], [0, 1.0, 0]])))
        # half-resolution world background: maternal tissue, fluid-filled uterus
        n = int(side // 2)
        low = cv2.resize(rng.standard_normal((9, 9)).astype(np.float32), (n, n),
                         interpolation=cv2.INTER_CUBIC)
        tissue = tone(rng.uniform(0.1, 0.18))
        bg = (tissue * np.exp(0.35 * low)).astype(np.float32)
        cv2.circle(bg, (n // 2, n // 2), int(ru / 2), tone(rng.uniform(0.002, 0.005)), -1)
        self._tissue, self._world_bg = tissue, bg
        # the sweep: two incommensurate periods per axis, plus a slow rock of the probe
        self._path = (rng.uniform(11, 17), rng.uniform(7, 11), rng.uniform(0, 6.3, 3),
                      rng.uniform(5, 9))

    def view(self, t: float) -> tuple[np.ndarray, tuple[float, float]]:
        """World->fan-image matrix at time t, and the world point under the fan's centre."""
        tx, ty, ph, tr = self._path
        along, across = self._axes  # the spine lies at +0.45 across, the placenta near -0.95
        cx, cy = (self._centre + along * 0.75 * np.sin(2 * np.pi * t / tx + ph[0])
                  + across * (0.5 * np.sin(2 * np.pi * t / ty + ph[1]) - 0.15))
        rot = 0.3 * np.sin(2 * np.pi * t / (tr * 2.3) + ph[2])
        ox, oy = self.geom.point(0.5, 0.0)
        r = similarity(1.0, rot, 0.0, 0.0)
        m = compose(np.array([[1.0, 0, ox], [0, 1.0, oy]]),
                    compose(r, np.array([[1.0, 0, -cx], [0, 1.0, -cy]])))
        return m, (cx, cy)

    # -- frames --------------------------------------------------------------------------------
    def fan_frame_at(self, seq: int) -> SimFrame:
        m, (cx, cy) = self.view(seq / self.fps)
        boxes, drawn = {}, []
        for part, mw in self.parts:
            p = Placed(part, compose(m, mw))
            vis, box = visibility(p, self.fan)
            if vis > 0:
                drawn.append(Placed(part, compose(self._hs, p.m)))
            if vis >= MIN_VISIBLE:
                boxes[part.name] = box
        hh, hw = half_shape(self.size)
        mh = compose(self._hs, compose(m, np.diag([2.0, 2.0, 1.0])[:2]))
        echo = cv2.warpAffine(self._world_bg, mh, (hw, hh), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=self._tissue)
        draw_wall(echo, self.geom, self.wall, self.look.reverb)
        speck = self.bank.crop(self.look.slot, int(cy), int(cx))
        img = image_chain(self.geom, self.look, echo, drawn, speck, self.fan, self._gain)
        labels = np.array([c in boxes for c in REGIONS], dtype=np.float32)
        return SimFrame(img, labels, boxes, self.fan > 0, self.geom, seq)

    def frame_at(self, seq: int) -> ScreenFrame:
        if seq < 0:
            raise ValueError(f"seq must be >= 0, got {seq}")
        return self.renderer.render(self.fan_frame_at(seq), seq)

    def next(self) -> ScreenFrame:
        f = self.frame_at(self._seq)
        self._seq += 1
        return f

    def __iter__(self):
        return self

    def __next__(self) -> ScreenFrame:
        return self.next()


class ReplayFeed:
    """The first ``count`` frames of a LiveFeed rendered once, then replayed in a loop.

    Stands in for a capture card, whose frames cost the host nothing to produce, so that a
    benchmark at saturation measures the engine rather than the renderer.
    """

    def __init__(self, feed: LiveFeed, count: int):
        if count < 1:
            raise ValueError(f"replay count must be ≥ 1, got {count}")
        self.frames = [feed.frame_at(i) for i in range(count)]
        self._seq = 0

    def next(self) -> ScreenFrame:
        f = self.frames[self._seq % len(self.frames)]
        self._seq += 1
        return f
