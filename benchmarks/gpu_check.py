"""GPU check: torch CUDA (FP32, FP16, FP16 + CUDA graphs) and TensorRT against ONNX Runtime CPU.

Two halves, so that a bare GPU machine (no internet, no onnx) does GPU work only:
  prepare  (here)  wheels the check needs, models, parity frames and ONNX Runtime CPU references
                   into a folder (default .gpu_check/, git-ignored) carried to the GPU machine;
  run      (there) every row against those references; the JSON and its Markdown twin are
                   rewritten after every row, so a timeout keeps what was done.
scripts/gpu_check wraps both and installs the carried wheels there first.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import platform
import re
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODELS = ("default", "vgg13_bn")  # the bundled model and the paper's size (random weights)
BATCHES = (1, 8, 32)
TORCH_ROWS = (("fp32", False), ("fp16", False), ("fp16", True))  # (precision, CUDA graphs)
# Parity with ONNX Runtime CPU FP32: max |Δ probability| and max |Δ map| / max |map| (GPU FP32 runs
# convolutions in TF32). Both, since a random-weight vgg13_bn gives logits near 0 (probabilities
# near 0.5), where the probability alone hides relative errors.
TOLERANCE = {"fp32": {"dprob": 5e-3, "rel_dmap": 2e-2}, "fp16": {"dprob": 2e-2, "rel_dmap": 5e-2}}
PARITY_FRAMES = "sim:n=32,seed=1000"  # held-out frames, 32 = every batch size divides it
WHEELS = ("onnx==1.23.2", "onnxscript==0.7.2")  # engines' ONNX metadata; export for TensorRT rows
NOT_CARRIED = ("numpy", "sympy", "mpmath")  # torch, CuPy and ONNX Runtime bring them
REQUIRED = {"numpy": "numpy", "torch": "PyTorch", "onnx": "onnx (carried wheel)",
            "onnxruntime": "ONNX Runtime", "engines.export": "sonostream's engines (model, export)"}
OPTIONAL = {"tensorrt": "TensorRT rows skipped", "cuda.bindings": "TensorRT rows need cuda-python",
            "onnxscript": "no ONNX export here, so no TensorRT rows"}
NO_GPU = ("gpu_check: no CUDA GPU visible to torch (torch.cuda.is_available() is False); run it on a "
          "GPU machine, or pass --dry-run to exercise the check on the CPU")


# -- prepare (here) ----------------------------------------------------------------------------
def prepare(folder: Path, wheels: bool = True) -> dict:
    import torch

    from calibration.frames import load_frames
    from engines.checkpoint import load_checkpoint, save_checkpoint
    from engines.defaults import DEFAULT_CHECKPOINT
    from engines.export import export_onnx
    from engines.model import ModelConfig, SPNModel
    from engines.precision import run_frames, session

    folder.mkdir(parents=True, exist_ok=True)
    frames = load_frames(PARITY_FRAMES, 224, 32)
    np.save(folder / "frames.npy", frames)
    manifest = {"frames": PARITY_FRAMES, "prepared": {"torch": torch.__version__,
                                                        "python": platform.python_version()}, "models": {}}
    for arch in MODELS:
        if arch == "default":
            ckpt, rel = DEFAULT_CHECKPOINT, str(DEFAULT_CHECKPOINT.relative_to(ROOT))
        else:  # random weights stored in FP16 (half the size to carry), run as FP32 everywhere
            torch.manual_seed(0)
            ckpt = save_checkpoint(SPNModel(ModelConfig(arch=arch)).eval().half(), folder / f"{arch}.pt")
            rel = ckpt.name
        model = load_checkpoint(ckpt)
        with tempfile.TemporaryDirectory() as tmp:
            onnx_path = export_onnx(model, Path(tmp) / f"{arch}.onnx", dynamic_batch=True)
            import onnx

            start = time.perf_counter()
            scores, maps = run_frames(session(onnx.load(str(onnx_path))), frames)[:2]
            ort_s = time.perf_counter() - start
        np.savez_compressed(folder / f"{arch}.reference.npz", scores=scores, maps=maps)
        manifest["models"][arch] = {"checkpoint": rel, "activation": model.cfg.activation,
                                    "reference": f"{arch}.reference.npz", "ort_cpu_s": round(ort_s, 3)}
        print(f"prepared {arch}: ONNX Runtime CPU reference on {len(frames)} frames in {ort_s:.1f} s")
    if wheels:
        manifest["wheels"] = download_wheels(folder / "wheels")
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest


def download_wheels(dest: Path) -> list[str]:
    """Wheels for CPython 3.12 on x86-64 Linux, less what the GPU machine's stack already has."""
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:", "--python-version", "3.12",
           "--implementation", "cp", "--platform", "manylinux_2_28_x86_64", "--platform",
           "manylinux_2_17_x86_64", "--platform", "manylinux2014_x86_64", "-d", str(dest), *WHEELS]
    subprocess.run(cmd, check=True)
    for wheel in dest.glob("*.whl"):
        if wheel.name.split("-")[0].lower() in NOT_CARRIED:
            wheel.unlink()
    names = sorted(w.name for w in dest.glob("*.whl"))
    print(f"wheels in {dest}: {', '.join(names)}")
    return names


