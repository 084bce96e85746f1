"""Photometric augmentation of training frames: what a scanner's settings change, drawn per frame.

Simulated frames are rendered once and held in memory (engines/datasets/materialise.py), so each
epoch would show the model the same pixels. Redrawing a frame's display settings on every pass
(gamma, contrast, gain, a point-spread blur, a speckle-like multiplicative noise) makes every
epoch's frames new in how they look while their anatomy and labels stay the same. Pixels that are
exactly 0 (outside the field of view) stay 0.
"""

from __future__ import annotations

import cv2
import numpy as np

GAMMA = 0.5  # log-gamma range at strength 1: gamma in [e^-0.5, e^0.5]
CONTRAST = 0.35  # log-contrast range around the frame's mean
GAIN = 30.0  # grey levels
BLUR = (0.3, 1.6)  # Gaussian sigma range, pixels
NOISE = 0.35  # log-amplitude of the multiplicative noise
GRAIN = (0.5, 2.0)  # its correlation length, pixels


def _tone_lut(rng: np.random.Generator, mean: float, strength: float) -> np.ndarray:
    """uint8 lookup table: gamma, then contrast about the mean, then gain; 0 maps to 0."""
    v = np.arange(256, dtype=np.float32) / 255.0
    gamma = np.exp(rng.uniform(-GAMMA, GAMMA) * strength)
    v, m = v ** gamma, (mean / 255.0) ** gamma  # the mean, roughly, after the gamma
    v = (v - m) * np.exp(rng.uniform(-CONTRAST, CONTRAST) * strength) + m
    v = v * 255.0 + rng.uniform(-GAIN, GAIN) * strength
    lut = np.clip(np.rint(v), 0, 255).astype(np.uint8)
    lut[0] = 0
    return lut


def photometric(images: np.ndarray, rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
    """A new uint8 [N, H, W] array: each frame with its own random display settings.

    ``strength`` in [0, 1] scales every range; 0 returns an unchanged copy."""
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"augmentation strength must be in [0, 1], got {strength!r}")
    out = np.array(images, dtype=np.uint8, copy=True)
    if strength == 0.0:
        return out
    for i, frame in enumerate(out):
        outside = frame == 0
        x = cv2.LUT(frame, _tone_lut(rng, float(frame.mean()), strength))
        if rng.random() < 0.5 * strength:
            x = cv2.GaussianBlur(x, (0, 0), rng.uniform(*BLUR))
        if rng.random() < 0.5 * strength:
            n = cv2.GaussianBlur(rng.standard_normal(x.shape).astype(np.float32), (0, 0),
                                 rng.uniform(*GRAIN))
            n *= rng.uniform(0.0, NOISE) * strength / max(float(n.std()), 1e-6)
            x = np.clip(x * np.exp(n), 0, 255).astype(np.uint8)
        x[outside] = 0
        out[i] = x
    return out
