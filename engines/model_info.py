"""What a deployed model says about itself, read from ONNX metadata (no torch needed)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from engines.classes import ACTIVATIONS
from engines.errors import UserError
from engines.input_recipe import SONOSTREAM, InputRecipe

META_PREFIX = "sonostream."
MODEL_VERSION = "1"
HEADS = ("shared", "per_class")
"""shared: one proposal map for all classes (the release); per_class: one per class."""
REPRESENTATIONS = ("sector", "polar")
"""sector: the fan crop as it is; polar: the sector resampled to beam space (depth down)."""
PRECISIONS = ("fp32", "fp16", "int8")
TORCH_MAGIC = (b"PK\x03\x04", b"\x80")
"""How a torch.save file starts: a zip archive, or (legacy) a pickle."""


MAX_INPUT_SIZE = 4096
"""The largest input side a model may declare (the bundled one takes 224)."""


class MetadataError(UserError):
    """A model's description that cannot be run: names the metadata key and what is wrong."""

    def __init__(self, key: str, problem: str):
        self.key, self.problem = key, problem
        super().__init__(f"model metadata {key}: {problem}")


def _short(value) -> str:
    """A metadata value for an error line: its repr, cut short (metadata can hold anything)."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _check_classes(classes: tuple) -> None:
    if not classes:
        raise MetadataError("classes", "no classes")
    for name in classes:
        if not isinstance(name, str) or not name.strip():
            raise MetadataError("classes", f"class names must be non-empty strings, got "
                                           f"{_short(name)}")
    seen = set()
    for name in classes:  # results, thresholds and metrics are keyed by the name
        if name in seen:
            raise MetadataError("classes", f"{name!r} named twice: each class needs its own name")
        seen.add(name)


@dataclass(frozen=True)
class ModelInfo:
    classes: tuple[str, ...]
    activation: str
    input_size: int
    arch: str = "unknown"
    head: str = "shared"
    map_kind: str = "cam"
    representation: str = "sector"  # sector crops, or polar (beam-space) frames
    proposal_mode: str = "unrolled"
    iterations: int = 0
    precision: str = "fp32"
    model_version: str = MODEL_VERSION
    source_sha256: str = ""
    recipe: InputRecipe = SONOSTREAM  # how frames become its input (the release's, or ours)

    def __post_init__(self):
        """Every backend's description passes here, so a model that cannot run is refused at
        load (MetadataError: one line naming the key), never frame by frame."""
        if not isinstance(self.classes, list | tuple):
            raise MetadataError("classes", f"must be a list of names, got {_short(self.classes)}")
        object.__setattr__(self, "classes", tuple(self.classes))
        _check_classes(self.classes)
        if not isinstance(self.recipe, InputRecipe):
            try:
                object.__setattr__(self, "recipe", InputRecipe.from_json(self.recipe))
            except (ValueError, TypeError, AttributeError) as exc:
                raise MetadataError("recipe", str(exc)) from None
        for key, value, allowed in (("activation", self.activation, ACTIVATIONS),
                                    ("representation", self.representation, REPRESENTATIONS),
                                    ("head", self.head, HEADS),
                                    ("precision", self.precision, PRECISIONS)):
            if value not in allowed:
                raise MetadataError(key, f"must be one of {', '.join(allowed)}, got {_short(value)}")
        for key, value, low, high in (("input_size", self.input_size, 8, MAX_INPUT_SIZE),
                                      ("iterations", self.iterations, 0, 1000)):
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise MetadataError(key, f"must be an integer in {low}..{high}, got {_short(value)}")

    def to_metadata(self) -> dict[str, str]:
        values = {k: getattr(self, k) for k in self.__dataclass_fields__}
        values["classes"] = json.dumps(list(self.classes))
        values["recipe"] = self.recipe.to_json()
        return {META_PREFIX + k: str(v) for k, v in values.items()}

    @classmethod
    def from_metadata(cls, meta: dict[str, str], source: str = "model",
                      features: int | None = None) -> ModelInfo:
        """The description in ``meta`` (``sonostream.*`` keys), checked with the OOD statistics
        it carries (against ``features``, the model's pooled-feature count, where known); a bad
        value is one line naming ``source`` and the key."""
        fields = {k[len(META_PREFIX):]: v for k, v in meta.items() if k.startswith(META_PREFIX)}
        missing = {"classes", "activation", "input_size"} - set(fields)
        if missing:
            raise UserError(f"{source} is not a sonostream model: metadata lacks {sorted(missing)}")
        known = {k: v for k, v in fields.items() if k in cls.__dataclass_fields__}
        known.setdefault("recipe", "")  # none recorded: an older model of ours (INTER_AREA)
        try:
            known["classes"] = _json(known["classes"], "classes")
            for key in ("input_size", "iterations"):
                if key in known:
                    known[key] = _integer(known[key], key)
            info = cls(**known)
            check_ood(fields.get("ood"), features)
        except MetadataError as exc:
            raise UserError(f"{source}: metadata {META_PREFIX}{exc.key}: {exc.problem}") from None
        return info

    @classmethod
    def from_onnx(cls, path: str | Path) -> ModelInfo:
        import onnx

        refuse_checkpoint(path)
        model = onnx.load(str(path), load_external_data=False)
        return cls.from_metadata({p.key: p.value for p in model.metadata_props}, str(path),
                                 features=features_dimension(model))


def _json(text: str, key: str):
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise MetadataError(key, f"not valid JSON ({exc})") from None


def _integer(text: str, key: str) -> int:
    try:
        return int(text)
    except (TypeError, ValueError):
        raise MetadataError(key, f"must be an integer, got {_short(text)}") from None


def check_ood(text: str | None, features: int | None = None) -> None:
    """The OOD statistics a model carries (engines.ood), if any, must load and fit its
    ``features`` output: else every frame would fail on them."""
    if text is None:
        return
    from engines.ood import OodModel

    try:
        ood = OodModel.from_json(text)
    except ValueError as exc:
        raise MetadataError("ood", str(exc).removeprefix("malformed ood statistics: ")) from None
    if features is not None and ood.dimension is not None and ood.dimension != features:
        raise MetadataError("ood", f"statistics are for {ood.dimension} features, the model "
                                   f"outputs {features}: fit them again (streamer ood-fit)")


def features_dimension(model) -> int | None:
    """D of an ONNX graph's ``features`` output [B, D] when static (None: no such output)."""
    for output in model.graph.output:
        if output.name == "features":
            dims = output.type.tensor_type.shape.dim
            return dims[1].dim_value if len(dims) == 2 and dims[1].dim_value else None
    return None


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file (model provenance: checkpoint → ONNX → plan)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def refuse_checkpoint(path: str | Path, instead: str = "") -> None:
    """Where an ONNX model is wanted, a PyTorch checkpoint (told by its first bytes, whatever its
    name) is bad input: say what it is and how to export it; ``instead`` (``{onnx}``: the exported
    file) adds how else to run it."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError:
        return  # the reader says what is wrong with the file
    if head.startswith(TORCH_MAGIC):
        p = Path(path)
        onnx = p.with_name(p.stem + ("_exported.onnx" if p.suffix == ".onnx" else ".onnx"))
        raise UserError(f"{path} is a PyTorch checkpoint, not an ONNX model: export it first "
                        f"(streamer export --checkpoint {path} --out {onnx})"
                        + instead.format(onnx=onnx))
