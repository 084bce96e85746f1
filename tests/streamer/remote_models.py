"""The bundled model as another model under the same name would be: its classes named in another
order (same shapes), or a seventh class (scores [B, 7], maps [B, 7, h, w]). ONNX edits only (no
torch): what a server restarted with a retrained model serves."""

from __future__ import annotations

import json
from pathlib import Path

from engines.defaults import default_onnx

CLASSES = ("head", "spine", "thorax", "abdomen", "limbs", "placenta")


def _set_classes(model, classes) -> None:
    for prop in model.metadata_props:
        if prop.key == "sonostream.classes":
            prop.value = json.dumps(list(classes))


def reordered_model(out: Path) -> Path:
    """The same graph; its channels named spine, head, thorax... (a model trained with the first
    two classes the other way round)."""
    import onnx

    model = onnx.load(str(default_onnx()))
    _set_classes(model, (CLASSES[1], CLASSES[0], *CLASSES[2:]))
    onnx.save(model, str(out))
    return out


def seven_class_model(out: Path, extra: str = "cervix") -> Path:
    """The graph with a seventh output channel (a copy of the first) named ``extra``."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(default_onnx()))
    graph = model.graph
    for name in ("scores", "maps"):
        for node in graph.node:
            node.output[:] = [f"{name}_6" if o == name else o for o in node.output]
        graph.node.extend([
            helper.make_node("Slice", [f"{name}_6", "first", "second", "axis1"], [f"{name}_x"]),
            helper.make_node("Concat", [f"{name}_6", f"{name}_x"], [name], axis=1)])
        out_info = next(o for o in graph.output if o.name == name)
        out_info.type.tensor_type.shape.dim[1].dim_value = len(CLASSES) + 1
    for value, key in ((0, "first"), (1, "second"), (1, "axis1")):
        graph.initializer.append(numpy_helper.from_array(np.array([value], np.int64), key))
    _set_classes(model, (*CLASSES, extra))
    onnx.checker.check_model(model)
    onnx.save(model, str(out))
    return out
