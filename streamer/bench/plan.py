"""What one bench run measures: model files, configurations and how long each runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from streamer.config import MAX_STREAMS


@dataclass(frozen=True)
class ModelRun:
    """One model-only configuration."""

    backend: str
    precision: str
    path: Path
    batch: int

    @property
    def label(self) -> str:
        return f"{self.backend} {self.precision} b{self.batch}"


@dataclass(frozen=True)
class BenchPlan:
    onnx: Path
    checkpoint: Path | None = None
    extra_onnx: dict[str, Path] = field(default_factory=dict)  # precision → ONNX file
    duration_s: float = 5.0  # per configuration (a run also stops at ``frames``)
    frames: int = 0  # 0: no frame limit
    fps: tuple[float, ...] = (30.0, 60.0)
    batches: tuple[int, ...] = (1, 8)
    width: int = 1920
    height: int = 1080
    warmup: int = 5  # iterations (model only) or frames (end to end) left out of the figures
    max_batch: int = 4  # the pipeline's micro-batch limit at saturation
    threads: tuple[int, ...] = ()  # ONNX Runtime intra-op threads to choose from; (): 1..cores
    smoke: bool = False  # too short for a verdict: the report says so instead of judging
    preprocess_in_source: bool = False  # True: the pipeline preprocesses in the source thread
    spin: bool = False  # ONNX Runtime's worker threads spin between calls (model alone and pipelines)
    streams: tuple[int, ...] = ()  # numbers of 30 fps streams through one pipeline (the curve)

    def __post_init__(self):
        if self.duration_s <= 0 or self.frames < 0 or self.warmup < 0:
            raise ValueError("--duration must be > 0 and --frames ≥ 0")
        if not self.fps or any(f <= 0 for f in self.fps):
            raise ValueError("--fps must list positive frame rates")
        if not self.batches or any(b < 1 for b in self.batches):
            raise ValueError("--batches must list batch sizes ≥ 1")
        if self.max_batch < 1 or any(t < 0 for t in self.threads):
            raise ValueError("--max-batch must be ≥ 1 and --threads ≥ 0")
        if any(n < 1 or n > MAX_STREAMS for n in self.streams):
            raise ValueError(f"--streams takes stream counts from 1 to {MAX_STREAMS}")

    def thread_candidates(self) -> tuple[int, ...]:
        import os

        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        return self.threads or tuple(range(1, max(1, min(cores or 1, 4)) + 1))

    def model_runs(self) -> list[ModelRun]:
        files = [("onnxruntime", "fp32", self.onnx)]
        files += [("onnxruntime", p, path) for p, path in sorted(self.extra_onnx.items())]
        if self.checkpoint is not None:
            files.append(("torch", "fp32", self.checkpoint))
        return [ModelRun(b, p, path, n) for b, p, path in files for n in self.batches]

    def enough(self, count: int, elapsed_s: float) -> bool:
        """A configuration has run long enough (after its warm-up)."""
        return elapsed_s >= self.duration_s or bool(self.frames and count >= self.frames)


def quick_plan(onnx: Path, checkpoint: Path | None, extra: dict[str, Path]) -> BenchPlan:
    """A smoke run of a few seconds: tiny counts, one frame rate, batch 1, one thread setting.
    Its figures are too few for a verdict, and the report says so."""
    return BenchPlan(onnx, checkpoint, extra, duration_s=0.5, frames=8, fps=(30.0,), batches=(1,),
                     warmup=1, threads=(0,), smoke=True)
