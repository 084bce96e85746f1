"""An MLServer custom runtime that wraps one of our backends (ONNX Runtime on CPU, TensorRT or
ONNX Runtime CUDA on a GPU). Imported only inside the server process.

MLServer's adaptive batching concatenates concurrent requests along the batch axis before
``predict`` and splits the answer back, so many scanners share one model call; the batch sizes
it forms are observed in ``sonostream_server_batch_size``.
"""

from __future__ import annotations

import asyncio

import numpy as np
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import (
    InferenceRequest,
    InferenceResponse,
    MetadataModelResponse,
    MetadataTensor,
    Parameters,
)
from prometheus_client import REGISTRY, Counter, Histogram

from engines.backends import BackendOptions, create_backend
from engines.serving.contract import (
    CONTRACT_PARAMETER,
    INPUT,
    INPUT_DATATYPE,
    OUTPUTS,
    PLATFORM,
    contract_digest,
    model_parameters,
)

BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64)


def _metric(kind, name: str, doc: str, **kw):
    """In the default registry, which MLServer serves when the model runs in its own process."""
    return kind(name, doc, ["model"], registry=REGISTRY, **kw)


BATCH_SIZE = _metric(Histogram, "sonostream_server_batch_size",
                     "Frames per model call after adaptive batching", buckets=BATCH_BUCKETS)
FRAMES = _metric(Counter, "sonostream_server_frames", "Frames inferred by the server")


class SonostreamRuntime(MLModel):
    """extra parameters: backend (default: by the model file's suffix), device, threads."""

    async def load(self) -> bool:
        from engines.backends import backend_for

        params = self.settings.parameters
        extra = dict(params.extra or {})
        path = params.uri
        options = BackendOptions(device=extra.get("device", "cpu"), threads=int(extra.get("threads", 0)))
        self.backend = create_backend(extra.get("backend") or backend_for(path), path, options).open()
        self.info = self.backend.info
        self.scale = np.float32(1 / 255)
        # every answer says which contract produced it: a client that described another model
        # before this server (re)started sees it in the first answer, even through a proxy
        self.stamp = {CONTRACT_PARAMETER: contract_digest(self.info)}
        return True

    async def metadata(self) -> MetadataModelResponse:
        size, classes = self.info.input_size, len(self.info.classes)
        return MetadataModelResponse(
            name=self.name, platform=PLATFORM, versions=[self.info.model_version],
            inputs=[MetadataTensor(name=INPUT, datatype=INPUT_DATATYPE, shape=[-1, 1, size, size])],
            outputs=[MetadataTensor(name=OUTPUTS[0], datatype="FP32", shape=[-1, classes]),
                     MetadataTensor(name=OUTPUTS[1], datatype="FP32", shape=[-1, classes, -1, -1])],
            parameters=Parameters(**model_parameters(self.info), **self.stamp,
                                  backend=self.backend.name),
        )

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        frames = NumpyCodec.decode_input(payload.inputs[0])
        batch = frames.reshape(-1, 1, self.info.input_size, self.info.input_size)
        if frames.dtype == np.uint8:
            batch = np.multiply(batch, self.scale, dtype=np.float32)
        elif frames.dtype != np.float32:  # FP32 (already scaled) is taken too, at 4x the bytes
            raise ValueError(f"input {INPUT} must be UINT8 (or FP32 in [0, 1]), got {frames.dtype}")
        # in a worker thread: the event loop keeps answering health, metadata and metrics
        out = await asyncio.to_thread(self.backend.infer, batch)
        BATCH_SIZE.labels(self.name).observe(batch.shape[0])
        FRAMES.labels(self.name).inc(batch.shape[0])
        return InferenceResponse(
            model_name=self.name, id=payload.id,
            outputs=[NumpyCodec.encode_output(OUTPUTS[0], out.scores),
                     NumpyCodec.encode_output(OUTPUTS[1], out.maps)],
            parameters=Parameters(**self.stamp),
        )

    async def unload(self) -> bool:
        self.backend.close()
        return True
