"""Out-of-distribution score: how unlike the frames a model was fitted on a frame looks to it.

The model's pooled features (the vector its classifier reads, exposed as an extra graph output
``features``) are compared with their distribution over the model's training (or any
representative) set: Mahalanobis distance to the mean under a shrunk covariance (Lee et al.,
NeurIPS 2018) of the features or of their logarithm (log1p: the pooled sums of ReLU maps are
skewed), or the energy of the logits (Liu et al., NeurIPS 2020) where a model has no
feature output. The raw score is calibrated against the fitting set: ``ood`` is the fraction of
fitting frames that scored lower (0.5: typical; 0.999: stranger than all but one in a
thousand; 1.0: stranger than every one), and a frame is ``familiar`` while ``ood`` stays below
``limit``. Everything lives in the ONNX file (metadata key ``sonostream.ood``), so a deployed
model carries its own yardstick; no torch needed.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FEATURES = "features"
META_KEY = "sonostream.ood"
METHODS = ("mahalanobis", "log_mahalanobis", "energy")
LEVELS = np.linspace(0.0, 1.0, 201)  # calibration quantiles stored with the model
DEFAULT_LIMIT = 0.99


def _pack(a: np.ndarray) -> dict:
    a = np.ascontiguousarray(a, np.float32)
    return {"shape": list(a.shape), "f32": base64.b64encode(a.tobytes()).decode()}


def _unpack(d: dict) -> np.ndarray:
    return np.frombuffer(base64.b64decode(d["f32"]), np.float32).reshape(d["shape"]).copy()


def energy(scores: np.ndarray) -> np.ndarray:
    """Negative joint energy of independent sigmoid logits: -Σ_c log(1 + e^{s_c}), higher = odder."""
    s = np.asarray(scores, np.float64)
    return -np.logaddexp(0.0, s).sum(axis=-1)


@dataclass(frozen=True)
class OodModel:
    method: str
    quantiles: np.ndarray  # raw score at LEVELS over the fitting set
    limit: float = DEFAULT_LIMIT
    mean: np.ndarray | None = None  # mahalanobis: [D]
    whiten: np.ndarray | None = None  # mahalanobis: [D, D], ‖(f - mean) @ whiten‖² is the distance
    source: str = ""
    n: int = 0

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {_short(self.method)}")
        if not 0.0 < self.limit <= 1.0:  # NaN fails too
            raise ValueError(f"limit must be in (0, 1], got {_short(self.limit)}")
        _check_array("quantiles", self.quantiles, (len(LEVELS),))
        if np.any(np.diff(self.quantiles) < 0):
            raise ValueError("quantiles must not decrease")
        if self.needs_features:
            if self.mean is None or self.whiten is None:
                raise ValueError(f"a {self.method} ood model needs its mean and whitening matrix")
            _check_array("mean", self.mean, (-1,))
            _check_array("whiten", self.whiten, (len(self.mean), len(self.mean)))

    @property
    def dimension(self) -> int | None:
        """How many pooled features the statistics are for (None: energy needs none)."""
        return len(self.mean) if self.needs_features else None

    @property
    def needs_features(self) -> bool:
        return self.method != "energy"

    def raw(self, scores: np.ndarray, features: np.ndarray | None = None) -> np.ndarray:
        """Uncalibrated score per frame ([B]), higher = less like the fitting set."""
        if self.method == "energy":
            return energy(scores)
        if features is None:
            raise ValueError("this model's ood score needs its pooled features output")
        f = _transform(self.method, features)
        if f.shape[1] != len(self.mean):
            raise ValueError(f"ood statistics are for {len(self.mean)} features, got {f.shape[1]}")
        z = (f - self.mean) @ self.whiten
        return np.einsum("bd,bd->b", z, z).astype(np.float64)

    def calibrate(self, raw: np.ndarray) -> np.ndarray:
        """Fraction of fitting frames with a lower raw score (1.0 beyond all of them)."""
        q = self.quantiles
        return np.where(raw > q[-1], 1.0, np.interp(raw, q, LEVELS))

    def __call__(self, scores, features=None) -> tuple[np.ndarray, np.ndarray]:
        """(ood [B] in [0, 1], familiar [B] bool)."""
        ood = self.calibrate(self.raw(scores, features))
        return ood, ood < self.limit

    # -- storage -----------------------------------------------------------------------------
    def to_json(self) -> str:
        d = {"method": self.method, "limit": self.limit, "source": self.source, "n": self.n,
             "quantiles": _pack(self.quantiles)}
        if self.needs_features:
            d["mean"], d["whiten"] = _pack(self.mean), _pack(self.whiten)
        return json.dumps(d, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> OodModel:
        try:
            d = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise ValueError(f"malformed ood statistics: not valid JSON ({exc})") from None
        if not isinstance(d, dict):
            raise ValueError("malformed ood statistics: not a JSON object")
        try:
            arrays = {k: _unpack(d[k]) for k in ("mean", "whiten") if k in d}
            return cls(d["method"], _unpack(d["quantiles"]).astype(np.float64), float(d["limit"]),
                       source=str(d.get("source", "")), n=int(d.get("n", 0)), **arrays)
        except (KeyError, TypeError, ValueError, AttributeError, RecursionError) as exc:
            reason = f"no {exc}" if isinstance(exc, KeyError) else str(exc) or type(exc).__name__
            raise ValueError(f"malformed ood statistics: {reason[:200]}") from None


def _short(value) -> str:
    """A value for an error line: its repr, cut short (metadata can hold anything)."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _check_array(name: str, a, shape: tuple[int, ...]) -> None:
    """``a`` has ``shape`` (-1: any length ≥ 1), at least one value, and every value finite."""
    a = np.asarray(a)
    fits = a.ndim == len(shape) and all(s == n or (n == -1 and s) for s, n in zip(a.shape, shape, strict=True))
    if not fits or a.size == 0:
        want = "x".join("D" if n == -1 else str(n) for n in shape)
        raise ValueError(f"{name} has shape {list(a.shape)}, expected {want}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} holds values that are not finite")


