"""TensorRT: a strongly typed plan run on one CUDA stream with page-locked buffers and async copies.

Backends load, they do not build: it takes a .plan/.engine with its sidecar (``streamer build``
makes both). An .onnx is refused unless ``build_if_missing`` names a folder where a plan for it is
built once and reused while it fits this GPU and TensorRT.

One execution context per batch size, all on one scratch allocation (they run one after another
on one stream, so sharing it is safe, as trtexec shares device memory between its contexts). A
CUDA graph bakes in the shapes it was captured with, so each batch size keeps its own context and
graph and no context is re-shaped after capture. Every TensorRT call's failure is checked.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engines.backends.base import Backend, BackendError
from engines.model_info import ModelInfo, file_sha256

log = logging.getLogger(__name__)
NEEDS_PLAN = ("{path} is an ONNX model and the tensorrt backend runs TensorRT plans: build one with "
              "`streamer build --onnx {path} --out MODEL.plan` and run that")


def _not_on_gpu_message() -> str:
    """One line: what this machine lacks for TensorRT, and what to use instead."""
    missing = []
    if not (os.path.exists("/dev/nvidiactl") or os.path.exists("/proc/driver/nvidia/version")):
        missing.append("no NVIDIA GPU driver")
    if importlib.util.find_spec("tensorrt") is None:
        missing.append("no TensorRT (pip install 'sonostream[tensorrt-cu12]' or '[tensorrt-cu13]')")
    if missing and missing[0].startswith("no NVIDIA"):
        return (f"the tensorrt backend needs an NVIDIA GPU and this machine has {' and '.join(missing)}: "
                "use --backend onnxruntime (CPU, the default)")
    lacking = f" (this machine has {missing[0]})" if missing else ""
    return (f"the tensorrt backend runs on a GPU: add --device cuda{lacking}, "
            "or use --backend onnxruntime for CPU")


@dataclass
class _Slot:
    """What one batch size runs on: its own context and, with CUDA graphs, its captured graph."""

    context: object
    graph: object = None


class TensorRTBackend(Backend):
    name = "tensorrt"

    def __init__(self, model_path, options=None, *, build_if_missing: str | Path | None = None):
        super().__init__(model_path, options)
        self.build_if_missing = Path(build_if_missing) if build_if_missing else None
        self.slots: dict[int, _Slot] = {}

    def _load(self) -> ModelInfo:
        from engines.tensorrt import compat
        from engines.tensorrt.cuda import device_index, load_cuda

        if not self.options.device.startswith("cuda"):
            raise BackendError(_not_on_gpu_message())
        if self.model_path.suffix == ".onnx" and self.build_if_missing is None:
            raise BackendError(NEEDS_PLAN.format(path=self.model_path))
        trt = self.trt = compat.import_tensorrt()
        cuda = self.cuda = load_cuda(device_index(self.options.device))
        self._thread = threading.get_ident()
        plan, side = self._plan(trt, cuda)
        if side.batch_range[0] != 1:
            raise BackendError(f"plan {plan} starts its profile at batch {side.batch_range[0]}, so it "
                               "cannot run single frames; rebuild it with streamer build")
        self.engine = trt.Runtime(compat.logger(trt)).deserialize_cuda_engine(Path(plan).read_bytes())
        if self.engine is None:
            raise BackendError(f"TensorRT could not deserialise {plan}; rebuild it with streamer build")
        self.side, self.max_batch = side, side.batch_range[1]
        self.stream = cuda.stream()
        self.io = compat.io_tensors(trt, self.engine)
        self.input_name = next(n for n, is_in in self.io if is_in)
        self.host, self.device = {}, {}
        for name, _ in self.io:
            shape = list(self.engine.get_tensor_shape(name))
            shape[0] = self.max_batch
            self.host[name] = cuda.pinned(tuple(shape), compat.numpy_dtype(trt, self.engine, name))
            self.device[name] = cuda.malloc(self.host[name].nbytes)
        self.scratch_size = compat.scratch_bytes(self.engine)
        self.scratch = cuda.malloc(self.scratch_size)
        features = self.host["features"].shape[-1] if "features" in self.host else None
        return ModelInfo.from_metadata(side.model_metadata, str(plan), features=features)

    def _plan(self, trt, cuda):
        """(plan path, sidecar): the plan given, or the one built for the ONNX in the cache folder."""
        from engines.tensorrt.build import BuildOptions, ensure_plan, environment
        from engines.tensorrt.sidecar import Sidecar, decide

        env = environment(trt, cuda)
        if self.model_path.suffix != ".onnx":
            decide(self.model_path, env)  # PlanMismatch (with how to rebuild) unless it fits
            return self.model_path, Sidecar.read(self.model_path)
        digest = file_sha256(self.model_path)[:12]
        plan = self.build_if_missing / f"{self.model_path.stem}.{digest}.plan"
        return plan, ensure_plan(plan, self.model_path, BuildOptions(device=cuda.index), trt=trt, env=env)

    # -- running -------------------------------------------------------------------------------
    def _run(self, batch: np.ndarray):
        b = batch.shape[0]
        if b > self.max_batch:
            raise BackendError(f"batch {b} exceeds the plan's profile (max {self.max_batch}); rebuild with --batch")
        if threading.get_ident() != self._thread:  # the GPU is selected per host thread
            self.cuda.use()
            self._thread = threading.get_ident()
        slot = self.slots.get(b) or self._slot(b)
        self.host[self.input_name][:b] = batch
        if slot.graph is not None:
            self.cuda.launch(slot.graph, self.stream)
        elif not self._step(slot.context, b):
            raise BackendError(f"TensorRT failed to run a batch of {b} (execute_async_v3 returned "
                               "False; its log says why)")
        self.cuda.sync(self.stream)
        outs = {n: self.host[n][:b].astype(np.float32, copy=True) for n, is_in in self.io if not is_in}
        return (outs["scores"], outs["maps"], outs["features"]) if "features" in outs else (
            outs["scores"], outs["maps"])

    def _step(self, context, b: int) -> bool:
        """Copy in, enqueue, copy out on the stream; False when TensorRT refused to enqueue."""
        cuda = self.cuda
        cuda.htod(self.device[self.input_name], self.host[self.input_name][:b], self.stream)
        if not context.execute_async_v3(int(self.stream)):
            return False
        for name, is_input in self.io:
            if not is_input:
                cuda.dtoh(self.host[name][:b], self.device[name], self.stream)
        return True

    def _slot(self, b: int) -> _Slot:
        from engines.tensorrt import compat

        context = compat.context_on(self.trt, self.engine, self.scratch, self.scratch_size)
        shape = (b, *self.host[self.input_name].shape[1:])
        if not context.set_input_shape(self.input_name, shape):
            raise BackendError(f"TensorRT refused input shape {list(shape)} (the plan's profile is "
                               f"batch {self.side.batch_range[0]}..{self.max_batch})")
        for name, _ in self.io:
            if not context.set_tensor_address(name, int(self.device[name])):
                raise BackendError(f"TensorRT refused the buffer for tensor {name!r}")
        slot = self.slots[b] = _Slot(context)
        if self.options.cuda_graphs:
            slot.graph = self._capture(context, b)
        return slot

    def _capture(self, context, b: int):
        """The whole step captured as a CUDA graph, or None (eager enqueue) when capture fails."""
        cuda = self.cuda
        if not self._step(context, b):  # one enqueue after setting shapes, before capturing
            raise BackendError(f"TensorRT failed to run a batch of {b} (execute_async_v3 returned False)")
        cuda.sync(self.stream)
        cuda.begin_capture(self.stream)
        try:
            captured = self._step(context, b)
        except BackendError:
            captured = False
        if captured:
            try:
                return cuda.end_capture(self.stream)
            except BackendError as exc:
                log.warning("CUDA graph for batch %d could not be instantiated (%s); running it "
                            "without a graph", b, exc)
                cuda.clear_error()
                return None
        cuda.abort_capture(self.stream)
        log.warning("TensorRT could not be captured in a CUDA graph at batch %d; running it without one", b)
        return None

    def _details(self) -> dict:
        side = getattr(self, "side", None)
        if side is None:
            return {}
        return {"tensorrt": side.tensorrt_version, "gpu": side.gpu_name, "cuda_graphs": self.options.cuda_graphs,
                "graph_batches": sorted(b for b, s in self.slots.items() if s.graph is not None),
                "batch_range": side.batch_range, "tf32": side.tf32}

    def _close(self) -> None:
        cuda = self.cuda
        for slot in self.slots.values():
            if slot.graph is not None:
                cuda.destroy_graph(slot.graph)
        self.slots = {}  # contexts go before the memory they run on
        self.engine = None
        for ptr in [*self.device.values(), self.scratch]:
            cuda.free(ptr)
        for arr in self.host.values():
            cuda.free_pinned(arr)
        cuda.destroy_stream(self.stream)
        self.device, self.host = {}, {}
