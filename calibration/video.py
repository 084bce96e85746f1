"""Representative frames from a video file: evenly spaced, grey, cropped to the image content."""

from __future__ import annotations

from pathlib import Path

import numpy as np

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".mpg", ".mpeg")


def crop_resize(frame: np.ndarray, size: int, dark: int = 8) -> np.ndarray:
    """Grey uint8 [size, size]: the bounding square of the non-dark content (the fan), resized."""
    import cv2

    grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
    mask = grey > dark
    ys, xs = np.nonzero(mask.mean(axis=1) > 0.05)[0], np.nonzero(mask.mean(axis=0) > 0.05)[0]
    if len(ys) and len(xs):  # rows/columns with some content: compression ringing does not count
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        side = max(y1 - y0, x1 - x0)
        pad = np.zeros((side, side), np.uint8)
        pad[: y1 - y0, : x1 - x0] = grey[y0:y1, x0:x1]
        grey = pad
    return cv2.resize(grey, (size, size), interpolation=cv2.INTER_AREA)


def read_video_frames(path: str | Path, size: int, count: int) -> np.ndarray:
    """count frames (or all, if fewer) as uint8 [N, size, size]."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise ValueError(f"cannot open video {path}")
    try:
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or count
        wanted = set(np.linspace(0, total - 1, min(count, total)).round().astype(int).tolist())
        frames, index = [], 0
        while len(frames) < len(wanted):
            ok, frame = cap.read()
            if not ok:
                break
            if index in wanted:
                frames.append(crop_resize(frame, size))
            index += 1
    finally:
        cap.release()
    if not frames:
        raise ValueError(f"no frames could be read from {path}")
    return np.stack(frames)
