"""FLOPs per frame counted from an ONNX graph: Conv, MatMul, Gemm and Einsum (the ops that carry
the arithmetic), with shapes from ONNX shape inference at batch 1. One multiply-add = 2 FLOPs."""

from __future__ import annotations

import math
import re
from pathlib import Path

COUNTED = ("Conv", "MatMul", "Gemm", "Einsum")


def _at_batch_one(model):
    """A copy whose symbolic input dimensions (the batch) are fixed to 1."""
    import onnx

    model = onnx.ModelProto.FromString(model.SerializeToString())
    for value in model.graph.input:
        dims = value.type.tensor_type.shape.dim
        for dim in dims[:1]:
            if not dim.HasField("dim_value"):
                dim.dim_value = 1
    return model


def _shapes(model) -> dict[str, list[int] | None]:
    from onnx import numpy_helper, shape_inference

    inferred = shape_inference.infer_shapes(model, data_prop=True)
    g = inferred.graph
    shapes: dict[str, list[int] | None] = {}
    for value in [*g.input, *g.value_info, *g.output]:
        dims = value.type.tensor_type.shape.dim
        known = [d.dim_value if d.HasField("dim_value") else None for d in dims]
        shapes[value.name] = None if None in known else known
    for init in g.initializer:
        shapes[init.name] = list(numpy_helper.to_array(init).shape)
    return shapes


def _attr(node, name: str, default):
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def node_flops(node, shapes: dict) -> int | None:
    """FLOPs of one node, or None when its shapes are unknown."""
    ins = [shapes.get(n) for n in node.input if n]
    out = shapes.get(node.output[0])
    if any(s is None for s in ins[:2]) or out is None:
        return None
    op = node.op_type
    if op == "Conv":  # per output element: (C/groups)·k_h·k_w multiply-adds
        return 2 * math.prod(out) * math.prod(ins[1][1:])
    if op == "MatMul":
        return 2 * math.prod(out) * ins[0][-1]
    if op == "Gemm":
        k = ins[0][0] if _attr(node, "transA", 0) else ins[0][-1]
        return 2 * math.prod(out) * k
    if op == "Einsum":  # every index combination is one multiply-add
        equation = _attr(node, "equation", b"")
        equation = equation.decode() if isinstance(equation, bytes) else equation
        terms = re.sub(r"\s", "", equation).split("->")[0].split(",")
        sizes = {}
        for term, shape in zip(terms, ins, strict=False):
            sizes.update(zip(term, shape, strict=False))
        return 2 * math.prod(sizes.values())
    return 0


def count_flops(path: str | Path) -> dict:
    """{"total": FLOPs per frame, "by_op": {op: FLOPs}, "uncounted": [node names]}."""
    import onnx

    model = _at_batch_one(onnx.load(str(path)))
    shapes = _shapes(model)
    by_op: dict[str, int] = {}
    uncounted = []
    for node in model.graph.node:
        if node.op_type not in COUNTED:
            continue
        flops = node_flops(node, shapes)
        if flops is None:
            uncounted.append(node.name or node.op_type)
            continue
        by_op[node.op_type] = by_op.get(node.op_type, 0) + flops
    return {"total": sum(by_op.values()), "by_op": by_op, "uncounted": uncounted}
