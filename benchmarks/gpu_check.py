"""GPU check: torch CUDA FP32/FP16/CUDA-graph and TensorRT against ONNX Runtime CPU, with timings.

Run by scripts/gpu_check on a CUDA machine; --cpu-dry-run runs the same steps on the CPU, small.
Writes gpu_check.json and gpu_check.md to --out.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

from engines.backends import BackendOptions, create_backend
from engines.scoring import probabilities

NO_GPU = ("gpu_check: no CUDA GPU visible to torch (torch.cuda.is_available() is False); run it on a "
          "GPU machine, or pass --cpu-dry-run to exercise the script on the CPU")


def model_files(arch: str, workdir: Path) -> tuple[Path, Path]:
    """(checkpoint, dynamic-batch ONNX): the bundled default for 'default', else random init."""
    import torch

    from engines.checkpoint import load_checkpoint, save_checkpoint
    from engines.defaults import DEFAULT_CHECKPOINT
    from engines.export import export_onnx
    from engines.model import ModelConfig, SPNModel

    if arch == "default" and DEFAULT_CHECKPOINT.is_file():
        ckpt, model = DEFAULT_CHECKPOINT, load_checkpoint(DEFAULT_CHECKPOINT)
    else:
        torch.manual_seed(0)
        model = SPNModel(ModelConfig(arch="compact" if arch == "default" else arch)).eval()
        ckpt = save_checkpoint(model, workdir / f"{arch}.pt")
    return ckpt, export_onnx(model, workdir / f"{arch}.onnx", dynamic_batch=True)


def timed(backend, frames: np.ndarray, batch: int, iters: int) -> list[float]:
    x = np.ascontiguousarray(np.resize(frames, (batch, *frames.shape[1:])))
    for _ in range(3):
        backend.infer(x)
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        backend.infer(x)
        times.append(time.perf_counter() - start)
    return times


def measure(name, path, options, frames, ref, cfg) -> dict:
    row = {"variant": name}
    try:
        with create_backend(name.split(" ")[0], path, options) as be:
            out = be.infer(frames)
            p, q = (probabilities(s, be.info.activation) for s in (out.scores, ref[0]))
            row.update(max_abs_dprob=float(np.abs(p - q).max()),
                       max_rel_dmap=float(np.abs(out.maps - ref[1]).max() / (np.abs(ref[1]).max() + 1e-30)),
                       decisions_agree=bool(((p > 0.5) == (q > 0.5)).all()))
            t1 = np.asarray(timed(be, frames, 1, cfg.iters)) * 1e3
            row.update(p50_ms=float(np.percentile(t1, 50)), p99_ms=float(np.percentile(t1, 99)))
            for b in cfg.batches:
                tb = timed(be, frames, b, max(3, cfg.iters // 10))
                row[f"fps_b{b}"] = float(b / np.median(tb))
    except Exception as exc:  # one variant failing must not hide the others
        row["error"] = f"{type(exc).__name__}: {exc}"
        row["traceback"] = traceback.format_exc(limit=3)
    print(json.dumps({k: v for k, v in row.items() if k != "traceback"}), flush=True)
    return row


def tensorrt_rows(onnx_path: Path, frames, ref, cfg, workdir: Path) -> list[dict]:
    try:
        import tensorrt  # noqa: F401
    except ImportError as exc:
        return [{"variant": "tensorrt", "skipped": f"tensorrt does not import: {exc}"}]
    import onnx

    from engines.precision import convert_fp16
    from engines.tensorrt.build import BuildOptions, build_plan

    rows, batches = [], (1, *cfg.batches)
    fp16_path = workdir / (onnx_path.stem + ".fp16.onnx")
    onnx.save(convert_fp16(onnx.load(str(onnx_path)), frames)[0], str(fp16_path))
    for label, src in (("fp32", onnx_path), ("fp16", fp16_path)):
        plan = workdir / f"{src.stem}.plan"
        try:
            start = time.perf_counter()
            build_plan(src, plan, BuildOptions(batches, 4096, str(workdir / "timing.cache")))
            build_s = time.perf_counter() - start
        except Exception as exc:
            rows.append({"variant": f"tensorrt {label}", "error": f"build: {type(exc).__name__}: {exc}"})
            continue
        for graphs in (False, True):
            opts = BackendOptions(device="cuda", cuda_graphs=graphs)
            row = measure(f"tensorrt {label}{' graph' if graphs else ''}", plan, opts, frames, ref, cfg)
            rows.append({**row, "build_s": build_s})
    return rows


def check_model(arch: str, cfg, workdir: Path) -> dict:
    import onnx

    from engines.precision import run_frames, session

    ckpt, onnx_path = model_files(arch, workdir)
    size = 224
    frames = np.random.default_rng(0).random((2, 1, size, size), dtype=np.float32)
    start = time.perf_counter()
    ref = run_frames(session(onnx.load(str(onnx_path))), frames)
    result = {"model": arch, "checkpoint": str(ckpt), "ort_cpu_ref_s": time.perf_counter() - start, "rows": []}
    device = "cpu" if cfg.cpu_dry_run else "cuda"
    variants = [("torch fp32", BackendOptions(device=device))]
    if not cfg.cpu_dry_run:
        variants += [("torch fp16", BackendOptions(device="cuda", precision="fp16")),
                     ("torch fp32 graph", BackendOptions(device="cuda", cuda_graphs=True)),
                     ("torch fp16 graph", BackendOptions(device="cuda", precision="fp16", cuda_graphs=True))]
    variants.append(("onnxruntime cpu", BackendOptions(device="cpu")))
    for name, opts in variants:
        path = onnx_path if name.startswith("onnxruntime") else ckpt
        result["rows"].append(measure(name, path, opts, frames, ref, cfg))
    if not cfg.cpu_dry_run:
        result["rows"] += tensorrt_rows(onnx_path, frames, ref, cfg, workdir)
    return result


def write(report: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_check.json").write_text(json.dumps(report, indent=2))
    cols = ["variant", "max_abs_dprob", "max_rel_dmap", "decisions_agree", "p50_ms", "p99_ms",
            *[f"fps_b{b}" for b in report["batches"]], "error"]
    lines = [f"# GPU check\n\n- device: {report['device']}\n- torch: {report['torch']}\n"]
    for m in report["models"]:
        lines += [f"\n## {m['model']}\n", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        for r in m["rows"]:
            cells = [r.get(c, r.get("skipped", "") if c == "error" else "") for c in cols]
            lines.append("| " + " | ".join(f"{c:.4g}" if isinstance(c, float) else str(c) for c in cells) + " |")
    (out / "gpu_check.md").write_text("\n".join(lines) + "\n")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", default="gpu_check_out")
    p.add_argument("--cpu-dry-run", action="store_true", help="run the steps on the CPU, small")
    p.add_argument("--iters", type=int, default=200)
    p.add_argument("--models", default="default,vgg13_bn")
    cfg = p.parse_args(argv)
    import torch

    if not cfg.cpu_dry_run and not torch.cuda.is_available():
        print(NO_GPU, file=sys.stderr)
        return 3
    cfg.batches = (2,) if cfg.cpu_dry_run else (8, 32)
    device = "cpu (dry run)" if cfg.cpu_dry_run else torch.cuda.get_device_name(0)
    report = {"device": device, "torch": torch.__version__, "python": platform.python_version(),
              "batches": list(cfg.batches), "iters": cfg.iters, "models": []}
    with tempfile.TemporaryDirectory() as tmp:
        for arch in cfg.models.split(","):
            report["models"].append(check_model(arch, cfg, Path(tmp)))
    write(report, Path(cfg.out))
    print(f"wrote {cfg.out}/gpu_check.json and gpu_check.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
