"""TensorRT: ONNX (precision already decided in the graph) → strongly typed plan, and its sidecar.

Nothing here imports tensorrt or CUDA at module level; compat.py and cuda.py do it on demand.
"""
