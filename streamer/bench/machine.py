"""The host: CPU, cores, GPU, library versions, thread settings and its measured peak GFLOP/s."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import time
from importlib import metadata

import numpy as np

LIBRARIES = ("numpy", "onnxruntime", "onnx", "torch", "opencv-python-headless", "pyzmq")
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu() -> str | None:
    """The first NVIDIA GPU's name (nvidia-smi), else None."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    names = out.stdout.strip().splitlines()
    return names[0].strip() if out.returncode == 0 and names else None


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def threads() -> dict:
    out = {k: os.environ.get(k) for k in THREAD_ENV}
    try:
        import torch

        out["torch_threads"] = torch.get_num_threads()
    except ImportError:
        pass
    return out


def describe() -> dict:
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cores_logical": os.cpu_count(),
        "cores_usable": affinity,
        "gpu": gpu(),
        "load_average_at_start": [round(x, 2) for x in load] if load else None,
        "versions": versions(),
        "threads": threads(),
    }


def _best_gflops(matmul, n: int, repeats: int = 5) -> float:
    matmul()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        matmul()
        best = min(best, time.perf_counter() - start)
    return 2.0 * n**3 / best / 1e9


def peak_gflops(n: int = 2048) -> dict:
    """A float32 n×n matrix product through numpy and torch (all threads, and torch on one):
    the machine's practical peak, to set achieved model GFLOP/s against."""
    rng = np.random.default_rng(0)
    a, b = rng.random((n, n), np.float32), rng.random((n, n), np.float32)
    out = {"matrix": n, "numpy": round(_best_gflops(lambda: a @ b, n), 2)}
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        out["torch"] = round(_best_gflops(lambda: ta @ tb, n), 2)
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            out["torch_1_thread"] = round(_best_gflops(lambda: ta @ tb, n), 2)
        finally:
            torch.set_num_threads(before)
    out["peak"] = max(v for k, v in out.items() if k in ("numpy", "torch", "torch_1_thread"))
    out["peak_1_thread"] = out.get("torch_1_thread")
    return out
