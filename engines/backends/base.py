"""The one small interface every inference backend implements.

The base class owns the bookkeeping (open/closed state, input checks, output checks, timing of
the last call, context manager); a backend implements ``_load``, ``_run`` and ``_close``.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from engines.model_info import PRECISIONS, ModelInfo


class BackendError(RuntimeError):
    """A backend cannot load or run the model; the message says why and what to do."""


class BackendUnavailable(BackendError):
    """A remote backend's server cannot be reached now; it retries with backoff by itself."""


@dataclass(frozen=True)
class Inference:
    scores: np.ndarray  # [B, C] float32 logits
    maps: np.ndarray  # [B, C, h, w] float32 class localisation maps
    features: np.ndarray | None = None  # [B, D] pooled features, where the model outputs them


@dataclass(frozen=True)
class BackendOptions:
    device: str = "cpu"
    precision: str = "fp32"
    threads: int = 0  # 0: the library's default
    cuda_graphs: bool = False
    warmup: int = 2
    # ONNX Runtime's idle worker threads spin: lowest latency for back-to-back calls, but a core
    # stays busy between frames (measured: 1.15 vs 0.28 cores at 30 fps) and the pipeline's other
    # threads need it, so off unless asked for.
    spin: bool = False

    def __post_init__(self):
        if self.device not in ("cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ValueError(f"device must be 'cpu' or 'cuda[:N]', got {self.device!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.threads < 0 or self.warmup < 0:
            raise ValueError("threads and warmup must be ≥ 0")


class Backend(ABC):
    name: ClassVar[str]

    def __init__(self, model_path: str | Path, options: BackendOptions | None = None):
        self.model_path = Path(model_path)
        self.options = options or BackendOptions()
        self.info: ModelInfo | None = None
        self.fixed_batch: int | None = None
        self.last_inference_s = 0.0
        self._open = False

    # -- what a backend implements -------------------------------------------------------
    @abstractmethod
    def _load(self) -> ModelInfo:
        """Load the model; set ``fixed_batch`` if the model takes one batch size only."""

    @abstractmethod
    def _run(self, batch: np.ndarray) -> tuple[np.ndarray, ...]:
        """Run a checked float32 batch [B, 1, S, S]; return (scores, maps) as numpy arrays, and
        the pooled features third where the model has that output (engines.ood)."""

    def _close(self) -> None:  # noqa: B027 - optional hook
        pass

    def _details(self) -> dict:
        return {}

    # -- the interface ---------------------------------------------------------------------
    def open(self) -> Backend:
        if self._open:
            return self
        if not self.model_path.is_file():
            raise BackendError(f"model file not found: {self.model_path}")
        self.info = self._load()
        self._open = True
        size = self.info.input_size
        for _ in range(max(1, self.options.warmup)):
            self._check_outputs(*self._run_batched(np.zeros((1, 1, size, size), np.float32))[:2], 1)
        return self

    def infer(self, batch: np.ndarray) -> Inference:
        if not self._open:
            raise BackendError(f"{self.name} backend is not open: call open() first")
        self._check_input(batch)
        start = time.perf_counter()
        scores, maps, *features = self._run_batched(np.ascontiguousarray(batch))
        self.last_inference_s = time.perf_counter() - start
        self._check_outputs(scores, maps, batch.shape[0])
        return Inference(scores, maps, features[0] if features else None)

    def map_variants(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Other kinds of map this backend can give for the same frames (name → [B, 1 or C, h,
        w]), for evaluation to compare; the deployed graphs give only their class maps."""
        return {}

    def describe(self) -> dict:
        info = self.info
        return {
            "backend": self.name,
            "model": str(self.model_path),
            "device": self.options.device,
            "precision": info.precision if info else self.options.precision,
            "classes": list(info.classes) if info else None,
            "input_size": info.input_size if info else None,
            **self._details(),
        }

    def close(self) -> None:
        if self._open:
            self._close()
        self._open = False

    def __enter__(self) -> Backend:
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    # -- bookkeeping -----------------------------------------------------------------------
    def _run_batched(self, batch: np.ndarray) -> tuple[np.ndarray, ...]:
        fixed = self.fixed_batch
        if fixed is None or batch.shape[0] == fixed:
            return self._run(batch)
        if fixed != 1:
            raise BackendError(f"the model takes batches of exactly {fixed}, got {batch.shape[0]}")
        parts = [self._run(batch[i : i + 1]) for i in range(batch.shape[0])]
        return tuple(np.concatenate(out) for out in zip(*parts, strict=True))

    def _check_input(self, batch) -> None:
        size = self.info.input_size
        if not isinstance(batch, np.ndarray):
            raise ValueError(f"input must be a numpy array, got {type(batch).__name__}")
        if batch.dtype != np.float32:
            raise ValueError(f"input dtype must be float32 (scaled to [0,1]), got {batch.dtype}")
        if batch.ndim != 4 or batch.shape[1:] != (1, size, size) or batch.shape[0] < 1:
            raise ValueError(f"input shape must be [B, 1, {size}, {size}], got {list(batch.shape)}")

    def _check_outputs(self, scores, maps, count: int) -> None:
        classes = len(self.info.classes)
        if scores.shape != (count, classes) or maps.ndim != 4 or maps.shape[:2] != (count, classes):
            raise BackendError(
                f"model outputs do not match its {classes} declared classes: scores "
                f"{list(scores.shape)}, maps {list(maps.shape)} for a batch of {count}"
            )
