"""FP16 decided in the ONNX graph (what TensorRT's strongly typed networks build from).

Which nodes stay FP32 is measured, not named: with ONNX Runtime on representative frames, a node
stays FP32 when its FP32 output range leaves too little headroom below FP16's 65504, or when, run
in FP16, it is the first node whose output error jumps past the tolerance (overflow, underflow, or
cancellation such as |a|²+|b|²−2aᵀb); if that node already runs FP32, its inputs were not precise
enough, so the nearest FP16 nodes feeding it follow. Repeat until every output is within tolerance.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import onnx

from engines.export import check_graph, set_metadata
from engines.model_info import META_PREFIX

FP16_MAX = 65504.0
HEADROOM = 16.0  # unseen frames may run hotter than the measured ones
TOLERANCE = 1e-2  # max |Δ| / max |x| that one FP16 node may add to a tensor
_FLOAT, _HALF = onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16
log = logging.getLogger(__name__)


def session(model: onnx.ModelProto):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def run_frames(sess, frames: np.ndarray) -> list[np.ndarray]:
    """All outputs for frames [N, 1, S, S], frame by frame when the model has a fixed batch."""
    inp = sess.get_inputs()[0]
    step = inp.shape[0] if isinstance(inp.shape[0], int) else len(frames)
    parts = [sess.run(None, {inp.name: frames[i : i + step]}) for i in range(0, len(frames), step)]
    join = [np.stack if np.ndim(x) == 0 else np.concatenate for x in parts[0]]
    return [join[j]([p[j] for p in parts]).astype(np.float32) for j in range(len(parts[0]))]


def with_intermediates(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy whose outputs also include every float tensor a node produces."""
    out = onnx.shape_inference.infer_shapes(model)
    have = {o.name for o in out.graph.output}
    produced = {o for node in out.graph.node for o in node.output}
    for vi in out.graph.value_info:
        if vi.name in produced - have and vi.type.tensor_type.elem_type == _FLOAT:
            out.graph.output.append(vi)
    return out


def trace(model: onnx.ModelProto, frames: np.ndarray, fp32_nodes=None) -> dict[str, np.ndarray]:
    """Every float tensor for the frames; in FP16 (but fp32_nodes) when fp32_nodes is given."""
    exposed = with_intermediates(model)
    sess = session(exposed if fp32_nodes is None else to_fp16(exposed, fp32_nodes))
    return dict(zip([o.name for o in sess.get_outputs()], run_frames(sess, frames), strict=True))


def activation_ranges(model: onnx.ModelProto, frames: np.ndarray) -> dict[str, float]:
    """max |output| of every node over the frames (FP32)."""
    values = trace(model, frames)
    ranges = {}
    for node in model.graph.node:
        seen = [float(np.abs(values[o]).max()) for o in node.output if o in values and values[o].size]
        if seen:
            ranges[node.name] = max(seen)
    return ranges


def relative_errors(ref: dict, got: dict) -> dict[str, float]:
    errs = {}
    for name, r in ref.items():
        if name in got:
            g = got[name]
            errs[name] = float(np.abs(r - g).max() / (np.abs(r).max() + 1e-30)) if np.isfinite(g).all() else np.inf
    return errs


# What stays FP32, and why. Every other node that reads a float tensor runs FP16.
_AS_IS = {  # output type is set by the node itself, not by a compute precision
    "Cast": "converts by definition", "Constant": "emits its stored type",
    "ConstantOfShape": "emits its value's type", "Shape": "emits int64",
}
_FP32_INPUTS = {  # inputs that stay float32 whatever precision the node runs in
    "Resize": {1: "roi must be float32", 2: "scales must be float32"},
}
# and: the graph's inputs and outputs (callers feed and read float32), plus the measured
# nodes that choose_fp32_nodes names (range near FP16's max, or the first to lose precision).


def _runs_fp16(node, fp32_nodes, floats: set[str]) -> bool:
    return node.name not in fp32_nodes and node.op_type not in _AS_IS and any(
        i in floats for i in node.input)


def _input_type(node, k: int, fp16: bool) -> int:
    return _HALF if fp16 and k not in _FP32_INPUTS.get(node.op_type, {}) else _FLOAT


class _Casts:
    """One converted copy per tensor and type: an FP16 initializer for weights, else a Cast."""

    def __init__(self, graph):
        self.graph, self.nodes, self.made = graph, [], {}
        self.inits = {i.name: i for i in graph.initializer}

    def to(self, name: str, to: int) -> str:
        key = (name, to)
        if key not in self.made:
            self.made[key] = f"{name}_to_{'fp16' if to == _HALF else 'fp32'}"
            if to == _HALF and name in self.inits:
                arr = onnx.numpy_helper.to_array(self.inits[name]).astype(np.float16)
                self.graph.initializer.append(onnx.numpy_helper.from_array(arr, self.made[key]))
            else:
                self.nodes.append(onnx.helper.make_node("Cast", [name], [self.made[key]], to=to))
        return self.made[key]


def _float_tensors(g) -> set[str]:
    values = [*g.value_info, *g.input, *g.output]
    return ({v.name for v in values if v.type.tensor_type.elem_type == _FLOAT}
            | {i.name for i in g.initializer if i.data_type == _FLOAT})


