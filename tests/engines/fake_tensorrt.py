"""Recording fakes of TensorRT and cuda-python's runtime that refuse what the real ones lack.

Every public attribute of the TensorRT fake must be a name of the real Python API of that major
version (engines/tensorrt/api_names/, read from NVIDIA's bindings wheels by
scripts/tensorrt_api_names.py): a misspelt or removed call fails here as it would on a GPU. The
CUDA fake moves real bytes (pinned host memory is real memory; device memory is a dict), records
captures as lists of operations and replays them, and remembers what was never destroyed.
Its "model": scores[b, c] = mean(frame b) · (c + 1), maps = scores broadcast over 14×14.
"""

from __future__ import annotations

import ctypes
from functools import cache
from pathlib import Path

import numpy as np

NAMES_DIR = Path(__file__).resolve().parents[2] / "engines" / "tensorrt" / "api_names"
CLASSES, MAP = 6, 14


@cache
def api_names(major: int) -> frozenset[str]:
    lines = (NAMES_DIR / f"{major}.txt").read_text().splitlines()
    return frozenset(n for n in lines if n and not n.startswith("#"))


def _check(name: str, major: int) -> None:
    if not name.startswith("_") and name not in api_names(major):
        raise AttributeError(f"{name!r} is not in TensorRT {major}'s Python API")


class StrictType(type):
    def __getattribute__(cls, name):
        _check(name, type.__getattribute__(cls, "_major"))
        return type.__getattribute__(cls, name)


class Strict(metaclass=StrictType):
    """Public attributes (of instances and classes) must be real TensorRT API names of the version."""

    _major = 10

    def __getattribute__(self, name):
        _check(name, object.__getattribute__(self, "_major"))
        return object.__getattribute__(self, name)


def _enum(major, **values):
    obj = type("Enum", (Strict,), {"_major": major})()
    for k, v in values.items():
        object.__setattr__(obj, k, v)
    return obj


