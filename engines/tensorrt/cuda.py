"""CUDA memory, streams and graphs through NVIDIA's cuda-python (cuda.bindings runtime).

One small surface for the TensorRT backend; every call's error is checked here. As in TensorRT's
samples (common_runtime.py, trtexec's sampleDevice.h): a graph is destroyed once instantiated,
its executable graph when the backend closes, and a failed capture is ended and its error cleared.
The current device is per host thread in CUDA, so callers select theirs with ``use()``.
"""

from __future__ import annotations

import ctypes

import numpy as np

from engines.backends.base import BackendError

MISSING = ("no CUDA Python bindings: pip install 'cuda-python>=12' (its major matching the installed "
           "CUDA); use --backend onnxruntime (CPU) or --backend torch --device cuda")


def device_index(device: str) -> int:
    """'cuda' → 0, 'cuda:N' → N."""
    _, _, index = device.partition(":")
    if index and not index.isdigit():
        raise BackendError(f"device must be 'cuda' or 'cuda:N', got {device!r}")
    return int(index or 0)


def load_cuda(index: int = 0) -> CudaRuntime:
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart
        except ImportError as exc:
            raise BackendError(MISSING) from exc
    return CudaRuntime(cudart, index)


class CudaRuntime:
    def __init__(self, cudart, index: int = 0):
        self.rt, self.index = cudart, index
        count = self._call(cudart.cudaGetDeviceCount)
        if count < 1:
            raise BackendError("no CUDA GPU is visible; use --backend onnxruntime (CPU)")
        if index >= count:
            raise BackendError(f"cuda:{index} asked for, but this machine has {count} GPU(s) "
                               f"(cuda:0..cuda:{count - 1})")
        self.use()

    def _call(self, fn, *args):
        err, *out = fn(*args)
        if int(err) != 0:
            raise BackendError(f"CUDA error in {fn.__name__}: {err}")
        return out[0] if len(out) == 1 else (tuple(out) or None)

    def use(self) -> None:
        """Make this runtime's GPU current for the calling thread."""
        self._call(self.rt.cudaSetDevice, self.index)

    def device(self) -> dict:
        props = self._call(self.rt.cudaGetDeviceProperties, self.index)
        name = props.name.decode() if isinstance(props.name, bytes) else str(props.name)
        return {"gpu_name": name.strip("\x00"), "compute_capability": f"{props.major}.{props.minor}"}

    def malloc(self, nbytes: int) -> int:
        return int(self._call(self.rt.cudaMalloc, max(1, nbytes)))

    def free(self, ptr: int) -> None:
        self._call(self.rt.cudaFree, ptr)

    def pinned(self, shape, dtype) -> np.ndarray:
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        ptr = int(self._call(self.rt.cudaMallocHost, nbytes))
        buf = (ctypes.c_byte * nbytes).from_address(ptr)
        return np.frombuffer(buf, dtype=dtype).reshape(shape)

    def free_pinned(self, arr: np.ndarray) -> None:
        self._call(self.rt.cudaFreeHost, arr.ctypes.data)

    def stream(self):
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
        """The executable graph of a capture that succeeded; the graph itself is destroyed."""
        graph = self._call(self.rt.cudaStreamEndCapture, stream)
        try:
            return self._call(self.rt.cudaGraphInstantiate, graph, 0)
        finally:
            self._call(self.rt.cudaGraphDestroy, graph)

    def abort_capture(self, stream) -> None:
        """End a capture that failed: destroy what it made (if anything) and clear the error."""
        err, graph = self.rt.cudaStreamEndCapture(stream)
        if int(err) == 0 and graph is not None and int(graph) != 0:
            self._call(self.rt.cudaGraphDestroy, graph)
        self.clear_error()

    def clear_error(self) -> None:
        self.rt.cudaGetLastError()

    def launch(self, graph_exec, stream) -> None:
        self._call(self.rt.cudaGraphLaunch, graph_exec, stream)

    def destroy_graph(self, graph_exec) -> None:
        self._call(self.rt.cudaGraphExecDestroy, graph_exec)

    def destroy_stream(self, stream) -> None:
        self._call(self.rt.cudaStreamDestroy, stream)