def _cast_outputs_back(g, nodes: list, half: set[str]) -> None:
    """A graph output computed in FP16 is renamed inside and cast back under its own name."""
    for out in g.output:
        if out.name in half:
            inner = out.name + "_fp16"
            for node in nodes:
                node.input[:] = [inner if i == out.name else i for i in node.input]
                node.output[:] = [inner if o == out.name else o for o in node.output]
            nodes.append(onnx.helper.make_node("Cast", [inner], [out.name], to=_FLOAT))


def to_fp16(model: onnx.ModelProto, fp32_nodes) -> onnx.ModelProto:
    """Mixed precision with FP32 inputs/outputs: every float compute node but fp32_nodes in FP16.

    Casts sit only where a tensor crosses between the FP32 and FP16 regions (the converters in
    onnxconverter-common/onnxruntime round every tensor between two blocked nodes to FP16 too).
    """
    model = onnx.shape_inference.infer_shapes(model)
    g = model.graph
    floats, half, casts = _float_tensors(g), set(), _Casts(g)
    for node in g.node:
        fp16 = _runs_fp16(node, fp32_nodes, floats)
        for k, name in enumerate(node.input):
            have = _HALF if name in half else _FLOAT if name in floats else None
            want = _input_type(node, k, fp16)
            if have is not None and have != want:
                node.input[k] = casts.to(name, want)
        casts.nodes.append(node)
        if fp16:
            half |= {o for o in node.output if o in floats}
    nodes = casts.nodes
    _cast_outputs_back(g, nodes, half)
    del g.node[:], g.value_info[:]
    g.node.extend(nodes)
    read = {i for node in nodes for i in node.input} | {o.name for o in g.output}
    kept = [i for i in g.initializer if i.name in read]  # FP32 originals of FP16 weights: gone
    del g.initializer[:]
    g.initializer.extend(kept)
    return onnx.shape_inference.infer_shapes(model)


def _first_offender(model, errs: dict, tol: float):
    for node in model.graph.node:
        out_err = max((errs.get(o, 0.0) for o in node.output), default=0.0)
        in_err = max((errs.get(i, 0.0) for i in node.input), default=0.0)
        if out_err > tol and in_err <= tol:
            return node, out_err
    return None, 0.0


def _nearest_fp16_producers(model, node, keep: dict) -> list[str]:
    producer = {o: n for n in model.graph.node for o in n.output}
    found, stack, seen = [], list(node.input), set()
    while stack:
        p = producer.get(stack.pop())
        if p is None or p.name in seen:
            continue
        seen.add(p.name)
        if p.name in keep:
            stack.extend(p.input)
        else:
            found.append(p.name)
    return found


def output_errors(model: onnx.ModelProto, ref: dict, got: dict) -> dict[str, float]:
    """max |Δ| of each graph output relative to max(|x|, 1) for scores (logits), max |x| for maps."""
    errs = {}
    for out in model.graph.output:
        r, g = ref[out.name], got[out.name]
        scale = max(float(np.abs(r).max()), 1.0 if out.name == "scores" else 1e-30)
        errs[out.name] = float(np.abs(r - g).max()) / scale if np.isfinite(g).all() else np.inf
    return errs


def choose_fp32_nodes(model: onnx.ModelProto, frames: np.ndarray, tol: float = TOLERANCE,
                      headroom: float = HEADROOM, max_rounds: int = 64) -> dict[str, str]:
    """{node name: why it stays FP32}, measured on frames [N, 1, S, S] float32 in [0, 1].

    Stops as soon as every graph output is within tol of FP32; until then, the first node whose
    own FP16 error passes tol is kept FP32 (or, if it already is, the FP16 nodes feeding it).
    """
    ref = trace(model, frames)
    keep = {n: f"range {r:.3g} > {FP16_MAX / headroom:.0f}"
            for n, r in activation_ranges(model, frames).items() if r > FP16_MAX / headroom}
    for _ in range(max_rounds):
        got = trace(model, frames, keep)
        outs = output_errors(model, ref, got)
        if max(outs.values()) <= tol:
            return keep
        node, err = _first_offender(model, relative_errors(ref, got), tol)
        log.debug("fp16 outputs %s; first offender %s (%s) error %.3g; fp32 so far %d nodes", outs,
                  node and node.name, node and node.op_type, err, len(keep))
        feeders = [node.name] if node is not None and node.name not in keep else (
            _nearest_fp16_producers(model, node, keep) if node is not None else [])
        if not feeders:
            break
        keep.update({name: f"fp16 error {err:.2g}" if name == node.name else
                     f"feeds {node.name} (fp16 error {err:.2g})" for name in feeders})
    raise RuntimeError(f"FP16 outputs do not come within {tol} of FP32 with {sorted(keep)} kept FP32")


def convert_fp16(model: onnx.ModelProto, frames: np.ndarray,
                 fp32_nodes: dict[str, str] | None = None) -> tuple[onnx.ModelProto, dict[str, str]]:
    """Mixed-precision copy (FP32 inputs/outputs) with the measured nodes kept FP32."""
    if fp32_nodes is None:
        fp32_nodes = choose_fp32_nodes(model, frames)
    out = to_fp16(model, fp32_nodes)
    meta = {p.key: p.value for p in model.metadata_props}
    set_metadata(out, {**meta, META_PREFIX + "precision": "fp16",
                       META_PREFIX + "fp32_nodes": json.dumps(sorted(fp32_nodes))})
    check_graph(out)
    return out, fp32_nodes
