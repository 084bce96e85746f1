"""Inference backends behind one interface, looked up by name.

Each entry names where its class lives, so heavy libraries (torch, TensorRT) load only when that
backend is chosen. Adding a backend: one new file plus one line here.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from engines.backends.base import Backend, BackendError, BackendOptions, Inference

REGISTRY: dict[str, str] = {
    "onnxruntime": "engines.backends.onnxruntime_backend:OnnxRuntimeBackend",
    "torch": "engines.backends.torch_backend:TorchBackend",
    "tensorrt": "engines.backends.tensorrt_backend:TensorRTBackend",
    "remote": "engines.backends.remote_backend:RemoteBackend",
}

BY_SUFFIX: dict[str, str] = {
    ".onnx": "onnxruntime", ".pt": "torch", ".pth": "torch", ".plan": "tensorrt", ".engine": "tensorrt",
}
"""The backend that runs a model file of each kind unless one is named."""

__all__ = ["BY_SUFFIX", "Backend", "BackendError", "BackendOptions", "Inference", "REGISTRY",
           "backend_class", "backend_for", "create_backend"]


def backend_class(name: str) -> type[Backend]:
    if name not in REGISTRY:
        raise ValueError(f"unknown backend {name!r}; choose one of {sorted(REGISTRY)}")
    module, cls = REGISTRY[name].split(":")
    try:
        return getattr(importlib.import_module(module), cls)
    except ImportError as exc:
        raise BackendError(f"backend {name!r} is not available here: {exc}") from exc


def backend_for(path: str | Path) -> str:
    suffix = Path(path).suffix
    if suffix not in BY_SUFFIX:
        raise ValueError(f"cannot tell the backend for {path}: name one of {sorted(REGISTRY)}")
    return BY_SUFFIX[suffix]


def create_backend(name: str, model_path: str | Path, options: BackendOptions | None = None,
                   **extra) -> Backend:
    """A backend object, not yet opened (open() loads and warms it up); extra: backend-specific."""
    return backend_class(name)(model_path, options, **extra)
