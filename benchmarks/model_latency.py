"""Model-only latency of backbones at 224×224 through ONNX Runtime and torch eager, side by side.

    python benchmarks/model_latency.py [ARCH ...]     (default: compact vgg13_bn)

Random-init weights (latency does not depend on the values); batch 1; default thread settings.
"""

from __future__ import annotations

import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from engines.backends import create_backend
from engines.checkpoint import save_checkpoint
from engines.export import export_onnx
from engines.model import ModelConfig, SPNModel


def timings(backend, x: np.ndarray, runs: int) -> np.ndarray:
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        backend.infer(x)
        out.append(time.perf_counter() - start)
    return np.asarray(out) * 1e3


def main(archs: list[str], runs: int = 50) -> None:
    warnings.filterwarnings("ignore")
    x = np.random.default_rng(0).random((1, 1, 224, 224), dtype=np.float32)
    print(f"{'arch':10}{'backend':13}{'p50 ms':>9}{'p90 ms':>9}{'min ms':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        for arch in archs:
            model = SPNModel(ModelConfig(arch=arch, iterations=12)).eval()
            paths = {"onnxruntime": export_onnx(model, Path(tmp) / f"{arch}.onnx"),
                     "torch": save_checkpoint(model, Path(tmp) / f"{arch}.pt")}
            for name, path in paths.items():
                with create_backend(name, path) as backend:
                    t = timings(backend, x, runs)
                print(f"{arch:10}{name:13}{np.percentile(t, 50):9.2f}{np.percentile(t, 90):9.2f}{t.min():9.2f}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")


if __name__ == "__main__":
    main(sys.argv[1:] or ["compact", "vgg13_bn"])
