"""What a sonostream model looks like on a v2 inference server (no serving library imported).

The client sends the model input as UINT8 [B, 1, S, S] (the preprocessed frame before its /255
scaling: a quarter of the FP32 bytes; exact for that scaling, within half a grey level for an
input scaled otherwise, e.g. min-max) and the server scales it; the answer is FP32 ``scores``
[B, C] and ``maps`` [B, C, h, w]. The model's own description (classes, activation,
representation, input size...) travels as the model's parameters, under the same
``sonostream.*`` keys as the ONNX metadata.
"""

from __future__ import annotations

from engines.model_info import META_PREFIX, ModelInfo

INPUT = "frames"
INPUT_DATATYPE = "UINT8"
OUTPUTS = ("scores", "maps")
DEFAULT_MODEL_NAME = "sonostream"
PLATFORM = "sonostream"  # what `streamer serve` reports as the model's platform


def model_parameters(info: ModelInfo) -> dict[str, str]:
    """The model's description as string parameters (``sonostream.classes``, ...)."""
    return info.to_metadata()


def info_from_parameters(params: dict[str, str], source: str) -> ModelInfo:
    """The ModelInfo a server published with :func:`model_parameters`."""
    return ModelInfo.from_metadata({k: str(v) for k, v in params.items()
                                    if k.startswith(META_PREFIX)}, source)


CONTRACT_FIELDS = ("classes", "activation", "input_size", "representation", "recipe")
"""What a running stream depends on: its preprocessing (input size, representation, recipe) and
the meaning of each output channel (class names in order, activation). Anything else (precision,
build, version) may change under a stream without changing what its results mean."""
CONTRACT_PARAMETER = "sonostream.contract"  # `streamer serve` stamps every answer with it


def contract_digest(info: ModelInfo) -> str:
    """A short fingerprint of the contract fields, equal for equal contracts."""
    import hashlib
    import json

    fields = {k: getattr(info, k) for k in CONTRACT_FIELDS}
    fields["classes"], fields["recipe"] = list(info.classes), info.recipe.to_json()
    text = json.dumps(fields, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def contract_changes(old: ModelInfo, new: ModelInfo) -> list[str]:
    """Each contract field that differs, as ``field old → new``."""
    def show(info, key):
        value = getattr(info, key)
        return list(value) if key == "classes" else value.to_json() if key == "recipe" else value

    return [f"{key} {show(old, key)} → {show(new, key)}" for key in CONTRACT_FIELDS
            if getattr(old, key) != getattr(new, key)]
