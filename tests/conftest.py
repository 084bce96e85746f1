"""Shared fixtures: small models exported once per test session."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engines.checkpoint import save_checkpoint
from engines.export import export_onnx
from engines.model import ModelConfig, SPNModel


def ultrasound_like(batch: int, size: int = 224, seed: int = 0) -> np.ndarray:
    """Frames in [0,1] with a fan, speckle and a few bright echoes (not uniform noise)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    fan = (np.abs(xx - 0.5) < 0.55 * yy + 0.05) & (yy < 0.95)
    frames = []
    for _ in range(batch):
        speckle = rng.rayleigh(0.25, (size, size))
        cy, cx, r = rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7), rng.uniform(0.08, 0.2)
        ring = np.exp(-((np.hypot(yy - cy, xx - cx) - r) ** 2) / 0.0004)
        frames.append(np.clip(fan * speckle * (0.4 + ring), 0, 1))
    return np.asarray(frames, np.float32)[:, None]


@pytest.fixture(scope="session")
def compact_model() -> SPNModel:
    torch.manual_seed(0)
    return SPNModel(ModelConfig(arch="compact")).eval()


@pytest.fixture(scope="session")
def compact_checkpoint(tmp_path_factory, compact_model):
    return save_checkpoint(compact_model, tmp_path_factory.mktemp("ckpt") / "compact.pt")


@pytest.fixture(scope="session")
def compact_onnx(tmp_path_factory, compact_model):
    return export_onnx(compact_model, tmp_path_factory.mktemp("onnx") / "compact.onnx")


@pytest.fixture(scope="session")
def compact_onnx_dynamic(tmp_path_factory, compact_model):
    path = tmp_path_factory.mktemp("onnx") / "compact_dyn.onnx"
    return export_onnx(compact_model, path, dynamic_batch=True)
