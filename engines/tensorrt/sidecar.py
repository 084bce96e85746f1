"""The JSON beside every plan: what it was built from and for; a plan is used only where it fits."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from engines.backends.base import BackendError
from engines.model_info import file_sha256

MATCH_KEYS = ("tensorrt_version", "gpu_name", "compute_capability")


class PlanMismatch(BackendError):
    """A plan built for another GPU or TensorRT, with no ONNX at hand to rebuild it."""


@dataclass(frozen=True)
class Sidecar:
    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    precision: str
    input_shape: list  # optimum shape [B, 1, S, S]
    batch_range: list  # [min, max] of the optimisation profile
    onnx_sha256: str
    model_metadata: dict = field(default_factory=dict)
    tf32: bool = True  # FP32 layers may run in TF32 (TensorRT's default); False: strict FP32

    def write(self, plan: str | Path) -> Path:
        path = sidecar_path(plan)
        path.write_text(json.dumps(dataclasses.asdict(self), indent=2))
        return path

    @classmethod
    def read(cls, plan: str | Path) -> Sidecar:
        path = sidecar_path(plan)
        try:
            d = json.loads(path.read_text())
            return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d})
        except (OSError, ValueError, TypeError) as exc:
            raise PlanMismatch(f"plan {plan} has no readable sidecar {path} ({exc}); rebuild it with "
                               "streamer build") from exc

    def mismatches(self, env: dict) -> list[str]:
        return [f"{k}: plan {getattr(self, k)!r}, here {env[k]!r}" for k in MATCH_KEYS
                if str(getattr(self, k)) != str(env[k])]


def sidecar_path(plan: str | Path) -> Path:
    return Path(str(plan) + ".json")


def decide(plan: str | Path, env: dict, onnx: str | Path | None = None) -> str:
    """'use' or 'rebuild'; PlanMismatch when the plan does not fit and there is no ONNX to rebuild."""
    plan = Path(plan)
    have_onnx = onnx is not None and Path(onnx).is_file()
    if not plan.is_file() or not sidecar_path(plan).is_file():
        if have_onnx:
            return "rebuild"
        raise PlanMismatch(f"no plan (with sidecar) at {plan} and no ONNX model to build it from")
    try:
        side = Sidecar.read(plan)
    except PlanMismatch:
        if have_onnx:
            return "rebuild"
        raise
    problems = side.mismatches(env)
    if have_onnx and side.onnx_sha256 != file_sha256(onnx):
        problems.append(f"onnx_sha256: plan built from another ONNX than {onnx}")
    if not problems:
        return "use"
    if have_onnx:
        return "rebuild"
    raise PlanMismatch(f"plan {plan} does not fit this machine ({'; '.join(problems)}); TensorRT plans "
                       "are specific to GPU and TensorRT version: rebuild it here with streamer build "
                       "--onnx MODEL.onnx")