# -- run (there) -------------------------------------------------------------------------------
def preflight() -> tuple[list[str], list[str]]:
    """(missing required pieces, missing optional ones), one line each."""
    def missing(table):
        lines = []
        for module, what in table.items():
            try:
                importlib.import_module(module)
            except Exception as exc:  # an ImportError, or a library that fails to load
                lines.append(f"gpu_check: missing {module} ({what}): {type(exc).__name__}: {exc}")
        return lines

    return missing(REQUIRED), missing(OPTIONAL)


def timed(backend, x: np.ndarray, iters: int, budget_s: float) -> np.ndarray:
    """Latencies (ms) of up to ``iters`` calls, stopping after ``budget_s`` seconds."""
    times, stop = [], time.perf_counter() + budget_s
    while len(times) < iters and (len(times) < 5 or time.perf_counter() < stop):
        start = time.perf_counter()
        backend.infer(x)
        times.append(time.perf_counter() - start)
    return np.asarray(times) * 1e3


def measure(backend, frames, ref_probs, ref_maps, activation: str, batch: int, cfg) -> dict:
    """One row: parity over all frames in batches of ``batch`` (also the warm-up), then timing."""
    from engines.scoring import probabilities

    outs = [backend.infer(frames[i:i + batch]) for i in range(0, len(frames), batch)]
    scores, maps = (np.concatenate([getattr(o, k) for o in outs]) for k in ("scores", "maps"))
    dprob = float(np.abs(probabilities(scores, activation) - ref_probs).max())
    rel_dmap = float(np.abs(maps - ref_maps).max() / (np.abs(ref_maps).max() + 1e-30))
    t = timed(backend, np.ascontiguousarray(frames[:batch]), cfg.iters, cfg.row_seconds)
    return {"p50_ms": float(np.percentile(t, 50)), "p99_ms": float(np.percentile(t, 99)),
            "fps": float(batch * len(t) / (t.sum() / 1e3)), "iters": len(t), "max_abs_dprob": dprob,
            "max_rel_dmap": rel_dmap}


def backend_rows(report, write, name, path, options, label, model, frames, ref, cfg, **extra):
    """Rows for batch sizes 1/8/32 of one backend configuration, written one by one."""
    from engines.backends import create_backend
    from engines.scoring import probabilities

    ref_probs = probabilities(ref["scores"], model["activation"])
    precision, graphs = options.precision, options.cuda_graphs
    be = None
    try:
        be = create_backend(name, path, options, **extra).open()
        opened = None
    except Exception as exc:
        opened = f"open: {type(exc).__name__}: {exc}"
    for batch in cfg.batches:
        row = {"model": label, "backend": name, "precision": precision, "cuda_graphs": graphs, "batch": batch,
               "p50_ms": None, "p99_ms": None, "fps": None, "parity_ok": False, "max_abs_dprob": None}
        if opened or time.perf_counter() > cfg.deadline:
            row["error"] = opened or "skipped: the check's time budget is spent"
        else:
            try:
                row.update(measure(be, frames, ref_probs, ref["maps"], model["activation"], batch, cfg))
                tol = TOLERANCE[precision]
                row["parity_ok"] = row["max_abs_dprob"] <= tol["dprob"] and row["max_rel_dmap"] <= tol["rel_dmap"]
            except Exception as exc:  # one row failing must not hide the others
                row["error"] = f"{type(exc).__name__}: {exc}"
                traceback.print_exc(limit=3)
        report["rows"].append(row)
        write(report)
        print(json.dumps(row), flush=True)
    if be is not None:
        be.close()


def tensorrt_rows(report, write, arch, ckpt, model, frames, ref, cfg, work: Path) -> None:
    from engines.backends import BackendOptions
    from engines.checkpoint import load_checkpoint
    from engines.export import export_onnx
    from engines.tensorrt.build import BuildOptions, build_plan
    from streamer.cli.build_cmd import FP16_FRAMES, fp16_onnx

    onnx32 = export_onnx(load_checkpoint(ckpt), work / f"{arch}.onnx", dynamic_batch=True)
    sources = {"fp32": onnx32, "fp16": fp16_onnx(onnx32, FP16_FRAMES, work / f"{arch}.fp16.onnx")}
    for precision, graphs in TORCH_ROWS:
        plan = work / f"{arch}.{precision}.plan"
        if not plan.is_file():
            start = time.perf_counter()
            build_plan(sources[precision], plan, BuildOptions(cfg.batches, 4096, str(work / "timing.cache")))
            print(f"built {plan.name} in {time.perf_counter() - start:.1f} s", flush=True)
        options = BackendOptions(device="cuda", precision=precision, cuda_graphs=graphs)
        backend_rows(report, write, "tensorrt", plan, options, arch, model, frames, ref, cfg)