def _transform(method: str, features: np.ndarray) -> np.ndarray:
    f = np.asarray(features, np.float32).reshape(len(features), -1)
    return np.log1p(np.maximum(f, 0.0)) if method == "log_mahalanobis" else f


def fit(method: str, scores: np.ndarray, features: np.ndarray | None = None, *,
        limit: float = DEFAULT_LIMIT, source: str = "", shrinkage: float = 0.05) -> OodModel:
    """Fit the statistics on in-distribution outputs (scores [N, C], features [N, D])."""
    n = len(scores)
    if n < 50:
        raise ValueError(f"ood statistics need at least 50 frames, got {n}")
    extra = {}
    if method != "energy":
        if features is None:
            raise ValueError(f"{method} needs the model's pooled features (an ONNX with a "
                             f"'{FEATURES}' output)")
        f = _transform(method, features).astype(np.float64)
        mean = f.mean(axis=0)
        cov = np.cov(f, rowvar=False)
        # shrink towards a scaled identity: a stable inverse from a few thousand frames
        cov = (1 - shrinkage) * cov + shrinkage * np.trace(cov) / len(cov) * np.eye(len(cov))
        vals, vecs = np.linalg.eigh(cov)
        whiten = vecs / np.sqrt(np.maximum(vals, 1e-12 * vals.max()))
        extra = {"mean": mean.astype(np.float32), "whiten": whiten.astype(np.float32)}
    probe = OodModel(method, np.zeros(len(LEVELS)), limit, source=source, n=n, **extra)
    raw = probe.raw(scores, features)
    return OodModel(method, np.quantile(raw, LEVELS), limit, source=source, n=n, **extra)


