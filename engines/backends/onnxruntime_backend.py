"""ONNX Runtime: the CPU default; uses the CUDA provider when asked for and present."""

from __future__ import annotations

import numpy as np

from engines.backends.base import Backend, BackendError
from engines.model_info import ModelInfo, refuse_checkpoint


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"

    def _load(self) -> ModelInfo:
        import onnxruntime as ort

        # a checkpoint: both ways to run it, said before ONNX's parse error could be
        refuse_checkpoint(self.model_path, " and give --model {onnx}, or run it as is with "
                                           "--backend torch (needs torch)")
        try:
            info = ModelInfo.from_onnx(self.model_path)
        except ValueError:
            raise
        except Exception as exc:
            raise BackendError(f"cannot read ONNX model {self.model_path}: {exc}") from exc
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if self.options.threads:
            opts.intra_op_num_threads = self.options.threads
        opts.inter_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if self.options.spin else "0")
        try:
            self.session = ort.InferenceSession(str(self.model_path), opts, providers=self._providers(ort))
        except Exception as exc:
            raise BackendError(f"ONNX Runtime cannot load {self.model_path}: {exc}") from exc
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise BackendError(f"{self.model_path} has {len(inputs)} inputs; a sonostream model has one")
        self.input_name = inputs[0].name
        self.outputs = ["scores", "maps"] + [o.name for o in self.session.get_outputs()
                                             if o.name == "features"]  # engines.ood
        batch = inputs[0].shape[0]
        self.fixed_batch = batch if isinstance(batch, int) else None
        return info

    def _providers(self, ort) -> list[str]:
        if self.options.device.startswith("cuda"):
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise BackendError("ONNX Runtime here has no CUDA provider: use --device cpu")
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]
        return ["CPUExecutionProvider"]

    def _run(self, batch: np.ndarray):
        return tuple(o.astype(np.float32, copy=False)
                     for o in self.session.run(self.outputs, {self.input_name: batch}))

    def _details(self) -> dict:
        opts = self.session.get_session_options() if self._open else None
        return {
            "providers": self.session.get_providers() if self._open else [],
            "threads": opts.intra_op_num_threads if opts else self.options.threads,
            "fixed_batch": self.fixed_batch,
            "spin": self.options.spin,
        }

    def _close(self) -> None:
        self.session = None
