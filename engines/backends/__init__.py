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
}

__all__ = ["Backend", "BackendError", "BackendOptions", "Inference", "REGISTRY", "backend_class",
           "create_backend"]


def backend_class(name: str) -> type[Backend]:
    if name not in REGISTRY:
        raise ValueError(f"unknown backend {name!r}; choose one of {sorted(REGISTRY)}")
    module, cls = REGISTRY[name].split(":")
    try:
        return getattr(importlib.import_module(module), cls)
    except ImportError as exc:
        raise BackendError(f"backend {name!r} is not available here: {exc}") from exc


def create_backend(name: str, model_path: str | Path, options: BackendOptions | None = None) -> Backend:
    """A backend object, not yet opened (open() loads and warms it up)."""
    return backend_class(name)(model_path, options)
