"""CUDA memory, streams and graphs through NVIDIA's cuda-python (cuda.bindings), or pycuda.

One small surface for the TensorRT backend; every call's error is checked here.
"""

from __future__ import annotations

import ctypes

import numpy as np

from engines.backends.base import BackendError

MISSING = ("no CUDA Python bindings: pip install cuda-python (or pycuda); use --backend onnxruntime "
           "(CPU) or --backend torch --device cuda")


def load_cuda():
    try:
        try:
            from cuda.bindings import runtime as cudart
        except ImportError:
            from cuda import cudart
    except ImportError:
        try:
            import pycuda.driver as drv
        except ImportError as exc:
            raise BackendError(MISSING) from exc
        return PyCuda(drv)
    return CudaRuntime(cudart)


class CudaRuntime:
    def __init__(self, cudart):
        self.rt = cudart
        count = self._call(cudart.cudaGetDeviceCount)
        if count < 1:
            raise BackendError("no CUDA GPU is visible; use --backend onnxruntime (CPU)")

    def _call(self, fn, *args):
        err, *out = fn(*args)
        if int(err) != 0:
            raise BackendError(f"CUDA error in {fn.__name__}: {err}")
        return out[0] if len(out) == 1 else (tuple(out) or None)

    def device(self, index: int = 0) -> dict:
        props = self._call(self.rt.cudaGetDeviceProperties, index)
        name = props.name.decode() if isinstance(props.name, bytes) else str(props.name)
        return {"gpu_name": name.strip("\x00"), "compute_capability": f"{props.major}.{props.minor}"}

    def malloc(self, nbytes: int) -> int:
        return int(self._call(self.rt.cudaMalloc, nbytes))

    def free(self, ptr: int) -> None:
        self._call(self.rt.cudaFree, ptr)

    def pinned(self, shape, dtype) -> np.ndarray:
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        ptr = int(self._call(self.rt.cudaMallocHost, nbytes))
        buf = (ctypes.c_byte * nbytes).from_address(ptr)
        return np.frombuffer(buf, dtype=dtype).reshape(shape)

    def free_pinned(self, arr: np.ndarray) -> None:
        self._call(self.rt.cudaFreeHost, arr.ctypes.data)

    def stream(self) -> int:
        return self._call(self.rt.cudaStreamCreate)

    def htod(self, dst: int, src: np.ndarray, stream) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._call(self.rt.cudaMemcpyAsync, dst, src.ctypes.data, src.nbytes, kind, stream)

    def dtoh(self, dst: np.ndarray, src: int, stream) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._call(self.rt.cudaMemcpyAsync, dst.ctypes.data, src, dst.nbytes, kind, stream)

    def sync(self, stream) -> None:
        self._call(self.rt.cudaStreamSynchronize, stream)

    def begin_capture(self, stream) -> None:
        mode = self.rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
        self._call(self.rt.cudaStreamBeginCapture, stream, mode)

    def end_capture(self, stream):
        graph = self._call(self.rt.cudaStreamEndCapture, stream)
        return self._call(self.rt.cudaGraphInstantiate, graph, 0)

    def launch(self, graph_exec, stream) -> None:
        self._call(self.rt.cudaGraphLaunch, graph_exec, stream)

    def destroy_stream(self, stream) -> None:
        self._call(self.rt.cudaStreamDestroy, stream)


class PyCuda:
    """pycuda where that is what is installed: the same calls, no CUDA graphs."""

    def __init__(self, drv):
        import pycuda.autoinit  # noqa: F401 - creates the context

        self.drv = drv
        if drv.Device.count() < 1:
            raise BackendError("no CUDA GPU is visible; use --backend onnxruntime (CPU)")

    def device(self, index: int = 0) -> dict:
        dev = self.drv.Device(index)
        return {"gpu_name": dev.name(), "compute_capability": "{}.{}".format(*dev.compute_capability())}

    def malloc(self, nbytes: int):
        return self.drv.mem_alloc(nbytes)

    def free(self, ptr) -> None:
        ptr.free()

    def pinned(self, shape, dtype) -> np.ndarray:
        return self.drv.pagelocked_empty(shape, dtype)

    def free_pinned(self, arr) -> None:
        arr.base.free() if hasattr(arr.base, "free") else None

    def stream(self):
        return self.drv.Stream()

    def htod(self, dst, src, stream) -> None:
        self.drv.memcpy_htod_async(dst, src, stream)

    def dtoh(self, dst, src, stream) -> None:
        self.drv.memcpy_dtoh_async(dst, src, stream)

    def sync(self, stream) -> None:
        stream.synchronize()

    def begin_capture(self, stream) -> None:
        raise BackendError("CUDA graphs need cuda-python (pip install cuda-python); pycuda has none")

    def destroy_stream(self, stream) -> None:
        pass
