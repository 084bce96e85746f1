"""What one bench run measures: model files, configurations and how long each runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


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
    peak_size: int = 2048  # matrix side for the machine's measured peak

    def __post_init__(self):
        if self.duration_s <= 0 or self.frames < 0 or self.warmup < 0:
            raise ValueError("--duration must be > 0 and --frames ≥ 0")
        if not self.fps or any(f <= 0 for f in self.fps):
            raise ValueError("--fps must list positive frame rates")
        if not self.batches or any(b < 1 for b in self.batches):
            raise ValueError("--batches must list batch sizes ≥ 1")

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
    """A few seconds in total: tiny counts, one frame rate, batch 1."""
    return BenchPlan(onnx, checkpoint, extra, duration_s=0.5, frames=8, fps=(30.0,), batches=(1,),
                     warmup=1, peak_size=1024)
