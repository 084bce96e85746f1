"""A data set's frames rendered once into memory, on every core: simulated frames cost ~80 ms each,
so 10,000 of them are ~13 minutes on one core. Workers are spawned processes (no torch in them,
no fork of a parent's thread pools) that each receive the data set once; frames are returned in
index order, so the result does not depend on the number of workers."""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context

import numpy as np
from tqdm import tqdm

_dataset = None  # the worker's copy
CHUNK = 32  # frames per task: small enough for steady progress, large enough to amortise pickling


def _init(dataset) -> None:
    global _dataset
    _dataset = dataset


def _chunk(start: int, stop: int) -> tuple[int, np.ndarray, np.ndarray]:
    samples = [_dataset[i] for i in range(start, stop)]
    return start, np.stack([s.image for s in samples]), np.stack([s.labels for s in samples])


def default_workers(n: int) -> int:
    """All cores for a large data set; one (no start-up cost) for a small one."""
    return min(os.cpu_count() or 1, 8) if n >= 16 * CHUNK else 1


def materialise(dataset, progress: bool = True, what: str = "frames",
                workers: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """All images (uint8 [N, S, S]) and labels (float32 [N, C]) of a data set, in memory."""
    n = len(dataset)
    if n == 0:
        raise ValueError(f"the {what} data set is empty")
    workers = default_workers(n) if workers is None else max(1, int(workers))
    first = dataset[0]
    images = np.empty((n, *first.image.shape), np.uint8)
    labels = np.empty((n, len(first.labels)), np.float32)
    bar = tqdm(total=n, desc=f"loading {what}", disable=not progress, unit="frame")
    images[0], labels[0] = first.image, first.labels
    bar.update()
    if workers == 1:
        for i in range(1, n):
            sample = dataset[i]
            images[i], labels[i] = sample.image, sample.labels
            bar.update()
    else:
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_init,
                                 initargs=(dataset,)) as pool:
            tasks = [pool.submit(_chunk, s, min(s + CHUNK, n)) for s in range(1, n, CHUNK)]
            for task in as_completed(tasks):
                start, x, y = task.result()
                images[start : start + len(x)], labels[start : start + len(y)] = x, y
                bar.update(len(x))
    bar.close()
    return images, labels
