"""Model-only latency of backbones at 224×224 through ONNX Runtime and torch eager, side by side.

    python benchmarks/model_latency.py [ARCH ...] [--json OUT.json]   (default: compact vgg13_bn resnet18)

Random-init weights (latency does not depend on the values); batch 1; default thread settings.
With ``--json`` the rows are recorded (README's backbone sentence is written from that record).
"""

from __future__ import annotations

import argparse
import json
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


def main(archs: list[str], runs: int = 50) -> list[dict]:
    warnings.filterwarnings("ignore")
    rows = []
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
                rows.append({"arch": arch, "backend": name, "p50_ms": round(float(np.percentile(t, 50)), 3),
                             "p90_ms": round(float(np.percentile(t, 90)), 3), "runs": runs})
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    return rows


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="model-only latency of backbones, side by side")
    ap.add_argument("archs", nargs="*", default=["compact", "vgg13_bn", "resnet18"])
    ap.add_argument("--json", type=Path, help="record the rows here")
    args = ap.parse_args()
    rows = main(args.archs)
    if args.json:
        from streamer.bench.machine import cpu_model

        args.json.write_text(json.dumps({"cpu": cpu_model(),
                                         "torch": torch.__version__, "rows": rows}, indent=1) + "\n")
        print(f"wrote {args.json}")
