"""Every TensorRT version difference lives here (10.x and 11.x; strongly typed networks only).

TensorRT 11 dropped BuilderFlag.FP16/INT8 and the INT8 calibrators: precision comes from the ONNX
graph (FP16 casts, Q/DQ). EXPLICIT_BATCH is implicit since 10 and its flag is gone later.
"""

from __future__ import annotations

from engines.backends.base import BackendError

MIN_MAJOR = 10
MISSING = ("TensorRT is not installed (pip install tensorrt cuda-python, on a machine with an "
           "NVIDIA GPU and driver); use --backend onnxruntime (CPU) or --backend torch --device cuda")


def import_tensorrt():
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise BackendError(f"{MISSING} [{exc}]") from exc
    if major(trt) < MIN_MAJOR:
        raise BackendError(f"TensorRT {trt.__version__} is too old: strongly typed networks from "
                           f"ONNX need TensorRT ≥ {MIN_MAJOR}")
    return trt


def major(trt) -> int:
    return int(str(trt.__version__).split(".")[0])


def network_flags(trt) -> int:
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    explicit = getattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH", None)
    if explicit is not None and major(trt) < 10:  # pragma: no cover - refused by import_tensorrt
        flags |= 1 << int(explicit)
    return flags


def set_workspace(trt, config, nbytes: int) -> None:
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, nbytes)


def load_timing_cache(config, data: bytes):
    cache = config.create_timing_cache(data)
    config.set_timing_cache(cache, ignore_mismatch=False)
    return cache


def save_timing_cache(config) -> bytes:
    return bytes(config.get_timing_cache().serialize())


def io_tensors(trt, engine) -> list[tuple[str, bool]]:
    """[(name, is_input)] in the engine's order (name-based I/O, TensorRT ≥ 8.5)."""
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    return [(n, engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT) for n in names]


def numpy_dtype(trt, engine, name: str):
    return trt.nptype(engine.get_tensor_dtype(name))


def logger(trt, verbose: bool = False):
    return trt.Logger(trt.Logger.VERBOSE if verbose else trt.Logger.WARNING)
