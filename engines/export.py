"""Export a trained model to a static ONNX graph with the soft proposal unrolled."""

from __future__ import annotations

import copy
import logging
import warnings
from pathlib import Path

import onnx
import torch

from engines.input_recipe import InputRecipe
from engines.model import SPNModel
from engines.model_info import ModelInfo
from engines.quiet import quiet_third_party

OPSET = 18
FORBIDDEN_OPS = frozenset({"Loop", "If", "Scan", "NonZero", "SequenceConstruct", "SplitToSequence"})
TENSORRT_OPS = frozenset({
    # Ops the TensorRT ONNX parser supports (onnx-tensorrt operators list) that our graphs use or
    # may use after precision conversion; anything else fails export rather than the engine build.
    "Add", "BatchNormalization", "Cast", "Clip", "Concat", "Constant", "ConstantOfShape", "Conv",
    "DequantizeLinear", "Div", "Einsum", "Exp", "Expand", "Flatten", "Gather", "Gemm",
    "GlobalAveragePool", "Identity", "MatMul", "Max", "MaxPool", "Min", "Mul", "Neg", "Pow",
    "QuantizeLinear", "ReduceMax", "ReduceMean", "ReduceSum", "Relu", "Reshape", "Resize", "Shape",
    "Sigmoid", "Slice", "Softmax", "Split", "Sqrt", "Squeeze", "Sub", "Transpose", "Unsqueeze",
})
log = logging.getLogger(__name__)
logging.getLogger("onnx_ir").setLevel(logging.WARNING)


def model_info(model: SPNModel, *, iterations: int, mode: str, source_sha256: str = "") -> ModelInfo:
    cfg = model.cfg
    return ModelInfo(
        classes=cfg.classes, activation=cfg.activation, input_size=cfg.input_size, arch=cfg.arch,
        head=cfg.head, map_kind=cfg.map_kind, representation=cfg.representation, proposal_mode=mode, iterations=iterations,
        source_sha256=source_sha256, recipe=InputRecipe.from_json(cfg.extra.get("recipe")),
    )


def deployable(model: SPNModel, iterations: int | None = None, mode: str = "unrolled") -> SPNModel:
    """A copy in eval mode with the proposal loop replaced by a static form."""
    if mode not in ("unrolled", "stationary"):
        raise ValueError("export needs a static soft proposal: mode 'unrolled' or 'stationary'")
    out = copy.deepcopy(model).eval()
    out.set_proposal_mode(mode, iterations or model.cfg.iterations)
    return out


def export_onnx(
    model: SPNModel,
    out: str | Path,
    *,
    iterations: int | None = None,
    mode: str = "unrolled",
    dynamic_batch: bool = False,
    source_sha256: str = "",
) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    static = deployable(model, iterations, mode)
    size = static.cfg.input_size
    example = torch.rand(2 if dynamic_batch else 1, 1, size, size)
    with torch.no_grad():
        static(example)  # fills the spatial-kernel cache, so the kernel exports as a constant
    shapes = {"x": {0: torch.export.Dim("batch", min=1, max=256)}} if dynamic_batch else None
    with warnings.catch_warnings(), quiet_third_party():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            static, (example,), str(out), input_names=["input"], output_names=["scores", "maps"],
            opset_version=OPSET, dynamic_shapes=shapes, external_data=False, verbose=False,
        )
    graph = onnx.load(str(out))
    info = model_info(static, iterations=static.cfg.iterations, mode=mode, source_sha256=source_sha256)
    set_metadata(graph, info.to_metadata())
    check_graph(graph)
    onnx.save(graph, str(out))
    return out


def set_metadata(graph: onnx.ModelProto, meta: dict[str, str]) -> None:
    keep = [p for p in graph.metadata_props if p.key not in meta]
    del graph.metadata_props[:]
    graph.metadata_props.extend(keep)
    for key, value in meta.items():
        graph.metadata_props.add(key=key, value=value)


def graph_ops(graph: onnx.ModelProto) -> set[str]:
    return {node.op_type for node in graph.graph.node}


def check_graph(graph: onnx.ModelProto) -> None:
    """onnx.checker clean, static (no control flow) and inside the TensorRT allow-list."""
    onnx.checker.check_model(graph, full_check=True)
    ops = graph_ops(graph)
    if ops & FORBIDDEN_OPS:
        raise ValueError(f"exported graph is not static: it contains {sorted(ops & FORBIDDEN_OPS)}")
    if ops - TENSORRT_OPS:
        raise ValueError(f"exported graph uses ops outside the TensorRT allow-list: {sorted(ops - TENSORRT_OPS)}")
    opset = max(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx"))
    if opset < 17:
        raise ValueError(f"exported opset {opset} < 17")
