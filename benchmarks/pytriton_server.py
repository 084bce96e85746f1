"""The same model on PyTriton (a real tritonserver with its Python backend), for
benchmarks/server_choice.py. PyTriton pins numpy<2, so this runs in an environment of its own:

    python -m venv pytriton-env && pytriton-env/bin/pip install nvidia-pytriton==0.7.0 'numpy<2' onnxruntime
    pytriton-env/bin/python benchmarks/pytriton_server.py MODEL.onnx GRPC_PORT HTTP_PORT METRICS_PORT

Imports only numpy, onnxruntime and pytriton (not this project). Same contract as `streamer
serve`: UINT8 ``frames`` scaled by 1/255, FP32 ``scores`` and ``maps``, dynamic batching.
"""

import sys

import numpy as np
import onnxruntime as ort
from pytriton.decorators import batch
from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
from pytriton.triton import Triton, TritonConfig


def main(model: str, grpc_port: int, http_port: int, metrics_port: int) -> None:
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    size = session.get_inputs()[0].shape[-1]
    scale = np.float32(1 / 255)

    @batch
    def infer(frames):
        scores, maps = session.run(["scores", "maps"], {input_name: frames.astype(np.float32) * scale})
        return {"scores": scores, "maps": maps}

    config = TritonConfig(grpc_port=grpc_port, http_port=http_port, metrics_port=metrics_port,
                          grpc_address="127.0.0.1", http_address="127.0.0.1")
    with Triton(config=config) as triton:
        triton.bind(
            model_name="sonostream", infer_func=infer,
            inputs=[Tensor(name="frames", dtype=np.uint8, shape=(1, size, size))],
            outputs=[Tensor(name="scores", dtype=np.float32, shape=(-1,)),
                     Tensor(name="maps", dtype=np.float32, shape=(-1, -1, -1))],
            config=ModelConfig(max_batch_size=16,
                               batcher=DynamicBatcher(max_queue_delay_microseconds=1000)),
        )
        triton.serve()


if __name__ == "__main__":
    main(sys.argv[1], *(int(a) for a in sys.argv[2:5]))
