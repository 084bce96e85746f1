"""Inputs a fetal-ultrasound model was never meant to see, for measuring its OOD score.

Each kind yields uint8 grey images at the model's input size, deterministically per (seed, i):
``noise`` (white noise of random level and spread), ``blank`` (an almost uniform grey screen),
``scene`` (non-ultrasound pictures: shapes, text and gradients, as a desktop or a camera
might show), ``photo`` (crops of a photograph, where matplotlib's sample photo is installed),
``doppler`` (simulated B-mode frames with a colour-flow box painted over them, seen in grey as
the engine sees a colour screen). Simulated styles (``heldout``, ``scatter``) come from the
dataset specs instead.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

KINDS = ("noise", "blank", "scene", "photo", "doppler")


def noise(rng: np.random.Generator, size: int, polar: bool) -> np.ndarray:
    mean, std = rng.uniform(20, 200), rng.uniform(5, 90)
    img = rng.normal(mean, std, (size, size))
    if rng.random() < 0.5:  # sometimes spatially correlated
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.7, 3.0))
        img = mean + (img - img.mean()) * std / max(img.std(), 1e-6)
    return np.clip(img, 0, 255).astype(np.uint8)


def blank(rng: np.random.Generator, size: int, polar: bool) -> np.ndarray:
    img = np.full((size, size), rng.uniform(0, 255)) + rng.normal(0, rng.uniform(0, 3), (size, size))
    return np.clip(img, 0, 255).astype(np.uint8)


def scene(rng: np.random.Generator, size: int, polar: bool) -> np.ndarray:
    s = 2 * size
    img = np.zeros((s, s, 3), np.uint8)
    a, b = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    t = np.linspace(0, 1, s)
    grad = t[:, None] if rng.random() < 0.5 else t[None, :]
    img[:] = (a + (b - a) * grad[..., None]).astype(np.uint8)
    for _ in range(int(rng.integers(3, 12))):
        colour = tuple(float(v) for v in rng.uniform(0, 255, 3))
        k = rng.integers(4)
        p = tuple(int(v) for v in rng.integers(0, s, 2))
        if k == 0:
            q = tuple(int(v) for v in rng.integers(0, s, 2))
            cv2.rectangle(img, p, q, colour, -1 if rng.random() < 0.6 else int(rng.integers(1, 6)))
        elif k == 1:
            cv2.circle(img, p, int(rng.integers(5, s // 3)), colour, -1)
        elif k == 2:
            q = tuple(int(v) for v in rng.integers(0, s, 2))
            cv2.line(img, p, q, colour, int(rng.integers(1, 8)))
        else:
            text = "".join(rng.choice(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 "), 10))
            cv2.putText(img, text, p, cv2.FONT_HERSHEY_SIMPLEX, rng.uniform(0.5, 2.5), colour,
                        int(rng.integers(1, 4)))
    grey = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    return cv2.resize(grey, (size, size), interpolation=cv2.INTER_AREA)


def _photo_file() -> Path | None:
    try:
        import matplotlib

        p = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
        return p if p.is_file() else None
    except ImportError:
        return None


def photo(rng: np.random.Generator, size: int, polar: bool) -> np.ndarray:
    path = _photo_file()
    if path is None:
        raise ValueError("no photograph here (matplotlib's sample data is not installed)")
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    h, w = img.shape
    c = int(rng.uniform(0.3, 1.0) * min(h, w))
    y, x = int(rng.integers(0, h - c + 1)), int(rng.integers(0, w - c + 1))
    crop = img[y:y + c, x:x + c]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    return cv2.resize(np.ascontiguousarray(crop), (size, size), interpolation=cv2.INTER_AREA)


def doppler(rng: np.random.Generator, size: int, polar: bool) -> np.ndarray:
    from engines.simulator import ScannerSimulator, SimConfig

    sim = ScannerSimulator(SimConfig(seed=int(rng.integers(1 << 20)) + 50_000))
    f = sim.frame(int(rng.integers(1000)))
    bgr = cv2.cvtColor(f.image, cv2.COLOR_GRAY2BGR)
    ys, xs = np.nonzero(f.fan_mask)
    cx, cy = int(rng.choice(xs)), int(rng.choice(ys))
    bw, bh = int(rng.uniform(0.25, 0.6) * f.image.shape[1]), int(rng.uniform(0.25, 0.6) * f.image.shape[0])
    box = np.zeros(f.image.shape, np.uint8)
    cv2.rectangle(box, (cx - bw // 2, cy - bh // 2), (cx + bw // 2, cy + bh // 2), 255, -1)
    flow = np.zeros(f.image.shape, np.float32)
    for _ in range(int(rng.integers(2, 7))):
        c = (int(cx + rng.uniform(-0.5, 0.5) * bw), int(cy + rng.uniform(-0.5, 0.5) * bh))
        ax = (int(rng.uniform(4, 30)), int(rng.uniform(3, 15)))
        cv2.ellipse(flow, c, ax, rng.uniform(0, 180), 0, 360, float(rng.choice([-1.0, 1.0])), -1)
    flow = cv2.GaussianBlur(flow, (0, 0), 3.0) * (box > 0) * (f.fan_mask > 0)
    v = np.clip(np.abs(flow) * rng.uniform(1.5, 3.0), 0, 1)
    red = np.stack([np.zeros_like(v), 80 * v, 255 * v], -1)  # BGR: towards the probe
    blue = np.stack([255 * v, 80 * v, np.zeros_like(v)], -1)  # away
    colour = np.where((flow > 0)[..., None], red, blue)
    mix = (v > 0.05)[..., None]
    bgr = np.where(mix, colour, bgr).astype(np.uint8)
    cv2.rectangle(bgr, (cx - bw // 2, cy - bh // 2), (cx + bw // 2, cy + bh // 2), (0, 200, 200), 1)
    grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    if polar:
        from engines.polar import PolarMap, estimate_geometry

        geometry = estimate_geometry(f.fan_mask)
        if geometry is not None:
            return PolarMap(geometry, size).to_polar(grey)
    return cv2.resize(grey, (size, size), interpolation=cv2.INTER_AREA)


MAKERS: dict[str, Callable[[np.random.Generator, int, bool], np.ndarray]] = {
    "noise": noise, "blank": blank, "scene": scene, "photo": photo, "doppler": doppler}


def available(kind: str) -> bool:
    return kind != "photo" or _photo_file() is not None


def images(kind: str, n: int, size: int, polar: bool, seed: int = 0) -> np.ndarray:
    """[n, size, size] uint8 images of one kind."""
    if kind not in MAKERS:
        raise ValueError(f"outlier kind must be one of {KINDS}, got {kind!r}")
    return np.stack([MAKERS[kind](np.random.default_rng([seed, KINDS.index(kind), i]), size, polar)
                     for i in range(n)])
