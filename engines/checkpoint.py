"""Checkpoints: our own format, and import of state dicts from the paper's public code.

Our format is a dict saved with ``torch.save``: ``format``, ``version``, ``config`` (the
ModelConfig as a dict, which carries classes, activation and input size) and ``state_dict``.
The release (ntoussaint/fetalnav) saves ``{'epoch', 'arch', 'state_dict', 'best_score'}`` with
keys ``features.*``, ``spatial_pooling.adconv.*``, ``classifier.0.*``; its per-class variant
(branch MultiLinearClassifier) ``features.*``, ``spatial_poolings.{i}.adconv.*``,
``classifiers.{i}.weight/bias``. Imported, it keeps the release's class order (sorted label
strings, Background a class of its own), its activation (independent sigmoids: it trained with
multi-label losses) and its input recipe (polar frames, crop to 1.5, 224×224, min-max).
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from engines.classes import RELEASE_CLASSES
from engines.input_recipe import FETALNAV
from engines.model import ModelConfig, SPNModel

FORMAT = "sonostream-checkpoint"
VERSION = 1


def save_checkpoint(model: SPNModel, path: str | Path, **extra) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "config": model.cfg.to_dict(),
        "state_dict": model.state_dict(),
        **extra,
    }
    torch.save(payload, path)
    return path


def read_checkpoint(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for a corrupt file
        raise ValueError(f"cannot read checkpoint {path}: {exc.__class__.__name__}: {exc}") from exc


def load_checkpoint(path: str | Path, **overrides) -> SPNModel:
    """Load our format or a state dict from the paper's code (its layout is detected)."""
    payload = read_checkpoint(path)
    if isinstance(payload, dict) and payload.get("format") == FORMAT:
        cfg = ModelConfig.from_dict({**payload["config"], **overrides})
        model = SPNModel(cfg)
        _load_state(model, payload["state_dict"], path)
        return model.eval()
    state = payload.get("state_dict", payload) if isinstance(payload, dict) else None
    if isinstance(state, dict) and state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}  # saved from DataParallel
    if not isinstance(state, dict) or not any(k.startswith("features.") for k in state):
        raise ValueError(f"{path}: neither a sonostream checkpoint nor a fetalnav/SPN state dict")
    return import_release_state(state, **overrides).eval()


def _load_state(model: SPNModel, state: dict, source) -> None:
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise ValueError(f"{source}: weights do not fit the model config: {first}") from exc


def infer_arch(state: dict) -> str:
    """Name the backbone from the shapes of ``features.*`` (VGG or ResNet laid out as torchvision)."""
    if "features.4.0.conv1.weight" in state:
        blocks = {int(m.group(1)) for k in state if (m := re.match(r"features\.6\.(\d+)\.", k))}
        return "resnet34" if len(blocks) > 2 else "resnet18"
    convs = [k for k, v in state.items() if k.startswith("features.") and k.endswith(".weight") and v.ndim == 4]
    bn = any(k.startswith("features.") and k.endswith("running_mean") for k in state)
    if state.get("features.0.weight") is not None and state["features.0.weight"].shape[1] != 1:
        raise ValueError("the checkpoint's first conv expects more than 1 input channel")
    by_count = {10: "vgg13", 13: "vgg16"}  # the last max-pool is not a conv, so counts are unchanged
    if len(convs) not in by_count:
        raise ValueError(f"cannot tell the backbone from {len(convs)} feature convolutions")
    return by_count[len(convs)] + ("_bn" if bn else "")


def _strip(state: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def _release_config(count: int, classes, overrides: dict) -> dict:
    """Names, activation, representation and recipe of an imported model (overridable)."""
    if classes is None:
        if count != len(RELEASE_CLASSES):
            raise ValueError(f"the checkpoint has {count} classes, the release's data set "
                             f"{len(RELEASE_CLASSES)}: pass their names in output order (the "
                             "sorted label strings of the data set it was trained on)")
        classes = RELEASE_CLASSES
    if len(classes) != count:
        raise ValueError(f"{len(classes)} class names given for a checkpoint with {count} classes")
    extra = {**overrides.pop("extra", {})}
    extra.setdefault("recipe", dict(FETALNAV.__dict__))
    return {"classes": tuple(classes), "activation": "sigmoid", "representation": "polar",
            **overrides, "extra": extra}


def import_release_state(state: dict, classes=None, **overrides) -> SPNModel:
    arch = overrides.pop("arch", None) or infer_arch(state)
    features = _strip(state, "features.")
    if "spatial_pooling.adconv.weight" in state:
        conv = _strip(state, "spatial_pooling.adconv.")
        linear = _strip(state, "classifier.0.")
        cfg = ModelConfig(arch=arch, head="shared", num_maps=conv["weight"].shape[0],
                          **_release_config(linear["weight"].shape[0], classes, overrides))
        head = {"adconv.weight": conv["weight"], "adconv.bias": conv["bias"],
                "classifier.0.weight": linear["weight"], "classifier.0.bias": linear["bias"]}
    elif "spatial_poolings.0.adconv.weight" in state:
        head, cfg = _fuse_per_class(state, arch, classes, overrides)
    else:
        raise ValueError("state dict has features.* but no spatial_pooling(s).adconv head")
    model = SPNModel(cfg)
    merged = {**{f"features.{k}": v for k, v in features.items()},
              **{f"head.{k}": v for k, v in head.items()}}
    _load_state(model, merged, "fetalnav state dict")
    return model


def _per_class_linear(state: dict, i: int) -> dict:
    linear = _strip(state, f"classifiers.{i}.")
    if "weight" not in linear:  # classifiers.{i} may be a Sequential holding the Linear
        linear = _strip(linear, "0.")
    return linear


def _fuse_per_class(state: dict, arch: str, classes, overrides: dict):
    count = 1 + max(int(m.group(1)) for k in state if (m := re.match(r"spatial_poolings\.(\d+)\.", k)))
    convs = [_strip(state, f"spatial_poolings.{i}.adconv.") for i in range(count)]
    linears = [_per_class_linear(state, i) for i in range(count)]
    k = convs[0]["weight"].shape[0]
    cfg = ModelConfig(arch=arch, head="per_class", num_maps=k,
                      **_release_config(count, classes, overrides))
    head = {
        "conv.weight": fuse_grouped([c["weight"] for c in convs]),
        "conv.bias": fuse_grouped([c["bias"] for c in convs]),
        "weight": torch.cat([lin["weight"].reshape(1, k) for lin in linears]),
        "bias": torch.cat([lin["bias"].reshape(1) for lin in linears]),
    }
    return head, cfg


def fuse_grouped(per_class: list[torch.Tensor]) -> torch.Tensor:
    """Stack per-class groups=2 conv tensors in the fused [group, class, map] channel order."""
    halves = [t.chunk(2, dim=0) for t in per_class]
    return torch.cat([h[0] for h in halves] + [h[1] for h in halves], dim=0)


def split_grouped(fused: torch.Tensor, num_classes: int) -> list[torch.Tensor]:
    """Inverse of fuse_grouped: the per-class tensors."""
    groups = fused.chunk(2, dim=0)
    per_group = [g.chunk(num_classes, dim=0) for g in groups]
    return [torch.cat([per_group[0][c], per_group[1][c]], dim=0) for c in range(num_classes)]
