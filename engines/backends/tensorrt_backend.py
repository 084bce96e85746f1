"""TensorRT: a strongly typed plan run with one CUDA stream, page-locked buffers, async copies.

Takes a .plan/.engine (with its sidecar) or an .onnx (a plan beside it is built or reused). A plan
whose sidecar does not match this GPU and TensorRT is rebuilt when the ONNX is at hand, else refused.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engines.backends.base import Backend, BackendError
from engines.model_info import ModelInfo


class TensorRTBackend(Backend):
    name = "tensorrt"

    def _load(self) -> ModelInfo:
        from engines.tensorrt import compat
        from engines.tensorrt.build import BuildOptions, ensure_plan, environment
        from engines.tensorrt.cuda import load_cuda

        if not self.options.device.startswith("cuda"):
            raise BackendError("the tensorrt backend runs on a GPU: use --device cuda, or --backend onnxruntime for CPU")
        trt = self.trt = compat.import_tensorrt()
        cuda = self.cuda = load_cuda()
        onnx = self.model_path if self.model_path.suffix == ".onnx" else None
        plan = self.model_path.with_suffix(".plan") if onnx else self.model_path
        side = ensure_plan(plan, onnx, BuildOptions(), trt=trt, env=environment(trt, cuda))
        info = ModelInfo.from_metadata(side.model_metadata, str(plan))
        self.engine = trt.Runtime(compat.logger(trt)).deserialize_cuda_engine(Path(plan).read_bytes())
        if self.engine is None:
            raise BackendError(f"TensorRT could not deserialise {plan}; rebuild it with streamer build")
        self.context = self.engine.create_execution_context()
        self.stream = cuda.stream()
        self.max_batch = side.batch_range[1]
        self.fixed_batch = side.batch_range[0] if side.batch_range[0] == side.batch_range[1] else None
        self.io = compat.io_tensors(trt, self.engine)
        self.host, self.device, self.graphs = {}, {}, {}
        for name, _ in self.io:
            shape = list(self.engine.get_tensor_shape(name))
            shape[0] = self.max_batch
            dtype = compat.numpy_dtype(trt, self.engine, name)
            self.host[name] = cuda.pinned(tuple(shape), dtype)
            self.device[name] = cuda.malloc(self.host[name].nbytes)
            self.context.set_tensor_address(name, int(self.device[name]))
        self.input_name = next(n for n, is_in in self.io if is_in)
        self.side = side
        return info

    def _enqueue(self, batch: int) -> None:
        cuda, inp = self.cuda, self.input_name
        cuda.htod(self.device[inp], self.host[inp][:batch], self.stream)
        self.context.execute_async_v3(self._handle())
        for name, is_input in self.io:
            if not is_input:
                cuda.dtoh(self.host[name][:batch], self.device[name], self.stream)

    def _handle(self) -> int:
        return int(self.stream) if not hasattr(self.stream, "handle") else self.stream.handle

    def _run(self, batch: np.ndarray):
        b = batch.shape[0]
        if b > self.max_batch:
            raise BackendError(f"batch {b} exceeds the plan's profile (max {self.max_batch}); rebuild with --batch")
        self.context.set_input_shape(self.input_name, batch.shape)
        self.host[self.input_name][:b] = batch
        if self.options.cuda_graphs:
            self._replay(b)
        else:
            self._enqueue(b)
        self.cuda.sync(self.stream)
        outs = {n: self.host[n][:b].astype(np.float32, copy=True) for n, is_in in self.io if not is_in}
        return (outs["scores"], outs["maps"], outs["features"]) if "features" in outs else (
            outs["scores"], outs["maps"])

    def _replay(self, b: int) -> None:
        """The whole step (copy in, enqueue, copy out) captured once per batch size, then replayed."""
        if b not in self.graphs:
            self._enqueue(b)  # TensorRT needs one enqueue after a shape change before capture
            self.cuda.sync(self.stream)
            self.cuda.begin_capture(self.stream)
            self._enqueue(b)
            self.graphs[b] = self.cuda.end_capture(self.stream)
        self.cuda.launch(self.graphs[b], self.stream)

    def _details(self) -> dict:
        side = getattr(self, "side", None)
        return {"tensorrt": side.tensorrt_version, "gpu": side.gpu_name, "cuda_graphs": self.options.cuda_graphs,
                "batch_range": side.batch_range} if side else {}

    def _close(self) -> None:
        for ptr in self.device.values():
            self.cuda.free(ptr)
        for arr in self.host.values():
            self.cuda.free_pinned(arr)
        self.cuda.destroy_stream(self.stream)
        self.context = self.engine = None
        self.device, self.host, self.graphs = {}, {}, {}
