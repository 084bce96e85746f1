"""Calibration and held-out frame sets from a data spec, as float32 [N, 1, S, S] in [0, 1]."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from calibration.video import VIDEO_SUFFIXES, crop_resize, read_video_frames

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def _folder_images(folder: Path, size: int, count: int) -> np.ndarray:
    """Unlabelled images: calibration needs no labels."""
    import cv2

    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:count]
    if not paths:
        raise ValueError(f"no images in {folder}")
    return np.stack([crop_resize(cv2.imread(str(p), cv2.IMREAD_GRAYSCALE), size) for p in paths])


def _dataset_images(spec: str, size: int, count: int) -> np.ndarray:
    from engines.datasets import open_dataset

    items = list(itertools.islice(open_dataset(spec, size), count))
    if not items:
        raise ValueError(f"data spec {spec!r} gave no frames")
    return np.stack([np.asarray(item.image, np.uint8) for item in items])


def load_frames(spec: str, size: int, count: int) -> np.ndarray:
    path = Path(spec)
    if path.suffix.lower() in VIDEO_SUFFIXES:
        if not path.is_file():
            raise FileNotFoundError(f"video not found: {spec}")
        images = read_video_frames(path, size, count)
    elif path.is_dir() and any(p.suffix.lower() in IMAGE_SUFFIXES for p in path.iterdir()):
        try:  # a labelled dataset folder if engines.datasets knows it; plain images otherwise
            images = _dataset_images(spec, size, count)
        except (ImportError, ValueError):
            images = _folder_images(path, size, count)
    else:
        try:
            images = _dataset_images(spec, size, count)
        except ImportError:
            raise ValueError(f"cannot read data spec {spec!r}: engines.datasets is not available "
                             "here; pass a video file or a folder of images") from None
    return (images.astype(np.float32) / 255.0)[:, None]


def split(frames: np.ndarray, held_out: int) -> tuple[np.ndarray, np.ndarray]:
    """(calibration, held-out): every k-th frame held out, so both span the whole set."""
    if held_out <= 0:
        return frames, frames[:0]
    step = max(2, len(frames) // held_out)
    mask = np.zeros(len(frames), bool)
    mask[::step] = True
    return frames[~mask], frames[mask][:held_out]