def run(cfg) -> int:
    missing, optional = preflight()
    for line in missing + optional:
        print(line, file=sys.stderr)
    if missing:
        return 2
    import torch

    from engines.backends import BackendOptions

    if not cfg.dry_run and not torch.cuda.is_available():
        print(NO_GPU, file=sys.stderr)
        return 3
    folder = Path(cfg.dir)
    if not (folder / "manifest.json").is_file():
        print(f"gpu_check: {folder}/manifest.json is missing: run `scripts/gpu_check --prepare` on a "
              "machine with PyPI first and carry the folder", file=sys.stderr)
        return 2
    manifest = json.loads((folder / "manifest.json").read_text())
    frames = np.load(folder / "frames.npy")
    gpu = "cpu-dry-run" if cfg.dry_run else torch.cuda.get_device_name(0)
    date = datetime.date.today().isoformat()
    out = Path(cfg.out) / f"{date}-{re.sub(r'[^a-z0-9]+', '-', gpu.lower()).strip('-')}.json"
    report = {"gpu": gpu, "date": date, "torch": torch.__version__, "python": platform.python_version(),
              "tolerance": TOLERANCE, "frames": manifest["frames"], "rows": []}
    report["tensorrt"] = None if any(m.startswith("gpu_check: missing tensorrt") for m in optional) \
        else importlib.import_module("tensorrt").__version__
    device = "cpu" if cfg.dry_run else "cuda"
    rows = TORCH_ROWS[:1] if cfg.dry_run else TORCH_ROWS  # FP16 and graphs need CUDA
    write = lambda r: write_report(r, out)  # noqa: E731
    with tempfile.TemporaryDirectory() as tmp:
        for arch in cfg.models:
            model = manifest["models"][arch]
            ckpt = ROOT / model["checkpoint"] if arch == "default" else folder / model["checkpoint"]
            ref = np.load(folder / model["reference"])
            for precision, graphs in rows:
                options = BackendOptions(device=device, precision=precision, cuda_graphs=graphs)
                backend_rows(report, write, "torch", ckpt, options, arch, model, frames, ref, cfg)
            if report["tensorrt"] and not optional and not cfg.dry_run:
                try:
                    tensorrt_rows(report, write, arch, ckpt, model, frames, ref, cfg, Path(tmp))
                except Exception as exc:
                    report.setdefault("errors", []).append(f"tensorrt {arch}: {type(exc).__name__}: {exc}")
                    write(report)
    print(f"wrote {out} and {out.with_suffix('.md')}")
    return 0


def write_report(report: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    cols = ("model", "backend", "precision", "cuda_graphs", "batch", "p50_ms", "p99_ms", "fps",
            "parity_ok", "max_abs_dprob", "max_rel_dmap", "error")
    lines = [f"# GPU check: {report['gpu']}", "",
             f"{report['date']} · torch {report['torch']} · TensorRT {report['tensorrt'] or 'absent'} · "
             f"parity against ONNX Runtime CPU FP32 on `{report['frames']}`, tolerances (max |Δ probability|, "
             f"max |Δ map| / max |map|): {json.dumps(report['tolerance'])}", "",
             f"Goal on vgg13_bn at batch 1: ≥ 1,000 frames/s and p99 < 3 ms — {goal(report)}", "",
             "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in report["rows"]:
        cells = (r.get(c, "") for c in cols)
        lines.append("| " + " | ".join(f"{c:.4g}" if isinstance(c, float) else str(c) for c in cells) + " |")
    lines += [f"\n- {e}" for e in report.get("errors", [])]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")


def goal(report: dict) -> str:
    rows = [r for r in report["rows"] if r["model"] == "vgg13_bn" and r["batch"] == 1 and r["fps"]]
    best = [r for r in rows if r["parity_ok"] and r["fps"] >= 1000 and r["p99_ms"] < 3]
    if best:
        return "met by " + ", ".join(f"{r['backend']} {r['precision']}{' + graphs' * r['cuda_graphs']}"
                                     for r in best)
    return "not met" if rows else "not measured"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--prepare", action="store_true", help="here: wheels, models and references into --dir")
    p.add_argument("--no-wheels", action="store_true", help="with --prepare: skip downloading wheels")
    p.add_argument("--dir", default=str(ROOT / ".gpu_check"), help="the prepared folder")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "gpu"), help="report folder")
    p.add_argument("--dry-run", action="store_true",
                   help="the check's plumbing on the CPU: FP32 rows only, batches 1 and 8, few iterations")
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--iters", type=int, default=300, help="timed calls per row at most")
    p.add_argument("--row-seconds", type=float, default=1.5, help="timing budget per row")
    p.add_argument("--budget", type=float, default=420, help="seconds after which rows are skipped")
    cfg = p.parse_args(argv)
    cfg.models = [m for m in cfg.models.split(",") if m]
    if unknown := set(cfg.models) - set(MODELS):
        print(f"gpu_check: unknown models {sorted(unknown)}; choose from {list(MODELS)}", file=sys.stderr)
        return 2
    if cfg.prepare:
        prepare(Path(cfg.dir), wheels=not cfg.no_wheels)
        return 0
    cfg.batches = BATCHES[:2] if cfg.dry_run else BATCHES
    cfg.deadline = time.perf_counter() + cfg.budget
    return run(cfg)


if __name__ == "__main__":
    sys.exit(main())
