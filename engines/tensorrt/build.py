"""ONNX → strongly typed TensorRT network → serialized plan + sidecar (as in TensorRT's samples)."""

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
    batch_sizes: tuple[int, ...] = (1,)  # the profile spans min..max, optimised for the first
    workspace_mb: int = 1024
    timing_cache: str | None = None
    verbose: bool = False

    def __post_init__(self):
        if not self.batch_sizes or min(self.batch_sizes) < 1 or self.workspace_mb < 1:
            raise ValueError("batch sizes must be ≥ 1 and the workspace ≥ 1 MB")


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
    if shape[0] != -1 and (min(batches) != max(batches) or shape[0] != batches[0]):
        raise BackendError(f"the ONNX model has a fixed batch of {shape[0]}; export it with "
                           f"--batch dynamic to build for batch sizes {list(batches)}")
    lo, opt, hi = ([b] + shape[1:] for b in (min(batches), batches[0], max(batches)))
    profile = builder.create_optimization_profile()
    profile.set_shape(inp.name, lo, opt, hi)
    config.add_optimization_profile(profile)
    return opt


def build_plan(onnx_path: str | Path, plan_path: str | Path, options: BuildOptions = BuildOptions(),
               *, trt=None, env: dict | None = None) -> Sidecar:
    trt = trt or compat.import_tensorrt()
    if env is None:
        from engines.tensorrt.cuda import load_cuda

        env = environment(trt, load_cuda())
    onnx_path, plan_path = Path(onnx_path), Path(plan_path)
    info = ModelInfo.from_onnx(onnx_path)
    logger = compat.logger(trt, options.verbose)
    builder = trt.Builder(logger)
    network = builder.create_network(compat.network_flags(trt))
    _parse(trt, network, logger, onnx_path)
    config = builder.create_builder_config()
    compat.set_workspace(trt, config, options.workspace_mb << 20)
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
                   opt_shape, [min(options.batch_sizes), max(options.batch_sizes)],
                   file_sha256(onnx_path), {**info.to_metadata(), **carried_metadata(onnx_path)})
    side.write(plan_path)
    return side


def ensure_plan(plan_path: str | Path, onnx_path: str | Path | None = None,
                options: BuildOptions = BuildOptions(), *, trt=None, env: dict | None = None) -> Sidecar:
    """The plan's sidecar, rebuilding the plan first when it does not fit and the ONNX is at hand."""
    if env is None:
        from engines.tensorrt.cuda import load_cuda

        trt = trt or compat.import_tensorrt()
        env = environment(trt, load_cuda())
    if decide(plan_path, env, onnx_path) == "rebuild":
        log.warning("plan %s missing or built elsewhere: rebuilding from %s", plan_path, onnx_path)
        return build_plan(onnx_path, plan_path, options, trt=trt, env=env)
    return Sidecar.read(plan_path)
