"""A Triton Inference Server model repository for our model (the production recipe).

    DIR/<name>/config.pbtxt
    DIR/<name>/1/model.onnx   (platform onnxruntime_onnx)  or  1/model.plan (tensorrt_plan)

The ONNX model gets a UINT8 input ``frames`` (Cast + Mul by 1/255 in front of the graph, the same
scaling as our preprocessing), so streamers send a quarter of the bytes. A TensorRT plan keeps its
FP32 input; the remote backend reads the input's name and type from the server. Our model
description goes into the config's ``parameters`` (``sonostream.*``), where the remote backend
reads it. Dynamic batching needs a model with a dynamic batch axis (``streamer export --batch
dynamic``; ``streamer build`` with a batch range); a fixed-batch model is written unbatched.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engines.model_info import ModelInfo
from engines.serving.contract import DEFAULT_MODEL_NAME, INPUT, OUTPUTS, model_parameters


@dataclass(frozen=True)
class TritonRepoOptions:
    name: str = DEFAULT_MODEL_NAME
    max_batch: int = 16
    max_queue_delay_us: int = 1000
    instances: int = 1
    kind: str = "KIND_GPU"  # KIND_CPU for a CPU-only server

    def __post_init__(self):
        if self.max_batch < 1 or self.max_queue_delay_us < 0 or self.instances < 1:
            raise ValueError("max_batch and instances must be ≥ 1, max_queue_delay_us ≥ 0")
        if self.kind not in ("KIND_GPU", "KIND_CPU"):
            raise ValueError(f"kind must be KIND_GPU or KIND_CPU, got {self.kind!r}")


@dataclass(frozen=True)
class Tensor:
    name: str
    dtype: str  # Triton's TYPE_*
    shape: tuple[int, ...]  # the full shape, batch axis first (-1: dynamic)


def _shape(value_info) -> tuple[int, ...]:
    return tuple(d.dim_value if d.HasField("dim_value") else -1
                 for d in value_info.type.tensor_type.shape.dim)


def uint8_input_model(onnx_path: str | Path):
    """The ONNX model with a UINT8 ``frames`` input scaled by 1/255 in front of its FP32 input."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(onnx_path))
    graph = model.graph
    if len(graph.input) != 1:
        raise ValueError(f"{onnx_path} has {len(graph.input)} inputs; a sonostream model has one")
    old = graph.input[0]
    frames = helper.make_tensor_value_info(INPUT, TensorProto.UINT8, list(_shape(old)))
    if _shape(old)[0] == -1:
        frames.type.tensor_type.shape.dim[0].dim_param = "batch"
    graph.initializer.append(numpy_helper.from_array(np.array(1 / 255, np.float32), "frames_scale"))
    nodes = [helper.make_node("Cast", [INPUT], ["frames_fp32"], to=TensorProto.FLOAT),
             helper.make_node("Mul", ["frames_fp32", "frames_scale"], [old.name])]
    for node in reversed(nodes):
        graph.node.insert(0, node)
    graph.input.remove(old)
    graph.input.append(frames)
    onnx.checker.check_model(model)
    return model


def _io(onnx_path: Path) -> tuple[Tensor, list[Tensor]]:
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    types = {1: "TYPE_FP32", 2: "TYPE_UINT8", 10: "TYPE_FP16"}
    inp = graph.input[0]
    outputs = [o for o in graph.output if o.name in OUTPUTS]
    if [o.name for o in outputs] != list(OUTPUTS):
        raise ValueError(f"{onnx_path} lacks the outputs {OUTPUTS}")
    return (Tensor(inp.name, types[inp.type.tensor_type.elem_type], _shape(inp)),
            [Tensor(o.name, "TYPE_FP32", _shape(o)) for o in outputs])


def _tensor_block(t: Tensor, batched: bool) -> str:
    dims = t.shape[1:] if batched else t.shape
    return (f'  {{\n    name: "{t.name}"\n    data_type: {t.dtype}\n'
            f'    dims: [ {", ".join(str(d) for d in dims)} ]\n  }}')


def config_text(info: ModelInfo, platform: str, inp: Tensor, outputs: list[Tensor], max_batch: int,
                opts: TritonRepoOptions) -> str:
    """config.pbtxt in Triton's text format (max_batch 0: the model takes a fixed batch)."""
    batched = max_batch > 0
    lines = [f'name: "{opts.name}"', f'platform: "{platform}"', f"max_batch_size: {max_batch}",
             "input [\n" + _tensor_block(inp, batched) + "\n]",
             "output [\n" + ",\n".join(_tensor_block(o, batched) for o in outputs) + "\n]"]
    if batched:
        lines.append(f"dynamic_batching {{\n  max_queue_delay_microseconds: {opts.max_queue_delay_us}\n}}")
    lines.append(f"instance_group [\n  {{\n    count: {opts.instances}\n    kind: {opts.kind}\n  }}\n]")
    for key, value in model_parameters(info).items():
        lines.append(f'parameters {{\n  key: "{key}"\n  value: {{ string_value: {json.dumps(value, ensure_ascii=False)} }}\n}}')
    return "\n".join(lines) + "\n"


def write_triton_repo(onnx_path: str | Path, out_dir: str | Path, plan: str | Path | None = None,
                      opts: TritonRepoOptions | None = None) -> Path:
    """Write the repository; returns the model's config.pbtxt. The ONNX model gives the model's
    description and output shapes; with ``plan``, that plan (built from it) is served."""
    opts = opts or TritonRepoOptions()
    onnx_path = Path(onnx_path)
    info = ModelInfo.from_onnx(onnx_path)
    model_dir = Path(out_dir) / opts.name
    version = model_dir / "1"
    version.mkdir(parents=True, exist_ok=True)
    if plan is None:
        import onnx

        onnx.save(uint8_input_model(onnx_path), str(version / "model.onnx"))
        inp, outputs = _io(version / "model.onnx")
        platform = "onnxruntime_onnx"
    else:
        from engines.tensorrt.sidecar import Sidecar

        sidecar = Sidecar.read(plan)
        shutil.copyfile(plan, version / "model.plan")
        inp, outputs = _io(onnx_path)
        inp = Tensor(inp.name, "TYPE_FP32", (-1 if sidecar.batch_range[1] > 1 else 1, *inp.shape[1:]))
        info = ModelInfo(**{**info.__dict__, "precision": sidecar.precision})
        platform = "tensorrt_plan"
    dynamic = inp.shape[0] == -1
    max_batch = opts.max_batch if dynamic else 0
    if plan is not None and dynamic:
        max_batch = min(opts.max_batch, Sidecar.read(plan).batch_range[1])
    path = model_dir / "config.pbtxt"
    path.write_text(config_text(info, platform, inp, outputs, max_batch, opts))
    return path
