"""Every TensorRT version difference lives here (10.x and 11.x; strongly typed networks only).

TensorRT 11 dropped BuilderFlag.FP16/INT8 and the INT8 calibrators: precision comes from the ONNX
graph (FP16 casts, Q/DQ). EXPLICIT_BATCH is implicit since 10 (its flag is gone in 11). Every name
used here is in both versions' API lists (engines/tensorrt/api_names/, read from NVIDIA's wheels).
"""

from __future__ import annotations

from engines.backends.base import BackendError

MIN_VERSION = (10, 1)  # execution contexts on caller-owned device memory (set_device_memory)
MISSING = ("TensorRT is not installed: pip install 'sonostream[tensorrt-cu12]' (CUDA 12) or "
           "'sonostream[tensorrt-cu13]' (CUDA 13), the one matching the CUDA your driver and torch "
           "use (a bare 'tensorrt' pulls CUDA 13 libraries); or use --backend onnxruntime (CPU) or "
           "--backend torch --device cuda")


def import_tensorrt():
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise BackendError(f"{MISSING} [{exc}]") from exc
    if version(trt) < MIN_VERSION:
        raise BackendError(f"TensorRT {trt.__version__} is too old: strongly typed networks from "
                           f"ONNX and shared context memory need TensorRT ≥ 10.1")
    return trt


def version(trt) -> tuple[int, int]:
    return tuple(int(p) for p in str(trt.__version__).split(".")[:2])


def network_flags(trt) -> int:
    return 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)


def set_workspace(trt, config, nbytes: int) -> None:
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, nbytes)


def set_tf32(trt, config, allowed: bool) -> None:
    """TensorRT runs FP32 layers' matmuls/convs in TF32 (10-bit mantissa) by default; strict off."""
    if not allowed:
        config.clear_flag(trt.BuilderFlag.TF32)


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


def context_on(trt, engine, memory: int, nbytes: int):
    """An execution context that uses caller-owned scratch memory (shared between contexts)."""
    ctx = engine.create_execution_context(trt.ExecutionContextAllocationStrategy.USER_MANAGED)
    if ctx is None:
        raise BackendError("TensorRT could not create an execution context (out of GPU memory?)")
    ctx.set_device_memory(memory, nbytes)
    return ctx


def scratch_bytes(engine) -> int:
    return int(engine.device_memory_size_v2)


def numpy_dtype(trt, engine, name: str):
    return trt.nptype(engine.get_tensor_dtype(name))


def logger(trt, verbose: bool = False):
    return trt.Logger(trt.Logger.VERBOSE if verbose else trt.Logger.WARNING)