def auroc(inliers: np.ndarray, outliers: np.ndarray) -> float:
    """Area under the ROC curve of a score that should be higher on outliers (ties count half)."""
    a, b = np.asarray(inliers, np.float64), np.asarray(outliers, np.float64)
    if not len(a) or not len(b):
        raise ValueError("auroc needs inliers and outliers")
    allv = np.concatenate([a, b])
    _, inv, counts = np.unique(allv, return_inverse=True, return_counts=True)
    first = np.cumsum(counts) - counts  # rank (0-based) of each distinct value's first member
    ranks = (first + (counts + 1) / 2)[inv]  # 1-based mid-ranks
    return float((ranks[len(a):].sum() - len(b) * (len(b) + 1) / 2) / (len(a) * len(b)))


# -- the graph and the file ------------------------------------------------------------------------
def add_feature_output(model) -> bool:
    """Expose the classifier's input (the pooled features) as output ``features`` [B, D].

    Found as the non-constant input of the node that produces ``scores`` (a Gemm, or an Add after
    a MatMul/Einsum). Returns False if the graph already has it."""
    import onnx
    from onnx import helper

    g = model.graph
    if any(o.name == FEATURES for o in g.output):
        return False
    consts = {i.name for i in g.initializer} | {
        o for n in g.node if n.op_type == "Constant" for o in n.output}
    producer = {o: n for n in g.node for o in n.output}
    node = producer.get("scores")
    for _ in range(3):
        if node is None:
            break
        if node.op_type in ("Gemm", "MatMul", "Einsum"):
            inputs = [i for i in node.input if i and i not in consts]
            if len(inputs) == 1:
                g.node.append(helper.make_node("Flatten", [inputs[0]], [FEATURES], axis=1,
                                               name="sonostream_ood_features"))
                g.output.append(helper.make_tensor_value_info(
                    FEATURES, onnx.TensorProto.FLOAT, _features_shape(model, inputs[0])))
                return True
            break
        inputs = [i for i in node.input if i and i not in consts]
        node = producer.get(inputs[0]) if len(inputs) == 1 else None
    raise ValueError("cannot find the classifier's input in the graph (expected Gemm/MatMul/Einsum "
                     "producing 'scores')")


def _features_shape(model, name: str) -> list:
    """[batch, D] of the output ``features``, the batch as the scores have it: a graph output
    needs a shape (onnx.checker, Triton's config)."""
    import onnx

    scores = next(o for o in model.graph.output if o.name == "scores").type.tensor_type.shape.dim
    batch = scores[0].dim_param or scores[0].dim_value
    inferred = onnx.shape_inference.infer_shapes(model)
    dims = next((vi.type.tensor_type.shape.dim for vi in inferred.graph.value_info
                 if vi.name == name), [])
    size = 1
    for d in list(dims)[1:]:
        size = size * d.dim_value if d.HasField("dim_value") else None
        if size is None:
            break
    return [batch, size if size else "features"]


def read_metadata(path: str | Path) -> dict[str, str]:
    """The model file's metadata: ONNX metadata_props, or a TensorRT plan's sidecar copy."""
    path = Path(path)
    if path.suffix == ".onnx":
        import onnx

        m = onnx.load(str(path), load_external_data=False)
        return {p.key: p.value for p in m.metadata_props}
    side = path.with_suffix(path.suffix + ".json")
    if side.is_file():
        try:
            return dict(json.loads(side.read_text()).get("model_metadata", {}))
        except (OSError, ValueError):
            return {}
    return {}


def load(path: str | Path | None) -> OodModel | None:
    """The OOD statistics stored with a model file, or None if it has none (or no file)."""
    if path is None or not Path(path).is_file():
        return None
    text = read_metadata(path).get(META_KEY)
    return OodModel.from_json(text) if text else None


def carried_metadata(onnx_path: str | Path) -> dict[str, str]:
    """The OOD entry of an ONNX model's metadata, for files derived from it (TensorRT sidecars)."""
    meta = read_metadata(onnx_path)
    return {META_KEY: meta[META_KEY]} if META_KEY in meta else {}
