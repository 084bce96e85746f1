"""A scanner's display: dark UI with fake (patient-free) text around the fan image."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .scanner import SimFrame

_FONT = cv2.FONT_HERSHEY_SIMPLEX


@dataclass
class ScreenFrame:
    image: np.ndarray  # uint8 [h, w, 3] BGR
    fan_roi: tuple[int, int, int, int]  # x, y, w, h of the fan rectangle on the screen
    boxes: dict[str, tuple[float, float, float, float]]  # in screen pixels
    labels: np.ndarray  # float32 [len(REGIONS)]
    seq: int = 0


class ScreenRenderer:
    """Composes fan images onto a cached screen background.

    `fan_scale` None fits the fan to about 78% of the screen height (upscaled with INTER_LINEAR,
    as a scanner's display does); 1.0 places it at native size.
    """

    def __init__(self, width: int = 1920, height: int = 1080, seed: int = 0,
                 fan_scale: float | None = None):
        if not (160 <= int(width) <= 8192 and 120 <= int(height) <= 8192):
            raise ValueError(f"screen size must be within 160x120..8192x8192, got {width}x{height}")
        if fan_scale is not None and not fan_scale > 0:
            raise ValueError(f"fan_scale must be positive, got {fan_scale!r}")
        self.width, self.height, self.seed, self.fan_scale = int(width), int(height), seed, fan_scale
        self._cache: dict[tuple[int, int], tuple[np.ndarray, tuple[int, int, int, int]]] = {}

    def layout(self, fan_shape: tuple[int, int]) -> tuple[int, int, int, int]:
        return self._background(fan_shape)[1]

    def render(self, frame: SimFrame, seq: int) -> ScreenFrame:
        h0, w0 = frame.image.shape[:2]
        bg, roi = self._background((h0, w0))
        x, y, w, h = roi
        out = bg.copy()
        fan = frame.image
        if (w, h) != (w0, h0):
            fan = cv2.resize(fan, (w, h), interpolation=cv2.INTER_LINEAR)
        out[y:y + h, x:x + w] = cv2.cvtColor(fan, cv2.COLOR_GRAY2BGR)
        s = max(self.height / 1080, 0.35)
        cv2.putText(out, f"F {seq:07d}", (int(12 * s), self.height - int(14 * s)), _FONT, 0.6 * s,
                    (200, 200, 200), max(1, int(s)), cv2.LINE_AA)
        sx, sy = w / w0, h / h0
        boxes = {k: (b[0] * sx + x, b[1] * sy + y, b[2] * sx + x, b[3] * sy + y)
                 for k, b in frame.boxes.items()}
        return ScreenFrame(out, roi, boxes, frame.labels, seq)

    def _background(self, fan_shape: tuple[int, int]):
        hit = self._cache.get(fan_shape)
        if hit is not None:
            return hit
        W, H = self.width, self.height
        rng = np.random.default_rng([self.seed, 31337])
        s = max(H / 1080, 0.35)
        top, left, right = int(64 * s), int(W * 0.12), int(W * 0.08)
        scale = self.fan_scale
        if scale is None:
            scale = min(0.78 * H / fan_shape[0], (W - left - right - 20 * s) / fan_shape[1])
        w, h = int(round(fan_shape[1] * scale)), int(round(fan_shape[0] * scale))
        if w > W or h > H:
            raise ValueError(f"fan {fan_shape} at scale {scale:.2f} does not fit a {W}x{H} screen")
        x = int(np.clip(left + (W - left - right - w) // 2 + rng.integers(-20, 21) * s, 0, W - w))
        y = int(np.clip(top + (H - top - h) // 3 + rng.integers(-8, 9) * s, 0, H - h))
        img = np.full((H, W, 3), (18, 16, 14), np.uint8)
        cv2.rectangle(img, (0, 0), (W, top - 4), (52, 40, 30), -1)
        hue = int(rng.integers(0, 180))
        logo = cv2.cvtColor(np.uint8([[[hue, 200, 230]]]), cv2.COLOR_HSV2BGR)[0, 0].tolist()
        cv2.circle(img, (int(30 * s), top // 2), int(18 * s), logo, -1, cv2.LINE_AA)
        cv2.rectangle(img, (int(52 * s), int(14 * s)), (int(60 * s), top - int(14 * s)), logo, -1)
        probe = str(rng.choice(["C5-1", "C6-2", "AB2-7", "C1-5"]))
        ga = f"GA {int(rng.integers(18, 34))}w{int(rng.integers(0, 7))}d"
        for text, tx in ((f"SONOSTREAM SIM   {probe}   OB 2nd", 0.05), ("ID: ANON-0000", 0.38),
                         (ga, 0.56), ("MI 0.9  TIs 0.3", 0.72)):
            cv2.putText(img, text, (int(W * tx), int(top * 0.62)), _FONT, 0.75 * s, (235, 235, 235),
                        max(1, int(1.5 * s)), cv2.LINE_AA)
        lines = ["2D", f"Gn {int(rng.integers(40, 70))}", f"DR {int(rng.integers(50, 75))}",
                 f"FR {int(rng.integers(20, 60))}Hz", f"D {int(rng.integers(12, 20))}.0cm", "THI",
                 "Pwr 100%", "", "Freeze", "Measure", "Annotate"]
        for i, t in enumerate(lines):
            cv2.putText(img, t, (int(14 * s), top + int((40 + 34 * i) * s)), _FONT, 0.7 * s,
                        (210, 200, 170), max(1, int(s)), cv2.LINE_AA)
        # depth scale: a tick every 1/16 of the depth, long ticks every 5
        tx = min(x + w + int(10 * s), W - 1)
        for i in range(17):
            ty = y + int(round(i * (h - 1) / 16))
            ln = int((16 if i % 5 == 0 else 8) * s)
            cv2.line(img, (tx, ty), (min(tx + ln, W - 1), ty), (200, 200, 200), max(1, int(s)))
            if i % 5 == 0 and tx + ln + 4 < W:
                cv2.putText(img, str(i), (tx + ln + 4, ty + int(5 * s)), _FONT, 0.5 * s,
                            (200, 200, 200), 1, cv2.LINE_AA)
        # grey bar
        bx, bw, bh = W - int(50 * s), int(18 * s), int(256 * s)
        if bx > tx + int(40 * s):
            ramp = np.linspace(255, 0, bh).astype(np.uint8)[:, None, None]
            img[top + int(20 * s):top + int(20 * s) + bh, bx:bx + bw] = ramp
        cv2.rectangle(img, (max(x - 2, 0), max(y - 2, 0)), (min(x + w + 1, W - 1),
                      min(y + h + 1, H - 1)), (40, 40, 40), 1)
        roi = (x, y, w, h)
        self._cache[fan_shape] = (img, roi)
        return img, roi
