"""PyTorch eager: the reference on CPU, and the GPU path where TensorRT is absent.

On CUDA it runs channels-last, optionally in FP16, optionally replayed as one CUDA graph with
static input/output buffers (no host syncs besides the final copy out).
"""

from __future__ import annotations

import numpy as np

from engines.backends.base import Backend, BackendError
from engines.model_info import ModelInfo, file_sha256


class TorchBackend(Backend):
    name = "torch"

    def _load(self) -> ModelInfo:
        import torch

        from engines.checkpoint import load_checkpoint
        from engines.export import model_info

        opts = self.options
        if opts.device.startswith("cuda") and not torch.cuda.is_available():
            raise BackendError("torch backend: CUDA was asked for but torch sees no GPU; use --device cpu")
        if opts.precision == "int8":
            raise BackendError("torch backend runs fp32 or fp16; INT8 runs on onnxruntime or tensorrt")
        if opts.precision == "fp16" and not opts.device.startswith("cuda"):
            raise BackendError("torch backend: fp16 needs --device cuda")
        model = load_checkpoint(self.model_path)
        self.device = torch.device(opts.device)
        self.dtype = torch.float16 if opts.precision == "fp16" else torch.float32
        model.set_proposal_mode("unrolled")
        model = model.to(self.device, self.dtype).eval()
        if self.device.type == "cuda":
            model = model.to(memory_format=torch.channels_last)
        if opts.threads and self.device.type == "cpu":
            torch.set_num_threads(opts.threads)
        self.model, self.torch = model, torch
        self.graph = None
        info = model_info(model, iterations=model.cfg.iterations, mode="unrolled",
                          source_sha256=file_sha256(self.model_path))
        return ModelInfo(**{**info.__dict__, "precision": opts.precision})

    def _forward(self, x):
        with self.torch.inference_mode():
            return self.model(x)

    def _run(self, batch: np.ndarray):
        torch = self.torch
        if self.options.cuda_graphs and self.device.type == "cuda":
            return self._run_graph(batch)
        x = torch.from_numpy(batch).to(self.device, self.dtype, non_blocking=True)
        scores, maps = self._forward(x)
        return scores.float().cpu().numpy(), maps.float().cpu().numpy()

    def _run_graph(self, batch: np.ndarray):
        """Capture once per batch size, then replay: copy in, replay, copy out."""
        torch = self.torch
        if self.graph is None or self.static_in.shape[0] != batch.shape[0]:
            self.static_in = torch.zeros(batch.shape, device=self.device, dtype=self.dtype)
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                for _ in range(3):
                    self._forward(self.static_in)
            torch.cuda.current_stream().wait_stream(stream)
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self.static_out = self._forward(self.static_in)
        self.static_in.copy_(torch.from_numpy(batch), non_blocking=True)
        self.graph.replay()
        scores, maps = self.static_out
        return scores.float().cpu().numpy(), maps.float().cpu().numpy()

    def _details(self) -> dict:
        return {"cuda_graphs": self.options.cuda_graphs, "torch": self.torch.__version__}

    def _close(self) -> None:
        self.model = self.graph = None
