"""PyTorch eager: the reference on CPU, and the GPU path where TensorRT is absent.

On CUDA: the chosen GPU (cuda:N) in every call and capture, cuDNN autotuning, channels-last,
optionally FP16 with the soft proposal kept in FP32 (its squared distances reach 1.8e4 on
simulated frames, 3.7x below FP16's maximum: too little headroom; the FP16 ONNX keeps that block
in FP32 too), optionally one CUDA graph per batch size sharing one memory pool, fed from a pinned
staging buffer and read back into pinned outputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engines.backends.base import Backend, BackendError
from engines.model_info import ModelInfo, file_sha256


def keep_proposal_fp32(model) -> None:
    """Run model.soft_proposal in FP32 whatever the model's dtype (its outputs in the model's)."""
    from torch import nn

    class FP32Proposal(nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, u):
            coupled, m = self.inner(u.float())
            return coupled.to(u.dtype), m.to(u.dtype)

    model.soft_proposal = FP32Proposal(model.soft_proposal)


@dataclass
class _Graph:
    """One batch size's captured graph with its static buffers."""

    graph: object
    staging: object  # pinned host input
    inp: object  # device input
    out: tuple  # device outputs (scores, maps)
    host: tuple  # pinned host outputs


class TorchBackend(Backend):
    name = "torch"

    def _load(self) -> ModelInfo:
        import torch

        from engines.checkpoint import load_checkpoint
        from engines.export import model_info

        opts = self.options
        if opts.precision == "int8":
            raise BackendError("torch backend runs fp32 or fp16; INT8 runs on onnxruntime or tensorrt")
        if opts.precision == "fp16" and not opts.device.startswith("cuda"):
            raise BackendError("torch backend: fp16 needs --device cuda")
        self.torch, self.device = torch, self._device(torch, opts.device)
        model = load_checkpoint(self.model_path)
        self.dtype = torch.float16 if opts.precision == "fp16" else torch.float32
        model.set_proposal_mode("unrolled")
        model = model.to(self.device, self.dtype).eval()
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest kernels
            model = model.to(memory_format=torch.channels_last)
        if self.dtype == torch.float16:
            keep_proposal_fp32(model)
        if opts.threads and self.device.type == "cpu":
            torch.set_num_threads(opts.threads)
        self.model, self.graphs, self.pool = model, {}, None
        info = model_info(model, iterations=model.cfg.iterations, mode="unrolled",
                          source_sha256=file_sha256(self.model_path))
        return ModelInfo(**{**info.__dict__, "precision": opts.precision})

    @staticmethod
    def _device(torch, name: str):
        device = torch.device(name)
        if device.type != "cuda":
            return device
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise BackendError("torch backend: CUDA was asked for but torch sees no GPU; use --device cpu")
        index = torch.cuda.current_device() if device.index is None else device.index
        if index >= count:
            raise BackendError(f"{name} asked for, but torch sees {count} GPU(s) (cuda:0..cuda:{count - 1})")
        return torch.device("cuda", index)

    def _forward(self, x):
        with self.torch.inference_mode():
            return self.model(x)

    def map_variants(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """The raw proposal maps M as well: evaluation compares which map localises best."""
        x = self.torch.from_numpy(np.ascontiguousarray(batch, np.float32)).to(self.device, self.dtype)
        with self.torch.inference_mode():
            return {"proposal": self.model.proposal_maps(x).float().cpu().numpy()}

    def _run(self, batch: np.ndarray):
        if self.device.type == "cpu":
            scores, maps = self._forward(self.torch.from_numpy(batch))
            return scores.numpy(), maps.numpy()
        with self.torch.cuda.device(self.device):
            if self.options.cuda_graphs:
                return self._run_graph(batch)
            x = self.torch.from_numpy(batch).pin_memory().to(self.device, self.dtype, non_blocking=True)
            scores, maps = self._forward(x)
            return scores.float().cpu().numpy(), maps.float().cpu().numpy()

    def _run_graph(self, batch: np.ndarray):
        """Replay this batch size's graph: pinned copy in, replay, copy out into pinned buffers."""
        g = self.graphs.get(batch.shape[0]) or self._capture(batch.shape)
        g.staging.copy_(self.torch.from_numpy(batch))
        g.inp.copy_(g.staging, non_blocking=True)
        g.graph.replay()
        for host, out in zip(g.host, g.out, strict=True):
            host.copy_(out, non_blocking=True)
        self.torch.cuda.current_stream(self.device).synchronize()
        return g.host[0].numpy().copy(), g.host[1].numpy().copy()

    def _capture(self, shape) -> _Graph:
        torch = self.torch
        inp = torch.zeros(shape, device=self.device, dtype=self.dtype)
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):  # warm up (cuDNN autotuning, allocations) off the capture
            for _ in range(3):
                self._forward(inp)
        torch.cuda.current_stream(self.device).wait_stream(side)
        if self.pool is None:
            self.pool = torch.cuda.graph_pool_handle()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool):
            scores, maps = self._forward(inp)
            out = (scores.float(), maps.float())
        host = tuple(torch.empty(o.shape, dtype=torch.float32, pin_memory=True) for o in out)
        staging = torch.empty(shape, dtype=torch.float32, pin_memory=True)
        self.graphs[shape[0]] = g = _Graph(graph, staging, inp, out, host)
        return g

    def _details(self) -> dict:
        return {"cuda_graphs": self.options.cuda_graphs, "torch": self.torch.__version__,
                "graph_batches": sorted(self.graphs)}

    def _close(self) -> None:
        self.graphs, self.pool, self.model = {}, None, None