def fake_trt(log: list, version: str = "10.13.0", dynamic: bool = True):
    major = int(version.split(".")[0])

    class S(Strict):
        _major = major

        def __init__(self, tag=""):
            self._tag = tag

        def _rec(self, name, *args):
            log.append((f"{self._tag}.{name}" if self._tag else name, args, {}))

    class Logger(S):
        WARNING, VERBOSE = 2, 4

        def __init__(self, level):
            super().__init__()
            log.append(("Logger", (level,), {}))

    class Profile(S):
        def set_shape(self, name, lo, opt, hi):
            self._rec("set_shape", name, lo, opt, hi)
            network.profile = (lo, opt, hi)

    class Cache(S):
        def serialize(self):
            return b"CACHE"

    class Config(S):
        def set_memory_pool_limit(self, pool, nbytes):
            self._rec("set_memory_pool_limit", pool, nbytes)

        def clear_flag(self, flag):
            self._rec("clear_flag", flag)

        def create_timing_cache(self, data):
            self._rec("create_timing_cache", data)
            return Cache()

        def set_timing_cache(self, cache, ignore_mismatch):
            self._rec("set_timing_cache", cache, ignore_mismatch)

        def get_timing_cache(self):
            return Cache()

        def add_optimization_profile(self, profile):
            self._rec("add_optimization_profile", profile)

    class Input(S):
        name, shape = "input", (-1 if dynamic else 1, 1, 224, 224)

    class Network(S):
        profile = None

        def get_input(self, i):
            return Input()

    network = Network("network")

    class Builder(S):
        def __init__(self, logger):
            super().__init__("builder")

        def create_network(self, flags):
            self._rec("create_network", flags)
            return network

        def create_builder_config(self):
            self._rec("create_builder_config")
            return Config("config")

        def create_optimization_profile(self):
            self._rec("create_optimization_profile")
            return Profile("profile")

        def build_serialized_network(self, net, config):
            self._rec("build_serialized_network")
            lo, _, hi = net.profile
            return f"PLAN:{lo[0]}:{hi[0]}".encode()

    class OnnxParser(S):
        num_errors = 0

        def __init__(self, net, logger):
            super().__init__("parser")

        def parse_from_file(self, path):
            self._rec("parse_from_file", path)
            return True

    class Runtime(S):
        def __init__(self, logger):
            super().__init__("runtime")

        def deserialize_cuda_engine(self, data):
            self._rec("deserialize_cuda_engine")
            _, lo, hi = data.decode().split(":")
            return Engine(int(lo), int(hi), cudart.current_device)

    class Engine(S):
        device_memory_size_v2 = 4096
        _io = (("input", (-1, 1, 224, 224), True), ("scores", (-1, CLASSES), False),
               ("maps", (-1, CLASSES, MAP, MAP), False))

        def __init__(self, lo, hi, device):
            super().__init__("engine")
            self._range, self._device = (lo, hi), device
            self.num_io_tensors = len(self._io)

        def get_tensor_name(self, i):
            return self._io[i][0]

        def get_tensor_mode(self, name):
            return trt.TensorIOMode.INPUT if dict((n, m) for n, _, m in self._io)[name] else trt.TensorIOMode.OUTPUT

        def get_tensor_shape(self, name):
            return next(s for n, s, _ in self._io if n == name)

        def get_tensor_dtype(self, name):
            return trt.DataType.FLOAT

        def create_execution_context(self, strategy=None):
            self._rec("create_execution_context", strategy)
            ctx = Context(self)
            contexts.append(ctx)
            return ctx

    class Context(S):
        def __init__(self, engine):
            super().__init__("context")
            self._engine, self._shape, self._addr, self._memory = engine, None, {}, None
            self._generation = 0  # TensorRT re-plans a context's shape-dependent state on a new shape
            self._fail = 0  # how many coming execute_async_v3 calls fail

        def set_device_memory(self, memory, size):
            self._rec("set_device_memory", memory, size)
            self._memory = (memory, size)

        def set_input_shape(self, name, shape):
            self._rec("set_input_shape", name, tuple(shape))
            lo, hi = self._engine._range
            if not lo <= shape[0] <= hi:
                return False
            if tuple(shape) != self._shape:
                self._shape, self._generation = tuple(shape), self._generation + 1
            return True

        def set_tensor_address(self, name, ptr):
            self._addr[name] = ptr
            return True

        def execute_async_v3(self, stream_handle):
            self._rec("execute_async_v3", stream_handle)
            if self._shape is None or self._fail or (cudart.fail_capture and stream_handle in cudart.capturing):
                self._fail = max(0, self._fail - 1)
                return False
            cudart.run(stream_handle, ("exec", self, self._shape, self._generation))
            return True

    trt = type("FakeTensorRT", (S,), {})()
    for name, value in {
        "__version__": version, "Logger": Logger, "Builder": Builder, "OnnxParser": OnnxParser,
        "Runtime": Runtime, "nptype": lambda t: np.float32,
        "NetworkDefinitionCreationFlag": _enum(major, STRONGLY_TYPED=2),
        "MemoryPoolType": _enum(major, WORKSPACE="WORKSPACE"),
        "BuilderFlag": _enum(major, TF32="TF32"),
        "TensorIOMode": _enum(major, INPUT="INPUT", OUTPUT="OUTPUT"),
        "DataType": _enum(major, FLOAT="FLOAT"),
        "ExecutionContextAllocationStrategy": _enum(major, USER_MANAGED="USER_MANAGED"),
    }.items():
        object.__setattr__(trt, name, value)
    contexts: list = []
    cudart = FakeCudart(log)
    object.__setattr__(trt, "_contexts", contexts)
    object.__setattr__(trt, "_cudart", cudart)
    return trt


