"""ONNX → strongly typed TensorRT network → serialized plan + sidecar (as in TensorRT's samples).

Precision is the ONNX graph's: in a strongly typed network every tensor keeps the type the graph
gives it. So an "fp32" plan runs FP32 layers in TF32 on tensor cores (TensorRT's default; strict
FP32 with ``tf32=False``), an FP16 ONNX (engines.precision) runs FP16 but for the nodes measured to
need FP32, and an INT8 Q/DQ ONNX (calibration.int8) runs its quantised Conv/Gemm in INT8 and every
other layer in FP32, not FP16 as NVIDIA's Q/DQ recipe does for the high-precision parts. For our
models those other layers are the soft proposal (which needs FP32: distances up to 1.8e4) and a
few elementwise ops, so INT8 differs from FP16 in the backbone convs alone; which of the two plans
is faster on a given GPU is for scripts/gpu_check's TensorRT rows to measure, not to assume.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from engines.backends.base import BackendError
from engines.model_info import ModelInfo, file_sha256
from engines.ood import carried_metadata
from engines.tensorrt import compat
from engines.tensorrt.sidecar import Sidecar, decide

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuildOptions:
    # The profile spans 1..max(batch_sizes), optimised for the first size given: a backend warms
    # up at batch 1 and a live stream runs batch 1, so a plan whose minimum is not 1 cannot open.
    batch_sizes: tuple[int, ...] = (1,)
    workspace_mb: int = 1024
    timing_cache: str | None = None
    verbose: bool = False
    tf32: bool = True  # False: strict FP32 (BuilderFlag.TF32 cleared)
    device: int = 0  # CUDA device index the plan is built on (and for)

    def __post_init__(self):
        if not self.batch_sizes or min(self.batch_sizes) < 1 or self.workspace_mb < 1 or self.device < 0:
            raise ValueError("batch sizes must be ≥ 1, the workspace ≥ 1 MB and the device ≥ 0")

    @property
    def batch_range(self) -> list[int]:
        return [1, max(self.batch_sizes)]


def environment(trt, cuda) -> dict:
    return {"tensorrt_version": str(trt.__version__), **cuda.device()}


def _parse(trt, network, logger, onnx_path: Path) -> None:
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BackendError(f"TensorRT cannot parse {onnx_path}: {errors}")


def _profile(trt, builder, network, config, batches: tuple[int, ...]) -> list:
    inp = network.get_input(0)
    shape = list(inp.shape)
    if shape[0] != -1 and (shape[0] != 1 or max(batches) != 1):
        raise BackendError(f"the ONNX model has a fixed batch of {shape[0]}; export it with "
                           f"--batch dynamic to build for batch sizes {list(batches)}")
    lo, opt, hi = ([b] + shape[1:] for b in (1, batches[0], max(batches)))
    profile = builder.create_optimization_profile()
    profile.set_shape(inp.name, lo, opt, hi)
    config.add_optimization_profile(profile)
    return opt


def build_plan(onnx_path: str | Path, plan_path: str | Path, options: BuildOptions = BuildOptions(),
               *, trt=None, env: dict | None = None) -> Sidecar:
    trt = trt or compat.import_tensorrt()
    if env is None:
        from engines.tensorrt.cuda import load_cuda

        env = environment(trt, load_cuda(options.device))
    onnx_path, plan_path = Path(onnx_path), Path(plan_path)
    info = ModelInfo.from_onnx(onnx_path)
    logger = compat.logger(trt, options.verbose)
    builder = trt.Builder(logger)
    network = builder.create_network(compat.network_flags(trt))
    _parse(trt, network, logger, onnx_path)
    config = builder.create_builder_config()
    compat.set_workspace(trt, config, options.workspace_mb << 20)
    compat.set_tf32(trt, config, options.tf32)
    cache = Path(options.timing_cache) if options.timing_cache else None
    compat.load_timing_cache(config, cache.read_bytes() if cache and cache.is_file() else b"")
    opt_shape = _profile(trt, builder, network, config, tuple(options.batch_sizes))
    log.info("building TensorRT plan for %s (%s, batches %s)", onnx_path, info.precision, options.batch_sizes)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise BackendError(f"TensorRT failed to build a plan from {onnx_path} (run with -v for its log)")
    if cache:
        cache.write_bytes(compat.save_timing_cache(config))
    plan_path.parent.mkdir(parents=True, exist_ok=True)
    plan_path.write_bytes(bytes(plan))
    side = Sidecar(env["tensorrt_version"], env["gpu_name"], env["compute_capability"], info.precision,
                   opt_shape, options.batch_range,
                   file_sha256(onnx_path), {**info.to_metadata(), **carried_metadata(onnx_path)},
                   options.tf32)
    side.write(plan_path)
    return side


def ensure_plan(plan_path: str | Path, onnx_path: str | Path | None = None,
                options: BuildOptions = BuildOptions(), *, trt=None, env: dict | None = None) -> Sidecar:
    """The plan's sidecar, rebuilding the plan first when it does not fit and the ONNX is at hand."""
    if env is None:
        from engines.tensorrt.cuda import load_cuda

        trt = trt or compat.import_tensorrt()
        env = environment(trt, load_cuda(options.device))
    if decide(plan_path, env, onnx_path) == "rebuild":
        log.warning("plan %s missing or built elsewhere: rebuilding from %s", plan_path, onnx_path)
        return build_plan(onnx_path, plan_path, options, trt=trt, env=env)
    return Sidecar.read(plan_path)
