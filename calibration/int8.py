"""INT8 as explicit Q/DQ in the ONNX graph (what TensorRT's strongly typed networks build from).

The options are the ones NVIDIA ModelOpt passes to ONNX Runtime for TensorRT: QDQ format,
per-channel symmetric INT8 weights, symmetric INT8 activations, bias and outputs not quantised,
only Conv/Gemm/MatMul quantised, GEMV-shaped MatMuls left in float.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import onnx

from engines.export import check_graph, set_metadata
from engines.model_info import META_PREFIX
from engines.quiet import quiet_third_party

METHODS = ("entropy", "percentile", "minmax")
QUANTISED_OPS = ("Conv", "Gemm", "MatMul")
log = logging.getLogger(__name__)


def frame_reader(frames: np.ndarray, input_name: str, batch: int = 1, progress: bool = True):
    """A CalibrationDataReader over frames [N, 1, S, S] float32 with a tqdm progress bar."""
    from onnxruntime.quantization import CalibrationDataReader
    from tqdm import tqdm

    class FrameReader(CalibrationDataReader):
        def __init__(self):
            self.bar = tqdm(total=len(frames), desc="calibrating", unit="frame", disable=not progress)
            self.start = 0

        def get_next(self):
            if self.start >= len(frames):
                self.bar.close()
                return None
            chunk = frames[self.start : self.start + batch]
            self.start += len(chunk)
            self.bar.update(len(chunk))
            return {input_name: np.ascontiguousarray(chunk, np.float32)}

        def rewind(self):
            self.start = 0

    return FrameReader()


def _activation_matmuls(model: onnx.ModelProto) -> tuple[list[str], list[str]]:
    """(GEMV-shaped MatMuls, other MatMuls whose B is an activation: the soft proposal's)."""
    inferred = onnx.shape_inference.infer_shapes(model)
    consts = {i.name for i in model.graph.initializer}
    consts |= {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    dims = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in inferred.graph.value_info}
    gemv, other = [], []
    for node in model.graph.node:
        if node.op_type == "MatMul":
            shape = dims.get(node.output[0], [])
            if shape and shape[-1] == 1:
                gemv.append(node.name)
            elif node.input[1] not in consts:
                other.append(node.name)
    return gemv, other


TARGETS = ("tensorrt", "cpu")


def target_options(target: str) -> dict:
    """Q/DQ placement per runtime.

    tensorrt: symmetric INT8 activations and weights, outputs of quantised ops left in float —
    what TensorRT's strongly typed networks take (it fuses the Q/DQ itself).
    cpu: unsigned activations with signed weights (U8S8, what VNNI runs) and quantised outputs,
    so ONNX Runtime fuses DQ→Conv→Q into QLinearConv; with float outputs it would run a float
    Conv behind a DequantizeLinear and be slower than FP32.
    """
    from onnxruntime.quantization import QuantType

    if target not in TARGETS:
        raise ValueError(f"INT8 target must be one of {TARGETS}, got {target!r}")
    if target == "cpu":
        return {"activation_type": QuantType.QUInt8, "extra": {"ActivationSymmetric": False}}
    return {"activation_type": QuantType.QInt8,
            "extra": {"ActivationSymmetric": True,
                      "OpTypesToExcludeOutputQuantization": list(QUANTISED_OPS)}}


def quantize_int8(model_path: str | Path, frames: np.ndarray, out: str | Path, *,
                  method: str = "entropy", quantise_proposal: bool = False, progress: bool = True,
                  target: str = "tensorrt") -> Path:
    """Calibrate on frames and write a Q/DQ INT8 model; the soft proposal stays float unless asked."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    placement = target_options(target)

    if method not in METHODS:
        raise ValueError(f"calibration method must be one of {METHODS}, got {method!r}")
    model = onnx.load(str(model_path))
    gemv, proposal = _activation_matmuls(model)
    exclude = gemv + ([] if quantise_proposal else proposal)
    fixed = model.graph.input[0].type.tensor_type.shape.dim[0].dim_value
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with quiet_third_party():  # the quantiser's prints and root-logger warnings
        quantize_static(
            str(model_path), str(out), frame_reader(frames, model.graph.input[0].name, fixed or 8, progress),
            quant_format=QuantFormat.QDQ, per_channel=True, activation_type=placement["activation_type"],
            weight_type=QuantType.QInt8, op_types_to_quantize=list(QUANTISED_OPS), nodes_to_exclude=exclude,
            calibrate_method={"entropy": CalibrationMethod.Entropy, "percentile": CalibrationMethod.Percentile,
                              "minmax": CalibrationMethod.MinMax}[method],
            extra_options={"WeightSymmetric": True, "QuantizeBias": False, **placement["extra"],
                           "CalibPercentile": 99.99, "MatMulConstBOnly": False,
                           "DedicatedQDQPair": True},  # float consumers keep reading the float tensor
        )
    q = onnx.load(str(out))
    set_metadata(q, {**{p.key: p.value for p in model.metadata_props}, META_PREFIX + "precision": "int8",
                     META_PREFIX + "int8_method": method,
                     META_PREFIX + "int8_target": target,
                     META_PREFIX + "float_nodes": json.dumps(sorted(exclude))})
    check_graph(q)
    onnx.save(q, str(out))
    return out


def choose_proposal_precision(model_path, calib: np.ndarray, held_out: np.ndarray, workdir,
                              method: str = "entropy", target: str = "tensorrt") -> tuple[Path, dict]:
    """Quantise with and without the soft proposal's MatMuls; keep the more faithful one."""
    from calibration.report import compare

    tried = {}
    for flag in (False, True):
        path = quantize_int8(model_path, calib, Path(workdir) / f"int8_proposal_{flag}.onnx",
                             method=method, quantise_proposal=flag, progress=False, target=target)
        tried[flag] = (path, compare(model_path, {"int8": path}, held_out, latency=False)["int8"])
    best = min(tried, key=lambda f: (-tried[f][1]["decision_agreement"], tried[f][1]["max_abs_dprob"]))
    log.info("soft proposal %s: %s", "quantised" if best else "kept float",
             {str(k): v[1] for k, v in tried.items()})
    return tried[best][0], {f"quantise_proposal={k}": v[1] for k, v in tried.items()}