class FakeCudart:
    """cuda.bindings.runtime's calls that the backend makes: (error, value) tuples, real bytes."""

    GPUS = (("NVIDIA H100", 9, 0), ("NVIDIA L4", 8, 9))
    cudaMemcpyKind = type("K", (), {"cudaMemcpyHostToDevice": "HtoD", "cudaMemcpyDeviceToHost": "DtoH"})
    cudaStreamCaptureMode = type("M", (), {"cudaStreamCaptureModeThreadLocal": "thread-local"})

    @classmethod
    def device_env(cls, index: int) -> dict:
        name, major, minor = cls.GPUS[index]
        return {"gpu_name": name, "compute_capability": f"{major}.{minor}"}

    def __init__(self, log):
        import threading

        self.log, self._local = log, threading.local()
        self.mem, self.pinned, self.kept = {}, {}, []
        self.capturing, self.graphs, self.execs = {}, {}, {}
        self.next, self.fail_capture = 100, False

    def _id(self):
        self.next += 1
        return self.next

    def _rec(self, name, *args):
        self.log.append((f"cudart.{name}", args, {}))

    @property
    def current_device(self):
        return getattr(self._local, "device", 0)

    def cudaGetDeviceCount(self):
        return 0, len(self.GPUS)

    def cudaSetDevice(self, index):
        self._rec("cudaSetDevice", index)
        self._local.device = index
        return (0,)

    def cudaGetDeviceProperties(self, index):
        name, major, minor = self.GPUS[index]
        return 0, type("P", (), {"name": name.encode(), "major": major, "minor": minor})()

    def cudaMalloc(self, n):
        ptr = self._id()
        self.mem[ptr] = np.zeros(n, np.uint8)
        return 0, ptr

    def cudaFree(self, ptr):
        del self.mem[ptr]
        return (0,)

    def cudaMallocHost(self, n):
        buf = ctypes.create_string_buffer(n)
        self.pinned[ctypes.addressof(buf)] = buf
        return 0, ctypes.addressof(buf)

    def cudaFreeHost(self, ptr):
        self.kept.append(self.pinned.pop(ptr))  # numpy views may outlive the call in tests
        return (0,)

    def cudaStreamCreate(self):
        return 0, self._id()

    def cudaStreamDestroy(self, stream):
        self._rec("cudaStreamDestroy", stream)
        return (0,)

    def cudaMemcpyAsync(self, dst, src, n, kind, stream):
        self.run(int(stream), ("copy", dst, src, n, kind))
        return (0,)

    def cudaStreamSynchronize(self, stream):
        return (0,)

    def cudaStreamBeginCapture(self, stream, mode):
        self._rec("cudaStreamBeginCapture", stream, mode)
        self.capturing[int(stream)] = []
        return (0,)

    def cudaStreamEndCapture(self, stream):
        self._rec("cudaStreamEndCapture", stream)
        ops = self.capturing.pop(int(stream))
        graph = self._id()
        self.graphs[graph] = ops
        return 0, graph

    def cudaGraphInstantiate(self, graph, flags):
        ex = self._id()
        self.execs[ex] = list(self.graphs[graph])
        return 0, ex

    def cudaGraphDestroy(self, graph):
        del self.graphs[graph]
        return (0,)

    def cudaGraphExecDestroy(self, ex):
        del self.execs[ex]
        return (0,)

    def cudaGraphLaunch(self, ex, stream):
        for op in self.execs[ex]:
            self._do(op, replay=True)
        return (0,)

    def cudaGetLastError(self):
        self._rec("cudaGetLastError")
        return (0,)

    # -- the "GPU" ---------------------------------------------------------------------------
    def run(self, stream: int, op) -> None:
        if stream in self.capturing:
            self.capturing[stream].append(op)
        else:
            self._do(op)

    def _do(self, op, replay=False) -> None:
        if op[0] == "copy":
            _, dst, src, n, kind = op
            if kind == "HtoD":
                self.mem[dst][:n] = np.frombuffer(ctypes.string_at(src, n), np.uint8)
            else:
                ctypes.memmove(dst, self.mem[src].ctypes.data, n)
            return
        _, ctx, shape, generation = op
        if self.current_device != ctx._engine._device:
            raise AssertionError(f"engine of GPU {ctx._engine._device} run with GPU {self.current_device} current")
        if replay and ctx._generation != generation:
            raise AssertionError(f"graph captured at {shape} replayed on a context re-shaped since "
                                 f"(now {ctx._shape}): TensorRT says re-capture after a shape change")
        b = shape[0]
        x = self.mem[ctx._addr["input"]][: b * 224 * 224 * 4].view(np.float32).reshape(b, -1)
        scores = x.mean(axis=1, keepdims=True) * np.arange(1, CLASSES + 1, dtype=np.float32)
        maps = np.broadcast_to(scores[:, :, None, None], (b, CLASSES, MAP, MAP))
        for name, arr in (("scores", scores), ("maps", maps)):
            flat = np.ascontiguousarray(arr, np.float32).view(np.uint8).ravel()
            self.mem[ctx._addr[name]][: flat.size] = flat


def expected(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores = batch.reshape(len(batch), -1).mean(axis=1, keepdims=True) * np.arange(1, CLASSES + 1)
    return scores.astype(np.float32), np.broadcast_to(scores[:, :, None, None], (len(batch), CLASSES, MAP, MAP))
