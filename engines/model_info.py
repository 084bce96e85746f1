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
        object.__setattr__(self, "classes", tuple(self.classes))
        if not isinstance(self.recipe, InputRecipe):
            object.__setattr__(self, "recipe", InputRecipe.from_json(self.recipe))
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"model activation must be one of {ACTIVATIONS}, got {self.activation!r}")
        if not self.classes:
            raise ValueError("model declares no classes")
        if self.representation not in REPRESENTATIONS:
            raise ValueError(f"model representation must be one of {REPRESENTATIONS}, "
                             f"got {self.representation!r}")

    def to_metadata(self) -> dict[str, str]:
        values = {k: getattr(self, k) for k in self.__dataclass_fields__}
        values["classes"] = json.dumps(list(self.classes))
        values["recipe"] = self.recipe.to_json()
        return {META_PREFIX + k: str(v) for k, v in values.items()}

    @classmethod
    def from_metadata(cls, meta: dict[str, str], source: str = "model") -> ModelInfo:
        fields = {k[len(META_PREFIX):]: v for k, v in meta.items() if k.startswith(META_PREFIX)}
        missing = {"classes", "activation", "input_size"} - set(fields)
        if missing:
            raise ValueError(f"{source} is not a sonostream model: metadata lacks {sorted(missing)}")
        known = {k: v for k, v in fields.items() if k in cls.__dataclass_fields__}
        known["classes"] = tuple(json.loads(known["classes"]))
        known["input_size"] = int(known["input_size"])
        known["iterations"] = int(known.get("iterations", 0))
        known.setdefault("recipe", "")  # none recorded: an older model of ours (INTER_AREA)
        return cls(**known)

    @classmethod
    def from_onnx(cls, path: str | Path) -> ModelInfo:
        import onnx

        refuse_checkpoint(path)
        model = onnx.load(str(path), load_external_data=False)
        return cls.from_metadata({p.key: p.value for p in model.metadata_props}, str(path))


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
